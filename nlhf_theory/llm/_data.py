"""Data for the LLM trainer: TRL preference-format datasets, collation, on-policy generation.

Offline data is a dataset in TRL's *standard preference* format: rows with string columns
``prompt``, ``chosen`` and ``rejected`` (a list of dicts, a dict of lists, or a
``datasets.Dataset`` when that package is installed; it is not a dependency). Online recipes
need only ``prompt``. Rows are tokenized once (:func:`tokenize_preference_dataset`) and
collated into padded tensors (:class:`PreferenceCollator`): prompts padded on the **left**
(so generation continues right after them), completions on the **right**, and every
completion's length carried explicitly, because masks taken from ``input_ids != pad_token_id``
are wrong whenever the pad token is also the end-of-sequence token.

On-policy pairs are drawn with Hugging Face ``generate`` (:func:`generate_completions`) at an
explicit sampling temperature with ``top_k`` and ``top_p`` switched off, so the samples come
from exactly the tempered policy; :func:`check_sampling_temperature` refuses a sampling
temperature that differs from the training temperature in an on-policy recipe unless the user
allows it (the mismatch makes "on-policy" pairs silently off-policy).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from nlhf_theory.validation import InvalidInputError

#: Pair sources of the recipes whose pairs are sampled from the trained policy (on-policy).
ON_POLICY_PAIRS = ("policy", "policy_vs_ref", "mixture", "policy_vs_mixture")


class Completions(NamedTuple):
    """One side of a batch of pairs: prompts and completions as token ids.

    Attributes:
      prompt_ids: ``(B, P)`` long tensor, left-padded prompts.
      prompt_mask: ``(B, P)`` attention mask of the prompts (1 on tokens, 0 on padding).
      completion_ids: ``(B, C)`` long tensor, right-padded completions.
      completion_lengths: ``(B,)`` number of tokens of each completion (>= 1).
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_lengths: torch.Tensor


# Datasets -----------------------------------------------------------------------------------
def preference_rows(dataset, *, columns=("prompt", "chosen", "rejected")) -> list[dict]:
    """The rows of a TRL preference-format dataset as a list of dicts, validated.

    Args:
      dataset: a list of dicts, a dict of equal-length lists, or anything iterable over dict
        rows with a ``column_names`` attribute (a ``datasets.Dataset``).
      columns: the string columns every row must have: ``("prompt", "chosen", "rejected")``
        for offline pairs (the default), ``("prompt",)`` for prompts of on-policy recipes.

    Returns:
      A list of dicts holding the requested columns (other columns are dropped).

    Example:
      >>> rows = preference_rows({"prompt": ["a"], "chosen": [" b"], "rejected": [" c"]})
      >>> rows
      [{'prompt': 'a', 'chosen': ' b', 'rejected': ' c'}]
    """
    if isinstance(dataset, dict):
        lengths = {k: len(v) for k, v in dataset.items()}
        if len(set(lengths.values())) > 1:
            raise InvalidInputError(f"dataset: columns have different lengths {lengths}")
        n = next(iter(lengths.values()), 0)
        dataset = [{k: dataset[k][i] for k in dataset} for i in range(n)]
    names = getattr(dataset, "column_names", None)
    if names is not None:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InvalidInputError(f"dataset: missing column {missing[0]!r} (TRL preference "
                                    f"format needs {', '.join(columns)}); has {list(names)}")
    rows = []
    for i, row in enumerate(dataset):
        if not isinstance(row, dict):
            raise InvalidInputError(f"dataset: row {i} is a {type(row).__name__}, not a dict")
        out = {}
        for column in columns:
            if column not in row:
                raise InvalidInputError(f"dataset: row {i} has no column {column!r} (TRL "
                                        f"preference format needs {', '.join(columns)})")
            value = row[column]
            if not isinstance(value, str):
                raise InvalidInputError(
                    f"dataset: row {i}, column {column!r} must be a string (the standard "
                    f"format; apply the chat template to conversational rows first), got "
                    f"{type(value).__name__}")
            if column != "prompt" and not value:
                raise InvalidInputError(f"dataset: row {i}, column {column!r} is an empty "
                                        "completion")
            out[column] = value
        rows.append(out)
    if not rows:
        raise InvalidInputError("dataset: has no rows")
    return rows


