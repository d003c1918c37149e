"""The LLM backend: the package's losses and algorithms on Hugging Face causal language models.

Needs the ``llm`` extra (torch, transformers, accelerate): ``pip install "nlhf_theory[llm]"``.
``import nlhf_theory`` never imports them.
"""

try:
    import accelerate  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "nlhf_theory.llm needs torch, transformers and accelerate: "
        'pip install "nlhf_theory[llm]"') from error

from nlhf_theory.llm._data import (
    Completions,
    PreferenceCollator,
    check_sampling_temperature,
    generate_completions,
    preference_rows,
    tokenize_preference_dataset,
)
from nlhf_theory.llm._logprobs import build_inputs, sequence_logprobs, token_logprobs
from nlhf_theory.llm._oracles import (
    CallableOracle,
    PairwiseOracle,
    PreferenceOracle,
    RewardModelOracle,
    TableOracle,
)

__all__ = [
    "CallableOracle",
    "Completions",
    "PairwiseOracle",
    "PreferenceCollator",
    "PreferenceOracle",
    "RewardModelOracle",
    "TableOracle",
    "build_inputs",
    "check_sampling_temperature",
    "generate_completions",
    "preference_rows",
    "tokenize_preference_dataset",
    "sequence_logprobs",
    "token_logprobs",
]
