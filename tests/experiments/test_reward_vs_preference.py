"""CI subset of experiments/reward_vs_preference: BT policies vs the Nash policy (same bands)."""

import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.reproduce import load_experiment

GRID = [1e-3, 0.05, 0.2, 1.0]


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("reward_vs_preference")


def frame_of(experiment, label, exponent=0.0):
    spec = experiment.config.QUICK["games"][label]
    return experiment.run.game_frame(experiment.run.build_game(spec, exponent), GRID)


def policy(frame, name, beta):
    rows = frame[(frame.kind == "policy") & (frame.policy == name) & (frame.beta == beta)]
    return rows.iloc[0]


def test_biased_rock_paper_scissors_golden_values(experiment):
    frame = frame_of(experiment, "biased_rock_paper_scissors")
    rewards = frame[frame.kind == "reward"].reward.to_numpy()
    np.testing.assert_allclose(rewards, [0.359, 0.288, -0.647], atol=1e-3)
    summary = frame[frame.kind == "summary"].iloc[0]
    assert abs(summary.misspecification - 0.268) <= 1e-3
    assert abs(policy(frame, "bt_greedy", 0.0).exploitability - 0.25) <= 1e-3
    for beta, value in [(0.05, 0.20), (0.2, 0.15), (1.0, 0.10)]:
        assert abs(policy(frame, "bt", beta).exploitability - value) <= 0.005
    assert policy(frame, "maximal_lottery", 0.0).exploitability <= 1e-10


def test_e5_condorcet_golden_values(experiment):
    frame = frame_of(experiment, "E5 (ii) (a, c, d)")
    summary = frame[frame.kind == "summary"].iloc[0]
    assert summary.bt_winner == 1 and summary.condorcet_winner == 2
    assert abs(policy(frame, "bt_greedy", 0.0).nash_win_rate - 0.55) <= 1e-3


@pytest.mark.parametrize("label", ["munos_nontransitive (eps=0.1)", "annotator_mixture",
                                   "condorcet_cycle (0.4/0.35/0.25)"])
@pytest.mark.parametrize("exponent", [0.0, 1.0])
def test_nash_unexploitable_bt_exploitable_and_borda_ordered(experiment, label, exponent):
    frame = frame_of(experiment, label, exponent)
    summary = frame[frame.kind == "summary"].iloc[0]
    assert summary.condorcet_winner == -1 and summary.kendall_borda == 1.0
    assert policy(frame, "maximal_lottery", 0.0).exploitability <= 1e-10
    greedy = policy(frame, "bt_greedy", 0.0).exploitability
    assert abs(greedy - summary.greedy_theory) <= 1e-12 and greedy > 0
    bt = frame[(frame.kind == "policy") & (frame.policy == "bt")]
    assert bt.exploitability.min() > 0
    assert bt.exploitability.iloc[0] > policy(frame, "regularized_nash", GRID[0]).exploitability
    h2h = frame[(frame.kind == "policy") & frame.policy.isin(["bt", "bt_greedy"])].nash_win_rate
    assert np.abs(h2h - 0.5).max() <= 1e-10  # fully mixed maximal lotteries


@pytest.mark.parametrize("behaviour", ["uniform", "dirichlet"])
def test_random_mixtures_rank_by_weighted_borda(experiment, behaviour):
    frame = experiment.run.mixture_frame(32, 3, 6, 2.0, 1, behaviour)
    assert frame.kendall_borda.min() == 1.0


def test_finite_sample_map_converges_at_root_n(experiment):
    game = nt.biased_rock_paper_scissors()
    frame = experiment.run.finite_sample_frame(game, [300, 3000, 30000], 32, 1.0, 0)
    frame["game"] = "g"
    fitted = experiment.run.slope(frame, "g")
    assert abs(fitted.slope + 0.5) <= 0.1, fitted
