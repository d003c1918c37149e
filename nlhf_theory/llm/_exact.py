"""Exact and sampled training of a language model on the bridge, for every recipe.

Exact mode: every expectation over pairs is a finite sum over the enumerated sequences,
``L(theta) = sum_x d0(x) sum_{y, y'} w_1(y | x) w_2(y' | x) loss(pair(x, y, y'))`` with the
weights of the recipe's pair source (stop-gradient) and soft labels ``P[x, y, y']``, so autograd
gives the population gradient exactly, through the transformer. Sampled mode: the same loss on
pairs drawn from those weights with 0/1 oracle labels, scored by
:func:`~nlhf_theory.llm.sequence_logprobs` on the drawn sequences (the trainer's path); its
gradient is an unbiased estimate of the exact one.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import torch

from nlhf_theory.llm._logprobs import sequence_logprobs
from nlhf_theory.llm._recipes import RECIPES, PairLogps, Recipe
from nlhf_theory.validation import InvalidInputError


class ExactState(NamedTuple):
    """State carried between exact-mode iterations.

    Attributes:
      step: iterations done.
      magnet: (X, Y) log-probabilities of the magnet (MPO, COMAL), or None.
    """

    step: int = 0
    magnet: Any = None


class Tables(NamedTuple):
    """The game's arrays as float64 tensors: ``P`` (X, Y, Y), ``d0`` (X,), ``ref`` (X, Y) log
    pi_ref, ``data`` (X, Y) log mu of the offline data (None: pi_ref)."""

    P: Any
    d0: Any
    ref: Any
    data: Any = None


def get_recipe(recipe) -> Recipe:
    """A :class:`Recipe` from itself or its name."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise InvalidInputError(f"recipe: must be one of {sorted(RECIPES)}, got {recipe!r}")
    return RECIPES[recipe]


def game_tables(game, data=None, dtype=torch.float64) -> Tables:
    """:class:`Tables` of a :class:`~nlhf_theory.PreferenceGame` (and offline data policy)."""
    def t(a):
        return torch.as_tensor(np.array(a, dtype=np.float64), dtype=dtype)
    return Tables(t(game.P), t(game.prompt_weights), torch.log(t(game.pi_ref)),
                  None if data is None else torch.log(t(data)))


def hyperparameters(recipe, beta, hp):
    """The recipe's defaults overridden by ``hp``; Nash-MD's mixture defaults to ``eta beta``."""
    out = {**recipe.defaults, **hp}
    if recipe.name == "nash_md" and out.get("mixture") is None and out.get("eta") is not None:
        out["mixture"] = out["eta"] * beta
    for key in ("eta", "period", "mixture"):
        if key in out and out[key] is None:
            raise InvalidInputError(f"{key}: required by recipe {recipe.name!r}")
    return out


def geometric_mixture(logp, ref, weight):
    """``log(pi^(1 - m) pi_ref^m / Z)`` per prompt (the sequence-level mixture), (X, Y)."""
    return torch.log_softmax((1.0 - weight) * logp + weight * ref, dim=-1)


def pair_weights(recipe, tables, logp, prev, mixture):
    """``(w_1, w_2)``, (X, Y) probabilities of the two responses of a pair (no gradient)."""
    src = recipe.pairs
    X, Y = logp.shape
    if src == "dataset":
        mu = torch.exp(tables.ref if tables.data is None else tables.data)
        return mu, mu
    if src in ("policy", "policy_vs_enhancer"):
        return torch.exp(prev), torch.exp(prev)
    if src == "policy_vs_ref":
        return torch.exp(prev), torch.exp(tables.ref)
    if src == "policy_vs_mixture":
        return torch.exp(prev), torch.exp(mixture)
    if src == "mixture":
        return torch.exp(mixture), torch.exp(mixture)
    if src == "uniform":
        u = torch.full((X, Y), 1.0 / Y, dtype=logp.dtype)
        return u, u
    if src == "current_vs_policy":
        return torch.exp(logp.detach()), torch.exp(prev)
    raise InvalidInputError(f"recipe.pairs: unknown pair source {src!r}")


