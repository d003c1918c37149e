"""The enhancer of optimistic equilibrium learning as Ye et al. 2024, Alg. 2 states it.

Oracles: hand-derived closed forms (single pairs, one flat plus one curved coordinate, a
one-dimensional linear class), dense grids and multi-start L-BFGS-B over the box of
preferences, and enumeration of every joint pure response.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import nlhf_theory as nt
from nlhf_theory.algorithms._uncertainty import (
    linear_design,
    linear_enhancer,
    linear_uncertainty,
    tabular_enhancer,
    tabular_enhancer_indices,
    uncertainty_ratio,
)


def random_state(rng, X, Y, unseen=0.3):
    """Counts (some pairs never compared), a skew P_hat (1/2 on unseen pairs), pi1 and d0."""
    N = np.triu(rng.integers(1, 200, size=(X, Y, Y)) * (rng.uniform(size=(X, Y, Y)) > unseen),
                1).astype(float)
    N = N + np.swapaxes(N, 1, 2)
    upper = np.triu(np.where(N > 0, rng.uniform(size=(X, Y, Y)), 0.5), 1)
    P = upper + np.swapaxes(np.triu(1.0 - upper, 1), 1, 2)
    P[:, np.arange(Y), np.arange(Y)] = 0.5
    return rng.dirichlet(np.ones(Y), size=X), P, N, rng.dirichlet(np.ones(X))


def ratio_of(P, main, second, p_hat, counts, d0, lam, m):
    """Alg. 2's ratio at one preference P, written from its definition (comparisons per pair)."""
    num = np.sum(d0[:, None, None] * main[:, :, None] * second[:, None, :] * (P - p_hat))
    upper = np.triu(np.ones(P.shape[1:]), 1)
    return abs(num) / np.sqrt(lam + np.sum(upper * counts / m * (P - p_hat) ** 2))


def unpack(z, p_hat):
    """A skew P from its upper-triangular entries z (all prompts)."""
    X, Y, _ = p_hat.shape
    i, j = np.triu_indices(Y, 1)
    P = np.full_like(p_hat, 0.5)
    P[:, i, j] = z.reshape(X, -1)
    P[:, j, i] = 1.0 - P[:, i, j]
    return P


# The ratio ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p_hat_01, counts, lam, m", [
    (0.5, 0.0, 1.0, 10), (0.8, 30.0, 1.0, 10), (0.8, 30.0, 0.1, 10), (0.8, 30.0, 1.0, 100),
    (0.2, 500.0, 2.0, 7)])
def test_single_pair_closed_form(p_hat_01, counts, lam, m):
    # pi1 = e_0 against pi2 = e_1: |P - P_hat| can reach c = max(P_hat, 1 - P_hat), and
    # delta / sqrt(lambda + (N/m) delta^2) increases in delta: Gamma = c / sqrt(lambda + N c^2 / m)
    p_hat = np.array([[[0.5, p_hat_01], [1.0 - p_hat_01, 0.5]]])
    N = np.array([[[0.0, counts], [counts, 0.0]]])
    c = max(p_hat_01, 1.0 - p_hat_01)
    got = uncertainty_ratio([[1.0, 0.0]], [[0.0, 1.0]], p_hat, N, [1.0], lam, m)
    assert got == pytest.approx(c / np.sqrt(lam + counts * c**2 / m), rel=1e-14)


@pytest.mark.parametrize("lam, counts, m", [(1.0, 500.0, 50), (0.5, 500.0, 50), (1.0, 2000.0, 50),
                                            (1.0, 500.0, 20)])
def test_interior_optimum_closed_form(lam, counts, m):
    # pi1 = (1/2, 1/2, 0) against e_2; pair (0, 2) never compared (flat: b = 1/2 * 1/2 = 1/4),
    # pair (1, 2) compared N times (c = 1/2, D = N/m), P_hat = 1/2: the optimum
    # (b + c delta) / sqrt(lambda + D delta^2) is at delta = c lambda / (b D) (inside the box
    # for these settings), with value sqrt(b^2 / lambda + c^2 / D) (Cauchy-Schwarz).
    b, c, D = 0.25, 0.5, counts / m
    assert c * lam / (b * D) <= 0.5
    N = np.zeros((1, 3, 3))
    N[0, 1, 2] = N[0, 2, 1] = counts
    got = uncertainty_ratio([[0.5, 0.5, 0.0]], [[0.0, 0.0, 1.0]], np.full((1, 3, 3), 0.5), N,
                            [1.0], lam, m)
    assert got == pytest.approx(np.sqrt(b**2 / lam + c**2 / D), rel=1e-13)


