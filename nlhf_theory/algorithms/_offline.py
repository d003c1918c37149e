"""Offline preference optimization from a fixed dataset of labelled pairs (DPO, IPO, SLiC),
and reward-based RLHF (a Bradley-Terry reward fit, then the KL-optimal policy)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nlhf_theory import losses
from nlhf_theory import validation as checks
from nlhf_theory.algorithms._base import Algorithm, log_softmax, policy_from_logits
from nlhf_theory.algorithms._defaults import (
    bradley_terry_rule,
    offline_dpo_rule,
    offline_ipo_rule,
    slic_rule,
    step_size,
)
from nlhf_theory.algorithms._targets import NO_TARGET, ipo_optimum_target, reward_optimum_target
from nlhf_theory.data import (
    Dataset,
    dataset_pair_loss,
    expected_pair_loss,
    initial_dataset,
    pair_weights,
)
from nlhf_theory.validation import InvalidInputError

#: The offline pairwise losses by name.
PAIR_LOSSES = {"dpo": losses.dpo_loss, "ipo": losses.ipo_loss, "slic": losses.slic_loss}
#: Default learning-rate rules of the offline losses (:mod:`._defaults`).
_RULES = {"dpo": offline_dpo_rule, "ipo": offline_ipo_rule, "slic": slic_rule}


class OfflineState(NamedTuple):
    """State of an offline method (DPO, IPO, SLiC; SAIL's ``SailState``).

    Attributes:
      logits: (X, Y) normalized log-probabilities ``log pi_t`` of the iterate.
      data: the offline :class:`~nlhf_theory.algorithms.Dataset`, ``(N,)`` arrays (drawn at
        ``init`` in the sampled mode, or the given ``dataset``; unused by the exact mode's
        population loss).
      step: () int32 iteration counter.
    """

    logits: Any
    data: Dataset
    step: Any


def dataset_init(mode, num_pairs, behaviour, dataset):
    """``init(game, key)`` of a method that starts at ``pi_ref`` with its offline data: the
    given ``dataset``, a sample of ``num_pairs`` from ``behaviour`` (sampled mode) or none."""

    def init(game, key):
        logits = jnp.log(jnp.asarray(game.pi_ref))
        data = initial_dataset(game, key, mode, num_pairs, behaviour, dataset)
        return OfflineState(logits, data, jnp.zeros((), jnp.int32))

    return init


def _offline(loss_name, beta, learning_rate, mode, num_pairs, behaviour, dataset, target):
    loss = PAIR_LOSSES[loss_name]
    beta = checks.positive(beta, "beta")
    step = step_size(learning_rate, _RULES[loss_name](beta))
    mode = checks.check_mode(mode)
    num_pairs = checks.positive_int(num_pairs, "num_pairs")

    init = dataset_init(mode, num_pairs, behaviour, dataset)

    def objective(logits, data, game):
        logp = log_softmax(logits)
        log_ref = jnp.log(jnp.asarray(game.pi_ref))
        if mode == "exact" and dataset is None:  # population data: pairs from mu x mu
            mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
            return expected_pair_loss(loss, logp, log_ref, jnp.asarray(game.P),
                                      jnp.asarray(game.prompt_weights), pair_weights(mu, mu),
                                      beta)
        return dataset_pair_loss(loss, logp, log_ref, data, beta)

    def update(state, game, key):
        grad = jax.grad(objective)(state.logits, state.data, game)
        return state._replace(logits=log_softmax(state.logits - step(game) * grad),
                              step=state.step + 1)

    return Algorithm(init, update, policy_from_logits, target)


#: The Args and Returns sections shared by :func:`dpo`, :func:`ipo` and :func:`slic`.
_DOC_ARGS = """
    Args:
      beta: KL coefficient > 0.
      learning_rate: gradient step ``lr`` on the logits > 0 (default None: the rule of
        :data:`~nlhf_theory.algorithms.DEFAULT_RULES`, one over the loss's smoothness for
        DPO and IPO, a step that moves ``beta h`` by at most 1/2 for SLiC).
      mode: ``"exact"`` (default): the population loss over pairs ``y, y' ~ mu`` with labels
        in expectation; ``"sampled"``: a dataset of ``num_pairs`` comparisons drawn once at
        ``init`` (full-batch gradient steps).
      num_pairs: dataset size in the sampled mode, >= 1 (default 1000).
      behaviour: (X, Y) behaviour policy ``mu`` of the data (default None: ``pi_ref``).
      dataset: a :class:`~nlhf_theory.algorithms.Dataset` to use instead of sampling one
        (default None); when given, it replaces the population loss in the exact mode too.

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is an :class:`OfflineState`.
"""


def dpo(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline DPO on comparisons drawn by a behaviour policy ``mu``.

    ``theta_{t+1} = theta_t - lr grad E_{y, y' ~ mu, l ~ P}[-log sigma(beta h (2 l - 1))]``
    (:func:`nlhf_theory.losses.dpo_loss`), with ``lr`` = ``learning_rate``, ``beta`` =
    ``beta``, ``mu`` = ``behaviour``, ``h = log(pi_theta / pi_ref)(y) - log(pi_theta /
    pi_ref)(y')`` and ``l`` the label (``P[x, y, y']`` in expectation, or the dataset's). On
    a Bradley-Terry preference with full coverage its population optimum is the RLHF policy
    ``pi_ref exp(r / beta) / Z``.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` whatever the hyper-parameters (its
    policy needs a Bradley-Terry game).
    {args}
    Example:
      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("bradley_terry")
      >>> alg = nt.algorithms.dpo(beta=1.0)
      >>> last = jax.lax.fori_loop(0, 300, lambda t, s: alg.update(s, game, None),
      ...                          alg.init(game, jax.random.key(0)))
      >>> bool(np.abs(alg.policy(last) - alg.target.policy(game)).max() < 1e-6)
      True

    References:
      Rafailov et al. 2023, arXiv:2305.18290, eq. 7.
    """
    return _offline("dpo", beta, learning_rate, mode, num_pairs, behaviour, dataset,
                    reward_optimum_target(beta))


def ipo(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline IPO on comparisons drawn by a behaviour policy ``mu``.

    ``theta_{t+1} = theta_t - lr grad E_{y, y' ~ mu}[(h - (l - 1/2) / beta)^2]``
    (:func:`nlhf_theory.losses.ipo_loss`; ``lr``, ``beta``, ``mu``, ``h``, ``l`` as in
    :func:`dpo`). Its population optimum is ``pi_ref exp(P(y > mu) / beta) / Z`` (Azar et al.
    2023, Sec. 5), which differs from the Bradley-Terry optimum.

    Target: ``alg.target.kind`` is ``"loss_optimum"``, that population optimum, which moves
    with ``beta`` and ``behaviour``.
    {args}
    Example:
      The optimum depends on the behaviour policy, and the iterate reaches it:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game, mu = nt.make_game("condorcet_cycle"), np.array([[0.6, 0.2, 0.2]])
      >>> alg = nt.algorithms.ipo(beta=0.5, behaviour=mu)
      >>> alg.target.kind
      'loss_optimum'
      >>> last = jax.lax.fori_loop(0, 300, lambda t, s: alg.update(s, game, None),
      ...                          alg.init(game, jax.random.key(0)))
      >>> target = alg.target.policy(game)
      >>> bool(np.abs(alg.policy(last) - target).max() < 1e-6)
      True
      >>> bool(np.allclose(target, nt.algorithms.ipo(beta=0.5).target.policy(game)))
      False

    References:
      Azar et al. 2023, arXiv:2310.12036, Sec. 5.
    """
    return _offline("ipo", beta, learning_rate, mode, num_pairs, behaviour, dataset,
                    ipo_optimum_target(beta, behaviour))


def slic(beta, learning_rate=None, *, mode="exact", num_pairs=1000, behaviour=None, dataset=None):
    """Offline SLiC-HF (hinge on the log-ratio margin) on comparisons drawn by ``mu``.

    Subgradient steps ``theta_{t+1} = theta_t - lr grad E_{y, y' ~ mu}[l max(0, 1 - beta h) +
    (1 - l) max(0, 1 + beta h)]`` (:func:`nlhf_theory.losses.slic_loss`: ``max(0, 1 - beta
    h)`` for the preferred response; ``lr``, ``beta``, ``mu``, ``h``, ``l`` as in :func:`dpo`).

    Target: ``alg.target.kind`` is ``"none"`` for every hyper-parameter: no closed-form
    limit of the hinge loss is claimed.
    {args}
    Example:
      >>> import nlhf_theory as nt
      >>> df = nt.run("slic", nt.make_game("condorcet_winner"), beta=1.0, steps=50)
      >>> bool(df.win_rate_ref.iloc[-1] > df.win_rate_ref.iloc[0])
      True

    References:
      Zhao et al. 2023, arXiv:2305.10425, Sec. 2 (calibration loss); Tang et al. 2024,
      arXiv:2402.05749, Table 1 (SLiC as the hinge instance of GPO).
    """
    return _offline("slic", beta, learning_rate, mode, num_pairs, behaviour, dataset,
                    NO_TARGET)


for _f in (dpo, ipo, slic):  # replace, not format: the docstrings' math has braces
    _f.__doc__ = _f.__doc__.replace("{args}", _DOC_ARGS)


class RewardState(NamedTuple):
    """State of reward-based RLHF (:func:`rlhf_bt`).

    Attributes:
      params: the reward parameters: (X, Y) tabular rewards, or (d,) weights ``theta`` of
        the linear reward ``theta . phi(x, y)``.
      data: the offline :class:`~nlhf_theory.algorithms.Dataset` (as in :class:`OfflineState`).
      log_ref: (X, Y) ``log pi_ref``, the base of the closed-form policy.
      step: () int32 iteration counter.
    """

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
    ``pi_ref exp(r / beta) / Z`` (:func:`nlhf_theory.reward_optimal_policy`). In symbols:
    ``params_{t+1} = params_t - lr grad (NLL(params) + prior / 2 ||params||^2)`` and ``pi_t ∝
    pi_ref exp(r_t / beta)``, with ``lr`` = ``learning_rate``, ``prior`` = ``prior``, ``phi``
    = ``features``, ``beta`` = ``beta`` and pairs ``y, y' ~ mu`` = ``behaviour`` (or the
    dataset's), labels ``P[x, y, y']`` in expectation or drawn.

    Target: ``alg.target.kind`` is ``"reward_optimum"`` whatever the hyper-parameters (the
    limit with full coverage and ``prior = 0``; its policy needs a Bradley-Terry game).

    Args:
      beta: KL coefficient > 0 of the policy step.
      learning_rate: gradient step on the reward parameters > 0 (default None: one over the
        smoothness of the likelihood, :data:`~nlhf_theory.algorithms.DEFAULT_RULES`).
      prior: Gaussian prior precision >= 0 (default 0.0, the MLE).
      features: optional (X, Y, d) reward features (linear reward); default None: tabular.
      mode, num_pairs, behaviour, dataset: as in :func:`dpo` (defaults ``"exact"``, 1000,
        None, None).

    Returns:
      An :class:`~nlhf_theory.algorithms.Algorithm` whose state is a :class:`RewardState`.

    Example:
      One feature per response is the tabular model in linear form:

      >>> import jax, numpy as np, nlhf_theory as nt
      >>> game = nt.make_game("bradley_terry")
      >>> alg = nt.algorithms.rlhf_bt(beta=1.0, features=np.eye(3)[None])
      >>> state = alg.init(game, jax.random.key(0))
      >>> state.params.shape
      (3,)
      >>> last = jax.lax.fori_loop(0, 300, lambda t, s: alg.update(s, game, None), state)
      >>> bool(np.abs(alg.policy(last) - alg.target.policy(game)).max() < 1e-6)
      True

    References:
      Ouyang et al. 2022, arXiv:2203.02155, eq. 1 (reward model loss); Rafailov et al. 2023,
      arXiv:2305.18290, eq. 4 (the KL-optimal policy).
    """
    beta = checks.positive(beta, "beta")
    step = step_size(learning_rate, bradley_terry_rule(features))
    prior = checks.nonnegative(prior, "prior")
    mode = checks.check_mode(mode)
    num_pairs = checks.positive_int(num_pairs, "num_pairs")
    phi = None if features is None else jnp.asarray(features)
    if phi is not None and phi.ndim != 3:
        raise InvalidInputError(f"features: expected shape (X, Y, d), got {phi.shape}")
    loss = losses.dpo_loss

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
        zero = jnp.zeros_like(r)  # the BT likelihood is DPO's loss in r with beta = 1
        if mode == "exact" and dataset is None:
            mu = jnp.asarray(game.pi_ref if behaviour is None else behaviour)
            nll = expected_pair_loss(loss, r, zero, jnp.asarray(game.P),
                                     jnp.asarray(game.prompt_weights), pair_weights(mu, mu), 1.0)
        else:
            nll = dataset_pair_loss(loss, r, zero, data, 1.0)
        return nll + 0.5 * prior * jnp.sum(params**2)

    def update(state, game, key):
        grad = jax.grad(objective)(state.params, state.data, game)
        return state._replace(params=state.params - step(game) * grad, step=state.step + 1)

    def policy(state):
        return jax.nn.softmax(state.log_ref + reward(state.params) / beta, axis=-1)

    return Algorithm(init, update, policy, reward_optimum_target(beta))
