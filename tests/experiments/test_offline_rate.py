"""offline_rate: a CI subset of the experiment.

The experiment's checks (Thm. 1's bound and the version space's coverage, rate in n, slope in
C, a response never shown, BT plateau) on a small grid with the same bands. The coverage
coefficients themselves are tested in tests/test_estimation.py.
"""

import numpy as np
import pandas as pd
import pytest

import nlhf_theory as nt
from nlhf_theory.algorithms import _pessimism as pessimism
from nlhf_theory.reproduce import load_experiment
from nlhf_theory.reproduce._cells import _with_cell_columns


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