@pytest.mark.parametrize("seed", range(6))
def test_ratio_is_the_sup_over_the_box(seed):
    """Attained by a preference of the class; no sampled preference and no local optimum of
    L-BFGS-B from 12 starts exceeds it; the best local optimum reaches it to 1e-9."""
    rng = np.random.default_rng(seed)
    X, Y = 1 + seed % 2, 3 + seed % 3
    main, p_hat, N, d0 = random_state(rng, X, Y)
    second = rng.dirichlet(np.ones(Y), size=X)
    lam, m = 10 ** rng.uniform(-1, 0.5), int(rng.integers(5, 60))
    value, P = uncertainty_ratio(main, second, p_hat, N, d0, lam, m, return_witness=True)
    assert np.all((P >= 0) & (P <= 1)) and np.allclose(P + np.swapaxes(P, 1, 2), 1.0)
    assert ratio_of(P, main, second, p_hat, N, d0, lam, m) == pytest.approx(value, rel=1e-12)
    n = X * Y * (Y - 1) // 2
    samples = [ratio_of(unpack(rng.uniform(size=n), p_hat), main, second, p_hat, N, d0, lam, m)
               for _ in range(1000)]
    assert max(samples) <= value * (1 + 1e-12)
    best = 0.0
    for _ in range(12):
        found = minimize(lambda z: -ratio_of(unpack(z, p_hat), main, second, p_hat, N, d0, lam,
                                             m), rng.uniform(size=n), method="L-BFGS-B",
                         bounds=[(0.0, 1.0)] * n, options={"ftol": 1e-15, "gtol": 1e-12})
        assert -found.fun <= value * (1 + 1e-12)
        best = max(best, -found.fun)
    assert best >= value * (1 - 1e-9)


def test_ratio_against_a_dense_grid():
    # three pairs (Y = 3, one prompt, a mixed pi2): the maximum over a 101^3 grid of the box is
    # below the ratio and within the grid's resolution of it
    rng = np.random.default_rng(11)
    main, p_hat, N, d0 = random_state(rng, 1, 3, unseen=0.0)
    second = rng.dirichlet(np.ones(3), size=1)
    lam, m = 0.7, 20
    value = uncertainty_ratio(main, second, p_hat, N, d0, lam, m)
    t = np.linspace(0.0, 1.0, 101)
    z = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
    i, j = np.triu_indices(3, 1)
    delta = z - p_hat[0, i, j]
    w = main[0, i] * second[0, j] - main[0, j] * second[0, i]
    grid = np.abs(delta @ w) / np.sqrt(lam + (delta**2) @ (N[0, i, j] / m))
    assert grid.max() <= value * (1 + 1e-12)
    assert grid.max() >= value * (1 - 1e-3)


# The enhancer ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(25))
def test_enhancer_is_the_argmax_over_all_pure_responses(seed):
    rng = np.random.default_rng(100 + seed)
    X, Y = [(1, 3), (1, 6), (2, 4), (3, 3), (2, 5)][seed % 5]
    main, p_hat, N, d0 = random_state(rng, X, Y, unseen=rng.uniform(0.0, 0.8))
    if seed % 3 == 0:  # a peaked main agent
        main = 0.95 * np.eye(Y)[rng.integers(0, Y, size=X)] + 0.05 * main
    lam, m = 10 ** rng.uniform(-2, 1), int(rng.integers(1, 100))
    eye = np.eye(Y)
    values = {b: uncertainty_ratio(main, eye[list(b)], p_hat, N, d0, lam, m)
              for b in itertools.product(range(Y), repeat=X)}
    pick = tabular_enhancer_indices(main, p_hat, N, d0, lam, m)
    assert values[tuple(pick)] >= max(values.values()) * (1 - 1e-12)
    # convex in pi2: no mixed response beats the best pure one
    mixed = [uncertainty_ratio(main, rng.dirichlet(np.ones(Y), size=X), p_hat, N, d0, lam, m)
             for _ in range(50)]
    assert max(mixed) <= max(values.values()) * (1 + 1e-12)


