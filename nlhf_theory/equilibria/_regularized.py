"""Certified equilibria of KL-regularized two-player games (symmetric preference games and general
payoffs ``Q``), by a mirror-Newton method with conjugate gradients, batched over prompts."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import math
import os
import time

import numpy as np

from nlhf_theory._arrays import logsumexp, matvec
from nlhf_theory.equilibria._certificate import CertifiedResult, SolverError, check_on_failure
from nlhf_theory.games import PreferenceGame
from nlhf_theory.metrics import duality_gap
from nlhf_theory.validation import (
    InvalidInputError,
    check_beta,
    checked_real,
    float_array,
    positive_int,
    prompt_distribution,
    reference_policy,
)

_MAX_LOG_STEP = 20.0  # trust region of a mirror step: |log q_new - log q| <= 20
_PATH_START = 0.05  # smaller beta are reached by path following from this one
# Prompts are solved in blocks of about this many payoff entries (16 MB of float64), on all the
# cores this process may use, once the batch holds at least two blocks. Prompts are independent,
# so every prompt's iterates (and the result) are bit-identical to one block on one thread;
# blocks keep the conjugate-gradient products in cache (2.0 s instead of 3.3 s for 1000 x 100 at
# beta = 0.01 on one core) and threads run them in parallel (numpy releases the GIL in them).
_BLOCK_ENTRIES = 2_000_000


#: Fields every certified result shares: the per-prompt certificate and the solver's effort.
_CERTIFICATE_FIELDS = ("per_prompt_gap", "converged", "iterations", "matvecs", "seconds", "tol")
_RegularizedNashFields = collections.namedtuple(
    "_RegularizedNashFields", ("policy", "duality_gap") + _CERTIFICATE_FIELDS, defaults=(1e-12,))


class RegularizedNashResult(CertifiedResult, _RegularizedNashFields):
    """Output of :func:`solve_regularized_nash`.

    Attributes:
      policy: (X, Y) float64 regularized Nash equilibrium ``pi*_beta``.
      duality_gap: d0-averaged duality gap of ``policy`` (the certificate), float.
      per_prompt_gap: (X,) per-prompt duality gaps.
      converged: True when every prompt's gap is at most ``tol``, or at most float64's
        rounding level of the gap, ``8 eps (beta (1 + max|log pi_ref|) + 1)`` (above the
        default ``tol`` only for ``beta`` above ~200). A result with ``converged=False`` is
        only returned under ``on_failure="return"``; its ``repr`` starts with ``UNCERTIFIED``
        and :meth:`raise_if_uncertified` raises :class:`SolverError` for it.
      iterations: Newton iterations taken (the maximum over prompts).
      matvecs: products of a (Y, Y) payoff with a vector, summed over prompts.
      seconds: wall-clock time.
      tol: the per-prompt duality-gap tolerance that was requested.
    """

    __slots__ = ()

    def _shortfall(self) -> str:
        worst = int(np.argmax(self.per_prompt_gap))
        return (f"duality gap {float(self.per_prompt_gap[worst]):.3g} at prompt {worst} is above "
                f"tol={self.tol:g} ({int(np.sum(self.per_prompt_gap > self.tol))} of "
                f"{self.per_prompt_gap.size} prompts miss it)")


_KLGameFields = collections.namedtuple(
    "_KLGameFields", ("max_policy", "min_policy", "value", "duality_gap") + _CERTIFICATE_FIELDS,
    defaults=(1e-12,))


class KLGameResult(CertifiedResult, _KLGameFields):
    """Output of :func:`solve_kl_game` (a general, non-symmetric payoff ``Q``).

    Attributes:
      max_policy: (X, Y) equilibrium policy of the max player.
      min_policy: (X, Y) equilibrium policy of the min player.
      value: d0-averaged equilibrium value ``F(max_policy, min_policy)``.
      duality_gap: d0-averaged gap ``max_p F(p, min_policy) - min_q F(max_policy, q)``.
      per_prompt_gap: (X,) per-prompt gaps.
      converged, iterations, matvecs, seconds, tol: as in :class:`RegularizedNashResult`.
    """

    __slots__ = ()

    _shortfall = RegularizedNashResult._shortfall


# The convex problem ------------------------------------------------------------------------
def _primal(Q, log_ref, q, beta):
    """``h(q) = beta log sum_y pi_ref exp((Q q)_y / beta) + beta KL(q || pi_ref)`` and ``r``.

    ``h(q) = max_p F(p, q)`` for ``F(p, q) = p^T Q q - beta KL(p) + beta KL(q)``; ``r`` is the
    maximizing ``p`` (the max player's best response to ``q``).
    """
    z = log_ref + matvec(np, Q, q) / beta
    lse = logsumexp(np, z)
    r = np.exp(z - lse[:, None])
    kl = np.sum(q * (np.log(q) - log_ref), axis=-1)
    return beta * (lse + kl), r


def _newton_direction(Q, q, r, grad, beta, rtol, max_cg):
    """Approximately solve ``H d = -grad`` subject to ``sum(d) = 0`` for every prompt.

    ``H = beta diag(1/q) + Q^T (diag(r) - r r^T) Q / beta`` is the Hessian of ``h``. Projected
    preconditioned conjugate gradients (Gould, Hribar & Nocedal 2001, SIAM J. Sci. Comput.
    23(4), Alg. 2.2 with residual update) with the diagonal preconditioner ``beta diag(1/q)``;
    the preconditioned spectrum lies in ``[1, 1 + rho^2]``, ``rho = ||Sigma_r^1/2 Q D_q^1/2|| /
    beta``, so CG needs about ``rho`` iterations. Returns ``(d, matvecs)``.
    """
    d = np.zeros_like(q)
    m_inv = q / beta
    res = _project(-grad, m_inv)
    z = m_inv * res
    rz = np.sum(res * z, -1)
    target = (rtol**2) * rz
    sub = np.flatnonzero(rz > 0)  # prompts still iterating; arrays below are restricted to them
    if sub.size < rz.size:
        Q, q, r, m_inv, res, z, rz, target = (v[sub] for v in (Q, q, r, m_inv, res, z, rz, target))
    d_sub, p = np.zeros_like(q), z.copy()
    active = np.ones(sub.size, dtype=bool)
    matvecs = 0
    for _ in range(max_cg):
        if not active.any():
            break
        u = matvec(np, Q, p)
        w = r * u
        w = w - r * w.sum(-1, keepdims=True)
        hp = matvec(np, np.swapaxes(Q, -1, -2), w) / beta + beta * p / q
        matvecs += 2 * int(active.sum())
        php = np.sum(p * hp, -1)
        ok = active & (php > 0)
        alpha = np.where(ok, rz / np.where(ok, php, 1.0), 0.0)
        d_sub = d_sub + alpha[:, None] * p
        res = _project(res - alpha[:, None] * hp, m_inv)
        z = m_inv * res
        rz_new = np.sum(res * z, -1)
        active = ok & (rz_new > target)
        p = np.where(active[:, None], z + (rz_new / np.where(rz > 0, rz, 1.0))[:, None] * p, p)
        rz = rz_new
        if active.sum() <= sub.size // 2:  # compact: converged prompts leave the batch
            d[sub] = d_sub
            keep = np.flatnonzero(active)
            sub = sub[keep]
            Q, q, r, m_inv, res, rz, target, d_sub, p, active = (
                v[keep] for v in (Q, q, r, m_inv, res, rz, target, d_sub, p, active))
    d[sub] = d_sub
    return d, matvecs


def _project(v, m_inv):
    """Residual update of projected CG onto ``sum(d) = 0`` in the ``M^-1`` metric."""
    return v - np.sum(m_inv * v, -1, keepdims=True) / m_inv.sum(-1, keepdims=True)


def _mirror_step(q, d, t):
    """``q exp(t d / q)`` renormalized: the Newton step taken along the simplex's mirror map."""
    logq = np.log(q) + np.clip(t[:, None] * d / q, -_MAX_LOG_STEP, _MAX_LOG_STEP)
    logq = logq - logsumexp(np, logq)[:, None]
    return np.maximum(np.exp(logq), np.finfo(np.float64).tiny)


def _minimize_h(Q, log_ref, beta, tol_h, max_iter, max_cg):
    """Minimize ``h`` over the simplex for every prompt, following a path in ``beta``.

    Damped Newton from ``pi_ref`` is globally convergent in exact arithmetic, but for small
    ``beta`` (``h`` nearly piecewise linear) its first steps can drive entries of the true
    support to ~1e-300, from which multiplicative steps recover only slowly. So the problem is
    solved for ``beta_k = max(beta, 0.05 * 0.2^k)``, each stage to a loose tolerance and
    started from the previous solution (path following, as in interior-point methods), and
    the last stage to ``tol_h`` (prompts that still miss it are for :func:`_rescue`). Each
    stage runs on blocks of prompts in parallel threads (see ``_BLOCK_ENTRIES``).
    Returns ``(q, r, h, iterations, matvecs)``, iterations summed over stages.
    """
    stages = [beta]
    while stages[-1] < _PATH_START:
        stages.append(stages[-1] * 5.0)
    q = np.exp(log_ref)
    iterations = matvecs = 0
    X, Y = log_ref.shape
    count = min(X, -(-X * Y * Y // _BLOCK_ENTRIES))  # ceil: blocks of at most ~_BLOCK_ENTRIES
    workers = min(count, _usable_cores())
    count = workers * -(-count // workers)  # a multiple of the workers, for balance
    bounds = np.linspace(0, X, min(count, X) + 1).round().astype(int)
    blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    threads = (concurrent.futures.ThreadPoolExecutor(workers) if workers > 1
               else contextlib.nullcontext())
    with threads as pool:
        parallel_map = pool.map if pool is not None else map  # one block or one core: serial
        for k, stage_beta in enumerate(reversed(stages)):
            stage_tol = tol_h if k == len(stages) - 1 else 1e-6 * stage_beta
            outs = list(parallel_map(lambda b, sb=stage_beta, st=stage_tol, q=q: _newton(
                Q[b], log_ref[b], sb, q[b], st, max_iter, max_cg), blocks))
            q, r, h = (np.concatenate([o[i] for o in outs]) for i in range(3))
            # a stage takes as many iterations as its slowest prompt
            iterations += max(o[3] for o in outs)
            matvecs += sum(o[4] for o in outs)
    return q, r, h, iterations, matvecs


def _usable_cores():
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _newton(Q, log_ref, beta, q, tol_h, max_iter, max_cg):
    """Damped mirror-Newton on ``h`` from ``q``, for every prompt.

    Stops per prompt when ``h - h_lower <= max(1e-4 tol_h, 1e-15)`` (``h_lower``: a lower
    bound on ``min h`` from weak duality, :func:`_dual_lower_bound`) and the fixed-point
    residual is below 1e-13, or once ``h - h_lower <= tol_h`` and a step fails to decrease
    ``h`` (float64's floor), or after 3 such failures. Going past ``tol_h`` costs about one
    Newton step and makes the policy, not only the gap, accurate: the gap is quadratic in the
    error, ``gap ~ beta ||q - q*||^2``, the residual linear.
    """
    X = log_ref.shape[0]
    h, r = _primal(Q, log_ref, q, beta)
    matvecs = X
    done = np.zeros(X, dtype=bool)
    stalls = np.zeros(X, dtype=int)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        lower, q_response = _dual_lower_bound(Q, log_ref, r, beta)
        matvecs += int((~done).sum())
        gap = h - lower
        # The gap is quadratic in the policy error; the fixed-point residual q - BR(BR(q)) is
        # linear in it, so it certifies the policy itself once the gap is at rounding level.
        residual = np.max(np.abs(q - q_response), axis=-1)
        small = gap <= max(1e-4 * tol_h, 1e-15)
        accurate = small & ((residual <= 1e-13) | (tol_h > 1e-10))
        done |= accurate | ((stalls >= 1) & (gap <= tol_h)) | (stalls >= 3)
        if done.all():
            iterations -= 1
            break
        idx = np.flatnonzero(~done)
        Qa = Q[idx] if idx.size < X else Q
        qa, ra, ha, la = q[idx], r[idx], h[idx], log_ref[idx]
        grad = matvec(np, np.swapaxes(Qa, -1, -2), ra) + beta * (np.log(qa) - la)
        matvecs += idx.size
        gap_a = np.maximum(ha - lower[idx], 0.0)
        rtol = np.clip(np.sqrt(gap_a / max(beta, 1e-300)), 1e-8, 0.1)[:, None]
        d, mv = _newton_direction(Qa, qa, ra, grad, beta, rtol[:, 0], max_cg)
        matvecs += mv
        slope = np.sum(grad * d, -1)
        t = np.ones(idx.size)
        pending = np.ones(idx.size, dtype=bool)
        q_new, h_new, r_new = qa.copy(), ha.copy(), ra.copy()
        for _ in range(30):
            cand = _mirror_step(qa[pending], d[pending], t[pending])
            Qp = Qa if pending.all() else Qa[pending]  # a copy of the payoffs only when needed
            hc, rc = _primal(Qp, la[pending], cand, beta)
            matvecs += int(pending.sum())
            accept = hc <= ha[pending] + 1e-4 * t[pending] * np.minimum(slope[pending], 0.0)
            # At rounding level h cannot decrease measurably: there a full step is accepted
            # when it shrinks the fixed-point residual (a Newton polish of the policy).
            flat = (gap_a[pending] <= 1e-14) & (t[pending] == 1.0) & ~accept
            if flat.any():
                _, qr = _dual_lower_bound(Qp[flat], la[pending][flat], rc[flat], beta)
                matvecs += int(flat.sum())
                polished = np.max(np.abs(cand[flat] - qr), -1) < residual[idx][pending][flat]
                accept[np.flatnonzero(flat)[polished]] = True
            sel = np.flatnonzero(pending)[accept]
            q_new[sel], h_new[sel], r_new[sel] = cand[accept], hc[accept], rc[accept]
            pending[np.flatnonzero(pending)[accept]] = False
            if not pending.any():
                break
            t[pending] *= 0.5
        improved = (h_new < ha) | np.any(q_new != qa, axis=-1)
        stalls[idx] = np.where(improved, 0, stalls[idx] + 1)
        q[idx], h[idx], r[idx] = q_new, h_new, r_new
    return q, r, h, iterations, matvecs


def rounding_floor(scale, log_ref, beta):
    """Per prompt, the float64 rounding level ``8 eps (beta (1 + max|log pi_ref|) + max(1, scale))``
    of the duality gap ``2 beta KL(q || BR(q))``, ``scale >= max|Q|``: its logits
    ``log pi_ref + Q q / beta`` carry a relative rounding error ``eps``, multiplied by
    ``2 beta`` in the gap. A gap at this level is as certified as float64 allows (it matters
    for ``beta`` above ~100).
    """
    eps = np.finfo(np.float64).eps
    return 8 * eps * (beta * (1 + np.max(np.abs(log_ref), -1)) + np.maximum(scale, 1.0))


def _rescue(Q, log_ref, beta, q, r, h, prompts, max_iter, symmetric):
    """Solve ``prompts`` again, one at a time, where the mirror-Newton path missed ``tol``.

    At small ``beta`` the path can drive an entry of the true support to ~1e-300 (always so
    when ``pi_ref`` itself is that small there, e.g. ``pi_ref = (1e-300, 1/2, 1/2)`` at
    ``beta = 1e-4``), from which its trust-region multiplicative steps climb back only e^20 at
    a time, and damped Newton on the nearly piecewise-linear ``h`` then needs thousands of
    steps. Each such prompt is first polished by :func:`_log_newton` from where the path
    stopped, and if that does not lower its gap below ``h``'s, solved from scratch by
    Clarabel's interior point (Goulart & Chen 2024, arXiv:2405.12762) on the exponential-cone
    program ``min_q LSE(log pi_ref + Q q / beta) - H(q) - q . log pi_ref`` (``h / beta`` up to
    a constant), whose iterates stay interior so that no entry is lost, and polished by
    :func:`_log_newton`. The better-certified of the candidates is kept (``q, r, h`` are
    updated in place). The max player's policy starts at ``q`` when ``symmetric`` (a skew
    payoff, whose equilibrium is symmetric), else at its own program's solution (not at
    ``BR(q)``, which amplifies the error of ``q`` by ``1 / beta``). Returns
    ``(iterations, matvecs)``: the most any prompt took, and the sum.
    """
    most = matvecs = 0
    for x in prompts:
        Qx, lx = Q[x:x + 1], log_ref[x:x + 1]
        lower, _ = _dual_lower_bound(Qx, lx, r[x:x + 1], beta)
        best_gap, used = (h[x] - lower)[0], 0
        for start in ("current", "clarabel"):
            if start == "current":
                q0, p0 = q[x], (q[x] if symmetric else r[x])
            else:
                q0 = _clarabel(Q[x], log_ref[x], beta, max_iter)
                p0 = q0 if symmetric else _clarabel(-Q[x].T, log_ref[x], beta, max_iter)
            if q0 is None or p0 is None:
                continue
            # a local method: from where the path stopped it gets a short budget
            budget = min(max_iter, 20 if start == "current" else 100)
            q2, it, mv = _log_newton(Q[x], log_ref[x], beta, q0, p0, budget)
            h2, r2 = _primal(Qx, lx, q2[None], beta)
            lower2, _ = _dual_lower_bound(Qx, lx, r2, beta)
            used, matvecs = used + it, matvecs + mv + 2
            if (h2 - lower2)[0] < best_gap:
                best_gap, q[x], r[x], h[x] = (h2 - lower2)[0], q2, r2[0], h2[0]
            if best_gap <= 1e-15 * max(1.0, beta):
                break
        most = max(most, used)
    return most, matvecs


def _clarabel(Q, log_ref, beta, max_iter):
    """``argmin_q h(q)`` for one prompt by cvxpy + Clarabel (None when Clarabel fails)."""
    import warnings

    import cvxpy as cp

    var = cp.Variable(log_ref.size)
    objective = cp.log_sum_exp(log_ref + Q @ var / beta) - cp.sum(cp.entr(var)) - log_ref @ var
    problem = cp.Problem(cp.Minimize(objective), [cp.sum(var) == 1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "solution may be inaccurate": polished after
            problem.solve(solver=cp.CLARABEL, max_iter=max_iter)
    except cp.error.SolverError:
        return None
    if var.value is None or not np.all(np.isfinite(var.value)):
        return None
    return np.maximum(np.asarray(var.value, dtype=np.float64), np.finfo(np.float64).tiny)


def _log_newton(Q, log_ref, beta, q0, p0, max_iter):
    """Newton's method on one prompt's equilibrium equations in log space, from ``(q0, p0)``.

    Unknowns ``u = log p``, ``w = log q`` (entries of 1e-300 and below are represented
    exactly); equations ``u = log softmax(log pi_ref + Q e^w / beta)`` and
    ``w = log softmax(log pi_ref - Q^T e^u / beta)``, whose Jacobian is
    ``[[I, -(I - 1 BR_p^T) Q diag(q) / beta], [(I - 1 BR_q^T) Q^T diag(p) / beta, I]]``;
    steps are halved until the largest residual decreases (at most 12 times). Converges
    quadratically near the solution; the iterate with the smallest residual is returned.
    Returns ``(q, iterations, matvecs)``.
    """
    Y = log_ref.size

    def residual(x):
        with np.errstate(over="ignore", invalid="ignore"):  # diverging trial steps: err = nan
            p, q = np.exp(x[:Y]), np.exp(x[Y:])
            zp, zq = log_ref + Q @ q / beta, log_ref - Q.T @ p / beta
            lp, lq = zp - logsumexp(np, zp), zq - logsumexp(np, zq)
            res = np.concatenate([x[:Y] - lp, x[Y:] - lq])
            err = float(np.abs(res).max())
        return res, (err if np.isfinite(err) else np.inf), p, q, np.exp(lp), np.exp(lq)

    x = np.log(np.concatenate([p0 / p0.sum(), q0 / q0.sum()]))
    res, err, p, q, bp, bq = residual(x)
    matvecs, eye, iterations = 2, np.eye(Y), 0
    for iterations in range(1, max_iter + 1):
        if err <= 1e-14:
            break
        Mq, Mp = Q * (q / beta), Q.T * (p / beta)
        jac = np.block([[eye, -(Mq - bp @ Mq)], [Mp - bq @ Mp, eye]])
        try:
            step = np.linalg.solve(jac, res)
        except np.linalg.LinAlgError:
            break
        matvecs += 2 * Y
        for _ in range(12):
            trial = residual(x - step)
            matvecs += 2
            if trial[1] < err:
                break
            step = step / 2
        else:
            break  # no decrease: float64's floor
        x = x - step
        res, err, p, q, bp, bq = trial
    q = np.maximum(np.exp(x[Y:]), np.finfo(np.float64).tiny)
    return q / q.sum(), iterations, matvecs


def _dual_lower_bound(Q, log_ref, r, beta):
    """``min_q F(r, q) <= min_q h(q)``: the max player's guaranteed value when playing ``r``,
    and the minimizing ``q`` (the min player's best response to ``r``)."""
    z = log_ref - matvec(np, np.swapaxes(Q, -1, -2), r) / beta
    lse = logsumexp(np, z)
    kl = np.sum(r * (np.log(np.maximum(r, np.finfo(float).tiny)) - log_ref), -1)
    return -beta * (kl + lse), np.exp(z - lse[:, None])


# Public solvers ---------------------------------------------------------------------------
def kl_game_max_policy(Q, log_ref, beta, *, tol: float = 2e-12, max_iter: int = 200,
                       max_cg: int = 400) -> np.ndarray:
    """The max player's equilibrium policy of the KL game, for solvers inside a learner's step.

    The fast path of :func:`solve_kl_game` for arrays already in the solver's layout (no
    input validation, no result object): ``Q`` a float64 (X, Y, Y) payoff, ``log_ref`` the
    (X, Y) ``log pi_ref``, ``beta`` a float. The same path-following Newton solve, certified in
    the same way: a prompt whose duality gap misses ``max(tol, rounding floor)`` is solved
    again by the rescue (log-space Newton, then Clarabel), and if it still misses, the call
    raises. The equilibrium learners call it on every step through ``jax.pure_callback``.

    Args:
      Q: (X, Y, Y) float64 payoff of the max player.
      log_ref: (X, Y) float64 ``log pi_ref``.
      beta: KL coefficient > 0 (a float).
      tol: duality-gap tolerance per prompt (default 2e-12: Newton's stopping rule at
        ``tol / 2``).
      max_iter, max_cg: Newton and conjugate-gradient budgets, as in :func:`solve_kl_game`.

    Returns:
      (X, Y) float64 max-player policy.

    Raises:
      SolverError: when some prompt's gap stays above the tolerance.
    """
    q, p, h, iterations, _ = _minimize_h(Q, log_ref, beta, tol / 2, max_iter, max_cg)
    lower, _ = _dual_lower_bound(Q, log_ref, p, beta)
    threshold = np.maximum(tol, rounding_floor(np.max(np.abs(Q), axis=(-2, -1)), log_ref, beta))
    missed = np.flatnonzero(h - lower > threshold)
    if missed.size:
        _rescue(Q, log_ref, beta, q, p, h, missed, max_iter, symmetric=False)
        lower, _ = _dual_lower_bound(Q, log_ref, p, beta)
        gaps = h - lower
        if np.any(gaps > threshold):
            worst = int(np.argmax(gaps - threshold))
            raise SolverError(
                f"kl_game_max_policy: no certified equilibrium at beta={beta:g}: duality gap "
                f"{gaps[worst]:.3g} at prompt {worst} is above tol={tol:g} after "
                f"{iterations} Newton iterations and the rescue")
    return p


def solve_kl_game(Q, pi_ref, beta, *, prompt_weights=None, tol: float = 1e-12,
                  max_iter: int = 200, max_cg: int = 400,
                  on_failure: str = "raise") -> KLGameResult:
    """Equilibrium of the two-player KL-regularized game with a general payoff ``Q``.

    Per prompt, ``max_p min_q F(p, q)`` with
    ``F(p, q) = p^T Q q - beta KL(p || pi_ref) + beta KL(q || pi_ref)``. ``Q`` need not be
    skew (pessimistic and optimistic surrogates of a preference, Ye et al. 2024, Alg. 1-2), so
    the players' equilibrium policies differ. The min player's policy solves the strictly convex
    program ``min_q h(q)``, ``h(q) = beta log E_{pi_ref} exp(Q q / beta) + beta KL(q || pi_ref)``,
    by damped Newton steps along the simplex's mirror map; the max player's is the best response
    ``softmax(log pi_ref + Q q / beta)``. The certificate is the duality gap in closed form,
    ``gap = [beta LSE(Q q / beta) + beta KL(q)] + [beta LSE(-Q^T p / beta) + beta KL(p)]``.
    Large batches run on threads as in :func:`solve_regularized_nash`.

    Args:
      Q: payoff of the max player, (Y, Y) or (X, Y, Y), finite.
      pi_ref: reference policy, (Y,) or (X, Y), entries > 0 summing to 1.
      beta: KL coefficient > 0.
      prompt_weights: d0 of shape (X,), default uniform (only used to average the gap/value).
      tol: target duality gap per prompt.
      max_iter: maximum Newton iterations.
      max_cg: maximum conjugate-gradient iterations per Newton step.
      on_failure: ``"raise"`` (default) raises :class:`SolverError` when a prompt's gap misses
        ``tol``; ``"return"`` returns the result with ``converged=False`` instead.

    Returns:
      A :class:`KLGameResult`.

    Raises:
      SolverError: under ``on_failure="raise"``, when some prompt's gap is above ``tol``.

    Example:
      >>> import numpy as np, nlhf_theory as nt
      >>> res = nt.solve_kl_game(np.array([[0.2, 0.9], [0.6, 0.4]]), np.array([0.5, 0.5]), 0.1)
      >>> bool(res.duality_gap < 1e-10)
      True
    """
    start = time.perf_counter()
    beta = check_beta(beta)
    on_failure = check_on_failure(on_failure)
    tol, max_iter, max_cg = _check_budget(tol, max_iter, max_cg)
    Q = float_array(Q, "Q").astype(np.float64)
    if Q.ndim == 2:
        Q = Q[None]
    if Q.ndim != 3 or Q.shape[1] != Q.shape[2]:
        raise InvalidInputError(f"Q: expected shape (Y, Y) or (X, Y, Y), got {Q.shape}")
    X, Y = Q.shape[0], Q.shape[1]
    log_ref = np.log(reference_policy(pi_ref, X, Y, np.float64))
    weights = prompt_distribution(prompt_weights, X, np.float64)
    q, p, h, iterations, matvecs = _minimize_h(Q, log_ref, beta, tol / 2, max_iter, max_cg)
    lower, _ = _dual_lower_bound(Q, log_ref, p, beta)
    scale = np.max(np.abs(Q), axis=(-2, -1))
    threshold = np.maximum(tol, rounding_floor(scale, log_ref, beta))
    missed = np.flatnonzero(h - lower > threshold)
    if missed.size:
        it, mv = _rescue(Q, log_ref, beta, q, p, h, missed, max_iter, symmetric=False)
        iterations, matvecs = iterations + it, matvecs + mv
        lower, _ = _dual_lower_bound(Q, log_ref, p, beta)
    gaps = h - lower
    value = h  # h(q) = max_p F(p, q), attained at the best response p
    result = KLGameResult(
        max_policy=p, min_policy=q, value=float(weights @ value),
        duality_gap=float(weights @ gaps), per_prompt_gap=gaps,
        converged=bool(np.all(gaps <= threshold)),
        iterations=iterations, matvecs=matvecs,
        seconds=time.perf_counter() - start, tol=tol,
    )
    return _finish("solve_kl_game", result, on_failure, beta)


def solve_regularized_nash(game: PreferenceGame, beta, *, tol: float = 1e-12,
                           max_iter: int = 200, max_cg: int = 400,
                           on_failure: str = "raise") -> RegularizedNashResult:
    """The regularized Nash equilibrium ``pi*_beta`` of a preference game, with its certificate.

    ``pi*_beta`` is the unique (symmetric) solution of
    ``max_pi min_pi' J(pi, pi')``, ``J(pi, pi') = E_x[pi^T P pi' - beta KL(pi || pi_ref) +
    beta KL(pi' || pi_ref)]``, i.e. the fixed point ``pi = softmax(log pi_ref + P pi / beta)``.
    It is computed in float64 for every prompt at once as the minimizer of the convex
    ``h(q) = beta log E_{pi_ref} exp((P q) / beta) + beta KL(q || pi_ref)`` (the exponential-cone
    program of the min player) by damped mirror-Newton steps with conjugate gradients, which
    converge for every ``beta > 0`` (unlike the damped fixed-point iteration, which cycles for
    ``beta`` below about 0.02) and read ``P`` only through matrix-vector products. The
    certificate ``duality_gap = 2 beta KL(pi || BR_beta(pi))`` is recomputed from the returned
    policy by :func:`nlhf_theory.duality_gap`. Batches of more than 2e6 payoff entries
    (e.g. 1000 prompts x 100 responses) are solved in blocks of prompts on threads over the
    cores this process may use (its CPU affinity: ``taskset`` restricts them); every prompt's
    result is bit for bit the one-thread result.

    Notation: Ye et al. (arXiv:2402.07314) write ``eta = 1 / beta``; Munos et al.
    (arXiv:2312.00886) write ``tau = beta``.

    Args:
      game: a :class:`~nlhf_theory.PreferenceGame` (any dtype; solved in float64).
      beta: KL coefficient > 0.
      tol: target duality gap per prompt (default 1e-12).
      max_iter: maximum Newton iterations per stage (and the iteration cap of the
        interior-point rescue and of its log-space Newton polish).
      max_cg: maximum conjugate-gradient iterations per Newton step.
      on_failure: ``"raise"`` (default) raises :class:`SolverError` when a prompt's duality gap
        misses ``tol``; ``"return"`` returns the result with ``converged=False`` instead (its
        ``repr`` says ``UNCERTIFIED``; ``result.raise_if_uncertified()`` raises later).

    Returns:
      A :class:`RegularizedNashResult` with ``.policy`` (X, Y) and ``.duality_gap``.

    Raises:
      SolverError: under ``on_failure="raise"``, when some prompt's gap is above ``tol``
        (the uncertified result is attached as ``.result``).

    Example:
      >>> import nlhf_theory as nt
      >>> res = nt.solve_regularized_nash(nt.make_game("comal_cyclic"), beta=0.1)
      >>> res.policy.round(3)
      array([[0.337, 0.283, 0.379]])

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 3 (the game); Munos et al. 2023,
      arXiv:2312.00886, Sec. 4 (regularized Nash equilibrium); Gould, Hribar & Nocedal 2001
      (projected CG).
    """
    start = time.perf_counter()
    if not isinstance(game, PreferenceGame):
        raise InvalidInputError(f"game: expected a PreferenceGame, got {type(game).__name__}")
    beta = check_beta(beta)
    on_failure = check_on_failure(on_failure)
    tol, max_iter, max_cg = _check_budget(tol, max_iter, max_cg)
    game64 = game.astype(np.float64)  # solved and certified in float64
    A = game64.P - 0.5  # skew: same equilibrium, better-scaled numbers
    log_ref = np.log(game64.pi_ref)
    q, r, h, iterations, matvecs = _minimize_h(A, log_ref, beta, tol / 2, max_iter, max_cg)
    gaps = np.asarray(duality_gap(game64, q, beta, per_prompt=True))
    threshold = np.maximum(tol, rounding_floor(1.0, log_ref, beta))  # |A| <= 1/2
    missed = np.flatnonzero(gaps > threshold)
    if missed.size:
        it, mv = _rescue(A, log_ref, beta, q, r, h, missed, max_iter, symmetric=True)
        iterations, matvecs = iterations + it, matvecs + mv
        gaps = np.asarray(duality_gap(game64, q, beta, per_prompt=True))
    result = RegularizedNashResult(
        policy=q, duality_gap=float(game64.prompt_weights @ gaps), per_prompt_gap=gaps,
        converged=bool(np.all(gaps <= threshold)),
        iterations=iterations, matvecs=matvecs,
        seconds=time.perf_counter() - start, tol=tol,
    )
    return _finish("solve_regularized_nash", result, on_failure, beta)


def _check_budget(tol, max_iter, max_cg):
    """``tol`` > 0 finite, ``max_iter`` and ``max_cg`` integers >= 1."""
    tol = checked_real(tol, "tol", lambda v: math.isfinite(v) and v > 0, "be finite and > 0")
    return tol, positive_int(max_iter, "max_iter"), positive_int(max_cg, "max_cg")


def _finish(name, result, on_failure, beta):
    """Raise :class:`SolverError` for an uncertified result unless the caller asked for it."""
    if result.converged or on_failure == "return":
        return result
    raise SolverError(
        f"{name}: no certified equilibrium at beta={beta:g}: {result._shortfall()} after "
        f"{result.iterations} Newton iterations; raise max_iter, loosen tol, or pass "
        f"on_failure='return' to get the uncertified result (converged=False)", result)
