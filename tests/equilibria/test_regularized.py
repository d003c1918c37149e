"""Tests of nlhf_theory.equilibria._regularized: certified KL-regularized Nash equilibria.

Oracles: (a) golden values from the literature and the reference notes
(``/work/shared/references/nlhf_algorithms.md`` §6.8, whose ``eta`` is ``1 / beta``);
(b) an independent convex solver (cvxpy + Clarabel) for the min player's program, polished by a
Newton method on the equilibrium equations written in this file; (c) structural properties
(saddle point, permutation equivariance, limits in beta) checked with hypothesis.
"""

import warnings

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import log_softmax, rel_entr, softmax

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory import testing as ntst

RPS_TABLE = {  # eta: (KL-NE, unregularized exploitability as 2 max(P pi) - 1)
    1: ((0.528, 0.378, 0.094), 0.434),
    10: ((0.296, 0.444, 0.260), 0.148),
    100: ((0.326, 0.345, 0.328), 0.019),
}
COMAL_TABLE = {  # eta: (KL-NE, decimals, unregularized gap 2 max(P pi) - 1, decimals)
    1: ((0.324, 0.331, 0.345), 3, 0.070, 3),
    10: ((0.337, 0.283, 0.379), 3, 0.0245, 4),
    100: ((0.3610, 0.2729, 0.3662), 4, 0.0017, 4),
    1000: ((0.3634, 0.2727, 0.3639), 4, 0.0002, 4),
}


def half_unit(decimals):
    """Half a unit in the last reported decimal: the accuracy of a rounded table entry."""
    return 0.5 * 10.0**-decimals + 1e-12


# Golden cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [1e-3, 0.01, 0.1, 1.0, 10.0])
def test_rock_paper_scissors_uniform_reference(beta):
    # Symmetry: with a uniform pi_ref the equilibrium of RPS is uniform for every beta.
    res = nt.solve_regularized_nash(nt.rock_paper_scissors(), beta)
    np.testing.assert_allclose(res.policy, np.full((1, 3), 1 / 3), rtol=0, atol=1e-10)
    assert res.duality_gap <= 1e-10
    assert res.converged


@pytest.mark.parametrize("eta", sorted(RPS_TABLE))
def test_rock_paper_scissors_biased_reference(eta):
    # nlhf_algorithms.md §6.8: RPS with pi_ref = (0.6, 0.3, 0.1), beta = 1 / eta.
    policy, gap_table = RPS_TABLE[eta]
    game = nt.rock_paper_scissors(pi_ref=[0.6, 0.3, 0.1])
    res = nt.solve_regularized_nash(game, 1.0 / eta)
    np.testing.assert_allclose(res.policy[0], policy, rtol=0, atol=half_unit(3))
    assert res.duality_gap <= 1e-10
    # The reference reports the unregularized duality gap 2 max_y (P pi)(y) - 1, which is twice
    # our exploitability max_y (P pi)(y) - 1/2 (e.g. 0.434 = 2 * 0.2169 at eta = 1).
    expl = nt.exploitability(game, res.policy)
    assert abs(2 * expl - gap_table) <= half_unit(3)


@pytest.mark.parametrize("eta", sorted(COMAL_TABLE))
def test_comal_table(eta):
    # nlhf_algorithms.md §6.8, COMAL 3x3 game with uniform pi_ref ("constant equilibrium gap").
    policy, d_policy, gap_table, d_gap = COMAL_TABLE[eta]
    game = nt.comal_cyclic()
    res = nt.solve_regularized_nash(game, 1.0 / eta)
    np.testing.assert_allclose(res.policy[0], policy, rtol=0, atol=half_unit(d_policy))
    assert res.duality_gap <= 1e-10
    # again 2 * exploitability = the reference's "unregularised gap"
    assert abs(2 * nt.exploitability(game, res.policy) - gap_table) <= half_unit(d_gap)


@pytest.mark.parametrize("eta,nash,rlhf", [
    (1, (0.397, 0.318, 0.285), (0.629, 0.231, 0.140)),
    (10, (0.876, 0.088, 0.035), (1.0, 0.0, 0.0)),
])
def test_bradley_terry_nash_differs_from_rlhf_optimum(eta, nash, rlhf):
    # nlhf_algorithms.md §6.8: BT with r = (1, 0, -0.5), uniform pi_ref.
    r = np.array([1.0, 0.0, -0.5])
    game = nt.bradley_terry(r)
    res = nt.solve_regularized_nash(game, 1.0 / eta)
    rlhf_policy = nt.reward_optimal_policy(r, beta=1.0 / eta)
    np.testing.assert_allclose(res.policy[0], nash, rtol=0, atol=half_unit(3))
    np.testing.assert_allclose(rlhf_policy, rlhf, rtol=0, atol=half_unit(2))
    np.testing.assert_allclose(rlhf_policy, softmax(r * eta), rtol=0, atol=1e-15)
    assert np.abs(res.policy[0] - rlhf_policy).max() > 0.1