def check_tokenizer(tokenizer) -> None:
    """Raise :class:`InvalidInputError` unless ``tokenizer`` has a pad token."""
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise InvalidInputError(
            "tokenizer: has no pad token (pad_token_id is None); set one, e.g. "
            "tokenizer.pad_token = tokenizer.eos_token (lengths are carried explicitly, so a "
            "pad equal to eos is safe here)")


def tokenize_preference_dataset(dataset, tokenizer, *, max_length: int,
                                add_eos: bool = True, prompts_only: bool = False) -> list[dict]:
    """Tokenize a TRL preference-format dataset into ``prompt_input_ids`` and completion ids.

    Prompts are tokenized without special tokens (as TRL's standard format), completions too,
    followed by the end-of-sequence token when ``add_eos`` (TRL appends it). A completion that
    does not fit in ``max_length`` after its prompt is truncated on the right (TRL's default
    ``keep_start`` for completions); a prompt that leaves no room for one completion token is an
    error, never silently cut.

    Args:
      dataset: rows with ``prompt``, ``chosen``, ``rejected`` (see :func:`preference_rows`).
      tokenizer: a Hugging Face tokenizer with a pad token.
      max_length: largest prompt + completion length in tokens (the context used).
      add_eos: append ``tokenizer.eos_token_id`` to each completion (default True).
      prompts_only: keep only the prompts (data of on-policy recipes).

    Returns:
      A list of dicts with ``prompt_input_ids`` and (unless ``prompts_only``)
      ``chosen_input_ids``, ``rejected_input_ids`` (lists of ints).
    """
    check_tokenizer(tokenizer)
    if not isinstance(max_length, int) or max_length < 2:
        raise InvalidInputError(f"max_length: must be an integer >= 2, got {max_length!r}")
    columns = ("prompt",) if prompts_only else ("prompt", "chosen", "rejected")
    rows = preference_rows(dataset, columns=columns)
    eos = [tokenizer.eos_token_id] if add_eos and tokenizer.eos_token_id is not None else []
    out = []
    for i, row in enumerate(rows):
        prompt = list(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
        if not prompt:
            raise InvalidInputError(f"dataset: row {i} has an empty prompt")
        if len(prompt) >= max_length:
            raise InvalidInputError(
                f"dataset: row {i}'s prompt has {len(prompt)} tokens, which leaves no room for "
                f"a completion within max_length = {max_length}")
        item = {"prompt_input_ids": prompt}
        for column in columns[1:]:
            ids = list(tokenizer(row[column], add_special_tokens=False)["input_ids"]) + eos
            if not ids:
                raise InvalidInputError(f"dataset: row {i}, column {column!r} tokenizes to an "
                                        "empty completion")
            item[f"{column}_input_ids"] = ids[: max_length - len(prompt)]
        out.append(item)
    return out


def left_pad(sequences, pad_token_id: int):
    """``(ids, mask)``: the sequences padded on the left to their longest length."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, width - len(s):] = torch.as_tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
    return ids, mask


def right_pad(sequences, pad_token_id: int):
    """``(ids, lengths)``: the sequences padded on the right to their longest length."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if int(lengths.min()) < 1:
        raise InvalidInputError("completion: empty completion (length 0) in the batch")
    ids = torch.full((len(sequences), int(lengths.max())), pad_token_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return ids, lengths


class PreferenceCollator:
    """Collate tokenized preference rows into padded tensors.

    Returns a dict with ``prompt_ids`` and ``prompt_mask`` (left-padded) and, when the rows
    have them, ``chosen_ids``/``chosen_lengths`` and ``rejected_ids``/``rejected_lengths``
    (right-padded, explicit lengths), plus ``ref_chosen_logps``/``ref_rejected_logps`` and any
    other float columns precomputed per row.

    Args:
      pad_token_id: the padding token (its value never decides a mask).

    Example:
      >>> batch = PreferenceCollator(0)([{"prompt_input_ids": [5, 6], "chosen_input_ids": [7],
      ...                                 "rejected_input_ids": [8, 9]}])
      >>> batch["prompt_ids"].tolist(), batch["rejected_lengths"].tolist()
      ([[5, 6]], [2])
    """

    def __init__(self, pad_token_id: int):
        if pad_token_id is None:
            raise InvalidInputError("pad_token_id: must be an integer, got None")
        self.pad_token_id = int(pad_token_id)

    def __call__(self, rows):
        rows = list(rows)
        if not rows:
            raise InvalidInputError("rows: empty batch")
        batch = {}
        batch["prompt_ids"], batch["prompt_mask"] = left_pad(
            [r["prompt_input_ids"] for r in rows], self.pad_token_id)
        for side in ("chosen", "rejected"):
            key = f"{side}_input_ids"
            if key in rows[0]:
                batch[f"{side}_ids"], batch[f"{side}_lengths"] = right_pad(
                    [r[key] for r in rows], self.pad_token_id)
        for key in rows[0]:
            if key.endswith("_input_ids"):
                continue
            batch[key] = torch.tensor([float(r[key]) for r in rows], dtype=torch.float64)
        return batch


def split_pair(batch: dict) -> tuple[Completions, Completions]:
    """The chosen and rejected sides of a collated offline batch as :class:`Completions`."""
    return (Completions(batch["prompt_ids"], batch["prompt_mask"], batch["chosen_ids"],
                        batch["chosen_lengths"]),
            Completions(batch["prompt_ids"], batch["prompt_mask"], batch["rejected_ids"],
                        batch["rejected_lengths"]))


# Generation ---------------------------------------------------------------------------------
def check_sampling_temperature(recipe: str, pairs: str, temperature: float,
                               training_temperature: float, *,
                               allow_mismatch: bool = False) -> None:
    """Refuse a sampling temperature that differs from the training one for on-policy pairs.

    An on-policy recipe's pairs must come from the policy being trained: sampled at
    temperature ``T`` they come from ``softmax(logits / T)``, which is the trained policy only
    when the log-probabilities are also taken at ``T``. Elsewhere the mismatch is a known silent
    bug (generation at 0.7-0.9, training at 1).

    Args:
      recipe: the recipe's name (for the message).
      pairs: the recipe's pair source; only on-policy sources (:data:`ON_POLICY_PAIRS`) are
        checked.
      temperature: sampling temperature of ``generate``.
      training_temperature: temperature of the log-probabilities the loss is computed on.
      allow_mismatch: the user's explicit consent to off-policy sampling.
    """
    for name, value in (("temperature", temperature),
                        ("training_temperature", training_temperature)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise InvalidInputError(f"{name}: must be a number > 0, got {value!r}")
    if pairs in ON_POLICY_PAIRS and not allow_mismatch and temperature != training_temperature:
        raise InvalidInputError(
            f"temperature: sampling temperature {temperature} differs from "
            f"training_temperature = {training_temperature} in the on-policy recipe {recipe!r}, "
            "so its pairs would not come from the trained policy; set training_temperature "
            "to the same value, or allow_temperature_mismatch=True to sample off-policy on "
            "purpose")


class AllowedTokensProcessor:
    """A ``generate`` logits processor that keeps only ``allowed_tokens`` (others get -inf)."""

    def __init__(self, allowed_tokens, vocab_size: int):
        allowed = torch.as_tensor(allowed_tokens, dtype=torch.long).reshape(-1)
        if allowed.numel() == 0 or int(allowed.min()) < 0 or int(allowed.max()) >= vocab_size:
            raise InvalidInputError(f"allowed_tokens: must be non-empty ids in [0, {vocab_size})")
        self.mask = torch.full((vocab_size,), float("-inf"))
        self.mask[allowed] = 0.0

    def __call__(self, input_ids, scores):
        return scores + self.mask.to(device=scores.device, dtype=scores.dtype)[: scores.shape[-1]]


def completion_lengths(completion_ids, eos_token_id) -> torch.Tensor:
    """Lengths of generated completions: up to and including the first ``eos_token_id``.

    ``eos_token_id`` None (fixed-length completions): every completion has the full width.
    """
    B, C = completion_ids.shape
    if eos_token_id is None:
        return torch.full((B,), C, dtype=torch.long, device=completion_ids.device)
    eos_ids = torch.as_tensor(eos_token_id, device=completion_ids.device).reshape(-1)
    is_eos = torch.isin(completion_ids, eos_ids)
    first = torch.where(is_eos.any(-1), is_eos.float().argmax(-1) + 1,
                        torch.full((B,), C, device=completion_ids.device))
    return first.long()


@torch.no_grad()
def generate_completions(model, prompt_ids, prompt_mask, *, max_new_tokens: int,
                         temperature: float = 1.0, num_samples: int = 1,
                         allowed_tokens=None, eos_token_id=None, pad_token_id: int = 0,
                         fixed_length: bool = False, seed: int | None = None) -> Completions:
    """Sample completions of (left-padded) prompts with Hugging Face ``generate``.

    Samples from exactly ``softmax(logits / temperature)`` restricted to ``allowed_tokens``:
    ``do_sample=True`` with ``top_k=0`` and ``top_p=1.0`` (the model's generation config
    could otherwise truncate the distribution). Lengths run to the first end-of-sequence token
    (included) or ``max_new_tokens``; with ``fixed_length`` every completion has exactly
    ``max_new_tokens`` tokens and no end-of-sequence token is produced (the bridge's responses).

    Args:
      model: a Hugging Face causal LM.
      prompt_ids, prompt_mask: ``(B, P)`` left-padded prompts and their attention mask.
      max_new_tokens: completion budget (>= 1).
      temperature: sampling temperature > 0 (default 1.0).
      num_samples: completions per prompt (rows ``b * num_samples + k``).
      allowed_tokens: optional token ids the completions may use (others masked).
      eos_token_id: end-of-sequence id(s) (None: no end token).
      pad_token_id: padding id for ``generate`` and for the returned completions.
      fixed_length: force exactly ``max_new_tokens`` tokens.
      seed: optional seed (sampling runs under a forked torch RNG, so it does not disturb the
        global one).

    Returns:
      :class:`Completions` with the prompts repeated ``num_samples`` times.
    """
    from transformers import GenerationConfig, LogitsProcessorList

    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens: must be an integer >= 1, got {max_new_tokens!r}")
    if not temperature > 0:
        raise InvalidInputError(f"temperature: must be > 0, got {temperature!r}")
    if num_samples < 1:
        raise InvalidInputError(f"num_samples: must be >= 1, got {num_samples!r}")
    context = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None)
    if context is not None and prompt_ids.shape[1] + max_new_tokens > context:
        raise InvalidInputError(
            f"prompt_ids: prompt length {prompt_ids.shape[1]} + max_new_tokens {max_new_tokens} "
            f"exceeds the model's context ({context} positions)")
    prompt_ids = prompt_ids.repeat_interleave(num_samples, 0)
    prompt_mask = prompt_mask.repeat_interleave(num_samples, 0)
    processors = LogitsProcessorList()
    if allowed_tokens is not None:
        processors.append(AllowedTokensProcessor(allowed_tokens, model.config.vocab_size))
    config = GenerationConfig(
        do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0,
        max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens if fixed_length else 0,
        eos_token_id=None if fixed_length else eos_token_id, pad_token_id=pad_token_id,
        bos_token_id=None)
    was_training = model.training
    model.eval()
    devices = [prompt_ids.device] if prompt_ids.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask,
                                 generation_config=config, logits_processor=processors)
    finally:
        model.train(was_training)
    completion = out[:, prompt_ids.shape[1]:]
    if completion.shape[1] < max_new_tokens and fixed_length:  # pragma: no cover - defensive
        raise RuntimeError("generate stopped early in fixed-length mode")
    lengths = completion_lengths(completion, None if fixed_length else eos_token_id)
    positions = torch.arange(completion.shape[1], device=completion.device)
    completion = torch.where(positions[None] < lengths[:, None], completion,
                             torch.full_like(completion, pad_token_id))
    return Completions(prompt_ids, prompt_mask, completion, lengths)