def exact_loss(recipe, logp, tables, *, beta, prev=None, magnet=None, opponent=None,
               mixture_logp=None, model_preference=None, **hp):
    """The recipe's loss in expectation over pairs and labels, by enumeration.

    ``sum_x d0(x) sum_{y, y'} w_1(y | x) w_2(y' | x) loss(pair(x, y, y'))`` with the weights of
    :func:`pair_weights` and the labels of the recipe: ``P[x, y, y']`` (oracle), the fitted
    ``model_preference`` (model), the win rates ``(P pi_opp)(y)`` and ``(P pi_opp)(y')``
    against ``opponent`` (win_rate) or none (implicit).

    Args:
      recipe: a :class:`Recipe` or its name.
      logp: (X, Y) log pi_theta, differentiable.
      tables: :class:`Tables` of the game.
      beta: KL coefficient.
      prev: (X, Y) log pi_t, the snapshot (default ``logp`` detached).
      magnet: (X, Y) log rho (default ``tables.ref``).
      opponent: (X, Y) log pi_opp of the win-rate labels (default ``prev``).
      mixture_logp: (X, Y) log pi_mix (default: the sequence-level mixture of ``prev`` and
        ``pi_ref`` with weight ``hp["mixture"]``).
      model_preference: (X, Y, Y) fitted preference (labels ``"model"``).
      **hp: the recipe's hyper-parameters.

    Returns:
      A scalar tensor.
    """
    recipe = get_recipe(recipe)
    hp = hyperparameters(recipe, beta, hp)
    prev = logp.detach() if prev is None else prev
    magnet = tables.ref if magnet is None else magnet
    opponent = prev if opponent is None else opponent
    if mixture_logp is None and recipe.pairs in ("mixture", "policy_vs_mixture"):
        mixture_logp = geometric_mixture(prev, tables.ref, hp["mixture"])
    w1, w2 = pair_weights(recipe, tables, logp, prev, mixture_logp)
    label = win = win_prime = None
    if recipe.labels == "oracle":
        label = tables.P
    elif recipe.labels == "model":
        if model_preference is None:
            raise InvalidInputError("model_preference: required by labels 'model'")
        label = torch.as_tensor(model_preference, dtype=logp.dtype)
    elif recipe.labels == "win_rate":
        wins = torch.einsum("xij,xj->xi", tables.P, torch.exp(opponent))
        win, win_prime = wins[:, :, None], wins[:, None, :]

    def a(t):
        return None if t is None else t[:, :, None]

    def b(t):
        return None if t is None else t[:, None, :]

    pair = PairLogps(a(logp), b(logp), a(tables.ref), b(tables.ref), a(prev), b(prev), label,
                     win, win_prime, a(magnet), b(magnet))
    values = recipe.loss(pair, beta, **hp)
    weights = w1[:, :, None] * w2[:, None, :]
    return torch.sum(tables.d0 * torch.sum(weights * values, dim=(1, 2)))


def _logit_preconditioned_gradients(loss, logp, parameters, rcond=1e-10):
    """Parameter gradients whose first-order effect on ``log pi`` is the tabular gradient.

    With ``g = dL / d log pi`` (X, Y), ``d = g - (pi . g) 1`` the gradient in the logits of a
    tabular policy (it sums to zero under ``pi``), and ``J`` the (XY, n) Jacobian of the
    enumerated ``log pi`` in the parameters: returns ``J^T (J J^T)^+ d``, so that a step
    ``-lr J^T (J J^T)^+ d`` moves ``log pi`` by ``-lr d`` to first order, the tabular step
    (a Gauss-Newton / natural-gradient step for the logit-space Euclidean metric).
    """
    g, = torch.autograd.grad(loss, logp, retain_graph=True)
    pi = torch.exp(logp.detach())
    d = (g - (pi * g).sum(-1, keepdim=True)).reshape(-1)
    flat = logp.reshape(-1)
    rows = []
    for i in range(flat.numel()):
        grads = torch.autograd.grad(flat[i], parameters, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([torch.zeros(p.numel(), dtype=flat.dtype) if q is None
                               else q.reshape(-1) for p, q in zip(parameters, grads)]))
    J = torch.stack(rows)
    u = torch.linalg.pinv(J @ J.T, rtol=rcond, hermitian=True) @ d
    step = J.T @ u
    out, start = [], 0
    for p in parameters:
        out.append(step[start:start + p.numel()].reshape(p.shape).to(p.dtype))
        start += p.numel()
    return out


