"""Tests of nlhf_theory.estimation: the one Bradley-Terry / linear-preference fit, the
sufficient statistics, both coverage coefficients, and shapes checked at the boundary."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory.estimation import (
    bradley_terry_fit,
    coverage_coefficient,
    dataset_counts,
    elliptical_norm,
    estimate,
    expected_counts,
    fit_bt_reward,
    fit_linear_preference,
    linear_coverage_coefficient,
    mle_preference,
    tabular_features,
)


def random_statistics(rng, shape, p=0.6, dtype=np.float64):
    """Integer comparison statistics ``(W, N)`` with ``N = N^T`` and ``W + W^T = N``."""
    upper = np.triu(rng.integers(1, 30, shape), 1)
    won = np.triu(rng.binomial(upper, p), 1)
    counts = upper + np.swapaxes(upper, -1, -2)
    wins = won + np.swapaxes(upper - won, -1, -2)
    return wins.astype(dtype), counts.astype(dtype)


# The one fit ---------------------------------------------------------------------------------
def test_public_names_are_the_estimation_module_s():
    assert nt.bradley_terry_fit is bradley_terry_fit
    assert nt.fit_bt_reward is fit_bt_reward and nt.tabular_features is tabular_features
    assert nt.RewardFit is nt.estimation.RewardFit
    assert nt.algorithms.coverage_coefficient is coverage_coefficient
    assert nt.algorithms.linear_coverage_coefficient is linear_coverage_coefficient
    assert nt.algorithms.expected_counts is expected_counts


def test_bradley_terry_fit_is_the_tabular_fit_bt_reward_mean_centred():
    # one prompt per matrix (bradley_terry_fit) or all prompts in one fit (fit_bt_reward with
    # one-hot features): the likelihood and the prior decouple over prompts, so they agree
    wins, counts = random_statistics(np.random.default_rng(0), (3, 5, 5))
    rewards = bradley_terry_fit(wins, counts, ridge=0.5)
    with nt.algorithms.float64_mode():
        fit = fit_bt_reward(jnp.asarray(wins), jnp.asarray(counts), tabular_features(3, 5),
                            ridge=0.5)
        reward = np.asarray(fit.reward)
    assert reward.dtype == np.float64
    np.testing.assert_allclose(reward - reward.mean(-1, keepdims=True), rewards, atol=1e-10)
    np.testing.assert_allclose(reward.mean(-1), 0.0, atol=1e-10)  # the prior centres it


def test_fit_bt_reward_is_fit_linear_preference_on_reward_differences():
    rng = np.random.default_rng(1)
    wins, counts = random_statistics(rng, (2, 4, 4))
    phi = rng.normal(size=(2, 4, 3))
    with nt.algorithms.float64_mode():
        fit = fit_bt_reward(jnp.asarray(wins), jnp.asarray(counts), phi, ridge=0.3, steps=7)
        linear = fit_linear_preference(jnp.asarray(wins), jnp.asarray(counts),
                                       phi[:, :, None] - phi[:, None], "logistic", 0.3, 7)
    np.testing.assert_array_equal(np.asarray(fit.theta), np.asarray(linear.theta))
    np.testing.assert_allclose(np.asarray(fit.reward), phi @ np.asarray(linear.theta))


def test_fit_satisfies_the_first_order_condition_and_the_identity_link_is_least_squares():
    rng = np.random.default_rng(2)
    wins, counts = random_statistics(rng, (2, 4, 4))
    F = rng.normal(size=(2, 4, 4, 3))
    psi = F - np.swapaxes(F, 1, 2)
    upper = np.triu(np.ones((4, 4)), 1)[None]
    with nt.algorithms.float64_mode():
        fit = fit_linear_preference(jnp.asarray(wins), jnp.asarray(counts), psi, ridge=0.7)
        theta = np.asarray(fit.theta)
        grad = 0.7 * theta - np.einsum("xab,xabd->d", upper * (wins - counts * np.asarray(
            fit.p_hat)), psi)
        np.testing.assert_allclose(grad, 0.0, atol=1e-9)
        ident = fit_linear_preference(jnp.asarray(wins), jnp.asarray(counts), psi, "identity",
                                      0.7)
    design = 0.7 * np.eye(3) + np.einsum("xab,xabd,xabe->de", upper * counts, psi, psi)
    target = np.einsum("xab,xabd->d", upper * (wins - 0.5 * counts), psi)
    np.testing.assert_allclose(np.asarray(ident.theta), np.linalg.solve(design, target))
    np.testing.assert_allclose(np.asarray(ident.design), design)


def test_bradley_terry_fit_reports_a_fit_that_did_not_converge():
    wins = np.array([[0.0, 10.0], [0.0, 0.0]])  # separable: the MLE is infinite
    counts = np.array([[0.0, 10.0], [10.0, 0.0]])
    with pytest.raises(InvalidInputError, match="did not converge in 2 Newton steps"):
        bradley_terry_fit(wins, counts, ridge=1e-12, steps=2)
    assert np.all(np.isfinite(bradley_terry_fit(wins, counts, ridge=1.0)))


def test_fit_bt_reward_checks_concrete_statistics_and_traces_unchecked():
    counts = np.array([[[0.0, 4.0], [4.0, 0.0]]])
    phi = tabular_features(1, 2)
    with pytest.raises(InvalidInputError, match="wins: must be >= 0 with W"):
        fit_bt_reward(np.array([[[0.0, 3.0], [3.0, 0.0]]]), counts, phi)
    with pytest.raises(InvalidInputError, match="counts: must be >= 0 and symmetric"):
        fit_bt_reward(counts / 2, np.triu(counts), phi)
    good = np.array([[[0.0, 3.0], [1.0, 0.0]]])
    traced = jax.jit(lambda w, c: fit_bt_reward(w, c, phi).theta)(good, counts)
    np.testing.assert_allclose(traced, fit_bt_reward(good, counts, phi).theta, rtol=1e-6)


# Statistics ----------------------------------------------------------------------------------
def test_dataset_counts_and_the_mle_agree_with_a_loop():
    rng = np.random.default_rng(3)
    X, Y, n = 2, 4, 200
    x, y, y2 = rng.integers(0, X, n), rng.integers(0, Y, n), rng.integers(0, Y, n)
    label = rng.integers(0, 2, n).astype(float)
    wins, counts = dataset_counts((x, y, y2, label), X, Y)
    W, N = np.zeros((X, Y, Y)), np.zeros((X, Y, Y))
    for i in range(n):
        W[x[i], y[i], y2[i]] += label[i]
        W[x[i], y2[i], y[i]] += 1 - label[i]
        N[x[i], y[i], y2[i]] += 1
        N[x[i], y2[i], y[i]] += 1
    np.testing.assert_array_equal(wins, W)
    np.testing.assert_array_equal(counts, N)
    p_hat = np.asarray(mle_preference(wins, counts, prior=2.0))
    np.testing.assert_allclose(p_hat, (W + 1.0) / (N + 2.0), rtol=1e-6)
    np.testing.assert_allclose(p_hat + np.swapaxes(p_hat, 1, 2), 1.0, rtol=1e-6)
    tabular, none = estimate(wins, counts, None, "logistic", 1.0, prior=2.0)
    assert none is None and np.array_equal(np.asarray(tabular), p_hat)


def test_expected_counts_are_the_symmetrized_pair_distribution():
    mu = np.array([[0.2, 0.8], [0.5, 0.5]])
    N = expected_counts(mu, [0.25, 0.75])
    np.testing.assert_allclose(N.sum(), 2.0)
    np.testing.assert_allclose(N[1], 0.75 * 2 * np.outer(mu[1], mu[1]))
    np.testing.assert_array_equal(N, np.swapaxes(N, 1, 2))


def test_elliptical_norm_is_the_inverse_quadratic_form():
    rng = np.random.default_rng(4)
    A = rng.normal(size=(3, 3))
    design = A @ A.T + np.eye(3)
    v = rng.normal(size=(2, 5, 3))
    expected = np.sqrt(np.einsum("...d,de,...e->...", v, np.linalg.inv(design), v))
    with nt.algorithms.float64_mode():
        np.testing.assert_allclose(np.asarray(elliptical_norm(jnp.asarray(v), design)), expected)


# Coverage ------------------------------------------------------------------------------------
def test_full_uniform_design_and_missing_pairs():
    Y = 3
    target = np.array([[0.5, 0.3, 0.2]])
    counts = np.ones((1, Y, Y)) - np.eye(Y)[None]  # every pair compared once
    full = coverage_coefficient(target, counts)
    # by hand: opponent e_b, w_ac = pi(a)[c=b] - pi(c)[a=b] over a < c, design N/n = 1/3
    expected = 0.0
    for b in range(Y):
        w = [target[0, a] * (c == b) - target[0, c] * (a == b)
             for a in range(Y) for c in range(a + 1, Y)]
        expected = max(expected, 3 * sum(v * v for v in w))
    np.testing.assert_allclose(full, expected, rtol=1e-12)
    missing = counts.copy()
    missing[0, 0, 1] = missing[0, 1, 0] = 0.0  # the target's comparison (0, 1) never observed
    assert coverage_coefficient(target, missing) == np.inf


def test_coefficient_depends_on_the_design_not_on_the_sample_size():
    target = np.array([[0.7, 0.2, 0.1]])
    counts = np.random.default_rng(0).integers(1, 20, size=(1, 3, 3)).astype(float)
    counts = counts + np.swapaxes(counts, 1, 2)
    counts[0, np.arange(3), np.arange(3)] = 0.0
    np.testing.assert_allclose(coverage_coefficient(target, 7 * counts),
                               coverage_coefficient(target, counts), rtol=1e-12)


def pair_indicators(Y):
    """One-hot features of the unordered pairs: psi(a, b) = e_ab = -psi(b, a) for a < b."""
    pairs = [(a, b) for a in range(Y) for b in range(a + 1, Y)]
    psi = np.zeros((1, Y, Y, len(pairs)))
    for k, (a, b) in enumerate(pairs):
        psi[0, a, b, k], psi[0, b, a, k] = 1.0, -1.0
    return psi


def brute_force(policy, psi, counts, d0, draws):
    """max over random opponents pi2 (rows of draws) of ||E_x psi(x, pi, pi2)||^2_{(S/n)^-1}."""
    upper = np.triu(np.ones(counts.shape[1:]), 1)[None]
    n = np.sum(upper * counts)
    design = np.einsum("xab,xabd,xabe->de", upper * counts, psi, psi) / n
    u = np.einsum("x,xa,kxb,xabd->kd", d0, policy, draws, psi)
    return np.max(np.einsum("kd,kd->k", u, np.linalg.solve(design, u.T).T))


def test_one_hot_pair_features_give_the_tabular_coefficient():
    rng = np.random.default_rng(0)
    target = rng.dirichlet(np.ones(4), size=1)
    counts = expected_counts(rng.dirichlet(np.ones(4), size=1))
    np.testing.assert_allclose(linear_coverage_coefficient(target, pair_indicators(4), counts),
                               coverage_coefficient(target, counts), rtol=1e-10)


def test_maximum_over_opponents_matches_brute_force_with_two_prompts():
    rng = np.random.default_rng(1)
    X, Y, d = 2, 3, 3
    phi = rng.standard_normal((X, Y, d))
    psi = phi[:, :, None] - phi[:, None, :]
    target = rng.dirichlet(np.ones(Y), size=X)
    d0 = np.array([0.3, 0.7])
    counts = expected_counts(rng.dirichlet(np.ones(Y), size=X), d0)
    exact = linear_coverage_coefficient(target, psi, counts, d0)
    vertices = np.eye(Y)[np.array([[a, b] for a in range(Y) for b in range(Y)])]
    np.testing.assert_allclose(brute_force(target, psi, counts, d0, vertices), exact, rtol=1e-10)
    mixed = rng.dirichlet(0.3 * np.ones(Y), size=(20000, X))  # no mixed opponent does better
    assert brute_force(target, psi, counts, d0, mixed) <= exact * (1 + 1e-12)


def test_coefficient_is_scale_free_grows_with_concentration_and_is_infinite_off_span():
    Y = 4
    psi = pair_indicators(Y)
    target = np.full((1, Y), 0.25)
    uniform = expected_counts(target)
    np.testing.assert_allclose(linear_coverage_coefficient(target, psi, 9 * uniform),
                               linear_coverage_coefficient(target, psi, uniform), rtol=1e-12)
    values = [linear_coverage_coefficient(target, psi, expected_counts(
        (1 - t) * target + t * np.array([[0.5, 0.5, 0.0, 0.0]]))) for t in (0.0, 0.5, 0.9)]
    assert values[0] < values[1] < values[2]
    concentrated = expected_counts(np.array([[0.5, 0.5, 0.0, 0.0]]))
    assert linear_coverage_coefficient(target, psi, concentrated) == np.inf
    assert np.isfinite(linear_coverage_coefficient(target, psi, concentrated, ridge=1.0))


@pytest.mark.parametrize("kwargs, match", [
    ({"features": np.ones((1, 3, 3, 2))}, "antisymmetric"),
    ({"counts": -np.ones((1, 3, 3))}, "counts"),
    ({"counts": np.zeros((1, 3, 3))}, "at least one comparison"),
    ({"policy": np.array([[0.5, 0.6, -0.1]])}, "policy"),
    ({"ridge": -1.0}, "ridge"),
])
def test_linear_coverage_bad_input_names_the_argument(kwargs, match):
    args = {"policy": np.full((1, 3), 1 / 3), "features": pair_indicators(3),
            "counts": np.ones((1, 3, 3)), **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        linear_coverage_coefficient(**args)


def test_tabular_coverage_rejects_bad_counts_and_policies():
    target = np.full((1, 3), 1 / 3)
    with pytest.raises(InvalidInputError, match="counts: must be >= 0 and symmetric"):
        coverage_coefficient(target, np.triu(np.ones((1, 3, 3))))
    with pytest.raises(InvalidInputError, match="policy: each distribution must sum to 1"):
        coverage_coefficient(np.full((1, 3), 0.5), np.ones((1, 3, 3)))


# Shapes at the boundary ----------------------------------------------------------------------
W2, N2 = np.array([[[0.0, 3.0], [1.0, 0.0]]]), np.array([[[0.0, 4.0], [4.0, 0.0]]])
PSI2 = np.array([[[[0.0], [1.0]], [[-1.0], [0.0]]]])


@pytest.mark.parametrize("call, match", [
    (lambda: fit_linear_preference(W2[0], N2[0], PSI2), r"wins: expected shape \(X, Y, Y\)"),
    (lambda: fit_linear_preference(W2, N2[:, :1], PSI2), r"counts: expected shape \(1, 2, 2\)"),
    (lambda: fit_linear_preference(W2, N2, PSI2[0]), r"features: expected shape \(X, Y, Y, d\)"),
    (lambda: fit_linear_preference(W2, N2, np.zeros((1, 3, 3, 1))),
     r"features: expected shape \(1, 2, 2, d\)"),
    (lambda: fit_linear_preference(W2, N2, PSI2, link="probit"), "link: must be one of"),
    (lambda: fit_linear_preference(W2, N2, PSI2, ridge=0.0), "ridge: must be finite and > 0"),
    (lambda: fit_linear_preference(W2, N2, PSI2, steps=0), "steps: must be an integer >= 1"),
    (lambda: fit_bt_reward(W2, N2, np.ones((1, 2))), r"phi: expected shape \(X, Y, d\)"),
    (lambda: fit_bt_reward(W2, N2, np.ones((1, 3, 2))), r"phi: expected shape"),
    (lambda: fit_bt_reward(W2[:, :, :1], N2, np.ones((1, 2, 2))), "wins: expected shape"),
    (lambda: mle_preference(W2, N2[0]), r"counts: expected shape \(1, 2, 2\)"),
    (lambda: estimate(W2, N2, PSI2[0], "logistic", 1.0), "features: expected shape"),
    (lambda: elliptical_norm(np.ones((4, 3)), np.eye(2)), r"vectors: expected shape \(\.\.\., 2\)"),
    (lambda: elliptical_norm(np.ones(2), np.ones((2, 3))), r"design: expected shape \(d, d\)"),
    (lambda: dataset_counts((np.zeros(3, int),) * 3, 1, 2), "data: expected four arrays"),
    (lambda: dataset_counts((np.zeros(3, int),) * 3 + (np.zeros(2),), 1, 2),
     r"data.label: expected shape \(n,\) = \(3,\)"),
    (lambda: bradley_terry_fit(W2[..., :1], N2), r"wins: expected shape \(\.\.\., Y, Y\)"),
    (lambda: bradley_terry_fit(W2, N2[0]), "counts: expected shape"),
    (lambda: tabular_features(2, 0), "num_responses: must be an integer >= 1"),
    (lambda: expected_counts(np.ones(3) / 3), r"behaviour: expected shape \(X, Y\)"),
    (lambda: coverage_coefficient(np.ones(2) / 2, N2), r"policy: expected shape \(X, Y\)"),
    (lambda: coverage_coefficient(np.ones((1, 2)) / 2, N2[:, :1]),
     r"counts: expected shape \(1, 2, 2\)"),
    (lambda: linear_coverage_coefficient(np.ones((1, 2)) / 2, PSI2[0], N2),
     r"features: expected shape \(X, Y, Y, d\)"),
])
def test_bad_shapes_name_the_argument_and_the_expected_shape(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()


def test_shapes_are_checked_when_traced():
    with pytest.raises(InvalidInputError, match="features: expected shape"):
        jax.jit(lambda w, n: fit_linear_preference(w, n, PSI2[0]).theta)(W2, N2)
