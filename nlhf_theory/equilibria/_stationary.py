"""Stationary points of the mixture methods (Nash-MD-PG, IPO-MD, constant-step Nash-MD)."""

from __future__ import annotations

import collections
import time

import numpy as np

from nlhf_theory.equilibria._certificate import CertifiedResult, SolverError, check_on_failure
from nlhf_theory.games import PreferenceGame
from nlhf_theory.validation import (
    InvalidInputError,
    check_beta,
    checked_real,
    positive_int,
    unit_interval,
)

_MixtureFields = collections.namedtuple(
    "_MixtureFields", ("policy", "residual", "converged", "iterations", "seconds", "tol"))


class MixtureFixedPointResult(CertifiedResult, _MixtureFields):
    """Output of :func:`solve_mixture_fixed_point`.

    Attributes:
      policy: (X, Y) float64 stationary policy.
      residual: ``max |T(pi) - pi|`` of the returned policy (the certificate).
      converged: True when ``residual <= tol``.
      iterations: damped fixed-point iterations taken.
      seconds: wall-clock time.
      tol: the requested residual tolerance.
    """

    __slots__ = ()

    def _shortfall(self) -> str:
        return f"fixed-point residual {self.residual:.3g} is above tol={self.tol:g}"


def mixture_map(game: PreferenceGame, beta: float, mixture: float, policy: np.ndarray):
    """``T(pi) = softmax(log pi_ref + P pi_mix / beta)`` with ``pi_mix ∝ pi^{1-m} pi_ref^m``."""
    log_ref = np.log(game.pi_ref)
    mix = np.exp((1 - mixture) * np.log(policy) + mixture * log_ref)
    mix /= mix.sum(-1, keepdims=True)
    logits = log_ref + np.einsum("xij,xj->xi", game.P, mix) / beta
    out = np.exp(logits - logits.max(-1, keepdims=True))
    return out / out.sum(-1, keepdims=True)


def solve_mixture_fixed_point(game: PreferenceGame, beta, mixture, *, tol: float = 1e-10,
                              iterations: int = 3000, damping: float = 0.3,
                              on_failure: str = "raise") -> MixtureFixedPointResult:
    """The stationary point of the geometric-mixture methods, with its residual certificate.

    ``pi = softmax(log pi_ref + P pi_mix / beta)`` with ``pi_mix ∝ pi^{1-m} pi_ref^m``
    (``m`` = ``mixture``, ``beta`` the KL coefficient, ``P`` and ``pi_ref`` the game's): the
    fixed point of Nash-MD-PG(m) and of IPO-MD(m) (the population minimizer of the IPO loss
    on pairs from ``pi_mix`` is ``log(pi / pi_ref) = P pi_mix / beta + c``), and of Nash-MD
    with a constant step ``eta`` and mixture step ``eta_mix`` (``m = eta_mix beta``). ``m = 0``
    is the regularized Nash equilibrium ``pi*_beta``; for ``m > 0`` the point is biased by
    ``O(m)`` away from it. Computed by ``iterations`` damped steps
    ``pi <- (1 - damping) pi + damping T(pi)`` from ``pi_ref`` (a fixed count, so results are
    reproducible bit for bit) and certified by the residual ``max |T(pi) - pi|``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      beta: KL coefficient > 0.
      mixture: ``m`` in [0, 1], the weight of ``pi_ref`` in the opponent.
      tol: residual tolerance (default 1e-10).
      iterations: damped iterations (default 3000).
      damping: step of the damped iteration in (0, 1] (default 0.3).
      on_failure: ``"raise"`` (default): :class:`SolverError` when the residual misses
        ``tol``; ``"return"``: return the result with ``converged=False``.

    Returns:
      A :class:`MixtureFixedPointResult`.

    Example:
      >>> import nlhf_theory as nt
      >>> game = nt.make_game("comal_cyclic")
      >>> res = nt.solve_mixture_fixed_point(game, 0.1, 0.125)
      >>> bool(res.residual < 1e-10), bool(nt.duality_gap(game, res.policy, 0.1) > 1e-6)
      (True, True)

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 7 (Nash-MD-PG); Calandriello et al. 2024,
      arXiv:2403.08635, Sec. 4 (IPO-MD and its mixture).
    """
    start = time.perf_counter()
    beta = check_beta(beta)
    mixture = unit_interval(mixture, "mixture")
    tol = checked_real(tol, "tol", lambda v: np.isfinite(v) and v > 0, "be finite and > 0")
    iterations = positive_int(iterations, "iterations")
    damping = checked_real(damping, "damping", lambda v: 0 < v <= 1, "lie in (0, 1]")
    on_failure = check_on_failure(on_failure)
    if not isinstance(game, PreferenceGame):
        raise InvalidInputError(f"game: expected a PreferenceGame, got {type(game).__name__}")
    pi = game.pi_ref.astype(np.float64)
    for _ in range(iterations):
        pi = (1 - damping) * pi + damping * mixture_map(game, beta, mixture, pi)
    residual = float(np.abs(mixture_map(game, beta, mixture, pi) - pi).max())
    result = MixtureFixedPointResult(pi, residual, residual <= tol, iterations,
                                     time.perf_counter() - start, tol)
    if result.converged or on_failure == "return":
        return result
    raise SolverError(f"solve_mixture_fixed_point: no certified stationary point at beta="
                      f"{beta:g}, mixture={mixture:g}: {result._shortfall()} after "
                      f"{iterations} iterations; raise iterations or lower damping", result)
