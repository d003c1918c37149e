"""CI subset of experiments/online_exploration: the uncertainty enhancer of Ye et al.'s Alg. 2."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import nlhf_theory as nt
from nlhf_theory.reproduce import load_experiment


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("online_exploration")


@pytest.fixture(scope="module")
def results(experiment):
    """Quick-mode cells cut to 8 rounds: the enhancer and pi_ref at d = 16, the enhancer at
    d = 2."""
    settings = {**experiment.settings("quick"), "rounds": 8}
    wanted = {("uncertainty", 16), ("reference", 16), ("uncertainty", 2)}
    frames = []
    for cell in experiment.run.cells(settings):
        if (cell["enhancer"], cell["dim"]) in wanted:
            frame = experiment.run.run_cell(cell)
            frames.append(frame.assign(enhancer=cell["enhancer"], dim=cell["dim"]))
    return pd.concat(frames, ignore_index=True), settings


def test_reference_covers_the_target_poorly(experiment):
    settings = experiment.settings("quick")
    model = experiment.run.make_model(settings["game"])
    assert np.all(model.theta[settings["game"]["true_dim"]:] == 0.0)  # nested, realizable
    game = model.game
    target = nt.solve_regularized_nash(game, settings["beta"]).policy
    # the density ratio pi*_beta / pi_ref (single-policy concentrability) is large per prompt
    assert (target / game.pi_ref).max(-1).min() > 100.0
    assert nt.kl_to_ref(game, target) > 1.0


def test_log_ratio_interval_is_welchs(experiment):
    rng = np.random.default_rng(0)
    a, b = np.exp(rng.normal(0, 1, 9)), np.exp(rng.normal(0.5, 2, 12))
    diff, half = experiment.run.log_ratio(a, b, 0.95)
    test = stats.ttest_ind(np.log(a), np.log(b), equal_var=False)
    ci = test.confidence_interval(0.95)
    np.testing.assert_allclose([diff - half, diff + half], [ci.low, ci.high], rtol=1e-10)


def test_enhancer_rate_is_at_least_root_n(experiment, results):
    frame, settings = results
    fitted = experiment.run.sample_slope(frame, "uncertainty", 16, settings["fit_from"])
    assert fitted.slope <= settings["max_sample_slope"], fitted


def test_enhancer_not_worse_than_reference_exploration(experiment, results):
    frame, settings = results
    diff, half = experiment.run.log_ratio(experiment.run.final(frame, "uncertainty", 16),
                                          experiment.run.final(frame, "reference", 16),
                                          settings["confidence"])
    assert diff - half <= 0.0


def test_suboptimality_grows_with_the_dimension(experiment, results):
    frame, settings = results
    assert experiment.run.dim_slope(frame, "uncertainty", [2, 16]).low > 0.0