# Independent certificate: cvxpy ------------------------------------------------------------
CLARABEL_OPTIONS = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12,
                        tol_ktratio=1e-10, max_iter=500)


def cvxpy_min_player(Q, pi_ref, beta):
    """argmin_q h(q), h(q) = beta log sum_y pi_ref(y) exp((Q q)_y / beta) + beta KL(q || pi_ref).

    Written for cvxpy as h / beta = LSE(log pi_ref + Q q / beta) - H(q) - q . log pi_ref (same
    minimizer; the entropy form is better conditioned for Clarabel than ``rel_entr``).
    """
    q = cp.Variable(len(pi_ref))
    objective = (cp.log_sum_exp(np.log(pi_ref) + Q @ q / beta) - cp.sum(cp.entr(q))
                 - np.log(pi_ref) @ q)
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(q) == 1])
    assert problem.is_dcp()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "solution may be inaccurate": checked below
        problem.solve(solver=cp.CLARABEL, **CLARABEL_OPTIONS)
    # With 1e-12 tolerances Clarabel sometimes stops at its reduced tolerances
    # ("optimal_inaccurate"); the Newton polish below then finishes the job.
    assert problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), problem.status
    return np.asarray(q.value)


def newton_polish(Q, pi_ref, beta, q0, iterations=30):
    """Solve the equilibrium equations of max_p min_q p^T Q q - beta KL(p) + beta KL(q) by Newton.

    Unknowns ``u = log p``, ``v = log q``; equations ``u = log softmax(log pi_ref + Q q / beta)``
    and ``v = log softmax(log pi_ref - Q^T p / beta)``. Returns ``(p, q, residual)``.
    """
    log_ref = np.log(pi_ref)
    Y = len(pi_ref)
    q0 = np.clip(q0, 1e-300, None)
    v = np.log(q0 / q0.sum())
    u = log_softmax(log_ref + Q @ np.exp(v) / beta)

    def residual(u, v):
        return np.concatenate([u - log_softmax(log_ref + Q @ np.exp(v) / beta),
                               v - log_softmax(log_ref - Q.T @ np.exp(u) / beta)])

    eye, ones = np.eye(Y), np.ones((Y, 1))
    for _ in range(iterations):
        F = residual(u, v)
        p, q = np.exp(u), np.exp(v)
        br_p = softmax(log_ref + Q @ q / beta)
        br_q = softmax(log_ref - Q.T @ p / beta)
        jac = np.block([[eye, -(eye - ones * br_p) @ Q * q / beta],
                        [(eye - ones * br_q) @ Q.T * p / beta, eye]])
        step = np.linalg.solve(jac, -F)
        u, v = u + step[:Y], v + step[Y:]
        if np.abs(step).max() < 1e-15:
            break
    return np.exp(u), np.exp(v), float(np.abs(residual(u, v)).max())


def reference_solution(Q, pi_ref, beta):
    """(p, q) from cvxpy + Newton polish, with the raw cvxpy q."""
    q_cvx = cvxpy_min_player(Q, pi_ref, beta)
    p, q, res = newton_polish(Q, pi_ref, beta, q_cvx)
    assert res <= 1e-12, res
    return p, q, q_cvx


