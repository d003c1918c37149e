"""Tests of nlhf_theory.metrics: closed forms against brute force and independent formulas.

Reference values are computed here with SciPy (``logsumexp``, ``rel_entr``, ``softmax``,
``minimize``) from the definitions in ``docs/conventions.md``, never with the metric under test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp, rel_entr, softmax

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory import testing as ntst


# Independent reference implementations (per prompt, then d0-averaged) --------------------------
def kl(p, q):
    return rel_entr(p, q).sum(-1)


def win(game, pi, pi2):
    return np.einsum("xi,xij,xj->x", pi, game.P, pi2)


def J(game, pi, pi2, beta):
    """J(pi, pi') per prompt, from its definition."""
    return win(game, pi, pi2) - beta * kl(pi, game.pi_ref) + beta * kl(pi2, game.pi_ref)


def max_J(game, pi, beta):
    """max_p J(p, pi) by the Gibbs variational principle: beta LSE(log pi_ref + P pi / beta)."""
    Ppi = np.einsum("xij,xj->xi", game.P, pi)
    return beta * logsumexp(np.log(game.pi_ref) + Ppi / beta, axis=-1) + beta * kl(
        pi, game.pi_ref)


def min_J(game, pi, beta):
    """min_p J(pi, p) = -max_p [-pi^T P p - beta KL(p)] + ..., by the Gibbs principle."""
    PTpi = np.einsum("xij,xi->xj", game.P, pi)
    inner = -beta * logsumexp(np.log(game.pi_ref) - PTpi / beta, axis=-1)
    return inner - beta * kl(pi, game.pi_ref)


def avg(game, values):
    return float(game.prompt_weights @ values)


def sized_policies(game, **kwargs):
    return ntst.policies(num_prompts=game.num_prompts, num_responses=game.num_responses,
                         **kwargs)


GAME = nt.random_skew(5, 2, seed=11, random_ref=True)
PI = np.random.default_rng(0).dirichlet(np.ones(5), size=2)
PI2 = np.random.default_rng(1).dirichlet(np.ones(5), size=2)


# Closed forms vs brute force -------------------------------------------------------------
@given(ntst.games(), ntst.betas(), st.data())
def test_duality_gap_equals_brute_force_best_responses(game, beta, data):
    pi = data.draw(sized_policies(game))
    gap = nt.duality_gap(game, pi, beta)
    # (a) through the library's best_response and game_value, as in the definition
    br = nt.best_response(game, pi, beta)
    brute = nt.game_value(game, br, pi, beta) - nt.game_value(game, pi, br, beta)
    # (b) through the Gibbs variational principle, written here
    gibbs = avg(game, max_J(game, pi, beta) - min_J(game, pi, beta))
    scale = 1e-12 * max(1.0, 1.0 / beta)
    assert gap >= -1e-14
    assert abs(gap - brute) <= scale
    assert abs(gap - gibbs) <= scale
    assert abs(nt.suboptimality(game, pi, beta) - gap / 2) <= 1e-15 * max(1.0, gap)


@given(ntst.games(), ntst.betas(), st.data())
def test_best_response_is_optimal_for_both_players(game, beta, data):
    pi = data.draw(sized_policies(game))
    other = data.draw(sized_policies(game))
    br = nt.best_response(game, pi, beta)
    assert np.all(br >= 0)
    np.testing.assert_allclose(br.sum(-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(J(game, br, pi, beta), max_J(game, pi, beta), rtol=0,
                               atol=1e-12 * max(1, 1 / beta))
    np.testing.assert_allclose(J(game, pi, br, beta), min_J(game, pi, beta), rtol=0,
                               atol=1e-12 * max(1, 1 / beta))
    # No other policy does better, for either player.
    assert np.all(J(game, other, pi, beta) <= J(game, br, pi, beta) + 1e-12)
    assert np.all(J(game, pi, other, beta) >= J(game, pi, br, beta) - 1e-12)


def test_best_response_closed_form():
    beta = 0.3
    expected = softmax(np.log(GAME.pi_ref) + np.einsum("xij,xj->xi", GAME.P, PI) / beta, axis=-1)
    np.testing.assert_allclose(nt.best_response(GAME, PI, beta), expected, rtol=0, atol=1e-15)


def test_duality_gap_per_prompt_and_average():
    game = nt.PreferenceGame(GAME.P, GAME.pi_ref, prompt_weights=[0.3, 0.7])
    beta = 0.2
    per = nt.duality_gap(game, PI, beta, per_prompt=True)
    assert per.shape == (2,)
    expected = max_J(game, PI, beta) - min_J(game, PI, beta)
    np.testing.assert_allclose(per, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(nt.duality_gap(game, PI, beta), 0.3 * per[0] + 0.7 * per[1],
                               rtol=0, atol=1e-16)
    np.testing.assert_allclose(nt.suboptimality(game, PI, beta, per_prompt=True), per / 2,
                               rtol=0, atol=1e-16)


def test_duality_gap_is_zero_only_at_the_fixed_point():
    # RPS with uniform pi_ref: the uniform policy is the fixed point for every beta.
    game = nt.rock_paper_scissors()
    for beta in (1e-3, 0.1, 10.0):
        assert abs(nt.duality_gap(game, np.full(3, 1 / 3), beta)) <= 1e-15
        assert nt.duality_gap(game, [0.4, 0.3, 0.3], beta) > 1e-6


def test_shared_policy_equals_tiled_policy():
    pi = PI[0]
    tiled = np.tile(pi, (2, 1))
    for f in (nt.exploitability, nt.kl_to_ref):
        assert f(GAME, pi) == f(GAME, tiled)
    assert nt.duality_gap(GAME, pi, 0.1) == nt.duality_gap(GAME, tiled, 0.1)
    assert nt.win_rate(GAME, pi, PI2) == nt.win_rate(GAME, tiled, PI2)


# Win rate, KL, game value ----------------------------------------------------------------
@given(ntst.games(), st.data())
def test_win_rate_symmetries(game, data):
    pi = data.draw(sized_policies(game))
    other = data.draw(sized_policies(game))
    assert abs(nt.win_rate(game, pi, pi) - 0.5) <= 1e-12
    assert abs(nt.win_rate(game, pi, other) + nt.win_rate(game, other, pi) - 1.0) <= 1e-12
    np.testing.assert_allclose(nt.win_rate(game, pi, other, per_prompt=True),
                               win(game, pi, other), rtol=0, atol=1e-14)


@given(ntst.games(reference=st.just(True)), ntst.betas(), st.data())
def test_kl_to_ref_and_game_value(game, beta, data):
    pi = data.draw(sized_policies(game))
    other = data.draw(sized_policies(game))
    assert abs(nt.kl_to_ref(game, game.pi_ref)) <= 1e-15
    np.testing.assert_allclose(nt.kl_to_ref(game, pi, per_prompt=True), kl(pi, game.pi_ref),
                               rtol=1e-12, atol=1e-14)
    assert nt.kl_to_ref(game, pi) >= 0
    value = nt.game_value(game, pi, other, beta)
    np.testing.assert_allclose(value, avg(game, J(game, pi, other, beta)), rtol=0,
                               atol=1e-12 * max(1, beta))
    # J(pi, pi') + J(pi', pi) = 1 and J(pi, pi) = 1/2 (P + P^T = 1).
    assert abs(value + nt.game_value(game, other, pi, beta) - 1.0) <= 1e-12 * max(1, beta)
    assert abs(nt.game_value(game, pi, pi, beta) - 0.5) <= 1e-12


def test_kl_to_ref_known_value():
    game = nt.PreferenceGame(np.full((2, 2), 0.5), pi_ref=[0.25, 0.75])
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    assert abs(nt.kl_to_ref(game, [0.5, 0.5]) - expected) <= 1e-16
    assert abs(nt.kl_to_ref(game, [1.0, 0.0]) - np.log(4.0)) <= 1e-15  # 0 log 0 = 0


# Exploitability ----------------------------------------------------------------------------
@given(ntst.games(), st.data())
def test_exploitability_nonnegative_and_closed_form(game, data):
    pi = data.draw(sized_policies(game))
    expl = nt.exploitability(game, pi, per_prompt=True)
    expected = np.einsum("xij,xj->xi", game.P, pi).max(-1) - 0.5
    np.testing.assert_allclose(expl, expected, rtol=0, atol=1e-15)
    # max_y (P pi)(y) >= pi^T P pi = 1/2 for every policy
    assert np.all(expl >= -1e-15)


def test_exploitability_known_values():
    rps = nt.rock_paper_scissors()
    assert abs(nt.exploitability(rps, np.full(3, 1 / 3))) <= 1e-15
    assert abs(nt.exploitability(rps, [1.0, 0.0, 0.0]) - 0.5) <= 1e-15  # paper beats rock
    # COMAL: uniform play has exploitability 0.0333 (the reference notes report 2x = 0.0667)
    assert abs(nt.exploitability(nt.comal_cyclic(), np.full(3, 1 / 3)) - 0.1 / 3) <= 1e-15


# Reward-optimal policy ----------------------------------------------------------------------
@given(st.integers(2, 8), ntst.betas(), st.data())
def test_reward_optimal_policy_first_order_condition(Y, beta, data):
    r = data.draw(st.lists(st.floats(-5, 5), min_size=Y, max_size=Y).map(np.array))
    ref = data.draw(ntst.reference_policies(num_prompts=1, num_responses=Y))[0]
    pi = nt.reward_optimal_policy(r, ref, beta)
    assert pi.shape == (Y,)
    np.testing.assert_allclose(pi.sum(), 1.0, rtol=0, atol=1e-12)
    # log pi - log pi_ref - r / beta is constant across responses (where pi > 0)
    positive = pi > 1e-200
    assert positive.any()
    c = np.log(pi[positive]) - np.log(ref[positive]) - r[positive] / beta
    assert np.ptp(c) <= 1e-9 * max(1.0, np.abs(r).max() / beta)
    # No random policy has a higher regularized reward.
    other = data.draw(ntst.policies(num_prompts=1, num_responses=Y))[0]

    def objective(p):
        return p @ r - beta * rel_entr(p, ref).sum()

    assert objective(other) <= objective(pi) + 1e-9


def test_reward_optimal_policy_matches_numerical_maximizer():
    r = np.array([1.0, 0.0, -0.5, 0.3])
    ref = np.array([0.4, 0.3, 0.2, 0.1])
    beta = 0.7

    def neg_objective(z):  # softmax parametrization of the simplex
        p = softmax(z)
        return -(p @ r - beta * rel_entr(p, ref).sum())

    z = minimize(neg_objective, np.zeros(4), method="BFGS", options={"gtol": 1e-12}).x
    np.testing.assert_allclose(nt.reward_optimal_policy(r, ref, beta), softmax(z), rtol=0,
                               atol=1e-6)
    # default pi_ref is uniform; (X, Y) rewards are handled per prompt
    np.testing.assert_allclose(nt.reward_optimal_policy(r, beta=beta), softmax(r / beta),
                               rtol=0, atol=1e-15)
    R = np.stack([r, -r])
    np.testing.assert_allclose(nt.reward_optimal_policy(R, beta=2.0), softmax(R / 2.0, axis=-1),
                               rtol=0, atol=1e-15)


def test_reward_optimal_policy_bad_input():
    with pytest.raises(InvalidInputError, match="^reward:"):
        nt.reward_optimal_policy(np.array([0.0, np.inf]))
    with pytest.raises(InvalidInputError, match="^pi_ref:"):
        nt.reward_optimal_policy(np.zeros(3), np.array([0.5, 0.5]))
    with pytest.raises(InvalidInputError, match="^pi_ref:"):
        nt.reward_optimal_policy(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(InvalidInputError, match="^beta:"):
        nt.reward_optimal_policy(np.zeros(2), beta=0.0)


# float32 and jax -------------------------------------------------------------------------
METRICS = {
    "duality_gap": lambda g, pi, other, beta: nt.duality_gap(g, pi, beta),
    "suboptimality": lambda g, pi, other, beta: nt.suboptimality(g, pi, beta),
    "exploitability": lambda g, pi, other, beta: nt.exploitability(g, pi),
    "win_rate": lambda g, pi, other, beta: nt.win_rate(g, pi, other),
    "kl_to_ref": lambda g, pi, other, beta: nt.kl_to_ref(g, pi),
    "game_value": lambda g, pi, other, beta: nt.game_value(g, pi, other, beta),
    "best_response": lambda g, pi, other, beta: nt.best_response(g, pi, beta),
}


@pytest.mark.parametrize("metric", sorted(METRICS))
@given(game=ntst.games(dtype=np.float32), beta=ntst.betas(min_value=0.01), data=st.data())
def test_float32_numpy_agrees_with_float64(metric, game, beta, data):
    f = METRICS[metric]
    pi = data.draw(sized_policies(game, dtype=np.float32))
    other = data.draw(sized_policies(game, dtype=np.float32))
    out32 = np.asarray(f(game, pi, other, beta))
    assert out32.dtype == np.float32
    # float32 rows sum to 1 only within ~1e-7: renormalize them for the float64 validation
    pi64, other64 = (p.astype(np.float64) / p.astype(np.float64).sum(-1, keepdims=True)
                     for p in (pi, other))
    out64 = f(game.astype(np.float64), pi64, other64, beta)
    # float32 rounding of P pi / beta is amplified by 1 / beta in the logits; values of order
    # beta KL (up to beta log(1 / min pi_ref) ~ 70 here) need a relative tolerance
    tol = ntst.tolerance(np.float32)
    np.testing.assert_allclose(out32, out64, rtol=tol, atol=tol * max(1.0, 1.0 / beta))


def _policy_batch(seed, batch, X, Y, dtype):
    """Random policies; rows renormalized after the cast, so valid in ``dtype``."""
    rng = np.random.default_rng(seed)
    pis = rng.dirichlet(np.ones(Y), size=(batch, X)).astype(dtype)
    return pis / pis.sum(-1, keepdims=True)


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("beta", [0.05, 1.0])
def test_jax_jit_and_vmap_float32(metric, beta, x32):
    f = METRICS[metric]
    game = nt.random_skew(4, 2, seed=3, random_ref=True)
    pis = _policy_batch(0, 5, 2, 4, np.float32)
    other = _policy_batch(1, 1, 2, 4, np.float32)[0]
    pis64, other64 = (p.astype(np.float64) / p.astype(np.float64).sum(-1, keepdims=True)
                      for p in (pis, other))
    reference = np.stack([np.asarray(f(game, p, other64, beta)) for p in pis64])
    jitted = jax.jit(lambda pi: f(game, pi, jnp.asarray(other), beta))
    single = np.asarray(jitted(jnp.asarray(pis[0])))
    batched = np.asarray(jax.jit(jax.vmap(lambda pi: f(game, pi, jnp.asarray(other), beta)))(
        jnp.asarray(pis)))
    assert batched.dtype == np.float32
    assert batched.shape == reference.shape
    atol = ntst.tolerance(np.float32) * max(1.0, 1.0 / beta)
    np.testing.assert_allclose(single, reference[0], rtol=0, atol=atol)
    np.testing.assert_allclose(batched, reference, rtol=0, atol=atol)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_jax_jit_and_vmap_float64(metric, x64):
    f = METRICS[metric]
    beta = 0.05
    game = nt.random_skew(4, 2, seed=3, random_ref=True)
    pis = _policy_batch(0, 5, 2, 4, np.float64)
    other = _policy_batch(1, 1, 2, 4, np.float64)[0]
    reference = np.stack([np.asarray(f(game, p, other, beta)) for p in pis])
    batched = np.asarray(jax.jit(jax.vmap(lambda pi: f(game, pi, jnp.asarray(other), beta)))(
        jnp.asarray(pis)))
    assert batched.dtype == np.float64
    np.testing.assert_allclose(batched, reference, rtol=0, atol=1e-12)


def test_jax_game_as_traced_argument(x32):
    game = nt.random_skew(4, 2, seed=3, random_ref=True)
    pi = _policy_batch(0, 1, 2, 4, np.float32)[0]
    gap = jax.jit(lambda g, p: nt.duality_gap(g, p, 0.5))(game, jnp.asarray(pi))
    pi64 = pi.astype(np.float64) / pi.astype(np.float64).sum(-1, keepdims=True)
    np.testing.assert_allclose(gap, nt.duality_gap(game, pi64, 0.5), rtol=0, atol=1e-5)


# Bad input ---------------------------------------------------------------------------------
RPS = nt.rock_paper_scissors()
UNIFORM = np.full(3, 1 / 3)

BAD_POLICIES = [
    ([1.2, -0.2, 0.0], "entries must be >= 0"),
    ([0.5, 0.2, 0.2], "sum to 1"),
    ([0.5, 0.5], "expected shape"),
    (np.full((2, 3), 1 / 3), "expected shape"),
    ([np.nan, 0.5, 0.5], "NaN"),
    ([np.inf, 0.0, 0.0], "NaN or infinite"),
]


@pytest.mark.parametrize("policy,message", BAD_POLICIES)
@pytest.mark.parametrize("metric", ["duality_gap", "exploitability", "best_response",
                                    "kl_to_ref", "win_rate", "game_value"])
def test_bad_policy(metric, policy, message):
    with pytest.raises(InvalidInputError, match=rf"^policy: .*{message}"):
        METRICS[metric](RPS, np.asarray(policy, dtype=float), UNIFORM, 0.1)


@pytest.mark.parametrize("metric", [
    "win_rate",
    "game_value",
])
def test_bad_other_policy(metric):
    with pytest.raises(InvalidInputError, match="^other:"):
        METRICS[metric](RPS, UNIFORM, np.array([1.0, 1.0, 1.0]), 0.1)


@pytest.mark.parametrize("beta", [0.0, -1.0, np.nan, np.inf, -np.inf, "abc", None])
@pytest.mark.parametrize("metric", ["duality_gap", "suboptimality", "best_response",
                                    "game_value"])
def test_bad_beta(metric, beta):
    with pytest.raises(InvalidInputError, match="^beta:"):
        METRICS[metric](RPS, UNIFORM, UNIFORM, beta)


@settings(suppress_health_check=[HealthCheck.filter_too_much])
@given(ntst.games(), st.data())
def test_gap_positive_away_from_uniform_fixed_point(game, data):
    # A policy that differs from the regularized equilibrium has a positive gap: here with
    # beta = 1e6 the equilibrium is within 1e-6 of pi_ref, so any policy at l1 distance >= 0.1
    # from pi_ref must have a gap of order beta * KL >= beta * 0.1^2 / 2.
    pi = data.draw(sized_policies(game))
    distance = np.abs(pi - game.pi_ref).sum(-1)
    assume(np.all(distance >= 0.1))
    assert nt.duality_gap(game, pi, 1e6) >= 0.5 * 1e6 * 0.1**2 / 2


def test_kl_divergence_matches_scipy_and_kl_to_ref():
    rng = np.random.default_rng(3)
    game = nt.PreferenceGame(np.full((2, 4, 4), 0.5), pi_ref=rng.dirichlet(np.ones(4), 2),
                             prompt_weights=[0.3, 0.7])
    p, q = rng.dirichlet(np.ones(4), 2), rng.dirichlet(np.ones(4), 2)
    expected = rel_entr(p, q).sum(-1)
    np.testing.assert_allclose(nt.kl_divergence(game, p, q, per_prompt=True), expected,
                               rtol=1e-13)
    assert float(nt.kl_divergence(game, p, q)) == pytest.approx(0.3 * expected[0]
                                                                + 0.7 * expected[1], rel=1e-13)
    assert float(nt.kl_divergence(game, p, game.pi_ref)) == float(nt.kl_to_ref(game, p))
    p[0] = [0.0, 0.5, 0.5, 0.0]  # 0 log 0 = 0, and infinite where the second has no mass
    assert np.isfinite(float(nt.kl_divergence(game, p, q)))
    assert float(nt.kl_divergence(game, q, p)) == np.inf
