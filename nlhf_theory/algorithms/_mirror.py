"""Idealized policy-space (mirror-descent) updates of the Nash-learning algorithms.

Each update is exact multiplicative weights on ``log pi``, per prompt, with the win rates
``(P pi_opp)(y | x) = P(y beats pi_opp | x)`` either exact (``mode="exact"``) or estimated
from ``comparisons_per_response`` oracle comparisons per response (``mode="sampled"``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nlhf_theory import losses
from nlhf_theory import validation as checks
from nlhf_theory.algorithms._base import (
    Algorithm,
    log_softmax,
    policy_from_logits,
    reference_state,
)
from nlhf_theory.algorithms._defaults import (
    anchor_period,
    hedge_step,
    magnet_period,
    magnetic_step,
    mirror_step,
)
from nlhf_theory.algorithms._targets import (
    NO_TARGET,
    nash_target,
    regularized_nash_target,
    stationary_target,
)
from nlhf_theory.data import pair_loss, win_rate_pair_loss, win_rates
from nlhf_theory.validation import InvalidInputError


def check_geometric_step(eta, beta, name: str, method: str) -> None:
    """``eta beta <= 1``: the weight ``1 - eta beta`` of ``pi_t`` in the geometric mixture
    ``pi_t^{1 - eta beta} rho^{eta beta}`` of a mirror step must be >= 0 (unchecked when traced)."""
    if not (checks.traced(eta) or checks.traced(beta)) and eta * beta > 1:
        raise InvalidInputError(f"{name}: {method} needs {name} * beta <= 1, got {eta * beta:g}")


FORMS = ("mirror", "loss")


def check_form(form: str, loss_steps, loss_learning_rate):
    """Validate the ``form`` of a mirror-descent algorithm and its inner optimizer."""
    checks.check_choice(form, "form", FORMS)
    return checks.positive_int(loss_steps, "loss_steps"), checks.positive(loss_learning_rate,
                                                              "loss_learning_rate")


def minimize_logits(loss, logits, steps, learning_rate):
    """``steps`` gradient steps on ``loss(logits)`` from ``logits`` (the parametric form)."""
    grad = jax.grad(loss)
    return jax.lax.fori_loop(0, steps, lambda _, t: t - learning_rate * grad(t), logits)


def inpo_loss_step(logits, anchor, game, key, mode, batch_size, eta, beta, steps, lr,
                   opponent=None):
    """INPO's parametric step: minimize its square loss over the logits.

    With ``R = eta beta anchor + (1 - eta beta) log pi_t``, INPO's loss
    (:func:`nlhf_theory.losses.inpo_loss`) is the IPO loss with reference ``R`` and KL
    coefficient ``1 / eta``; its tabular minimizer over pairs drawn from ``opponent`` (default
    ``pi_t``) is exactly the mirror step ``log pi_{t+1} = R + eta P pi_opp + c`` (INPO with
    ``pi_opp = pi_t``; Nash-MD with ``pi_opp = pi_mix``).
    """
    reference = eta * beta * anchor + (1.0 - eta * beta) * logits
    opponent = logits if opponent is None else opponent
    behaviour = (opponent, opponent)

    def loss(theta):
        return pair_loss(losses.ipo_loss, theta, game, behaviour, key, mode, batch_size,
                         1.0 / eta, log_ref=reference)

    return minimize_logits(loss, logits, steps, lr)


def _md_algorithm(step_fn, target, mode, comparisons, pairs):
    mode = checks.check_mode(mode)
    comparisons = checks.positive_int(comparisons, "comparisons_per_response")
    pairs = checks.positive_int(pairs, "pairs_per_prompt")

    def init(game, key=None):
        return reference_state(game)

    def update(state, game, key):
        logits = step_fn(state, game, key, mode, comparisons, pairs)
        return state._replace(logits=log_softmax(logits), step=state.step + 1)

    return Algorithm(init, update, policy_from_logits, target)


def nash_md(beta, learning_rate=None, *, mixture_learning_rate=None, form: str = "mirror",
            loss_steps: int = 200, loss_learning_rate: float = 0.5, mode: str = "exact",
            comparisons_per_response: int = 16, pairs_per_prompt: int = 16) -> Algorithm:
    """Nash-MD (Munos et al. 2023), idealized tabular form, or the EGPO authors' gradient form.

    ``pi_mix ∝ pi_t^{1 - eta_mix beta} pi_ref^{eta_mix beta}`` (geometric mixture with the
    reference), then ``pi_{t+1} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta} exp(eta P(y > pi_mix))``,
    with ``beta`` = ``beta``, ``eta`` = ``learning_rate`` (None: the schedule ``eta_t`` below),
    ``eta_mix`` = ``mixture_learning_rate`` and ``P(y > pi) = (P pi)(y)`` the win rates, exact
    or from ``comparisons_per_response`` oracle comparisons per response.
    With ``eta_mix = eta`` (the default) this is Munos et al.'s
    ``pi_{t+1} ∝ pi_mix exp(eta_t P(y > pi_mix))``; with their step
    ``eta_t = 2 / (beta (t + 2))``, ``KL(pi*_beta || pi_T) <= 8 / (beta^2 (T + 1))`` (Thm. 1),
    last-iterate convergence to the regularized equilibrium ``pi*_beta``. A constant step has
    the biased fixed point ``pi ∝ pi_ref exp(P pi_mix / beta)``.

    Notation: Munos et al.'s ``tau`` is ``beta``, ``mu`` is ``pi_ref``.

    ``form="gradient"`` is the parametric Nash-MD of the EGPO authors' tabular simulation: ONE
    gradient step ``theta_{t+1} = theta_t - learning_rate grad L(theta_t; pi_mix)`` on the
    uniform-pair online IPO loss against ``pi_mix``
    (:func:`~nlhf_theory.data.win_rate_pair_loss`; sampled: ``pairs_per_prompt``
    triples ``y, y' ~ Unif``, ``y'' ~ pi_mix`` per prompt, oracle labels). On ``Y`` responses
    it equals the mirror form with ``eta = 4 learning_rate / (beta Y)`` [derived]. The authors
    take the mixture weight ``true_lr * beta`` with ``true_lr = 2 lr / (beta Y)``: their runs
    are ``form="gradient", learning_rate=lr, mixture_learning_rate=2 lr / (beta Y)`` (the
    mixture step is half the step of the update, ``eta_mix = eta / 2``).

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) with Thm. 1's
    schedule (``learning_rate`` and ``mixture_learning_rate`` both None), else
    ``"stationary_point"``: the biased fixed point of the mixture weight ``eta_mix beta``
    (``eta_mix`` = ``mixture_learning_rate``, or ``learning_rate`` when that is None).

    Args:
      beta: KL coefficient > 0.
      learning_rate: constant step ``eta`` with ``eta * beta <= 1`` (mirror and loss forms), or
        the gradient step on the logits (``form="gradient"``, required there); default None:
        Thm. 1's schedule ``eta_t = 2 / (beta (t + 2))``.
      mixture_learning_rate: ``eta_mix`` with ``eta_mix * beta <= 1``; default None: the same
        as ``learning_rate`` (or as the schedule).
      form: ``"mirror"`` (default, closed form), ``"loss"`` (``loss_steps`` gradient steps of
        size ``loss_learning_rate`` on the square loss whose minimizer is the mirror step:
        INPO's loss with pairs drawn from ``pi_mix``, see :func:`inpo_loss_step`) or
        ``"gradient"`` (above).
      loss_steps: inner gradient steps per iteration of the loss form, >= 1 (default 200).
      loss_learning_rate: their step size > 0 (default 0.5).
      mode: ``"exact"`` (default) or ``"sampled"`` (mirror: win rates from oracle comparisons;
        loss, gradient: pairs per prompt).
      comparisons_per_response: oracle comparisons per response for a sampled win rate
        (sampled mirror form), >= 1 (default 16).
      pairs_per_prompt: pairs per prompt of a sampled loss (sampled loss and gradient forms),
        >= 1 (default 16).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      >>> import jax, nlhf_theory as nt
      >>> nt.algorithms.nash_md(beta=0.1).target.kind
      'regularized_nash'
      >>> alg = nt.algorithms.nash_md(beta=0.1, learning_rate=1.0)
      >>> alg.target.kind
      'stationary_point'
      >>> game = nt.make_game("comal_cyclic")
      >>> state = alg.update(alg.init(game, jax.random.key(0)), game, jax.random.key(1))
      >>> int(state.step)
      1

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 6 (Nash-MD) and Thm. 1; code
      ``zhourunlong/EGPO``, ``simulations/loss_funcs.py``, ``nash_md`` and ``nash_md_sample``
      (gradient form; ``true_lr`` in ``simulations/main.py``).
    """
    beta = checks.positive(beta, "beta")
    forms = FORMS + ("gradient",)
    checks.check_choice(form, "form", forms)
    if learning_rate is not None:
        eta = checks.positive(learning_rate, "learning_rate")
        if form != "gradient":
            check_geometric_step(eta, beta, "learning_rate", "Nash-MD")
    elif form == "gradient":
        raise InvalidInputError("learning_rate: form='gradient' needs a constant learning rate")
    if mixture_learning_rate is not None:
        eta_mix = checks.positive(mixture_learning_rate, "mixture_learning_rate")
        check_geometric_step(eta_mix, beta, "mixture_learning_rate", "Nash-MD")

    inner = check_form("mirror" if form == "gradient" else form, loss_steps,
                       loss_learning_rate)

    def step(state, game, key, mode, comparisons, pairs):
        t = state.step.astype(state.logits.dtype)
        eta_t = 2.0 / (beta * (t + 2.0)) if learning_rate is None else eta
        mix_t = eta_t if mixture_learning_rate is None else eta_mix
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        mix = log_softmax((1.0 - mix_t * beta) * state.logits + mix_t * beta * log_ref)
        if form == "gradient":
            grad = jax.grad(win_rate_pair_loss)(state.logits, game, mix, key, mode, pairs,
                                                beta)
            return state.logits - eta * grad
        if form == "loss":
            return inpo_loss_step(state.logits, log_ref, game, key, mode, pairs, eta_t,
                                  beta, *inner, opponent=mix)
        return ((1.0 - eta_t * beta) * state.logits + eta_t * beta * log_ref
                + eta_t * win_rates(game, mix, key, mode, comparisons))

    if learning_rate is None and mixture_learning_rate is None:
        target = regularized_nash_target(beta)
    else:  # a constant mixture step: the biased fixed point of mixture eta_mix beta
        target = stationary_target(beta, (eta if mixture_learning_rate is None else eta_mix)
                                   * beta)
    return _md_algorithm(step, target, mode, comparisons_per_response, pairs_per_prompt)


def inpo(beta, learning_rate=None, *, form: str = "mirror", loss_steps: int = 200,
         loss_learning_rate: float = 0.5, mode: str = "exact",
         comparisons_per_response: int = 16, pairs_per_prompt: int = 16) -> Algorithm:
    """INPO's online mirror descent (Zhang et al. 2024), idealized tabular form.

    ``pi_{t+1} ∝ pi_t^{1 - eta beta} pi_ref^{eta beta} exp(eta P(y > pi_t))``, with ``eta`` =
    ``learning_rate``, ``beta`` = ``beta`` (INPO's ``tau``) and ``P(y > pi_t)`` the iterate's
    win rates (exact, or from ``comparisons_per_response`` oracle comparisons): mirror descent
    on the KL-regularized game, converging to ``pi*_beta``. Its square loss is
    :func:`nlhf_theory.losses.inpo_loss`.

    ``form="mirror"`` applies the update in closed form; ``form="loss"`` is the parametric
    (softmax-logit) algorithm the paper runs: each iteration takes ``loss_steps`` gradient
    steps on INPO's square loss over pairs ``y, y' ~ pi_t`` (exact expectation or sampled). Its
    minimizer is the mirror step, so the two agree as the inner optimization converges.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta`` of the given ``beta``)
    for every step and form.

    Args:
      beta: KL coefficient > 0.
      learning_rate: step ``eta`` > 0 with ``eta * beta <= 1`` (default None:
        ``eta* = beta / (beta^2 + 1/4)``, the step that makes the linearized map the strongest
        contraction on every game, :func:`~nlhf_theory.algorithms.mirror_step`).
      form: ``"mirror"`` (default) or ``"loss"``.
      loss_steps, loss_learning_rate: gradient descent on the loss (``form="loss"``; defaults
        200 and 0.5).
      mode, comparisons_per_response, pairs_per_prompt: as in :func:`nash_md` (defaults
        ``"exact"``, 16, 16).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      The last iterate reaches the target policy:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("comal_cyclic")
      >>> alg = nt.algorithms.inpo(beta=0.1, learning_rate=1.0)
      >>> final = jax.lax.fori_loop(0, 300, lambda t, s: alg.update(s, game, None),
      ...                           alg.init(game))
      >>> bool(np.abs(alg.policy(final) - alg.target.policy(game)).max() < 1e-6)
      True

    References:
      Zhang et al. 2024, arXiv:2407.00617, Sec. 4.
    """
    beta = checks.positive(beta, "beta")
    eta = mirror_step(beta) if learning_rate is None else checks.positive(learning_rate,
                                                                   "learning_rate")
    check_geometric_step(eta, beta, "learning_rate", "INPO")

    inner = check_form(form, loss_steps, loss_learning_rate)

    def step(state, game, key, mode, comparisons, pairs):
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        if form == "loss":
            return inpo_loss_step(state.logits, log_ref, game, key, mode, pairs, eta, beta,
                                  *inner)
        return ((1.0 - eta * beta) * state.logits + eta * beta * log_ref
                + eta * win_rates(game, state.logits, key, mode, comparisons))

    return _md_algorithm(step, regularized_nash_target(beta), mode, comparisons_per_response,
                         pairs_per_prompt)


def sppo(learning_rate=None, *, form: str = "mirror", loss_steps: int = 200,
         loss_learning_rate: float = 0.5, mode: str = "exact",
         comparisons_per_response: int = 16) -> Algorithm:
    """SPPO's multiplicative weights (Wu et al. 2024): ``pi_{t+1} ∝ pi_t exp(eta P(y > pi_t))``.

    ``eta`` = ``learning_rate`` (None: the anytime-Hedge schedule ``eta_t``), ``P(y > pi_t)``
    the iterate's win rates (exact, or from ``comparisons_per_response`` oracle comparisons).
    No KL anchor: the average iterate approaches the maximal lottery, the last iterate cycles
    on intransitive games. Its square loss is :func:`nlhf_theory.losses.sppo_loss`.
    Notation: the SPPO code's ``beta`` is ``1 / eta``.

    ``form="loss"`` minimizes SPPO's square loss over responses ``y ~ pi_t`` (weights
    ``pi_t(y)`` in the exact mode) with ``loss_steps`` gradient steps; the loss replaces the
    normalizer ``log Z`` of the mirror step by ``eta / 2``, so the two forms agree up to
    ``O(eta^2)``.

    Target: ``alg.target.kind`` is ``"none"`` for every ``learning_rate``: the last iterate
    has no convergence claim (only the average iterate's, above).

    Args:
      learning_rate: step ``eta`` > 0 (default None: anytime Hedge, ``eta_t = sqrt(8 ln Y /
        t)`` at the ``t``-th update, whose regret over any horizon ``T`` is at most ``sqrt(2 T
        ln Y) + sqrt(ln Y / 8)`` (Cesa-Bianchi & Lugosi 2006, Thm. 2.3), so the average
        iterate's exploitability falls as ``sqrt(2 ln Y / T)``).
      form: ``"mirror"`` (default) or ``"loss"``.
      loss_steps, loss_learning_rate: gradient descent on the loss (``form="loss"``; defaults
        200 and 0.5).
      mode: ``"exact"`` (default) or ``"sampled"``.
      comparisons_per_response: oracle comparisons per response for a sampled win rate, >= 1
        (default 16).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState`.

    Example:
      On a cyclic game the last iterate drifts away from the maximal lottery:

      >>> import nlhf_theory as nt
      >>> nt.algorithms.sppo().target.kind
      'none'
      >>> df = nt.run("sppo", nt.make_game("comal_cyclic"), beta=0.1, steps=300,
      ...             learning_rate=1.0)
      >>> bool(df.exploitability.iloc[-1] > 10 * df.exploitability.iloc[0])
      True

    References:
      Wu et al. 2024, arXiv:2405.00675, Sec. 3.
    """
    constant = None if learning_rate is None else checks.positive(learning_rate, "learning_rate")
    inner = check_form(form, loss_steps, loss_learning_rate)

    def step(state, game, key, mode, comparisons, pairs):
        t = state.step.astype(state.logits.dtype) + 1.0
        eta = hedge_step(game.num_responses, t) if constant is None else constant
        wins = win_rates(game, state.logits, key, mode, comparisons)
        if form == "mirror":
            return state.logits + eta * wins
        weights = jnp.exp(state.logits)  # exact: E_{y ~ pi_t}; sampled: wins are estimates
        d0 = jnp.asarray(game.prompt_weights)

        def loss(theta):
            values = losses.sppo_loss(log_softmax(theta), state.logits, wins, eta)
            return jnp.sum(d0 * jnp.sum(weights * values, -1))

        return minimize_logits(loss, state.logits, *inner)

    return _md_algorithm(step, NO_TARGET, mode, comparisons_per_response, 1)


def dno(learning_rate=None, *, mode: str = "exact",
        comparisons_per_response: int = 16) -> Algorithm:
    """Direct Nash Optimization (Rosset et al. 2024), conceptual form.

    ``pi_{t+1} = argmax_pi E_pi[r_t] - eta KL(pi || pi_t)`` with the win-rate reward
    ``r_t(y) = P(y > pi_t)``, i.e. ``pi_{t+1} ∝ pi_t exp(r_t / eta)``: the same multiplicative
    weights as :func:`sppo` with step ``1 / eta`` (the practical DNO regresses this update with
    a contrastive loss on on-policy pairs; that is an implementation of the same step).
    Here ``eta`` = ``learning_rate`` and ``r_t`` is exact or estimated from
    ``comparisons_per_response`` oracle comparisons per response.

    Target: ``alg.target.kind`` is ``"none"``, as for :func:`sppo`, whatever ``learning_rate``.

    Args:
      learning_rate: the KL coefficient ``eta`` > 0 of each step (the step size is
        ``1 / eta``; default None: SPPO's anytime-Hedge steps, ``eta_t = 1 / sqrt(8 ln Y / t)``).
      mode: ``"exact"`` (default) or ``"sampled"``.
      comparisons_per_response: oracle comparisons per response for a sampled win rate, >= 1
        (default 16).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a
      :class:`~nlhf_theory.algorithms.PolicyState` (that of ``sppo(1 / learning_rate)``).

    Example:
      DNO with KL coefficient ``eta`` is SPPO with step ``1 / eta``:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("comal_cyclic")
      >>> a, b = nt.algorithms.dno(learning_rate=4.0), nt.algorithms.sppo(learning_rate=0.25)
      >>> sa, sb = (f.update(f.init(game), game, jax.random.key(0)) for f in (a, b))
      >>> bool(np.allclose(a.policy(sa), b.policy(sb)))
      True

    References:
      Rosset et al. 2024, arXiv:2404.03715, Alg. 1.
    """
    step = None if learning_rate is None else 1.0 / checks.positive(learning_rate, "learning_rate")
    return sppo(step, mode=mode, comparisons_per_response=comparisons_per_response)


class MagnetState(NamedTuple):
    """State of magnet/anchor methods (MPO, COMAL).

    Attributes:
      logits: (X, Y) log-probabilities of the iterate.
      magnet: (X, Y) log-probabilities of the current magnet (reference) policy.
      step: () int32 iteration counter.
    """

    logits: Any
    magnet: Any
    step: Any


#: ``L = max |P - 1/2|`` can be at most 1/2 for any preference matrix: the Lipschitz constant
#: (l1 to l-infinity) of the game's gradient, which the MMD step-size condition uses.
PAYOFF_LIPSCHITZ_BOUND = 0.5


def mmd_loss_step(logits, magnet, game, key, mode, batch_size, eta, beta, steps, lr):
    """MPO's parametric step: minimize the magnetic-mirror-descent proximal objective.

    ``sum_x d0(x) [KL(pi_theta || pi_t) + eta beta KL(pi_theta || rho) - eta <pi_theta, w>]``
    over the logits ``theta`` (Sokota et al. 2023, eq. (MMD): ``argmin eta (<F(z_t), z> +
    alpha psi(z)) + B_psi(z; z_t)`` with the negative entropy relative to the magnet ``rho``),
    where ``w = P(y > pi_t)`` are the exact or sampled win rates of :func:`win_rates`. The
    objective equals ``(1 + eta beta) KL(pi_theta || pi_mmd) + const`` with ``pi_mmd`` the
    closed-form step, so its minimizer is exactly the mirror step.
    """
    wins = jax.lax.stop_gradient(win_rates(game, logits, key, mode, batch_size))
    d0 = jnp.asarray(game.prompt_weights)

    def loss(theta):
        logp = log_softmax(theta)
        p = jnp.exp(logp)
        per_prompt = jnp.sum(p * losses.mmd_objective(logp, logits, magnet, wins, eta, beta), -1)
        return jnp.sum(d0 * per_prompt)

    return minimize_logits(loss, logits, steps, lr)


STEPS = ("inpo", "mmd")


def _anchored(beta, learning_rate, period, target, mode, comparisons, pairs, form, loss_steps,
              loss_learning_rate, step_rule: str = "inpo"):
    """Mirror descent regularized toward a magnet ``rho`` that is moved to the iterate every
    ``period`` steps (the magnet at step ``t`` is ``pi_t`` whenever ``t`` is a multiple of
    ``period``; initially ``pi_ref``).

    ``step_rule="inpo"`` (COMAL's inner loop): ``pi_{t+1} ∝ pi_t^{1 - eta beta} rho^{eta beta}
    exp(eta P(y > pi_t))``, needing ``eta beta <= 1``; its loss form is INPO's square loss toward
    the magnet (:func:`inpo_loss_step`). ``step_rule="mmd"`` (MPO): magnetic mirror descent
    ``pi_{t+1} ∝ (pi_t rho^{eta beta} exp(eta P(y > pi_t)))^{1 / (1 + eta beta)}``, defined for
    every ``eta > 0`` (the INPO step with ``eta / (1 + eta beta)``); its loss form is the MMD
    proximal objective (:func:`mmd_loss_step`). Arguments are validated by the callers' rules
    and here.
    """
    checks.check_choice(step_rule, "step_rule", STEPS)
    beta = checks.positive(beta, "beta")
    eta = checks.positive(learning_rate, "learning_rate")
    if step_rule == "inpo":
        check_geometric_step(eta, beta, "learning_rate", "COMAL's INPO step")
    period = checks.positive_int(period, "period")
    mode = checks.check_mode(mode)
    comparisons = checks.positive_int(comparisons, "comparisons_per_response")
    pairs = checks.positive_int(pairs, "pairs_per_prompt")
    inner = check_form(form, loss_steps, loss_learning_rate)

    def init(game, key=None):
        ref = reference_state(game)
        return MagnetState(ref.logits, ref.logits, ref.step)

    def update(state, game, key):
        if step_rule == "mmd" and form == "loss":
            logits = mmd_loss_step(state.logits, state.magnet, game, key, mode, comparisons, eta,
                                   beta, *inner)
        elif step_rule == "mmd":
            wins = win_rates(game, state.logits, key, mode, comparisons)
            logits = (state.logits + eta * beta * state.magnet + eta * wins) / (1.0 + eta * beta)
        elif form == "loss":
            logits = inpo_loss_step(state.logits, state.magnet, game, key, mode, pairs, eta,
                                    beta, *inner)
        else:
            logits = ((1.0 - eta * beta) * state.logits + eta * beta * state.magnet
                      + eta * win_rates(game, state.logits, key, mode, comparisons))
        logits = log_softmax(logits)
        step = state.step + 1
        magnet = jnp.where(step % period == 0, logits, state.magnet)
        return MagnetState(logits, magnet, step)

    return Algorithm(init, update, policy_from_logits, target)


def mpo(beta, learning_rate=None, period=None, *, form: str = "mirror",
        loss_steps: int = 200, loss_learning_rate: float = 0.5, mode: str = "exact",
        comparisons_per_response: int = 16) -> Algorithm:
    """Magnetic Preference Optimization (Wang et al. 2024): magnetic mirror descent, moving magnet.

    Each step is magnetic mirror descent (MMD) on the preference game with magnet ``rho``:

    ``pi_{t+1} ∝ (pi_t rho^{eta beta} exp(eta P(y > pi_t)))^{1 / (1 + eta beta)}``

    (``eta`` = ``learning_rate``, MMD's and MPO's step; ``beta`` = the magnet's KL coefficient,
    MMD's ``alpha``; ``P(y > pi_t)`` the win rates, exact or sampled). The magnet starts at
    ``pi_ref`` and is reset to the current policy every ``period`` steps: the inner game
    ``max_pi min_pi' P(pi > pi') - beta KL(pi || rho) + beta KL(pi' || rho)`` has its equilibrium
    ``pi*_rho`` as MMD's fixed point, and moving the magnet to (an approximation of) it is the
    proximal-point outer loop that drives the last iterate to the unregularized equilibrium
    (maximal lottery).

    **Step size.** MMD converges linearly to ``pi*_rho``, ``KL(pi*_rho || pi_{t+1}) <=
    (1 + eta beta)^{-t} KL(pi*_rho || pi_1)``, when ``eta <= beta / L^2`` (Sokota et al. 2023,
    Sec. 3, linear-convergence theorem), ``L`` the Lipschitz constant of the game's gradient
    from l1 to l-infinity: ``L = max |P - 1/2| <= 1/2`` for a preference game (the update
    ignores the constant 1/2). Hence ``learning_rate <= 4 beta`` is required (the condition
    for every game); a game with smaller ``L`` admits the theory's linear rate up to
    ``beta / L^2``, which the check cannot know.

    **When the magnet reset is faithful to the theory.** The outer loop assumes the inner game
    is (nearly) solved when the magnet moves. With the bound above, ``period >=
    ceil(ln(1/eps) / ln(1 + eta beta))`` steps shrink ``KL(pi*_rho || pi)`` by the factor
    ``eps`` before each reset (e.g. ``eps = 1e-6``, ``beta = 0.1``, ``eta = 4 beta``: 353
    steps). Shorter periods run an inexact proximal point, outside the theory (they can still
    converge, often in fewer steps); ``period = 1`` is unregularized multiplicative weights
    with step ``eta / (1 + eta beta)``, whose ``KL(pi* || pi_t)`` never decreases on games
    with an interior equilibrium.

    **Versions.** Before this version the step was INPO's ``pi_t^{1 - eta beta} rho^{eta beta}
    exp(eta P pi_t)``, equal to the MMD step above only after reparametrizing ``eta_inpo = eta /
    (1 + eta beta)``; to reproduce an old run with ``learning_rate = e``, pass
    ``learning_rate = e / (1 - e beta)`` (admitted for ``e <= 4 beta / (1 + 4 beta^2)``).

    Target: ``alg.target.kind`` is ``"nash"`` (the maximal lottery) for every ``beta``,
    ``learning_rate`` and ``period``: the proximal-point outer loop's limit (faithful to the
    theory when ``period`` is long enough, see above).

    Args:
      beta: magnet strength > 0 (the KL coefficient of each inner game).
      learning_rate: MMD's step ``eta``, ``0 < eta <= 4 beta`` (see above; default None:
        ``4 beta``, the largest step of the linear rate, :func:`magnetic_step`).
      period: steps between magnet resets, >= 1 (default None: ``ceil(ln 10 / ln(1 + eta
        beta))``, a 10-fold contraction toward ``pi*_rho`` per magnet, :func:`magnet_period`).
      form: ``"mirror"`` (default, closed-form step) or ``"loss"``: ``loss_steps`` steps of
        size ``loss_learning_rate`` on the logits minimizing the MMD proximal objective
        ``KL(pi || pi_t) + eta beta KL(pi || rho) - eta <pi, P(y > pi_t)>``
        (:func:`mmd_loss_step`), whose minimizer is the mirror step.
      loss_steps: gradient steps per iteration in the loss form (default 200).
      loss_learning_rate: their step size (default 0.5).
      mode: ``"exact"`` (default) or ``"sampled"`` (win rates from oracle comparisons).
      comparisons_per_response: comparisons per response in the sampled mode (default 16).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`MagnetState`.

    Example:
      >>> import jax, nlhf_theory as nt
      >>> alg = nt.algorithms.mpo(beta=0.1, learning_rate=0.4, period=353)
      >>> game = nt.make_game("comal_cyclic")
      >>> state = alg.update(alg.init(game, jax.random.key(0)), game, jax.random.key(1))

    Interpretation: the paper's practical LLM algorithm optimizes MMD's objective per token by
    policy gradient (REINFORCE advantages, KL to the magnet and to the previous policy); its
    exact loss equations were not available to us, so ``form="loss"`` minimizes the tabular
    MMD proximal objective exactly in expectation over ``y ~ pi_theta`` (the win rates are
    exact or sampled), which is the objective that practical algorithm estimates.

    References:
      Wang et al. 2024, arXiv:2410.16714 (ICLR 2025), Sec. 3-4 (MPO: MMD steps, magnet moved
      to the current policy periodically); Sokota et al. 2023, arXiv:2206.05825, Sec. 3
      (MMD update, closed form for the negative entropy; linear rate under ``eta <= alpha /
      L^2``); the MMD authors' code ``ssokota/mmd``, ``mmd/nfg/learners.py``, ``MMD.update``
      (the same closed form; there the magnet moves geometrically every step).
    """
    beta = checks.positive(beta, "beta")
    eta = magnetic_step(beta) if learning_rate is None else checks.positive(learning_rate,
                                                                     "learning_rate")
    if not (checks.traced(eta) or checks.traced(beta)):
        bound = beta / PAYOFF_LIPSCHITZ_BOUND**2
        if eta > bound * (1 + 1e-12):
            raise InvalidInputError(
                f"learning_rate: MPO's MMD step needs learning_rate <= beta / L^2 = 4 beta = "
                f"{bound:g} (L = max |P - 1/2| <= 1/2; Sokota et al. 2023, Sec. 3), got "
                f"{eta:g}")
    if period is None:
        period = magnet_period(checks.concrete(beta, "beta"), checks.concrete(eta, "learning_rate"))
    return _anchored(beta, eta, period, nash_target(), mode, comparisons_per_response, 1, form,
                     loss_steps, loss_learning_rate, step_rule="mmd")


def comal(beta, learning_rate=None, period=None, *, form: str = "mirror",
          loss_steps: int = 200, loss_learning_rate: float = 0.5, mode: str = "exact",
          comparisons_per_response: int = 16, pairs_per_prompt: int = 16) -> Algorithm:
    """COMAL (Liu et al. 2024): conceptual proximal point with an INPO inner loop.

    Inner step: ``pi_{t+1} ∝ pi_t^{1 - eta beta} rho^{eta beta} exp(eta P(y > pi_t))``, with
    ``eta`` = ``learning_rate``, ``beta`` = ``beta``, ``rho`` the anchor (``pi_ref`` at
    first) and ``P(y > pi_t)`` the win rates (exact or sampled); every ``period`` steps the
    anchor moves to the iterate, ``rho <- pi_t``. Each outer iteration thus solves the
    regularized game centred at the current anchor with ``period`` INPO steps (linear
    convergence, so the inner solution is accurate when ``period * eta * beta`` is large) and
    moves the anchor to the result. The anchor sequence satisfies ``KL(pi* || pi_{k+1}) <=
    KL(pi* || pi_k)`` and converges to the unregularized equilibrium in the last iterate.
    ``form="loss"`` minimizes INPO's square loss (centred at the anchor) with ``loss_steps``
    gradient steps of size ``loss_learning_rate`` per inner step, as the COMAL code does.

    Target: ``alg.target.kind`` is ``"nash"`` (the maximal lottery) whatever ``beta``,
    ``learning_rate`` and ``period``.

    Args:
      beta: KL coefficient > 0 of each inner game (toward the anchor).
      learning_rate: INPO step ``eta`` > 0 with ``eta * beta <= 1`` (default None: ``eta* =
        beta / (beta^2 + 1/4)``, :func:`~nlhf_theory.algorithms.mirror_step`).
      period: inner steps per anchor, >= 1 (default None: ``ceil(2 ln 10 / (eta beta))``, a
        10-fold contraction of the inner bound per anchor,
        :func:`~nlhf_theory.algorithms.anchor_period`).
      form, loss_steps, loss_learning_rate, mode, comparisons_per_response, pairs_per_prompt:
        as in :func:`inpo`, with its defaults (the loss form's square loss is centred at the
        anchor).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`MagnetState`
      (``magnet`` holds the anchor).

    Example:
      >>> import jax, nlhf_theory as nt
      >>> alg = nt.algorithms.comal(beta=0.1, period=2)
      >>> game = nt.make_game("comal_cyclic")
      >>> state = alg.init(game)
      >>> for t in range(2):
      ...     state = alg.update(state, game, jax.random.key(t))
      >>> bool((state.magnet == state.logits).all()), alg.target.kind
      (True, 'nash')

    References:
      Liu et al. 2024, arXiv:2410.23223, Alg. 1 (COMAL) and Sec. 4.
    """
    beta = checks.positive(beta, "beta")
    eta = mirror_step(beta) if learning_rate is None else checks.positive(learning_rate,
                                                                   "learning_rate")
    if period is None:
        period = anchor_period(checks.concrete(beta, "beta"), checks.concrete(eta, "learning_rate"))
    return _anchored(beta, eta, period, nash_target(), mode, comparisons_per_response,
                     pairs_per_prompt, form, loss_steps, loss_learning_rate)