@pytest.mark.parametrize("seed", [64, 70, 179])
def test_enhancer_finds_switches_inside_a_piece(seed):
    """States (found by a search over seeds) where a response is the per-prompt maximizer of
    ``psi(kappa)`` only between two crossings inside one piece: probing the pieces between
    breakpoints alone misses the maximizer."""
    rng = np.random.default_rng(seed)
    Y = 3 + seed % 3
    main, p_hat, N, d0 = random_state(rng, 1, Y, unseen=0.3)
    lam, m = 10 ** rng.uniform(0, 2), int(rng.integers(20, 200))
    eye = np.eye(Y)
    best = max(uncertainty_ratio(main, eye[[b]], p_hat, N, d0, lam, m) for b in range(Y))
    pick = tabular_enhancer_indices(main, p_hat, N, d0, lam, m)
    assert uncertainty_ratio(main, eye[pick], p_hat, N, d0, lam, m) >= best * (1 - 1e-12)


def limit_choice(main, p_hat, d0):
    """Large-lambda limit of the argmax: max over signs of sum_a d0 pi1(a) cap_ab (one prompt)."""
    up = [np.sum(d0[0] * np.delete(main[0] * (1.0 - p_hat[0, :, b]), b)) for b in range(3)]
    down = [np.sum(d0[0] * np.delete(main[0] * p_hat[0, :, b], b)) for b in range(3)]
    return int(np.argmax(np.maximum(up, down)))


def test_regularization_and_batch_size_move_the_choice_as_the_formula_says():
    # response 0: its pairs were compared 400 times, and P_hat says 0 loses them all (the box
    # lets P move by up to 0.95); response 2: its pair with 1 never compared (P_hat = 1/2).
    main = np.array([[0.1, 0.5, 0.4]])
    p_hat = np.full((1, 3, 3), 0.5)
    p_hat[0, 1, 0] = p_hat[0, 2, 0] = 0.95
    p_hat[0, 0, 1] = p_hat[0, 0, 2] = 0.05
    N = np.zeros((1, 3, 3))
    N[0, 0, 1:] = N[0, 1:, 0] = 400.0
    d0 = np.array([1.0])
    # data negligible (lambda >> N / m): the widest box wins, response 0
    assert limit_choice(main, p_hat, d0) == 0
    assert tabular_enhancer_indices(main, p_hat, N, d0, 1e4, 1)[0] == 0
    assert tabular_enhancer_indices(main, p_hat, N, d0, 1.0, 10**5)[0] == 0
    # data dominant (N / m >> lambda): the pairs of 0 are pinned, the unexplored one wins
    assert tabular_enhancer_indices(main, p_hat, N, d0, 1.0, 1)[0] != 0
    assert tabular_enhancer_indices(main, p_hat, N, d0, 1e-2, 10)[0] != 0
    # only N / m enters: scaling counts and batch size together changes nothing
    eye = np.eye(3)
    for b in range(3):
        assert uncertainty_ratio(main, eye[[b]], p_hat, N, d0, 0.3, 7) == pytest.approx(
            uncertainty_ratio(main, eye[[b]], p_hat, 5 * N, d0, 0.3, 35), rel=1e-14)


def test_the_ratio_couples_prompts_through_d0():
    # one prompt with all the weight decides; the other prompt's choice cannot matter
    rng = np.random.default_rng(3)
    main, p_hat, N, _ = random_state(rng, 2, 4)
    d0 = np.array([1.0, 0.0])
    pick = tabular_enhancer_indices(main, p_hat, N, d0, 1.0, 10)
    alone = tabular_enhancer_indices(main[:1], p_hat[:1], N[:1], d0[:1], 1.0, 10)
    assert pick[0] == alone[0]


