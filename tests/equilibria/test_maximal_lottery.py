"""Tests of nlhf_theory.equilibria._maximal_lottery: certified maximal lotteries (beta = 0).

Oracles: golden cases (OpenSpiel's biased rock-paper-scissors, COMAL's 3x3 game, Condorcet
examples), and an independent linear program written here for the *max* player
(``max v s.t. (P^T p)(y') >= v``), solved by scipy's dual simplex, never by the library's LP.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.optimize import linprog

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory import testing as ntst

METHODS = ["auto", "highs", "highs-ipm", "highs-ds"]


def reference_maximal_lottery(P):
    """max_{p, v} v  s.t.  sum_y p(y) P[y, y'] >= v for all y',  p on the simplex (HiGHS dual
    simplex: a vertex solution, exact up to the LU factorization)."""
    Y = P.shape[0]
    res = linprog(np.r_[np.zeros(Y), -1.0], A_ub=np.c_[-P.T, np.ones(Y)], b_ub=np.zeros(Y),
                  A_eq=np.r_[np.ones(Y), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * Y + [(None, None)], method="highs-ds")
    assert res.status == 0, res.message
    p = np.clip(res.x[:Y], 0, None)
    return p / p.sum(), res.x[Y]


def exploitability(P, p):
    return float((P @ p).max() - 0.5)


# Golden cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_biased_rock_paper_scissors(method):
    # Bosansky et al. 2016, Sec. 6.2; OpenSpiel lp_solver_test.py: (1/16, 10/16, 5/16).
    res = nt.solve_nash(nt.biased_rock_paper_scissors(), method=method)
    np.testing.assert_allclose(res.policy[0], np.array([1, 10, 5]) / 16, rtol=0, atol=1e-9)
    assert res.exploitability <= 1e-9
    assert len(res.method) == 1


@pytest.mark.parametrize("method", METHODS)
def test_comal_cyclic(method):
    # Liu et al. 2024 (COMAL), 3x3 game: maximal lottery (4/11, 3/11, 4/11).
    res = nt.solve_nash(nt.comal_cyclic(), method=method)
    np.testing.assert_allclose(res.policy[0], np.array([4, 3, 4]) / 11, rtol=0, atol=1e-9)
    assert res.exploitability <= 1e-9


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", ["rock_paper_scissors", "condorcet_cycle"])
def test_cycles_give_uniform(name, method):
    res = nt.solve_nash(nt.make_game(name), method=method)
    np.testing.assert_allclose(res.policy[0], np.full(3, 1 / 3), rtol=0, atol=1e-9)
    assert res.exploitability <= 1e-9


@pytest.mark.parametrize("method", METHODS)
def test_condorcet_winner_is_pure(method):
    res = nt.solve_nash(nt.condorcet_winner(), method=method)
    np.testing.assert_allclose(res.policy[0], [1.0, 0.0, 0.0], rtol=0, atol=1e-9)
    assert abs(res.exploitability) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("Y", [1, 2, 5])
def test_all_ties(Y, method):
    # P = 1/2: every policy is a maximal lottery.
    game = nt.PreferenceGame(np.full((2, Y, Y), 0.5))
    res = nt.solve_nash(game, method=method)
    assert res.policy.shape == (2, Y)
    assert np.all(res.policy >= 0)
    np.testing.assert_allclose(res.policy.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert abs(res.exploitability) <= 1e-12


# Independent LP ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("Y", [3, 6, 15, 40])
def test_against_independent_lp(Y, method):
    game = nt.random_skew(Y, 3, seed=Y)  # continuous entries: the maximal lottery is unique
    res = nt.solve_nash(game, method=method)
    assert res.policy.shape == (3, Y)
    for x in range(3):
        P = game.P[x]
        p_ref, value = reference_maximal_lottery(P)
        assert abs(value - 0.5) <= 1e-9  # the value of a symmetric game is 1/2
        assert exploitability(P, p_ref) <= 1e-9
        assert exploitability(P, res.policy[x]) <= 1e-9
        np.testing.assert_allclose(res.policy[x], p_ref, rtol=0, atol=1e-7)
    np.testing.assert_allclose(res.per_prompt_exploitability,
                               [exploitability(game.P[x], res.policy[x]) for x in range(3)],
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("Y", [3, 8, 25])
def test_dense_ipm_against_independent_lp(Y):
    P = nt.random_skew(Y, 1, seed=50 + Y).P[0]
    p = nt.dense_ipm(P - 0.5)
    np.testing.assert_allclose(p, reference_maximal_lottery(P)[0], rtol=0, atol=1e-7)
    assert exploitability(P, p) <= 1e-9


def _sigmoid_skew(Y, seed):
    """``P = sigmoid(G - G^T)``, G standard normal (issue 12's game), exactly skew."""
    G = np.random.default_rng(seed).standard_normal((Y, Y))
    P = 1.0 / (1.0 + np.exp(-(G - G.T)))
    return 0.5 * (P + (1.0 - P.T))


@pytest.mark.parametrize("family", ["uniform", "sigmoid"])
def test_fast_dense_ipm_equals_float64_path(family):
    # fast=True (float32 LU + float64 refinement, Gondzio correctors, wider finish) must land
    # on the same certified policy as the float64 Mehrotra path: 20 games of 200 responses.
    for seed in range(10):
        P = (nt.random_skew(200, 1, seed=seed).P[0].astype(np.float64) if family == "uniform"
             else _sigmoid_skew(200, seed))
        A = P - 0.5
        fast, slow = nt.dense_ipm(A, fast=True), nt.dense_ipm(A)
        assert (A @ fast).max() <= 1e-13 and (A @ slow).max() <= 1e-13
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_fast_path_falls_back_to_float64_when_refinement_stalls(monkeypatch):
    from nlhf_theory.equilibria import _maximal_lottery as ml

    monkeypatch.setattr(ml, "_REFINE_STEPS", 0)  # every float32 solve counts as stalled
    float64_calls = []
    original = ml._float64_newton
    monkeypatch.setattr(ml, "_float64_newton",
                        lambda *args: float64_calls.append(1) or original(*args))
    A = nt.random_skew(120, 1, seed=4).P[0].astype(np.float64) - 0.5
    p = ml.dense_ipm(A, fast=True)
    assert float64_calls
    assert (A @ p).max() <= 1e-13
    np.testing.assert_allclose(p, ml.dense_ipm(A), rtol=0, atol=1e-12)


def test_fast_path_factors_in_float32(monkeypatch):
    import scipy.linalg

    from nlhf_theory.equilibria import _maximal_lottery as ml

    dtypes = []
    original = scipy.linalg.lu_factor
    monkeypatch.setattr(scipy.linalg, "lu_factor",
                        lambda K, **kw: dtypes.append(K.dtype) or original(K, **kw))
    A = nt.random_skew(150, 1, seed=8).P[0].astype(np.float64) - 0.5
    ml.dense_ipm(A)
    assert dtypes and set(dtypes) == {np.dtype(np.float64)}
    dtypes.clear()
    ml.dense_ipm(A, fast=True)
    assert dtypes and dtypes[0] == np.float32


@pytest.mark.parametrize("Y, fast", [(399, False), (400, True)])
def test_solve_nash_uses_the_fast_path_from_400_responses(monkeypatch, Y, fast):
    from nlhf_theory.equilibria import _maximal_lottery as ml

    seen = []
    original = ml.dense_ipm
    monkeypatch.setattr(ml, "dense_ipm", lambda A, **kw: seen.append(kw["fast"])
                        or original(A, **kw))
    res = nt.solve_nash(nt.random_skew(Y, 1, seed=Y))
    assert seen == [fast] and res.method == ("dense-ipm",) and res.converged


def test_double_oracle_stops_when_a_round_would_repeat(monkeypatch):
    # an interior point that never certifies: one round, then HiGHS (not 20 identical rounds)
    from nlhf_theory.equilibria import _maximal_lottery as ml

    calls = []
    monkeypatch.setattr(ml, "dense_ipm",
                        lambda A, **kw: calls.append(1) or np.full(A.shape[0], 1 / A.shape[0]))
    res = nt.solve_nash(nt.random_skew(30, 1, seed=3))
    assert len(calls) == 1 and res.method == ("highs-ipm",) and res.converged


@pytest.mark.parametrize("method", ["highs", "highs-ipm", "highs-ds"])
def test_lp_maximal_lottery_against_independent_lp(method):
    P = nt.random_skew(7, 1, seed=9).P[0]
    np.testing.assert_allclose(nt.lp_maximal_lottery(P, method), reference_maximal_lottery(P)[0],
                               rtol=0, atol=1e-7)


# Properties --------------------------------------------------------------------------------
@given(ntst.games(num_responses=st.integers(1, 10)), st.sampled_from(METHODS), st.data())
def test_certified_on_random_games(game, method, data):
    res = nt.solve_nash(game, method=method)
    X, Y = game.num_prompts, game.num_responses
    assert res.policy.shape == (X, Y) and res.policy.dtype == np.float64
    assert np.all(res.policy >= 0)
    np.testing.assert_allclose(res.policy.sum(-1), 1.0, rtol=0, atol=1e-12)
    assert len(res.method) == X
    assert -1e-15 <= res.exploitability <= 1e-9
    # Check the certificate here: no response beats the lottery, and it beats every policy.
    P = game.P.astype(np.float64)
    assert np.einsum("xij,xj->xi", P, res.policy).max() <= 0.5 + 1e-9
    other = data.draw(ntst.policies(num_prompts=X, num_responses=Y))
    assert np.all(np.einsum("xi,xij,xj->x", res.policy, P, other) >= 0.5 - 1e-9)
    # ... and any other policy has exploitability >= 0.
    assert nt.exploitability(game.astype(np.float64), other) >= -1e-15


@given(ntst.games(num_prompts=st.just(1), num_responses=st.integers(2, 8),
                  deterministic=st.just(False)))
def test_agrees_with_independent_lp_on_random_games(game):
    P = game.P[0]
    res = nt.solve_nash(game)
    p_ref, _ = reference_maximal_lottery(P)
    assert exploitability(P, p_ref) <= 1e-9
    assert exploitability(P, res.policy[0]) <= 1e-9
    # Equal exploitability does not make the lotteries equal when the LP is degenerate (ties
    # such as exact 0/1/0.5 entries drawn by hypothesis); compare them only for a unique one:
    # the lottery is unique when the reference's support is a nonsingular equalizer.
    support = p_ref > 1e-9
    A = P - 0.5
    off_support_slack = -(A @ p_ref)[~support]
    if np.all(off_support_slack > 1e-6):
        K = np.block([[A[np.ix_(support, support)], -np.ones((support.sum(), 1))],
                      [np.ones((1, support.sum())), np.zeros((1, 1))]])
        if np.linalg.cond(K) < 1e8:
            np.testing.assert_allclose(res.policy[0], p_ref, rtol=0, atol=1e-7)


@given(ntst.bradley_terry_games(num_prompts=st.just(1)))
def test_bradley_terry_maximal_lottery_is_argmax_reward(game):
    # For distinct rewards, the best response beats every other one with probability > 1/2
    # (a Condorcet winner), so the maximal lottery is pure on it.
    P = game.P[0]
    r_gap = np.log(P / (1 - P))  # r_y - r_y', recovered from P
    best = int(np.argmax((r_gap > 0).sum(1)))
    others = np.delete(r_gap[best], best)
    assume(others.size == 0 or others.min() > 1e-3)
    res = nt.solve_nash(game)
    expected = np.zeros(game.num_responses)
    expected[best] = 1.0
    np.testing.assert_allclose(res.policy[0], expected, rtol=0, atol=1e-9)


@given(ntst.games(num_prompts=st.just(1), deterministic=st.just(False)), st.data())
def test_permutation_equivariance(game, data):
    P = game.P[0]
    assume(np.all(np.abs(P - 0.5)[~np.eye(len(P), dtype=bool)] > 1e-3))  # generic: unique
    perm = np.asarray(data.draw(st.permutations(range(game.num_responses))))
    p = nt.solve_nash(game).policy[0]
    p_perm = nt.solve_nash(nt.PreferenceGame(P[np.ix_(perm, perm)])).policy[0]
    np.testing.assert_allclose(p_perm, p[perm], rtol=0, atol=1e-7)


def test_small_beta_approaches_the_maximal_lottery():
    game = nt.comal_cyclic()
    ml = np.array([4, 3, 4]) / 11
    dist = [np.abs(nt.solve_regularized_nash(game, beta).policy[0] - ml).max()
            for beta in (0.1, 0.01, 1e-3)]
    assert dist[0] > dist[1] > dist[2]
    assert dist[2] <= 1e-3


def test_float32_game_gives_float64_certificate():
    game = nt.comal_cyclic().astype(np.float32)
    res = nt.solve_nash(game)
    assert res.policy.dtype == np.float64
    P64 = game.P.astype(np.float64)
    assert abs(res.exploitability - exploitability(P64[0], res.policy[0])) <= 1e-15
    np.testing.assert_allclose(res.policy[0], np.array([4, 3, 4]) / 11, rtol=0, atol=1e-6)


def test_prompt_weights_average():
    game = nt.PreferenceGame(np.stack([nt.comal_cyclic().P[0], nt.condorcet_winner().P[0]]),
                             prompt_weights=[0.25, 0.75])
    res = nt.solve_nash(game)
    assert abs(res.exploitability - (0.25 * res.per_prompt_exploitability[0]
                                     + 0.75 * res.per_prompt_exploitability[1])) <= 1e-16


# Bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["simplex", "HIGHS", "", None])
def test_bad_method(method):
    with pytest.raises(InvalidInputError, match="^method:"):
        nt.solve_nash(nt.comal_cyclic(), method=method)


def test_bad_game():
    with pytest.raises(InvalidInputError, match="^game:"):
        nt.solve_nash(nt.comal_cyclic().P[0])


def test_fast_path_refines_inexactly_far_from_the_solution(monkeypatch):
    """Directions refined only to 1e-2 mu while mu is large: the same factorizations and the
    same policy as refining every direction to 1e-12, with fewer solves."""
    from nlhf_theory.equilibria import _maximal_lottery as ml

    calls = {"lu_factor": 0, "lu_solve": 0}
    for name in calls:
        real = getattr(ml.scipy.linalg, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(ml.scipy.linalg, name, counted)
    counts, policies = [], []
    for inexact in (ml._INEXACT, 0.0):
        monkeypatch.setattr(ml, "_INEXACT", inexact)
        calls.update(lu_factor=0, lu_solve=0)
        A = nt.random_skew(400, 1, seed=1).P[0].astype(np.float64) - 0.5
        policies.append(ml.dense_ipm(A, fast=True))
        counts.append(dict(calls))
    (inexact, exact) = counts
    assert inexact["lu_factor"] == exact["lu_factor"]
    assert inexact["lu_solve"] <= 0.85 * exact["lu_solve"]
    np.testing.assert_array_equal(policies[0], policies[1])
