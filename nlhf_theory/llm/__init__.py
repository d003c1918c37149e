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

from nlhf_theory.llm._bridge import (
    ARCHITECTURES,
    PREFERENCES,
    Bridge,
    make_bridge,
    make_tokenizer,
    nash_md_fixed_point,
    token_mixture,
)
from nlhf_theory.llm._callbacks import BridgeMetricsCallback, bridge_metrics
from nlhf_theory.llm._data import (
    Completions,
    PreferenceCollator,
    check_sampling_temperature,
    generate_completions,
    preference_rows,
    tokenize_preference_dataset,
)
from nlhf_theory.llm._exact import (
    ExactState,
    Tables,
    best_of_n,
    collection_weights,
    exact_loss,
    exact_step,
    exact_update,
    game_tables,
    geometric_mixture,
    get_recipe,
    sampled_loss,
)
from nlhf_theory.llm._logprobs import build_inputs, sequence_logprobs, token_logprobs
from nlhf_theory.llm._oracles import (
    CallableOracle,
    PairwiseOracle,
    PreferenceOracle,
    RewardModelOracle,
    TableOracle,
)
from nlhf_theory.llm._recipes import (
    ANCHORS,
    LABEL_KINDS,
    PAIR_SOURCES,
    RECIPES,
    PairLogps,
    Recipe,
)
from nlhf_theory.llm._trainer import (
    TRL_LOSS_TYPES,
    NLHFConfig,
    NLHFTrainer,
    NonFiniteLossError,
    make_trainer,
)

__all__ = [
    "ANCHORS",
    "ARCHITECTURES",
    "Bridge",
    "ExactState",
    "LABEL_KINDS",
    "PAIR_SOURCES",
    "PREFERENCES",
    "PairLogps",
    "RECIPES",
    "Recipe",
    "Tables",
    "best_of_n",
    "collection_weights",
    "exact_loss",
    "exact_step",
    "exact_update",
    "game_tables",
    "geometric_mixture",
    "get_recipe",
    "make_bridge",
    "make_tokenizer",
    "nash_md_fixed_point",
    "sampled_loss",
    "token_mixture",
    "BridgeMetricsCallback",
    "CallableOracle",
    "Completions",
    "NLHFConfig",
    "NLHFTrainer",
    "NonFiniteLossError",
    "TRL_LOSS_TYPES",
    "bridge_metrics",
    "make_trainer",
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
