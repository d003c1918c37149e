"""Pessimistic equilibrium learning as Ye et al. 2024 state it (Alg. 1): the version-space
max-min with the preference minimized jointly with the opponent.

Oracles are independent of the code under test: preferences sampled from the confidence set,
scipy's SLSQP on the pair minimum, dense grids for three responses, a hand-derived logistic
case and the closed-form radius.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import optimize, special

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory.algorithms import Dataset
from nlhf_theory.algorithms import _pessimism as ps


# Helpers --------------------------------------------------------------------------------------
def sample_counts(P, n, rng, first=None, second=None):
    """``(W, N)`` of ``n`` comparisons ``a ~ first``, ``b ~ second`` (default uniform), labels
    from ``P`` (one prompt)."""
    Y = P.shape[-1]
    first = np.full(Y, 1.0 / Y) if first is None else first
    second = first if second is None else second
    a, b = rng.choice(Y, n, p=first), rng.choice(Y, n, p=second)
    won = rng.random(n) < P[0, a, b]
    W, N = np.zeros((1, Y, Y)), np.zeros((1, Y, Y))
    np.add.at(W, (0, a, b), won)
    np.add.at(W, (0, b, a), 1.0 - won)
    np.add.at(N, (0, a, b), 1.0)
    np.add.at(N, (0, b, a), 1.0)
    return W, N


def tabular_space(W, N, delta=0.05):
    p_hat = np.where(N > 0, W / np.maximum(N, 1.0), 0.5)
    dim = int(np.sum(np.triu(N[0], 1) > 0))
    return ps.TabularSpace(p_hat, N, ps.confidence_radius(dim, delta))


def preference(theta_upper):
    """The skew preference ``1/2 + theta_ab`` (``a < b``) of an upper-triangular ``theta``."""
    return 0.5 + theta_upper - np.swapaxes(theta_upper, -1, -2)


def value(P, pi1, pi2):
    return float(np.einsum("xa,xab,xb->", pi1, P, pi2))


def random_in_tabular_set(space, radius, rng, on_boundary):
    """A point of ``{sum N (theta - theta_hat)^2 <= radius^2} ∩ [-1/2, 1/2]`` (uncompared
    pairs: anywhere in the box): a point of the ellipsoid clipped coordinate-wise to the box,
    which contains ``theta_hat``, so clipping only moves it closer."""
    up = np.triu(np.ones(space.counts.shape[1:], dtype=bool), 1)[None]
    seen = up & (space.counts > 0)
    z = rng.standard_normal(space.theta_hat.shape)
    norm = np.sqrt(np.sum(np.where(seen, z**2, 0.0)))
    scale = radius * (1.0 if on_boundary else rng.random() ** (1.0 / seen.sum())) / norm
    theta = space.theta_hat + np.where(seen, scale * z / np.sqrt(np.maximum(space.counts, 1)), 0)
    theta = np.where(seen, theta, rng.uniform(-0.5, 0.5, theta.shape))
    return np.where(up, np.clip(theta, -0.5, 0.5), 0.0)


GAME = nt.make_game("random_skew", num_responses=5, seed=3)
P5 = np.asarray(GAME.P)
LOG_REF5 = np.log(np.asarray(GAME.pi_ref))


# The pair minimum -----------------------------------------------------------------------------
@given(st.integers(0, 10**6), st.integers(3, 5), st.integers(5, 400), st.booleans())
def test_lower_value_never_exceeds_a_preference_of_the_confidence_set(seed, Y, n, edge):
    rng = np.random.default_rng(seed)
    P = nt.make_game("random_skew", num_responses=Y, seed=seed % 97).P
    W, N = sample_counts(np.asarray(P), n, rng, first=rng.dirichlet(np.ones(Y)))
    space = tabular_space(W, N)
    radius = ps.confidence_radius(int(np.sum(np.triu(N[0], 1) > 0)), 0.05)
    pi1, pi2 = rng.dirichlet(0.5 * np.ones(Y), size=(2, 1))
    low, _ = space.pair(pi1, pi2[None], np.ones((1, 1)))
    for _ in range(50):
        theta = random_in_tabular_set(space, radius, rng, edge)
        assert low[0] <= value(preference(theta), pi1, pi2) + 1e-12


@given(st.integers(0, 10**6))
def test_linear_lower_values_never_exceed_a_preference_of_the_ellipsoid(seed):
    rng = np.random.default_rng(seed)
    X, Y, d = 2, 4, 3
    F = rng.standard_normal((X, Y, Y, d))
    psi = F - np.swapaxes(F, 1, 2)
    A = rng.standard_normal((d, d))
    design, theta_hat, radius = A @ A.T + 0.5 * np.eye(d), rng.standard_normal(d), 2.0
    d0 = np.array([0.3, 0.7])
    pi1, pi2 = rng.dirichlet(np.ones(Y), size=(2, X))
    root = np.linalg.cholesky(design)
    for link in ("identity", "logistic"):
        space = ps.LinearSpace(psi, theta_hat, design, radius, link)
        low, _ = space.pair(pi1, pi2[None], d0[None])
        for _ in range(100):
            u = rng.standard_normal(d)
            u *= radius * rng.random() ** (1 / d) / np.linalg.norm(u)
            theta = theta_hat + np.linalg.solve(root.T, u)        # ||theta - hat||_design <= r
            z = psi @ theta
            P = 0.5 + z if link == "identity" else special.expit(z)
            truth = np.einsum("x,xa,xab,xb->", d0, pi1, P, pi2)
            assert low[0] <= truth + 1e-12


def test_tabular_pair_minimum_is_exact_against_slsqp():
    rng = np.random.default_rng(7)
    W, N = sample_counts(P5, 60, rng)
    N[0, 0, 4] = N[0, 4, 0] = W[0, 0, 4] = W[0, 4, 0] = 0.0      # one pair never compared
    space = tabular_space(W, N)
    up = np.triu(np.ones((5, 5), dtype=bool), 1)
    th, cnt = space.theta_hat[0][up], space.counts[0][up]
    for _ in range(5):
        pi1, pi2 = rng.dirichlet(np.ones(5), size=(2, 1))
        w = (np.outer(pi1[0], pi2[0]) - np.outer(pi2[0], pi1[0]))[up]
        low, _ = space.pair(pi1, pi2[None], np.ones((1, 1)))
        best = np.inf
        for start in range(6):
            x0 = np.clip(th + 0.01 * np.random.default_rng(start).standard_normal(th.shape),
                         -0.5, 0.5)
            res = optimize.minimize(
                lambda t: t @ w, x0, jac=lambda t: w, bounds=[(-0.5, 0.5)] * len(th),
                constraints=[{"type": "ineq", "fun": lambda t: space.radius**2
                              - np.sum(cnt * (t - th) ** 2),
                              "jac": lambda t: -2 * cnt * (t - th)}],
                method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000})
            best = min(best, res.fun)
        np.testing.assert_allclose(low[0], 0.5 + best, atol=1e-9)


def test_self_play_is_not_penalized_while_the_former_entrywise_bound_is():
    rng = np.random.default_rng(3)
    W, N = sample_counts(P5, 80, rng)
    N[0, 1, 3] = N[0, 3, 1] = W[0, 1, 3] = W[0, 3, 1] = 0.0
    space = tabular_space(W, N)
    F = rng.standard_normal((1, 5, 5, 2))
    psi = F - np.swapaxes(F, 1, 2)
    linear = [ps.LinearSpace(psi, rng.standard_normal(2), np.eye(2) * 3, 1.5, link)
              for link in ("identity", "logistic")]
    for pi in rng.dirichlet(np.ones(5), size=(5, 1)):
        for sp in [space, *linear]:
            low, _ = sp.pair(pi, pi[None], np.ones((1, 1)))
            assert low[0] == pytest.approx(0.5, abs=1e-15)
        assert value(space.entrywise(0.05), pi, pi) < 0.5 - 0.05     # P_low + P_low^T < 1


def test_logistic_bound_is_below_the_true_minimum_where_the_linearized_one_was_not():
    # one pair, ||psi||_{Sigma^-1} = 1, z_hat = 2, radius 2: the true minimum is sigma(0)
    psi = np.zeros((1, 2, 2, 1))
    psi[0, 0, 1, 0], psi[0, 1, 0, 0] = 1.0, -1.0
    space = ps.LinearSpace(psi, np.array([2.0]), np.eye(1), 2.0, "logistic")
    e0, e1 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    low, _ = space.pair(e0, e1[None], np.ones((1, 1)))
    truth = special.expit(2.0 - 2.0)
    linearized = special.expit(2.0) - special.expit(2.0) * special.expit(-2.0) * 2.0
    assert linearized == pytest.approx(0.671, abs=1e-3) and linearized > truth
    assert low[0] <= truth + 1e-15
    rng = np.random.default_rng(0)
    for z, b in rng.uniform([-6, 0], [6, 6], size=(200, 2)):
        sp = ps.LinearSpace(psi, np.array([z]), np.eye(1), b, "logistic")
        low, _ = sp.pair(e0, e1[None], np.ones((1, 1)))
        ts = np.linspace(-b, b, 2001)
        assert low[0] <= special.expit(z + ts).min() + 1e-15


# The radius -------------------------------------------------------------------------------------
def test_confidence_radius_formula_and_coverage_of_the_truth():
    t = math.log(20.0)
    assert ps.confidence_radius(10, 0.05) == pytest.approx(
        0.5 * math.sqrt(10 + 2 * math.sqrt(10 * t) + 2 * t), rel=1e-14)
    assert ps.confidence_radius(3, 0.05, ridge=4.0, norm_bound=2.0) == pytest.approx(
        ps.confidence_radius(3, 0.05) + 4.0, rel=1e-14)
    # P* lies in the tabular set in at least 95% of datasets (binomial: 400 draws, 1% level)
    rng = np.random.default_rng(11)
    theta_star = np.triu(P5 - 0.5, 1)
    inside = 0
    for _ in range(400):
        W, N = sample_counts(P5, 150, rng)
        space = tabular_space(W, N)
        radius = ps.confidence_radius(int(np.sum(np.triu(N[0], 1) > 0)), 0.05)
        inside += np.sum(space.counts * (theta_star - space.theta_hat) ** 2) <= radius**2
    assert inside >= 372  # P(Binomial(400, 0.95) < 372) < 0.01


# The max-min ------------------------------------------------------------------------------------
def simplex_grid(step):
    k = round(1 / step)
    pts = [(i, j, k - i - j) for i in range(k + 1) for j in range(k + 1 - i)]
    return np.array(pts, float) / k


def test_max_min_matches_a_brute_force_grid_search_for_three_responses():
    game = nt.make_game("random_skew", num_responses=3, seed=1, random_ref=True)
    beta, log_ref = 0.2, np.log(np.asarray(game.pi_ref))
    W, N = sample_counts(np.asarray(game.P), 40, np.random.default_rng(2))
    space = tabular_space(W, N)
    res = ps.solve_max_min(space, log_ref, np.ones(1), beta)
    assert res.gap <= 1e-9

    def kl(p):
        return beta * float(np.sum(p * (np.log(np.maximum(p, 1e-300)) - log_ref[0])))

    # coarse: opponents on a 1/150 grid, max player on a 1/40 grid
    inner = np.clip(simplex_grid(1 / 150), 1e-300, 1)
    kl2 = beta * np.sum(inner * (np.log(inner) - log_ref[0]), -1)
    outer = simplex_grid(1 / 40)
    coarse = [float(np.min(space.pair(p[None], inner[:, None], np.ones((len(inner), 1)))[0]
                           + kl2)) - kl(p) for p in outer]
    center = outer[int(np.argmax(coarse))]
    assert np.abs(center - res.policy[0]).sum() <= 0.1
    # zoom: 11 x 11 grids of spacing 5e-3, 1e-3, 2e-4 around the best point so far, the
    # opponent's minimum bracketed by branch and bound (lower, upper) to 1e-9
    for step in (5e-3, 1e-3, 2e-4):
        i, j = np.meshgrid(np.arange(-5, 6), np.arange(-5, 6))
        pts = center + step * np.stack([i.ravel(), j.ravel(), -(i + j).ravel()], -1)
        pts = pts[np.all(pts > 0, -1)]
        bounds = np.array([ps.certify_inner(space, p[None], log_ref, beta, tol=1e-9)
                           for p in pts]) - np.array([kl(p) for p in pts])[:, None]
        assert bounds[:, 0].max() <= res.upper + 1e-12     # no point beats the upper bound
        center = pts[int(np.argmax(bounds[:, 1]))]
    assert bounds[:, 1].max() >= res.value - 1e-4     # resolution 2e-4 x slope < 0.5
    assert np.abs(center - res.policy[0]).sum() <= 1e-3
    # and no coarse grid point beats pi_hat under the exact inner minimum
    exact = [ps.inner_minimum(space, p[None], np.ones(1), log_ref, beta)[0] for p in outer]
    assert max(exact) <= res.value + 1e-9


@pytest.mark.parametrize("Y, n, seed", [(3, 30, 0), (4, 60, 1), (4, 500, 2)])
def test_inner_minimum_is_global_by_branch_and_bound(Y, n, seed):
    game = nt.make_game("random_skew", num_responses=Y, seed=seed, random_ref=True)
    beta, log_ref = 0.1, np.log(np.asarray(game.pi_ref))
    rng = np.random.default_rng(seed)
    space = tabular_space(*sample_counts(np.asarray(game.P), n, rng))
    pi1 = ps.solve_max_min(space, log_ref, np.ones(1), beta).policy
    for pi in (pi1, rng.dirichlet(np.ones(Y), size=1)):
        value_dc, _ = ps.inner_minimum(space, pi, np.ones(1), log_ref, beta)
        lower, upper = ps.certify_inner(space, pi, log_ref, beta, tol=1e-7)
        kl1 = beta * float(np.sum(pi * (np.log(pi) - log_ref)))
        assert upper - lower <= 1e-7
        assert value_dc <= lower - kl1 + 1e-7  # the DC minimum is the global one


def test_vertex_surrogate_is_a_lower_bound_of_the_joint_value():
    rng = np.random.default_rng(4)
    space = tabular_space(*sample_counts(P5, 200, rng))
    for pi1 in rng.dirichlet(np.ones(5), size=(10, 1)):
        exact, _ = ps.inner_minimum(space, pi1, np.ones(1), LOG_REF5, 0.1)
        vertex, _ = ps.vertex_minimum(space, pi1, np.ones(1), LOG_REF5, 0.1)
        assert vertex <= exact + 1e-12


# What the bonus does ----------------------------------------------------------------------------
def test_pessimism_avoids_a_response_whose_wins_are_uncertain():
    # response 4 loses to everything (P = 0.3), compared 3 times per pair and won them all
    # (the greedy estimate makes it the best); the other pairs are compared 400 times exactly
    Y = 5
    P = np.full((1, Y, Y), 0.5)
    N = np.full((1, Y, Y), 400.0)
    N[0, 4, :4] = N[0, :4, 4] = 3.0
    W = N * P
    W[0, 4, :4], W[0, :4, 4] = 3.0, 0.0
    log_ref = np.full((1, Y), -math.log(Y))
    greedy = ps.pessimistic_policy(W, N, log_ref, np.ones(1), 0.1, confidence=0.0).policy
    pess = ps.pessimistic_policy(W, N, log_ref, np.ones(1), 0.1).policy
    assert greedy[0, 4] > 0.5                 # greedy bets on the lucky response
    assert pess[0, 4] < 0.5 * greedy[0, 4]    # pessimism does not


def test_an_unseen_response_pulls_the_pessimistic_max_player_towards_it():
    # the data never show response 2: the version space lets it beat everything, so only
    # playing it guarantees 1/2 against it (unilateral coverage fails; Cui & Du 2022)
    rng = np.random.default_rng(5)
    mu = np.array([0.25, 0.25, 0.0, 0.25, 0.25])
    W, N = sample_counts(P5, 2000, rng, first=mu)
    pess = ps.pessimistic_policy(W, N, LOG_REF5, np.ones(1), 0.1).policy
    greedy = nt.solve_kl_game(np.where(N > 0, W / np.maximum(N, 1), 0.5), GAME.pi_ref,
                              0.1).max_policy
    star = nt.solve_regularized_nash(GAME, 0.1).policy
    assert pess[0, 2] > greedy[0, 2] + 0.1 and pess[0, 2] > star[0, 2] + 0.1


def test_theorem_1_bound_holds_when_the_truth_is_in_the_set():
    # sub-optimality <= 2 r ||Psi(pi*, .)||_{Sigma^-1} = 2 r sqrt(C / n) <= 4 (sqrt(2) r)
    # sqrt(C / n) (Thm. 1 with its beta = sqrt(2) r) whenever P* is in the version space
    beta = 0.1
    star = nt.solve_regularized_nash(GAME, beta).policy
    theta_star = np.triu(P5 - 0.5, 1)
    rng = np.random.default_rng(8)
    checked = 0
    for n in (100, 1000):
        for _ in range(3):
            W, N = sample_counts(P5, n, rng)
            res = ps.pessimistic_policy(W, N, LOG_REF5, np.ones(1), beta)
            space = tabular_space(W, N)
            if np.sum(space.counts * (theta_star - space.theta_hat) ** 2) > space.radius**2:
                continue
            C = nt.algorithms.coverage_coefficient(star, N)
            bound = 2 * res.radius * math.sqrt(C / n) + res.gap
            assert float(nt.suboptimality(GAME, res.policy, beta)) <= bound
            checked += 1
    assert checked >= 4


# The registered algorithm -----------------------------------------------------------------------
def test_registry_algorithm_equals_the_host_solver_on_a_dataset():
    game = nt.make_game("random_skew", num_responses=4, seed=0)
    P, log_ref = np.asarray(game.P), np.log(np.asarray(game.pi_ref))
    rng = np.random.default_rng(9)
    n = 200
    x = np.zeros(n, dtype=np.int32)
    y, y2 = rng.integers(0, 4, n).astype(np.int32), rng.integers(0, 4, n).astype(np.int32)
    label = (rng.random(n) < P[0, y, y2]).astype(np.float64)
    W, N = np.zeros((1, 4, 4)), np.zeros((1, 4, 4))
    np.add.at(W, (0, y, y2), label)
    np.add.at(W, (0, y2, y), 1 - label)
    np.add.at(N, (0, y, y2), 1.0)
    np.add.at(N, (0, y2, y), 1.0)
    for bonus in ("joint", "entrywise"):
        frame = nt.run("pessimistic_nlhf", game, beta=0.1, steps=1, bonus=bonus,
                       dataset=Dataset(x, y, y2, label))
        host = ps.pessimistic_policy(W, N, log_ref, np.ones(1), 0.1, bonus=bonus).policy
        assert float(frame.suboptimality.iloc[-1]) == pytest.approx(
            float(nt.suboptimality(game, host, 0.1)), abs=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"bonus": "lcb"}, "bonus"),
    ({"delta": 0.0}, "delta"),
    ({"delta": 1.0}, "delta"),
    ({"confidence": -1.0}, "confidence"),
    ({"tolerance": 0.0}, "tolerance"),
    ({"norm_bound": -1.0}, "norm_bound"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        nt.algorithms.pessimistic_nlhf(0.1, **kwargs)
