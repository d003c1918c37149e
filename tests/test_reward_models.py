"""Tests of nlhf_theory.reward_models: BT MAP fits, nested comparison samples, best-of-n, LCB."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt


def _enumerated_best_of_n(reward, pi_ref, n):
    """Brute force over all n-tuples; ties broken by a uniformly random tied draw."""
    Y = len(reward)
    out = np.zeros(Y)
    for draws in itertools.product(range(Y), repeat=n):
        prob = np.prod(pi_ref[list(draws)])
        best = max(reward[y] for y in draws)
        tied = [y for y in draws if reward[y] == best]
        for y in tied:
            out[y] += prob / len(tied)
    return out


@pytest.mark.parametrize("reward", [[0.3, -1.0, 2.0, 0.5], [1.0, 0.0, 1.0, 0.0, 2.0]])
def test_best_of_n_matches_enumeration_with_ties(reward):
    reward = np.array(reward)
    ref = np.random.default_rng(0).dirichlet(np.ones(len(reward)))
    pi = nt.best_of_n_policy(reward, ref, np.array([1, 2, 3]))
    np.testing.assert_allclose(pi[0], ref, atol=1e-15)
    for k, n in enumerate([1, 2, 3]):
        np.testing.assert_allclose(pi[k], _enumerated_best_of_n(reward, ref, n), atol=1e-14)


def test_best_of_n_matches_monte_carlo():
    rng = np.random.default_rng(1)
    reward, ref = rng.integers(0, 5, 12).astype(float), rng.dirichlet(np.ones(12))
    n, draws = 6, 200_000
    sample = rng.choice(12, size=(draws, n), p=ref)
    values = reward[sample]
    tied = values == values.max(1, keepdims=True)
    pick = sample[np.arange(draws), np.argmax(tied * rng.random((draws, n)), 1)]
    empirical = np.bincount(pick, minlength=12) / draws
    exact = nt.best_of_n_policy(reward, ref, n)
    assert np.max(np.abs(empirical - exact) / np.sqrt(exact * (1 - exact) / draws + 1e-12)) < 5


def test_best_of_n_obeys_beirami_bounds_and_is_tight_for_a_fine_reference():
    rng = np.random.default_rng(2)
    ns = np.array([1, 2, 5, 30, 1000, 10_000])
    for Y in (3, 50):
        reward = rng.integers(0, Y // 2 + 1, (4, Y)).astype(float)  # ties
        ref = rng.dirichlet(np.ones(Y), 4)
        pi = nt.best_of_n_policy(reward, ref, ns)
        kl = np.sum(pi * np.log(pi / ref, where=pi > 0, out=np.zeros_like(pi)), -1)
        assert np.all(kl <= nt.best_of_n_kl_bound(ns)[:, None] + 1e-12)
        order = (reward[:, :, None] > reward[:, None, :]) + 0.5 * (
            reward[:, :, None] == reward[:, None, :])
        win = np.einsum("kxy,xyz,xz->kx", pi, order, ref)
        assert np.all(win <= (ns / (ns + 1.0))[:, None] + 1e-12)
    # a uniform reference on many distinct rewards approaches the continuous case
    Y = 100_000
    pi = nt.best_of_n_policy(np.arange(Y, dtype=float), np.full(Y, 1.0 / Y), np.array([4]))
    kl = np.sum(pi * np.log(pi * Y))
    assert abs(kl - nt.best_of_n_kl_bound(4)) < 1e-3


def test_best_of_n_rejects_bad_input():
    with pytest.raises(nt.InvalidInputError, match="n: must be integers >= 1"):
        nt.best_of_n_policy([0.0, 1.0], [0.5, 0.5], 0)
    with pytest.raises(nt.InvalidInputError, match="pi_ref: expected the shape of reward"):
        nt.best_of_n_policy([0.0, 1.0], [1.0], 2)
    with pytest.raises(nt.InvalidInputError, match="pi_ref: every entry must be > 0"):
        nt.best_of_n_policy([0.0, 1.0], [1.0, 0.0], 2)


def test_comparison_counts_are_nested_and_respect_the_behaviour():
    game = nt.bradley_terry(np.array([[1.0, 0.0, -1.0, 0.5], [0.0, 0.2, 0.1, 0.3]]),
                            prompt_weights=np.array([1.0, 0.0]))
    behaviour = np.array([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    wins, counts = jax.jit(lambda k: nt.comparison_counts(game, k, [10, 200], behaviour))(
        jax.random.PRNGKey(0))
    assert wins.shape == counts.shape == (2, 2, 4, 4)
    assert np.all(np.asarray(counts[1] - counts[0]) >= 0)  # prefixes of one sample
    np.testing.assert_allclose(np.asarray(counts).sum((1, 2, 3)), [20, 400])
    np.testing.assert_allclose(np.asarray(wins + jnp.swapaxes(wins, -1, -2)), counts)
    assert float(counts[:, 1].sum()) == 0.0  # the unasked prompt
    assert float(counts[:, 0, 2:].sum()) == 0.0  # responses the behaviour never draws
    single = jax.jit(lambda k: nt.comparison_counts(game, k, 10, behaviour))(
        jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(single[1]), np.asarray(counts[0]))


def test_bt_map_recovers_the_reward_from_population_counts(x64):
    reward = np.array([[1.0, 0.0, -0.5, 2.0], [0.3, -0.3, 0.0, 0.0]])
    P = nt.bradley_terry(reward).P
    counts = jnp.asarray(1e6 * np.ones_like(P))
    fit = jax.jit(lambda w, c: nt.fit_bt_reward(w, c, nt.tabular_features(2, 4), ridge=1e-3))(
        jnp.asarray(P) * counts, counts)
    centred = np.asarray(fit.reward) - np.asarray(fit.reward).mean(-1, keepdims=True)
    np.testing.assert_allclose(centred, reward - reward.mean(-1, keepdims=True), atol=1e-6)


def test_bt_map_precision_is_the_hessian_of_the_negative_log_posterior(x64):
    rng = np.random.default_rng(3)
    phi = rng.standard_normal((2, 5, 3))
    game = nt.bradley_terry_linear(phi, np.array([1.0, -0.5, 0.2])).game
    wins, counts = jax.jit(lambda k: nt.comparison_counts(game, k, 300))(jax.random.PRNGKey(1))
    fit = jax.jit(lambda w, c: nt.fit_bt_reward(w, c, phi, ridge=0.5))(wins, counts)
    psi = jnp.asarray(phi[:, :, None] - phi[:, None, :])
    upper = jnp.triu(jnp.ones((5, 5)), 1)[None]

    def loss(theta):
        z = psi @ theta
        return (0.25 * jnp.sum(theta**2) - jnp.sum(upper * (
            wins * jax.nn.log_sigmoid(z) + (counts - wins) * jax.nn.log_sigmoid(-z))))

    grad, hess = jax.jit(lambda t: (jax.grad(loss)(t), jax.hessian(loss)(t)))(fit.theta)
    assert float(jnp.max(jnp.abs(grad))) < 1e-8  # the MAP: zero gradient
    np.testing.assert_allclose(np.asarray(fit.precision), np.asarray(hess), rtol=1e-8)


def test_bt_map_vmaps_over_seeds():
    phi = np.random.default_rng(4).standard_normal((1, 6, 2))
    game = nt.bradley_terry_linear(phi, np.array([2.0, -1.0])).game

    def one(key):
        return nt.fit_bt_reward(*nt.comparison_counts(game, key, 2000), phi).theta

    thetas = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), 4))
    assert thetas.shape == (4, 2)
    np.testing.assert_allclose(np.asarray(thetas).mean(0), [2.0, -1.0], atol=0.25)


def test_pessimistic_reward_subtracts_posterior_standard_deviations():
    phi = np.random.default_rng(5).standard_normal((2, 3, 2))
    H = np.array([[2.0, 0.3], [0.3, 1.0]])
    fit = nt.RewardFit(jnp.asarray(phi @ np.array([1.0, 0.5])), jnp.array([1.0, 0.5]),
                       jnp.asarray(H))
    np.testing.assert_allclose(np.asarray(nt.pessimistic_reward(fit, phi, 0.0)), fit.reward)
    ref = np.full((2, 3), 1.0 / 3.0)
    centred = phi - phi.mean(1, keepdims=True)
    bonus = np.sqrt(np.einsum("xyd,de,xye->xy", centred, np.linalg.inv(H), centred))
    np.testing.assert_allclose(np.asarray(nt.pessimistic_reward(fit, phi, 2.0, ref)),
                               np.asarray(fit.reward) - 2.0 * bonus, rtol=1e-5)
    with pytest.raises(nt.InvalidInputError, match="confidence: must be >= 0"):
        nt.pessimistic_reward(fit, phi, -1.0)


def test_fit_and_features_reject_bad_input():
    with pytest.raises(nt.InvalidInputError, match="num_responses: must be an integer"):
        nt.tabular_features(2, 0)
    counts = jnp.ones((1, 3, 3))
    with pytest.raises(nt.InvalidInputError, match="phi: expected shape"):
        nt.fit_bt_reward(counts / 2, counts, np.ones((1, 4, 2)))
    with pytest.raises(nt.InvalidInputError, match="ridge"):
        nt.fit_bt_reward(counts / 2, counts, np.ones((1, 3, 2)), ridge=0.0)
