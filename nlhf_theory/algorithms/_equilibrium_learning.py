"""Equilibrium learning from comparisons (Ye et al. 2024): greedy, pessimistic and optimistic.

The learner keeps tabular comparison statistics per prompt: ``N[x, a, b] = N[x, b, a]``, the
number of comparisons of the pair ``{a, b}``, and ``W[x, a, b]``, the number won by ``a``
(so ``W + W^T = N``). In the exact mode these are expected counts (a batch of ``m``
comparisons adds ``m Pr(pair)`` and ``m Pr(pair) P``), in the sampled mode Bernoulli draws
from the oracle. The maximum-likelihood preference is ``P_hat = W / N`` (1/2 where ``N = 0``);
the estimates and fits are those of :mod:`nlhf_theory.estimation`.
The equilibria of the estimated games are computed by the certified float64 solvers of
:mod:`nlhf_theory.equilibria` through ``jax.pure_callback``, so these algorithms run inside the
jit-compiled, vmapped :func:`~nlhf_theory.algorithms.run` driver like the others.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nlhf_theory import validation as checks
from nlhf_theory.algorithms import _pessimism
from nlhf_theory.algorithms._base import Algorithm
from nlhf_theory.algorithms._targets import regularized_nash_target
from nlhf_theory.algorithms._uncertainty import (
    linear_enhancer,
    linear_proxy_enhancer,
    tabular_enhancer,
    tabular_proxy_enhancer,
)
from nlhf_theory.data import check_dataset, pair_weights, sample_dataset
from nlhf_theory.equilibria import kl_game_max_policy
from nlhf_theory.estimation import check_features, dataset_counts, estimate, fit_linear_preference
from nlhf_theory.validation import InvalidInputError

ENHANCERS = ("uncertainty", "uncertainty_proxy", "self_play", "uniform", "reference",
             "best_of_n")


class CountState(NamedTuple):
    """State of equilibrium learning (:func:`greedy_mle_nash`, :func:`pessimistic_nlhf`,
    :func:`optimistic_nlhf`): comparison statistics and the current (main-agent) policy.

    Attributes:
      wins: (X, Y, Y) ``W[x, a, b]``, comparisons of ``{a, b}`` won by ``a``.
      counts: (X, Y, Y) ``N[x, a, b]``, comparisons of ``{a, b}`` (symmetric).
      policy: (X, Y) the learner's current policy.
      step: () int32 round counter.
    """

    wins: Any
    counts: Any
    policy: Any
    step: Any


# Data ---------------------------------------------------------------------------------------
def add_comparisons(wins, counts, game, first, second, mass, key, mode):
    """Add ``mass`` comparisons per prompt of ``a ~ first(. | x)`` against ``b ~ second``.

    Exact mode: expected counts (``mass d0(x) first(a) second(b)`` comparisons of which a
    fraction ``P[x, a, b]`` are won by ``a``). Sampled mode: ``mass`` comparisons in total
    with ``x ~ d0``, and oracle labels.
    """
    if mode == "exact":
        pair = mass * jnp.asarray(game.prompt_weights)[:, None, None] * pair_weights(first, second)
        won = pair * jnp.asarray(game.P)
        return wins + won + jnp.swapaxes(pair - won, 1, 2), counts + pair + jnp.swapaxes(pair, 1, 2)
    x, a, b, label = sample_dataset(game, key, mass, first, opponent=second)
    label = label.astype(wins.dtype)
    wins = wins.at[x, a, b].add(label).at[x, b, a].add(1.0 - label)
    counts = counts.at[x, a, b].add(1.0).at[x, b, a].add(1.0)
    return wins, counts


# Solvers through callbacks ------------------------------------------------------------------
def _kl_game_host(Q, log_ref, beta):
    Q = np.asarray(Q, dtype=np.float64)
    log_ref = np.asarray(log_ref, dtype=np.float64)
    return kl_game_max_policy(Q, log_ref, float(beta))


def max_player_policy(Q, log_ref, beta):
    """The max player's equilibrium policy of the KL game with payoff ``Q`` (jax-callable).

    Runs the certified float64 solver of :func:`nlhf_theory.solve_kl_game` on the host; for a
    skew ``Q = P`` it is the regularized Nash equilibrium.
    """
    dtype = np.dtype(log_ref.dtype)
    out = jax.ShapeDtypeStruct(log_ref.shape, dtype)
    return jax.pure_callback(lambda q, ref: _kl_game_host(q, ref, beta).astype(dtype),
                             out, Q, log_ref, vmap_method="sequential")


# Algorithms -------------------------------------------------------------------------------
def _offline_counts(game, key, mode, num_pairs, behaviour, dataset):
    shape = (game.num_prompts, game.num_responses, game.num_responses)
    dtype = jnp.asarray(game.P).dtype
    if dataset is not None:
        data = check_dataset(dataset, game.num_prompts, game.num_responses)
        return dataset_counts(data, game.num_prompts, game.num_responses, dtype)
    mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour, dtype)
    zeros = jnp.zeros(shape, dtype)
    if mode == "exact":
        return add_comparisons(zeros, zeros, game, mu, mu, float(num_pairs), key, "exact")
    data = sample_dataset(game, key, num_pairs, mu)
    return dataset_counts(data, game.num_prompts, game.num_responses, dtype)


def _one_shot(payoff_fn, beta, mode, num_pairs, behaviour, dataset):
    beta = checks.positive(beta, "beta")
    mode = checks.check_mode(mode)
    num_pairs = checks.positive_int(num_pairs, "num_pairs")

    def init(game, key):
        wins, counts = _offline_counts(game, key, mode, num_pairs, behaviour, dataset)
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        policy = max_player_policy(payoff_fn(wins, counts, game), log_ref, beta)
        return CountState(wins, counts, policy, jnp.zeros((), jnp.int32))

    def update(state, game, key):  # the estimate uses all the data at once
        return state._replace(step=state.step + 1)

    return Algorithm(init, update, lambda state: state.policy, regularized_nash_target(beta))


def greedy_mle_nash(beta, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None,
                    prior: float = 0.0, features=None, link: str = "logistic",
                    ridge: float = 1.0) -> Algorithm:
    """Greedy equilibrium learning: the regularized equilibrium of the MLE preference.

    ``pi_hat = NE_beta(P_hat)`` with ``P_hat = W / N`` from comparisons drawn by ``mu``
    (exact mode: expected counts of ``num_pairs`` comparisons, i.e. ``P_hat = P`` wherever
    ``mu`` covers the pair). The baseline against which pessimism is measured. Symbols:
    ``beta`` = ``beta``, ``n`` = ``num_pairs``, ``mu`` = ``behaviour``; ``NE_beta(Q)`` is the
    max player's equilibrium of the KL game with payoff ``Q``, computed once at ``init``
    (``update`` only counts the steps).

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta`` of the true
    preference) for every data size, model and prior.

    Args:
      beta: KL coefficient > 0 (Ye et al.'s ``1 / eta``).
      mode: ``"exact"`` (default, expected counts) or ``"sampled"``.
      num_pairs: number of comparisons n >= 1 (default 1000).
      behaviour: (X, Y) data policy ``mu`` (default None: ``pi_ref``).
      dataset: a :class:`~nlhf_theory.algorithms.Dataset` instead of drawing one (default
        None).
      prior: symmetric Beta pseudo-count >= 0 added to every pair (default 0.0: the MLE;
        tabular model).
      features: (X, Y, Y, d) antisymmetric features of a linear preference model
        ``link(theta . psi)`` fitted by :func:`~nlhf_theory.estimation.fit_linear_preference`
        (logistic regression); default None: the tabular model.
      link: ``"logistic"`` (default) or ``"identity"`` (linear model).
      ridge: ridge ``lambda`` > 0 of the linear fit (default 1.0).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`CountState`.

    Example:
      Expected counts with full coverage give ``P_hat = P``, hence the target itself:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("random_skew", num_responses=4, seed=0)
      >>> alg = nt.algorithms.greedy_mle_nash(beta=0.1)
      >>> pi_hat = alg.policy(alg.init(game, jax.random.key(0)))
      >>> bool(np.abs(pi_hat - alg.target.policy(game)).max() < 1e-6)
      True

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 4 (the MLE and the equilibrium oracle).
    """
    prior = checks.nonnegative(prior, "prior")
    psi, ridge = check_features(features, link, ridge)
    return _one_shot(lambda w, n, game: estimate(w, n, psi, link, ridge, prior)[0], beta, mode,
                     num_pairs, behaviour, dataset)


def pessimistic_nlhf(beta, *, bonus: str = "auto", confidence: float = 1.0,
                     delta: float = 0.05, tolerance: float = 1e-9, norm_bound: float = 1.0,
                     mode="exact", num_pairs=1000, behaviour=None, dataset=None, features=None,
                     link: str = "logistic", ridge: float = 1.0) -> Algorithm:
    """Pessimistic equilibrium learning (Ye et al. 2024, Alg. 1): the version-space max-min.

    ``pi_hat = argmax_{pi1} min_{pi2} min_{P in C} E_x[P(x, pi1, pi2) - beta KL(pi1 || pi_ref)
    + beta KL(pi2 || pi_ref)]``, the minimum over the preference taken jointly with the
    opponent (so every candidate respects ``P + P^T = 1`` and self-play is not penalized),
    computed on the host by :func:`nlhf_theory.algorithms._pessimism.pessimistic_policy` at
    ``init`` (``beta`` = ``beta``; the radius below is multiplied by ``c`` = ``confidence``).

    Version space ``C`` (radius from Hsu, Kakade & Zhang's tail bound, level ``1 - delta``):

    * tabular (no ``features``): ``P = 1/2 + theta`` per pair ``a < b``,
      ``sum_{x, a<b} N (theta - theta_hat)^2 <= r^2`` and ``P`` in [0, 1] (pairs never
      compared: the box only), ``r = (1/2) sqrt(d + 2 sqrt(d log(1/delta)) + 2 log(1/delta))``,
      ``d`` the number of compared pairs. The minimum over ``C`` for a pair of policies is exact.
    * identity link (``P = 1/2 + theta . psi``): ``||theta - theta_hat||_Sigma <= r`` with
      ``Sigma = lambda I + sum_i psi_i psi_i^T`` and ``r`` as above (``d`` = feature dimension)
      plus the ridge bias ``sqrt(lambda) norm_bound``; the pair minimum
      ``1/2 + theta_hat . Psi - r ||Psi||_{Sigma^-1}`` (``Psi = E_x psi(x, pi1, pi2)``) is exact.
    * logistic link: the ellipsoid ``||theta - theta_hat||_H <= rho`` in the Hessian norm of
      the fit, ``rho`` the smallest radius with ``rho exp(-rho m) > r_H`` (``r_H`` the
      noise radius in that norm plus the ridge bias, ``m = max_i ||psi_i||_{H^-1}``; a
      self-concordance localization, so ``kappa = exp(-rho m)`` is close to 1 with enough
      data), else ``r / kappa`` with the global
      ``kappa = sigma'(max ||psi|| max(S, ||theta_hat||))`` (``S`` = ``norm_bound``); the
      pair value bounded pair by pair with the orientation of each pair
      (``sigma(z_hat -+ rho ||psi||_{H^-1})``): valid, exact at self-play, looser than the
      joint minimum.

    ``bonus``: ``"joint"``: the max-min solved by cutting planes to a certified outer gap
    ``<= tolerance`` (the upper bound is valid whatever the inner solver returns), the inner
    minimum over the opponent by multi-start DC iterations (global in every case checked by
    the branch-and-bound certificate ``_pessimism.certify_inner``, one prompt; not certified
    in general); ``"vertex"``: a valid surrogate (each pure opponent gets its own worst case:
    the secant of the concave pair minimum), solved exactly;
    ``"auto"`` (default): ``"joint"`` up to 6 responses, ``"vertex"`` above;
    ``"entrywise"``: the former bound, the max player of the KL game with the entrywise lower
    bound ``P_low`` (tabular Hoeffding ``P_hat - c sqrt(log(2 X Y^2 / delta) / (2 N))``;
    identity link ``P_hat - c r_n ||psi||_{Sigma^-1}``; logistic the valid
    ``sigma(z_hat - c rho ||psi||_{Sigma^-1})``), which penalizes both orientations of every
    pair (``P_low + P_low^T < 1``). In the exact mode (expected counts) ``N`` is used as if
    observed.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta`` of the true
    preference) whatever the bonus, confidence and data: pessimism changes the estimate,
    not what it estimates.

    Args:
      beta: KL coefficient > 0 (Ye et al.'s ``1 / eta``).
      bonus: ``"auto"`` (default), ``"joint"``, ``"vertex"`` or ``"entrywise"``.
      confidence: multiplier ``c`` >= 0 of the radius (default 1.0: level ``1 - delta``).
      delta: failure probability in (0, 1) (default 0.05).
      tolerance: certified gap of the max-min, > 0 (default 1e-9).
      norm_bound: assumed ``||theta*||_2 <= S`` of a linear model (ridge bias), >= 0
        (default 1.0).
      mode, num_pairs, behaviour, dataset, features, link, ridge: as in
        :func:`greedy_mle_nash`, with the same defaults.

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`CountState`;
      its policy (set at ``init``; ``update`` only counts the steps) is ``pi_hat``.

    Example:
      >>> import nlhf_theory as nt
      >>> game = nt.make_game("random_skew", num_responses=4, seed=0)
      >>> frame = nt.run("pessimistic_nlhf", game, beta=0.1, steps=1, num_pairs=10**6)
      >>> bool(frame.suboptimality.iloc[-1] < 1e-3)
      True

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 1 (version space and max-min) and Thm. 1;
      Hsu, Kakade & Zhang 2012, arXiv:1110.2842, Thm. 1 (radius). The tabular and linear
      version spaces and the ``"vertex"`` and ``"entrywise"`` bounds are this library's
      instantiations of Alg. 1, not the paper's.
    """
    if bonus not in ("auto",) + _pessimism.BONUSES:
        raise InvalidInputError(
            f"bonus: must be one of {('auto',) + _pessimism.BONUSES}, got {bonus!r}")
    beta = checks.positive(beta, "beta")
    confidence = checks.nonnegative(confidence, "confidence")
    delta = checks.unit_interval(delta, "delta")
    if not checks.traced(delta) and not 0.0 < delta < 1.0:
        raise InvalidInputError(f"delta: must lie in (0, 1), got {delta!r}")
    tolerance = float(checks.positive(tolerance, "tolerance"))
    norm_bound = checks.nonnegative(norm_bound, "norm_bound")
    mode = checks.check_mode(mode)
    num_pairs = checks.positive_int(num_pairs, "num_pairs")
    psi, ridge = check_features(features, link, ridge)

    def init(game, key):
        wins, counts = _offline_counts(game, key, mode, num_pairs, behaviour, dataset)
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        d0 = jnp.asarray(game.prompt_weights, log_ref.dtype)
        kind = bonus if bonus != "auto" else (
            "joint" if game.num_responses <= _pessimism.MAX_EXACT_RESPONSES else "vertex")
        fit = () if psi is None else tuple(
            fit_linear_preference(wins, counts, psi, link, ridge)[1:3])
        hyper = jnp.asarray([confidence, delta, norm_bound], log_ref.dtype)

        def host(w, n, ref, weights, hp, *fitted):
            c, dl, s = (float(v) for v in np.asarray(hp))
            theta, design = (np.asarray(fitted[0]), np.asarray(fitted[1])) if fitted else (
                None, None)
            res = _pessimism.pessimistic_policy(
                np.asarray(w), np.asarray(n), np.asarray(ref, np.float64),
                np.asarray(weights, np.float64), float(beta), bonus=kind, confidence=c,
                delta=dl, features=psi, theta_hat=theta, design=design, link=link,
                ridge=ridge, norm_bound=s, tol=tolerance)
            return res.policy.astype(np.dtype(log_ref.dtype))

        out = jax.ShapeDtypeStruct(log_ref.shape, log_ref.dtype)
        policy = jax.pure_callback(host, out, wins, counts, log_ref, d0, hyper, *fit,
                                   vmap_method="sequential")
        return CountState(wins, counts, policy, jnp.zeros((), jnp.int32))

    def update(state, game, key):  # the estimate uses all the data at once
        return state._replace(step=state.step + 1)

    return Algorithm(init, update, lambda state: state.policy, regularized_nash_target(beta))


def optimistic_nlhf(beta, *, comparisons_per_round: int = 100, enhancer: str = "uncertainty",
                    regularization: float = 1.0, parameter_bound: float = 1.0,
                    num_candidates: int = 4, mode="sampled", features=None,
                    link: str = "logistic", ridge: float = 1.0):
    """Optimistic equilibrium learning (Ye et al. 2024, Alg. 2): main agent and enhancer.

    Each round (one ``update``): fit ``P_hat_t`` on the comparisons so far, set the main agent
    ``pi1_t = NE_beta(P_hat_t)`` (``beta`` = ``beta``, ``NE_beta`` as in
    :func:`greedy_mle_nash`), choose the enhancer ``pi2_t``, and collect ``m`` =
    ``comparisons_per_round`` comparisons ``a ~ pi1_t`` against ``b ~ pi2_t``. Enhancers:

    * ``"uncertainty"`` (Alg. 2): ``pi2_t = argmax_{pi2} Gamma_t(lambda, pi1_t, pi2)`` with the
      information ratio ``Gamma_t = sup_{P in class} |E_{x ~ d0}[(P - P_hat_t)(x, pi1, pi2)]| /
      sqrt(lambda + (1/m) sum_{s<t, j<=m} (P - P_hat_t)^2(x_sj, a1_sj, a2_sj))``, ``lambda`` =
      ``regularization``, ``m`` = ``comparisons_per_round``. Tabular class (every skew ``P``
      in [0, 1]): the ratio is computed exactly
      (:func:`~nlhf_theory.algorithms._uncertainty.uncertainty_ratio`) and maximized exactly
      over joint pure responses (it is convex in ``pi2``;
      :func:`~nlhf_theory.algorithms._uncertainty.tabular_enhancer_indices`). With ``features``:
      ``Gamma = ||u||_{A^-1}``, ``u = E_{x ~ d0} sum_{a,b} pi1(a) pi2(b) link'(psi theta_hat)
      psi(x, a, b)`` the joint expected feature of the pair and ``A = (1/m) sum_i link'^2 psi_i
      psi_i^T + (lambda / (4 B^2)) I``, ``B`` = ``parameter_bound``: the exact sup over
      ``||theta - theta_hat|| <= 2 B`` for the identity link, and of the model linearized at
      ``theta_hat`` for the logistic link (an interpretation: the paper's class is not
      linearized); maximized over joint pure responses (enumerated up to ``Y ** X = 2**16``,
      coordinate ascent over prompts beyond:
      :func:`~nlhf_theory.algorithms._uncertainty.linear_enhancer`);
    * ``"uncertainty_proxy"``: the library's earlier proxy, per prompt the pure response
      maximizing ``sum_{a<c} w_ac(pi1, e_b)^2 / (regularization + N_ac / m)`` (tabular;
      it picks Alg. 2's maximizer on about 62% of random states with ``Y`` in 3..8), or
      ``||sum_a pi1(a) psi(x, a, b)||_{Sigma^-1}`` with the fit's design (features);
    * ``"self_play"`` (``pi2 = pi1``), ``"uniform"``, ``"reference"`` (``pi_ref``);
    * ``"best_of_n"``: the paper's practical enhancer: among ``num_candidates`` responses
      (exact mode: in expectation, the best-of-n distribution of ``pi1``) the one with the
      highest estimated win rate against ``pi1`` under ``P_hat``.

    The policy of the state is the main agent.

    Target: ``alg.target.kind`` is ``"regularized_nash"`` (``pi*_beta``) for every enhancer
    and round size.

    Args:
      beta: KL coefficient > 0.
      comparisons_per_round: comparisons per round m >= 1 (default 100).
      enhancer: one of :data:`ENHANCERS` (default ``"uncertainty"``).
      regularization: ``lambda`` > 0 of the information ratio (default 1).
      parameter_bound: ``B`` > 0, the class ``||theta - theta_hat|| <= 2 B`` of the linear
        ratio (default 1; features only).
      num_candidates: n of best-of-n (default 4).
      mode: ``"exact"`` (expected counts) or ``"sampled"`` (default).
      features, link, ridge: a linear preference model, as in :func:`greedy_mle_nash`
        (defaults None, ``"logistic"``, 1.0).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`CountState`
      (empty counts at ``init``, where the policy is ``pi_ref``); its policy is the main agent.

    Example:
      >>> import nlhf_theory as nt
      >>> game = nt.make_game("random_skew", num_responses=4, seed=0)
      >>> frame = nt.run("optimistic_nlhf", game, beta=0.1, steps=3,
      ...                comparisons_per_round=50)
      >>> len(frame)
      4

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2 (main agent and enhancer, information
      ratio) and Thm. 2; Sec. 6 (best-of-n enhancer). The linear form ``||u||_{A^-1}`` of
      the ratio (Cauchy-Schwarz, attained) and the proxy enhancers are this library's, not
      the paper's.
    """
    beta = checks.positive(beta, "beta")
    batch_size = checks.positive_int(comparisons_per_round, "comparisons_per_round")
    checks.check_choice(enhancer, "enhancer", ENHANCERS)
    lam = checks.positive(regularization, "regularization")
    bound = checks.positive(parameter_bound, "parameter_bound")
    num_candidates = checks.positive_int(num_candidates, "num_candidates")
    mode = checks.check_mode(mode)
    psi, ridge = check_features(features, link, ridge)

    def init(game, key=None):
        shape = (game.num_prompts, game.num_responses, game.num_responses)
        dtype = jnp.asarray(game.P).dtype
        return CountState(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                          jnp.asarray(game.pi_ref), jnp.zeros((), jnp.int32))

    def choose_enhancer(main, p_hat, fit, counts, game):
        Y = game.num_responses
        if enhancer == "self_play":
            return main
        if enhancer == "uniform":
            return jnp.full_like(main, 1.0 / Y)
        if enhancer == "reference":
            return jnp.asarray(game.pi_ref, main.dtype)
        if enhancer == "best_of_n":
            score = jnp.einsum("xab,xb->xa", p_hat, main)  # estimated win rate against pi1
            rank = jnp.argsort(jnp.argsort(score, -1), -1)  # 0 = worst
            order = jnp.argsort(score, -1)
            cdf_sorted = jnp.cumsum(jnp.take_along_axis(main, order, -1), -1)
            cdf = jnp.take_along_axis(cdf_sorted, rank, -1)
            below = cdf - main
            return cdf**num_candidates - below**num_candidates  # max of n draws from pi1
        if enhancer == "uncertainty_proxy":
            if fit is not None:
                return linear_proxy_enhancer(main, psi, fit.design)
            return tabular_proxy_enhancer(main, counts, lam, batch_size)
        d0 = jnp.asarray(game.prompt_weights, main.dtype)
        if fit is not None:
            return linear_enhancer(main, psi, fit.slope, counts, d0, lam, batch_size, bound)
        return tabular_enhancer(main, p_hat, counts, d0, lam, batch_size)

    def update(state, game, key):
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        p_hat, fit = estimate(state.wins, state.counts, psi, link, ridge)
        main = max_player_policy(p_hat, log_ref, beta)
        second = choose_enhancer(main, p_hat, fit, state.counts, game)
        wins, counts = add_comparisons(state.wins, state.counts, game, main, second,
                                       batch_size if mode == "sampled" else float(batch_size),
                                       key, mode)
        new_main = max_player_policy(estimate(wins, counts, psi, link, ridge)[0], log_ref, beta)
        return CountState(wins, counts, new_main, state.step + 1)

    return Algorithm(init, update, lambda state: state.policy, regularized_nash_target(beta))