def test_enhancer_inside_jit_and_vmap_matches_the_host():
    rng = np.random.default_rng(7)
    states = [random_state(rng, 2, 4) for _ in range(3)]
    with nt.algorithms.float64_mode():
        main, p_hat, N, d0 = (jnp.asarray(np.stack(s)) for s in zip(*states))
        batched = jax.jit(jax.vmap(lambda a, b, c, d: tabular_enhancer(a, b, c, d, 0.5, 20)))
        onehot = np.asarray(batched(main, p_hat, N, d0))
    for k, (a, b, c, d) in enumerate(states):
        np.testing.assert_array_equal(onehot[k].argmax(-1),
                                      tabular_enhancer_indices(a, b, c, d, 0.5, 20))


def test_proxy_is_a_different_rule():
    """The proxy picks a response with a smaller ratio than Alg. 2's on some random states."""
    rng = np.random.default_rng(0)
    worse = 0
    for _ in range(30):
        main, p_hat, N, d0 = random_state(rng, 1, 5)
        eye = np.eye(5)
        w = [np.outer(main[0], e) - np.outer(e, main[0]) for e in eye]
        proxy = int(np.argmax([np.sum(np.triu(v**2 / (1.0 + N[0] / 50), 1)) for v in w]))
        exact = tabular_enhancer_indices(main, p_hat, N, d0, 1.0, 50)
        worse += uncertainty_ratio(main, eye[[proxy]], p_hat, N, d0, 1.0, 50) < (
            uncertainty_ratio(main, eye[exact], p_hat, N, d0, 1.0, 50) * (1 - 1e-9))
    assert worse > 0


# Linear class ------------------------------------------------------------------------------
def test_linear_one_dimensional_closed_form():
    # d = 1: |u delta| / sqrt(lambda + S delta^2) increases in |delta| <= 2B, so
    # Gamma = 2B |u| / sqrt(lambda + 4 B^2 S) with S = (1/m) N slope^2 psi^2
    psi = np.zeros((1, 2, 2, 1))
    psi[0, 0, 1, 0], psi[0, 1, 0, 0] = 0.7, -0.7
    slope = np.full((1, 2, 2), 0.2)
    N = np.array([[[0.0, 30.0], [30.0, 0.0]]])
    for lam, m, bound in [(1.0, 10, 0.5), (0.1, 10, 0.5), (1.0, 100, 0.5), (1.0, 10, 3.0)]:
        u = 0.2 * 0.7 * 0.6  # pi1 = (0.6, 0.4) against e_1
        S = 30.0 / m * 0.2**2 * 0.7**2
        with nt.algorithms.float64_mode():
            got = linear_uncertainty(jnp.array([[0.6, 0.4]]), jnp.array([[0.0, 1.0]]), psi,
                                     jnp.asarray(slope), jnp.asarray(N), jnp.ones(1), lam, m,
                                     bound)
        assert float(got) == pytest.approx(2 * bound * u / np.sqrt(lam + 4 * bound**2 * S),
                                           rel=1e-13)


