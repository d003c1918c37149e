"""Float32 data (issue 9 item 4): a preference matrix within the precision it was made in is
accepted and projected onto exact skew symmetry; metrics never report impossible values."""

import numpy as np
import pytest

import nlhf_theory as nt


def float32_preference(seed, n=30):
    a = np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-(a - a.T)))).astype(np.float32)  # as a torch user makes it


def test_float32_matrix_cast_to_float64_is_accepted_and_projected():
    P32 = float32_preference(0)
    P = P32.astype(np.float64)
    assert np.abs(P + P.T - 1).max() > 1e-9  # beyond float64's tolerance (the issue: 3e-8)
    game = nt.PreferenceGame(P)
    assert np.array_equal(game.P + np.swapaxes(game.P, -1, -2), np.ones_like(game.P))
    assert np.abs(game.P[0] - P).max() < 1e-6


@pytest.mark.parametrize("seed", range(12))
def test_float32_game_is_exactly_skew_and_metrics_are_possible(seed):
    game = nt.PreferenceGame(float32_preference(seed))
    assert game.dtype == np.float32
    P = game.P.astype(np.float64)
    assert np.array_equal(P + np.swapaxes(P, -1, -2), np.ones_like(P))
    nash = nt.solve_nash(game)
    assert nash.exploitability >= 0.0  # the issue: -3.6e-10 before
    assert float(nt.exploitability(game, nash.policy)) >= 0.0
    uniform = np.full((1, game.num_responses), 1.0 / game.num_responses)
    assert float(nt.exploitability(game, uniform)) >= 0.0


def test_larger_violations_are_rejected_with_the_fix():
    P = float32_preference(1).astype(np.float64)
    P[0, 1] += 1e-3
    with pytest.raises(nt.InvalidInputError, match="project it first"):
        nt.PreferenceGame(P)


def test_float64_data_keeps_float64_tolerance():
    P = np.array([[0.5, 0.3], [0.7, 0.5]]) + np.array([[0, 3e-8], [0, 0]])
    with pytest.raises(nt.InvalidInputError, match="float64"):
        nt.PreferenceGame(P)
