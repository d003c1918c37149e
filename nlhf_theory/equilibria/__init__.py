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
    solve_kl_game,
    solve_regularized_nash,
)

__all__ = [
    "KLGameResult",
    "NashResult",
    "RegularizedNashResult",
    "SolverError",
    "dense_ipm",
    "lp_maximal_lottery",
    "solve_kl_game",
    "solve_nash",
    "solve_regularized_nash",
]
