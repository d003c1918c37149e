"""The bridge environment: a preference game over short token sequences, solved exactly.

Responses are all ``Y = V**L`` sequences of ``L`` tokens over a response alphabet of ``V``
tokens (no eos; the logits are masked to the alphabet when scoring and generating), so every
expectation over responses is a finite sum: the enumerated sequence probabilities of a causal
language model are a tabular policy, :meth:`Bridge.to_game` is a
:class:`~nlhf_theory.PreferenceGame` over the sequences, and the package's certified solver and
metrics apply unchanged. The reference model is a tiny Llama- or GPT-2-shaped transformer built
from a config, fitted briefly (exact cross-entropy) to a skewed distribution, saved with
``save_pretrained`` and reloaded, so the reference the game uses is the reloaded one.

Preferences over sequences (per prompt ``x``):

* ``"transitive"``: Bradley-Terry, ``P(y > y') = sigma(r(x, y) - r(x, y'))``, ``r ~ N(0, 1)``.
* ``"cyclic"``: the first tokens play a cyclic tournament (token ``i`` beats ``i + 1, ...,
  i + floor((V - 1) / 2)`` mod ``V``), the rest of the sequence breaks the tie by a
  Bradley-Terry reward: ``P = 1/2 + 0.3 c(y_0, y'_0) + 0.2 tanh(r(y) - r(y'))``, ``c`` in
  ``{-1, 0, 1}``: intransitive.
* ``"random_skew"``: ``P[y, y'] ~ U(0, 1)`` below the diagonal (``nlhf_theory.random_skew``).
* ``"linear"``: a general preference model on sequence features,
  ``P = sigma(phi(y)^T A_x phi(y'))`` with ``phi`` the one-hot (position, token) indicators and
  ``A_x`` skew-symmetric Gaussian (Zhang et al. 2024, arXiv:2410.02197, Sec. 3: skew-symmetric
  preference representations; one matrix per prompt).
"""

from __future__ import annotations

import itertools
import math
import tempfile

import numpy as np
import torch
import transformers

from nlhf_theory.games import PreferenceGame, random_skew
from nlhf_theory.llm._logprobs import sequence_logprobs, token_logprobs
from nlhf_theory.validation import InvalidInputError

PREFERENCES = ("transitive", "cyclic", "random_skew", "linear")
ARCHITECTURES = ("llama", "gpt2")
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def _positive_int(value, name, low=1):
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < low:
        raise InvalidInputError(f"{name}: must be an integer >= {low}, got {value!r}")
    return int(value)