@pytest.mark.parametrize("beta", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("X", [1, 2])
@pytest.mark.parametrize("Y", [3, 5, 10, 20])
def test_against_cvxpy(Y, X, beta):
    for seed in (0, 1):
        game = nt.random_skew(Y, X, seed=100 * Y + 10 * X + seed, random_ref=True)
        res = nt.solve_regularized_nash(game, beta)
        assert res.converged and res.duality_gap <= 1e-10
        for x in range(X):
            p, q, q_cvx = reference_solution(game.P[x], game.pi_ref[x], beta)
            np.testing.assert_allclose(p, q, rtol=0, atol=1e-12)  # symmetric game: p = q
            np.testing.assert_allclose(res.policy[x], q_cvx, rtol=0, atol=1e-5)  # raw Clarabel
            np.testing.assert_allclose(res.policy[x], q, rtol=0, atol=1e-7)


def _kl_game_gap(Q, pi_ref, beta, p, q):
    """max_p' F(p', q) - min_q' F(p, q') in closed form (Gibbs), written independently."""
    from scipy.special import logsumexp

    log_ref = np.log(pi_ref)
    upper = beta * logsumexp(log_ref + Q @ q / beta) + beta * rel_entr(q, pi_ref).sum()
    lower = -beta * logsumexp(log_ref - Q.T @ p / beta) - beta * rel_entr(p, pi_ref).sum()
    return upper - lower


@pytest.mark.parametrize("beta", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("Y", [3, 8])
def test_kl_game_against_cvxpy(Y, beta):
    rng = np.random.default_rng(Y)
    X = 2
    P = nt.random_skew(Y, X, seed=Y).P
    Q = P - 0.3 * rng.uniform(size=(X, Y, Y))  # pessimistic surrogate: not skew
    pi_ref = softmax(rng.normal(size=(X, Y)), axis=-1)
    res = nt.solve_kl_game(Q, pi_ref, beta)
    assert res.converged and res.duality_gap <= 1e-10
    assert res.max_policy.shape == res.min_policy.shape == (X, Y)
    for x in range(X):
        p, q, q_cvx = reference_solution(Q[x], pi_ref[x], beta)
        np.testing.assert_allclose(res.min_policy[x], q_cvx, rtol=0, atol=1e-5)
        np.testing.assert_allclose(res.min_policy[x], q, rtol=0, atol=1e-7)
        np.testing.assert_allclose(res.max_policy[x], p, rtol=0, atol=1e-7)
        # the max player's policy is the best response to the min player's
        best = softmax(np.log(pi_ref[x]) + Q[x] @ res.min_policy[x] / beta)
        np.testing.assert_allclose(res.max_policy[x], best, rtol=0, atol=1e-12)
        gap = _kl_game_gap(Q[x], pi_ref[x], beta, res.max_policy[x], res.min_policy[x])
        assert -1e-13 <= gap <= 1e-10
        assert abs(gap - res.per_prompt_gap[x]) <= 1e-12
    assert np.abs(res.max_policy - res.min_policy).max() > 1e-3  # the players differ


@pytest.mark.parametrize("beta", [1.0, 0.1, 0.01])
def test_kl_game_with_skew_payoff_is_the_regularized_nash(beta):
    game = nt.random_skew(6, 2, seed=4, random_ref=True)
    res = nt.solve_kl_game(game.P, game.pi_ref, beta)
    nash = nt.solve_regularized_nash(game, beta).policy
    np.testing.assert_allclose(res.max_policy, nash, rtol=0, atol=1e-7)
    np.testing.assert_allclose(res.min_policy, nash, rtol=0, atol=1e-7)
    assert abs(res.value - 0.5) <= 1e-10  # J(pi*, pi*) = 1/2


def test_kl_game_bad_input():
    with pytest.raises(InvalidInputError, match="^Q:"):
        nt.solve_kl_game(np.ones((2, 3)), [0.5, 0.5], 1.0)
    with pytest.raises(InvalidInputError, match="^Q:"):
        nt.solve_kl_game(np.array([[0.0, np.nan], [0.0, 0.0]]), [0.5, 0.5], 1.0)
    with pytest.raises(InvalidInputError, match="^pi_ref:"):
        nt.solve_kl_game(np.ones((2, 2)), [1.0, 0.0], 1.0)
    with pytest.raises(InvalidInputError, match="^pi_ref:"):
        nt.solve_kl_game(np.ones((2, 2)), [0.5, 0.5, 0.5], 1.0)
    with pytest.raises(InvalidInputError, match="^prompt_weights:"):
        nt.solve_kl_game(np.ones((2, 2)), [0.5, 0.5], 1.0, prompt_weights=[0.5, 0.5])
    with pytest.raises(InvalidInputError, match="^beta:"):
        nt.solve_kl_game(np.ones((2, 2)), [0.5, 0.5], 0.0)


# Properties --------------------------------------------------------------------------------
@given(ntst.games(), ntst.betas(), st.data())
def test_equilibrium_properties(game, beta, data):
    res = nt.solve_regularized_nash(game, beta)
    pi = res.policy
    X, Y = game.num_prompts, game.num_responses
    assert pi.shape == (X, Y) and pi.dtype == np.float64
    assert np.all(pi >= 0)
    np.testing.assert_allclose(pi.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert res.converged
    assert -1e-14 <= res.duality_gap <= 1e-10
    assert np.all(res.per_prompt_gap <= 1e-10)
    assert abs(nt.game_value(game, pi, pi, beta) - 0.5) <= 1e-10
    # Saddle point, checked from the definition of J: for every p,
    # J(p, pi*) = 1/2 - beta KL(p || pi*) <= 1/2 <= J(pi*, p).
    p = data.draw(ntst.policies(num_prompts=X, num_responses=Y))
    weights = game.prompt_weights.astype(np.float64)
    P = game.P.astype(np.float64)
    ref = game.pi_ref.astype(np.float64)

    def J(a, b):
        values = (np.einsum("xi,xij,xj->x", a, P, b) - beta * rel_entr(a, ref).sum(-1)
                  + beta * rel_entr(b, ref).sum(-1))
        return float(weights @ values)

    # J(., pi*) <= max_p J(p, pi*) = (1 + gap) / 2 and J(pi*, .) >= (1 - gap) / 2.
    assert J(p, pi) <= 0.5 + 1e-10
    assert J(pi, p) >= 0.5 - 1e-10
    # Exact saddle identity J(p, pi*) = 1/2 - beta KL(p || pi*), for policies p supported where
    # pi* >= 1e-6 (entries of pi* far below the certified accuracy have no relative accuracy:
    # e.g. 4e-18 instead of exp(-500) in a sure-win game at beta = 1e-3).
    q = np.where(pi >= 1e-6, p, 0.0)
    q = np.where(q.sum(-1, keepdims=True) > 0, q, pi)
    q /= q.sum(-1, keepdims=True)
    kl_q = float(weights @ rel_entr(q, pi).sum(-1))
    # The identity is first order in the error of pi*, and the solver certifies the gap
    # (quadratic in that error) to ~1e-15, so pi* is accurate to ~1e-8 only: allow 1e-7.
    slack = 1e-7 * max(1.0, beta)
    assert abs((0.5 - J(q, pi)) - beta * kl_q) <= slack * max(1.0, beta * kl_q)
    # The duality gap is positive away from the equilibrium: gap(q) >= 2 beta KL(q || pi*).
    gap_q = nt.duality_gap(game.astype(np.float64), q, beta)
    assert gap_q >= 2 * beta * kl_q - slack


@given(ntst.games(num_prompts=st.just(1), reference=st.just(True)), ntst.betas(), st.data())
def test_permutation_equivariance(game, beta, data):
    Y = game.num_responses
    perm = np.asarray(data.draw(st.permutations(range(Y))))
    permuted = nt.PreferenceGame(game.P[0][np.ix_(perm, perm)], game.pi_ref[0][perm])
    pi = nt.solve_regularized_nash(game, beta).policy[0]
    pi_perm = nt.solve_regularized_nash(permuted, beta).policy[0]
    np.testing.assert_allclose(pi_perm, pi[perm], rtol=0, atol=1e-7)


@given(ntst.games(), st.data())
def test_large_beta_gives_reference_policy(game, data):
    res = nt.solve_regularized_nash(game, 1e6)
    # pi* - pi_ref = O(1 / beta): the logits P pi / beta are at most 1e-6 apart
    np.testing.assert_allclose(res.policy, game.pi_ref, rtol=0, atol=1e-5)


@given(ntst.games(dtype=np.float32), ntst.betas(min_value=0.01))
def test_float32_games(game, beta):
    res = nt.solve_regularized_nash(game, beta)
    assert res.policy.dtype == np.float64
    assert isinstance(res.duality_gap, float)
    assert res.duality_gap <= 1e-10  # certified in float64
    res64 = nt.solve_regularized_nash(game.astype(np.float64), beta)
    np.testing.assert_allclose(res.policy, res64.policy, rtol=0, atol=1e-10)


def test_float32_reference_is_renormalized():
    # Regression: a float32 pi_ref sums to 1 only within ~3e-8 in float64; when pi_ref is
    # already the equilibrium no Newton step renormalized it and the float64 certificate
    # rejected the returned policy.
    ref = np.array([0.04847619, 0.4757619, 0.4757619], dtype=np.float32)
    game = nt.PreferenceGame(np.full((3, 3), 0.5, dtype=np.float32), pi_ref=ref)
    res = nt.solve_regularized_nash(game, 1.0)  # all ties: the equilibrium is pi_ref
    np.testing.assert_allclose(res.policy[0], ref / ref.astype(np.float64).sum(), rtol=0,
                               atol=1e-15)


@given(ntst.bradley_terry_games(), ntst.betas())
def test_bradley_terry_games_are_certified(game, beta):
    res = nt.solve_regularized_nash(game, beta)
    assert res.converged and res.duality_gap <= 1e-10


@given(ntst.games(num_prompts=st.integers(2, 3)), ntst.betas())
def test_batched_equals_per_prompt(game, beta):
    res = nt.solve_regularized_nash(game, beta)
    for x in range(game.num_prompts):
        single = nt.solve_regularized_nash(nt.PreferenceGame(game.P[x], game.pi_ref[x]), beta)
        np.testing.assert_allclose(res.policy[x], single.policy[0], rtol=0, atol=1e-7)
        assert abs(res.per_prompt_gap[x] - single.duality_gap) <= 1e-10


# Bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.0, -1.0, np.nan, np.inf, "1e-3x", None])
def test_bad_beta(beta):
    with pytest.raises(InvalidInputError, match="^beta:"):
        nt.solve_regularized_nash(nt.rock_paper_scissors(), beta)


def test_bad_game():
    with pytest.raises(InvalidInputError, match="^game:"):
        nt.solve_regularized_nash(nt.rock_paper_scissors().P, 0.1)


def test_tiny_reference_entry_converges():
    """Issue 9's reproduction: pi_ref = (1e-300, 1/2, 1/2) at beta = 1e-4 returned the
    uncertified [4e-260, 0.287, 0.713] (gap 0.29); the equilibrium is about
    (0.3333, 0.2873, 0.3793) (a generic root finder, as reported in the issue)."""
    P = 0.5 + 0.5 * np.array([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    ref = np.array([1e-300, 0.5, 0.5])
    beta = 1e-4
    res = nt.solve_regularized_nash(nt.PreferenceGame(P[None], ref[None]), beta)
    assert res.converged and res.duality_gap <= 1e-12
    np.testing.assert_allclose(res.policy[0], [0.3333, 0.2873, 0.3793], atol=1e-4)
    # the fixed point, checked in log space without the solver
    q = res.policy[0]
    z = np.log(ref) + P @ q / beta
    log_br = z - (z.max() + np.log(np.sum(np.exp(z - z.max()))))
    np.testing.assert_allclose(np.log(q), log_br, atol=1e-8)


def test_kl_game_max_policy_is_solve_kl_games_and_raises_when_uncertified():
    """The learners' inner solve: the same certified policy as solve_kl_game, and a
    SolverError (not a silent answer) when the budget cannot certify it."""
    rng = np.random.default_rng(4)
    Q = rng.uniform(size=(3, 6, 6))
    pi_ref = rng.dirichlet(np.ones(6), 3)
    expected = nt.solve_kl_game(Q, pi_ref, 0.05, tol=2e-12).max_policy
    policy = nt.kl_game_max_policy(Q, np.log(pi_ref), 0.05)
    np.testing.assert_allclose(policy, expected, atol=1e-12)
    with pytest.raises(nt.SolverError, match="kl_game_max_policy"):
        nt.kl_game_max_policy(Q, np.log(pi_ref), 1e-4, max_iter=1, max_cg=1)


@pytest.mark.parametrize("beta", [0.3, 0.01])
def test_blocks_on_threads_are_bit_identical(monkeypatch, beta):
    """Large batches are solved in blocks of prompts on parallel threads: every prompt's
    policy, gap, and the effort counts equal the one-block, one-thread solve exactly."""
    from nlhf_theory.equilibria import _regularized

    game = nt.random_skew(30, num_prompts=25, seed=4)
    pi_ref = np.random.default_rng(0).dirichlet(np.ones(30), size=25)
    game = nt.PreferenceGame(game.P, pi_ref, game.prompt_weights)
    Q = np.asarray(game.P, dtype=np.float64) - 0.2  # a non-skew payoff for solve_kl_game
    whole = (nt.solve_regularized_nash(game, beta), nt.solve_kl_game(Q, pi_ref, beta))
    seen = []
    real_newton = _regularized._newton
    monkeypatch.setattr(_regularized, "_newton", lambda Q, *a: seen.append(Q.shape[0])
                        or real_newton(Q, *a))
    monkeypatch.setattr(_regularized, "_BLOCK_ENTRIES", 4 * 30 * 30)  # blocks of <= 4 prompts
    monkeypatch.setattr(_regularized, "_usable_cores", lambda: 2)
    blocked = (nt.solve_regularized_nash(game, beta), nt.solve_kl_game(Q, pi_ref, beta))
    assert max(seen) <= 4 and sum(seen) % 25 == 0  # the blocks partition the prompts
    for a, b in zip(whole, blocked):
        for field in ("per_prompt_gap", "iterations", "matvecs", "converged"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(whole[0].policy, blocked[0].policy)
    np.testing.assert_array_equal(whole[1].max_policy, blocked[1].max_policy)
    np.testing.assert_array_equal(whole[1].min_policy, blocked[1].min_policy)