@pytest.mark.parametrize("seed", range(4))
def test_linear_ratio_is_the_sup_over_the_parameter_ball(seed):
    """Against the definition, with the design summed over individual comparisons."""
    rng = np.random.default_rng(seed)
    X, Y, d = 2, 4, 3
    F = rng.normal(size=(X, Y, Y, d))
    psi = F - np.swapaxes(F, 1, 2)
    slope = rng.uniform(0.05, 0.25, size=(X, Y, Y))
    slope = 0.5 * (slope + np.swapaxes(slope, 1, 2))
    main, second = rng.dirichlet(np.ones(Y), size=X), rng.dirichlet(np.ones(Y), size=X)
    d0 = rng.dirichlet(np.ones(X))
    comparisons = [(rng.integers(X), *rng.choice(Y, 2, replace=False)) for _ in range(40)]
    N = np.zeros((X, Y, Y))
    for x, a, b in comparisons:
        N[x, a, b] += 1
        N[x, b, a] += 1
    lam, m, bound = 0.5, 8, 0.7
    with nt.algorithms.float64_mode():
        value = float(linear_uncertainty(jnp.asarray(main), jnp.asarray(second), psi,
                                         jnp.asarray(slope), jnp.asarray(N), jnp.asarray(d0),
                                         lam, m, bound))
    u = np.einsum("x,xa,xb,xab,xabd->d", d0, main, second, slope, psi)

    def ratio(delta):
        insample = sum((slope[x, a, b] * psi[x, a, b] @ delta) ** 2 for x, a, b in comparisons)
        return abs(u @ delta) / np.sqrt(lam + insample / m)

    directions = rng.normal(size=(4000, d))
    deltas = 2 * bound * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    deltas *= rng.uniform(size=(4000, 1)) ** 0.2
    assert max(ratio(v) for v in deltas) <= value * (1 + 1e-12)
    best = 0.0
    for _ in range(10):  # SLSQP may end slightly outside the ball: scale its point back in
        v = minimize(lambda v: -ratio(v), rng.normal(size=d), method="SLSQP",
                     constraints=[{"type": "ineq", "fun": lambda v: 4 * bound**2 - v @ v}],
                     options={"ftol": 1e-14, "maxiter": 500}).x
        best = max(best, ratio(v * min(1.0, 2 * bound / np.linalg.norm(v))))
    assert value * (1 - 1e-9) <= best <= value * (1 + 1e-12)


def two_prompt_features():
    """pi1 = e_2 on both prompts; per prompt the largest ||g[x, b]|| is b = 0, but the two
    prompts' b = 0 features cancel, so the joint maximum is b = (1, 1)."""
    psi = np.zeros((2, 3, 3, 2))
    vectors = {(0, 0): [1.0, 0.0], (0, 1): [0.0, 0.9], (1, 0): [-1.0, 0.0], (1, 1): [0.0, 0.9]}
    for (x, b), v in vectors.items():
        psi[x, 2, b] = 2.0 * np.array(v)  # d0 = 1/2
        psi[x, b, 2] = -psi[x, 2, b]
    return psi, jnp.asarray(np.tile(np.eye(3)[2], (2, 1)))


@pytest.mark.parametrize("max_enumeration", [2**16, 1])
def test_linear_enhancer_maximizes_the_joint_expected_feature(max_enumeration):
    psi, main = two_prompt_features()
    with nt.algorithms.float64_mode():
        pick = linear_enhancer(main, psi, jnp.ones((2, 3, 3)), jnp.zeros((2, 3, 3)),
                               jnp.full(2, 0.5), 1.0, 10, 1.0, max_enumeration)
    np.testing.assert_array_equal(np.asarray(pick).argmax(-1), [1, 1])


@pytest.mark.parametrize("max_enumeration", [2**16, 1])
@pytest.mark.parametrize("seed", range(5))
def test_linear_enhancer_is_the_argmax_over_all_pure_responses(seed, max_enumeration):
    rng = np.random.default_rng(seed)
    X, Y, d = 3, 4, 3
    F = rng.normal(size=(X, Y, Y, d))
    psi = F - np.swapaxes(F, 1, 2)
    main = rng.dirichlet(np.ones(Y), size=X)
    N = np.triu(rng.integers(0, 30, size=(X, Y, Y)), 1).astype(float)
    N = N + np.swapaxes(N, 1, 2)
    d0 = rng.dirichlet(np.ones(X))
    A = np.einsum("xab,xabd,xabe->de", np.triu(N, 1), psi, psi) / 5 + 0.4 / 4 * np.eye(d)
    g = np.einsum("x,xa,xabd->xbd", d0, main, psi)
    norms = {b: g[np.arange(X), list(b)].sum(0) @ np.linalg.solve(A, g[np.arange(X),
                                                                         list(b)].sum(0))
             for b in itertools.product(range(Y), repeat=X)}
    with nt.algorithms.float64_mode():
        pick = linear_enhancer(jnp.asarray(main), psi, jnp.ones((X, Y, Y)), jnp.asarray(N),
                               jnp.asarray(d0), 0.4, 5, 1.0, max_enumeration)
    assert norms[tuple(np.asarray(pick).argmax(-1))] == pytest.approx(max(norms.values()),
                                                                      rel=1e-12)


