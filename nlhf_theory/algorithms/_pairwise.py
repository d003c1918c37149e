"""Parametric (softmax-logit) algorithms that take gradient steps on a pairwise loss.

One mechanism serves online DPO, online IPO, IPO-MD and EGPO: at every iteration, pairs
``(y, y')`` are drawn from behaviour policies built from the current iterate (stop-gradient),
labelled by the preference, scored by a loss of :mod:`nlhf_theory.losses`, and the logits take
a gradient step. In the exact mode the loss is its expectation over prompts ``x ~ d0``, pairs
and labels (weights ``mu_1(y) mu_2(y')``, soft label ``P[x, y, y']``); in the sampled mode it is
the mean over ``batch_size`` pairs per prompt with Bernoulli labels from the oracle.

EGPO's online IPO (:func:`win_rate_pair_loss`) draws the pair uniformly and lets the opponent
enter through a third response ``y'' ~ pi'``: the target is the difference of the win rates
``P(y > pi') - P(y' > pi')`` (exact) or of two oracle labels against one draw ``y''``
(sampled).

The policy-gradient family lives here too, with its own objective on the same draws:
Nash-MD-PG (REINFORCE against a mixture opponent) and XPO (online DPO with an exploration
bonus on reference samples).
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
from nlhf_theory.algorithms._defaults import (
    ipo_pair_rule,
    online_dpo_rule,
    step_size,
)
from nlhf_theory.algorithms._targets import (
    regularized_nash_target,
    reward_optimum_target,
    stationary_target,
)
from nlhf_theory.data import (
    LABELS,
    pair_loss,
    win_rate_pair_loss,
)

#: How online IPO draws its pairs: from the policy (Calandriello et al.) or uniformly (EGPO).
PAIRS = ("policy", "uniform")


def geometric_mixture(logits, log_ref, weight):
    """``log(pi^{1 - w} pi_ref^w / Z)``: the geometric mixture used by Nash-MD and IPO-MD."""
    return log_softmax((1.0 - weight) * logits + weight * log_ref)


def gradient_setup(beta, learning_rate, rule, mode, pairs_per_prompt):
    """The validated ``(beta, step, mode, pairs_per_prompt)`` of a logit-gradient method;
    ``rule(beta)`` is its default step (:mod:`._defaults`)."""
    beta = checks.positive(beta, "beta")
    return (beta, step_size(learning_rate, rule(beta)), checks.check_mode(mode),
            checks.positive_int(pairs_per_prompt, "pairs_per_prompt"))


def _online(loss, beta, learning_rate, mixture, mode, batch_size, extragradient, target,
            pairs="policy", labels="bernoulli", rule=None):
    beta, step, mode, batch_size = gradient_setup(beta, learning_rate, rule, mode, batch_size)
    mixture = checks.unit_interval(mixture, "mixture")
    pairs = checks.check_choice(pairs, "pairs", PAIRS)
    labels = checks.check_choice(labels, "labels", LABELS)

    def grad_at(logits, behaviour_logits, game, key):
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        mu = geometric_mixture(behaviour_logits, log_ref, mixture)
        if pairs == "uniform":
            return jax.grad(win_rate_pair_loss)(logits, game, mu, key, mode, batch_size, beta,
                                                labels)
        return jax.grad(pair_loss, argnums=1)(loss, logits, game, (mu, mu), key, mode,
                                              batch_size, beta, labels=labels)

    def init(game, key=None):
        return reference_state(game)

    def update(state, game, key):
        k1, k2 = jax.random.split(key)
        lr = step(game)
        theta = state.logits
        opponent = theta
        if extragradient:  # the half step only sets the opponent, then it is undone
            opponent = theta - lr * grad_at(theta, theta, game, k1)
        theta = theta - lr * grad_at(theta, opponent, game, k2)
        return PolicyState(log_softmax(theta), state.step + 1)

    return Algorithm(init, update, policy_from_logits, target)


def online_dpo(beta, learning_rate=None, *, mode: str = "exact",
               pairs_per_prompt: int = 64) -> Algorithm:
    """Online (iterative) DPO: the DPO loss on on-policy pairs labelled by the oracle.

    ``theta_{t+1} = theta_t - lr grad E_{y, y' ~ pi_t, l ~ P}[-log sigma(beta h (2 l - 1))]``
    with ``lr`` = ``learning_rate``, ``beta`` = ``beta``, ``h = log(pi_theta / pi_ref)(y) -
    log(pi_theta / pi_ref)(y')`` and ``l`` the label (``P[x, y, y']`` in expectation, or an
    oracle draw over ``pairs_per_prompt`` pairs per prompt): pairs ``y, y' ~ pi_t``
    (stop-gradient), the reference fixed at ``pi_ref``, the policy warm-started from the
    previous iterate; one gradient step per iteration. On Bradley-Terry preferences its fixed
    point is the RLHF optimum ``pi_ref exp(r / beta) / Z``; on intransitive preferences it does
    not reach the regularized Nash equilibrium (Calandriello et al. 2024, Thm. F.6).

    Target: ``alg.target.kind`` is ``"reward_optimum"`` for every ``beta`` and step (its
    policy needs a Bradley-Terry game).

    Args:
      beta: KL coefficient > 0 (DPO's beta).
      learning_rate: gradient step ``lr`` > 0 on the logits (default None: ``2 eta* / (beta
        w)``, IPO's policy-pair rule scaled by DPO's curvature,
        :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      mode: ``"exact"`` (default, expected loss) or ``"sampled"``.
      pairs_per_prompt: pairs per prompt per step in the sampled mode, >= 1 (default 64).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      On a Bradley-Terry game the last iterate reaches the RLHF optimum:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game, key = nt.make_game("bradley_terry"), jax.random.key(0)
      >>> alg = nt.algorithms.online_dpo(beta=1.0)
      >>> last = jax.lax.fori_loop(0, 200, lambda t, s: alg.update(s, game, key), alg.init(game))
      >>> bool(np.abs(alg.policy(last) - alg.target.policy(game)).max() < 1e-6)
      True

    References:
      Rafailov et al. 2023, arXiv:2305.18290 (the loss); Guo et al. 2024, "Direct language
      model alignment from online AI feedback", arXiv:2402.04792 (online DPO).
    """
    return _online(losses.dpo_loss, beta, learning_rate, 0.0, mode, pairs_per_prompt, False,
                   reward_optimum_target(beta), rule=online_dpo_rule)


def online_ipo(beta, learning_rate=None, *, pairs: str = "policy", extragradient: bool = False,
               mode: str = "exact", pairs_per_prompt: int = 64,
               labels: str = "bernoulli") -> Algorithm:
    """Online IPO: one gradient step per iteration on an IPO square loss against ``pi_t``.

    ``theta_{t+1} = theta_t - lr grad L(theta_t; pi_t)``, the opponent ``pi_t`` held fixed
    (stop-gradient), with ``lr`` = ``learning_rate``, ``beta`` = ``beta``, ``h`` the log-ratio
    margin ``log(pi_theta / pi_ref)(y) - log(pi_theta / pi_ref)(y')`` and ``P`` exact or
    oracle-sampled (``labels``), and one of two losses (the EGPO authors' simulation runs both):

    * ``pairs="policy"`` (Calandriello et al. eq. 11; the authors' "Online IPO 2"):
      ``L = E_{y, y' ~ pi_t}[(h(y, y') - (P(y > y') - 1/2) / beta)^2]``.
    * ``pairs="uniform"`` (EGPO's online IPO; the authors' "Online IPO 1 (OMD)"):
      ``L = E_{y, y' ~ Unif}[(h(y, y') - (P(y > pi_t) - P(y' > pi_t)) / beta)^2]``
      (:func:`win_rate_pair_loss`). For a tabular policy its exact gradient step is exactly the
      online-mirror-descent (INPO) step ``pi_{t+1} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta}
      exp(eta P pi_t)`` with ``eta = 4 lr / (beta Y)`` on ``Y`` responses [derived: the loss
      is ``(2 / Y) sum_y (e_y - mean e)^2`` in ``e = log(pi / pi_ref) - P pi_t / beta``].

    Both have the regularized Nash equilibrium ``pi*_beta`` as stationary point (Prop. 4.1);
    the policy-pair gradient is in expectation self-play Nash-MD-PG's (Prop. 4.2). Plain
    gradient steps can oscillate for small ``beta``. ``extragradient=True`` takes EGPO's
    extragradient step instead: ``theta_{t+1/2} = theta_t - lr grad L(theta_t; pi_t)``, then
    ``theta_{t+1} = theta_t - lr grad L(theta_t; pi_{t+1/2})`` (the half step only moves the
    opponent). With ``pairs="uniform"`` that is :func:`egpo`; with ``pairs="policy"`` it is
    extragradient on Calandriello et al.'s loss (the update this package called ``egpo``
    before; not a published algorithm: its gradient vanishes on a near-pure policy, and it
    collapses at beta = 0.001 where EGPO converges).

    Notation: Calandriello et al.'s ``tau`` is ``beta``.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) for both losses, with
    or without ``extragradient``.

    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step ``lr`` > 0 on the logits (default None: ``eta* beta / 4``
        for policy pairs, ``eta* beta Y / 4`` for uniform ones, divided by the largest prompt
        weight, with ``eta* = beta / (beta^2 + 1/4)``: every response's mirror step is at most
        INPO's contraction step; :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      pairs: ``"policy"`` (default) or ``"uniform"`` (above).
      extragradient: take EGPO's extragradient step (default False).
      mode: ``"exact"`` (default, expected loss) or ``"sampled"``.
      pairs_per_prompt: pairs per prompt per step, >= 1 (default 64; sampled mode; per
        gradient, two in an extragradient step, each with fresh draws).
      labels: sampled mode: ``"bernoulli"`` (oracle draws, default) or ``"probability"``
        (the preference probabilities as labels, as in the authors' simulation).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      >>> import nlhf_theory as nt
      >>> df = nt.run("online_ipo", nt.make_game("comal_cyclic"), beta=0.1, steps=2000,
      ...             learning_rate=0.2, pairs="uniform")
      >>> bool(df.duality_gap.iloc[-1] < 1e-8)
      True

    References:
      Calandriello et al. 2024, arXiv:2403.08635, eq. 11 and Props. 4.1-4.2; Zhou, Fazel &
      Du 2025, arXiv:2503.08942 (the uniform-pair loss); code ``zhourunlong/EGPO``,
      ``simulations/loss_funcs.py``, ``online_ipo_1``, ``online_ipo_2`` (and ``_sample``).
    """
    return _online(losses.ipo_loss, beta, learning_rate, 0.0, mode, pairs_per_prompt, extragradient,
                   regularized_nash_target(beta), pairs, labels,
                   rule=lambda b: ipo_pair_rule(b, pairs))


def ipo_md(beta, learning_rate=None, mixture=0.125, *, mode: str = "exact",
           pairs_per_prompt: int = 64) -> Algorithm:
    """IPO-MD: online IPO with pairs from the geometric mixture ``pi_t^{1-m} pi_ref^m``.

    ``theta_{t+1} = theta_t - lr grad E_{y, y' ~ mu_t}[(h(y, y') - (P(y > y') - 1/2) /
    beta)^2]`` with ``mu_t ∝ pi_t^{1-m} pi_ref^m`` (stop-gradient), ``lr`` =
    ``learning_rate``, ``m`` = ``mixture``, ``beta`` = ``beta`` and ``h`` the log-ratio margin
    of :func:`online_ipo` (whose ``pairs="policy"`` loss this is, at ``m = 0``). Its
    stationary point solves ``pi ∝ pi_ref exp(P(y > pi^{1-m} pi_ref^m) / beta)``, Nash-MD-PG's.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) when ``mixture`` is 0,
    else ``"stationary_point"`` (the fixed point above).

    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step > 0 on the logits (default None: online IPO's rule for
        policy pairs, :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      mixture: weight ``m`` in [0, 1] of ``pi_ref`` in the behaviour policy (their ``beta``;
        default 0.125, as in their experiments).
      mode: ``"exact"`` (default) or ``"sampled"``.
      pairs_per_prompt: pairs per prompt per step in the sampled mode, >= 1 (default 64).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      >>> import jax, nlhf_theory as nt
      >>> [nt.algorithms.ipo_md(0.1, mixture=m).target.kind for m in (0.0, 0.125)]
      ['regularized_nash', 'stationary_point']
      >>> game = nt.make_game("munos_nontransitive")
      >>> alg = nt.algorithms.ipo_md(0.1)
      >>> alg.policy(alg.update(alg.init(game), game, jax.random.key(0))).shape
      (1, 3)

    References:
      Calandriello et al. 2024, arXiv:2403.08635, Sec. 4 (IPO-MD).
    """
    return _online(losses.ipo_loss, beta, learning_rate, mixture, mode, pairs_per_prompt, False,
                   stationary_target(beta, mixture), rule=lambda b: ipo_pair_rule(b, "policy"))


def egpo(beta, learning_rate=None, *, mode: str = "exact", pairs_per_prompt: int = 64,
         labels: str = "bernoulli") -> Algorithm:
    """EGPO: extragradient steps on the uniform-pair online IPO loss.

    With ``L(theta; pi') = E_{y, y' ~ Unif}[(h_theta(y, y') - (P(y > pi') - P(y' > pi')) /
    beta)^2]`` (:func:`nlhf_theory.losses.win_rate_ipo_loss`, the opponent ``pi'`` held fixed):
    ``theta_{t+1/2} = theta_t - lr grad L(theta_t; pi_{theta_t})``, then
    ``theta_{t+1} = theta_t - lr grad L(theta_t; pi_{theta_{t+1/2}})``: the half step only
    moves the opponent (``lr`` = ``learning_rate``, ``beta`` = ``beta``, ``h_theta`` the
    log-ratio margin of :func:`online_ipo`). Exact mode: every ordered pair with weight
    ``1 / Y^2``, as the authors' tabular simulation (``extragradient``); for a tabular policy
    on ``Y`` responses
    it is exactly the extragradient mirror step
    ``pi_{t+1/2} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta} exp(eta P pi_t)``,
    ``pi_{t+1} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta} exp(eta P pi_{t+1/2})`` with
    ``eta = 4 lr / (beta Y)`` [derived, see :func:`online_ipo`]. Sampled mode: each of the two
    gradients draws ``pairs_per_prompt`` fresh triples per prompt, ``y, y' ~ Unif`` and
    ``y'' ~ pi_t`` (half step) or ``pi_{t+1/2}`` (full step), with oracle labels
    ``1[y > y'']``, ``1[y' > y'']`` (``labels="bernoulli"``) or, as the authors'
    ``extragradient_sample``, the probabilities ``P[y, y'']``, ``P[y', y'']``
    (``labels="probability"``). Converges linearly in the last iterate to the regularized
    Nash equilibrium ``pi*_beta``. The former update of this name (extragradient on the
    policy-pair loss) is ``online_ipo(..., extragradient=True)``.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) for every ``beta``,
    step, mode and labels.

    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step ``lr`` > 0 on the logits (the authors' tabular runs: 0.1,
        0.02, 2e-4 at beta = 0.1, 0.01, 0.001). Default None: ``eta* beta Y / (4 w)`` with
        ``eta* = beta / (beta^2 + 1/4)`` and ``w`` the largest prompt weight, the step whose
        mirror form is INPO's contraction step (:data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      mode: ``"exact"`` (default) or ``"sampled"``.
      pairs_per_prompt: triples per prompt per gradient in the sampled mode, >= 1 (default 64).
      labels: ``"bernoulli"`` (default) or ``"probability"`` (sampled mode).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      >>> import nlhf_theory as nt
      >>> alg = nt.algorithms.egpo(beta=0.1, learning_rate=0.1)
      >>> alg.target.kind
      'regularized_nash'
      >>> game = nt.make_game("comal_cyclic")
      >>> df = nt.algorithms.run_algorithm(alg, game, beta=0.1, steps=1000)
      >>> bool(df.duality_gap.iloc[-1] < 1e-8)
      True

    References:
      Zhou, Fazel & Du 2025, arXiv:2503.08942, Alg. 1 and its online IPO implementation;
      code ``zhourunlong/EGPO``, ``simulations/loss_funcs.py``, ``extragradient`` and
      ``extragradient_sample``.
    """
    return _online(losses.ipo_loss, beta, learning_rate, 0.0, mode, pairs_per_prompt, True,
                   regularized_nash_target(beta), "uniform", labels,
                   rule=lambda b: ipo_pair_rule(b, "uniform"))