def exact_step(recipe, logprobs_fn, parameters, optimizer, tables, *, beta, state=None,
               mixture_fn=None, model_preference=None, precondition=None,
               **hp) -> ExactState:
    """One iteration of ``recipe`` in exact mode, for any parametrization of ``log pi``.

    ``prev = log pi_t`` is taken at the start; then one optimizer step (or ``loss_steps`` for
    the mirror-descent recipes, the anchors fixed) on :func:`exact_loss`. Extragradient
    (EGPO): a first step against ``pi_t`` gives ``pi_{t+1/2}``, the parameters and optimizer
    state are restored, and the step is taken against ``pi_{t+1/2}``. A magnet moves to the
    policy every ``period`` iterations.

    Args:
      recipe: a :class:`Recipe` or its name.
      logprobs_fn: ``() -> (X, Y)`` log pi_theta (differentiable in ``parameters``).
      parameters: the parameters (a list of tensors) the optimizer updates.
      optimizer: a ``torch.optim`` optimizer over them.
      tables: :class:`Tables`.
      beta: KL coefficient.
      state: :class:`ExactState` (default: step 0, magnet ``pi_ref``).
      mixture_fn: ``m -> (X, Y)`` log pi_mix of the current policy (default: the
        sequence-level geometric mixture; the bridge passes the token-level one on request).
      model_preference: (X, Y, Y) fitted preference for labels ``"model"``.
      precondition: None (the optimizer sees the loss's gradient) or ``"logits"`` (it sees
        ``J^T (J J^T)^+ d``, the parameter direction that moves the enumerated ``log pi`` along
        the tabular algorithm's gradient ``d``; with SGD of step ``lr`` the model then follows
        the tabular update of step ``lr`` to first order; costs X * Y backward passes).
      **hp: the recipe's hyper-parameters.

    Returns:
      The next :class:`ExactState`.
    """
    recipe = get_recipe(recipe)
    hp = hyperparameters(recipe, beta, hp)
    if precondition not in (None, "logits"):
        raise InvalidInputError(f"precondition: must be None or 'logits', got {precondition!r}")
    state = ExactState(0, tables.ref) if state is None else state
    magnet = tables.ref if state.magnet is None else state.magnet
    parameters = list(parameters)
    with torch.no_grad():
        prev = logprobs_fn().detach()
    mixture = None
    if "mixture" in recipe.anchors:
        mixture = (geometric_mixture(prev, tables.ref, hp["mixture"]) if mixture_fn is None
                   else mixture_fn(hp["mixture"]).detach())

    def step(opponent):
        optimizer.zero_grad()
        logp = logprobs_fn()
        loss = exact_loss(recipe, logp, tables, beta=beta, prev=prev, magnet=magnet,
                          opponent=opponent, mixture_logp=mixture,
                          model_preference=model_preference, **hp)
        if precondition == "logits":
            for p, g in zip(parameters, _logit_preconditioned_gradients(loss, logp,
                                                                         parameters)):
                p.grad = g
        else:
            loss.backward()
        optimizer.step()
        return loss

    if "extragradient" in recipe.anchors:
        saved = [p.detach().clone() for p in parameters]
        saved_optimizer = copy.deepcopy(optimizer.state_dict())
        step(prev)
        with torch.no_grad():
            half = logprobs_fn().detach()
            for p, s in zip(parameters, saved):
                p.copy_(s)
        optimizer.load_state_dict(saved_optimizer)
        step(half)
    else:
        for _ in range(int(hp.get("loss_steps", 1)) if recipe.inner_steps else 1):
            step(prev)
    count = state.step + 1
    if "magnet" in recipe.anchors and count % int(hp["period"]) == 0:
        with torch.no_grad():
            magnet = logprobs_fn().detach()
    return ExactState(count, magnet)