def make_tokenizer(num_prompts: int, vocab_size: int):
    """A local word-level tokenizer: ``<pad> <bos> <eos> <unk>``, prompts ``p0 ...``, responses
    ``a0 ...`` (whitespace-separated words, one token each; left padding; pad != eos)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    words = list(SPECIAL_TOKENS) + [f"p{i}" for i in range(num_prompts)] + [
        f"a{i}" for i in range(vocab_size)]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
        unk_token="<unk>", padding_side="left")


def _config(architecture, vocab, hidden_size, num_layers, context, tokenizer):
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id}
    if architecture == "llama":
        return transformers.LlamaConfig(
            vocab_size=vocab, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
            num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=context, tie_word_embeddings=False, **ids)
    return transformers.GPT2Config(vocab_size=vocab, n_embd=hidden_size, n_layer=num_layers,
                                   n_head=4, n_positions=context, resid_pdrop=0.0,
                                   embd_pdrop=0.0, attn_pdrop=0.0, **ids)  # no dropout: exact


def _preference(kind, X, V, L, rng, seed):
    seqs = np.array(list(itertools.product(range(V), repeat=L)))  # (Y, L)
    Y = seqs.shape[0]
    if kind == "random_skew":
        return np.asarray(random_skew(num_responses=Y, num_prompts=X, seed=seed).P)
    if kind == "linear":
        phi = np.zeros((Y, L * V))
        phi[np.arange(Y)[:, None], np.arange(L)[None, :] * V + seqs] = 1.0
        A = rng.normal(size=(X, L * V, L * V))
        A = (A - np.swapaxes(A, 1, 2)) / 2.0
        score = np.einsum("ya,xab,zb->xyz", phi, A, phi)
        return 1.0 / (1.0 + np.exp(-score))
    r = rng.normal(size=(X, Y))
    diff = r[:, :, None] - r[:, None, :]
    if kind == "transitive":
        return 1.0 / (1.0 + np.exp(-diff))
    first = seqs[:, 0]
    d = (first[None, :] - first[:, None]) % V  # y' first token minus y's, mod V
    half = (V - 1) // 2
    c = np.where((d >= 1) & (d <= half), 1.0, np.where(d == 0, 0.0, -1.0))
    if V % 2 == 0:  # the opposite token (d = V/2) ties
        c = np.where(d == V // 2, 0.0, c)
    return 0.5 + 0.3 * c[None] + 0.2 * np.tanh(diff)


class Bridge:
    """A preference game over all length-``L`` token sequences, with a tokenizer and models.

    Built by :func:`make_bridge`; see the module docstring. Sequences are ordered
    lexicographically over the alphabet (``y = sum_t y_t V^(L - 1 - t)``).

    Attributes:
      tokenizer: local ``PreTrainedTokenizerFast`` (left padding, pad != eos).
      prompts: list of the X prompt strings ``"<bos> p{x}"``.
      prompt_ids: (X, 2) LongTensor.
      response_tokens: (V,) LongTensor, the token ids of the response alphabet.
      sequences: (Y, L) LongTensor of token ids, ``Y = V ** L``.
      preference_table: (X, Y, Y) array, ``P[x, y, y'] = Pr(y beats y' | x)``.
      prompt_weights: (X,) array (uniform).
      reference_path: directory of the saved reference model (and tokenizer).
      config: the model config.
    """

    def __init__(self, tokenizer, config, preference_table, vocab_size, length, dtype,
                 reference_dir, seed):
        self.tokenizer = tokenizer
        self.config = config
        self.vocab_size = vocab_size
        self.length = length
        self.dtype = dtype
        self.seed = seed
        X = preference_table.shape[0]
        self.prompts = [f"<bos> p{x}" for x in range(X)]
        self.prompt_ids = torch.tensor([tokenizer.convert_tokens_to_ids(p.split())
                                        for p in self.prompts])
        self.response_tokens = torch.tensor(
            tokenizer.convert_tokens_to_ids([f"a{v}" for v in range(vocab_size)]))
        alphabet = itertools.product(range(vocab_size), repeat=length)
        self.sequence_indices = torch.tensor(list(alphabet), dtype=torch.long)  # (Y, L) in [0, V)
        self.sequences = self.response_tokens[self.sequence_indices]
        self.preference_table = np.asarray(preference_table, dtype=np.float64)
        self.prompt_weights = np.full(X, 1.0 / X)
        self._reference_dir = reference_dir  # keeps the temporary directory alive
        self.reference_path = reference_dir.name
        self._lookup = {tuple(s): i for i, s in enumerate(self.sequences.tolist())}

    @property
    def num_prompts(self) -> int:
        return self.preference_table.shape[0]

    @property
    def num_responses(self) -> int:
        return self.preference_table.shape[1]

    def new_model(self, seed=None, *, from_reference=False):
        """A model of the bridge's config: random init (``seed``) or the fitted reference."""
        if from_reference:
            return self.reference_model()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + 1 if seed is None else seed)
            model = transformers.AutoModelForCausalLM.from_config(self.config)
        return model.to(self.dtype)

    def reference_model(self):
        """The fitted reference model, loaded from :attr:`reference_path` (a fresh copy)."""
        model = transformers.AutoModelForCausalLM.from_pretrained(self.reference_path,
                                                                  dtype=self.dtype)
        return model.eval()

    def batch(self, x, y):
        """Inputs of :func:`sequence_logprobs` for prompt indices ``x`` and sequence indices ``y``.

        Args:
          x, y: integer arrays of one shape (flattened).

        Returns:
          dict with ``prompt_ids``, ``prompt_mask``, ``completion_ids``, ``completion_lengths``.
        """
        x = torch.as_tensor(np.asarray(x), dtype=torch.long).reshape(-1)
        y = torch.as_tensor(np.asarray(y), dtype=torch.long).reshape(-1)
        if x.shape != y.shape:
            raise InvalidInputError(f"x, y: expected one shape, got {tuple(x.shape)} and "
                                    f"{tuple(y.shape)}")
        if bool((x < 0).any() | (x >= self.num_prompts).any()):
            raise InvalidInputError(f"x: prompt indices must lie in [0, {self.num_prompts})")
        if bool((y < 0).any() | (y >= self.num_responses).any()):
            raise InvalidInputError(f"y: sequence indices must lie in [0, "
                                    f"{self.num_responses})")
        prompt_ids = self.prompt_ids[x]
        return {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
                "completion_ids": self.sequences[y],
                "completion_lengths": torch.full((x.numel(),), self.length)}

    def _all(self):
        X, Y = self.num_prompts, self.num_responses
        return self.batch(np.repeat(np.arange(X), Y), np.tile(np.arange(Y), X))

    def check_model(self, model):
        """The model's vocabulary must be the bridge's."""
        embeddings = getattr(model, "get_input_embeddings", None)
        vocab = (embeddings().weight.shape[0] if embeddings is not None
                 else getattr(model.config, "vocab_size", None))
        if vocab != self.config.vocab_size:
            raise InvalidInputError(f"model: vocabulary of {vocab} tokens, the bridge's has "
                                    f"{self.config.vocab_size}")
        return model

    def logprobs(self, model, temperature=1.0):
        """``log pi(y | x)`` of every sequence, (X, Y), differentiable through ``model``."""
        self.check_model(model)
        logp = sequence_logprobs(model, **self._all(), allowed_tokens=self.response_tokens,
                                 temperature=temperature)
        return logp.reshape(self.num_prompts, self.num_responses)

    def token_log_distributions(self, model, temperature=1.0):
        """Per-position log-softmax over the alphabet for every (x, y): (X, Y, L, V)."""
        self.check_model(model)
        values, _ = token_logprobs(model, **self._all(), allowed_tokens=self.response_tokens,
                                   temperature=temperature, full=True)
        return values.reshape(self.num_prompts, self.num_responses, self.length,
                              self.vocab_size)

    def policy(self, model, temperature=1.0) -> np.ndarray:
        """The enumerated sequence probabilities ``pi(y | x)``, (X, Y) float64 NumPy."""
        with torch.no_grad():
            logp = self.logprobs(model, temperature).to(torch.float64)
        return np.exp(logp.cpu().numpy())

    def to_game(self) -> PreferenceGame:
        """The preference game over the sequences, ``pi_ref`` the reloaded reference model's."""
        if not hasattr(self, "_game"):
            self._game = PreferenceGame(self.preference_table, self.policy(self.reference_model()),
                                        self.prompt_weights)
        return self._game

    def oracle(self, x, y, y_prime) -> np.ndarray:
        """``Pr(y beats y' | x)`` for index arrays (the exact table)."""
        return self.preference_table[np.asarray(x), np.asarray(y), np.asarray(y_prime)]

    def sequence_index(self, completion_ids) -> torch.Tensor:
        """Indices into :attr:`sequences` of (N, L) completions (token ids)."""
        rows = torch.as_tensor(completion_ids).tolist()
        try:
            return torch.tensor([self._lookup[tuple(r)] for r in rows], dtype=torch.long)
        except KeyError as error:
            raise InvalidInputError(f"completion_ids: {list(error.args[0])} is not a sequence "
                                    "of the bridge") from None

    def generate(self, model, x, num_samples, temperature=1.0, seed=0):
        """Sample completions with Hugging Face ``generate``, logits masked to the alphabet.

        Pure sampling (``top_k=0``, ``top_p=1``), exactly ``L`` new tokens.

        Returns:
          (num_samples, L) LongTensor of token ids.
        """
        self.check_model(model)
        num_samples = _positive_int(num_samples, "num_samples")
        allowed = self.response_tokens

        class _Alphabet(transformers.LogitsProcessor):
            def __call__(self, input_ids, scores):
                masked = torch.full_like(scores, -math.inf)
                masked[:, allowed] = scores[:, allowed]
                return masked

        prompt = self.prompt_ids[int(x)][None].repeat(num_samples, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                temperature=float(temperature), top_k=0, top_p=1.0,
                max_new_tokens=self.length, min_new_tokens=self.length,
                logits_processor=transformers.LogitsProcessorList([_Alphabet()]),
                pad_token_id=self.tokenizer.pad_token_id, eos_token_id=None)
        return out[:, prompt.shape[1]:]

    def mixture_logprobs(self, model, ref_model, weight, level="sequence"):
        """``log`` of Nash-MD's geometric mixture of ``model`` and ``ref_model``, (X, Y).

        ``level="sequence"`` (Munos et al. 2023, Sec. 6, the paper's mixture):
        ``pi_mix(y) ∝ pi(y)^(1 - m) pi_ref(y)^m`` normalized over the sequences;
        ``level="token"`` (TRL's ``NashMDTrainer``): each next-token distribution is mixed,
        ``pi_mix(y_t | y_<t) ∝ pi(y_t | y_<t)^(1 - m) pi_ref(y_t | y_<t)^m``, and the sequence
        probability is their product. ``m`` = ``weight``. See :func:`token_mixture` for the
        tabular form.
        """
        m = float(weight)
        if not 0.0 <= m <= 1.0:
            raise InvalidInputError(f"weight: must lie in [0, 1], got {weight!r}")
        if level == "sequence":
            mixed = (1.0 - m) * self.logprobs(model) + m * self.logprobs(ref_model)
            return torch.log_softmax(mixed, dim=-1)
        if level != "token":
            raise InvalidInputError(f"level: must be 'sequence' or 'token', got {level!r}")
        a = self.token_log_distributions(model)
        b = self.token_log_distributions(ref_model)
        mixed = torch.log_softmax((1.0 - m) * a + m * b, dim=-1)
        idx = self.sequence_indices[None, :, :, None].expand(self.num_prompts, -1, -1, 1)
        return torch.gather(mixed, -1, idx)[..., 0].sum(-1)


