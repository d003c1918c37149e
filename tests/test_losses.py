"""The per-pair losses are one code path for NumPy, jax and torch arrays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nlhf_theory import losses

LOSSES = [losses.dpo_loss, losses.ipo_loss, losses.slic_loss]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return [rng.normal(size=7) for _ in range(4)], rng.uniform(size=7)


@pytest.mark.parametrize("loss", LOSSES)
def test_numpy_and_jax_agree(loss, data):
    arrays, label = data
    with jax.enable_x64(True):
        out = loss(*[jnp.asarray(a) for a in arrays], jnp.asarray(label), 0.5)
        np.testing.assert_allclose(np.asarray(out), loss(*arrays, label, 0.5), atol=1e-14)


@pytest.mark.parametrize("loss", LOSSES)
def test_torch_autograd_matches_jax_grad(loss, data):
    torch = pytest.importorskip("torch")
    arrays, label = data
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = loss(*tensors, torch.tensor(label), 0.5)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), loss(*arrays, label, 0.5), atol=1e-14)
    with jax.enable_x64(True):
        grads = jax.grad(lambda *xs: loss(*xs, jnp.asarray(label), 0.5).sum(),
                         argnums=(0, 1, 2, 3))(*[jnp.asarray(a) for a in arrays])
    for t, g in zip(tensors, grads):
        np.testing.assert_allclose(t.grad.numpy(), np.asarray(g), atol=1e-14)


def test_soft_labels_are_expectations_of_hard_labels(data):
    arrays, label = data
    beta = 0.5
    for loss in LOSSES:
        hard = label * loss(*arrays, 1.0, beta) + (1 - label) * loss(*arrays, 0.0, beta)
        soft = loss(*arrays, label, beta)
        # IPO drops the policy-independent constant label (1 - label) / beta^2
        constant = label * (1 - label) / beta**2 if loss is losses.ipo_loss else 0.0
        np.testing.assert_allclose(hard - soft, constant, atol=1e-12)


def test_dpo_loss_is_stable_for_large_margins():
    big = np.array([1e4, -1e4])
    out = losses.dpo_loss(big, -big, np.zeros(2), np.zeros(2), 1.0, 1.0)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 2e4], rtol=1e-12)


def test_win_rate_ipo_loss_backends_and_bernoulli_labels(data):
    # one code path for NumPy, jax and torch; with independent oracle labels
    # l ~ Bernoulli(w), l' ~ Bernoulli(w') the expected loss is the loss at (w, w') plus the
    # policy-independent Var(l - l') / beta^2 (so the sampled gradient is unbiased)
    arrays, _ = data
    rng = np.random.default_rng(1)
    w, w2 = rng.uniform(size=(2, 7))
    beta = 0.5
    loss = losses.win_rate_ipo_loss
    h = (arrays[0] - arrays[2]) - (arrays[1] - arrays[3])
    np.testing.assert_allclose(loss(*arrays, w, w2, beta), (h - (w - w2) / beta) ** 2,
                               atol=1e-12)
    hard = sum(pw * pw2 * loss(*arrays, lab, lab2, beta)
               for lab, pw in ((1.0, w), (0.0, 1 - w)) for lab2, pw2 in ((1.0, w2), (0.0, 1 - w2)))
    variance = (w * (1 - w) + w2 * (1 - w2)) / beta**2
    np.testing.assert_allclose(hard - loss(*arrays, w, w2, beta), variance, atol=1e-12)
    with jax.enable_x64(True):
        out = loss(*[jnp.asarray(a) for a in arrays], jnp.asarray(w), jnp.asarray(w2), beta)
        np.testing.assert_allclose(np.asarray(out), loss(*arrays, w, w2, beta), atol=1e-14)
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(a) for a in arrays]
    out = loss(*tensors, torch.tensor(w), torch.tensor(w2), beta)
    np.testing.assert_allclose(out.numpy(), loss(*arrays, w, w2, beta), atol=1e-14)
