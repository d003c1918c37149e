"""Closed-form metrics of the KL-regularized preference game (per prompt and d0-averaged).

Every function is written once against the array API (``array_api_compat``): it runs on NumPy
arrays (the float64 certificates of the solvers), inside ``jax.jit``/``jax.vmap`` on jax arrays,
and on torch tensors. The namespace is the policy's; the game's arrays are converted into it.
Concrete inputs are validated (shape, simplex); traced jax values are only shape-checked.

Conventions (``docs/conventions.md``), with ``A = P - 1/2`` skew and ``beta`` the KL coefficient:

* ``J(pi, pi') = E_x[pi^T P pi' - beta KL(pi || pi_ref) + beta KL(pi' || pi_ref)]``;
* ``BR_beta(pi) = softmax(log pi_ref + P pi / beta)``, the best response (of either player: the
  game is symmetric);
* ``duality_gap(pi) = max_p J(p, pi) - min_p J(pi, p) = 2 beta KL(pi || BR_beta(pi))``;
* ``suboptimality(pi) = J(pi*, pi*) - min_p J(pi, p) = duality_gap(pi) / 2`` (Ye et al. 2024);
* ``exploitability(pi) = max_y (P pi)(y) - 1/2`` (unregularized, beta = 0).
"""

from __future__ import annotations

import numpy as np

from nlhf_theory._arrays import logsumexp, matvec, namespace, xlogy_ratio
from nlhf_theory.validation import (
    InvalidInputError,
    check_beta,
    check_simplex,
    traced,
    validation_tolerance,
)


def policy_array(game, policy, name: str = "policy", xp=None):
    """``policy`` as an (X, Y) array of the namespace ``xp``; (Y,) is shared by all prompts."""
    xp = namespace(policy) if xp is None else xp
    shape = tuple(getattr(policy, "shape", np.shape(policy)))
    X, Y = game.num_prompts, game.num_responses
    if shape not in ((Y,), (X, Y)):
        raise InvalidInputError(
            f"{name}: expected shape ({Y},) or ({X}, {Y}) for a game with X={X} prompts and "
            f"Y={Y} responses, got {shape}"
        )
    if not traced(policy):
        arr = np.asarray(policy)
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise InvalidInputError(f"{name}: contains NaN or infinite entries")
        tol = validation_tolerance(arr.dtype)
        if arr.min() < -tol or np.max(np.abs(arr.sum(-1) - 1.0)) > tol * max(1, Y) ** 0.5:
            check_simplex(arr, name)  # raises with the precise message
    policy = xp.asarray(policy)
    if len(shape) == 1:
        policy = xp.broadcast_to(policy[None, :], (X, Y))
    return policy


def _game_arrays(game, xp, dtype):
    return (
        xp.asarray(game.P, dtype=dtype),
        xp.asarray(game.pi_ref, dtype=dtype),
        xp.asarray(game.prompt_weights, dtype=dtype),
    )


def _reduce(xp, weights, values, per_prompt: bool):
    return values if per_prompt else xp.sum(weights * values)


def _beta(beta):
    return check_beta(beta) if not traced(beta) else beta


# Metrics ------------------------------------------------------------------------------------
def best_response(game, policy, beta):
    """Best response to ``policy`` in the beta-regularized game, per prompt.

    ``BR_beta(pi)(y | x) = pi_ref(y | x) exp((P pi)(y | x) / beta) / Z(x)``; by symmetry it is
    both the max player's ``argmax_p J(p, pi)`` and the min player's ``argmin_p J(pi, p)``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      policy: (Y,) or (X, Y) array on the simplex.
      beta: KL coefficient > 0.

    Returns:
      (X, Y) array, the best response for every prompt.
    """
    beta = _beta(beta)
    xp = namespace(policy)
    pi = policy_array(game, policy, xp=xp)
    P, pi_ref, _ = _game_arrays(game, xp, pi.dtype)
    logits = xp.log(pi_ref) + matvec(xp, P, pi) / beta
    return xp.exp(logits - logsumexp(xp, logits)[..., None])


def duality_gap(game, policy, beta, *, per_prompt: bool = False):
    """Duality gap ``max_p J(p, pi) - min_p J(pi, p) = 2 beta KL(pi || BR_beta(pi))``.

    Zero exactly at the regularized Nash equilibrium ``pi*_beta`` and positive elsewhere.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      policy: (Y,) or (X, Y) array on the simplex.
      beta: KL coefficient > 0 (Ye et al.'s ``1 / eta``, Munos et al.'s ``tau``).
      per_prompt: return the (X,) per-prompt gaps instead of their d0-average.

    Returns:
      The d0-averaged gap (scalar), or (X,) per-prompt gaps.

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 3 (``J`` and the one-sided suboptimality);
      the closed form is derived in ``docs/conventions.md``.
    """
    beta = _beta(beta)
    xp = namespace(policy)
    pi = policy_array(game, policy, xp=xp)
    P, pi_ref, weights = _game_arrays(game, xp, pi.dtype)
    logits = xp.log(pi_ref) + matvec(xp, P, pi) / beta
    log_br = logits - logsumexp(xp, logits)[..., None]
    return _reduce(xp, weights, 2.0 * beta * xlogy_ratio(xp, pi, log_br), per_prompt)


def suboptimality(game, policy, beta, *, per_prompt: bool = False):
    """Ye et al.'s one-sided suboptimality ``J(pi*, pi*) - min_p J(pi, p)`` = half the gap.

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 3 (learning target, eq. for ``J(pi, dagger)``).
    """
    return duality_gap(game, policy, beta, per_prompt=per_prompt) / 2.0


