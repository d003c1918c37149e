"""SAIL: exact population gradients, special cases and the authors' variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.algorithms import run
from nlhf_theory.algorithms._sail import sail_objective
from nlhf_theory.data import Dataset

BETA = 0.5


@pytest.fixture(scope="module")
def setup():
    with nt.algorithms.float64_mode():
        game = jax.tree_util.tree_map(
            jnp.asarray, nt.make_game("random_skew", num_responses=5, num_prompts=2, seed=4,
                                      random_ref=True))
        theta = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5)))
        empty = Dataset(*(jnp.zeros(0, jnp.int32) for _ in range(4)))
        yield game, theta, empty


def true_objective(theta, game, route):
    """The population log-likelihood objective with every dependence on theta kept."""
    logp = jax.nn.log_softmax(theta)
    ref = jnp.log(game.pi_ref)
    D = logp - ref
    ell = jax.nn.log_sigmoid(BETA * (D[:, :, None] - D[:, None, :]))
    pi = jnp.exp(logp)
    on_policy = pi[:, :, None] * pi[:, None, :]
    data = game.pi_ref[:, :, None] * game.pi_ref[:, None, :]
    label = {"pr": game.P, "pp": jnp.exp(ell), "dp": jnp.exp(ell)}[route]
    pairs = data if route == "dp" else on_policy
    return 2.0 * jnp.sum(game.prompt_weights * jnp.sum(pairs * label * ell, axis=(1, 2)))


@pytest.mark.parametrize("route, weights, coefficients", [
    ("pr", (0.0, 0.0, 1.0), (0.0, 0.0, 1.0)),
    ("pp", (0.0, 1.0, 0.0), (0.0, 1.0, 0.0)),
    ("dp", (1.0, 0.0, 0.0), (1.0, 0.0, 0.0)),
])
def test_exact_gradient_equals_finite_differences(setup, route, weights, coefficients):
    game, theta, empty = setup
    with nt.algorithms.float64_mode():
        grad = jax.grad(sail_objective)(theta, game, empty, jax.random.key(0), beta=BETA,
                                        weights=weights, coefficients=coefficients,
                                        variant="exact", mode="exact", batch_size=1)
        eps = 1e-6
        fd = np.zeros(theta.shape)
        for idx in np.ndindex(theta.shape):
            e = jnp.zeros(theta.shape).at[idx].set(eps)
            fd[idx] = (true_objective(theta + e, game, route)
                       - true_objective(theta - e, game, route)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(grad), fd, atol=1e-8)
        # dropping the response term (coefficient 0) changes the gradient
        if route == "pr":
            plain = jax.grad(sail_objective)(theta, game, empty, jax.random.key(0), beta=BETA,
                                             weights=weights, coefficients=(0.0, 0.0, 0.0),
                                             variant="exact", mode="exact", batch_size=1)
            assert np.abs(np.asarray(plain) - fd).max() > 1e-3


def test_self_labelled_plain_dpo_term_has_zero_expected_gradient(setup):
    game, theta, _ = setup
    with nt.algorithms.float64_mode():
        logp = jax.nn.log_softmax(theta)
        ref = jnp.log(game.pi_ref)

        def plain(t):  # labels ~ sigma(h) frozen, pairs frozen: only grad(l) remains
            lp = jax.nn.log_softmax(t)
            D = lp - ref
            ell = jax.nn.log_sigmoid(BETA * (D[:, :, None] - D[:, None, :]))
            D0 = logp - ref
            label = jax.nn.sigmoid(BETA * (D0[:, :, None] - D0[:, None, :]))
            pi = jnp.exp(logp)
            return jnp.sum(pi[:, :, None] * pi[:, None, :] * label * ell)

        np.testing.assert_allclose(np.asarray(jax.grad(plain)(theta)), 0.0, atol=1e-15)


def test_special_cases_offline_and_online_dpo():
    game = nt.make_game("random_skew", num_responses=6, seed=1, random_ref=True)
    a = run("sail", game, beta=BETA, steps=100, learning_rate=0.5)
    b = run("dpo", game, beta=BETA, steps=100, learning_rate=0.5)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)
    a = run("sail_pr", game, beta=BETA, steps=100, learning_rate=0.5, gamma=0.0)
    b = run("online_dpo", game, beta=BETA, steps=100, learning_rate=0.5)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)


def test_implemented_variant_differs_from_the_exact_gradient():
    game = nt.make_game("random_skew", num_responses=6, seed=1, random_ref=True)
    exact = run("sail_pr", game, beta=BETA, steps=200, learning_rate=0.5)
    code = run("sail_pr", game, beta=BETA, steps=200, learning_rate=0.5, variant="implemented")
    assert np.all(np.isfinite(code.drop(columns=["step", "seed"]).to_numpy()))
    assert abs(code.kl_ref.iloc[-1] - exact.kl_ref.iloc[-1]) > 0.1


# The authors' implemented step, transcribed in NumPy (sail.md Sec. 1.4) -------------------------
def authors_sample_gradients(theta, log_ref, winner, loser, gamma):
    """Per DPR sample: the gradient of the loss ``-l`` on the logits and the hook's extra
    gradient ``-gamma l / log pi(y) grad log pi(y)`` (y = winner and loser; ``log pi`` capped
    at -1e-6 as in the library), for a one-prompt tabular policy ``softmax(theta)``."""
    logp = theta - np.logaddexp.reduce(theta)
    pi = np.exp(logp)
    eye = np.eye(theta.size)
    h = BETA * ((logp - log_ref)[winner] - (logp - log_ref)[loser])
    ell = -np.logaddexp(0.0, -h)  # log sigma(h)
    grad_loss = -(1 - 1 / (1 + np.exp(-h))) * BETA * (eye[winner] - eye[loser])
    hook = sum(-gamma * ell / min(logp[y], -1e-6) * (eye[y] - pi) for y in (winner, loser))
    return grad_loss, hook


def one_prompt_game():
    game = nt.make_game("random_skew", num_responses=5, num_prompts=1, seed=6, random_ref=True)
    theta = np.log(game.pi_ref[0]) + np.random.default_rng(1).normal(size=5)
    return game, theta


@pytest.mark.parametrize("labels", ["bernoulli", "argmax"])
@pytest.mark.parametrize("hook_scale", [8.0, 1.0])
def test_implemented_exact_gradient_is_the_authors_expected_step(labels, hook_scale):
    # Authors' optimizer step over B x GA DPR samples: (1 / (B GA)) sum grad(-l_i) + sum hooks
    # (the hook is not divided by the batch); its expectation per sample is
    # E[grad(-l)] + B GA E[hook]. Labels: y1 wins w.p. P (Bernoulli) or iff P > 1/2 (argmax,
    # ties keep the drawn order).
    game, theta = one_prompt_game()
    gamma, P, log_ref = 0.3, game.P[0], np.log(game.pi_ref[0])
    pi = np.exp(theta - np.logaddexp.reduce(theta))
    expected_loss_grad = np.zeros(5)
    for y1 in range(5):
        for y2 in range(5):
            if labels == "bernoulli":
                first = P[y1, y2]
            else:
                first = 1.0 if P[y1, y2] >= 0.5 else 0.0
            for prob, (w, lo) in ((first, (y1, y2)), (1 - first, (y2, y1))):
                grad_loss, hook = authors_sample_gradients(theta, log_ref, w, lo, gamma)
                expected_loss_grad += pi[y1] * pi[y2] * prob * (grad_loss + hook_scale * hook)
    with nt.algorithms.float64_mode():
        empty = Dataset(*(jnp.zeros(0, jnp.int32) for _ in range(4)))
        ascent = jax.grad(sail_objective)(
            jnp.asarray(theta[None]), jax.tree_util.tree_map(jnp.asarray, game), empty,
            jax.random.key(0), beta=BETA, weights=(0.0, 0.0, 1.0),
            coefficients=(0.0, 0.0, gamma), variant="implemented", mode="exact", batch_size=1,
            hook_scale=hook_scale, labels=labels)
    np.testing.assert_allclose(np.asarray(ascent)[0], -expected_loss_grad, rtol=0, atol=1e-12)


def test_implemented_sampled_step_is_the_authors_batch_step_with_argmax_labels():
    # One optimizer step of the authors' code over B = 8 DPR samples in GA = 2 micro-batches
    # of 4 (sail.md Sec. 2), labelled by argmax, equals minus the sampled library gradient with
    # hook_scale = B x GA... per micro-batch loss 1/(4 GA) and unscaled hooks give
    # (1/8) sum grad(-l_i) + sum hooks = (1/8) [sum grad(-l_i) + 8 sum hooks].
    game, theta = one_prompt_game()
    gamma, P, log_ref, batch = 0.3, game.P[0], np.log(game.pi_ref[0]), 8
    key = jax.random.key(11)
    with nt.algorithms.float64_mode():
        empty = Dataset(*(jnp.zeros(1, jnp.int32) for _ in range(4)))
        ascent = jax.grad(sail_objective)(
            jnp.asarray(theta[None]), jax.tree_util.tree_map(jnp.asarray, game), empty, key,
            beta=BETA, weights=(0.0, 0.0, 1.0), coefficients=(0.0, 0.0, gamma),
            variant="implemented", mode="sampled", batch_size=batch, hook_scale=8.0,
            labels="argmax")
        # the pairs the library draws (its first key), to label them here by argmax
        k_pairs = jax.random.split(key, 4)[0]
        logp = jax.nn.log_softmax(jnp.asarray(theta[None]))
        y = np.asarray(jax.random.categorical(k_pairs, logp[:, None, :], axis=-1,
                                              shape=(2, 1, batch)))[:, 0]
    total = np.zeros(5)
    for micro in np.split(np.arange(batch), 2):
        for i in micro:
            y1, y2 = y[0, i], y[1, i]
            w, lo = (y1, y2) if P[y1, y2] >= 0.5 else (y2, y1)
            grad_loss, hook = authors_sample_gradients(theta, log_ref, w, lo, gamma)
            total += grad_loss / (len(micro) * 2) + hook
    np.testing.assert_allclose(np.asarray(ascent)[0], -total, rtol=0, atol=1e-12)


def test_hook_scale_and_labels_are_validated():
    with pytest.raises(nt.InvalidInputError, match="hook_scale"):
        nt.algorithms.sail(0.1, 1.0, g=0.3, gamma=0.3, hook_scale=8.0)  # exact variant
    with pytest.raises(nt.InvalidInputError, match="hook_scale"):
        nt.algorithms.sail(0.1, 1.0, variant="implemented", hook_scale=0.0)
    with pytest.raises(nt.InvalidInputError, match="labels"):
        nt.algorithms.sail_pr(0.1, 1.0, labels="max")


def test_implemented_default_is_the_authors_hook_scale_and_one_recovers_the_normalized_hook():
    game = nt.make_game("random_skew", num_responses=6, seed=1, random_ref=True)
    common = {"beta": BETA, "steps": 30, "learning_rate": 0.5, "variant": "implemented"}
    default = run("sail_pr", game, **common)
    eight = run("sail_pr", game, **common, hook_scale=8.0)
    one = run("sail_pr", game, **common, hook_scale=1.0)
    np.testing.assert_array_equal(default.to_numpy(), eight.to_numpy())
    assert np.abs(default.kl_ref.to_numpy() - one.kl_ref.to_numpy()).max() > 1e-3


def test_argmax_labels_equal_bernoulli_labels_on_a_deterministic_game():
    # P in {0, 1/2, 1}: a Bernoulli draw is the argmax (ties only on y = y', where the
    # orientation does not matter), so the sampled trajectories agree with the same keys
    P = np.array([[[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]]])
    game = nt.PreferenceGame(P, np.array([[0.6, 0.3, 0.1]]))
    common = {"beta": BETA, "steps": 20, "learning_rate": 0.5, "mode": "sampled",
              "pairs_per_prompt": 8, "num_pairs": 16, "seeds": 2}
    a = run("sail_pr", game, **common)
    b = run("sail_pr", game, **common, labels="argmax")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=0, atol=1e-12)
