"""Metrics of SAIL's experiments on a tabular game: win rate against the dataset's chosen
response, the DPO implicit reward margin, and the per-slot compute of SAIL's routes.

NumPy functions; policies may carry leading batch dimensions (settings, seeds, steps), and
comparison data ``(x, y, y', label)`` (``label = 1[y beats y']``, soft labels in [0, 1]
allowed) may carry leading batch dimensions that broadcast against them.

References:
  Ding et al. 2024, "SAIL: Self-Improving Efficient Online Alignment of Large Language Models",
  arXiv:2406.15567; the authors' code (``pipelines/evalgpt.py``: win rate against the chosen
  response; ``cdpo/cdpo_trainer.py``: ``rewards/margins`` and the routes).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nlhf_theory.validation import InvalidInputError, check_beta, check_simplex, float_array


def _probabilities(P, name="P"):
    P = float_array(P, name).astype(np.float64)
    if P.ndim != 3 or P.shape[1] != P.shape[2]:
        raise InvalidInputError(f"{name}: expected shape (X, Y, Y), got {P.shape}")
    if np.any((P < 0) | (P > 1)):
        raise InvalidInputError(f"{name}: entries must lie in [0, 1]")
    return P


def _policy(policy, shape, name):
    arr = check_simplex(float_array(policy, name).astype(np.float64), name)
    if arr.ndim < 2 or arr.shape[-2:] != tuple(shape):
        raise InvalidInputError(f"{name}: expected shape (..., {shape[0]}, {shape[1]}), got "
                                f"{arr.shape}")
    return arr


def _comparisons(x, y, y_prime, label, num_prompts, num_responses):
    """Validated comparison arrays of one common shape (..., n) with n >= 1."""
    arrays = [np.asarray(a) for a in (x, y, y_prime)]
    lab = float_array(label, "label").astype(np.float64)
    shape = arrays[0].shape
    for name, arr, high in zip(("x", "y", "y_prime"), arrays,
                               (num_prompts, num_responses, num_responses)):
        if arr.shape != shape:
            raise InvalidInputError(f"{name}: expected shape {shape} (that of x), got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 0) | (arr >= high)):
            raise InvalidInputError(f"{name}: indices must be integers in [0, {high})")
    if lab.shape != shape:
        raise InvalidInputError(f"label: expected shape {shape} (that of x), got {lab.shape}")
    if np.any((lab < 0) | (lab > 1)):
        raise InvalidInputError("label: labels must lie in [0, 1]")
    if len(shape) == 0 or shape[-1] == 0:
        raise InvalidInputError("x: need at least one comparison (shape (..., n), n >= 1)")
    return (*arrays, lab)


def _histogram(x, y, weights, num_prompts, num_responses):
    """``H[..., x, y] = sum_i weights_i 1[x_i = x, y_i = y]`` over the last axis of the data."""
    lead = x.shape[:-1]
    batch = int(np.prod(lead, dtype=np.int64))
    cells = num_prompts * num_responses
    flat = (np.arange(batch)[:, None] * cells
            + (x * num_responses + y).reshape(batch, -1)).ravel()
    counts = np.bincount(flat, weights=weights.reshape(-1), minlength=batch * cells)
    return counts.reshape(*lead, num_prompts, num_responses)


def chosen_policy(P, behaviour):
    """Distribution of the chosen response of a pair drawn from ``behaviour`` and labelled by P.

    ``q_w(y|x) = 2 mu(y|x) (P mu)(y|x)``: the pair ``y1, y2 ~ mu`` i.i.d. keeps ``y`` as chosen
    when ``y1 = y`` wins or ``y2 = y`` wins, each with probability ``mu(y) (P mu)(y)``; it sums
    to ``2 mu^T P mu = 1``. The population version of the dataset's chosen responses.

    Args:
      P: (X, Y, Y) preference ``P[x, y, y'] = Pr(y beats y' | x)`` with ``P + P^T = 1``.
      behaviour: (X, Y) data policy ``mu`` (e.g. ``pi_ref``).

    Returns:
      (X, Y) array ``q_w``.

    References:
      Ding et al. 2024, arXiv:2406.15567 (win rate against the dataset's chosen response).
    """
    P = _probabilities(P)
    mu = _policy(behaviour, P.shape[:2], "behaviour")
    return 2.0 * mu * np.einsum("xyz,xz->xy", P, mu)


def empirical_chosen_policy(x, y, y_prime, label, num_prompts: int, num_responses: int):
    """Per-prompt empirical distribution of the chosen response ``y_w^D(x)`` of a dataset.

    ``q(y|x) = sum_i [label_i 1(y_i = y) + (1 - label_i) 1(y'_i = y)] 1(x_i = x) / n(x)``,
    ``n(x)`` the comparisons of prompt ``x``; rows of prompts without data are all zero.

    Args:
      x, y, y_prime: integer arrays (..., n): prompt and the two responses of each comparison.
      label: array (..., n) in [0, 1], ``1[y beats y']``.
      num_prompts, num_responses: X and Y.

    Returns:
      (..., X, Y) array, each row a distribution or zero.

    References:
      Ding et al. 2024, arXiv:2406.15567; ``pipelines/evalgpt.py`` (the judge compares the
      model's response with the dataset's chosen one).
    """
    x, y, y_prime, label = _comparisons(x, y, y_prime, label, num_prompts, num_responses)
    counts = (_histogram(x, y, label, num_prompts, num_responses)
              + _histogram(x, y_prime, 1.0 - label, num_prompts, num_responses))
    total = counts.sum(-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def win_rate_vs_chosen(P, policy, chosen, prompt_weights=None):
    """Win rate of ``policy`` against the dataset's chosen response: ``E_x E_{y~pi} P(y > y_w)``.

    ``sum_x w(x) pi(.|x)^T P[x] q(.|x) / sum_x w(x)`` over the prompts whose row of ``chosen``
    is a distribution (prompts without data are left out).

    Args:
      P: (X, Y, Y) preference.
      policy: (..., X, Y) policies ``pi``.
      chosen: (..., X, Y) chosen-response distributions ``q`` (from :func:`chosen_policy` or
        :func:`empirical_chosen_policy`), broadcastable against ``policy``.
      prompt_weights: (X,) prompt distribution ``d0`` (default uniform).

    Returns:
      Array of the broadcast leading shape.

    References:
      Ding et al. 2024, arXiv:2406.15567 (win rate against the chosen response).
    """
    P = _probabilities(P)
    X, Y = P.shape[:2]
    pi = _policy(policy, (X, Y), "policy")
    q = float_array(chosen, "chosen").astype(np.float64)
    if q.ndim < 2 or q.shape[-2:] != (X, Y) or np.any(q < 0):
        raise InvalidInputError(f"chosen: expected nonnegative (..., {X}, {Y}) rows, got shape "
                                f"{q.shape}")
    mass = q.sum(-1)
    if not np.all((np.abs(mass - 1.0) <= 1e-9) | (mass == 0)):
        raise InvalidInputError("chosen: each row must sum to 1 (or be zero: no data)")
    d0 = (np.full(X, 1.0 / X) if prompt_weights is None
          else check_simplex(float_array(prompt_weights, "prompt_weights"), "prompt_weights"))
    if d0.shape != (X,):
        raise InvalidInputError(f"prompt_weights: expected shape ({X},), got {d0.shape}")
    per_prompt = np.einsum("...xy,xyz,...xz->...x", pi, P, q)
    weights = d0 * (mass > 0)
    total = weights.sum(-1)
    if np.any(total == 0):
        raise InvalidInputError("chosen: no prompt with data (every row is zero)")
    return (per_prompt * weights).sum(-1) / total


def implicit_reward_margin(policy, pi_ref, beta, x, y, y_prime, label):
    """Mean DPO implicit reward margin ``beta h(x, y_w, y_l)`` over comparisons.

    ``mean_i (2 label_i - 1) beta [log(pi/pi_ref)(y_i|x_i) - log(pi/pi_ref)(y'_i|x_i)]``: the
    code's ``rewards/margins`` (``h`` without beta, as in ``docs/algorithms.md``).

    Args:
      policy: (..., X, Y) policies with positive entries.
      pi_ref: (X, Y) reference policy.
      beta: KL coefficient > 0.
      x, y, y_prime, label: comparisons (..., n) (e.g. a held-out split), leading dimensions
        broadcastable against those of ``policy``.

    Returns:
      Array of the broadcast leading shape.

    References:
      Ding et al. 2024, arXiv:2406.15567; ``cdpo/cdpo_trainer.py`` (``rewards/margins``);
      Rafailov et al. 2023, arXiv:2305.18290 (the implicit reward).
    """
    beta = check_beta(beta)
    ref = float_array(pi_ref, "pi_ref").astype(np.float64)
    if ref.ndim != 2 or np.any(ref <= 0):
        raise InvalidInputError(f"pi_ref: expected a positive (X, Y) array, got shape {ref.shape}")
    ref = check_simplex(ref, "pi_ref")
    pi = _policy(policy, ref.shape, "policy")
    if np.any(pi <= 0):
        raise InvalidInputError("policy: the margin needs positive probabilities")
    X, Y = ref.shape
    x, y, y_prime, label = _comparisons(x, y, y_prime, label, X, Y)
    sign = 2.0 * label - 1.0
    # The margin is linear in log(pi / pi_ref): contract it with the signed response counts.
    balance = (_histogram(x, y, sign, X, Y) - _histogram(x, y_prime, sign, X, Y)) / x.shape[-1]
    return beta * np.sum(balance * np.log(pi / ref), axis=(-2, -1))


class SlotCost(NamedTuple):
    """Expected work of one training slot of SAIL's routing, per forward-pass unit.

    Attributes:
      forward: forward passes on one response (policy, reference, reward model).
      backward: backward passes on one response (the policy's).
      generated: responses generated by the policy.
      oracle_labels: preference labels from the reward model / oracle.
      dataset_labels: preference labels read from the offline dataset.
      total: ``forward + backward_cost * backward + generation_cost * generated``.
    """

    forward: float
    backward: float
    generated: float
    oracle_labels: float
    dataset_labels: float
    total: float


def sail_slot_cost(r=0.0, p=0.0, g=0.0, *, generation_cost=1.0, backward_cost=2.0) -> SlotCost:
    """Deterministic cost of one training slot of SAIL with route weights ``(r, p, g)``.

    Counting of the authors' routes (their ``cdpo/cdpo_trainer.py``), per slot:
    every route trains on a pair (policy and reference forward on 2 responses, policy backward
    on 2); SAIL-DP (weight ``r``) relabels a dataset pair from the logits of that same forward
    pass; SAIL-PP (``p``) generates 2 responses and labels them with a no-grad policy and
    reference forward (4 more forwards); SAIL-PR (``g``) generates 2 responses and scores them
    with the reward model (2 forwards, 1 oracle label); offline DPO (``1 - r - p - g``) reads
    the dataset's label. The gradient hooks add no forward pass. A DPO slot costs
    ``4 + 2 backward_cost``; online DPO is ``g = 1``.

    Args:
      r, p, g: route probabilities of SAIL-DP, SAIL-PP, SAIL-PR, each in [0, 1], sum <= 1.
      generation_cost: cost of generating one response, in forward passes (1: a one-token
        response; a KV-cached generation costs about one forward pass in FLOPs).
      backward_cost: cost of a backward pass in forward passes (2 by the usual FLOP count).

    Returns:
      A :class:`SlotCost`.

    References:
      Ding et al. 2024, arXiv:2406.15567; ``cdpo/cdpo_trainer.py`` (commit c3a4ef30):
      ``get_batch_loss_metrics`` (routing), ``generate_samples``, ``_label_generated_by_*``.
    """
    weights = []
    for name, value in (("r", r), ("p", p), ("g", g)):
        v = float(value)
        if not 0.0 <= v <= 1.0:
            raise InvalidInputError(f"{name}: must lie in [0, 1], got {value!r}")
        weights.append(v)
    r, p, g = weights
    if r + p + g > 1.0 + 1e-12:
        raise InvalidInputError(f"r + p + g: route probabilities must sum to at most 1, got "
                                f"{r + p + g:g}")
    for name, value in (("generation_cost", generation_cost), ("backward_cost", backward_cost)):
        if not (np.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{name}: must be finite and >= 0, got {value!r}")
    forward = 4.0 + 4.0 * p + 2.0 * g
    backward = 2.0
    generated = 2.0 * (p + g)
    total = forward + backward_cost * backward + generation_cost * generated
    return SlotCost(forward, backward, generated, g, 1.0 - r - p - g, total)
