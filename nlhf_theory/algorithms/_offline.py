"""Offline preference optimization from a fixed dataset of labelled pairs (DPO, IPO, SLiC)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nlhf_theory._validation import InvalidInputError
from nlhf_theory.algorithms._base import (
    Algorithm,
    log_softmax,
    nonnegative,
    policy_from_logits,
    positive,
    positive_int,
)
from nlhf_theory.algorithms._defaults import (
    bradley_terry_rule,
    offline_dpo_rule,
    offline_ipo_rule,
    slic_rule,
    step_size,
)
from nlhf_theory.algorithms._mirror import check_mode
from nlhf_theory.algorithms._pairwise import _LOSSES

#: Default learning-rate rules of the offline losses (:mod:`._defaults`).
_RULES = {"dpo": offline_dpo_rule, "ipo": offline_ipo_rule, "slic": slic_rule}


class Dataset(NamedTuple):
    """Labelled comparisons ``(x_i, y_i, y'_i, label_i)``; ``label_i = 1[y_i beats y'_i]``."""

    x: Any
    y: Any
    y_prime: Any
    label: Any


class OfflineState(NamedTuple):
    """State of an offline method: the iterate's logits, the dataset and the step count."""

    logits: Any
    data: Dataset
    step: Any


def sample_dataset(game, key, num_pairs: int, behaviour=None) -> Dataset:
    """Draw ``num_pairs`` comparisons: ``x ~ d0``, ``y, y' ~ mu(. | x)``, labels from the oracle.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      key: PRNG key.
      num_pairs: n >= 1.
      behaviour: (X, Y) behaviour policy ``mu`` (default ``pi_ref``).
    """
    num_pairs = positive_int(num_pairs, "num_pairs")
    mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
    kx, ky, ky2, kl = jax.random.split(key, 4)
    x = jax.random.categorical(kx, jnp.log(jnp.asarray(game.prompt_weights)), shape=(num_pairs,))
    y = jax.random.categorical(ky, jnp.log(mu[x]), axis=-1)
    y2 = jax.random.categorical(ky2, jnp.log(mu[x]), axis=-1)
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


def _offline(loss_name, beta, learning_rate, mode, num_pairs, behaviour, dataset, target):
    loss = _LOSSES[loss_name]
    beta = positive(beta, "beta")
    step = step_size(learning_rate, _RULES[loss_name](beta))
    mode = check_mode(mode)
    num_pairs = positive_int(num_pairs, "num_pairs")

    def init(game, key):
        logits = jnp.log(jnp.asarray(game.pi_ref))
        data = initial_dataset(game, key, mode, num_pairs, behaviour, dataset)
        return OfflineState(logits, data, jnp.zeros((), jnp.int32))

    def objective(logits, data, game):
        logp = log_softmax(logits)
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        if mode == "exact" and dataset is None:  # population data: pairs from mu x mu
            mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
            weights = mu[:, :, None] * mu[:, None, :]
            values = loss(logp[:, :, None], logp[:, None, :], log_ref[:, :, None],
                          log_ref[:, None, :], jnp.asarray(game.P), beta)
            return jnp.sum(jnp.asarray(game.prompt_weights) * jnp.sum(weights * values, (1, 2)))
        x, y, y2, label = data
        values = loss(logp[x, y], logp[x, y2], log_ref[x, y], log_ref[x, y2],
                      label.astype(logits.dtype), beta)
        return values.mean()

    def update(state, game, key):
        grad = jax.grad(objective)(state.logits, state.data, game)
        return state._replace(logits=log_softmax(state.logits - step(game) * grad),
                              step=state.step + 1)

    return Algorithm(init, update, policy_from_logits, target)


_DOC_ARGS = """
    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step on the logits > 0 (default None: the rule of
        :data:`~nlhf_theory.algorithms.DEFAULT_RULES`, one over the loss's smoothness).
      mode: ``"exact"``: the population loss over pairs ``y, y' ~ mu`` with labels in
        expectation; ``"sampled"``: a dataset of ``num_pairs`` comparisons drawn once at
        ``init`` (full-batch gradient steps).
      num_pairs: dataset size in the sampled mode.
      behaviour: (X, Y) behaviour policy ``mu`` of the data (default ``pi_ref``).
      dataset: a :class:`Dataset` to use instead of sampling one.
"""


