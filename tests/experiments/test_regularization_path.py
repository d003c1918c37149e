"""CI subset of experiments/regularization_path: exploitability(pi*_beta) = Theta(beta)."""

import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.reproduce import load_experiment


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("regularization_path").run


@pytest.mark.parametrize("name, kwargs", [
    ("comal_cyclic", {}),
    ("biased_rock_paper_scissors", {}),
    ("random_skew", {"num_responses": 30, "seed": 1}),
])
def test_exploitability_of_regularized_target_is_linear_in_beta(experiment, name, kwargs):
    game = nt.make_game(name, **kwargs)
    frame = experiment.trace(game, np.logspace(-2, -4, 5))
    assert frame.duality_gap.max() <= 1e-10
    fitted = experiment.slope(frame, 1e-2)
    assert 0.9 <= fitted.slope <= 1.1, fitted
    # and the regularized target approaches the maximal lottery
    assert frame.l1_to_maximal_lottery.iloc[-1] < frame.l1_to_maximal_lottery.iloc[0]


def test_rock_paper_scissors_has_no_equilibrium_gap(experiment):
    frame = experiment.trace(nt.make_game("rock_paper_scissors"), [1.0, 1e-2, 1e-4])
    assert frame.exploitability.abs().max() <= 1e-12
