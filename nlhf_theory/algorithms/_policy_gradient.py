"""Policy-gradient algorithms: ascent on an expected preference against an opponent.

Nash-MD-PG ascends the regularized preference against a mixture opponent (REINFORCE in the
sampled mode); XPO descends online DPO's loss plus an optimism bonus on reference samples.
Both take one gradient step on the softmax logits per iteration, validated and stepped like the
pairwise-loss methods (:func:`~nlhf_theory.algorithms._pairwise.gradient_setup`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nlhf_theory import losses
from nlhf_theory import validation as checks
from nlhf_theory.algorithms._base import (
    Algorithm,
    PolicyState,
    log_softmax,
    policy_from_logits,
    reference_state,
)
from nlhf_theory.algorithms._defaults import online_dpo_rule, policy_gradient_rule
from nlhf_theory.algorithms._pairwise import geometric_mixture, gradient_setup
from nlhf_theory.algorithms._targets import NO_TARGET, reward_optimum_target, stationary_target
from nlhf_theory.data import (
    draw_labels,
    draw_responses,
    expected_win_rates,
    pair_loss,
    sample_mean,
)


def nash_md_pg(beta, learning_rate=None, mixture=0.125, *, mode: str = "exact",
               pairs_per_prompt: int = 64) -> Algorithm:
    """Nash-MD-PG: policy gradient on the regularized preference against a mixture opponent.

    Ascends ``E_{y ~ pi, y' ~ pi_mix}[P(y > y')] - beta KL(pi || pi_ref)`` in the logits, with
    the opponent ``pi_mix ∝ pi_t^{1-m} pi_ref^m`` held fixed (stop-gradient). Exact mode: the
    gradient of that population objective; sampled mode: the REINFORCE estimate
    ``grad log pi(y) [1(y > y') - 1/2 - beta log(pi(y) / pi_ref(y))]`` over
    ``pairs_per_prompt`` draws ``y ~ pi_t``, ``y' ~ pi_mix`` per prompt. The step is
    ``theta_{t+1} = theta_t + lr grad`` with ``lr`` = ``learning_rate``, ``m`` = ``mixture``,
    ``beta`` = ``beta``. ``m = 0`` is self-play (whose expected gradient equals online IPO's,
    Calandriello et al. Prop. 4.2).

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) when ``mixture`` is 0,
    else ``"stationary_point"``, the fixed point ``pi ∝ pi_ref exp(P(y > pi^{1-m} pi_ref^m) /
    beta)`` that IPO-MD shares.

    Args:
      beta: KL coefficient > 0 (Munos et al.'s ``tau``).
      learning_rate: gradient (ascent) step > 0 on the logits (default None: ``eta* / w``,
        so every response's mirror step ``lr d0(x) pi(y)`` is at most INPO's contraction step
        ``eta* = beta / (beta^2 + 1/4)``; :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      mixture: weight ``m`` in [0, 1] of ``pi_ref`` in the opponent (their ``beta``; default
        0.125, in their best range).
      mode, pairs_per_prompt: as in :func:`ipo_md` (defaults ``"exact"``, 64).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      Self-play reaches ``pi*_beta``:

      >>> import nlhf_theory as nt
      >>> alg = nt.algorithms.nash_md_pg(beta=0.1, learning_rate=2.0, mixture=0.0)
      >>> alg.target.kind
      'regularized_nash'
      >>> df = nt.algorithms.run_algorithm(alg, nt.make_game("comal_cyclic"), beta=0.1,
      ...                                  steps=300)
      >>> bool(df.duality_gap.iloc[-1] < 1e-10)
      True

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 7 (Nash-MD-PG).
    """
    beta, step, mode, batch_size = gradient_setup(beta, learning_rate, policy_gradient_rule,
                                                  mode, pairs_per_prompt)
    mixture = checks.unit_interval(mixture, "mixture")

    def objective(logits, opponent, game, key):
        logp = log_softmax(logits)
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        P = jnp.asarray(game.P)
        d0 = jnp.asarray(game.prompt_weights)
        if mode == "exact":
            pi = jnp.exp(logp)
            value = (jnp.sum(pi * expected_win_rates(P, jnp.exp(opponent)), -1)
                     - beta * jnp.sum(pi * (logp - log_ref), -1))
            return jnp.sum(d0 * value)
        k1, k2, k3 = jax.random.split(key, 3)
        y = draw_responses(k1, jax.lax.stop_gradient(logp), batch_size)
        y2 = draw_responses(k2, opponent, batch_size)
        x = jnp.arange(logits.shape[0])[:, None]
        labels = draw_labels(k3, P[x, y, y2], "bernoulli", logits.dtype)
        return sample_mean(d0, -losses.nash_md_pg_loss(logp[x, y], log_ref[x, y], labels, beta))

    def init(game, key=None):
        return reference_state(game)

    def update(state, game, key):
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        opponent = jax.lax.stop_gradient(geometric_mixture(state.logits, log_ref, mixture))
        grad = jax.grad(objective)(state.logits, opponent, game, key)
        return PolicyState(log_softmax(state.logits + step(game) * grad), state.step + 1)

    return Algorithm(init, update, policy_from_logits, stationary_target(beta, mixture))


def xpo(beta, learning_rate=None, alpha=1e-3, *, mode: str = "exact",
        pairs_per_prompt: int = 64) -> Algorithm:
    """XPO: online DPO with an optimism bonus ``alpha E_{y~ pi_ref}[log pi(y)]``.

    Each iteration draws ``y ~ pi_t`` and ``y' ~ pi_ref``, labels the pair with the oracle and
    takes a gradient step on ``dpo_loss + alpha log pi(y~)`` with ``y~ ~ pi_ref``: minimizing
    the log-likelihood of reference samples pushes mass toward responses ``pi_ref`` covers
    poorly. ``alpha = 0`` is online DPO with a reference-policy opponent. Interpretation: the
    paper minimizes the objective over all data collected so far; here one gradient step is
    taken on the current (exact or sampled) batch per iteration:
    ``theta_{t+1} = theta_t - lr grad (E_{y ~ pi_t, y' ~ pi_ref}[-log sigma(beta h (2 l - 1))]
    + alpha E_{y~ ~ pi_ref}[log pi_theta(y~)])``, with ``lr`` = ``learning_rate``, ``beta`` =
    ``beta``, ``alpha`` = ``alpha``, ``h`` and ``l`` as in :func:`online_dpo`.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` when ``alpha`` is 0 (online DPO's
    fixed point), else ``"none"``: the bonus moves the fixed point.

    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step > 0 on the logits (default None: online DPO's rule,
        :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      alpha: exploration coefficient >= 0 (default 1e-3).
      mode, pairs_per_prompt: as in :func:`online_dpo` (defaults ``"exact"``, 64).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      >>> import jax, nlhf_theory as nt
      >>> nt.algorithms.xpo(beta=0.1).target.kind, nt.algorithms.xpo(0.1, alpha=0.0).target.kind
      ('none', 'reward_optimum')
      >>> game = nt.make_game("bradley_terry")
      >>> alg = nt.algorithms.xpo(beta=0.1, alpha=0.5)
      >>> int(alg.update(alg.init(game), game, jax.random.key(0)).step)
      1

    References:
      Xie et al. 2024, arXiv:2405.21046, Alg. 1.
    """
    beta, step, mode, batch_size = gradient_setup(beta, learning_rate, online_dpo_rule, mode,
                                                  pairs_per_prompt)
    alpha = checks.nonnegative(alpha, "alpha")

    def objective(logits, behaviour_logits, game, key):
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        k1, k2 = jax.random.split(key)
        value = pair_loss(losses.dpo_loss, logits, game, (behaviour_logits, log_ref), k1, mode,
                          batch_size, beta)
        logp = log_softmax(logits)
        d0 = jnp.asarray(game.prompt_weights)
        if mode == "exact":
            bonus = jnp.sum(d0 * jnp.sum(jnp.exp(log_ref) * logp, -1))
        else:
            y = draw_responses(k2, log_ref, batch_size)
            bonus = sample_mean(d0, logp[jnp.arange(logits.shape[0])[:, None], y])
        return value + alpha * bonus

    def init(game, key=None):
        return reference_state(game)

    def update(state, game, key):
        grad = jax.grad(objective)(state.logits, jax.lax.stop_gradient(state.logits), game, key)
        return PolicyState(log_softmax(state.logits - step(game) * grad), state.step + 1)

    exact_dpo = not checks.traced(alpha) and alpha == 0.0  # the bonus moves the fixed point
    target = reward_optimum_target(beta) if exact_dpo else NO_TARGET
    return Algorithm(init, update, policy_from_logits, target)
