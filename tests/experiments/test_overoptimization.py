"""CI subset of experiments/overoptimization: Goodhart curves of a BT proxy, best-of-n bounds."""

import pytest

from nlhf_theory.reproduce import load_experiment


@pytest.fixture(scope="module")
def outcome():
    experiment = load_experiment("overoptimization")
    settings = {**experiment.settings("quick"), "seeds": 8,
                "num_pairs": [100, 1000], "log10_n": (0.0, 4.0, 25),
                "log10_beta": (1.0, -2.5, 22)}
    cell, = experiment.run.cells(settings)
    results = experiment.run.run_cell(cell)
    return experiment.run, results, settings


def test_proxy_is_monotone_and_best_of_n_bounds_hold(outcome):
    run, results, settings = outcome
    checks = run.checks(results, settings)
    assert all(c.passed for c in checks[:3]), checks[:3]


@pytest.mark.parametrize("path", ["best_of_n", "kl_regularized"])
def test_gold_peaks_inside_the_path_and_later_with_more_data(outcome, path):
    run, results, _ = outcome
    part = results[results.path == path]
    stars = []
    for _, frame in part.groupby("num_pairs", sort=True):
        curve = run.mean_curve(frame)
        top = int(curve.gold_gain.to_numpy().argmax())
        assert 0 < top < len(curve) - 1
        if path == "kl_regularized":  # best-of-n's fit misses the band at some N (README)
            assert run.fit_form(path, curve)[2] >= 0.9
        stars.append(run.peak_distance(frame).d_star.mean())
    assert stars[0] < stars[1]
