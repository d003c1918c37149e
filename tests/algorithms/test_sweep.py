"""Hyper-parameter sweeps run in the same vmapped computation as the seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt

GAME = nt.make_game("random_skew", num_responses=6, seed=0, random_ref=True)


def test_sweep_equals_separate_runs():
    swept = nt.run("inpo", GAME, beta=0.1, steps=50, seeds=2,
                   sweep={"learning_rate": [0.5, 2.0]})
    assert set(swept.learning_rate) == {0.5, 2.0}
    assert len(swept) == 2 * 2 * 51
    for lr in (0.5, 2.0):
        alone = nt.run("inpo", GAME, beta=0.1, steps=50, learning_rate=lr)
        part = swept[(swept.learning_rate == lr) & (swept.seed == 0)]
        np.testing.assert_allclose(part.duality_gap.to_numpy(), alone.duality_gap.to_numpy(),
                                   atol=1e-14)


def test_sweep_over_a_grid_of_two_hyperparameters_in_sampled_mode():
    frame = nt.run("sail", GAME, beta=0.5, steps=5, mode="sampled", seeds=2, learning_rate=0.5,
                   sweep={"g": [0.0, 0.5], "gamma": [0.0, 0.3]})
    assert len(frame[["g", "gamma"]].drop_duplicates()) == 4
    assert np.all(np.isfinite(frame.drop(columns=["step", "seed"]).to_numpy()))


def test_sweep_values_are_checked():
    with pytest.raises(nt.InvalidInputError, match="learning_rate"):
        nt.run("inpo", GAME, beta=0.1, steps=5, sweep={"learning_rate": [1.0, -1.0]})
    with pytest.raises(nt.InvalidInputError, match="learning_rate"):
        nt.run("inpo", GAME, beta=0.1, steps=5, sweep={"learning_rate": [20.0]})  # eta beta > 1
    with pytest.raises(nt.InvalidInputError, match="sweep"):
        nt.run("inpo", GAME, beta=0.1, steps=5, learning_rate=1.0,
               sweep={"learning_rate": [1.0]})


@pytest.mark.parametrize("name", ["inpo", "mpo", "nash_md"])
def test_beta_may_be_traced_with_a_concrete_learning_rate(name):
    game = nt.make_game("comal_cyclic")
    # MPO's default period is an integer computed from beta: a traced beta needs it given
    extra = {"period": 100} if name == "mpo" else {}
    factory = nt.ALGORITHMS[name]
    states = jax.vmap(lambda b: factory(b, 0.5, **extra).init(game, jax.random.key(0)))(
        jnp.array([0.1, 0.2]))
    assert states.logits.shape == (2, 1, 3)
