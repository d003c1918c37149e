"""offline_rate: the linear coverage coefficient (library) and a CI subset of the experiment.

The coefficient is tested against the tabular one and brute force; the experiment's checks
(Thm. 1's bound and the version space's coverage, rate in n, slope in C, a response never
shown, BT plateau) on a small grid with the same bands.
"""

import numpy as np
import pandas as pd
import pytest

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory.algorithms import _pessimism as pessimism
from nlhf_theory.algorithms import (
    coverage_coefficient,
    expected_counts,
    linear_coverage_coefficient,
)
from nlhf_theory.reproduce import load_experiment
from nlhf_theory.reproduce._runner import _with_cell_columns


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


# The experiment (experiments/offline_rate): a fast subset of its checks, same bands ----------
@pytest.fixture(scope="module")
def experiment():
    return load_experiment("offline_rate")


@pytest.fixture(scope="module")
def tabular_results(experiment):
    """Equilibrium learners at n = 100 and 3000 and BT methods at n = 3000, random skew game,
    beta = 1, uniform and poorly covering behaviours; a response never shown at n = 3000."""
    settings = {**experiment.settings("quick"),
                "runs": [["random skew (tabular)", 1.0, [100, 3000]]],
                "cases": [["random skew (tabular)", 0.1, "missing", [3000]]],
                "bt_num_pairs": [3000], "mixing": [0.0, 0.8, 0.97], "seeds": 4}
    run = experiment.run
    frames = [_with_cell_columns(run.run_cell(dict(cell)), cell) for cell in run.cells(settings)]
    return run, settings, pd.concat(frames, ignore_index=True)


def test_equilibrium_learners_converge_at_least_at_the_rate_of_theorem_1(tabular_results):
    run, settings, results = tabular_results
    good = run.final(results)
    good = good[good.mixing == 0.0]
    for method in ("pessimistic_nlhf", "greedy_mle_nash"):
        fitted = run.rate(good[good.method == method])
        assert fitted.slope <= settings["slope_bound"], (method, fitted)


def test_theorem_1_coverage_slope_unseen_response_and_bt_plateau(tabular_results):
    run, settings, results = tabular_results
    checks = run.checks(results, settings)
    wanted = ("Thm. 1:", "The version space", "C^slope", "never shown", "BT methods",
              "beat the BT", "plateau")
    selected = [c for c in checks if any(w in c.claim for w in wanted)]
    assert len(selected) == 7
    for check in selected:
        assert check.passed, check


def test_thm1_rows_carry_the_paper_bound_with_the_radius_used(tabular_results):
    run, _, results = tabular_results
    rows = run.final(results)
    rows = rows[rows.method == "pessimistic_nlhf"]
    finite = rows[np.isfinite(rows.coverage)]
    np.testing.assert_allclose(
        finite.bound, 4 * np.sqrt(2) * finite.radius * np.sqrt(finite.coverage / finite.n))
    # r = confidence_radius(d, 0.05) for the d <= 10 pairs compared
    low, high = (pessimism.confidence_radius(d, 0.05) for d in (1, 10))
    assert np.all((rows.radius >= low) & (rows.radius <= high + 1e-12))


def test_behaviours_cases_and_population_reward(experiment):
    run = experiment.run
    game, psi, phi, theta = run.build_game(
        experiment.settings("quick")["games"]["BT-linear (d=3)"])
    target = nt.solve_regularized_nash(game, 1.0).policy
    mus = run.behaviours(target, [0.0, 0.5, 1.0], 2)
    np.testing.assert_allclose(mus.sum(-1), 1.0)
    np.testing.assert_allclose(mus[0], 1.0 / game.num_responses)
    assert set(np.flatnonzero(mus[-1][0])) == set(np.argsort(target[0])[:2])
    first, second, hidden = run.case_data(target, "missing")
    assert hidden == int(np.argmin(target[0])) and first[0, hidden] == second[0, hidden] == 0
    W, N = run.sample_counts(game, first, second, 500, np.random.default_rng(0))
    assert N[0, hidden].sum() == 0 and N.sum() == 1000 and np.allclose(W + W.swapaxes(1, 2), N)
    # the BT-linear game is realizable: the linear and tabular population fits agree
    linear, tabular = (run.population_reward(game, mus[1], f) for f in (phi, None))
    np.testing.assert_allclose(linear - linear.mean(-1, keepdims=True), tabular, atol=1e-6)
    assert np.all(run.population_bias(game, 1.0, mus[:2], phi) > 1e-3)  # RLHF optimum != pi*
    assert theta.shape == (3,)