def exact_update(recipe, model, bridge, optimizer, *, beta, state=None, mixture_level="sequence",
                 ref_model=None, model_preference=None, precondition=None,
                 **hp) -> ExactState:
    """One exact-mode iteration of ``recipe`` for a language model on the bridge.

    :func:`exact_step` with ``log pi = bridge.logprobs(model)`` and the game of
    ``bridge.to_game()``.

    Args:
      recipe: a :class:`Recipe` or its name.
      model: the causal LM being trained.
      bridge: a :class:`~nlhf_theory.llm.Bridge`.
      optimizer: a ``torch.optim`` optimizer over ``model.parameters()``.
      beta: KL coefficient.
      state: :class:`ExactState` of the previous iteration (None at the start).
      mixture_level: ``"sequence"`` (the paper's geometric mixture) or ``"token"`` (TRL's
        per-token mixture, which needs ``ref_model``).
      ref_model: the reference model (default ``bridge.reference_model()`` when needed).
      model_preference: (X, Y, Y) fitted preference for labels ``"model"``.
      precondition: None or ``"logits"`` (see :func:`exact_step`).
      **hp: the recipe's hyper-parameters (``eta``, ``loss_steps``, ``mixture``, ...).

    Returns:
      The next :class:`ExactState`.

    Example:
      >>> import torch
      >>> from nlhf_theory.llm import make_bridge, exact_update
      >>> bridge = make_bridge(vocab_size=2, length=2, num_prompts=1, fit_steps=5)
      >>> model = bridge.reference_model().train()
      >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
      >>> state = exact_update("online_ipo", model, bridge, opt, beta=0.1)
      >>> state.step
      1
    """
    recipe = get_recipe(recipe)
    tables = game_tables(bridge.to_game())
    mixture_fn = None
    if mixture_level == "token":
        ref_model = bridge.reference_model() if ref_model is None else ref_model

        def mixture_fn(m):
            with torch.no_grad():
                return bridge.mixture_logprobs(model, ref_model, m, level="token")
    elif mixture_level != "sequence":
        raise InvalidInputError(f"mixture_level: must be 'sequence' or 'token', got "
                                f"{mixture_level!r}")
    return exact_step(recipe, lambda: bridge.logprobs(model), model.parameters(), optimizer,
                      tables, beta=beta, state=state, mixture_fn=mixture_fn,
                      model_preference=model_preference, precondition=precondition, **hp)


def sampled_loss(recipe, model, bridge, *, beta, pairs_per_prompt, generator, prev=None,
                 magnet=None, opponent=None, mixture_logp=None, labels="bernoulli", **hp):
    """The recipe's loss on sampled pairs, scored by ``sequence_logprobs`` on the draws.

    Per prompt ``x``, ``pairs_per_prompt`` pairs from the recipe's pair source (drawn from the
    enumerated distributions, stop-gradient), labels ``Bernoulli(P[x, y, y'])``
    (``labels="bernoulli"``) or ``P[x, y, y']`` (``"probability"``); win-rate labels compare
    ``y`` and ``y'`` with one draw ``y'' ~`` the opponent. The value is
    ``sum_x d0(x) mean_i loss_i``; its gradient is an unbiased estimate of
    :func:`exact_loss`'s.

    Args:
      recipe: a :class:`Recipe` or its name.
      model: the causal LM.
      bridge: the bridge.
      beta: KL coefficient.
      pairs_per_prompt: pairs per prompt >= 1.
      generator: a ``torch.Generator`` for the draws.
      prev, magnet, opponent, mixture_logp: as in :func:`exact_loss` (defaults likewise).
      labels: ``"bernoulli"`` or ``"probability"``.
      **hp: the recipe's hyper-parameters.

    Returns:
      A scalar tensor.
    """
    recipe = get_recipe(recipe)
    hp = hyperparameters(recipe, beta, hp)
    tables = game_tables(bridge.to_game())
    X, Y = tables.ref.shape
    n = int(pairs_per_prompt)
    if n < 1:
        raise InvalidInputError(f"pairs_per_prompt: must be >= 1, got {pairs_per_prompt!r}")
    if labels not in ("bernoulli", "probability"):
        raise InvalidInputError(f"labels: must be 'bernoulli' or 'probability', got {labels!r}")
    if prev is None:
        with torch.no_grad():
            prev = bridge.logprobs(model).detach()
    magnet = tables.ref if magnet is None else magnet
    opponent = prev if opponent is None else opponent
    if mixture_logp is None and recipe.pairs in ("mixture", "policy_vs_mixture"):
        mixture_logp = geometric_mixture(prev, tables.ref, hp["mixture"])
    w1, w2 = pair_weights(recipe, tables, prev, prev, mixture_logp)
    y = torch.multinomial(w1, n, replacement=True, generator=generator)  # (X, n)
    y2 = torch.multinomial(w2, n, replacement=True, generator=generator)
    x = torch.arange(X)[:, None].expand(X, n)

    def draw(p):
        if labels == "probability":
            return p
        return torch.bernoulli(p, generator=generator)

    label = win = win_prime = None
    if recipe.labels == "oracle":
        label = draw(tables.P[x, y, y2])
    elif recipe.labels == "win_rate":
        y3 = torch.multinomial(torch.exp(opponent), n, replacement=True, generator=generator)
        win, win_prime = draw(tables.P[x, y, y3]), draw(tables.P[x, y2, y3])
    elif recipe.labels == "model":
        raise InvalidInputError("recipe: labels 'model' need a fitted preference (exact mode)")
    both = bridge.batch(torch.cat([x, x]).numpy(), torch.cat([y, y2]).numpy())
    logp = sequence_logprobs(model, **both, allowed_tokens=bridge.response_tokens)
    logp, logp_prime = logp[:X * n].reshape(X, n), logp[X * n:].reshape(X, n)
    pair = PairLogps(logp, logp_prime, tables.ref[x, y], tables.ref[x, y2], prev[x, y],
                     prev[x, y2], label, win, win_prime, magnet[x, y], magnet[x, y2])
    values = recipe.loss(pair, beta, **hp)
    return torch.sum(tables.d0 * values.mean(-1))