def token_mixture(policy, reference, weight, vocab_size, length):
    """TRL's per-token geometric mixture of two tabular sequence distributions, exactly.

    For sequence distributions ``pi`` and ``pi_ref`` over the ``V ** L`` sequences
    (lexicographic order) the next-token conditionals follow from the chain rule,
    ``pi(y_t | y_<t) = pi(y_<=t) / pi(y_<t)`` with prefix marginals ``pi(y_<=t)``; the mixture is
    ``prod_t softmax_v((1 - m) log pi(v | y_<t) + m log pi_ref(v | y_<t))[y_t]``.

    Args:
      policy, reference: (X, Y) probabilities, every entry > 0.
      weight: ``m`` in [0, 1].
      vocab_size, length: ``V`` and ``L`` with ``Y = V ** L``.

    Returns:
      (X, Y) probabilities of the token-level mixture.

    Example:
      >>> import numpy as np
      >>> pi = np.full((1, 4), 0.25)
      >>> np.allclose(token_mixture(pi, pi, 0.5, 2, 2), pi)
      True
    """
    pi = np.asarray(policy, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    V, L = int(vocab_size), int(length)
    X = pi.shape[0]
    if pi.shape != ref.shape or pi.shape[1] != V**L:
        raise InvalidInputError(f"policy, reference: expected shape (X, {V ** L}), got "
                                f"{pi.shape} and {ref.shape}")
    m = float(weight)
    shape = (X,) + (V,) * L
    log_mix = np.zeros(shape)
    cp, cr = pi.reshape(shape), ref.reshape(shape)
    for t in range(L):
        # prefix marginals over y_<=t, broadcast to the full sequence grid
        keep = tuple(range(t + 2, L + 1))
        mp = cp.sum(axis=keep, keepdims=True) if keep else cp
        mr = cr.sum(axis=keep, keepdims=True) if keep else cr
        log_cp = np.log(mp) - np.log(mp.sum(axis=t + 1, keepdims=True))
        log_cr = np.log(mr) - np.log(mr.sum(axis=t + 1, keepdims=True))
        z = (1.0 - m) * log_cp + m * log_cr
        z = z - np.logaddexp.reduce(z, axis=t + 1, keepdims=True)
        log_mix = log_mix + z  # broadcast over the later positions
    return np.exp(log_mix.reshape(X, V**L))


def _fit_reference(model, bridge, target_logp, steps, learning_rate):
    """Exact cross-entropy ``-sum_x d0 sum_y target(y) log pi(y)`` by Adam, ``steps`` steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    target = torch.exp(target_logp)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -(target * bridge.logprobs(model)).sum(-1).mean()
        loss.backward()
        optimizer.step()
    return model


def make_bridge(vocab_size=3, length=2, num_prompts=2, preference="cyclic", seed=0, *,
                architecture="gpt2", hidden_size=16, num_layers=2, fit_steps=60,
                fit_learning_rate=0.05, skew=2.0, dtype=torch.float64) -> Bridge:
    """Build the bridge environment: sequences, preference, tokenizer and a fitted reference.

    The reference model (a ``LlamaForCausalLM`` or ``GPT2LMHeadModel`` with ``num_layers``
    layers of width ``hidden_size``, random init from ``seed``) is fitted by ``fit_steps`` Adam
    steps of the exact cross-entropy to the skewed target ``softmax(skew * z)``,
    ``z ~ N(0, 1)`` per (prompt, sequence), then saved (``save_pretrained``, with the tokenizer)
    to a temporary directory and reloaded from it for every use.

    Args:
      vocab_size: ``V`` >= 2, tokens in the response alphabet (default 3).
      length: ``L`` >= 1, tokens per response (default 2); ``Y = V ** L`` <= 4096.
      num_prompts: ``X`` >= 1 (default 2).
      preference: one of ``"transitive"``, ``"cyclic"`` (default), ``"random_skew"``,
        ``"linear"`` (module docstring).
      seed: seeds the preference, the target and the models (default 0).
      architecture: ``"gpt2"`` (default) or ``"llama"``. GPT-2 computes in the model's dtype
        throughout; transformers' ``LlamaRMSNorm`` casts to float32 inside a float64 model
        (transformers 5.24), so a Llama-shaped bridge's log-probabilities and gradients are
        accurate to about 1e-8 only (its enumerated probabilities still sum to 1 to 1e-15,
        the normalization being the last step). Exact (1e-10) checks use GPT-2.
      hidden_size: model width, a multiple of 4 (default 16).
      num_layers: transformer layers (default 2).
      fit_steps: Adam steps fitting the reference (default 60; 0 keeps the random init).
      fit_learning_rate: their step size (default 0.05).
      skew: scale of the target's logits (default 2.0).
      dtype: model dtype (default float64, for exact checks).

    Returns:
      A :class:`Bridge`.

    Example:
      >>> bridge = make_bridge(vocab_size=2, length=2, num_prompts=1, fit_steps=5)
      >>> game = bridge.to_game()
      >>> game.num_responses, bridge.sequences.shape
      (4, torch.Size([4, 2]))

    References:
      docs/llm.md, "Bridge environment" (why the game is exact and how it is checked).
    """
    V = _positive_int(vocab_size, "vocab_size", 2)
    L = _positive_int(length, "length")
    X = _positive_int(num_prompts, "num_prompts")
    if V**L > 4096:
        raise InvalidInputError(f"vocab_size, length: V ** L = {V ** L} sequences, more than "
                                "4096 (the bridge enumerates them)")
    if preference not in PREFERENCES:
        raise InvalidInputError(f"preference: must be one of {PREFERENCES}, got {preference!r}")
    if architecture not in ARCHITECTURES:
        raise InvalidInputError(f"architecture: must be one of {ARCHITECTURES}, got "
                                f"{architecture!r}")
    hidden_size = _positive_int(hidden_size, "hidden_size", 4)
    if hidden_size % 4:
        raise InvalidInputError(f"hidden_size: must be a multiple of 4 (4 heads), got "
                                f"{hidden_size}")
    num_layers = _positive_int(num_layers, "num_layers")
    fit_steps = _positive_int(fit_steps, "fit_steps", 0)
    rng = np.random.default_rng(seed)
    table = _preference(preference, X, V, L, rng, seed)
    tokenizer = make_tokenizer(X, V)
    config = _config(architecture, len(tokenizer), hidden_size, num_layers, 2 + L + 2,
                     tokenizer)
    directory = tempfile.TemporaryDirectory(prefix="nlhf_bridge_")
    bridge = Bridge(tokenizer, config, table, V, L, dtype, directory, int(seed))
    target = torch.log_softmax(torch.as_tensor(skew * rng.normal(size=(X, V**L))), dim=-1)
    model = bridge.new_model(seed=int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        _fit_reference(model, bridge, target.to(dtype), fit_steps, fit_learning_rate)
    model.save_pretrained(bridge.reference_path)
    tokenizer.save_pretrained(bridge.reference_path)
    return bridge


def nash_md_fixed_point(game, beta, weight, level, vocab_size, length, *, tol=1e-13,
                        max_iter=200000, damping=None):
    """The stationary policy of Nash-MD with a constant mixture weight, over the sequences.

    Nash-MD's update ``pi_{t+1} ∝ pi_t^(1 - eta beta) pi_ref^(eta beta) exp(eta P pi_mix)``
    (Munos et al. 2023, Sec. 6; and Nash-MD-PG's stationarity condition, Sec. 7) is stationary
    where ``pi = softmax(log pi_ref + P pi_mix(pi) / beta)``, with ``pi_mix`` the geometric
    mixture of weight ``m`` = ``weight`` of ``pi`` and ``pi_ref``: per sequence
    (``level="sequence"``, the paper's) or per token (``level="token"``, TRL's; computed exactly
    from the chain-rule conditionals by :func:`token_mixture`). ``m = 0`` gives ``pi*_beta``
    for both; with ``m > 0`` both are biased, since Munos et al.'s mixture weight is
    ``eta_t beta -> 0``. Solved by the damped iteration
    ``log pi <- (1 - a) log pi + a (log pi_ref + P pi_mix / beta)`` (renormalized), ``a`` =
    ``damping`` (default ``min(1, beta)``), until the sup-norm change of ``log pi`` is below
    ``tol``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame` over the ``V ** L`` sequences (e.g.
        ``bridge.to_game()``).
      beta: KL coefficient > 0.
      weight: mixture weight ``m`` in [0, 1].
      level: ``"sequence"`` or ``"token"``.
      vocab_size, length: ``V``, ``L``.
      tol, max_iter, damping: iteration controls.

    Returns:
      ``(policy, residual)``: the (X, Y) fixed point and the final sup-norm change.

    Example:
      >>> import nlhf_theory as nt
      >>> game = nt.PreferenceGame([[0.5, 0.9, 0.2, 0.6], [0.1, 0.5, 0.7, 0.4],
      ...                           [0.8, 0.3, 0.5, 0.5], [0.4, 0.6, 0.5, 0.5]])
      >>> pi, res = nash_md_fixed_point(game, 0.5, 0.0, "token", 2, 2)
      >>> bool(abs(pi - nt.solve_regularized_nash(game, 0.5).policy).max() < 1e-10)
      True
    """
    if level not in ("sequence", "token"):
        raise InvalidInputError(f"level: must be 'sequence' or 'token', got {level!r}")
    m = float(weight)
    if not 0.0 <= m <= 1.0:
        raise InvalidInputError(f"weight: must lie in [0, 1], got {weight!r}")
    beta = float(beta)
    if not beta > 0:
        raise InvalidInputError(f"beta: must be > 0, got {beta!r}")
    P = np.asarray(game.P, dtype=np.float64)
    ref = np.asarray(game.pi_ref, dtype=np.float64)
    log_ref = np.log(ref)
    a = min(1.0, beta) if damping is None else float(damping)
    log_pi = log_ref.copy()
    residual = np.inf
    for _ in range(int(max_iter)):
        pi = np.exp(log_pi)
        if level == "sequence":
            z = (1.0 - m) * log_pi + m * log_ref
            mix = np.exp(z - np.logaddexp.reduce(z, axis=-1, keepdims=True))
        else:
            mix = token_mixture(pi, ref, m, vocab_size, length)
        target = log_ref + np.einsum("xij,xj->xi", P, mix) / beta
        new = (1.0 - a) * log_pi + a * target
        new = new - np.logaddexp.reduce(new, axis=-1, keepdims=True)
        residual = float(np.abs(new - log_pi).max())
        log_pi = new
        if residual < tol:
            break
    return np.exp(log_pi), residual
