"""Per-sequence log-probabilities of completions under a Hugging Face causal language model.

The one place the LLM backend turns a model into the numbers the losses of
:mod:`nlhf_theory.losses` take: ``log pi(y | x) = sum_t log pi(y_t | x, y_<t)`` over the tokens
of a completion ``y`` of a prompt ``x``. Three details decide whether that number is right:

* **Masks from lengths.** The completion mask is ``t < completion_lengths``, never
  ``input_ids != pad_token_id``: the pad token is often the eos token, so a pad-id mask drops
  a genuine final eos (or keeps a pad).
* **Position ids from the attention mask.** ``position_ids = cumsum(mask) - 1``, so a left-padded
  prompt gets the positions it has without padding (without them a GPT-2-shaped model shifts
  every position and changes the completion's log-probabilities). Right-padded prompts are
  re-packed to the left first, so the prompt's last real token always predicts the first
  completion token.
* **float32 log-softmax.** The selected log-probabilities are computed in float32 whatever the
  model's dtype (float64 when the model computes in float64), against fp16/bf16 overflow.
"""

from __future__ import annotations

import inspect
import math

import torch

from nlhf_theory.validation import InvalidInputError


def _check_tensor(value, name, ndim):
    if not isinstance(value, torch.Tensor):
        raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.ndim != ndim:
        raise InvalidInputError(f"{name}: expected {ndim} dimensions, got shape "
                                f"{tuple(value.shape)}")
    return value


def _context_length(model):
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def build_inputs(prompt_ids, prompt_mask, completion_ids, completion_lengths):
    """The model inputs for ``prompt + completion`` rows: left-packed prompts, masks, positions.

    Each prompt row is re-packed so that its real tokens (``prompt_mask == 1``) sit at the right
    end (left padding, whatever the padding side given); the completion follows, right-padded.
    ``completion_mask[b, t] = t < completion_lengths[b]``; ``attention_mask`` is the prompt mask
    followed by the completion mask; ``position_ids = max(cumsum(attention_mask) - 1, 0)``.
    Padded positions get token id 0 (they are masked out).

    Args:
      prompt_ids: (B, P) token ids.
      prompt_mask: (B, P), 1 for real prompt tokens, 0 for padding (either side); every row
        needs at least one real token.
      completion_ids: (B, C) token ids, right-padded.
      completion_lengths: (B,) integers in [1, C].

    Returns:
      A dict with ``input_ids`` (B, P + C), ``attention_mask`` (B, P + C), ``position_ids``
      (B, P + C), ``completion_mask`` (B, C) bool and ``prompt_length`` P.

    Example:
      >>> import torch
      >>> inputs = build_inputs(torch.tensor([[5, 6, 0]]), torch.tensor([[1, 1, 0]]),
      ...                       torch.tensor([[7, 8]]), torch.tensor([1]))
      >>> inputs["input_ids"].tolist(), inputs["position_ids"].tolist()
      ([[0, 5, 6, 7, 0]], [[0, 0, 1, 2, 2]])
    """
    _check_tensor(prompt_ids, "prompt_ids", 2)
    _check_tensor(prompt_mask, "prompt_mask", 2)
    _check_tensor(completion_ids, "completion_ids", 2)
    _check_tensor(completion_lengths, "completion_lengths", 1)
    B, P = prompt_ids.shape
    C = completion_ids.shape[1]
    if prompt_mask.shape != (B, P):
        raise InvalidInputError(f"prompt_mask: expected shape {(B, P)}, got "
                                f"{tuple(prompt_mask.shape)}")
    if completion_ids.shape[0] != B or completion_lengths.shape[0] != B:
        raise InvalidInputError(
            f"completion_ids, completion_lengths: expected batch size {B} (prompt_ids), got "
            f"{completion_ids.shape[0]} and {completion_lengths.shape[0]}")
    if C < 1:
        raise InvalidInputError("completion_ids: empty completions (C = 0) have no "
                                "log-probability")
    lengths = completion_lengths.to(torch.long)
    if bool((lengths < 1).any()):
        raise InvalidInputError("completion_lengths: every completion needs >= 1 token, got "
                                f"{lengths.min().item()}")
    if bool((lengths > C).any()):
        raise InvalidInputError(f"completion_lengths: must be <= completion_ids.shape[1] = {C}, "
                                f"got {lengths.max().item()}")
    real = prompt_mask.to(torch.long) != 0
    if bool((real.sum(-1) < 1).any()):
        raise InvalidInputError("prompt_mask: every prompt needs >= 1 real token (e.g. bos)")
    order = torch.argsort(real.to(torch.int8), dim=1, stable=True)  # pads first, order kept
    packed_mask = torch.gather(real, 1, order)
    packed_ids = torch.where(packed_mask, torch.gather(prompt_ids, 1, order), 0)
    steps = torch.arange(C, device=completion_ids.device)
    completion_mask = steps[None, :] < lengths[:, None]
    input_ids = torch.cat([packed_ids, torch.where(completion_mask, completion_ids, 0)], dim=1)
    attention_mask = torch.cat([packed_mask, completion_mask], dim=1).to(torch.long)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "position_ids": position_ids, "completion_mask": completion_mask,
            "prompt_length": P}


