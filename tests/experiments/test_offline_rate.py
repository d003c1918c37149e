"""The linear-feature coverage coefficient against the tabular one and brute force."""

import numpy as np
import pytest

from nlhf_theory import InvalidInputError
from nlhf_theory.algorithms import coverage_coefficient, expected_counts, linear_coverage_coefficient


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
def test_bad_input_names_the_argument(kwargs, match):
    args = {"policy": np.full((1, 3), 1 / 3), "features": pair_indicators(3),
            "counts": np.ones((1, 3, 3)), **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        linear_coverage_coefficient(**args)
