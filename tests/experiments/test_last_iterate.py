"""CI subset of experiments/last_iterate: the last-iterate classification matches theory."""

import math

import numpy as np
import pandas as pd
import pytest

from nlhf_theory.reproduce import load_experiment

GAMES = {"comal_cyclic": {"name": "comal_cyclic"},
         "bradley_terry": {"name": "bradley_terry", "reward": [1.0, 0.0, -0.5]}}


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("last_iterate")


_CACHE = {}


def trajectory(experiment, method, beta, steps=3000):
    """The classified runs of one cell (cached: each costs a jit compile)."""
    if (method, beta) in _CACHE:
        return _CACHE[method, beta]
    run, config = experiment.run, experiment.config
    hp = run.hyperparameters(method, beta, steps, 3)
    shared = {k: v for k, v in hp.items() if isinstance(v, int)}
    cell = {"method": method, "games": GAMES, "steps": steps, "betas": [beta],
            "real": [{k: v for k, v in hp.items() if k not in shared}], "shared": shared,
            "record_points": 400}
    frame = run.run_cell(cell)
    _CACHE[method, beta] = {game: part for game, part in frame.groupby("game")}, config.CLASSIFY
    return _CACHE[method, beta]


@pytest.mark.parametrize("method, beta, label", [
    ("egpo", 0.1, "pi*_beta"),
    ("egpo", 0.01, "pi*_beta"),
    ("mpo", 0.1, "maximal lottery"),
])
def test_documented_target_is_reached(experiment, method, beta, label):
    runs, thresholds = trajectory(experiment, method, beta)
    assert experiment.run.classify(runs["comal_cyclic"], thresholds) == label


def test_sppo_cycles_while_its_average_converges(experiment):
    steps = 3000
    runs, thresholds = trajectory(experiment, "sppo", 0.1)
    cyclic = runs["comal_cyclic"]
    assert experiment.run.classify(cyclic, thresholds) == "cycles"
    assert cyclic.avg_exploitability.iloc[-1] <= math.sqrt(math.log(3) / (2 * steps))
    # on a Bradley-Terry game the dominant response attracts multiplicative weights
    assert experiment.run.classify(runs["bradley_terry"], thresholds) == "maximal lottery"


def test_online_dpo_reaches_the_rlhf_optimum_not_the_nash(experiment):
    runs, thresholds = trajectory(experiment, "online_dpo", 0.1)
    assert experiment.run.classify(runs["bradley_terry"], thresholds) == "RLHF optimum"
    assert experiment.run.classify(runs["comal_cyclic"], thresholds) != "pi*_beta"


def test_egpo_rate_matches_its_linearization(experiment):
    runs, _ = trajectory(experiment, "egpo", 0.1)
    settings = experiment.settings("quick")
    fitted = experiment.run.linear_rate(runs["comal_cyclic"], settings["rates"])
    rho = experiment.run.contraction("egpo", experiment.run.make(GAMES["comal_cyclic"]), 0.1,
                                     {"learning_rate": 0.1})
    low, high = settings["rates"]["ratio_band"]
    assert low <= fitted.slope / (2 * math.log(rho)) <= high


def _synthetic(values_gap, values_expl):
    steps = np.arange(len(values_gap))
    return pd.DataFrame({"step": steps, "duality_gap": values_gap,
                         "exploitability": values_expl,
                         "l1_reward_optimum": np.full(len(steps), np.nan)})


def test_classifier_separates_cycling_slow_and_stationary(experiment):
    t = np.arange(1000)
    thresholds = experiment.config.CLASSIFY
    classify = experiment.run.classify
    cycling = 0.1 + 0.05 * np.sin(t / 20)
    assert classify(_synthetic(cycling, cycling), thresholds) == "cycles"
    slow = 0.1 * np.exp(-t / 500)
    assert classify(_synthetic(slow, np.full_like(slow, 0.05)), thresholds) == "slow"
    flat = np.full(1000, 0.02)
    assert classify(_synthetic(flat, flat), thresholds) == "elsewhere"
    assert classify(_synthetic(0.1 * np.exp(-t / 50), flat), thresholds) == "pi*_beta"
