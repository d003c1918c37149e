"""Preference oracles for language models: who says which of two completions is better.

An oracle maps a batch of pairs ``(x, y, y')`` (two :class:`~nlhf_theory.llm.Completions` with
the same prompts) to ``P(y > y' | x)`` in ``[0, 1]``, the quantity the tabular backend calls
``P[x, y, y']``. Every oracle is *skew* by construction, ``P(y > y') + P(y' > y) = 1`` and
``P(y > y) = 1/2``, as :class:`~nlhf_theory.PreferenceGame` requires:

* :class:`RewardModelOracle`: a scalar reward ``r(x, y)`` (a Hugging Face sequence-classification
  model with one label, or any callable) under Bradley-Terry, ``sigma(r(x, y) - r(x, y'))``;
* :class:`PairwiseOracle`: a pairwise preference model ``p(x, y, y')`` (PairRM-like) made
  antisymmetric by averaging both orders, ``(p(y, y') + 1 - p(y', y)) / 2``: the projection
  ``P <- (P + 1 - P^T) / 2`` that :class:`~nlhf_theory.PreferenceGame` applies;
* :class:`CallableOracle`: any Python function of the pair (texts or token ids), checked;
* :class:`TableOracle`: an exact table ``P[x, y, y']`` over enumerated prompts and token
  sequences, such as the bridge environment's (:meth:`TableOracle.from_bridge`).

Oracles return probabilities; :meth:`PreferenceOracle.sample` draws Bernoulli labels from them.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from nlhf_theory.llm._data import Completions, left_pad
from nlhf_theory.validation import InvalidInputError

#: Probabilities within this distance outside [0, 1] are round-off and clipped; beyond, an error.
PROBABILITY_TOLERANCE = 1e-6


def _check_pair(first: Completions, second: Completions) -> None:
    for name, value in (("first", first), ("second", second)):
        if not isinstance(value, Completions):
            raise InvalidInputError(f"{name}: expected Completions, got {type(value).__name__}")
    if first.prompt_ids.shape != second.prompt_ids.shape or not torch.equal(
            first.prompt_ids * first.prompt_mask, second.prompt_ids * second.prompt_mask):
        raise InvalidInputError("second: the two sides of a pair must share their prompts")


def checked_probabilities(values, batch_size: int, name: str = "oracle") -> torch.Tensor:
    """``values`` as a float64 tensor of shape ``(batch_size,)`` in ``[0, 1]``, or an error.

    Values within :data:`PROBABILITY_TOLERANCE` outside ``[0, 1]`` are clipped; NaN, larger
    excursions and a wrong shape raise :class:`InvalidInputError` naming ``name``.
    """
    p = torch.as_tensor(values).detach().to(torch.float64).reshape(-1)
    if p.shape[0] != batch_size:
        raise InvalidInputError(f"{name}: returned {p.shape[0]} values for {batch_size} pairs")
    if not bool(torch.isfinite(p).all()):
        raise InvalidInputError(f"{name}: returned NaN or infinite preference probabilities")
    low, high = float(p.min()), float(p.max())
    if low < -PROBABILITY_TOLERANCE or high > 1 + PROBABILITY_TOLERANCE:
        raise InvalidInputError(f"{name}: returned probabilities outside [0, 1] (range "
                                f"[{low:.4g}, {high:.4g}])")
    return p.clamp(0.0, 1.0)


def decode(tokenizer, completions: Completions) -> tuple[list[str], list[str]]:
    """``(prompts, completions)`` as texts (padding and tokens past each length dropped)."""
    prompts, texts = [], []
    for ids, mask, comp, length in zip(completions.prompt_ids, completions.prompt_mask,
                                       completions.completion_ids,
                                       completions.completion_lengths):
        prompts.append(tokenizer.decode(ids[mask.bool()].tolist(), skip_special_tokens=True))
        texts.append(tokenizer.decode(comp[: int(length)].tolist(), skip_special_tokens=True))
    return prompts, texts


class PreferenceOracle(abc.ABC):
    """Abstract oracle: ``probability(first, second)`` is ``P(first > second | prompt)``."""

    @abc.abstractmethod
    def _probability(self, first: Completions, second: Completions) -> torch.Tensor:
        """Unchecked probabilities, shape ``(B,)``."""

    def probability(self, first: Completions, second: Completions) -> torch.Tensor:
        """``P(y > y' | x)`` for each pair: float64 ``(B,)`` in ``[0, 1]``, checked."""
        _check_pair(first, second)
        with torch.no_grad():
            values = self._probability(first, second)
        return checked_probabilities(values, first.prompt_ids.shape[0],
                                     type(self).__name__)

    def sample(self, first: Completions, second: Completions, generator=None) -> torch.Tensor:
        """Bernoulli labels ``1[y > y']`` drawn with the oracle's probabilities (float64)."""
        p = self.probability(first, second)
        return torch.bernoulli(p, generator=generator)

    __call__ = probability


# Reward model (Bradley-Terry) -----------------------------------------------------------------
def _sequence_inputs(completions: Completions, pad_token_id: int):
    """Prompt + completion of each row, left-padded so every sequence ends at the last position
    (sequence-classification models pool the last token); with its mask and position ids."""
    rows = []
    for ids, mask, comp, length in zip(completions.prompt_ids, completions.prompt_mask,
                                       completions.completion_ids,
                                       completions.completion_lengths):
        rows.append(ids[mask.bool()].tolist() + comp[: int(length)].tolist())
    input_ids, attention_mask = left_pad(rows, pad_token_id)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    device = completions.prompt_ids.device
    return input_ids.to(device), attention_mask.to(device), position_ids.to(device)


class RewardModelOracle(PreferenceOracle):
    """Bradley-Terry oracle of a scalar reward: ``P(y > y' | x) = sigma(r(x, y) - r(x, y'))``.

    Args:
      reward_model: a Hugging Face sequence-classification model with ``num_labels = 1`` (fed
        prompt + completion, left-padded so the completion's last token is the last position,
        with explicit ``position_ids``), or a callable ``reward(completions) -> (B,)`` rewards
        (receiving ``(prompts, texts)`` instead when ``tokenizer`` is given).
      tokenizer: the *policy's* tokenizer, needed when the reward model reads text or uses a
        different tokenizer (then texts are decoded and re-encoded with ``reward_tokenizer``).
      reward_tokenizer: the reward model's tokenizer (with ``tokenizer``).
      scale: multiplies the reward difference (a Bradley-Terry temperature), default 1.

    Example:
      >>> import torch
      >>> from nlhf_theory.llm import Completions, RewardModelOracle
      >>> oracle = RewardModelOracle(lambda c: c.completion_lengths.double())
      >>> ones = torch.ones(1, 1, dtype=torch.long)
      >>> a = Completions(ones, ones, torch.ones(1, 3, dtype=torch.long), torch.tensor([3]))
      >>> b = Completions(ones, ones, torch.ones(1, 3, dtype=torch.long), torch.tensor([1]))
      >>> round(float(oracle(a, b)), 6)  # sigma(3 - 1)
      0.880797

    References:
      Bradley & Terry 1952; Ouyang et al. 2022, arXiv:2203.02155, eq. 1 (the reward model's
      preference probability).
    """

    def __init__(self, reward_model, *, tokenizer=None, reward_tokenizer=None,
                 scale: float = 1.0):
        if not callable(reward_model):
            raise InvalidInputError("reward_model: must be a model or a callable")
        if reward_tokenizer is not None and tokenizer is None:
            raise InvalidInputError("tokenizer: the policy's tokenizer is needed to re-encode "
                                    "texts for reward_tokenizer")
        if not scale > 0:
            raise InvalidInputError(f"scale: must be > 0, got {scale!r}")
        self.reward_model = reward_model
        self.tokenizer = tokenizer
        self.reward_tokenizer = reward_tokenizer
        self.scale = float(scale)

    def rewards(self, completions: Completions) -> torch.Tensor:
        """``r(x, y)`` for each row, float64 ``(B,)``."""
        model = self.reward_model
        is_hf = hasattr(model, "config") and hasattr(model, "forward")
        if is_hf and self.reward_tokenizer is not None:
            prompts, texts = decode(self.tokenizer, completions)
            encoded = self.reward_tokenizer([p + t for p, t in zip(prompts, texts)],
                                            add_special_tokens=False)["input_ids"]
            pad = self.reward_tokenizer.pad_token_id
            if pad is None:
                raise InvalidInputError("reward_tokenizer: has no pad token")
            ids, mask = left_pad(encoded, pad)
            device = next(model.parameters()).device
            ids, mask = ids.to(device), mask.to(device)
            out = model(input_ids=ids, attention_mask=mask,
                        position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
        elif is_hf:
            pad = getattr(model.config, "pad_token_id", None)
            ids, mask, positions = _sequence_inputs(completions, 0 if pad is None else pad)
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions)
        elif self.tokenizer is not None:
            out = model(*decode(self.tokenizer, completions))
        else:
            out = model(completions)
        logits = getattr(out, "logits", out)
        r = torch.as_tensor(logits).detach().to(torch.float64)
        if r.ndim == 2 and r.shape[1] != 1:
            raise InvalidInputError(f"reward_model: must output one score per sequence, got "
                                    f"shape {tuple(r.shape)}")
        r = r.reshape(-1)
        if r.shape[0] != completions.prompt_ids.shape[0]:
            raise InvalidInputError(f"reward_model: returned {r.shape[0]} rewards for "
                                    f"{completions.prompt_ids.shape[0]} sequences")
        if not bool(torch.isfinite(r).all()):
            raise InvalidInputError("reward_model: returned NaN or infinite rewards")
        return r

    def _probability(self, first, second):
        return torch.sigmoid(self.scale * (self.rewards(first) - self.rewards(second)))


def checked_callable(value, name: str):
    """``value`` if it is callable, else an :class:`InvalidInputError` naming ``name``."""
    if not callable(value):
        raise InvalidInputError(f"{name}: must be callable")
    return value


def call_on_pair(fn, tokenizer, first, second):
    """``fn`` on a pair of :class:`Completions`: ``fn(prompts, texts, texts_prime)`` on decoded
    strings when a ``tokenizer`` is given, else ``fn(first, second)``."""
    if tokenizer is not None:
        prompts, a = decode(tokenizer, first)
        _, b = decode(tokenizer, second)
        return fn(prompts, a, b)
    return fn(first, second)


# Pairwise preference model ------------------------------------------------------------------
class PairwiseOracle(PreferenceOracle):
    """A pairwise preference model made antisymmetric: ``(p(y, y') + 1 - p(y', y)) / 2``.

    Pairwise models (PairRM and LLM judges) see the two responses in an order and need not
    satisfy ``p(y, y') + p(y', y) = 1``; averaging both orders gives a skew preference (and
    exactly 1/2 on a tie ``y = y'``), the same projection
    :class:`~nlhf_theory.PreferenceGame` applies to a nearly skew table. It costs two calls.

    Args:
      model: callable ``model(first, second) -> (B,)`` on :class:`Completions` (or on
        ``(prompts, texts, texts_prime)`` when ``tokenizer`` is given).
      tokenizer: the policy's tokenizer, when the model reads text.
      logits: the model returns logits (``sigma`` is applied to each order first).

    Example:
      >>> import torch
      >>> from nlhf_theory.llm import Completions, PairwiseOracle
      >>> biased = lambda a, b: torch.full((1,), 0.9)  # always prefers the first shown
      >>> ones = torch.ones(1, 1, dtype=torch.long)
      >>> a = Completions(ones, ones, ones, torch.tensor([1]))
      >>> float(PairwiseOracle(biased)(a, a))
      0.5

    References:
      Jiang, Ren & Lin 2023 (PairRM), arXiv:2306.02561; Munos et al. 2023, arXiv:2312.00886,
      Sec. 2 (a preference model with ``P(y > y') = 1 - P(y' > y)``).
    """

    def __init__(self, model, *, tokenizer=None, logits: bool = False):
        self.model, self.tokenizer = checked_callable(model, "model"), tokenizer
        self.logits = bool(logits)

    def _one_order(self, first, second):
        out = call_on_pair(self.model, self.tokenizer, first, second)
        out = torch.as_tensor(getattr(out, "logits", out)).detach().to(torch.float64)
        out = out.reshape(-1)
        if self.logits:
            return torch.sigmoid(out)
        return checked_probabilities(out, first.prompt_ids.shape[0], "model")

    def _probability(self, first, second):
        return 0.5 * (self._one_order(first, second) + 1.0 - self._one_order(second, first))


# Python callable ----------------------------------------------------------------------------
class CallableOracle(PreferenceOracle):
    """Any Python function of the pair, returning ``P(y > y' | x)``; its output is checked.

    Args:
      fn: ``fn(first, second) -> (B,)`` probabilities on :class:`Completions`, or
        ``fn(prompts, texts, texts_prime)`` on strings when ``tokenizer`` is given.
      tokenizer: the policy's tokenizer, to hand ``fn`` texts.
      antisymmetrize: also call ``fn(second, first)`` and average as :class:`PairwiseOracle`
        does (default False: ``fn`` is trusted to be skew, and only its range is checked).
    """

    def __init__(self, fn, *, tokenizer=None, antisymmetrize: bool = False):
        self.fn, self.tokenizer = checked_callable(fn, "fn"), tokenizer
        self.antisymmetrize = bool(antisymmetrize)

    def _call(self, first, second):
        out = call_on_pair(self.fn, self.tokenizer, first, second)
        return checked_probabilities(out, first.prompt_ids.shape[0], "oracle")

    def _probability(self, first, second):
        p = self._call(first, second)
        if self.antisymmetrize:
            p = 0.5 * (p + 1.0 - self._call(second, first))
        return p


# Exact table (the bridge) ---------------------------------------------------------------------
class TableOracle(PreferenceOracle):
    """The exact preference table over enumerated prompts and token sequences.

    ``P[x, i, j] = Pr(sequences[i] beats sequences[j] | prompts[x])``; a pair is looked up by its
    prompt's tokens (padding dropped) and its completions' tokens (exactly the enumerated
    sequences; anything else is an error, since the table says nothing about it).

    Args:
      P: ``(X, Y, Y)`` skew preference table.
      prompts: ``X`` prompts, each a sequence of token ids (rows of a tensor or lists).
      sequences: ``(Y, L)`` token ids of the enumerated responses.

    Example:
      >>> import numpy as np, torch
      >>> from nlhf_theory.llm import Completions, TableOracle
      >>> oracle = TableOracle(np.array([[[0.5, 0.8], [0.2, 0.5]]]), [[7]], [[3], [4]])
      >>> c = lambda t: Completions(torch.tensor([[7]]), torch.tensor([[1]]),
      ...                           torch.tensor([[t]]), torch.tensor([1]))
      >>> round(float(oracle(c(3), c(4))), 3)
      0.8
    """

    def __init__(self, P, prompts, sequences):
        from nlhf_theory.games import PreferenceGame

        P = np.asarray(P, dtype=np.float64)
        game = PreferenceGame(P)  # validates skew symmetry and range
        self.P = torch.tensor(np.array(game.P), dtype=torch.float64)
        prompts = [tuple(int(t) for t in torch.as_tensor(p).reshape(-1).tolist())
                   for p in prompts]
        sequences = [tuple(int(t) for t in torch.as_tensor(s).reshape(-1).tolist())
                     for s in sequences]
        X, Y = self.P.shape[0], self.P.shape[1]
        if len(prompts) != X or len(set(prompts)) != X:
            raise InvalidInputError(f"prompts: need {X} distinct prompts, got {len(prompts)} "
                                    f"({len(set(prompts))} distinct)")
        if len(sequences) != Y or len(set(sequences)) != Y:
            raise InvalidInputError(f"sequences: need {Y} distinct sequences, got "
                                    f"{len(sequences)} ({len(set(sequences))} distinct)")
        self.prompt_index = {p: i for i, p in enumerate(prompts)}
        self.sequence_index = {s: i for i, s in enumerate(sequences)}

    @classmethod
    def from_bridge(cls, bridge) -> TableOracle:
        """The exact oracle of a bridge environment (:func:`nlhf_theory.llm.make_bridge`)."""
        return cls(bridge.preference_table, list(bridge.prompt_ids), bridge.sequences)

    def indices(self, completions: Completions) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: the prompt and sequence index of each row."""
        xs, ys = [], []
        for ids, mask, comp, length in zip(completions.prompt_ids, completions.prompt_mask,
                                           completions.completion_ids,
                                           completions.completion_lengths):
            prompt = tuple(ids[mask.bool()].tolist())
            sequence = tuple(comp[: int(length)].tolist())
            if prompt not in self.prompt_index:
                raise InvalidInputError(f"completions: prompt {list(prompt)} is not in the table")
            if sequence not in self.sequence_index:
                raise InvalidInputError(
                    f"completions: sequence {list(sequence)} is not an enumerated response")
            xs.append(self.prompt_index[prompt])
            ys.append(self.sequence_index[sequence])
        return torch.tensor(xs), torch.tensor(ys)

    def _probability(self, first, second):
        x, y = self.indices(first)
        x2, y2 = self.indices(second)
        return self.P[x, y, y2]