def exploitability(game, policy, *, per_prompt: bool = False):
    """Unregularized exploitability ``max_y (P pi)(y) - 1/2`` (0 exactly at a maximal lottery).

    Never negative: rounding below 0 (at most a few ulps, at an equalized support) reads 0.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      policy: (Y,) or (X, Y) array on the simplex.
      per_prompt: return (X,) values instead of their d0-average.
    """
    xp = namespace(policy)
    pi = policy_array(game, policy, xp=xp)
    P, _, weights = _game_arrays(game, xp, pi.dtype)
    # >= 0 exactly for a skew P (max_y (P pi)(y) >= pi^T P pi = 1/2): a negative value is the
    # rounding of the product at an equalized support (~1e-16), reported as 0
    values = xp.max(matvec(xp, P, pi), axis=-1) - 0.5
    return _reduce(xp, weights, xp.where(values > 0, values, xp.zeros_like(values)), per_prompt)


def win_rate(game, policy, other, *, per_prompt: bool = False):
    """Probability that ``policy`` beats ``other``: ``E_x pi^T P pi'``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      policy, other: (Y,) or (X, Y) arrays on the simplex.
      per_prompt: return (X,) values instead of their d0-average.
    """
    xp = namespace(policy, other)
    pi = policy_array(game, policy, "policy", xp)
    pi2 = policy_array(game, other, "other", xp)
    P, _, weights = _game_arrays(game, xp, pi.dtype)
    return _reduce(xp, weights, xp.sum(pi * matvec(xp, P, pi2), axis=-1), per_prompt)


def kl_to_ref(game, policy, *, per_prompt: bool = False):
    """``KL(pi(. | x) || pi_ref(. | x))``, d0-averaged (or per prompt)."""
    xp = namespace(policy)
    pi = policy_array(game, policy, xp=xp)
    _, pi_ref, weights = _game_arrays(game, xp, pi.dtype)
    return _reduce(xp, weights, xlogy_ratio(xp, pi, xp.log(pi_ref)), per_prompt)


def kl_divergence(game, policy, other, *, per_prompt: bool = False):
    """``E_x KL(pi(. | x) || pi'(. | x))``, d0-averaged (or per prompt), with ``0 log 0 = 0``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame` (for its prompt weights and shapes).
      policy: ``pi``, (Y,) or (X, Y) on the simplex.
      other: ``pi'``, same shapes; infinite where ``pi' = 0 < pi``.
      per_prompt: return (X,) values instead of their d0-average.

    Example:
      >>> import numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("comal_cyclic")
      >>> float(nt.kl_divergence(game, game.pi_ref, game.pi_ref))
      0.0
    """
    xp = namespace(policy, other)
    pi = policy_array(game, policy, "policy", xp)
    pi2 = policy_array(game, other, "other", xp)
    _, _, weights = _game_arrays(game, xp, pi.dtype)
    return _reduce(xp, weights, xlogy_ratio(xp, pi, xp.log(pi2)), per_prompt)


def game_value(game, policy, other, beta, *, per_prompt: bool = False):
    """The regularized payoff ``J(pi, pi')`` of the max player ``pi`` against ``pi'``.

    ``J(pi, pi') = E_x[pi^T P pi' - beta KL(pi || pi_ref) + beta KL(pi' || pi_ref)]``.
    """
    beta = _beta(beta)
    xp = namespace(policy, other)
    pi = policy_array(game, policy, "policy", xp)
    pi2 = policy_array(game, other, "other", xp)
    P, pi_ref, weights = _game_arrays(game, xp, pi.dtype)
    log_ref = xp.log(pi_ref)
    values = (xp.sum(pi * matvec(xp, P, pi2), axis=-1) - beta * xlogy_ratio(xp, pi, log_ref)
              + beta * xlogy_ratio(xp, pi2, log_ref))
    return _reduce(xp, weights, values, per_prompt)


def reward_optimal_policy(reward, pi_ref=None, beta=1.0):
    """The KL-regularized reward maximizer ``pi_ref exp(r / beta) / Z``.

    ``argmax_pi E_{y~pi} r(y) - beta KL(pi || pi_ref)``, per prompt (the RLHF / DPO target,
    Rafailov et al. 2023, arXiv:2305.18290, eq. 4).

    Args:
      reward: (Y,) or (X, Y) finite rewards.
      pi_ref: reference policy of the same shape (entries > 0), default uniform.
      beta: KL coefficient > 0.

    Returns:
      An array of ``reward``'s shape, each row on the simplex.
    """
    beta = _beta(beta)
    xp = namespace(reward)
    if not traced(reward) and not np.all(np.isfinite(np.asarray(reward))):
        raise InvalidInputError("reward: contains NaN or infinite entries")
    reward = xp.asarray(reward)
    if pi_ref is None:
        log_ref = xp.zeros_like(reward)
    else:
        if tuple(pi_ref.shape if hasattr(pi_ref, "shape") else np.shape(pi_ref)) != tuple(
            reward.shape
        ):
            raise InvalidInputError(
                f"pi_ref: expected the shape of reward {tuple(reward.shape)}, got "
                f"{np.shape(pi_ref)}"
            )
        if not traced(pi_ref):
            check_simplex(np.asarray(pi_ref, dtype=np.float64), "pi_ref", strictly_positive=True)
        log_ref = xp.log(xp.asarray(pi_ref, dtype=reward.dtype))
    logits = log_ref + reward / beta
    return xp.exp(logits - logsumexp(xp, logits)[..., None])