def test_linear_design_uses_regularization_bound_and_batch_size():
    # response 0 points along coordinate 1, which has N / m of data; response 1 along the
    # unexplored coordinate 2 with half the length: norms^2 1 / (S + r) and 1/4 / r with
    # r = lambda / (4 B^2), so response 1 wins exactly when r < S / 3
    psi = np.zeros((1, 3, 3, 2))
    psi[0, 2, 0], psi[0, 2, 1] = [1.0, 0.0], [0.0, 0.5]
    psi[0, 0, 2], psi[0, 1, 2] = -psi[0, 2, 0], -psi[0, 2, 1]
    N = np.zeros((1, 3, 3))
    N[0, 0, 2] = N[0, 2, 0] = 300.0
    main = jnp.array([[0.0, 0.0, 1.0]])

    def choice(lam, m, bound):
        with nt.algorithms.float64_mode():
            return int(np.asarray(linear_enhancer(main, psi, jnp.ones((1, 3, 3)), jnp.asarray(N),
                                                  jnp.ones(1), lam, m, bound)).argmax())

    assert choice(40.0, 1, 1.0) == 1  # S = 300, r = 10
    assert choice(4000.0, 1, 1.0) == 0  # r = 1000
    assert choice(40.0, 100, 1.0) == 0  # S = 3
    assert choice(4000.0, 1, 10.0) == 1  # r = 10
    with nt.algorithms.float64_mode():
        A = linear_design(jnp.asarray(N), psi, jnp.full((1, 3, 3), 0.5), 2.0, 4, 0.5)
    np.testing.assert_allclose(np.asarray(A), np.diag([300 / 4 * 0.25 + 2.0, 2.0]), rtol=1e-14)


# Inside the algorithm ----------------------------------------------------------------------
@pytest.mark.parametrize("enhancer", ["uncertainty", "uncertainty_proxy"])
@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_optimistic_runs_with_both_enhancers(enhancer, mode):
    game = nt.make_game("random_skew", num_responses=4, num_prompts=2, seed=1)
    frame = nt.run("optimistic_nlhf", game, beta=0.1, steps=3, mode=mode, seeds=2,
                   comparisons_per_round=20, enhancer=enhancer)
    assert np.all(np.isfinite(frame.suboptimality))
    F = np.random.default_rng(0).normal(size=(2, 4, 4, 2))
    frame = nt.run("optimistic_nlhf", game, beta=0.1, steps=2, mode=mode, comparisons_per_round=20,
                   enhancer=enhancer, features=F - np.swapaxes(F, 1, 2), link="identity")
    assert np.all(np.isfinite(frame.suboptimality))


def test_first_round_enhancer_in_the_algorithm_is_alg2s():
    # exact mode, round 1: no data, P_hat = 1/2, so the main agent is pi_ref and every pair's
    # box is [0, 1] around 1/2: Gamma(e_b) = sum_x d0(x) (1 - pi_ref(b|x)) / 2 / sqrt(lambda),
    # maximized by the rarest response of each prompt. The counts added are
    # m d0 pi_ref(a) e_b(b), symmetrized: the diagonal is nonzero only at the enhancer's b.
    game = nt.make_game("random_skew", num_responses=5, num_prompts=2, seed=4, random_ref=True)
    algorithm = nt.algorithms.make_algorithm(nt.ALGORITHMS, "optimistic_nlhf", 0.1, "exact",
                                             {"comparisons_per_round": 10, "regularization": 0.3})
    with nt.algorithms.float64_mode():
        g = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
        state = jax.jit(algorithm.update)(algorithm.init(g, None), g, jax.random.key(0))
        counts = np.asarray(state.counts)
    chosen = np.argmax(np.diagonal(counts, axis1=1, axis2=2), axis=1)
    np.testing.assert_array_equal(chosen, np.argmin(game.pi_ref, axis=1))


