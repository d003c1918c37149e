"""Reward models from comparisons: Bradley-Terry MAP fits, best-of-n, pessimistic rewards.

A Bradley-Terry-linear reward ``r_theta(x, y) = theta . phi(x, y)`` explains comparisons by
``Pr(y beats y' | x) = sigma(r_theta(x, y) - r_theta(x, y'))``; its MAP estimate under a
Gaussian prior ``N(0, I / ridge)`` is the ridge-regularized logistic regression on the
differences ``psi = phi(x, y) - phi(x, y')``, :func:`fit_bt_reward` (Newton's method on the
comparison counts). Tabular rewards are the one-hot features of :func:`tabular_features`. The
fit, :class:`RewardFit` and :func:`tabular_features` are defined in
:mod:`nlhf_theory.estimation` (re-exported here).
Everything but :func:`best_of_n_policy` (exact float64 NumPy) runs under ``jax.jit``/``vmap``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from nlhf_theory.data import Dataset, sample_dataset
from nlhf_theory.estimation import (
    RewardFit,
    dataset_counts,
    elliptical_norm,
    fit_bt_reward,
    tabular_features,
)
from nlhf_theory.validation import (
    InvalidInputError,
    check_simplex,
    float_array,
    traced,
)

__all__ = [
    "RewardFit",
    "best_of_n_kl_bound",
    "best_of_n_policy",
    "comparison_counts",
    "fit_bt_reward",
    "pessimistic_reward",
    "tabular_features",
]


def comparison_counts(game, key, num_pairs, behaviour=None):
    """Sample labelled comparisons and return their statistics ``(W, N)``.

    ``x ~ d0`` (``game.prompt_weights``, which may be zero on prompts never asked),
    ``y, y' ~ behaviour(. | x)`` (default ``pi_ref``; zero entries are never drawn), labels from
    ``game.oracle``. ``W[x, a, b]`` counts the comparisons of ``{a, b}`` won by ``a`` and
    ``N = N^T`` all comparisons of the pair. With a sequence of sizes the datasets are nested:
    one sample of ``max(num_pairs)`` comparisons and the statistics of each of its prefixes
    (more data, same draws). Traceable in ``key`` (vmap over seeds).

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame` (the labelling preference).
      key: a ``jax.random`` PRNG key.
      num_pairs: n >= 1, or a sequence of such sizes.
      behaviour: (X, Y) sampling policy (rows on the simplex), default ``game.pi_ref``.

    Returns:
      ``(wins, counts)``, two (X, Y, Y) arrays of the game's dtype, or (len(num_pairs), X, Y,
      Y) for a sequence of sizes.

    References:
      Chaudhari et al. 2024, arXiv:2404.08555, Sec. 4.2 (comparisons for reward modelling).
    """
    sizes = np.atleast_1d(np.asarray(num_pairs))
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or np.any(sizes < 1):
        raise InvalidInputError(f"num_pairs: must be integers >= 1, got {num_pairs!r}")
    if behaviour is not None and not traced(behaviour):
        mu = float_array(behaviour, "behaviour")
        if mu.shape != (game.num_prompts, game.num_responses):
            raise InvalidInputError(f"behaviour: expected shape {game.pi_ref.shape}, got "
                                    f"{mu.shape}")
        behaviour = check_simplex(mu, "behaviour").astype(game.P.dtype)
    data = sample_dataset(game, key, int(sizes.max()), behaviour)
    dtype = jnp.asarray(game.P).dtype
    stats = [dataset_counts(Dataset(*(a[:int(m)] for a in data)), game.num_prompts,
                            game.num_responses, dtype) for m in sizes]
    if np.ndim(num_pairs) == 0:
        return stats[0]
    return tuple(jnp.stack(s) for s in zip(*stats))


def pessimistic_reward(fit: RewardFit, phi, confidence: float, baseline=None):
    """Lower confidence bound ``r_hat(x, y) - c ||phi(x, y) - phi_bar(x)||_{H^-1}``.

    ``H`` is the fit's posterior precision, so the bonus is ``c`` posterior standard deviations
    of ``r(x, y) - r_bar(x)``; ``phi_bar(x) = sum_y baseline(y | x) phi(x, y)`` (0 without a
    baseline). Since BT identifies rewards only up to a constant per prompt, a baseline (e.g.
    ``pi_ref``, Zhu et al.'s reference vector ``v``) makes the bonus measure the uncertainty of
    reward *differences*.

    Args:
      fit: a :class:`RewardFit`.
      phi: (X, Y, d) the features of the fit.
      confidence: ``c`` >= 0.
      baseline: optional (X, Y) policy whose mean feature is subtracted.

    Returns:
      (X, Y) pessimistic reward.

    References:
      Zhu, Jordan & Jiao 2023, arXiv:2301.11270, Sec. 3.2 (pessimistic MLE); Chaudhari et al.
      2024, arXiv:2404.08555, Sec. 6.2.
    """
    if not traced(confidence) and not float(confidence) >= 0:
        raise InvalidInputError(f"confidence: must be >= 0, got {confidence!r}")
    phi = jnp.asarray(phi, fit.reward.dtype)
    if phi.shape[:2] != fit.reward.shape or phi.shape[-1] != fit.theta.shape[0]:
        raise InvalidInputError(f"phi: expected shape {fit.reward.shape + fit.theta.shape}, "
                                f"got {tuple(phi.shape)}")
    if baseline is not None:
        phi = phi - jnp.einsum("xy,xyd->xd", jnp.asarray(baseline, phi.dtype), phi)[:, None]
    return fit.reward - confidence * elliptical_norm(phi, fit.precision)


def best_of_n_policy(reward, pi_ref, n):
    """Exact best-of-n policy under ``reward``'s ordering: ``pi_n(y) = F(y)^n - F^-(y)^n``.

    Draw ``n`` responses from ``pi_ref`` and keep the one of highest reward.
    ``F(y) = Pr_ref(r <= r(y))`` and ``F^-(y) = Pr_ref(r < r(y))``; responses of equal reward
    share their group's probability in proportion to ``pi_ref`` (a uniformly random tied draw
    is kept). Computed in float64 as ``F^n (1 - (F^- / F)^n)`` (no cancellation).

    Args:
      reward: (Y,) or (X, Y) reward (only its order per prompt matters).
      pi_ref: the reference policy, same shape, rows on the simplex with entries > 0.
      n: integer >= 1, or an integer array of them.

    Returns:
      float64 array of shape ``n.shape + reward.shape``.

    References:
      Beirami et al. 2024, arXiv:2401.01879, Sec. 2 (the best-of-n distribution, its KL and
      win rate); Gao, Schulman & Hilton 2022, arXiv:2210.10760, Sec. 2.
    """
    r = float_array(reward, "reward").astype(np.float64)
    ref = float_array(pi_ref, "pi_ref").astype(np.float64)
    if r.ndim not in (1, 2) or ref.shape != r.shape:
        raise InvalidInputError(f"pi_ref: expected the shape of reward {r.shape} ((Y,) or "
                                f"(X, Y)), got {ref.shape}")
    ref = check_simplex(ref, "pi_ref", strictly_positive=True)
    n = np.asarray(n)
    if not np.issubdtype(n.dtype, np.integer) or np.any(n < 1):
        raise InvalidInputError(f"n: must be integers >= 1, got {n!r}")
    r2, ref2 = np.atleast_2d(r), np.atleast_2d(ref)
    order = np.argsort(r2, axis=-1, kind="stable")
    rs = np.take_along_axis(r2, order, -1)
    ms = np.take_along_axis(ref2, order, -1)
    X, Y = rs.shape
    idx = np.broadcast_to(np.arange(Y), (X, Y))
    starts = np.concatenate([np.ones((X, 1), bool), rs[:, 1:] != rs[:, :-1]], -1)
    ends = np.concatenate([rs[:, 1:] != rs[:, :-1], np.ones((X, 1), bool)], -1)
    first = np.maximum.accumulate(np.where(starts, idx, 0), -1)
    last = np.minimum.accumulate(np.where(ends, idx, Y - 1)[:, ::-1], -1)[:, ::-1]
    below = np.cumsum(ms, -1) - ms  # mass strictly below each sorted position
    group_below = np.take_along_axis(below, first, -1)  # F^- of the group
    group_mass = np.take_along_axis(below + ms, last, -1) - group_below
    upto = np.minimum(group_below + group_mass, 1.0)  # F of the group
    nn = n.reshape(n.shape + (1, 1)).astype(np.float64)
    with np.errstate(divide="ignore"):
        log_ratio = np.log(group_below) - np.log(upto)  # -inf for the lowest group
    group_prob = np.exp(nn * np.log(upto)) * -np.expm1(nn * log_ratio)
    sorted_pi = group_prob * (ms / group_mass)
    pi = np.empty_like(sorted_pi)
    np.put_along_axis(pi, np.broadcast_to(order, sorted_pi.shape), sorted_pi, -1)
    return pi.reshape(n.shape + r.shape)


def best_of_n_kl_bound(n):
    """Beirami et al.'s bound ``KL(pi_n || pi_ref) <= log n - (n - 1) / n`` (n >= 1).

    References:
      Beirami et al. 2024, arXiv:2401.01879, Thm. 1 (the bound is tight only for continuous
      ``pi_ref``; the classic formula ``log n - (n - 1) / n`` is an upper bound).
    """
    n = np.asarray(n, dtype=np.float64)
    if np.any(n < 1):
        raise InvalidInputError(f"n: must be >= 1, got {n!r}")
    return np.log(n) - (n - 1.0) / n
