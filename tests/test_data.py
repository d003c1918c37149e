"""nlhf_theory.data: shapes checked at the boundary, and the draws the algorithms share."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory import data

GAME = nt.make_game("random_skew", num_prompts=2, num_responses=4, seed=1)
KEY = jax.random.key(0)


@pytest.mark.parametrize("call, match", [
    (lambda: data.win_rates(GAME, jnp.zeros((1, 4)), KEY, "exact", 4), "opponent_logits"),
    (lambda: data.sample_dataset(GAME, KEY, 5, jnp.full((4,), 0.25)), "behaviour"),
    (lambda: data.sample_dataset(GAME, KEY, 5, None, jnp.full((2, 3), 1 / 3)), "opponent"),
    (lambda: data.draw_responses(KEY, jnp.zeros(4), 3), "log_probs"),
    (lambda: data.pair_expectation(jnp.ones(2), jnp.ones((2, 4, 4)), jnp.ones((2, 4))),
     "weights, values"),
    (lambda: data.pair_loss(nt.losses.ipo_loss, jnp.zeros((2, 5)), GAME,
                            (jnp.zeros((2, 4)),) * 2, KEY, "exact", 4, 0.1), "logits"),
    (lambda: data.win_rate_pair_loss(jnp.zeros((2, 4)), GAME, jnp.zeros((4, 2)), KEY,
                                     "exact", 4, 0.1), "opponent"),
])
def test_wrong_shapes_are_named(call, match):
    with pytest.raises(nt.InvalidInputError, match=match):
        call()


def test_shape_checks_hold_under_jit():
    with pytest.raises(nt.InvalidInputError, match="opponent_logits"):
        jax.jit(lambda logits: data.win_rates(GAME, logits, KEY, "exact", 4))(jnp.zeros((3, 4)))


def test_opponent_defaults_to_the_behaviour_and_changes_only_the_second_response():
    mu = jax.nn.softmax(jax.random.normal(jax.random.key(1), (2, 4)), -1)
    same = data.sample_dataset(GAME, KEY, 200, mu)
    np.testing.assert_array_equal(np.stack(same),
                                  np.stack(data.sample_dataset(GAME, KEY, 200, mu, mu)))
    uniform = jnp.full((2, 4), 0.25)
    other = data.sample_dataset(GAME, KEY, 200, mu, uniform)
    np.testing.assert_array_equal(other.x, same.x)
    np.testing.assert_array_equal(other.y, same.y)
    assert np.any(np.asarray(other.y_prime) != np.asarray(same.y_prime))


def test_exact_pair_expectation_is_the_mean_of_sampled_pairs():
    """The exact and sampled modes estimate one quantity: E over d0, mu x mu' of P."""
    mu, mu2 = jnp.full((2, 4), 0.25), jax.nn.softmax(jnp.arange(8.0).reshape(2, 4), -1)
    exact = data.pair_expectation(jnp.asarray(GAME.prompt_weights), data.pair_weights(mu, mu2),
                                  jnp.asarray(GAME.P))
    sample = data.sample_dataset(GAME, KEY, 20000, mu, mu2)
    mean = float(np.mean(np.asarray(sample.label)))
    assert abs(mean - float(exact)) < 4 * 0.5 / np.sqrt(20000)