def best_of_n(policy, score, num_candidates):
    """The distribution of the best of ``n`` independent draws from ``policy`` under ``score``.

    ``Pr(best = y) = F(y)^n - F_<(y)^n`` with ``F(y) = sum_{y': score(y') <= score(y)} pi(y')``
    in score order (ties broken by index) and ``F_<(y) = F(y) - pi(y)``: optimistic
    equilibrium learning's practical enhancer, ``score`` being the estimated win rate against
    the main agent (Ye et al. 2024, arXiv:2402.07314, Sec. 6; the same formula as
    :func:`nlhf_theory.algorithms.optimistic_nlhf`'s ``enhancer="best_of_n"``).

    Args:
      policy: (X, Y) probabilities.
      score: (X, Y) scores.
      num_candidates: n >= 1.

    Returns:
      (X, Y) probabilities.

    Example:
      >>> import torch
      >>> best_of_n(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0]]), 2).tolist()
      [[0.25, 0.75]]
    """
    n = int(num_candidates)
    if n < 1:
        raise InvalidInputError(f"num_candidates: must be >= 1, got {num_candidates!r}")
    order = torch.argsort(score, dim=-1, stable=True)
    rank = torch.argsort(order, dim=-1)
    cdf = torch.gather(torch.cumsum(torch.gather(policy, -1, order), -1), -1, rank)
    return cdf**n - (cdf - policy)**n


def collection_weights(recipe, tables, prev, model_preference=None, num_candidates=None):
    """``(w_1, w_2)`` of the comparisons a recipe sends to the oracle (its ``collect`` source).

    For optimistic equilibrium learning: ``y ~ pi_t`` (the main agent) against
    ``y' ~ best_of_n(pi_t, P_hat pi_t)``; for every other recipe the training pairs.
    """
    recipe = get_recipe(recipe)
    if recipe.collect != "policy_vs_enhancer":
        return pair_weights(recipe, tables, prev, prev, None)
    if model_preference is None:
        raise InvalidInputError("model_preference: the best-of-n enhancer needs P_hat")
    n = recipe.defaults.get("num_candidates") if num_candidates is None else num_candidates
    pi = torch.exp(prev)
    score = torch.einsum("xab,xb->xa", torch.as_tensor(model_preference, dtype=pi.dtype), pi)
    return pi, best_of_n(pi, score, n)
