"""Closed-form metrics of the KL-regularized preference game."""

from nlhf_theory.metrics._metrics import (
    best_response,
    duality_gap,
    exploitability,
    game_value,
    kl_divergence,
    kl_to_ref,
    reward_optimal_policy,
    suboptimality,
    win_rate,
)
from nlhf_theory.metrics._sail_metrics import (
    SlotCost,
    chosen_policy,
    empirical_chosen_policy,
    implicit_reward_margin,
    sail_slot_cost,
    win_rate_vs_chosen,
)

__all__ = [
    "SlotCost",
    "best_response",
    "chosen_policy",
    "duality_gap",
    "empirical_chosen_policy",
    "exploitability",
    "game_value",
    "implicit_reward_margin",
    "kl_divergence",
    "kl_to_ref",
    "reward_optimal_policy",
    "sail_slot_cost",
    "suboptimality",
    "win_rate",
    "win_rate_vs_chosen",
]
