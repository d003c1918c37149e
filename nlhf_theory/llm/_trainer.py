"""A ``transformers.Trainer`` for every recipe: the package's losses on causal language models.

:class:`NLHFTrainer` subclasses ``transformers.Trainer``, so accelerate, DDP, FSDP, DeepSpeed,
gradient accumulation, mixed precision, checkpoint and resume and the logging integrations are
the ecosystem's. It overrides only what preference learning needs: ``compute_loss`` builds the
pairs of the recipe (from the dataset, from the policy with ``generate``, from the reference, from
a geometric mixture, uniform over the bridge's sequences), labels them with an oracle, scores
them with :func:`~nlhf_theory.llm.sequence_logprobs` under the policy, the reference and the
snapshot of the previous iterate, and calls ``RECIPES[name].loss`` (which calls
:mod:`nlhf_theory.losses`: there is no second copy of any loss here); ``training_step`` adds
the extragradient half step (EGPO) and the snapshot refresh (INPO, SPPO, ...); ``log`` adds
TRL's metric names and ours.

The configuration, :class:`NLHFConfig`, is a ``transformers.TrainingArguments`` with TRL's
names where users know them (``beta``, ``max_length``, ``max_new_tokens``, ``temperature``,
``precompute_ref_log_probs``, ``loss_type``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
import transformers

from nlhf_theory.llm._data import (
    ON_POLICY_PAIRS,
    Completions,
    PreferenceCollator,
    check_sampling_temperature,
    check_tokenizer,
    completion_lengths,
    generate_completions,
    split_pair,
    tokenize_preference_dataset,
)
from nlhf_theory.llm._exact import hyperparameters as exact_hyperparameters
from nlhf_theory.llm._logprobs import sequence_logprobs
from nlhf_theory.llm._oracles import PreferenceOracle, TableOracle
from nlhf_theory.validation import InvalidInputError

#: TRL ``loss_type`` names with the recipe and options that reproduce them. TRL's ``ipo``
#: averages the log-ratios over completion tokens (``length_normalize=True``); the paper's IPO
#: (``recipe="ipo"``) sums them.
TRL_LOSS_TYPES = {
    "sigmoid": ("dpo", {}),
    "hinge": ("slic", {}),
    "ipo": ("ipo", {"length_normalize": True}),
}

#: Pair sources the sampled trainer draws; the others run in exact mode (``exact_update``).
SAMPLED_PAIRS = ("dataset", "policy", "policy_vs_ref", "policy_vs_mixture", "mixture",
                 "uniform", "current_vs_policy")
#: Label kinds the sampled trainer provides (optimistic equilibrium learning's fitted model
#: runs in exact mode).
SAMPLED_LABELS = ("oracle", "implicit", "win_rate")
LABEL_MODES = ("bernoulli", "probability")
MIXTURE_LEVELS = ("token", "sequence")


class NonFiniteLossError(FloatingPointError):
    """The NaN guard: a loss or log-probability that is NaN or infinite stops training."""


@dataclasses.dataclass
class NLHFConfig(transformers.TrainingArguments):
    """Training arguments of :class:`NLHFTrainer`: ``TrainingArguments`` plus TRL's names.

    Args (besides every ``transformers.TrainingArguments`` field):
      recipe: registry name of the recipe (``nlhf_theory.llm.RECIPES``); default ``"dpo"``.
      loss_type: TRL's ``DPOConfig.loss_type`` alias (``"sigmoid"`` = dpo, ``"hinge"`` =
        slic, ``"ipo"`` = ipo with TRL's per-token averaging) or a recipe name.
      beta: KL coefficient > 0 (TRL's ``beta``; Munos et al.'s ``tau``), default 0.1.
      max_length: largest prompt + completion length of offline data in tokens (default 512).
      max_new_tokens: completion budget of on-policy generation (default 64; the bridge's
        sequences have their fixed length instead).
      temperature: sampling temperature of on-policy generation (default 1.0).
      training_temperature: temperature of the log-probabilities the loss sees (default 1.0);
        an on-policy recipe needs ``temperature == training_temperature``.
      allow_temperature_mismatch: sample off-policy on purpose (default False).
      precompute_ref_log_probs: score the dataset under the reference once before training, so
        no reference model is kept (offline recipes only; default False).
      length_normalize: divide sequence log-probabilities by their length (TRL's IPO).
      label_mode: ``"bernoulli"`` (a 0/1 draw from the oracle, default) or ``"probability"``
        (the oracle's probability as a soft label).
      mixture_level: Nash-MD's geometric mixture ``pi^(1-m) pi_ref^m``, ``"token"`` (TRL's,
        per generated token, default) or ``"sequence"`` (Munos et al.'s, over whole sequences:
        enumerated, so only on the bridge).
      recipe_kwargs: the recipe's hyper-parameters (e.g. ``{"eta": 1.0}``), default its own
        (``recipe.defaults``); ``loss_steps`` is the number of optimizer steps per iteration of
        recipes anchored to a snapshot of the previous iterate (INPO, SPPO, Nash-MD, ...),
        ``period`` the iterations between magnet updates (COMAL, MPO), ``mixture`` Nash-MD's
        ``m``.
    """

    recipe: str | None = dataclasses.field(default=None, metadata={"help": "recipe name"})
    loss_type: str | None = dataclasses.field(default=None, metadata={"help": "TRL alias"})
    beta: float = dataclasses.field(default=0.1, metadata={"help": "KL coefficient"})
    max_length: int = dataclasses.field(default=512, metadata={"help": "max tokens"})
    max_new_tokens: int = dataclasses.field(default=64, metadata={"help": "generation budget"})
    temperature: float = dataclasses.field(default=1.0, metadata={"help": "sampling T"})
    training_temperature: float = dataclasses.field(default=1.0, metadata={"help": "loss T"})
    allow_temperature_mismatch: bool = dataclasses.field(default=False)
    precompute_ref_log_probs: bool = dataclasses.field(default=False)
    length_normalize: bool = dataclasses.field(default=False)
    label_mode: str = dataclasses.field(default="bernoulli")
    mixture_level: str = dataclasses.field(default="token")
    recipe_kwargs: dict | None = dataclasses.field(default=None)
    remove_unused_columns: bool = dataclasses.field(default=False)

    def __post_init__(self):
        if self.loss_type is not None:
            recipe, options = TRL_LOSS_TYPES.get(self.loss_type, (self.loss_type, {}))
            if self.recipe is not None and self.recipe != recipe:
                raise InvalidInputError(f"loss_type: {self.loss_type!r} means recipe {recipe!r},"
                                        f" which contradicts recipe={self.recipe!r}")
            self.recipe = recipe
            for key, value in options.items():
                setattr(self, key, value)
        if self.recipe is None:
            self.recipe = "dpo"
        if not (isinstance(self.beta, (int, float)) and self.beta > 0 and math.isfinite(
                self.beta)):
            raise InvalidInputError(f"beta: must be a finite number > 0, got {self.beta!r}")
        for name in ("temperature", "training_temperature"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise InvalidInputError(f"{name}: must be a number > 0, got {value!r}")
        for name in ("max_length", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.label_mode not in LABEL_MODES:
            raise InvalidInputError(f"label_mode: must be one of {LABEL_MODES}, got "
                                    f"{self.label_mode!r}")
        if self.mixture_level not in MIXTURE_LEVELS:
            raise InvalidInputError(f"mixture_level: must be one of {MIXTURE_LEVELS}, got "
                                    f"{self.mixture_level!r}")
        if self.remove_unused_columns:
            raise InvalidInputError("remove_unused_columns: must be False (the collator needs "
                                    "the preference columns)")
        super().__post_init__()


def _is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def _pad_right(ids, width, pad):
    if ids.shape[1] == width:
        return ids
    return torch.nn.functional.pad(ids, (0, width - ids.shape[1]), value=pad)


def _stack(sides, pad_token_id):
    """Several :class:`Completions` with prompts of one width as one batch (rows in order)."""
    width = max(s.completion_ids.shape[1] for s in sides)
    return Completions(torch.cat([s.prompt_ids for s in sides]),
                       torch.cat([s.prompt_mask for s in sides]),
                       torch.cat([_pad_right(s.completion_ids, width, pad_token_id)
                                  for s in sides]),
                       torch.cat([s.completion_lengths for s in sides]))


class NLHFTrainer(transformers.Trainer):
    """Train a causal language model with any recipe of :data:`nlhf_theory.llm.RECIPES`.

    Per batch of prompts it draws the recipe's pairs ``(y, y')``, labels them, scores them and
    minimizes ``RECIPES[args.recipe].loss(pair, beta, **hp).mean()``:

    * pairs ``"dataset"``: the rows' ``chosen`` and ``rejected`` (label 1, or a ``label``
      column); ``"policy"``: two samples of ``pi_theta`` (``generate`` at ``temperature``);
      ``"policy_vs_ref"``: one of ``pi_theta`` and one of ``pi_ref``; ``"policy_vs_mixture"`` /
      ``"mixture"``: Nash-MD's geometric mixture ``pi^(1-m) pi_ref^m`` (``mixture_level``);
      ``"uniform"``: uniform over the bridge's sequences;
    * labels ``"oracle"``: ``P(y > y')`` from the oracle (a Bernoulli draw or the probability,
      ``label_mode``); ``"win_rate"``: comparisons of ``y`` and ``y'`` with one more sample
      ``y''`` of the current policy (EGPO, online IPO); ``"implicit"``: none (SAIL);
    * anchors: ``pi_ref`` (a frozen copy, the PEFT adapter disabled, or precomputed
      log-probabilities), a snapshot of the previous iterate (refreshed every
      ``iteration_steps`` optimizer steps), the extragradient half step.

    The reference costs no second copy of the model when the policy is a PEFT adapter (the
    adapter is disabled to score the reference, as TRL does) or when
    ``precompute_ref_log_probs`` scores the offline dataset once before training; otherwise a
    frozen copy is made (or pass ``ref_model``). A NaN guard raises
    :class:`NonFiniteLossError` naming the step and the loss.

    Logged metrics (mean over the logging window): TRL's ``rewards/chosen``,
    ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``, ``logps/chosen``,
    ``logps/rejected`` (``chosen``: the side the label prefers; rewards ``beta log(pi /
    pi_ref)``), ``objective/kl`` (on-policy pairs: ``log pi - log pi_ref`` of the policy's
    samples) and ours: ``nlhf/label`` (mean label), ``nlhf/log_ratio_margin`` (``h``),
    ``nlhf/completion_length``.

    Args:
      model: a Hugging Face causal LM (or a PEFT model wrapping one).
      args: an :class:`NLHFConfig`.
      train_dataset: TRL preference-format rows (``prompt``, ``chosen``, ``rejected``; only
        ``prompt`` for on-policy recipes), or rows already tokenized
        (``prompt_input_ids``, ``chosen_input_ids``, ``rejected_input_ids``).
      eval_dataset: optional, same format (the loss is evaluated).
      processing_class: the tokenizer (needs a pad token); default the bridge's.
      ref_model: optional reference model (default: see above).
      oracle: a :class:`~nlhf_theory.llm.PreferenceOracle` for on-policy labels (default the
        bridge's exact table).
      bridge: optional bridge environment (fixed-length responses over its alphabet, the
        sequence-level mixture, uniform pairs).
      allowed_tokens: optional token ids completions may use (default the bridge's alphabet).
      callbacks, optimizers, data_collator: as ``transformers.Trainer``.

    Example:
      See docs/llm.md, "Trainer" (a doctest would need a model).

    References:
      Wolf et al. 2020 (transformers); von Werra et al., TRL (``DPOConfig``'s names and
      metrics); the recipes' papers are listed in ``nlhf_theory.llm.RECIPES``.
    """

    def __init__(self, model, args: NLHFConfig | None = None, train_dataset=None,
                 eval_dataset=None, *, processing_class=None, ref_model=None, oracle=None,
                 bridge=None, allowed_tokens=None, callbacks=None, optimizers=(None, None),
                 data_collator=None):
        from nlhf_theory.llm._recipes import RECIPES

        if args is None:
            args = NLHFConfig(output_dir="nlhf_output")
        if not isinstance(args, NLHFConfig):
            raise InvalidInputError(f"args: expected an NLHFConfig, got {type(args).__name__}")
        if args.recipe not in RECIPES:
            raise InvalidInputError(f"recipe: unknown {args.recipe!r}; known: "
                                    f"{', '.join(sorted(RECIPES))}")
        recipe = RECIPES[args.recipe]
        if recipe.pairs not in SAMPLED_PAIRS or recipe.labels not in SAMPLED_LABELS:
            raise InvalidInputError(
                f"recipe: {recipe.name!r} (pairs {recipe.pairs!r}, labels {recipe.labels!r}) "
                "needs what the sampled trainer does not provide; run it in exact mode on the "
                "bridge (nlhf_theory.llm.exact_update)")
        unknown = sorted(set(args.recipe_kwargs or {}) - set(recipe.defaults))
        if unknown:
            raise InvalidInputError(f"recipe_kwargs: {unknown[0]!r} is not a hyper-parameter "
                                    f"of {recipe.name!r} (it takes {sorted(recipe.defaults)})")
        self.recipe = recipe
        # the exact mode's rule (Nash-MD's mixture defaults to eta * beta; eta, period and
        # mixture without a default are required), so both modes train the same recipe
        self.hyperparameters = exact_hyperparameters(recipe, args.beta, args.recipe_kwargs or {})
        missing = sorted(k for k, v in self.hyperparameters.items() if v is None)
        if missing:
            raise InvalidInputError(f"recipe_kwargs: {missing[0]!r} is required by recipe "
                                    f"{recipe.name!r} (it has no default)")
        self.loss_steps = int(self.hyperparameters.get("loss_steps", 1))
        self.period = int(self.hyperparameters.get("period", 1) or 1)
        if self.loss_steps < 1 or self.period < 1:
            raise InvalidInputError("recipe_kwargs: loss_steps and period must be >= 1")
        self.on_policy = recipe.pairs in ON_POLICY_PAIRS
        check_sampling_temperature(recipe.name, recipe.pairs, args.temperature,
                                   args.training_temperature,
                                   allow_mismatch=args.allow_temperature_mismatch)
        if "extragradient" in recipe.anchors and args.gradient_accumulation_steps != 1:
            raise InvalidInputError("gradient_accumulation_steps: the extragradient recipe "
                                    f"{recipe.name!r} needs 1 (its half step is an optimizer "
                                    "step)")

        self.bridge = bridge
        tokenizer = processing_class if processing_class is not None else getattr(
            bridge, "tokenizer", None)
        if tokenizer is None:
            raise InvalidInputError("processing_class: a tokenizer is needed (or a bridge)")
        check_tokenizer(tokenizer)
        self.pad_token_id = int(tokenizer.pad_token_id)
        if allowed_tokens is None and bridge is not None:
            allowed_tokens = bridge.response_tokens
        self.allowed_tokens = (None if allowed_tokens is None else
                               torch.as_tensor(allowed_tokens, dtype=torch.long))
        self.fixed_length = bridge is not None
        self.generation_length = (int(bridge.sequences.shape[1]) if bridge is not None
                                  else args.max_new_tokens)
        if recipe.pairs in ("uniform",) and bridge is None:
            raise InvalidInputError(f"bridge: recipe {recipe.name!r} draws pairs uniformly "
                                    "over the responses, which needs the bridge's enumeration")
        if (recipe.pairs in ("policy_vs_mixture", "mixture") and args.mixture_level ==
                "sequence" and bridge is None):
            raise InvalidInputError("mixture_level: 'sequence' (Munos et al.'s mixture) needs "
                                    "the bridge's enumeration; use 'token' on other models")
        self.oracle = oracle
        needs_oracle = recipe.labels in ("oracle", "win_rate") and recipe.pairs != "dataset"
        if needs_oracle and oracle is None:
            if bridge is None:
                raise InvalidInputError(f"oracle: recipe {recipe.name!r} labels on-policy "
                                        "pairs and needs a PreferenceOracle")
            self.oracle = TableOracle.from_bridge(bridge)
        if self.oracle is not None and not isinstance(self.oracle, PreferenceOracle):
            raise InvalidInputError(f"oracle: expected a PreferenceOracle, got "
                                    f"{type(self.oracle).__name__}")

        train_rows = self._rows(train_dataset, tokenizer, args, "train_dataset")
        eval_rows = (None if eval_dataset is None else
                     self._rows(eval_dataset, tokenizer, args, "eval_dataset"))
        self.uses_ref = ("ref" in recipe.anchors or "magnet" in recipe.anchors
                         or recipe.pairs in ("policy_vs_ref", "policy_vs_mixture", "mixture"))
        self.is_peft = _is_peft(model)
        if args.precompute_ref_log_probs and recipe.pairs != "dataset":
            raise InvalidInputError(
                "precompute_ref_log_probs: the reference log-probabilities of on-policy pairs "
                f"cannot be precomputed (recipe {recipe.name!r} samples its pairs); use a PEFT "
                "adapter or a ref_model")
        if ref_model is not None:
            self._check_vocabulary(model, ref_model)
        if self.uses_ref and ref_model is None and not self.is_peft and not (
                args.precompute_ref_log_probs):
            ref_model = copy.deepcopy(model)  # the policy starts at the reference
        self.ref_model = ref_model
        self.snapshot_model = None
        self.magnet_model = None
        self._snapshot_step = -1
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._bridge_prompts = None
        self._pass = 0
        self._drawn = None

        if data_collator is None:
            data_collator = PreferenceCollator(self.pad_token_id)
        super().__init__(model=model, args=args, data_collator=data_collator,
                         train_dataset=train_rows, eval_dataset=eval_rows,
                         processing_class=tokenizer, callbacks=callbacks,
                         optimizers=optimizers)
        self.model_accepts_loss_kwargs = False  # compute_loss returns a batch mean
        self.loss_is_scaled_for_ga = False
        if self.ref_model is not None:
            self.ref_model.requires_grad_(False).eval().to(self.args.device)
        if "snapshot" in recipe.anchors:
            self.snapshot_model = copy.deepcopy(self.accelerator.unwrap_model(self.model))
            self.snapshot_model.requires_grad_(False).eval()
            self._snapshot_step = 0
        if "magnet" in recipe.anchors:  # rho_0 = pi_ref, then the policy every period
            with self._reference(self.model) as reference:
                self.magnet_model = copy.deepcopy(reference)
            self.magnet_model.requires_grad_(False).eval()
        if args.precompute_ref_log_probs and self.uses_ref:
            self._precompute(self.train_dataset)
            if self.eval_dataset is not None:
                self._precompute(self.eval_dataset)

    # Data -----------------------------------------------------------------------------------
    def _rows(self, dataset, tokenizer, args, name):
        if dataset is None:
            raise InvalidInputError(f"{name}: a dataset is needed (prompts for on-policy "
                                    "recipes, prompt/chosen/rejected for offline ones)")
        rows = list(dataset) if not isinstance(dataset, dict) else None
        offline = self.recipe.pairs == "dataset"
        if rows and isinstance(rows[0], dict) and "prompt_input_ids" in rows[0]:
            need = ("chosen_input_ids", "rejected_input_ids") if offline else ()
            for i, row in enumerate(rows):
                for key in need:
                    if key not in row:
                        raise InvalidInputError(f"{name}: tokenized row {i} has no {key!r}")
                    if len(row[key]) < 1:
                        raise InvalidInputError(f"{name}: row {i} has an empty completion")
                if len(row["prompt_input_ids"]) < 1:
                    raise InvalidInputError(f"{name}: row {i} has an empty prompt")
            return [dict(r) for r in rows]
        return tokenize_preference_dataset(dataset, tokenizer, max_length=args.max_length,
                                           prompts_only=not offline)

    @staticmethod
    def _check_vocabulary(model, ref_model):
        a = getattr(model.config, "vocab_size", None)
        b = getattr(ref_model.config, "vocab_size", None)
        if a != b:
            raise InvalidInputError(f"ref_model: vocabulary size {b} differs from the policy's "
                                    f"{a}; the log-ratios would compare different tokens")

    @torch.no_grad()
    def _precompute(self, rows):
        """Add ``ref_chosen_logps`` and ``ref_rejected_logps`` to every row (no copy kept)."""
        size = max(1, self.args.per_device_eval_batch_size)
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            batch = {k: v.to(self.args.device) for k, v in self.data_collator(part).items()}
            chosen, rejected = split_pair(batch)
            ref = self._ref_logps(self.model, _stack([chosen, rejected], self.pad_token_id))
            ref = ref.double().cpu().tolist()
            for i, row in enumerate(part):
                row["ref_chosen_logps"] = ref[i]
                row["ref_rejected_logps"] = ref[len(part) + i]

    # Scoring --------------------------------------------------------------------------------
    def _logps(self, model, comp: Completions):
        return sequence_logprobs(model, *comp, normalize=self.args.length_normalize,
                                 allowed_tokens=self._allowed(comp),
                                 temperature=self.args.training_temperature)

    def _allowed(self, comp):
        if self.allowed_tokens is None:
            return None
        return self.allowed_tokens.to(comp.completion_ids.device)

    @contextmanager
    def _reference(self, model):
        """The reference model: the frozen copy, or the policy with its adapter disabled."""
        if self.ref_model is not None:
            yield self.ref_model
        elif self.is_peft:
            unwrapped = self.accelerator.unwrap_model(model)
            with unwrapped.disable_adapter():
                yield unwrapped
        else:
            yield self.accelerator.unwrap_model(model)  # precomputing: the policy at init

    @torch.no_grad()
    def _ref_logps(self, model, comp):
        with self._reference(model) as reference:
            return self._logps(reference, comp)

    # Sampling -------------------------------------------------------------------------------
    def _generate(self, model, prompt_ids, prompt_mask, n):
        return generate_completions(
            model, prompt_ids, prompt_mask, max_new_tokens=self.generation_length,
            temperature=self.args.temperature, num_samples=n,
            allowed_tokens=self.allowed_tokens, eos_token_id=self.processing_class.eos_token_id,
            pad_token_id=self.pad_token_id, fixed_length=self.fixed_length)

    def _sample(self, model, source, prompt_ids, prompt_mask):
        """One completion per prompt from ``source``: ``"policy"`` (``pi_t``: the snapshot
        when the recipe keeps one), ``"current"``, ``"ref"``, ``"mixture"`` or ``"uniform"``."""
        unwrapped = self.accelerator.unwrap_model(model)
        if source == "policy" and self.snapshot_model is not None:
            return self._generate(self.snapshot_model, prompt_ids, prompt_mask, 1)
        if source in ("policy", "current"):
            return self._generate(unwrapped, prompt_ids, prompt_mask, 1)
        if source == "ref":
            with self._reference(model) as reference:
                return self._generate(reference, prompt_ids, prompt_mask, 1)
        if source == "uniform":
            Y = self.bridge.sequences.shape[0]
            y = torch.randint(Y, (prompt_ids.shape[0],))
            return self._bridge_completions(prompt_ids, prompt_mask, y)
        weight = float(self.hyperparameters.get("mixture", self.hyperparameters.get(
            "mixture_weight", 0.0)))
        if self.args.mixture_level == "sequence":
            return self._sequence_mixture(model, prompt_ids, prompt_mask, weight)
        return self._token_mixture(model, prompt_ids, prompt_mask, weight)

    def _bridge_completions(self, prompt_ids, prompt_mask, y):
        seqs = self.bridge.sequences.to(prompt_ids.device)[y.to(prompt_ids.device)]
        lengths = torch.full((len(y),), seqs.shape[1], dtype=torch.long,
                             device=prompt_ids.device)
        return Completions(prompt_ids, prompt_mask, seqs, lengths)

    def _prompt_index(self, prompt_ids, prompt_mask):
        if self._bridge_prompts is None:
            self._bridge_prompts = {tuple(p.tolist()): i
                                    for i, p in enumerate(self.bridge.prompt_ids)}
        out = []
        for ids, mask in zip(prompt_ids, prompt_mask):
            key = tuple(ids[mask.bool()].tolist())
            if key not in self._bridge_prompts:
                raise InvalidInputError(f"train_dataset: prompt {list(key)} is not a prompt of "
                                        "the bridge")
            out.append(self._bridge_prompts[key])
        return torch.tensor(out)

    @torch.no_grad()
    def _sequence_mixture(self, model, prompt_ids, prompt_mask, weight):
        """Munos et al.'s mixture over whole sequences, by enumeration on the bridge."""
        T = self.args.training_temperature
        logp = self.bridge.logprobs(self.accelerator.unwrap_model(model), temperature=T)
        with self._reference(model) as reference:
            ref = self.bridge.logprobs(reference, temperature=T)
        mix = torch.log_softmax((1.0 - weight) * logp.double() + weight * ref.double(), -1)
        x = self._prompt_index(prompt_ids, prompt_mask)
        y = torch.multinomial(mix[x].exp().cpu(), 1).reshape(-1)
        return self._bridge_completions(prompt_ids, prompt_mask, y)

    @torch.no_grad()
    def _token_mixture(self, model, prompt_ids, prompt_mask, weight):
        """TRL's per-token mixture: each token from ``softmax((1-m) log pi + m log pi_ref)``."""
        unwrapped = self.accelerator.unwrap_model(model)
        ids, mask = prompt_ids, prompt_mask
        eos = self.processing_class.eos_token_id
        P = prompt_ids.shape[1]
        T = self.args.temperature
        for _ in range(self.generation_length):
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = unwrapped(input_ids=ids, attention_mask=mask,
                               position_ids=positions).logits[:, -1].double() / T
            with self._reference(model) as reference:
                ref_logits = reference(input_ids=ids, attention_mask=mask,
                                       position_ids=positions).logits[:, -1].double() / T
            if self.allowed_tokens is not None:
                keep = torch.full_like(logits, float("-inf"))
                keep[:, self.allowed_tokens.to(logits.device)] = 0.0
                logits, ref_logits = logits + keep, ref_logits + keep
            mixed = ((1.0 - weight) * torch.log_softmax(logits, -1)
                     + weight * torch.log_softmax(ref_logits, -1))
            mixed = torch.where(torch.isfinite(mixed), mixed, torch.full_like(mixed, -math.inf))
            token = torch.multinomial(torch.softmax(mixed, -1).float(), 1)
            ids = torch.cat([ids, token], 1)
            mask = torch.cat([mask, torch.ones_like(token)], 1)
        completion = ids[:, P:]
        lengths = completion_lengths(completion, None if self.fixed_length else eos)
        positions = torch.arange(completion.shape[1], device=completion.device)
        completion = torch.where(positions[None] < lengths[:, None], completion,
                                 torch.full_like(completion, self.pad_token_id))
        return Completions(prompt_ids, prompt_mask, completion, lengths)

    def _pairs(self, model, inputs):
        """``(first, second, label)`` of the recipe's pair source for this batch."""
        pairs = self.recipe.pairs
        if pairs == "dataset":
            first, second = split_pair(inputs)
            label = inputs.get("label")
            if label is None:
                label = torch.ones(first.prompt_ids.shape[0], dtype=torch.float64,
                                   device=first.prompt_ids.device)
            return first, second, label
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        first_source, second_source = {
            "policy": ("policy", "policy"), "policy_vs_ref": ("policy", "ref"),
            "policy_vs_mixture": ("policy", "mixture"), "mixture": ("mixture", "mixture"),
            "uniform": ("uniform", "uniform"),
            "current_vs_policy": ("current", "policy")}[pairs]
        first = self._sample(model, first_source, prompt_ids, prompt_mask)
        second = self._sample(model, second_source, prompt_ids, prompt_mask)
        return first, second, None

    def _label(self, first, second):
        if self.args.label_mode == "bernoulli":
            return self.oracle.sample(first, second)
        return self.oracle.probability(first, second)

    # Loss -----------------------------------------------------------------------------------
    def _draw(self, model, inputs):
        """The batch's pairs and labels: ``(first, second, label, win, win_prime)``."""
        recipe = self.recipe
        first, second, label = self._pairs(model, inputs)
        device = first.prompt_ids.device
        win = win_prime = None
        if recipe.labels == "oracle" and recipe.pairs != "dataset":
            label = self._label(first, second).to(device)
        elif recipe.labels == "win_rate":  # y'' from the current policy (EGPO's opponent)
            opponent = self._sample(model, "current", first.prompt_ids, first.prompt_mask)
            win = self._label(first, opponent).to(device)
            win_prime = self._label(second, opponent).to(device)
        return first, second, label, win, win_prime

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The recipe's mean per-pair loss on this batch (pairs drawn and labelled here)."""
        from nlhf_theory.llm._recipes import PairLogps

        recipe = self.recipe
        if self._drawn is not None:  # extragradient: drawn at the half step's parameters
            drawn, self._drawn = self._drawn, None
        else:
            drawn = self._draw(model, inputs)
        first, second, label, win, win_prime = drawn
        device = first.prompt_ids.device
        both = _stack([first, second], self.pad_token_id)
        n = first.prompt_ids.shape[0]
        logps = self._logps(model, both)
        fields = {"logp": logps[:n], "logp_prime": logps[n:]}
        if self.uses_ref:
            if "ref_chosen_logps" in inputs and recipe.pairs == "dataset":
                ref = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]])
            else:
                ref = self._ref_logps(model, both)
            ref = ref.to(device=device, dtype=logps.dtype)
            fields.update(ref=ref[:n], ref_prime=ref[n:])
        if self.snapshot_model is not None:
            with torch.no_grad():
                prev = self._logps(self.snapshot_model, both).to(logps.dtype)
            fields.update(prev=prev[:n], prev_prime=prev[n:])
        if self.magnet_model is not None:
            with torch.no_grad():
                magnet = self._logps(self.magnet_model, both).to(logps.dtype)
            fields.update(magnet=magnet[:n], magnet_prime=magnet[n:])
        for key, value in (("label", label), ("win", win), ("win_prime", win_prime)):
            if value is not None:
                fields[key] = value.to(device=device, dtype=logps.dtype)
        pair = PairLogps(**fields)
        per_pair = recipe.loss(pair, self.args.beta, **self.hyperparameters)
        loss = per_pair.mean()
        self._guard(loss, logps)
        self._record(pair, loss, first, second, "train" if model.training else "eval")
        return (loss, {"per_pair": per_pair.detach()}) if return_outputs else loss

    def _guard(self, loss, logps):
        """The NaN guard: stop with an error naming the step and the loss."""
        if bool(torch.isfinite(loss)) and bool(torch.isfinite(logps).all()):
            return
        finite_logps = bool(torch.isfinite(logps).all())
        what = "loss" if finite_logps else "log-probabilities"
        raise NonFiniteLossError(
            f"loss: non-finite {what} at training step {self.state.global_step + 1} "
            f"(global_step {self.state.global_step} completed; recipe "
            f"{self.recipe.name!r}, beta = {self.args.beta}): loss = {float(loss.detach())!r}, "
            f"log-probabilities finite: {finite_logps}")

    @torch.no_grad()
    def _record(self, pair, loss, first, second, mode):
        beta = self.args.beta
        store = self._metrics[mode]
        if self._pass == 1:  # the extragradient half step's batch is not logged
            return
        logp, logp_prime = pair.logp.detach(), pair.logp_prime.detach()
        if pair.label is not None:
            label = pair.label
        elif pair.win is not None:
            label = 0.5 * (pair.win - pair.win_prime + 1.0)
        elif self.recipe.labels == "implicit" and pair.ref is not None:  # SAIL's sigma(beta h)
            label = torch.sigmoid(beta * ((logp - pair.ref) - (logp_prime - pair.ref_prime)))
        else:
            label = torch.ones_like(logp)
        first_chosen = label >= 0.5
        store["logps/chosen"].append(float(torch.where(first_chosen, logp, logp_prime).mean()))
        store["logps/rejected"].append(float(torch.where(first_chosen, logp_prime, logp).mean()))
        if pair.ref is not None:
            r, r_prime = beta * (logp - pair.ref), beta * (logp_prime - pair.ref_prime)
            chosen = torch.where(first_chosen, r, r_prime)
            rejected = torch.where(first_chosen, r_prime, r)
            store["rewards/chosen"].append(float(chosen.mean()))
            store["rewards/rejected"].append(float(rejected.mean()))
            store["rewards/margins"].append(float((chosen - rejected).mean()))
            store["rewards/accuracies"].append(float((chosen > rejected).double().mean()))
            store["nlhf/log_ratio_margin"].append(float(((r - r_prime) / beta).mean()))
            if self.recipe.pairs in ("policy", "policy_vs_ref", "policy_vs_mixture"):
                store["objective/kl"].append(float((logp - pair.ref).mean()))
        store["nlhf/label"].append(float(label.double().mean()))
        store["nlhf/loss"].append(float(loss.detach()))
        if self.on_policy or self.recipe.pairs == "uniform":
            lengths = torch.cat([first.completion_lengths, second.completion_lengths])
            store["nlhf/completion_length"].append(float(lengths.double().mean()))

    def log(self, logs, start_time=None):
        """``transformers.Trainer.log`` with the window's mean metrics and bridge metrics."""
        mode = "eval" if any(k.startswith("eval_") for k in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for key, values in self._metrics[mode].items():
            if values:
                logs[prefix + key] = float(np.mean(values))
        self._metrics[mode].clear()
        for callback in self.callback_handler.callbacks:
            pop = getattr(callback, "pop_pending", None)
            if pop is not None:
                logs.update(pop())
        return super().log(logs, start_time)

    # Steps ----------------------------------------------------------------------------------
    def _refresh_snapshot(self):
        """At the start of each iteration (every ``loss_steps`` optimizer steps) ``pi_t`` is the
        policy; every ``period`` iterations the magnet (COMAL, MPO) becomes it too."""
        step = self.state.global_step
        if (self.snapshot_model is None or step % self.loss_steps != 0
                or step == self._snapshot_step):
            return
        state = self.accelerator.unwrap_model(self.model).state_dict()
        self.snapshot_model.load_state_dict(state)
        self._snapshot_step = step
        if self.magnet_model is not None and (step // self.loss_steps) % self.period == 0:
            self.magnet_model.load_state_dict(state)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """One step; the snapshot is refreshed at iteration starts; EGPO's extragradient.

        Extragradient (Korpelevich 1976; EGPO, Zhou et al. 2025, arXiv:2503.08942, Alg. 1, as
        the tabular :func:`nlhf_theory.algorithms.egpo`): the gradient at ``theta_t`` (opponent
        ``pi_{theta_t}``) takes an optimizer half step to ``theta'``, where fresh pairs and the
        opponent's samples are drawn and labelled; parameters and optimizer state are then
        restored to ``theta_t`` and the Trainer steps with the gradient at ``theta_t`` of the
        loss against the half step's opponent (the half step only moves the opponent).
        """
        self._refresh_snapshot()
        if "extragradient" not in self.recipe.anchors:
            return super().training_step(model, inputs, num_items_in_batch)
        params = [p for p in model.parameters() if p.requires_grad]
        backup = [p.detach().clone() for p in params]
        optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        self._pass = 1
        try:
            super().training_step(model, inputs, num_items_in_batch)
            if self.args.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad()
            drawn = self._draw(model, self._prepare_inputs(inputs))
        finally:
            self._pass = 0
            with torch.no_grad():
                for p, saved in zip(params, backup):
                    p.copy_(saved)
            self.optimizer.load_state_dict(optimizer_state)
        self._drawn = drawn
        return super().training_step(model, inputs, num_items_in_batch)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Evaluation: the recipe's loss on the batch (no predictions)."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


def make_trainer(model, recipe, *, output_dir, train_dataset, **kwargs):
    """Shorthand: an :class:`NLHFTrainer` with ``NLHFConfig(output_dir, recipe=recipe,
    **config_kwargs)``; keyword arguments that are ``NLHFConfig`` fields go to the config, the
    others to the trainer."""
    names = {f.name for f in dataclasses.fields(NLHFConfig)}
    config = {k: v for k, v in kwargs.items() if k in names}
    rest = {k: v for k, v in kwargs.items() if k not in names}
    args = NLHFConfig(output_dir=output_dir, recipe=recipe, **config)
    return NLHFTrainer(model, args, train_dataset, **rest)

