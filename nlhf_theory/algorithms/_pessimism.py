"""Pessimistic equilibrium learning (Ye et al. 2024, Alg. 1): the version-space max-min.

Algorithm 1 returns ``pi_hat = argmax_{pi1} V(pi1)`` with

    V(pi1) = min_{pi2} min_{P in C} E_x[ P(x, pi1, pi2) - beta KL(pi1 || pi_ref)
                                          + beta KL(pi2 || pi_ref) ],

the minimum over the preference taken *jointly* with the opponent, so every candidate ``P``
respects ``P + P^T = 1`` (self-play ``P(pi, pi) = 1/2`` is certain and never penalized).
Everything here is host-side float64 NumPy; :func:`~nlhf_theory.algorithms.pessimistic_nlhf`
calls :func:`pessimistic_policy` through ``jax.pure_callback``.

What is exact and what is a surrogate:

* the version spaces ``C`` (:class:`TabularSpace`: ``sum N (theta - theta_hat)^2 <= r^2``
  and ``P`` in [0, 1]; :class:`LinearSpace`, identity link: ``||theta - theta_hat||_Sigma <=
  r``) and the minimum of ``P(pi1, pi2)`` over them for a pair of policies: exact. The radius
  ``r`` (:func:`confidence_radius`, :func:`noise_radius`) makes ``P* in C`` with probability
  ``>= 1 - delta`` (Hsu, Kakade & Zhang's tail bound; for a ridge, plus its bias).
* logistic link: a valid lower bound of that minimum, pair by pair (:class:`LinearSpace`),
  over a valid ellipsoid (:func:`logistic_ellipsoid`, or the global ``kappa``).
* the outer maximization: certified to ``tol`` (an upper bound from dual weights, valid
  whatever the inner solver returns); the inner minimum over the opponent: a multi-start DC
  algorithm, global whenever :func:`certify_inner` (branch and bound, one prompt) was run to
  check it, not certified in general;
* ``bonus="vertex"``: a valid surrogate (the secant of the concave pair minimum over the
  opponent's simplex), solved exactly; ``"entrywise"``: the former bound.

Structure used throughout [derived]. For every version space below the lower value of a pair
of policies is ``min_{eta in H} sum_x w(x) pi1(x)^T A_eta(x) pi2(x)`` with ``A_eta + A_eta^T = 1``
affine in an auxiliary variable ``eta`` ranging over a set ``H`` (the preference parameter, or
the orientation of each pair). Hence

* the opponent's best response to a fixed ``eta`` is the softmin
  ``pi2 ∝ pi_ref exp(-A_eta^T pi1 / beta)`` (closed form), and the lower value is concave in
  ``pi2`` (a minimum of linear functions): the inner problem ``min_{pi2}`` is a difference of
  convex functions, solved by alternating the two exact block minimizations (a DC algorithm)
  from several starts;
* ``V`` is concave in ``pi1`` (a minimum of concave functions), and for a fixed atom
  ``(pi2, eta)`` the objective is ``-beta KL(pi1) + pi1 . g + c``; the outer maximization is
  solved by cutting planes: the master ``max_{pi1} min_j L_j(pi1)`` over the atoms found is the
  convex dual ``min_{lambda in simplex} sum_x d0 beta log E_ref exp(sum_j lambda_j g_j / beta)
  + lambda . c``, whose value at *any* ``lambda`` upper-bounds ``max V``; ``V`` at the master's
  ``pi1`` lower-bounds it. The returned ``gap`` is their difference.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy import special

from nlhf_theory.equilibria import kl_game_max_policy
from nlhf_theory.estimation import fit_linear_preference_host
from nlhf_theory.validation import InvalidInputError

BONUSES = ("joint", "vertex", "entrywise")
#: Largest number of responses for which ``bonus="auto"`` solves the joint max-min.
MAX_EXACT_RESPONSES = 6


# Confidence radius ----------------------------------------------------------------------------
def confidence_radius(dimension: float, delta: float, ridge: float = 0.0,
                      norm_bound: float = 0.0) -> float:
    """Radius ``r`` of the least-squares confidence ellipsoid ``||theta - theta_hat||_Sigma <= r``.

    ``r = (1/2) sqrt(d + 2 sqrt(d log(1/delta)) + 2 log(1/delta)) + sqrt(ridge) norm_bound``.
    Conditionally on the compared pairs the labels are independent, and ``label - P`` is
    sub-Gaussian with variance proxy 1/4 (Hoeffding's lemma). The least-squares error in the
    design norm is ``||A eps||`` with ``A^T A = Psi Sigma^-1 Psi^T`` (a projection of rank
    ``d`` without ridge, eigenvalues in [0, 1) with it), so Hsu, Kakade and Zhang's tail bound
    for quadratic forms gives the first term with probability >= 1 - delta; the ridge adds its
    bias ``lambda ||Sigma^-1/2 theta*|| <= sqrt(lambda) ||theta*||``. In the tabular model
    (one-hot pair features, ``Sigma = diag(N)``, no ridge) ``d`` is the number of compared
    pairs.

    Args:
      dimension: ``d`` >= 0, the rank of the design.
      delta: failure probability in (0, 1).
      ridge: ``lambda`` >= 0 of the design ``Sigma = lambda I + sum_i psi_i psi_i^T``.
      norm_bound: ``S`` >= 0, an assumed bound ``||theta*||_2 <= S`` (only with a ridge).

    Returns:
      ``r`` (a float).

    Example:
      >>> round(confidence_radius(10, 0.05), 3)  # sqrt(10 + 2 sqrt(10 ln 20) + 2 ln 20) / 2
      2.595

    References:
      Hsu, Kakade & Zhang 2012, arXiv:1110.2842, Thm. 1 (quadratic forms of sub-Gaussian
      vectors); Ye et al. 2024, arXiv:2402.07314, Alg. 1 (the version space).
    """
    if not (0.0 < delta < 1.0):
        raise InvalidInputError(f"delta: must lie in (0, 1), got {delta!r}")
    if dimension < 0 or ridge < 0 or norm_bound < 0:
        raise InvalidInputError("dimension, ridge, norm_bound: must be >= 0")
    t = math.log(1.0 / delta)
    noise = 0.5 * math.sqrt(dimension + 2.0 * math.sqrt(dimension * t) + 2.0 * t)
    return noise + math.sqrt(ridge) * norm_bound


def noise_radius(gram, delta: float) -> float:
    """``r`` with ``||sum_i eps_i psi_i||_{H^-1} <= r`` with probability ``>= 1 - delta``, for
    independent centred labels ``eps_i`` (sub-Gaussian, variance proxy 1/4).

    ``r = (1/2) sqrt(tr B + 2 sqrt(||B||_F^2 log(1/delta)) + 2 ||B|| log(1/delta))`` with
    ``B = H^-1/2 (sum_i psi_i psi_i^T) H^-1/2`` (``gram``), Hsu, Kakade and Zhang's bound for
    the quadratic form ``eps^T Psi H^-1 Psi^T eps``; with ``B`` a rank-``d`` projection it is
    :func:`confidence_radius`.

    References:
      Hsu, Kakade & Zhang 2012, arXiv:1110.2842, Thm. 1.
    """
    B = np.asarray(gram, np.float64)
    eig = np.clip(np.linalg.eigvalsh(0.5 * (B + B.T)), 0.0, None)
    t = math.log(1.0 / delta)
    return 0.5 * math.sqrt(eig.sum() + 2.0 * math.sqrt(float(np.sum(eig**2)) * t)
                           + 2.0 * float(eig.max(initial=0.0)) * t)


def logistic_ellipsoid(radius: float, max_norm: float) -> tuple[float, float]:
    """``(rho, ratio)``: a radius of the logistic confidence ellipsoid in the Hessian norm.

    With ``H = lambda I + sum_i sigma'(z_hat_i) psi_i psi_i^T`` the ridge Hessian at
    ``theta_hat``, ``||xi||_{H^-1} <= radius`` for the score ``xi`` at ``theta*``, and
    ``m = max_i ||psi_i||_{H^-1}`` over the compared pairs: every ``rho`` with
    ``rho exp(-rho m) > radius`` gives ``||theta* - theta_hat||_H <= rho`` [derived: the score is
    monotone along the segment from ``theta_hat`` to ``theta*``, and within the ``rho``-ball
    its Jacobian is ``>= exp(-rho m) H`` because ``|sigma''| <= sigma'`` gives
    ``sigma'(z + t) >= sigma'(z) exp(-|t|)`` (the self-concordance argument of Faury et al.)].
    Returns the smallest such ``rho`` (relative precision 1e-12) and the curvature ratio
    ``kappa = exp(-rho m)``; ``(inf, 0)`` when ``radius >= 1 / (e m)`` (no such ``rho``).

    References:
      Faury, Abeille, Calauzènes & Fercoq 2020, arXiv:2002.07530, Sec. 3 (self-concordance
      of the logistic loss); Li, Lu & Zhou 2017, arXiv:1703.00048 (GLM confidence sets).
    """
    if max_norm <= 0:
        return float(radius), 1.0
    top = 1.0 / max_norm                              # rho exp(-rho m) peaks at rho = 1/m
    if radius * math.e * max_norm >= 1.0:
        return float("inf"), 0.0
    lo, hi = 0.0, top
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid * math.exp(-mid * max_norm) > radius:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return float(hi), math.exp(-hi * max_norm)


# Version spaces ---------------------------------------------------------------------------------
def _upper(Y):
    return np.triu(np.ones((Y, Y), dtype=bool), 1)


def _skew_matrix(C):
    """``A = 1/2 + C - C^T`` from a strictly upper-triangular ``C`` (last two axes)."""
    return 0.5 + C - np.swapaxes(C, -1, -2)


def _pair_weights(pi1, pi2, w):
    """``W[b, x, a, c] = w[b, x] (pi1(a|x) pi2_b(c|x) - pi1(c|x) pi2_b(a|x))`` for ``a < c``."""
    outer = pi1[None, :, :, None] * pi2[:, :, None, :]
    W = w[:, :, None, None] * (outer - np.swapaxes(outer, -1, -2))
    return np.where(_upper(pi1.shape[-1]), W, 0.0)


def _box_ellipsoid(Psi, theta_hat, N, corner, radius):
    """``argmin theta . Psi`` s.t. ``sum N (theta - theta_hat)^2 <= radius^2`` and
    ``|theta| <= 1/2`` (all ``N > 0``), exactly, for a batch ``Psi`` (B, K).

    KKT: ``theta_k(mu) = clip(theta_hat_k - Psi_k / (2 mu N_k), -1/2, 1/2)``; coordinate ``k``
    sits at its corner ``-sign(Psi_k) / 2`` for ``mu < mu_k = |Psi_k| / (2 N_k |corner_k -
    theta_hat_k|)``. Between consecutive breakpoints the constraint reads ``D + S / (4 mu^2) =
    radius^2`` (``D``: clipped distances, ``S = sum Psi_k^2 / N_k`` over the others), solved in
    closed form; ``mu = 0`` (all corners) when the corners lie inside the ellipsoid.
    """
    gap = np.abs(corner - theta_hat)
    clipped_dist = N * gap**2                              # D_k once clipped
    free = Psi**2 / N                                      # S_k while free
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_k = np.where(gap > 0, np.abs(Psi) / (2.0 * N * gap), np.inf)
    mu_k = np.where(Psi == 0, 0.0, mu_k)                   # Psi_k = 0: stays at theta_hat
    order = np.argsort(-mu_k, axis=-1)                     # largest breakpoint first
    m = np.take_along_axis(mu_k, order, -1)
    Dk = np.take_along_axis(clipped_dist, order, -1)
    Sk = np.take_along_axis(free, order, -1)
    B, K = Psi.shape
    # segment j: mu in [m_j, m_{j-1}) (m_{-1} = inf): coordinates j..K-1 free, 0..j-1 clipped
    S_free = np.concatenate([np.cumsum(Sk[:, ::-1], -1)[:, ::-1], np.zeros((B, 1))], -1)
    D_clip = np.concatenate([np.zeros((B, 1)), np.cumsum(Dk, -1)], -1)         # (B, K+1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.sqrt(S_free / (4.0 * (radius**2 - D_clip)))
    upper = np.concatenate([np.full((B, 1), np.inf), m], -1)                   # m_{j-1}
    lower = np.concatenate([m, np.zeros((B, 1))], -1)                          # m_j
    ok = (radius**2 - D_clip > 0) & (S_free > 0) & (mu >= lower) & (mu <= upper)
    j = np.argmax(ok, -1)
    mu_star = np.where(ok.any(-1), mu[np.arange(B), j], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = theta_hat - Psi / (2.0 * mu_star[:, None] * N)
    return np.where(mu_star[:, None] > 0, np.clip(step, -0.5, 0.5), corner)


class TabularSpace:
    """The tabular version space: ``P(x, a, b) = 1/2 + theta_xab`` for ``a < b``, with
    ``sum_{x, a<b} N_xab (theta_xab - theta_hat_xab)^2 <= r^2`` and ``theta in [-1/2, 1/2]``
    (``P`` in [0, 1]; pairs never compared are constrained by the box only).

    The minimum of the linear function ``theta . Psi`` over this set is exact: by the KKT
    conditions ``theta_k = clip(theta_hat_k - Psi_k / (2 mu N_k), -1/2, 1/2)`` with the
    multiplier ``mu`` found by bisection (64 halvings of ``log mu``, on the side where the
    returned value is <= the minimum), and ``theta_k = -sign(Psi_k) / 2`` where ``N_k = 0``.
    """

    def __init__(self, p_hat, counts, radius):
        p_hat = np.asarray(p_hat, np.float64)
        self.X, self.Y = p_hat.shape[:2]
        up = _upper(self.Y)[None]
        self.theta_hat = np.where(up, p_hat - 0.5, 0.0)
        self.counts = np.where(up, np.asarray(counts, np.float64), 0.0)
        self.radius = float(radius)

    def minimize_linear(self, Psi):
        """``argmin_theta theta . Psi`` over the set, for a batch ``Psi`` (B, X, Y, Y)."""
        B = Psi.shape[0]
        flat = Psi.reshape(B, -1)
        th = self.theta_hat.reshape(-1)
        N = self.counts.reshape(-1)
        seen = N > 0
        corner = np.where(flat == 0, th, -0.5 * np.sign(flat))  # Psi_k = 0: theta_hat_k
        theta = np.where(seen, th, corner)
        if self.radius <= 0 or not seen.any():
            return theta.reshape(Psi.shape)
        Ns = N[seen]
        ps, ts, cs = flat[:, seen], th[seen], corner[:, seen]
        theta[:, seen] = _box_ellipsoid(ps, ts, Ns, cs, self.radius)
        return theta.reshape(Psi.shape)

    def pair(self, pi1, pi2, w):
        """Lower values ``min_{P in C} sum_x w(x) P(x, pi1, pi2_b)`` (B,) and the minimizing
        ``C`` (B, X, Y, Y) (strictly upper) with ``A = 1/2 + C - C^T``."""
        W = _pair_weights(pi1, pi2, w)
        theta = self.minimize_linear(W)
        return 0.5 * w.sum(-1) + np.sum(theta * W, (1, 2, 3)), theta

    def entrywise(self, delta, confidence=1.0):
        """Hoeffding lower bound per pair (the former bound): ``P_hat - confidence
        sqrt(log(2 X Y^2 / delta) / (2 N))``, 0 for pairs never compared, clipped to [0, 1]."""
        N = self.counts + np.swapaxes(self.counts, 1, 2)
        P = self.theta_hat - np.swapaxes(self.theta_hat, 1, 2) + 0.5
        rad = confidence * np.sqrt(math.log(2.0 * self.X * self.Y**2 / delta)
                                   / (2.0 * np.where(N > 0, N, 1)))
        low = np.where(N > 0, P - rad, 0.0)
        return np.where(np.eye(self.Y, dtype=bool)[None], 0.5, np.clip(low, 0.0, 1.0))


class LinearSpace:
    """Linear version space ``{theta : ||theta - theta_hat||_Sigma <= rho}`` of the model
    ``P_theta = link(theta . psi)``.

    Identity link (``P = 1/2 + theta . psi``): the minimum over the ellipsoid of
    ``P_theta(pi1, pi2) = 1/2 + theta . Psi``, ``Psi = E_x psi(x, pi1, pi2)``, is exactly
    ``1/2 + theta_hat . Psi - rho ||Psi||_{Sigma^-1}`` (``P`` is not clipped to [0, 1]: the
    bound stays valid, only looser).

    Logistic link: a valid lower bound taken pair by pair, orientation-consistent [derived].
    ``P(pi1, pi2) = 1/2 + sum_{a<b} w_ab (sigma(z_ab) - 1/2)`` with
    ``w_ab = E_x[pi1(a) pi2(b) - pi1(b) pi2(a)]``-terms per prompt, and on the ellipsoid
    ``|z_ab - z_hat_ab| <= b_ab = rho ||psi_ab||_{Sigma^-1}``, so each term is at least
    ``w_ab (sigma(z_hat_ab - b_ab) - 1/2)`` if ``w_ab > 0`` and
    ``w_ab (sigma(z_hat_ab + b_ab) - 1/2)`` otherwise: exact at self-play (``w = 0``), never
    below the trivial bound, and concave in ``pi2`` (a minimum of two linear functions per
    pair). It is looser than the joint minimum (each pair takes its own worst case).
    """

    def __init__(self, features, theta_hat, design, radius, link="identity"):
        self.psi = np.asarray(features, np.float64)
        self.X, self.Y = self.psi.shape[:2]
        self.theta_hat = np.asarray(theta_hat, np.float64)
        self.design = np.asarray(design, np.float64)
        self.chol = np.linalg.cholesky(self.design)
        self.radius = float(radius)
        self.link = link
        z = self.psi @ self.theta_hat
        self.z_hat = z
        self.norm2 = np.sum(self._whiten(self.psi) ** 2, -1)  # ||psi||^2_{Sigma^-1}
        up = _upper(self.Y)[None]
        self.base = np.where(up, z, 0.0)                       # identity: theta_hat . psi
        if link == "logistic":
            b = self.radius * np.sqrt(self.norm2)
            self.low = np.where(up, special.expit(z - b) - 0.5, 0.0)
            self.high = np.where(up, special.expit(z + b) - 0.5, 0.0)

    def _whiten(self, v):
        """``L^-1 v`` over the last axis (``Sigma = L L^T``): ``||v||_{Sigma^-1} = ||L^-1 v||``."""
        shape = v.shape
        flat = v.reshape(-1, shape[-1]).T
        return np.linalg.solve(self.chol, flat).T.reshape(shape)

    def _solve(self, v):
        flat = v.reshape(-1, v.shape[-1]).T
        y = np.linalg.solve(self.chol, flat)
        return np.linalg.solve(self.chol.T, y).T.reshape(v.shape)

    def pair(self, pi1, pi2, w):
        W = _pair_weights(pi1, pi2, w)
        if self.link == "logistic":
            C = np.where(W > 0, self.low[None], self.high[None])
            C = np.where(_upper(self.Y), C, 0.0)
            return 0.5 * w.sum(-1) + np.sum(W * C, (1, 2, 3)), C
        Psi = np.einsum("bxac,xacd->bd", W, self.psi)
        norm = np.sqrt(np.maximum(np.sum(self._whiten(Psi) ** 2, -1), 0.0))
        safe = np.where(norm > 0, norm, 1.0)
        shift = np.where(norm[:, None] > 0, -self.radius * self._solve(Psi) / safe[:, None], 0.0)
        C = self.base[None] + np.einsum("xacd,bd->bxac", self.psi, shift)
        C = np.where(_upper(self.Y), C, 0.0)
        value = 0.5 * w.sum(-1) + np.sum(W * self.base[None], (1, 2, 3)) - self.radius * norm
        return value, C

    def entrywise(self, radius):
        """Entrywise lower bound ``link(z_hat - radius ||psi||_{Sigma^-1})`` (identity link:
        ``P_hat - radius ||psi||``), diagonal 1/2, clipped to [0, 1]."""
        low = self.z_hat - radius * np.sqrt(self.norm2)
        P = 0.5 + low if self.link == "identity" else special.expit(low)
        return np.where(np.eye(self.Y, dtype=bool)[None], 0.5, np.clip(P, 0.0, 1.0))


# The max-min --------------------------------------------------------------------------------------
def _lse(z):
    """``log sum exp`` over the last axis (NumPy, without scipy's overhead)."""
    top = np.max(z, -1, keepdims=True)
    return np.log(np.sum(np.exp(z - top), -1)) + top[..., 0]


def _kl(p, log_ref):
    return np.sum(p * (np.log(np.maximum(p, 1e-300)) - log_ref), -1)


def _softmin(A, pi1, log_ref, beta):
    """The opponent's best response ``pi2 ∝ pi_ref exp(-A^T pi1 / beta)`` per prompt."""
    logits = log_ref - np.einsum("...xac,xa->...xc", A, pi1) / beta
    return np.exp(logits - _lse(logits)[..., None])


class Atom(NamedTuple):
    """A min-player choice ``(pi2, A)``: the cut ``L(pi1) = sum_x d0 [-beta KL(pi1) +
    pi1 . g] + c`` with ``g = A pi2`` (X, Y) and ``c = sum_x d0 beta KL(pi2)``."""

    g: Any
    c: float
    pi2: Any


def _atom(A, pi2, d0, log_ref, beta):
    g = np.einsum("xac,xc->xa", A, pi2)
    return Atom(g, float(d0 @ (beta * _kl(pi2, log_ref))), pi2)


def inner_minimum(space, pi1, d0, log_ref, beta, *, starts=None, tol=1e-14, max_iter=1000):
    """``V(pi1) = min_{pi2} [sum_x d0 (-beta KL(pi1) + beta KL(pi2)) + min_{P in C} P(pi1, pi2)]``
    by the DC algorithm from several starts (the pure responses, self-play, ``pi_ref`` and
    ``starts``): returns ``(value, atoms)``, the atoms of the local minima found, best first.
    """
    X, Y = pi1.shape
    eye = np.eye(Y)
    cands = [np.broadcast_to(eye[b], (X, Y)) for b in range(Y)]            # pure responses
    cands += [np.broadcast_to(0.5 * (eye[a] + eye[b]), (X, Y))             # and their pairs
              for a in range(Y) for b in range(a + 1, Y)]
    rng = np.random.default_rng(0)                                         # fixed: deterministic
    cands += list(rng.dirichlet(np.ones(Y), size=(2 * Y, X)))
    cands += [pi1, np.exp(log_ref)]
    if starts is not None:
        cands += list(starts)
    pi2 = np.clip(np.stack(cands).astype(np.float64), 0.0, 1.0)
    w = np.broadcast_to(d0, (pi2.shape[0], X))
    kl1 = float(d0 @ (beta * _kl(pi1, log_ref)))
    h_prev = np.full(pi2.shape[0], np.inf)
    active = np.ones(pi2.shape[0], dtype=bool)
    calm = np.zeros(pi2.shape[0], dtype=int)       # consecutive steps without decrease
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        value, C = space.pair(pi1, pi2[idx], w[idx])
        h = value + beta * (_kl(pi2[idx], log_ref) @ d0)
        new = _softmin(_skew_matrix(C), pi1, log_ref, beta)
        flat = h_prev[idx] - h <= tol * (1.0 + np.abs(h))
        calm[idx] = np.where(flat, calm[idx] + 1, 0)
        done = flat & ((np.max(np.abs(new - pi2[idx]), (-2, -1)) < 1e-9) | (calm[idx] >= 50))
        # a start creeping along a saddle far above a minimum already found is dropped
        excess = h - np.min(np.where(active, np.inf, h_prev))
        stuck = (it >= 30) & (excess > 1e-9) & (h_prev[idx] - h < 1e-2 * excess)
        h_prev[idx] = h
        pi2[idx[~done]] = new[~done]
        active[idx[done | stuck]] = False
        idx = np.flatnonzero(active)                  # merge starts that have met
        if len(idx) > 1:
            flat = pi2[idx].reshape(len(idx), -1)
            close = np.max(np.abs(flat[:, None] - flat[None]), -1) < 1e-6
            first = np.argmax(close, -1)              # the earliest start each one has met
            active[idx[first != np.arange(len(idx))]] = False
        if not active.any():
            break
    value, C = space.pair(pi1, pi2, w)
    A = _skew_matrix(C)
    h = value + beta * (_kl(pi2, log_ref) @ d0)
    order = np.argsort(h)
    atoms, seen = [], []
    for i in order:
        if any(np.max(np.abs(pi2[i] - s)) < 1e-5 for s in seen):
            continue
        seen.append(pi2[i])
        atoms.append(_atom(A[i], pi2[i], d0, log_ref, beta))
    return float(h[order[0]] - kl1), atoms


def vertex_minimum(space, pi1, d0, log_ref, beta):
    """The vertex surrogate ``V_vertex(pi1) <= V(pi1)``: the concave lower value is replaced
    by its secant over the simplex, ``min_{P in C} P(pi1, pi2) >= sum_x d0(x) sum_b pi2(b|x)
    min_{P in C} P(x; pi1, e_b)`` (each pure opponent at each prompt gets its own worst case),
    after which the opponent's minimum is a closed-form softmin. Returns ``(value, [atom])``.
    """
    X, Y = pi1.shape
    pi2 = np.broadcast_to(np.full((X, Y), 1.0 / Y), (X * Y, X, Y)).copy()
    w = np.zeros((X * Y, X))
    for x in range(X):
        pi2[x * Y:(x + 1) * Y, x] = np.eye(Y)
        w[x * Y:(x + 1) * Y, x] = 1.0
    low, C = space.pair(pi1, pi2, w)
    A = _skew_matrix(C)                                    # (X * Y, X, Y, Y)
    cols = np.empty((X, Y, Y))
    for x in range(X):
        for b in range(Y):
            cols[x, :, b] = A[x * Y + b, x, :, b]
    low = low.reshape(X, Y)
    best = special.softmax(log_ref - low / beta, axis=-1)
    soft = -beta * special.logsumexp(log_ref - low / beta, axis=-1)
    value = float(d0 @ (soft - beta * _kl(pi1, log_ref)))
    return value, [_atom(cols, best, d0, log_ref, beta)]


def _dual_bound(G, c, d0, log_ref, beta, lam):
    """``F(lambda) = sum_x d0 beta log E_ref exp(G lambda / beta) + c . lambda`` (an upper
    bound on ``max_{pi1} min_j L_j(pi1)`` for every ``lambda`` in the simplex, by weak
    duality) and the max player's ``pi1(lambda) = softmax(log pi_ref + G lambda / beta)``."""
    logits = log_ref + (G @ lam) / beta
    lse = _lse(logits)
    return float(d0 @ (beta * lse)) + float(c @ lam), np.exp(logits - lse[:, None])


def _master(atoms, d0, log_ref, beta, lam0, eps0, tol=1e-13, max_newton=40):
    """``min_{lambda in simplex} F(lambda)`` (:func:`_dual_bound`), the dual of the master
    ``max_{pi1} min_j L_j(pi1)``: Newton steps on the entropy-regularized
    ``F(lambda) + eps sum_j lambda_j log lambda_j`` (strictly convex, so degenerate atom sets
    are harmless; within ``eps log J`` of ``min F``) for ``eps`` decreasing from ``eps0`` to
    ``tol / log J``, atoms whose weight falls below 1e-12 leaving the support. Returns
    ``lambda``, the upper bound ``F(lambda)`` on ``max V`` (valid at any ``lambda``) and
    ``pi1(lambda)``."""
    Gall = np.stack([a.g for a in atoms], -1)          # (X, Y, J)
    call = np.array([a.c for a in atoms])
    J0 = len(atoms)
    lam = np.maximum(np.asarray(lam0, np.float64), 0.0)
    lam = lam / lam.sum() if lam.sum() > 0 else np.full(J0, 1.0 / J0)
    keep = np.arange(J0)
    eps = max(float(eps0), tol)
    while True:
        G, c, J = Gall[:, :, keep], call[keep], len(keep)
        lam = np.maximum(lam, 1e-300)
        lam /= lam.sum()

        def objective(v):
            return _dual_bound(G, c, d0, log_ref, beta, v)[0] + eps * float(v @ np.log(v))

        for _ in range(max_newton if J > 1 else 0):
            _, pi1 = _dual_bound(G, c, d0, log_ref, beta, lam)
            mean = np.einsum("xa,xaj->xj", pi1, G)
            g = d0 @ mean + c + eps * (np.log(lam) + 1.0)
            H = (np.einsum("x,xa,xaj,xak->jk", d0, pi1, G, G)
                 - np.einsum("x,xj,xk->jk", d0, mean, mean)) / beta
            H[np.arange(J), np.arange(J)] += eps / lam
            kkt = np.block([[H, np.ones((J, 1))], [np.ones((1, J)), np.zeros((1, 1))]])
            try:
                d = np.linalg.solve(kkt, np.concatenate([-g, [0.0]]))[:-1]
            except np.linalg.LinAlgError:
                d = np.linalg.lstsq(kkt, np.concatenate([-g, [0.0]]), rcond=None)[0][:-1]
            decrement = -float(g @ d)
            if decrement <= 1e-2 * tol:
                break
            neg = d < 0
            t = min(1.0, 0.95 * float(np.min(lam[neg] / -d[neg]))) if neg.any() else 1.0
            f0 = objective(lam)
            while t > 1e-16:
                trial = np.maximum(lam + t * d, 1e-300)
                trial /= trial.sum()
                if objective(trial) <= f0 - 1e-4 * t * decrement:
                    break
                t *= 0.5
            else:
                break
            lam = trial
        alive = lam > 1e-12                               # atoms that left the support
        keep, lam = keep[alive], lam[alive]
        if eps * math.log(max(J, 2)) <= tol:
            break
        eps *= 0.01
    full = np.zeros(J0)
    full[keep] = lam / lam.sum()
    value, pi1 = _dual_bound(Gall, call, d0, log_ref, beta, full)
    return full, value, pi1


class MaxMinResult(NamedTuple):
    """Result of the pessimistic max-min.

    Attributes:
      policy: (X, Y) ``pi_hat``, the maximizer (the best iterate).
      value: ``V(pi_hat)``, the pessimistic value reached (a lower bound on ``max V`` when the
        inner minimum is global).
      upper: an upper bound on ``max V`` (the master's value).
      gap: ``upper - value``.
      iterations: outer iterations.
      opponent: (X, Y) the opponent's minimizing policy at ``pi_hat``.
    """

    policy: Any
    value: float
    upper: float
    gap: float
    iterations: int
    opponent: Any


def solve_max_min(space, log_ref, d0, beta, *, bonus="joint", tol=1e-9, max_iter=200,
                  start=None, prox=0.0) -> MaxMinResult:
    """``max_{pi1} V(pi1)`` by a proximal bundle (cutting-plane) method, with the inner
    minimum of ``bonus="joint"`` (DC algorithm, multi-start) or ``"vertex"`` (closed form).

    Each iteration maximizes the cutting-plane model ``min_j L_j(pi1)`` minus
    ``prox beta KL(pi1 || center)`` (the dual :func:`_master` with ``beta + prox beta`` and the
    reference ``∝ pi_ref^(1/(1+prox)) center^(prox/(1+prox))``), evaluates ``V`` there and
    moves the center when ``V`` rises by at least a tenth of the model's predicted rise. The
    dual weights of the step give a certified upper bound ``F(lambda) >= max V``; the loop
    stops when it is within ``tol`` of the best value reached (relative to the value when
    that exceeds 1 in magnitude).

    Args:
      space: a :class:`TabularSpace` or :class:`LinearSpace`.
      log_ref: (X, Y) ``log pi_ref``.
      d0: (X,) prompt weights.
      beta: KL coefficient > 0.
      bonus: ``"joint"`` or ``"vertex"``.
      tol: target gap.
      max_iter: outer iterations.
      start: (X, Y) first policy (default ``pi_ref``).
      prox: weight of the proximal term (0: plain cutting planes, the default).

    Returns:
      A :class:`MaxMinResult`.

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 1.
    """
    log_ref = np.asarray(log_ref, np.float64)
    d0 = np.asarray(d0, np.float64)
    center = np.exp(log_ref) if start is None else np.asarray(start, np.float64)

    def evaluate(pi1, atoms, lam):
        if bonus == "vertex":
            return vertex_minimum(space, pi1, d0, log_ref, beta)
        starts = [a.pi2 for a, w in zip(atoms, lam) if w > 1e-9]
        return inner_minimum(space, pi1, d0, log_ref, beta, starts=starts)

    def add(new, atoms, born, lam, it):
        new = [a for a in new[:center.shape[1]] if not any(
            np.max(np.abs(a.g - b.g)) < 1e-12 and abs(a.c - b.c) < 1e-12 for b in atoms)]
        return (atoms + new, born + [it] * len(new),
                np.concatenate([lam, np.full(len(new), 1e-3)]))

    v_center, new = evaluate(center, [], [])
    best = (v_center, center, new[0].pi2)
    atoms, born, lam = add(new, [], [], np.zeros(0), 0)
    upper, it, eps0 = np.inf, 0, 1e-5
    for it in range(1, max_iter + 1):
        mix = np.log(np.maximum(center, 1e-300))
        shifted = (log_ref + prox * mix) / (1.0 + prox)
        shifted = shifted - _lse(shifted)[:, None]
        lam, _, pi1 = _master(atoms, d0, shifted, beta * (1.0 + prox), lam, eps0)
        G = np.stack([a.g for a in atoms], -1)
        c = np.array([a.c for a in atoms])
        upper = min(upper, _dual_bound(G, c, d0, log_ref, beta, lam)[0])
        if upper - best[0] <= tol * max(1.0, abs(best[0])):
            break
        ell = np.einsum("x,xa,xaj->j", d0, pi1, G) + c
        predicted = float(ell.min()) - float(d0 @ (beta * _kl(pi1, log_ref)))
        value, new = evaluate(pi1, atoms, lam)
        if value > best[0]:
            best = (value, pi1, new[0].pi2)
        if value - v_center >= 0.1 * (predicted - v_center):     # serious step
            center, v_center = pi1, value
        atoms, born, lam = add(new, atoms, born, lam, it)
        keep = (lam > 1e-9) | (np.array(born) > it - 10)          # drop long-idle atoms
        atoms = [a for a, k in zip(atoms, keep) if k]
        born = [b for b, k in zip(born, keep) if k]
        lam = lam[keep]
    return MaxMinResult(best[1], float(best[0]), float(upper), float(upper - best[0]), it,
                        best[2])


# Certificate of the inner minimum (one prompt) ------------------------------------------------
def certify_inner(space, pi1, log_ref, beta, *, tol=1e-6, max_nodes=200000):
    """Branch and bound lower bound on ``min_{pi2} h(pi2)``, ``h = beta KL(pi2) + min_{P in C}
    P(pi1, pi2)``, for one prompt.

    On a sub-simplex with vertices ``v_j``, ``h`` is bounded below by the tangent plane of
    ``beta KL`` at the centroid plus the secant of the concave lower value through the ``v_j``
    (valid: concave functions lie above their secants); both are affine, so the bound is the
    minimum over the vertices. Sub-simplices are split at the midpoint of their longest edge.
    Returns ``(lower, upper)`` with ``upper`` the best value of ``h`` evaluated; stops when
    ``upper - lower <= tol`` or after ``max_nodes`` nodes.
    """
    X, Y = pi1.shape
    if X != 1:
        raise InvalidInputError("pi1: the certificate handles one prompt")

    def h(points):  # (B, Y)
        value, _ = space.pair(pi1, points[:, None, :], np.ones((len(points), 1)))
        return value + beta * _kl(points, log_ref[0])

    def lower_value(points):
        value, _ = space.pair(pi1, points[:, None, :], np.ones((len(points), 1)))
        return value

    simplices = np.eye(Y)[None]                         # (S, Y+... vertices, Y)
    vert_low = lower_value(np.eye(Y))[None]              # (S, Y)
    upper = float(np.min(h(np.clip(np.eye(Y), 1e-300, 1))))
    pruned = np.inf
    nodes = 0
    while len(simplices) and nodes < max_nodes:
        center = simplices.mean(1)                       # (S, Y)
        upper = min(upper, float(np.min(h(center))))
        grad = beta * (np.log(center) - log_ref[0] + 1.0)
        kl_c = beta * _kl(center, log_ref[0])
        tangent = kl_c[:, None] + np.einsum("sy,svy->sv", grad, simplices - center[:, None])
        bound = np.min(tangent + vert_low, -1)
        keep = bound < upper - tol
        nodes += len(simplices)
        if not keep.all():
            pruned = min(pruned, float(bound[~keep].min()))
        simplices, vert_low, bound = simplices[keep], vert_low[keep], bound[keep]
        if not len(simplices):
            break
        # split along the longest edge
        diff = simplices[:, :, None, :] - simplices[:, None, :, :]
        length = np.sum(diff**2, -1)
        flat = length.reshape(len(simplices), -1).argmax(-1)
        i, j = np.unravel_index(flat, (Y, Y))
        mid = 0.5 * (simplices[np.arange(len(i)), i] + simplices[np.arange(len(j)), j])
        mid_low = lower_value(mid)
        first, second = simplices.copy(), simplices.copy()
        low1, low2 = vert_low.copy(), vert_low.copy()
        first[np.arange(len(i)), i], low1[np.arange(len(i)), i] = mid, mid_low
        second[np.arange(len(j)), j], low2[np.arange(len(j)), j] = mid, mid_low
        simplices = np.concatenate([first, second])
        vert_low = np.concatenate([low1, low2])
    if len(simplices):  # node budget exhausted: the bound over the remaining simplices
        center = simplices.mean(1)
        grad = beta * (np.log(center) - log_ref[0] + 1.0)
        kl_c = beta * _kl(center, log_ref[0])
        tangent = kl_c[:, None] + np.einsum("sy,svy->sv", grad, simplices - center[:, None])
        return min(pruned, float(np.min(tangent + vert_low))), upper
    return min(pruned, upper), upper


# The learner --------------------------------------------------------------------------------------
class PessimismResult(NamedTuple):
    """Pessimistic equilibrium learning on one dataset.

    Attributes:
      policy: (X, Y) ``pi_hat``.
      value: the pessimistic value ``V(pi_hat)`` (``"entrywise"``: the max player's guaranteed
        value in the game with payoff ``P_low``).
      upper: an upper bound on ``max V`` (``"entrywise"``: equal to ``value``).
      gap: ``upper - value``.
      iterations: outer iterations.
      radius: the radius used (``r`` of the ellipsoid; logistic: ``rho = r / kappa``; tabular
        entrywise: the Hoeffding constant ``sqrt(log(2 X Y^2 / delta) / 2)``).
      kappa: the logistic curvature bound (1 for the identity link).
      bonus: ``"joint"``, ``"vertex"`` or ``"entrywise"``.
      dimension: ``d`` of the radius (tabular: the number of compared pairs).
    """

    policy: Any
    value: float
    upper: float
    gap: float
    iterations: int
    radius: float
    kappa: float
    bonus: str
    dimension: int


def _entrywise_policy(Q, log_ref, beta):
    return kl_game_max_policy(np.asarray(Q, np.float64), log_ref, float(beta))


def pessimistic_policy(wins, counts, log_ref, prompt_weights, beta, *, bonus="joint",
                       confidence=1.0, delta=0.05, features=None, theta_hat=None, design=None,
                       link="logistic", ridge=1.0, norm_bound=1.0, tol=1e-9) -> PessimismResult:
    """Pessimistic equilibrium learning from comparison counts (Ye et al. 2024, Alg. 1).

    ``pi_hat = argmax_{pi1} min_{pi2} min_{P in C} E_x[P(x, pi1, pi2) - beta KL(pi1 || pi_ref)
    + beta KL(pi2 || pi_ref)]`` with the version space ``C`` of :class:`TabularSpace` (no
    ``features``) or :class:`LinearSpace`, of radius ``confidence * r``:

    * tabular and identity link: ``r = confidence_radius(d, delta, ridge, norm_bound)``
      (tabular: ``d`` compared pairs, no ridge), so ``P* in C`` with probability
      ``>= 1 - delta``;
    * identity link: ``r = noise_radius(B, delta) + sqrt(ridge) norm_bound`` with
      ``B = Sigma^-1/2 (sum_i psi_i psi_i^T) Sigma^-1/2`` (``<=`` :func:`confidence_radius`);
    * logistic link: the Hessian-norm ellipsoid of :func:`logistic_ellipsoid` (``kappa`` its
      curvature ratio), else ``r / kappa`` with the global
      ``kappa = sigma'(max ||psi|| max(norm_bound, ||theta_hat||))``.

    ``bonus``: ``"joint"`` the max-min solved with the exact version-space minimum per pair
    (identity link; logistic: the valid pair-by-pair bound of :class:`LinearSpace`),
    certified outer gap ``<= tol`` (the inner minimum by multi-start DC iterations);
    ``"vertex"`` the valid surrogate of :func:`vertex_minimum` (exact max-min of a lower
    bound); ``"entrywise"`` the former bound: the max player of the KL game with payoff
    ``P_low`` (tabular: Hoeffding ``P_hat - confidence sqrt(log(2 X Y^2 / delta) / (2 N))``;
    identity link: ``P_hat - confidence r_n ||psi||_{Sigma^-1}`` with
    ``r_n = sqrt(d log(1 + n / (lambda d)) + log(1 / delta))``; logistic: the valid
    ``sigma(z_hat - confidence rho ||psi||_{Sigma^-1})``).

    Args:
      wins, counts: (X, Y, Y) comparison statistics ``W``, ``N`` (``W + W^T = N``).
      log_ref: (X, Y) ``log pi_ref``.
      prompt_weights: (X,) ``d0``.
      beta: KL coefficient > 0.
      bonus: ``"joint"``, ``"vertex"`` or ``"entrywise"``.
      confidence: multiplier >= 0 of the radius (1: the radius of level ``1 - delta``).
      delta: failure probability in (0, 1).
      features: (X, Y, Y, d) antisymmetric features ``psi`` of a linear model, or None.
      theta_hat, design: the fit (default: :func:`fit_linear`).
      link: ``"logistic"`` or ``"identity"``.
      ridge: ``lambda`` > 0 of the linear fit.
      norm_bound: ``S``, the assumed ``||theta*||_2 <= S`` of the ridge bias term.
      tol: target certified gap of the max-min.

    Returns:
      A :class:`PessimismResult`.

    Example:
      >>> import numpy as np
      >>> N = np.array([[[0, 40, 40], [40, 0, 40], [40, 40, 0]]], float)
      >>> W = N * np.array([[[0.5, 0.3, 0.8], [0.7, 0.5, 0.4], [0.2, 0.6, 0.5]]])
      >>> res = pessimistic_policy(W, N, np.log(np.full((1, 3), 1 / 3)), np.ones(1), 0.1)
      >>> bool(res.gap <= 1e-9), res.policy.shape
      (True, (1, 3))

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 1 and Thm. 1; Hsu, Kakade & Zhang 2012,
      arXiv:1110.2842 (radius).
    """
    if bonus not in BONUSES:
        raise InvalidInputError(f"bonus: must be one of {BONUSES}, got {bonus!r}")
    W = np.asarray(wins, np.float64)
    N = np.asarray(counts, np.float64)
    log_ref = np.asarray(log_ref, np.float64)
    d0 = np.asarray(prompt_weights, np.float64)
    X, Y = log_ref.shape
    up = _upper(Y)[None]
    kappa = 1.0
    if features is None:
        p_hat = np.where(N > 0, W / np.where(N > 0, N, 1.0), 0.5)
        dim = int(np.sum(up & (N > 0)))
        if bonus == "entrywise":
            space = TabularSpace(p_hat, N, 0.0)
            radius = confidence * math.sqrt(math.log(2.0 * X * Y * Y / delta) / 2.0)
            policy = _entrywise_policy(space.entrywise(delta, confidence), log_ref, beta)
            return PessimismResult(policy, np.nan, np.nan, 0.0, 1, radius, kappa, bonus, dim)
        radius = confidence * confidence_radius(dim, delta)
        space = TabularSpace(p_hat, N, radius)
    else:
        psi = np.asarray(features, np.float64)
        dim = psi.shape[-1]
        if theta_hat is None or design is None:
            theta_hat, design = fit_linear_preference_host(W, N, psi, link, ridge)
        Nu = np.where(up, N, 0.0)
        gram = np.einsum("xab,xabd,xabe->de", Nu, psi, psi)          # sum_i psi_i psi_i^T
        if link == "logistic":  # the Hessian norm of the fit
            z = psi @ theta_hat
            slope = special.expit(z) * special.expit(-z)
            design = ridge * np.eye(dim) + np.einsum("xab,xabd,xabe->de", Nu * slope, psi, psi)
        root = np.linalg.cholesky(design)
        half = np.linalg.solve(root, np.linalg.solve(root, gram).T)   # L^-1 S L^-T
        base = noise_radius(half, delta) + math.sqrt(ridge) * norm_bound
        space = LinearSpace(psi, theta_hat, design, 0.0, link)
        if link == "logistic":
            seen = np.broadcast_to(up, N.shape) & (N > 0)
            m = float(np.sqrt(np.max(space.norm2[seen], initial=0.0)))
            radius, kappa = logistic_ellipsoid(base, m)
            if not np.isfinite(radius):  # too little data: the global kappa of ||theta*|| <= S
                theta_hat, design = fit_linear_preference_host(W, N, psi, link, ridge)
                u = float(np.sqrt(np.max(np.sum(psi**2, -1)))) * max(
                    norm_bound, float(np.linalg.norm(theta_hat)))
                kappa = float(special.expit(u) * special.expit(-u))
                radius = confidence_radius(dim, delta, ridge, norm_bound) / kappa
                space = LinearSpace(psi, theta_hat, design, 0.0, link)
            radius *= confidence
        else:
            radius = confidence * base
        if bonus == "entrywise":
            if link == "identity":
                n = float(np.sum(np.where(up, N, 0.0)))
                radius = confidence * math.sqrt(dim * math.log(1.0 + n / (ridge * dim))
                                                + math.log(1.0 / delta))
            policy = _entrywise_policy(space.entrywise(radius), log_ref, beta)
            return PessimismResult(policy, np.nan, np.nan, 0.0, 1, radius, kappa, bonus, dim)
        space = LinearSpace(psi, theta_hat, space.design, radius, link)
    res = solve_max_min(space, log_ref, d0, beta, bonus=bonus, tol=tol)
    return PessimismResult(res.policy, res.value, res.upper, res.gap, res.iterations, radius,
                           kappa, bonus, dim)