def dpo(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline DPO on comparisons drawn by a behaviour policy ``mu``.

    Minimizes ``E[-log sigma(beta h)]`` (:func:`nlhf_theory.losses.dpo_loss`). On a
    Bradley-Terry preference with full coverage its population optimum is the RLHF policy
    ``pi_ref exp(r / beta) / Z``.
    {args}
    References:
      Rafailov et al. 2023, arXiv:2305.18290, eq. 7.
    """
    return _offline("dpo", beta, learning_rate, mode, num_pairs, behaviour, dataset,
                    "reward_optimum")


def ipo(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline IPO on comparisons drawn by a behaviour policy ``mu``.

    Minimizes ``(h - (label - 1/2) / beta)^2`` (:func:`nlhf_theory.losses.ipo_loss`). Its
    population optimum is ``pi_ref exp(P(y > mu) / beta) / Z`` (Azar et al. 2023, Sec. 5),
    which differs from the Bradley-Terry optimum.
    {args}
    References:
      Azar et al. 2023, arXiv:2310.12036, Sec. 5.
    """
    return _offline("ipo", beta, learning_rate, mode, num_pairs, behaviour, dataset, "none")


def slic(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline SLiC-HF (hinge on the log-ratio margin) on comparisons drawn by ``mu``.

    Minimizes ``max(0, 1 - beta h)`` for the preferred response
    (:func:`nlhf_theory.losses.slic_loss`).
    {args}
    References:
      Zhao et al. 2023, arXiv:2305.10425; Tang et al. 2024, arXiv:2402.05749, Table 1.
    """
    return _offline("slic", beta, learning_rate, mode, num_pairs, behaviour, dataset, "none")


for _f in (dpo, ipo, slic):
    _f.__doc__ = _f.__doc__.format(args=_DOC_ARGS)


class RewardState(NamedTuple):
    """State of reward-based RLHF: reward parameters, the data and ``log pi_ref``."""

    params: Any
    data: Dataset
    log_ref: Any
    step: Any


def rlhf_bt(beta, learning_rate=None, *, prior: float = 0.0, features=None, mode="exact",
            num_pairs=1000, behaviour=None, dataset=None) -> Algorithm:
    """Reward-based RLHF: fit a Bradley-Terry reward, then the KL-optimal policy in closed form.

    The reward ``r(x, y)`` (tabular, or ``theta . phi(x, y)`` with ``features`` phi) is fitted
    by gradient steps on the Bradley-Terry negative log-likelihood
    ``E[-log sigma((r(y) - r(y')) (2 label - 1))]`` plus ``prior / 2 ||params||^2`` (MAP with a
    Gaussian prior; ``prior = 0`` is the MLE); the policy is always
    ``pi_ref exp(r / beta) / Z`` (:func:`nlhf_theory.reward_optimal_policy`).

    Args:
      beta: KL coefficient > 0 of the policy step.
      learning_rate: gradient step on the reward parameters > 0 (default None: one over the
        smoothness of the likelihood, :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      prior: Gaussian prior precision >= 0 (0 for the MLE).
      features: optional (X, Y, d) reward features (linear reward); tabular if None.
      mode, num_pairs, behaviour, dataset: as in :func:`dpo`.

    References:
      Ouyang et al. 2022, arXiv:2203.02155, eq. 1 (reward model loss); Rafailov et al. 2023,
      arXiv:2305.18290, eq. 4 (the KL-optimal policy).
    """
    beta = positive(beta, "beta")
    step = step_size(learning_rate, bradley_terry_rule(features))
    prior = nonnegative(prior, "prior")
    mode = check_mode(mode)
    num_pairs = positive_int(num_pairs, "num_pairs")
    phi = None if features is None else jnp.asarray(features)
    if phi is not None and phi.ndim != 3:
        raise InvalidInputError(f"features: expected shape (X, Y, d), got {phi.shape}")
    loss = _LOSSES["dpo"]

    def reward(params):
        return params if phi is None else phi @ params

    def init(game, key):
        if phi is not None and phi.shape[:2] != (game.num_prompts, game.num_responses):
            raise InvalidInputError(
                f"features: expected leading shape {(game.num_prompts, game.num_responses)}, "
                f"got {phi.shape[:2]}")
        data = initial_dataset(game, key, mode, num_pairs, behaviour, dataset)
        params = (jnp.zeros((game.num_prompts, game.num_responses)) if phi is None
                  else jnp.zeros(phi.shape[-1]))
        return RewardState(params, data, jnp.log(jnp.asarray(game.pi_ref)),
                           jnp.zeros((), jnp.int32))

    def objective(params, data, game):
        r = reward(params)
        zero = jnp.zeros_like(r)
        if mode == "exact" and dataset is None:
            mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
            weights = mu[:, :, None] * mu[:, None, :]
            values = loss(r[:, :, None], r[:, None, :], zero[:, :, None], zero[:, None, :],
                          jnp.asarray(game.P), 1.0)
            nll = jnp.sum(jnp.asarray(game.prompt_weights) * jnp.sum(weights * values, (1, 2)))
        else:
            x, y, y2, label = data
            nll = loss(r[x, y], r[x, y2], zero[x, y], zero[x, y2],
                       label.astype(r.dtype), 1.0).mean()
        return nll + 0.5 * prior * jnp.sum(params**2)

    def update(state, game, key):
        grad = jax.grad(objective)(state.params, state.data, game)
        return state._replace(params=state.params - step(game) * grad, step=state.step + 1)

    def policy(state):
        return jax.nn.softmax(state.log_ref + reward(state.params) / beta, axis=-1)

    return Algorithm(init, update, policy, "reward_optimum")
