"""What an algorithm converges to, as a function of the hyper-parameters it was built with."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from nlhf_theory.equilibria import solve_mixture_fixed_point, solve_nash, solve_regularized_nash
from nlhf_theory.metrics import reward_optimal_policy
from nlhf_theory.validation import InvalidInputError, traced

#: The kinds of target, from the most to the least specific claim.
KINDS = ("regularized_nash", "stationary_point", "nash", "reward_optimum", "loss_optimum",
         "none")


class Target(NamedTuple):
    """The policy an algorithm converges to in theory, for its hyper-parameters.

    Attributes:
      kind: one of :data:`KINDS`: ``"regularized_nash"`` (``pi*_beta``), ``"stationary_point"``
        (a mixture method's biased fixed point, :func:`~nlhf_theory.solve_mixture_fixed_point`),
        ``"nash"`` (the maximal lottery), ``"reward_optimum"`` (the RLHF optimum
        ``pi_ref exp(r / beta) / Z``, on Bradley-Terry games), ``"loss_optimum"`` (the
        population minimizer of an offline loss) or ``"none"`` (no last-iterate claim).
      policy: ``policy(game) -> (X, Y)`` array, the target on ``game`` (certified where a solver
        computes it); None for ``"none"``. Call it with concrete hyper-parameters only.
    """

    kind: str
    policy: Callable | None = None

    def __str__(self) -> str:
        return self.kind


NO_TARGET = Target("none")


def regularized_nash_target(beta) -> Target:
    """``pi*_beta``, the certified regularized Nash equilibrium."""
    return Target("regularized_nash", lambda game: solve_regularized_nash(game, beta).policy)


def nash_target() -> Target:
    """The maximal lottery (the unregularized Nash equilibrium)."""
    return Target("nash", lambda game: solve_nash(game).policy)


def stationary_target(beta, mixture) -> Target:
    """Nash-MD-PG(m) / IPO-MD(m)'s fixed point; ``pi*_beta`` when ``mixture`` is 0."""
    if not traced(mixture) and float(mixture) == 0.0:
        return regularized_nash_target(beta)
    return Target("stationary_point",
                  lambda game: solve_mixture_fixed_point(game, beta, mixture).policy)


def bradley_terry_reward(game) -> np.ndarray:
    """The reward ``r`` of a Bradley-Terry game, ``P[x, y, y'] = sigma(r(x, y) - r(x, y'))``,
    centred per prompt; an error when ``P`` is not of that form (to 1e-8 in the logits)."""
    P = np.asarray(game.P, np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(P) - np.log1p(-P)
    if not np.all(np.isfinite(logits)):
        raise InvalidInputError("game: has a preference of 0 or 1, so it is not Bradley-Terry "
                                "with a finite reward; the RLHF optimum is undefined")
    reward = logits.mean(-1)
    worst = float(np.max(np.abs(logits - (reward[:, :, None] - reward[:, None, :]))))
    if worst > 1e-8:
        raise InvalidInputError(f"game: not a Bradley-Terry preference (logit(P) differs from "
                                f"r(y) - r(y') by {worst:.3g}); the RLHF optimum needs a reward")
    return reward


def reward_optimum_target(beta) -> Target:
    """The RLHF optimum ``pi_ref exp(r / beta) / Z`` of a Bradley-Terry game."""
    return Target("reward_optimum", lambda game: reward_optimal_policy(
        bradley_terry_reward(game), game.pi_ref, beta))


def ipo_optimum_target(beta, behaviour) -> Target:
    """Offline IPO's population optimum ``pi_ref exp(P(y > mu) / beta) / Z`` (Azar et al.
    2023, Sec. 5), ``mu`` the behaviour policy (default ``pi_ref``)."""

    def policy(game):
        mu = game.pi_ref if behaviour is None else np.asarray(behaviour, np.float64)
        wins = np.einsum("xij,xj->xi", game.P, mu)
        return reward_optimal_policy(wins, game.pi_ref, beta)

    return Target("loss_optimum", policy)