def _completion_logits(model, inputs, C):
    """Logits at the positions that predict the C completion tokens: (B, C, vocab)."""
    P = inputs["prompt_length"]
    kwargs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids")}
    try:
        keeps = "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        keeps = False
    if keeps:  # the last C + 1 positions only: P - 1, ..., P + C - 1
        logits = model(**kwargs, logits_to_keep=C + 1, use_cache=False).logits
        return logits[:, :-1]
    logits = model(**kwargs, use_cache=False).logits
    return logits[:, P - 1:P + C - 1]


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_lengths, *,
                   allowed_tokens=None, temperature=1.0, full=False):
    """Per-token log-probabilities ``log pi(y_t | x, y_<t)`` of completions (0 at padding).

    See :func:`sequence_logprobs` for the arguments; this is its per-token form.

    Args:
      full: if True, return the whole log-softmax at every completion position (shape
        (B, C, V), or (B, C, V') over ``allowed_tokens``) instead of the selected tokens.

    Returns:
      ``(values, completion_mask)``: values (B, C) (or (B, C, V)) in float32 (float64 for a
      float64 model), and the (B, C) boolean completion mask.

    Example:
      >>> import torch, transformers
      >>> config = transformers.GPT2Config(vocab_size=8, n_embd=8, n_layer=1, n_head=2,
      ...                                  n_positions=8, bos_token_id=1, eos_token_id=2)
      >>> model = transformers.GPT2LMHeadModel(config).eval()
      >>> values, mask = token_logprobs(model, torch.tensor([[1]]), torch.tensor([[1]]),
      ...                               torch.tensor([[3, 4]]), torch.tensor([1]))
      >>> mask.tolist(), float(values[0, 1])
      ([[True, False]], 0.0)
    """
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise InvalidInputError(f"temperature: must be finite and > 0, got {temperature!r}")
    inputs = build_inputs(prompt_ids, prompt_mask, completion_ids, completion_lengths)
    C = completion_ids.shape[1]
    context = _context_length(model)
    if context is not None:
        needed = int((prompt_mask != 0).sum(-1).max()) + int(completion_lengths.max())
        if needed > context:
            raise InvalidInputError(
                f"prompt_ids, completion_ids: prompt + completion need {needed} positions, more "
                f"than the model's context of {context}")
    logits = _completion_logits(model, inputs, C)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype)
    if temperature != 1.0:
        logits = logits / temperature
    mask = inputs["completion_mask"]
    targets = inputs["input_ids"][:, inputs["prompt_length"]:]
    if allowed_tokens is not None:
        allowed = torch.as_tensor(allowed_tokens, dtype=torch.long, device=logits.device)
        if allowed.ndim != 1 or allowed.numel() < 1:
            raise InvalidInputError("allowed_tokens: expected a non-empty 1-D list of token ids")
        if bool((allowed < 0).any()) or bool((allowed >= logits.shape[-1]).any()):
            raise InvalidInputError(f"allowed_tokens: ids must lie in [0, {logits.shape[-1]})")
        lookup = torch.full((logits.shape[-1],), -1, dtype=torch.long, device=logits.device)
        lookup[allowed] = torch.arange(allowed.numel(), device=logits.device)
        mapped = lookup[targets]
        if bool(((mapped < 0) & mask).any()):
            raise InvalidInputError("completion_ids: a completion token is not in "
                                    "allowed_tokens")
        logits = logits.index_select(-1, allowed)
        targets = mapped.clamp(min=0)
    log_norm = torch.logsumexp(logits, dim=-1, keepdim=True)
    if full:
        return logits - log_norm, mask
    selected = torch.gather(logits, -1, targets[..., None]) - log_norm
    values = torch.where(mask, selected[..., 0], torch.zeros((), dtype=dtype,
                                                             device=logits.device))
    return values, mask


def sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_lengths, *,
                      normalize=False, allowed_tokens=None, temperature=1.0):
    """``log pi(y | x) = sum_t log pi(y_t | x, y_<t)`` for a batch of completions.

    With ``T_b`` = ``completion_lengths[b]``, ``tau`` = ``temperature`` and ``z`` the model's
    logits at the position before token ``t``:
    ``log pi(y | x) = sum_{t < T_b} [z_{y_t} / tau - logsumexp_{v in A}(z_v / tau)]``, where ``A``
    is ``allowed_tokens`` (default: the whole vocabulary). ``normalize=True`` returns the mean
    over the ``T_b`` tokens instead of the sum (TRL's IPO; Azar et al.'s IPO is stated on
    sequence probabilities, i.e. the sum: see docs/llm.md, "Log-probabilities").

    Args:
      model: a Hugging Face causal LM (any ``model(input_ids, attention_mask, position_ids)``
        returning ``.logits``).
      prompt_ids: (B, P) LongTensor.
      prompt_mask: (B, P), 1 = real token, 0 = padding, on either side.
      completion_ids: (B, C) LongTensor, right-padded.
      completion_lengths: (B,) integers in [1, C]: the completion mask comes from them, never
        from pad ids.
      normalize: divide by the completion length (default False).
      allowed_tokens: optional 1-D token ids; the softmax runs over these only (default None).
      temperature: > 0, the logits are divided by it (default 1.0).

    Returns:
      A (B,) tensor, float32 (float64 for a float64 model), differentiable through the model.

    Raises:
      InvalidInputError: an empty completion, a length outside [1, C], a prompt row without
        tokens, prompt + completion longer than the model's context, a completion token outside
        ``allowed_tokens``, mismatched shapes, a temperature <= 0.

    Example:
      >>> import torch, transformers
      >>> config = transformers.GPT2Config(vocab_size=8, n_embd=8, n_layer=1, n_head=2,
      ...                                  n_positions=8, bos_token_id=1, eos_token_id=2)
      >>> model = transformers.GPT2LMHeadModel(config).double().eval()  # eval: no dropout
      >>> ids = torch.tensor([[a, b] for a in range(8) for b in range(8)])
      >>> logp = sequence_logprobs(model, torch.ones(64, 1, dtype=torch.long),
      ...                          torch.ones(64, 1), ids, torch.full((64,), 2))
      >>> abs(float(torch.logsumexp(logp, 0))) < 1e-12
      True

    References:
      TRL ``DPOTrainer`` (per-sequence sums with a completion mask); trl#6800 (left padding
      without position ids).
    """
    values, mask = token_logprobs(model, prompt_ids, prompt_mask, completion_ids,
                                  completion_lengths, allowed_tokens=allowed_tokens,
                                  temperature=temperature)
    total = values.sum(-1)
    if normalize:
        total = total / mask.sum(-1).to(total.dtype)
    return total
