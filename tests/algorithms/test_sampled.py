"""Sampled mode agrees with the exact mode in expectation."""

import jax
import jax.numpy as jnp
import numpy as np

import nlhf_theory as nt
from nlhf_theory import losses
from nlhf_theory.data import pair_loss, win_rates


def test_sampled_win_rates_are_unbiased():
    game = nt.make_game("random_skew", num_responses=5, num_prompts=2, seed=0)
    with nt.algorithms.float64_mode():
        g = jax.tree_util.tree_map(jnp.asarray, game)
        logits = jnp.log(jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(5), size=2)))
        exact = np.asarray(win_rates(g, logits, None, "exact", 1))
        keys = jax.random.split(jax.random.key(0), 400)
        draws = np.asarray(jax.vmap(lambda k: win_rates(g, logits, k, "sampled", 50))(keys))
    mean = draws.mean(0)
    stderr = draws.std(0) / np.sqrt(len(draws)) + 1e-12
    assert np.all(np.abs(mean - exact) <= 5 * stderr)


def test_sampled_loss_gradients_are_unbiased():
    game = nt.make_game("random_skew", num_responses=4, num_prompts=2, seed=1)
    with nt.algorithms.float64_mode():
        g = jax.tree_util.tree_map(jnp.asarray, game)
        theta = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4)))
        mu = jax.nn.log_softmax(theta)
        grad = jax.grad(pair_loss, argnums=1)
        for loss in (losses.ipo_loss, losses.dpo_loss):
            exact = np.asarray(grad(loss, theta, g, (mu, mu), None, "exact", 1, 0.5))
            keys = jax.random.split(jax.random.key(3), 400)
            draws = np.asarray(jax.vmap(
                lambda k: grad(loss, theta, g, (mu, mu), k, "sampled", 64, 0.5))(keys))
            stderr = draws.std(0) / np.sqrt(len(draws)) + 1e-12
            assert np.all(np.abs(draws.mean(0) - exact) <= 5 * stderr)


def test_sampled_runs_track_the_exact_run_on_average():
    game = nt.make_game("random_skew", num_responses=5, seed=3, random_ref=True)
    exact = nt.run("inpo", game, beta=0.1, steps=30, learning_rate=2.0)
    sampled = nt.run("inpo", game, beta=0.1, steps=30, learning_rate=2.0, mode="sampled",
                     comparisons_per_response=256, seeds=16)
    mean = sampled.groupby("step").win_rate_ref.mean().to_numpy()
    # 16 seeds x 256 comparisons per response: the mean trajectory stays within 0.01
    np.testing.assert_allclose(mean, exact.win_rate_ref.to_numpy(), atol=1e-2)
