"""CI subset of experiments/coverage_misgeneralization: OOD reward error and the exact gap."""

import numpy as np
import pytest

from nlhf_theory.reproduce import load_experiment


@pytest.fixture(scope="module")
def outcome():
    experiment = load_experiment("coverage_misgeneralization")
    settings = {**experiment.settings("quick"), "kappas": [0.1, 0.5], "seeds": 4,
                "log10_beta": (-2.0, 2.0, 5)}
    cell, = experiment.run.cells(settings)
    return experiment.run, experiment.run.run_cell(cell), settings


def test_reward_errs_out_of_distribution_more_as_coverage_shrinks(outcome):
    _, results, _ = outcome
    errors = results[(results.method == "map") & (results.beta == results.beta.min())]
    means = errors.groupby("kappa").mean(numeric_only=True)
    assert np.all(means.error_in < means.error_unseen_responses)
    assert np.all(means.error_in < means.error_unseen_prompts)
    assert means.error_unseen_prompts.iloc[0] > means.error_unseen_prompts.iloc[1]


def test_gap_is_nonnegative_and_follows_its_large_beta_asymptote(outcome):
    run, results, settings = outcome
    assert results.delta_j.min() >= -1e-9  # pi*_beta maximizes J
    top = results[results.beta == results.beta.max()]
    assert np.all(np.abs(top.delta_j / top.asymptote - 1.0) <= settings["asymptote_band"])
    names = [c.claim for c in run.checks(results, settings)]
    assert any("pessimism" in name for name in names)


def test_target_value_decreases_in_beta(outcome):
    _, results, _ = outcome
    star = results[results.method == "map"].groupby(["kappa", "beta"]).j_star.mean()
    for _, part in star.groupby(level=0):
        assert np.all(np.diff(part.to_numpy()) <= 1e-12)
