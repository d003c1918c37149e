"""The data an algorithm consumes: pairs, oracle labels and their population expectations.

Every algorithm of :mod:`nlhf_theory.algorithms` sees the preference through this module, in
one of two modes (``docs/conventions.md``):

* ``mode="exact"``: population expectations. Over prompts ``x ~ d0`` and pairs
  ``y ~ mu_1(. | x)``, ``y' ~ mu_2(. | x)`` with the soft label ``P[x, y, y']``:
  ``E[f] = sum_x d0(x) sum_{y, y'} mu_1(y | x) mu_2(y' | x) f(x, y, y')``
  (:func:`pair_weights`, :func:`pair_expectation`).
* ``mode="sampled"``: the same quantities estimated from draws ``y ~ pi(. | x)``
  (:func:`draw_responses`) labelled by the oracle ``1[y beats y'] ~ Bernoulli(P[x, y, y'])``
  (:func:`draw_labels`), averaged per prompt and weighted by ``d0`` (:func:`sample_mean`); or
  a fixed :class:`Dataset` of comparisons (:func:`sample_dataset`).

Shapes: ``X`` prompts, ``Y`` responses; policies are (X, Y) arrays (log-probabilities where the
argument says so), the preference ``P`` is (X, Y, Y).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nlhf_theory import losses
from nlhf_theory.validation import InvalidInputError, check_shape, positive_int

#: Labels of the sampled mode: oracle draws, or the preference probabilities themselves.
LABELS = ("bernoulli", "probability")


def check_policy(game, policy, name: str):
    """Raise unless ``policy`` (probabilities or log-probabilities) has the game's (X, Y) shape
    (a static check: it costs nothing inside ``jit``)."""
    check_shape(policy, name, (game.num_prompts, game.num_responses),
                "(X, Y): one distribution per prompt")


# Draws ------------------------------------------------------------------------------------
def draw_responses(key, log_probs, num: int):
    """``num`` responses per prompt, ``y ~ exp(log_probs)(. | x)``: an (X, num) index array.

    Args:
      key: PRNG key.
      log_probs: (X, Y) log-probabilities (normalized or not).
      num: draws per prompt.
    """
    if jnp.ndim(log_probs) != 2:
        raise InvalidInputError(f"log_probs: expected shape (X, Y), got {jnp.shape(log_probs)}")
    return jax.random.categorical(key, log_probs[:, None, :], axis=-1,
                                  shape=(log_probs.shape[0], num))


class Dataset(NamedTuple):
    """Labelled comparisons ``(x_i, y_i, y'_i, label_i)``; ``label_i = 1[y_i beats y'_i]``."""

    x: Any
    y: Any
    y_prime: Any
    label: Any


def sample_dataset(game, key, num_pairs: int, behaviour=None, opponent=None) -> Dataset:
    """Draw ``num_pairs`` comparisons: ``x ~ d0``, ``y ~ mu(. | x)``, ``y' ~ mu'(. | x)``, labels
    ``1[y beats y'] ~ Bernoulli(P[x, y, y'])`` from the oracle.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      key: PRNG key.
      num_pairs: n >= 1.
      behaviour: (X, Y) behaviour policy ``mu`` of ``y`` (default ``pi_ref``).
      opponent: (X, Y) policy ``mu'`` of ``y'`` (default ``mu``).

    Returns:
      A :class:`Dataset` of (n,) arrays (int32 labels).
    """
    num_pairs = positive_int(num_pairs, "num_pairs")
    mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
    mu2 = mu if opponent is None else jnp.asarray(opponent)
    check_policy(game, mu, "behaviour")
    check_policy(game, mu2, "opponent")
    kx, ky, ky2, kl = jax.random.split(key, 4)
    x = jax.random.categorical(kx, jnp.log(jnp.asarray(game.prompt_weights)), shape=(num_pairs,))
    y = jax.random.categorical(ky, jnp.log(mu[x]), axis=-1)
    y2 = jax.random.categorical(ky2, jnp.log(mu2[x]), axis=-1)
    return Dataset(x, y, y2, game.oracle(kl, x, y, y2))


def check_dataset(data: Dataset, num_prompts: int, num_responses: int) -> Dataset:
    """Validate index ranges and labels of a concrete dataset."""
    arrays = [np.asarray(a) for a in data]
    n = arrays[0].shape
    for name, arr, high in zip(Dataset._fields, arrays, (num_prompts, num_responses,
                                                        num_responses, 2)):
        if arr.shape != n or arr.ndim != 1:
            raise InvalidInputError(f"dataset.{name}: expected shape {n}, got {arr.shape}")
        if name == "label":
            if np.any((arr < 0) | (arr > 1)) or not np.all(np.isfinite(arr)):
                raise InvalidInputError("dataset.label: labels must lie in [0, 1]")
        elif not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 0) | (arr >= high)):
            raise InvalidInputError(
                f"dataset.{name}: indices must be integers in [0, {high}), got range "
                f"[{arr.min()}, {arr.max()}]")
    return Dataset(*(jnp.asarray(a) for a in arrays))


def initial_dataset(game, key, mode, num_pairs, behaviour, dataset) -> Dataset:
    """The offline data of a method: ``dataset`` (checked), a sample of ``num_pairs``
    comparisons from ``behaviour`` (sampled mode), or nothing (the exact mode's population)."""
    if dataset is not None:
        return check_dataset(dataset, game.num_prompts, game.num_responses)
    if mode == "sampled":
        return sample_dataset(game, key, num_pairs, behaviour)
    return Dataset(*(jnp.zeros(0, jnp.int32) for _ in range(4)))


def expected_win_rates(P, opponent):
    """``(P pi')(y | x) = sum_{y'} P[x, y, y'] pi'(y' | x)``: every response's win rate against
    the (X, Y) policy ``opponent`` (probabilities)."""
    return jnp.einsum("xij,xj->xi", P, opponent)


# Win rates and pairwise losses, exact or sampled ------------------------------------------
def win_rates(game, opponent_logits, key, mode: str, batch_size: int):
    """``(P pi_opp)(y | x)`` for every prompt and response, exact or sampled.

    Sampled: for each ``(x, y)``, ``batch_size`` opponents ``y' ~ pi_opp(. | x)`` and labels
    ``1[y beats y'] ~ Bernoulli(P[x, y, y'])`` from the oracle; the mean label is an unbiased
    estimate of the exact win rate.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      opponent_logits: (X, Y) log-probabilities of the opponent.
      key: PRNG key (sampled mode).
      mode: ``"exact"`` or ``"sampled"``.
      batch_size: comparisons per response (sampled mode).

    Returns:
      (X, Y) win rates.
    """
    check_policy(game, opponent_logits, "opponent_logits")
    P = jnp.asarray(game.P)
    if mode == "exact":
        return expected_win_rates(P, jnp.exp(opponent_logits))
    X, Y = opponent_logits.shape
    k_opp, k_lab = jax.random.split(key)
    opp = jax.random.categorical(k_opp, opponent_logits[:, None, None, :], axis=-1,
                                 shape=(X, Y, batch_size))
    x = jnp.arange(X)[:, None, None]
    y = jnp.arange(Y)[None, :, None]
    probs = P[x, y, opp]
    labels = jax.random.bernoulli(k_lab, probs)
    return labels.mean(-1).astype(opponent_logits.dtype)


def draw_labels(key, probabilities, labels, dtype):
    """Oracle labels ``1[y > y'] ~ Bernoulli(p)`` (``labels="bernoulli"``) or ``p`` itself
    (``labels="probability"``), as ``dtype``; ``probabilities`` holds ``P[x, y, y']``."""
    if labels == "probability":
        return probabilities.astype(dtype)
    return jax.random.bernoulli(key, probabilities).astype(dtype)


# Population expectations ---------------------------------------------------------------------
def pair_weights(mu1, mu2):
    """``w[x, y, y'] = mu_1(y | x) mu_2(y' | x)``: the (X, Y, Y) law of an independent pair."""
    return mu1[:, :, None] * mu2[:, None, :]


def pair_expectation(prompt_weights, weights, values):
    """``sum_x d0(x) sum_{y, y'} w[x, y, y'] values[x, y, y']`` (a scalar).

    Args:
      prompt_weights: (X,) ``d0``.
      weights: (X, Y, Y) pair law ``w`` (:func:`pair_weights`).
      values: (X, Y, Y) values ``f(x, y, y')``.
    """
    if jnp.shape(weights) != jnp.shape(values) or jnp.ndim(values) != 3:
        raise InvalidInputError(f"weights, values: expected two (X, Y, Y) arrays, got "
                                f"{jnp.shape(weights)} and {jnp.shape(values)}")
    return jnp.sum(prompt_weights * jnp.sum(weights * values, axis=(1, 2)))


def sample_mean(prompt_weights, values):
    """``sum_x d0(x) mean_i values[x, i]``: the sampled counterpart of :func:`pair_expectation`
    for (X, n) per-prompt draws."""
    return jnp.sum(prompt_weights * values.mean(-1))


def expected_pair_loss(loss, logp, log_ref, P, prompt_weights, weights, beta):
    """A pairwise loss of :mod:`nlhf_theory.losses` in expectation over pairs ``~ weights``
    and soft labels ``P``: ``sum_x d0(x) sum_{y, y'} w[x, y, y'] loss(y, y'; P[x, y, y'])``."""
    values = loss(logp[:, :, None], logp[:, None, :], log_ref[:, :, None], log_ref[:, None, :],
                  P, beta)
    return pair_expectation(prompt_weights, weights, values)


def dataset_pair_loss(loss, logp, log_ref, data, beta):
    """A pairwise loss averaged over the comparisons of a :class:`Dataset` (labels as given)."""
    x, y, y2, label = data
    return loss(logp[x, y], logp[x, y2], log_ref[x, y], log_ref[x, y2],
                label.astype(logp.dtype), beta).mean()


def pair_loss(loss, logits, game, behaviour, key, mode, batch_size, beta, log_ref=None,
              labels="bernoulli"):
    """Expected (exact) or empirical (sampled) pairwise loss of the policy ``softmax(logits)``.

    Args:
      loss: a function of :mod:`nlhf_theory.losses` with signature
        ``(logp, logp_prime, ref, ref_prime, label, beta)``.
      logits: (X, Y) logits of the trained policy.
      game: the game (its ``P`` gives the labels).
      behaviour: pair ``(log mu_1, log mu_2)`` of (X, Y) log-probabilities the pairs are drawn
        from (treated as constants).
      key, mode, batch_size: sampling controls.
      beta: KL coefficient.
      log_ref: (X, Y) log-probabilities of the loss's reference (default ``log pi_ref``).
      labels: sampled mode: ``"bernoulli"`` (oracle draws) or ``"probability"`` (the label is
        ``P[x, y, y']``).

    Returns:
      A scalar loss.
    """
    check_policy(game, logits, "logits")
    logp = jax.nn.log_softmax(logits, axis=-1)
    log_ref = jnp.log(jnp.asarray(game.pi_ref)) if log_ref is None else log_ref
    P = jnp.asarray(game.P)
    d0 = jnp.asarray(game.prompt_weights)
    mu1, mu2 = (jax.lax.stop_gradient(m) for m in behaviour)
    if mode == "exact":
        return expected_pair_loss(loss, logp, log_ref, P, d0,
                                  pair_weights(jnp.exp(mu1), jnp.exp(mu2)), beta)
    k1, k2, k3 = jax.random.split(key, 3)
    y = draw_responses(k1, mu1, batch_size)
    y2 = draw_responses(k2, mu2, batch_size)
    x = jnp.arange(logits.shape[0])[:, None]
    label = draw_labels(k3, P[x, y, y2], labels, logits.dtype)
    values = loss(logp[x, y], logp[x, y2], log_ref[x, y], log_ref[x, y2], label, beta)
    return sample_mean(d0, values)


def win_rate_pair_loss(logits, game, opponent, key, mode, batch_size, beta,
                       labels="bernoulli"):
    """EGPO's online IPO loss of ``softmax(logits)`` against ``pi' = exp(opponent)``.

    Exact: ``sum_x d0(x) (1 / Y^2) sum_{y, y'} (h(y, y') - (P(y > pi') - P(y' > pi')) / beta)^2``
    (every ordered pair, uniform weights). Sampled: per prompt, ``batch_size`` triples with
    ``y, y' ~ Unif(Y)`` and one opponent ``y'' ~ pi'``, the target ``l - l'`` with
    ``l ~ Bernoulli(P[x, y, y''])`` and ``l' ~ Bernoulli(P[x, y', y''])`` two independent oracle
    comparisons (``labels="bernoulli"``) or ``P[x, y, y''] - P[x, y', y'']``
    (``labels="probability"``, the authors' sampled mode); the loss is the mean over the
    batch. The loss is :func:`nlhf_theory.losses.win_rate_ipo_loss`.

    Args:
      logits: (X, Y) logits of the trained policy.
      game: the game.
      opponent: (X, Y) normalized log-probabilities of ``pi'`` (treated as constants).
      key, mode, batch_size: sampling controls (``batch_size`` triples per prompt).
      beta: KL coefficient.
      labels: ``"bernoulli"`` or ``"probability"`` (sampled mode).

    Returns:
      A scalar loss.

    References:
      Zhou, Fazel & Du 2025, arXiv:2503.08942; code ``zhourunlong/EGPO``,
      ``simulations/loss_funcs.py``, ``online_ipo_1`` (exact) and ``online_ipo_1_sample``.
    """
    check_policy(game, logits, "logits")
    check_policy(game, opponent, "opponent")
    logp = jax.nn.log_softmax(logits, axis=-1)
    log_ref = jnp.log(jnp.asarray(game.pi_ref))
    P = jnp.asarray(game.P)
    d0 = jnp.asarray(game.prompt_weights)
    opponent = jax.lax.stop_gradient(opponent)
    X, Y = logits.shape
    if mode == "exact":
        wins = expected_win_rates(P, jnp.exp(opponent))
        values = losses.win_rate_ipo_loss(logp[:, :, None], logp[:, None, :],
                                          log_ref[:, :, None], log_ref[:, None, :],
                                          wins[:, :, None], wins[:, None, :], beta)
        return jnp.sum(d0 * values.mean(axis=(1, 2)))
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    y = jax.random.randint(k1, (X, batch_size), 0, Y)
    y2 = jax.random.randint(k2, (X, batch_size), 0, Y)
    y3 = draw_responses(k3, opponent, batch_size)
    x = jnp.arange(X)[:, None]
    win = draw_labels(k4, P[x, y, y3], labels, logits.dtype)
    win_prime = draw_labels(k5, P[x, y2, y3], labels, logits.dtype)
    values = losses.win_rate_ipo_loss(logp[x, y], logp[x, y2], log_ref[x, y], log_ref[x, y2],
                                      win, win_prime, beta)
    return sample_mean(d0, values)
