"""The unregularized (beta = 0) equilibrium of a preference game: the maximal lottery."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import scipy.linalg
from scipy.optimize import linprog

from nlhf_theory.equilibria._certificate import CertifiedResult, SolverError, check_on_failure
from nlhf_theory.games import PreferenceGame
from nlhf_theory.validation import InvalidInputError, checked_real

_METHODS = ("auto", "highs", "highs-ipm", "highs-ds")


class _NashFields(NamedTuple):
    policy: np.ndarray
    exploitability: float
    per_prompt_exploitability: np.ndarray
    method: tuple
    seconds: float
    converged: bool = True
    tol: float = 1e-12


class NashResult(CertifiedResult, _NashFields):
    """Output of :func:`solve_nash`.

    Attributes:
      policy: (X, Y) float64 maximal lottery per prompt.
      exploitability: d0-averaged ``max_y (P pi)(y) - 1/2`` of ``policy`` (the certificate).
      per_prompt_exploitability: (X,) values.
      method: the method that produced each prompt's solution, one string per prompt.
      seconds: wall-clock time.
      converged: True when every prompt's exploitability is at most ``tol``. A result with
        ``converged=False`` is only returned under ``on_failure="return"``; its ``repr`` starts
        with ``UNCERTIFIED`` and :meth:`raise_if_uncertified` raises :class:`SolverError`.
      tol: the per-prompt exploitability tolerance that was requested.
    """

    __slots__ = ()

    def _shortfall(self) -> str:
        values = self.per_prompt_exploitability
        worst = int(np.argmax(values))
        return (f"exploitability {float(values[worst]):.3g} at prompt {worst} is above "
                f"tol={self.tol:g} ({int(np.sum(values > self.tol))} of {values.size} prompts "
                f"miss it)")


def lp_maximal_lottery(P: np.ndarray, method: str = "highs-ipm") -> np.ndarray:
    """Maximal lottery of one (Y, Y) preference by linear programming (scipy's HiGHS).

    ``min_{p, t} t  s.t.  P p <= t 1,  1^T p = 1,  p >= 0``: the policy whose best pure response
    wins with probability at most ``t = 1/2`` (Shoham & Leyton-Brown 2009, Sec. 4.1).

    Args:
      P: (Y, Y) skew preference.
      method: ``"highs"``, ``"highs-ipm"`` or ``"highs-ds"``.

    Returns:
      (Y,) float64 policy.
    """
    Y = P.shape[0]
    c = np.zeros(Y + 1)
    c[-1] = 1.0
    A_ub = np.hstack([P, -np.ones((Y, 1))])
    A_eq = np.hstack([np.ones((1, Y)), np.zeros((1, 1))])
    bounds = [(0, None)] * Y + [(None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(Y), A_eq=A_eq, b_eq=[1.0], bounds=bounds,
                  method=method)
    if res.status != 0:  # pragma: no cover - HiGHS solves every feasible bounded game LP
        raise RuntimeError(f"HiGHS failed on the maximal-lottery LP: {res.message}")
    p = np.clip(res.x[:Y], 0.0, None)
    return p / p.sum()


def _support_solve(A: np.ndarray, support: np.ndarray):
    """Solve ``A_SS p_S = v 1, 1^T p_S = 1`` (the equalizing strategy on the support S)."""
    n = support.size
    K = np.zeros((n + 1, n + 1))
    K[:n, :n] = A[np.ix_(support, support)]
    K[:n, n] = -1.0
    K[n, :n] = 1.0
    rhs = np.zeros(n + 1)
    rhs[n] = 1.0
    sol = np.linalg.solve(K, rhs)
    if not np.all(np.isfinite(sol)):
        raise np.linalg.LinAlgError("non-finite solution")
    return sol[:n]


def _step_length(x, dx):
    neg = dx < 0
    return min(1.0, float(np.min(-x[neg] / dx[neg]))) if neg.any() else 1.0


def dense_ipm(A: np.ndarray, *, tol: float = 1e-13, max_iter: int = 80,
              fast: bool = False) -> np.ndarray:
    """Maximal lottery of the skew game ``A = P - 1/2`` by a dense primal-dual interior point.

    The LP ``min t s.t. A p <= t 1, 1^T p = 1, p >= 0`` is self-dual (its dual variable is the
    opponent's policy, equal to ``p`` at the solution because ``A^T = -A``), so the central
    path is ``p_y (t - (A p)_y) = mu`` and each Newton step solves one bordered (Y+1) system
    ``[diag(s) - diag(p) A, p; 1^T, 0]``, with Mehrotra's predictor-corrector (Nocedal &
    Wright 2006, Alg. 14.3). The support ``{p_y > s_y}`` of the result is then solved exactly
    (the equalizing system), which removes the interior point's residual ``mu``.

    With ``fast=True`` (what ``solve_nash`` uses from ``Y >= 400`` responses):

    * the Newton matrix is factored in float32 (2-3x faster than float64 at Y >= 1000) and
      each Newton direction is refined against the float64 operator (residual ``<= 1e-12`` of
      the right-hand side, ``<= 1e-2 mu`` of it while the complementarity ``mu`` is larger, or
      ``<= 1e-10`` where it stagnates at float64 rounding); an
      iteration whose refinement stalls is redone in float64, kept for the remaining ones;
    * up to two of Gondzio's (1996) centrality correctors follow each Mehrotra direction (one
      more solve each with the same factorization; about 25% fewer iterations, so fewer
      factorizations at full size);
    * the final exact solve also tries the supports ``{p_y > c s_y}``, ``c = 0.1 ... 1e-4``,
      when ``{p_y > s_y}`` does not certify (a support response of tiny probability).

    Below that size the float64 Mehrotra path runs, bit for bit as before ``fast`` existed.

    Args:
      A: (Y, Y) skew matrix ``P - 1/2``.
      tol: stop when the mean complementarity ``p^T s / Y`` falls below it.
      max_iter: iteration cap.
      fast: the float32-factorization / corrector / wider-finish variant described above.
    Returns:
      (Y,) policy on the simplex.
    """
    Y = A.shape[0]
    work = np.arange(Y)  # responses still in play; the others are left at probability 0
    Aw = A
    p = np.full(Y, 1.0 / Y)
    t = float((A @ p).max()) + Y**-0.5
    s = t - A @ p
    tried = set()
    previous = None
    mixed, correctors = fast, (2 if fast else 0)
    for _ in range(max_iter):
        n = work.size
        mu = float(p @ s) / n
        support = work[p > s]
        if mu < 1e-3:
            # Once the support estimate {p > s} stops changing, try to finish exactly.
            if previous is not None and np.array_equal(support, previous):
                exact = _exact_on_support(A, support, tried)
                if exact is not None and (A @ exact).max() <= tol:
                    return exact
            # Shrink: on the central path p_y s_y = mu, so s_y > 1e6 p_y means s_y^2 > 1e6 mu:
            # response y is off the support. (A wrong guess is caught by the caller's
            # certificate.) The dropped mass is left out; the Newton step restores 1^T p = 1.
            keep = s <= 1e6 * p
            if not keep.all():
                work, p = work[keep], p[keep]
                Aw = A[np.ix_(work, work)]
                n = work.size
                s = t - Aw @ p
                if s.min() <= 0:
                    t, s = t - s.min() + mu, s - s.min() + mu
        previous = support
        if mu < tol:
            break
        scale = 1.0 / np.maximum(p, s)  # row scaling keeps the system well conditioned
        step = None
        if mixed:
            step = _mehrotra(p, s, mu, _mixed_newton(Aw, p, s, scale), correctors)
        if step is None:  # float64 (or a float32 refinement that stalled: float64 from now on)
            mixed = False
            step = _mehrotra(p, s, mu, _float64_newton(Aw, p, s, scale), correctors)
        dp, dt, ds = step
        alpha = 0.99 * min(_step_length(p, dp), _step_length(s, ds))
        p, t, s = p + alpha * dp, t + alpha * dt, s + alpha * ds
    full = np.zeros(Y)
    full[work] = np.clip(p, 0.0, None)
    full /= full.sum()
    best, best_value = full, (A @ full).max()
    supports = [work[p > s]]
    if fast:  # a support response with a tiny probability can still have p_y < s_y here
        supports += [work[p > c * s] for c in (1e-1, 1e-2, 1e-3, 1e-4)]
    tried = set()
    for support in supports:
        exact = _exact_on_support(A, support, tried)
        if exact is not None and (A @ exact).max() <= best_value:
            best, best_value = exact, (A @ exact).max()
            if best_value <= tol:
                break
    return best


def _mehrotra(p, s, mu, newton, correctors=0):
    """Mehrotra's predictor-corrector direction, or None when ``newton`` fails (returns None).

    With ``correctors > 0``, up to that many of Gondzio's (1996) centrality correctors follow,
    each one more solve with the same factorization: the products ``p_y s_y`` at a longer
    trial step are pulled back into ``[0.1, 10] sigma mu``, and the corrected direction is kept
    while it lengthens the step by at least 1%.
    """
    if newton is None:
        return None
    predictor = newton(-p * s)  # affine predictor
    if predictor is None:
        return None
    dp, dt, ds = predictor
    alpha = min(_step_length(p, dp), _step_length(s, ds))
    sigma = (float((p + alpha * dp) @ (s + alpha * ds)) / p.size / mu) ** 3
    target = sigma * mu - p * s - dp * ds
    direction = newton(target)  # corrector
    if direction is None or correctors == 0:
        return direction
    alpha = min(_step_length(p, direction[0]), _step_length(s, direction[2]))
    low, high = 0.1 * sigma * mu, 10.0 * sigma * mu
    for _ in range(correctors):
        trial = min(1.0, 1.5 * alpha + 0.1)
        products = (p + trial * direction[0]) * (s + trial * direction[2])
        pull = np.maximum(np.clip(products, low, high) - products, -high)
        corrected = newton(target + pull)
        if corrected is None:
            break
        longer = min(_step_length(p, corrected[0]), _step_length(s, corrected[2]))
        if longer < 1.01 * alpha:
            break
        target, direction, alpha = target + pull, corrected, longer
    return direction


def _bordered(Aw, p, s, scale, dtype):
    """The scaled bordered Newton matrix ``[diag(scale s) - diag(scale p) A, scale p; 1^T, 0]``
    of :func:`dense_ipm`, stored in ``dtype``."""
    n = p.size
    K = np.empty((n + 1, n + 1), dtype=dtype)
    np.multiply(-(scale * p)[:, None], Aw, out=K[:n, :n], casting="same_kind")
    K[np.arange(n), np.arange(n)] += (scale * s).astype(dtype)
    K[:n, n] = scale * p
    K[n, :n] = 1.0
    K[n, n] = 0.0
    return K


def _float64_newton(Aw, p, s, scale):
    """Newton solver of :func:`dense_ipm`: one float64 LU of the scaled bordered matrix."""
    n = p.size
    K = _bordered(Aw, p, s, scale, np.float64)
    lu = scipy.linalg.lu_factor(K, overwrite_a=True, check_finite=False)

    def newton(target):
        rhs = np.append(scale * target, 1.0 - p.sum())
        sol = scipy.linalg.lu_solve(lu, rhs, check_finite=False)
        return sol[:n], sol[n], sol[n] - Aw @ sol[:n]

    return newton


_REFINE_STEPS = 8  # iterative-refinement sweeps before a float32 factorization is given up
_REFINE_TOL = 1e-12  # residual (max norm) relative to the right-hand side's
_REFINE_FLOOR = 1e-10  # ... or where it stagnates (float64 rounding of the residual)
# ... or, while the mean complementarity mu is larger, below _INEXACT mu: an inexact Newton
# direction keeps the interior point's progress while the iterate is far from the solution
# (inexact interior-point methods ask for a residual <= eta mu, eta < 1; Bellavia 1998, JOTA
# 96(1)); it saves a quarter of the solves and none of the factorizations.
_INEXACT = 1e-2


def _mixed_newton(Aw, p, s, scale):
    """Newton solver of :func:`dense_ipm` with a float32 LU and float64 refinement.

    Each solve of ``K d = r`` (K the scaled bordered Newton matrix) starts from the float32
    factorization and is refined with residuals ``r - K d`` computed in float64 from ``Aw``
    (K itself is never formed in float64) until the residual is below ``1e-12`` of ``r``, or
    below ``1e-2 mu`` of it while the mean complementarity ``mu`` is larger (an inexact
    direction far from the solution); a solve whose refinement stalls returns None.
    """
    n = p.size
    K = _bordered(Aw, p, s, scale, np.float32)
    lu = scipy.linalg.lu_factor(K, overwrite_a=True, check_finite=False)

    tol = max(_REFINE_TOL, _INEXACT * float(p @ s) / n)

    def newton(target):
        rhs = np.append(scale * target, 1.0 - p.sum())
        size = float(np.abs(rhs).max())
        sol = scipy.linalg.lu_solve(lu, rhs.astype(np.float32), check_finite=False)
        sol = sol.astype(np.float64)
        previous = np.inf
        for _ in range(_REFINE_STEPS):
            Adp = Aw @ sol[:n]
            residual = rhs - np.append(scale * (s * sol[:n] - p * Adp + p * sol[n]),
                                       sol[:n].sum())
            error = float(np.abs(residual).max())
            # done when small, or when it stops falling at float64's rounding floor
            if error <= tol * size or (error > 0.5 * previous
                                                and error <= _REFINE_FLOOR * size):
                return sol[:n], sol[n], sol[n] - Adp
            previous = error
            correction = scipy.linalg.lu_solve(lu, residual.astype(np.float32),
                                               check_finite=False)
            if not np.all(np.isfinite(correction)):
                return None
            sol += correction
        return None

    return newton


def _exact_on_support(A, support, tried):
    """The equalizing policy on ``support`` if it is a valid policy (None otherwise)."""
    key = support.tobytes()
    if key in tried or support.size == 0:
        return None
    tried.add(key)
    try:
        pS = _support_solve(A, support)
    except np.linalg.LinAlgError:
        return None
    if pS.min() < 0.0:
        return None
    exact = np.zeros(A.shape[0])
    exact[support] = pS / pS.sum()
    return exact


# From this many responses on, solve_nash's interior point runs with fast=True (float32
# factorization refined in float64, centrality correctors, a wider exact finish); smaller
# games, the experiments' among them, keep the float64 Mehrotra path bit for bit.
_FAST_Y = 400


def _certified_ipm(A, tol, max_rounds=20):
    """Double oracle around :func:`dense_ipm`: solve the game restricted to a candidate set,
    add every response that beats the result, repeat until certified (None if it never is).

    The first candidate set is every response; later rounds only occur when the interior
    point's shrinking step dropped a response of the support.
    """
    Y = A.shape[0]
    cand = np.arange(Y)
    for _ in range(max_rounds):
        p = np.zeros(Y)
        p[cand] = dense_ipm(A[np.ix_(cand, cand)], tol=min(tol, 1e-13),
                            fast=cand.size >= _FAST_Y)
        slack = A @ p
        if slack.max() <= tol:
            return p
        grown = np.union1d(cand[p[cand] > 0], np.flatnonzero(slack > tol))
        if np.array_equal(grown, cand):  # the next round would repeat this one exactly
            return None
        cand = grown
    return None


def _polished_lp(P, A, method="highs-ipm"):
    """The LP solution, refined by the exact support solve when that certifies a smaller error."""
    p = lp_maximal_lottery(P, method)
    support = np.flatnonzero(p > 1e-9)
    try:
        polished = np.zeros_like(p)
        polished[support] = _support_solve(A, support)
    except np.linalg.LinAlgError:
        return p
    if polished.min() >= 0.0 and (A @ polished).max() < (A @ p).max():
        return polished / polished.sum()
    return p


def solve_nash(game: PreferenceGame, *, method: str = "auto", tol: float = 1e-12,
               on_failure: str = "raise") -> NashResult:
    """The unregularized Nash equilibrium (maximal lottery) of each prompt, certified.

    A maximal lottery ``pi`` satisfies ``(P pi)(y) <= 1/2`` for every response ``y``: no
    response beats it in expectation (Fishburn 1984). The certificate is the exploitability
    ``max_y (P pi)(y) - 1/2``, recomputed in float64 over all responses. When the maximal
    lottery is not unique (for instance under ties ``P = 1/2``), one of them is returned.

    Methods:
      * ``"highs-ipm"``, ``"highs-ds"``, ``"highs"``: the linear program of
        :func:`lp_maximal_lottery` solved by scipy's HiGHS (the reference path), then refined
        by an exact solve of the equalizing system on its support when that lowers the error.
      * ``"auto"`` (default; docs/benchmarks.md has its speed against HiGHS): :func:`dense_ipm`,
        a dense interior point for this self-dual LP that finishes with an exact solve on the
        support, wrapped in a double oracle (responses that beat the result are added back)
        until the certificate is below ``tol``; a prompt it cannot certify falls back to HiGHS.
        From 400 responses on it runs with ``fast=True`` (float32 factorization refined in
        float64, centrality correctors); the certificate is the same float64 exploitability.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame`.
      method: one of ``"auto"``, ``"highs"``, ``"highs-ipm"``, ``"highs-ds"``.
      tol: exploitability every prompt's answer must certify (the fast path's acceptance
        threshold, and the threshold of ``converged``).
      on_failure: ``"raise"`` (default) raises :class:`SolverError` when a prompt's
        exploitability is above ``tol``; ``"return"`` returns the result with
        ``converged=False`` instead.

    Returns:
      A :class:`NashResult` with ``.policy`` (X, Y) and ``.exploitability``.

    Raises:
      SolverError: under ``on_failure="raise"``, when some prompt's exploitability is above
        ``tol`` (the uncertified result is attached as ``.result``).

    Example:
      >>> import nlhf_theory as nt
      >>> (nt.solve_nash(nt.make_game("comal_cyclic")).policy * 11).round(9)
      array([[4., 3., 4.]])

    References:
      Fishburn 1984, "Probabilistic social choice based on simple voting comparisons", Rev.
      Econ. Stud. 51(4); Liu et al. 2024 (COMAL), arXiv:2410.23223 (the maximal lottery as the
      target of preference optimization); Shoham & Leyton-Brown 2009, Sec. 4.1 (the LP).
    """
    start = time.perf_counter()
    if not isinstance(game, PreferenceGame):
        raise InvalidInputError(f"game: expected a PreferenceGame, got {type(game).__name__}")
    if method not in _METHODS:
        raise InvalidInputError(f"method: must be one of {_METHODS}, got {method!r}")
    on_failure = check_on_failure(on_failure)
    tol = checked_real(tol, "tol", lambda v: np.isfinite(v) and v > 0, "be finite and > 0")
    P = game.P.astype(np.float64)
    A = P - 0.5
    X, Y = game.num_prompts, game.num_responses
    policy = np.zeros((X, Y))
    used = []
    for x in range(X):
        p, name = (_certified_ipm(A[x], tol), "dense-ipm") if method == "auto" else (None, method)
        if p is None:
            name = "highs-ipm" if name == "dense-ipm" else name
            p = _polished_lp(P[x], A[x], name)
        policy[x] = p
        used.append(name)
    # >= 0 exactly for a skew P (max_y (P pi)(y) >= pi^T P pi = 1/2); a negative value is the
    # rounding of the matrix-vector product at an equalized support, reported as 0
    per_prompt = np.maximum(np.einsum("xij,xj->xi", P, policy).max(-1) - 0.5, 0.0)
    weights = game.prompt_weights.astype(np.float64)
    result = NashResult(
        policy=policy, exploitability=float(weights @ per_prompt),
        per_prompt_exploitability=per_prompt, method=tuple(used),
        seconds=time.perf_counter() - start, converged=bool(np.all(per_prompt <= tol)), tol=tol,
    )
    if result.converged or on_failure == "return":
        return result
    raise SolverError(f"solve_nash: no certified maximal lottery: {result._shortfall()}; "
                      f"pass on_failure='return' to get the uncertified result "
                      f"(converged=False)", result)