@pytest.mark.parametrize("seed", [0, 3, 8])
def test_enhancer_in_the_algorithm_maximizes_the_ratio_over_its_data(seed):
    # exact mode, round 2: the comparisons added are m d0(x) pi1_2(a) [b = b(x)], symmetrized,
    # so the diagonal of the new counts shows the enhancer's response; it must maximize the
    # ratio (enumerated over joint pure responses) at the round's P_hat, counts and main agent
    # (on these games the proxy's choice has a ratio 4-27% below the maximum)
    game = nt.make_game("random_skew", num_responses=4, num_prompts=2, seed=seed,
                        random_ref=True)
    lam, m = 1.0, 10
    algorithm = nt.algorithms.make_algorithm(nt.ALGORITHMS, "optimistic_nlhf", 0.1, "exact",
                                             {"comparisons_per_round": m, "regularization": lam})
    with nt.algorithms.float64_mode():
        g = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
        first = jax.jit(algorithm.update)(algorithm.init(g, None), g, jax.random.key(0))
        second = jax.jit(algorithm.update)(first, g, jax.random.key(1))
    wins, counts = np.asarray(first.wins), np.asarray(first.counts)
    p_hat = np.where(counts > 0, wins / np.where(counts > 0, counts, 1.0), 0.5)
    main = np.asarray(first.policy)
    added = np.diagonal(np.asarray(second.counts) - counts, axis1=1, axis2=2)
    chosen = tuple(np.argmax(added, axis=1))
    eye = np.eye(4)
    values = {b: uncertainty_ratio(main, eye[list(b)], p_hat, counts, game.prompt_weights, lam,
                                   m) for b in itertools.product(range(4), repeat=2)}
    assert values[chosen] >= max(values.values()) * (1 - 1e-12)


@pytest.mark.parametrize("link", ["identity", "logistic"])
def test_linear_enhancer_in_the_algorithm_maximizes_the_ratio_over_its_data(link):
    # as above with features: the enhancer's response at round 2 maximizes ||u||_{A^-1}
    # (written here from its definition) over all joint pure responses
    game = nt.make_game("random_skew", num_responses=4, num_prompts=2, seed=5, random_ref=True)
    F = np.random.default_rng(1).normal(size=(2, 4, 4, 3))
    psi = F - np.swapaxes(F, 1, 2)
    lam, m, bound = 0.5, 10, 2.0
    algorithm = nt.algorithms.make_algorithm(
        nt.ALGORITHMS, "optimistic_nlhf", 0.1, "exact",
        {"comparisons_per_round": m, "regularization": lam, "parameter_bound": bound,
         "features": psi, "link": link})
    with nt.algorithms.float64_mode():
        g = jax.tree_util.tree_map(jnp.asarray, game.astype(np.float64))
        first = jax.jit(algorithm.update)(algorithm.init(g, None), g, jax.random.key(0))
        second = jax.jit(algorithm.update)(first, g, jax.random.key(1))
        fit = nt.estimation.fit_linear_preference(first.wins, first.counts, psi, link)
    counts, main = np.asarray(first.counts), np.asarray(first.policy)
    slope = np.asarray(fit.slope)
    added = np.diagonal(np.asarray(second.counts) - counts, axis1=1, axis2=2)
    chosen = tuple(np.argmax(added, axis=1))
    A = (np.einsum("xab,xabd,xabe->de", np.triu(counts * slope**2, 1), psi, psi) / m
         + lam / (4 * bound**2) * np.eye(3))
    d0 = game.prompt_weights

    def norm(b):
        u = sum(d0[x] * main[x] @ (slope[x, :, b[x], None] * psi[x, :, b[x]]) for x in range(2))
        return u @ np.linalg.solve(A, u)

    values = {b: norm(b) for b in itertools.product(range(4), repeat=2)}
    assert values[chosen] >= max(values.values()) * (1 - 1e-12)


def test_bad_parameter_bound_rejected():
    game = nt.make_game("random_skew", num_responses=3, seed=0)
    with pytest.raises(nt.InvalidInputError, match="parameter_bound"):
        nt.run("optimistic_nlhf", game, beta=0.1, steps=1, parameter_bound=0.0)
    with pytest.raises(nt.InvalidInputError, match="enhancer"):
        nt.run("optimistic_nlhf", game, beta=0.1, steps=1, enhancer="proxy")
