"""Certified equilibria: regularized (KL) Nash equilibria and maximal lotteries."""

from nlhf_theory.equilibria._certificate import SolverError
from nlhf_theory.equilibria._maximal_lottery import (
    NashResult,
    dense_ipm,
    lp_maximal_lottery,
    solve_nash,
)
from nlhf_theory.equilibria._regularized import (
    KLGameResult,
    RegularizedNashResult,
    kl_game_max_policy,
    solve_kl_game,
    solve_regularized_nash,
)
from nlhf_theory.equilibria._stationary import (
    MixtureFixedPointResult,
    solve_mixture_fixed_point,
)

__all__ = [
    "KLGameResult",
    "MixtureFixedPointResult",
    "NashResult",
    "RegularizedNashResult",
    "SolverError",
    "dense_ipm",
    "kl_game_max_policy",
    "lp_maximal_lottery",
    "solve_kl_game",
    "solve_mixture_fixed_point",
    "solve_nash",
    "solve_regularized_nash",
]
