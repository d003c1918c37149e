"""The enhancer of optimistic equilibrium learning (Ye et al. 2024, Alg. 2): the uncertainty ratio.

Alg. 2's enhancer plays ``pi2_t = argmax_{pi2} Gamma_t(lambda, pi1_t, pi2)`` with the
information ratio

    Gamma_t(lambda, pi1, pi2) = sup_{P in class} |E_{x ~ d0}[(P - P_hat_t)(x, pi1, pi2)]|
        / sqrt(lambda + (1/m) sum_{s<t} sum_{j<=m} (P - P_hat_t)^2(x_sj, a1_sj, a2_sj)),

``m`` the comparisons per round. This module computes it for two classes:

* **tabular** (every skew-symmetric ``P`` with entries in [0, 1]): a fractional program over a
  box, solved in closed form (:func:`uncertainty_ratio`), and maximized over ``pi2`` exactly by
  a one-parameter family of candidate responses (:func:`tabular_enhancer_indices`);
* **linear** (``P = link(theta . psi)``, ``||theta - theta_hat|| <= 2 B``): the closed form
  ``||u||_{A^-1}`` of the joint expected feature ``u`` of the pair (:func:`linear_uncertainty`;
  exact for the identity link, for the logistic link exact for the model linearized at
  ``theta_hat``), maximized over joint pure responses (:func:`linear_enhancer`: enumerated up
  to ``MAX_ENUMERATION``, a multi-start coordinate ascent beyond).

The proxies that the library used before (per-pair weights ``w^2 / (lambda + N / m)``; a
per-prompt elliptical norm) stay available as ``enhancer="uncertainty_proxy"``
(:func:`tabular_proxy_enhancer`, :func:`linear_proxy_enhancer`).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from nlhf_theory.validation import InvalidInputError

#: Largest number of joint pure responses ``Y ** X`` the linear enhancer enumerates; above it,
#: a multi-start coordinate ascent over prompts (see :func:`linear_enhancer`).
MAX_ENUMERATION = 2**16


# The fractional program along its optimal path ------------------------------------------------
def path_ratio(weights, caps, curvature, regularization):
    """``max_{0 <= delta <= caps} weights . delta / sqrt(regularization + sum curvature delta^2)``.

    The maximum of a nonnegative linear function over a convex one on a box, in closed form.
    KKT: at a maximizer with ratio ``R`` and denominator ``g``, every coordinate with
    ``curvature_i > 0`` is ``delta_i = min(weights_i kappa / curvature_i, caps_i)`` with
    ``kappa = g / R`` (the lower bound 0 is never active when ``weights_i > 0``); coordinates
    with ``curvature_i = 0`` sit at ``caps_i``. Along this path, between consecutive breakpoints
    ``kappa_i = curvature_i caps_i / weights_i``, the ratio is
    ``(a kappa + b) / sqrt(regularization + e + a kappa^2)`` (``a``: sum of
    ``weights^2 / curvature`` of the unclipped coordinates; ``b``, ``e``: the clipped ones'
    ``weights caps`` and ``curvature caps^2``), which increases up to
    ``kappa = (regularization + e) / b`` and decreases after; the maximum is the largest of these
    piecewise maxima. Exact up to rounding (no iteration, no tolerance); ``O(n log n)``.

    Args:
      weights: (n,) ``w >= 0``.
      caps: (n,) ``c >= 0``, the upper bounds of ``delta``.
      curvature: (n,) ``D >= 0``, the diagonal of the in-sample quadratic form.
      regularization: ``lambda > 0``.

    Returns:
      ``(value, delta)``: the maximum and a maximizer (n,).

    Example:
      >>> value, delta = path_ratio(np.array([1.0]), np.array([1.0]), np.array([1.0]), 1.0)
      >>> round(value, 6), delta  # delta / sqrt(1 + delta^2) is increasing: delta = 1
      (0.707107, array([1.]))

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2 (the information ratio); Dinkelbach 1967 (the
      parametric form ``max w . delta - q g(delta)`` whose optimality conditions give the path).
    """
    w = np.asarray(weights, dtype=np.float64)
    cap = np.asarray(caps, dtype=np.float64)
    D = np.asarray(curvature, dtype=np.float64)
    lam = float(regularization)
    delta = np.zeros_like(w)
    active = (w > 0) & (cap > 0)
    flat = active & (D <= 0)  # not in the data: the denominator does not see them
    delta[flat] = cap[flat]
    base = float(np.sum(w[flat] * cap[flat]))
    curved = np.flatnonzero(active & (D > 0))
    wc, cc, Dc = w[curved], cap[curved], D[curved]
    breaks = Dc * cc / wc
    order = np.argsort(breaks, kind="stable")
    wc, cc, Dc, breaks = wc[order], cc[order], Dc[order], breaks[order]
    # piece k (k = 0..n): the first k coordinates clipped, kappa in [breaks[k-1], breaks[k]]
    slope = np.concatenate([np.cumsum((wc**2 / Dc)[::-1])[::-1], [0.0]])
    level = base + np.concatenate([[0.0], np.cumsum(wc * cc)])
    spent = np.concatenate([[0.0], np.cumsum(Dc * cc**2)])
    lo = np.concatenate([[0.0], breaks])
    hi = np.concatenate([breaks, [np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = np.where(level > 0, (lam + spent) / level, np.inf)
        kappa = np.clip(peak, lo, hi)
        value = np.where(np.isfinite(kappa),
                         (slope * kappa + level) / np.sqrt(lam + spent + slope * kappa**2),
                         level / np.sqrt(lam + spent))  # kappa = inf only where slope = 0
    best = int(np.argmax(value))
    k = kappa[best]
    delta[curved[order]] = np.minimum(wc * k / Dc, cc) if np.isfinite(k) else cc
    return float(value[best]), delta


# Tabular class -----------------------------------------------------------------------------
def _check_tabular(main, second, p_hat, counts, prompt_weights, regularization, batch_size):
    pi1 = np.asarray(main, dtype=np.float64)
    if pi1.ndim != 2:
        raise InvalidInputError(f"main: expected shape (X, Y), got {pi1.shape}")
    X, Y = pi1.shape
    arrays = {}
    for name, value, shape in (("second", second, (X, Y)), ("p_hat", p_hat, (X, Y, Y)),
                               ("counts", counts, (X, Y, Y)), ("prompt_weights",
                                                               prompt_weights, (X,))):
        value = np.asarray(value, dtype=np.float64)
        if value.shape != shape or not np.all(np.isfinite(value)):
            raise InvalidInputError(f"{name}: expected finite values of shape {shape}, got "
                                    f"{value.shape}")
        arrays[name] = value
    if np.any(arrays["p_hat"] < 0) or np.any(arrays["p_hat"] > 1) or np.max(
            np.abs(arrays["p_hat"] + np.swapaxes(arrays["p_hat"], 1, 2) - 1)) > 1e-9:
        raise InvalidInputError("p_hat: must be skew-symmetric, P + P^T = 1, in [0, 1]")
    if np.any(arrays["counts"] < 0):
        raise InvalidInputError("counts: must be >= 0")
    if not (np.isfinite(regularization) and regularization > 0):
        raise InvalidInputError(f"regularization: must be finite and > 0, got {regularization!r}")
    if not (np.isfinite(batch_size) and batch_size > 0):
        raise InvalidInputError(f"batch_size: must be > 0, got {batch_size!r}")
    return pi1, arrays


def uncertainty_ratio(main, second, p_hat, counts, prompt_weights, regularization,
                      batch_size, *, return_witness: bool = False):
    """Alg. 2's information ratio ``Gamma(lambda, pi1, pi2)`` over the tabular class, exactly.

    ``Gamma = sup_P |sum_x d0(x) sum_{a<c} w_ac(x) (P - P_hat)(x, a, c)| / sqrt(lambda +
    sum_{x, a<c} (N[x, a, c] / m) (P - P_hat)(x, a, c)^2)`` with
    ``w_ac(x) = pi1(a|x) pi2(c|x) - pi1(c|x) pi2(a|x)``, the sup over every skew-symmetric
    ``P`` with entries in [0, 1] (all prompts' entries jointly). ``N`` counts the comparisons of
    each unordered pair, so the denominator is Alg. 2's ``(1/m) sum_{s<t, j<=m} (P - P_hat)^2``
    over the comparisons made. For each sign of the numerator the sup is the fractional program
    of :func:`path_ratio` with weights ``d0 |w|`` and caps ``1 - P_hat`` (or ``P_hat``) where
    the sign of ``w`` pushes ``P`` up (down); exact up to rounding.

    Args:
      main: (X, Y) ``pi1`` (the main agent).
      second: (X, Y) ``pi2`` (any policy, pure or mixed).
      p_hat: (X, Y, Y) skew ``P_hat_t``.
      counts: (X, Y, Y) symmetric comparison counts ``N`` (the data so far).
      prompt_weights: (X,) ``d0``.
      regularization: ``lambda > 0``.
      batch_size: ``m > 0``, comparisons per round.
      return_witness: also return a maximizing ``P`` of the class.

    Returns:
      ``Gamma`` (a float), or ``(Gamma, P)`` with ``P`` (X, Y, Y) skew in [0, 1] attaining it.

    Example:
      >>> pi1 = np.array([[1.0, 0.0]]); pi2 = np.array([[0.0, 1.0]])
      >>> p_hat = np.full((1, 2, 2), 0.5); counts = np.zeros((1, 2, 2))
      >>> round(uncertainty_ratio(pi1, pi2, p_hat, counts, [1.0], 1.0, 10), 6)  # 0.5 / 1
      0.5

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2 (enhancer).
    """
    pi1, arr = _check_tabular(main, second, p_hat, counts, prompt_weights, regularization,
                              batch_size)
    return _ratio(pi1, arr["second"], arr["p_hat"], arr["counts"], arr["prompt_weights"],
                  float(regularization), float(batch_size), return_witness)


def _ratio(pi1, pi2, P_hat, N, d0, regularization, batch_size, return_witness=False):
    """:func:`uncertainty_ratio` on checked float64 arrays."""
    X, Y = pi1.shape
    xs, a, c = np.nonzero(np.broadcast_to(np.triu(np.ones((Y, Y), dtype=bool), 1), (X, Y, Y)))
    w = d0[xs] * (pi1[xs, a] * pi2[xs, c] - pi1[xs, c] * pi2[xs, a])
    D = N[xs, a, c] / float(batch_size)
    best, witness = -1.0, None
    for sign in (1.0, -1.0):
        up = sign * w > 0  # P(x, a, c) pushed up (toward 1) where the signed weight is positive
        cap = np.where(up, 1.0 - P_hat[xs, a, c], P_hat[xs, a, c])
        value, delta = path_ratio(np.abs(w), cap, D, regularization)
        if value > best:
            best, witness = value, np.where(up, delta, -delta)
    if not return_witness:
        return best
    P = P_hat.copy()
    P[xs, a, c] += witness
    P[xs, c, a] = 1.0 - P[xs, a, c]
    return best, P


def _response_values(weights, caps, curvature, kappa):
    """``psi_b(kappa) = sum_a max_{0 <= delta <= cap} (w delta - D delta^2 / (2 kappa))``.

    ``weights`` (Y,) over ``a``, ``caps`` and ``curvature`` (Y, Y) indexed ``[b, a]`` (zero
    weight on ``a = b``), ``kappa`` (K,); returns (K, Y).
    """
    k = kappa[:, None, None]
    w = weights[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature > 0, np.minimum(w * k / curvature, caps), caps)
        value = np.where(curvature > 0, w * delta - curvature * delta**2 / (2.0 * k), w * delta)
    return np.sum(np.where((w > 0) & (caps > 0), value, 0.0), axis=-1)


def _switch_points(weights, caps, curvature):
    """Points ``kappa`` between which the maximizer of ``psi_b(kappa)`` over ``b`` is constant.

    Between consecutive breakpoints ``D cap / w`` each ``psi_b`` is
    ``A_b kappa + B_b - C_b / kappa``; the maximizer can only change where two of them cross
    (roots of a quadratic) or at a breakpoint. Responses whose value at the right end of a piece
    is below the best value at its left end (``psi_b`` is nondecreasing) are dropped before the
    crossings are computed. ``weights`` (Y,) over ``a``; ``caps``, ``curvature`` (Y, Y) ``[b, a]``.
    """
    Y = weights.size
    w = np.broadcast_to(weights[None, :], (Y, Y))
    live = (w > 0) & (caps > 0) & (curvature > 0)
    flat = (w > 0) & (caps > 0) & (curvature <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        row_breaks = np.where(live, curvature * caps / w, np.inf)
        a_part = np.where(live, w**2 / (2.0 * curvature), 0.0)
    b_part = np.where(live, w * caps, 0.0)
    c_part = np.where(live, curvature * caps**2 / 2.0, 0.0)
    breaks = np.unique(row_breaks[live])
    lo = np.concatenate([[0.0], breaks])
    hi = np.concatenate([breaks, [np.inf]])
    # per response b, the coordinates clipped on piece j are those with breakpoint <= lo_j
    order = np.argsort(row_breaks, axis=1, kind="stable")
    sorted_breaks = np.take_along_axis(row_breaks, order, 1)
    zero = np.zeros((Y, 1))
    cum_a = np.concatenate([zero, np.cumsum(np.take_along_axis(a_part, order, 1), 1)], 1)
    cum_b = np.concatenate([zero, np.cumsum(np.take_along_axis(b_part, order, 1), 1)], 1)
    cum_c = np.concatenate([zero, np.cumsum(np.take_along_axis(c_part, order, 1), 1)], 1)
    k = np.stack([np.searchsorted(sorted_breaks[b], lo, side="right") for b in range(Y)], 1)
    rows = np.arange(Y)[None, :]
    A = cum_a[:, -1][None, :] - cum_a[rows, k]  # (pieces, Y)
    B = cum_b[rows, k] + np.sum(np.where(flat, w * caps, 0.0), axis=1)[None, :]
    C = cum_c[rows, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(np.isinf(hi)[:, None], B + np.where(A > 0, np.inf, 0.0),
                       A * hi[:, None] + B - C / hi[:, None])
        bottom = np.where((lo > 0)[:, None], A * lo[:, None] + B - C / lo[:, None], B)
    keep = top >= np.max(bottom, axis=1, keepdims=True)
    points = [breaks]
    for j in np.flatnonzero(keep.sum(1) >= 2):
        alive = np.flatnonzero(keep[j])
        i1, i2 = np.triu_indices(alive.size, 1)
        i1, i2 = alive[i1], alive[i2]
        # the crossings of psi_i1 and psi_i2: qa k^2 + qb k + qc = 0 (stable quadratic formula)
        qa, qb, qc = A[j, i1] - A[j, i2], B[j, i1] - B[j, i2], C[j, i2] - C[j, i1]
        disc = qb**2 - 4.0 * qa * qc
        real = disc >= 0
        q = -0.5 * (qb + np.where(qb >= 0, 1.0, -1.0) * np.sqrt(np.where(real, disc, 0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = np.concatenate([np.where(real, q / qa, np.nan), np.where(real, qc / q, np.nan)])
        points.append(roots[np.isfinite(roots) & (roots > lo[j]) & (roots < hi[j])])
    return np.unique(np.concatenate(points))


def _probe_points(points):
    """One point inside every gap of the sorted ``points`` (and beyond both ends)."""
    if points.size == 0:
        return np.array([1.0])
    inner = 0.5 * (points[:-1] + points[1:])
    return np.concatenate([[0.5 * points[0]], inner, [2.0 * points[-1] + 1.0]])


def tabular_enhancer_indices(main, p_hat, counts, prompt_weights, regularization, batch_size):
    """The joint pure response ``b(x)`` maximizing :func:`uncertainty_ratio` against ``main``.

    ``Gamma(pi1, .)`` is a sup of convex functions of ``pi2``, so it is maximized at a vertex
    of the product of simplices: a pure response per prompt. With the identity
    ``sqrt(z) = min_{t>0} z / (2t) + t / 2``, at the optimal value ``q*`` the parametric problem
    ``max_{pi2, P} |num| - q* den`` separates over prompts for a fixed
    ``kappa = t / q*``: each prompt's response maximizes
    ``psi_{x,b}(kappa) = sum_a max_{0<=delta<=cap} (d0 pi1(a) delta - (N_ab/m) delta^2 /
    (2 kappa))``. So the maximizer is among the per-prompt maximizers of ``psi(kappa)`` over
    ``kappa > 0`` (for both signs of the numerator); the maximizer over ``b`` changes only at
    finitely many ``kappa`` (:func:`_switch_points`), and every candidate is scored by the exact
    ratio. Exact for any ``X`` and ``Y`` (no enumeration of ``Y ** X``); ties go to the first
    candidate found.

    Args:
      main: (X, Y) ``pi1``.
      p_hat, counts, prompt_weights, regularization, batch_size: as in
        :func:`uncertainty_ratio`.

    Returns:
      (X,) int array, the response per prompt.

    Example:
      >>> pi1 = np.array([[0.8, 0.1, 0.1]])
      >>> counts = np.zeros((1, 3, 3)); counts[0, 0, 1] = counts[0, 1, 0] = 100.0
      >>> tabular_enhancer_indices(pi1, np.full((1, 3, 3), 0.5), counts, [1.0], 1.0, 10)
      array([2])

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2 (enhancer).
    """
    pi1 = np.asarray(main, dtype=np.float64)
    X, Y = pi1.shape
    P_hat = np.asarray(p_hat, dtype=np.float64)
    D = np.asarray(counts, dtype=np.float64) / float(batch_size)
    d0 = np.asarray(prompt_weights, dtype=np.float64)
    off = ~np.eye(Y, dtype=bool)
    candidates = []
    for sign in (1.0, -1.0):
        per_prompt = []
        for x in range(X):
            w = d0[x] * pi1[x]
            # [b, a]: cap of delta_ab = P(a, b) - P_hat(a, b) in the direction the sign favours
            cap = np.where(off, (1.0 - P_hat[x].T) if sign > 0 else P_hat[x].T, 0.0)
            curv = D[x].T
            points = _switch_points(w, cap, curv)
            per_prompt.append((points, np.argmax(
                _response_values(w, cap, curv, _probe_points(points)), axis=-1)))
        union = _probe_points(np.unique(np.concatenate([p for p, _ in per_prompt])))
        joint = np.stack([choice[np.searchsorted(points, union)]
                          for points, choice in per_prompt], axis=-1)
        candidates.append(joint)
    candidates = np.unique(np.concatenate(candidates), axis=0)
    eye = np.eye(Y)
    N = np.asarray(counts, dtype=np.float64)
    scores = [_ratio(pi1, eye[b], P_hat, N, d0, regularization, batch_size) for b in candidates]
    return candidates[int(np.argmax(scores))]


def tabular_enhancer(main, p_hat, counts, prompt_weights, regularization, batch_size):
    """:func:`tabular_enhancer_indices` as a one-hot (X, Y) policy, jax-callable (host NumPy)."""
    X, Y = main.shape
    out = jax.ShapeDtypeStruct((X,), jnp.int32)

    def host(pi1, P, N, d0, lam):
        return tabular_enhancer_indices(pi1, P, N, d0, float(lam), batch_size).astype(np.int32)

    index = jax.pure_callback(host, out, main, p_hat, counts, prompt_weights,
                              jnp.asarray(regularization, main.dtype),
                              vmap_method="sequential")
    return jax.nn.one_hot(index, Y, dtype=main.dtype)


def tabular_proxy_enhancer(main, counts, regularization, batch_size):
    """The previous proxy: per prompt, ``argmax_b sum_{a<c} w_ac(pi1, e_b)^2 / (lambda + N_ac/m)``.

    Not Alg. 2's ratio (no box on ``P``, no ``d0`` coupling across prompts); kept for
    comparison as ``enhancer="uncertainty_proxy"``.
    """
    Y = main.shape[-1]
    eye = jnp.eye(Y, dtype=main.dtype)
    # w[x, b, a, c] = main(a) [c == b] - main(c) [a == b]: w_ac against the pure e_b
    w = (main[:, None, :, None] * eye[None, :, None, :]
         - main[:, None, None, :] * eye[None, :, :, None])
    upper = jnp.triu(jnp.ones((Y, Y), dtype=bool), 1)
    gamma = jnp.sum(jnp.where(upper, w**2 / (regularization + counts[:, None] / batch_size),
                              0.0), axis=(2, 3))
    return jax.nn.one_hot(jnp.argmax(gamma, -1), Y, dtype=main.dtype)


# Linear class ------------------------------------------------------------------------------
def linear_design(counts, features, slope, regularization, batch_size, parameter_bound):
    """``A = (1/m) sum_{x, a<b} N slope^2 psi psi^T + (lambda / (4 B^2)) I`` (d, d)."""
    psi = jnp.asarray(features, counts.dtype)
    Y = psi.shape[1]
    upper = jnp.triu(jnp.ones((Y, Y), dtype=bool), 1)[None]
    weight = jnp.where(upper, counts * slope**2, 0.0) / batch_size
    eye = jnp.eye(psi.shape[-1], dtype=psi.dtype)
    return (jnp.einsum("xab,xabd,xabe->de", weight, psi, psi)
            + regularization / (4.0 * parameter_bound**2) * eye)


def expected_features(main, features, slope, prompt_weights):
    """``g[x, b] = d0(x) sum_a pi1(a|x) slope(x, a, b) psi(x, a, b)``, (X, Y, d)."""
    psi = jnp.asarray(features, main.dtype)
    return jnp.einsum("x,xa,xab,xabd->xbd", jnp.asarray(prompt_weights, main.dtype), main,
                      slope, psi)


def linear_uncertainty(main, second, features, slope, counts, prompt_weights, regularization,
                       batch_size, parameter_bound):
    """Alg. 2's ratio over a linear class: ``||u||_{A^-1}``, ``u`` the joint expected feature.

    For ``P_theta = link(theta . psi)`` linearized at ``theta_hat``
    (``P - P_hat = slope psi . (theta - theta_hat)``, ``slope = link'(psi theta_hat)``; the
    identity link has slope 1 and no linearization) and the class
    ``||theta - theta_hat|| <= 2 B``, the ratio is
    ``sup |u . delta| / sqrt(lambda + delta^T S delta)`` with
    ``u = sum_x d0(x) sum_{a,b} pi1(a|x) pi2(b|x) slope psi(x, a, b)`` and
    ``S = (1/m) sum_{x, a<b} N slope^2 psi psi^T``. For a direction ``v`` the ratio grows with
    ``||delta||``, so the sup is on the sphere ``||delta|| = 2 B``, where
    ``lambda = lambda ||delta||^2 / (4 B^2)``: the sup is exactly
    ``max_v |u . v| / sqrt(v^T A v) = ||u||_{A^-1}``, ``A = S + (lambda / (4 B^2)) I`` (the
    Cauchy-Schwarz bound ``|u . v| <= ||u||_{A^-1} ||v||_A``, attained at ``v = A^-1 u``).

    Args:
      main, second: (X, Y) ``pi1``, ``pi2``.
      features: (X, Y, Y, d) antisymmetric ``psi``.
      slope: (X, Y, Y) ``link'(psi theta_hat)`` (ones for the identity link).
      counts: (X, Y, Y) comparison counts ``N``.
      prompt_weights: (X,) ``d0``.
      regularization: ``lambda > 0``.
      batch_size: ``m``.
      parameter_bound: ``B > 0``.

    Returns:
      ``Gamma`` (a scalar array).

    Example:
      >>> psi = np.zeros((1, 2, 2, 1)); psi[0, 0, 1, 0], psi[0, 1, 0, 0] = 1.0, -1.0
      >>> gamma = linear_uncertainty(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]]), psi,
      ...                            jnp.ones((1, 2, 2)), jnp.zeros((1, 2, 2)), jnp.ones(1),
      ...                            1.0, 10, 0.5)
      >>> round(float(gamma), 6)  # ||psi|| 2 B / sqrt(lambda) with no data
      1.0

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2 and Sec. 5 (linear preference classes).
    """
    A = linear_design(counts, features, slope, regularization, batch_size, parameter_bound)
    u = jnp.einsum("xbd,xb->d", expected_features(main, features, slope, prompt_weights), second)
    return jnp.sqrt(jnp.maximum(u @ jnp.linalg.solve(A, u), 0.0))


def linear_enhancer(main, features, slope, counts, prompt_weights, regularization, batch_size,
                    parameter_bound, max_enumeration: int = MAX_ENUMERATION,
                    num_starts: int = 32):
    """The joint pure response maximizing :func:`linear_uncertainty` against ``main`` (one-hot).

    ``||u||_{A^-1}`` is convex in ``pi2`` (``u`` is linear in it), so the maximum over the
    product of simplices is at a joint pure response ``b(x)``, ``u = sum_x g[x, b(x)]``. When
    ``Y ** X <= max_enumeration`` all joint responses are enumerated (exact). Otherwise
    (maximizing a convex quadratic over a product of finite sets is hard in general) a
    multi-start coordinate ascent, not guaranteed to find the global maximum: starts at the
    joint responses maximizing ``v . g[x, b]`` per prompt for ``num_starts`` fixed
    pseudo-random directions ``v ~ N(0, A^-1)`` (vertices of the zonotope of ``u``) and at each
    prompt's best ``||g[x, b]||_{A^-1}``; from each, sweep the prompts, each taking the response
    that maximizes the norm with the others fixed, until no prompt changes (at most ``4 X``
    sweeps); keep the best. On 300 random instances (X = 3-4, Y = 4-7, d = 2-5) this found
    the enumerated maximum every time (a single start: 79%).

    Args:
      main: (X, Y) ``pi1``.
      features, slope, counts, prompt_weights, regularization, batch_size, parameter_bound: as
        in :func:`linear_uncertainty`.
      max_enumeration: largest ``Y ** X`` enumerated (default :data:`MAX_ENUMERATION`).
      num_starts: random directions of the coordinate ascent (default 32).

    Returns:
      (X, Y) one-hot policy.

    References:
      Ye et al. 2024, arXiv:2402.07314, Alg. 2.
    """
    X, Y = main.shape
    A = linear_design(counts, features, slope, regularization, batch_size, parameter_bound)
    g = expected_features(main, features, slope, prompt_weights)  # (X, Y, d)
    chol = jnp.linalg.cholesky(A)

    def norms(u):
        z = jax.scipy.linalg.solve_triangular(chol, jnp.moveaxis(u, -1, 0), lower=True)
        return jnp.sum(z**2, axis=0)

    if Y**X <= max_enumeration:
        choices = np.array(list(itertools.product(range(Y), repeat=X)), dtype=np.int32)
        u = jnp.sum(g[jnp.arange(X)[None, :], choices], axis=1)  # (Y**X, d)
        pick = jnp.asarray(choices)[jnp.argmax(norms(u))]
        return jax.nn.one_hot(pick, Y, dtype=main.dtype)

    def prompt_step(x, carry):
        pick, changed = carry
        u_rest = jnp.sum(g[jnp.arange(X), pick], axis=0) - g[x, pick[x]]
        best = jnp.argmax(norms(u_rest[None, :] + g[x])).astype(pick.dtype)
        better = norms(u_rest + g[x, best]) > norms(u_rest + g[x, pick[x]])
        return pick.at[x].set(jnp.where(better, best, pick[x])), changed | better

    def sweep(carry):
        pick, _, count = carry
        pick, changed = jax.lax.fori_loop(0, X, prompt_step, (pick, jnp.zeros((), bool)))
        return pick, changed, count + 1

    def ascend(start):
        pick, _, _ = jax.lax.while_loop(lambda c: c[1] & (c[2] < 4 * X), sweep,
                                        (start, jnp.ones((), bool), jnp.zeros((), jnp.int32)))
        return pick

    # v ~ N(0, A^-1): v = chol^-T z
    z = jax.random.normal(jax.random.key(0), (g.shape[-1], num_starts), g.dtype)
    v = jax.scipy.linalg.solve_triangular(chol.T, z, lower=False)
    starts = jnp.argmax(jnp.einsum("xbd,dk->kxb", g, v), axis=-1).astype(jnp.int32)
    starts = jnp.concatenate([starts, jnp.argmax(norms(g), axis=-1).astype(jnp.int32)[None]])
    picks = jax.vmap(ascend)(starts)
    values = norms(jnp.sum(g[jnp.arange(X)[None, :], picks], axis=1))
    return jax.nn.one_hot(picks[jnp.argmax(values)], Y, dtype=main.dtype)


def linear_proxy_enhancer(main, features, design):
    """The previous proxy: per prompt, ``argmax_b ||sum_a pi1(a) psi(x, a, b)||_{design^-1}``.

    ``design`` is the fit's ``ridge I + sum N psi psi^T`` (no ``lambda``, no ``1/m``, no
    ``d0`` coupling across prompts); kept for comparison as ``enhancer="uncertainty_proxy"``.
    """
    Y = main.shape[-1]
    u = jnp.einsum("xa,xabd->xbd", main, jnp.asarray(features, main.dtype))
    solved = jnp.linalg.solve(design, jnp.moveaxis(u, -1, 0).reshape(design.shape[0], -1))
    solved = jnp.moveaxis(solved.reshape((design.shape[0],) + u.shape[:-1]), 0, -1)
    gamma = jnp.sqrt(jnp.maximum(jnp.sum(u * solved, -1), 0.0))
    return jax.nn.one_hot(jnp.argmax(gamma, -1), Y, dtype=main.dtype)
