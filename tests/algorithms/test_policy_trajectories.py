"""``policy_trajectories``: the policies behind ``nt.run``'s metrics, vmapped over runs."""

import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.algorithms import policy_trajectories

GAMES = [nt.make_game("random_skew", num_responses=4, num_prompts=2, seed=s, random_ref=True)
         for s in (0, 1)]
RATES = [1.0, 3.0]
RUN = {"seeds": 3, "seed": 5}


def online_dpo(hp):
    return nt.ALGORITHMS["online_dpo"](0.1, hp["learning_rate"], mode="sampled", pairs_per_prompt=4)


@pytest.fixture(scope="module")
def trajectories():
    """Sampled online DPO, run r on GAMES[r] at RATES[r]: (2, 3 seeds, 7 steps, X, Y)."""
    return policy_trajectories(online_dpo, GAMES, {"learning_rate": RATES},
                               checkpoints=np.arange(7), **RUN)


def test_metrics_of_the_policies_equal_nt_run(trajectories):
    assert trajectories.shape == (2, 3, 7, 2, 4)
    frame = nt.run("online_dpo", GAMES[1], beta=0.1, steps=6, mode="sampled", pairs_per_prompt=4,
                   learning_rate=RATES[1], **RUN)
    for s, pols in enumerate(trajectories[1]):
        rows = frame[frame.seed == s].sort_values("step")
        for column, metric in (("win_rate_ref", lambda p: nt.win_rate(GAMES[1], p,
                                                                       GAMES[1].pi_ref)),
                               ("kl_ref", lambda p: nt.kl_to_ref(GAMES[1], p)),
                               ("duality_gap", lambda p: nt.duality_gap(GAMES[1], p, 0.1))):
            np.testing.assert_allclose([metric(p) for p in pols], rows[column], rtol=0,
                                       atol=1e-12)
    assert np.abs(trajectories[1, 0, -1] - trajectories[1, 1, -1]).max() > 1e-6  # seeds differ


def test_runs_vmapped_equal_separate_calls_at_the_checkpoints(trajectories):
    alone = policy_trajectories(online_dpo, GAMES[0], {"learning_rate": RATES[:1]},
                                checkpoints=[2, 5, 6], chunk=4, **RUN)  # two segments
    np.testing.assert_allclose(alone[0], trajectories[0][:, [2, 5, 6]], rtol=0, atol=1e-15)
    initial = np.broadcast_to(GAMES[1].pi_ref, (3, 2, 4))  # step 0: the initial policy
    np.testing.assert_allclose(trajectories[1, :, 0], initial, rtol=0, atol=1e-15)


def test_beta_may_be_a_zipped_hyperparameter():
    pols = policy_trajectories(lambda hp: nt.ALGORITHMS["inpo"](hp["beta"], 0.5), GAMES,
                               {"beta": [0.1, 0.2]}, checkpoints=[0, 20])
    gap = nt.run("inpo", GAMES[1], beta=0.2, steps=20, learning_rate=0.5).duality_gap
    assert nt.duality_gap(GAMES[1], pols[1, 0, 1], 0.2) == pytest.approx(gap.iloc[-1],
                                                                         abs=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"make": 3}, "make"),
    ({"games": []}, "games"),
    ({"games": [GAMES[0], "game"]}, "games"),
    ({"games": [GAMES[0], nt.make_game("comal_cyclic")]}, "games: need equal shapes"),
    ({"grid": {"learning_rate": [1.0, 2.0, 3.0]}}, "one value per game"),
    ({"grid": {"learning_rate": [1.0], "pairs_per_prompt": [1.0, 2.0]}}, "same number"),
    ({"grid": {"learning_rate": ["fast"]}}, "real numbers"),
    ({"grid": {"learning_rate": []}}, "at least one value"),
    ({"grid": [1.0, 2.0]}, "grid: expected a dict"),
    ({"grid": {"learning_rate": [-1.0, 1.0]}}, "learning_rate"),  # the factory's own check
    ({"checkpoints": [0, 5, 5]}, "checkpoints"),
    ({"checkpoints": [-1, 5]}, "checkpoints"),
    ({"checkpoints": [0, 2.5]}, "checkpoints"),
    ({"checkpoints": []}, "checkpoints"),
    ({"checkpoints": [[0, 1]]}, "checkpoints"),
    ({"seeds": 0}, "seeds"),
])
def test_bad_input(kwargs, match):
    args = {"make": online_dpo, "games": GAMES, "grid": {"learning_rate": RATES},
            "checkpoints": [0, 5], **kwargs}
    with pytest.raises(nt.InvalidInputError, match=match):
        policy_trajectories(args.pop("make"), args.pop("games"), args.pop("grid"), **args)


def test_recorded_segments_are_bounded_and_change_nothing(trajectories, monkeypatch):
    """Every step's policy is recorded on the device: a segment is shortened so that its
    records fit ``_RECORD_BYTES`` (here 2 steps of 2 runs x 3 seeds x 2 x 4 float64), with the
    same policies bit for bit."""
    from nlhf_theory.algorithms import _run

    assert _run._recording_chunk(500, 32, 1000 * 100) == 20  # 512 MB of 32 x 1000 x 100
    assert _run._recording_chunk(500, 1, 3) == 500 and _run._recording_chunk(3, 10**9, 10) == 1
    lengths = []
    real_segments = _run._segments

    def spy(segment, carry, args, steps, chunk, *rest):
        lengths.append(chunk)
        return real_segments(segment, carry, args, steps, chunk, *rest)

    monkeypatch.setattr(_run, "_segments", spy)
    monkeypatch.setattr(_run, "_RECORD_BYTES", 2 * 2 * 3 * 2 * 4 * 8)
    bounded = policy_trajectories(online_dpo, GAMES, {"learning_rate": RATES},
                                  checkpoints=np.arange(7), **RUN)
    assert lengths == [2]
    np.testing.assert_array_equal(bounded, trajectories)
