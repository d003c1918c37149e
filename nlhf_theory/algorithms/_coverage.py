"""Coverage of a target policy by comparison data under a linear preference model."""

from __future__ import annotations

import itertools

import numpy as np

from nlhf_theory._validation import (
    InvalidInputError,
    check_shape,
    check_simplex,
    float_array,
    prompt_distribution,
)

#: Largest number of deterministic opponents (``Y ** X``) enumerated.
MAX_OPPONENTS = 2**20


def expected_counts(behaviour, prompt_weights=None):
    """Population design of a behaviour policy: ``N[x, a, b] ∝ d0(x) 2 mu(a|x) mu(b|x)``.

    The expected counts of comparisons ``a, b ~ mu(. | x)`` per comparison drawn, symmetrized
    as the learners store them (``N[x, a, b] = N[x, b, a]``); the diagonal holds the ties
    ``a = b``, which carry no information.

    Args:
      behaviour: (X, Y) behaviour policy ``mu``.
      prompt_weights: (X,) ``d0`` (default uniform).

    Returns:
      (X, Y, Y) expected counts per comparison.

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 4 (offline data from a behaviour policy).
    """
    mu = float_array(behaviour, "behaviour").astype(np.float64)
    if mu.ndim != 2:
        raise InvalidInputError(f"behaviour: expected shape (X, Y), got {mu.shape}")
    mu = check_simplex(mu, "behaviour")
    d0 = prompt_distribution(prompt_weights, mu.shape[0], np.float64)
    pair = d0[:, None, None] * mu[:, :, None] * mu[:, None, :]
    return pair + np.swapaxes(pair, 1, 2)


def linear_coverage_coefficient(policy, features, counts, prompt_weights=None,
                                ridge: float = 0.0) -> float:
    """Unilateral coverage of ``policy`` under a linear preference model.

    ``C_lin = max_{pi2} || E_{x ~ d0} psi(x, pi, pi2) ||^2_{(Sigma_n / n)^{-1}}`` with
    ``psi(x, pi, pi2) = sum_{a, b} pi(a|x) pi2(b|x) psi(x, a, b)`` (``psi`` = ``features``),
    the design ``Sigma_n = ridge I + sum_{x, a<b} N[x, a, b] psi psi^T`` and
    ``n = sum_{x, a<b} N[x, a, b]`` (``N`` = ``counts``). The squared norm is convex in
    ``pi2``, so the maximum is at a deterministic opponent ``b(x)``; all ``Y ** X`` of them are
    enumerated. Infinite when the target's comparison leaves the span of the design (ridge 0).
    With one-hot pair features and one prompt it is the tabular
    :func:`~nlhf_theory.algorithms.coverage_coefficient`.

    Args:
      policy: (X, Y) target policy ``pi`` (e.g. the regularized equilibrium).
      features: (X, Y, Y, d) antisymmetric features ``psi``.
      counts: (X, Y, Y) symmetric comparison counts ``N`` (e.g. :func:`expected_counts`).
      prompt_weights: (X,) ``d0`` (default uniform).
      ridge: ``lambda`` >= 0 of the design.

    Returns:
      ``C_lin`` (a float, possibly ``inf``).

    References:
      Ye et al. 2024, arXiv:2402.07314, Thm. 1 (coverage coefficient); reference note
      ``nlhf_algorithms.md`` Sec. 1.2 (``C_lin`` of a d-dimensional linear class); Zhong et al.
      2022, arXiv:2202.07511 (unilateral coverage).
    """
    pi = check_simplex(float_array(policy, "policy").astype(np.float64), "policy")
    psi = float_array(features, "features").astype(np.float64)
    N = float_array(counts, "counts").astype(np.float64)
    if pi.ndim != 2:
        raise InvalidInputError(f"policy: expected shape (X, Y), got {pi.shape}")
    X, Y = pi.shape
    if psi.ndim != 4:
        raise InvalidInputError(f"features: expected shape (X, Y, Y, d), got {psi.shape}")
    check_shape(psi, "features", (X, Y, Y, psi.shape[-1]), "(X, Y, Y, d) matching policy")
    check_shape(N, "counts", (X, Y, Y), "(X, Y, Y) matching policy")
    if np.max(np.abs(psi + np.swapaxes(psi, 1, 2))) > 1e-9:
        raise InvalidInputError("features: must be antisymmetric, psi(x, y, y') = -psi(x, y', y)")
    if np.any(N < 0) or np.max(np.abs(N - np.swapaxes(N, 1, 2))) > 1e-9 * max(1.0, N.max()):
        raise InvalidInputError(
            "counts: must be nonnegative and symmetric, N[x, a, b] = N[x, b, a]")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise InvalidInputError(f"ridge: must be finite and >= 0, got {ridge!r}")
    if Y**X > MAX_OPPONENTS:
        raise InvalidInputError(
            f"policy: Y ** X = {Y}**{X} deterministic opponents exceed {MAX_OPPONENTS}")
    d0 = prompt_distribution(prompt_weights, X, np.float64)
    upper = np.triu(np.ones((Y, Y)), 1)[None]
    n = float(np.sum(upper * N))
    if n <= 0:
        raise InvalidInputError("counts: need at least one comparison of two distinct responses")
    design = (ridge * np.eye(psi.shape[-1])
              + np.einsum("xab,xabd,xabe->de", upper * N, psi, psi)) / n
    # v[x, b] = d0(x) sum_a pi(a|x) psi(x, a, b): the target against the pure e_b at prompt x
    v = d0[:, None, None] * np.einsum("xa,xabd->xbd", pi, psi)
    choices = np.array(list(itertools.product(range(Y), repeat=X)))
    u = v[np.arange(X)[None, :], choices].sum(axis=1)  # (Y**X, d)
    eigval, eigvec = np.linalg.eigh(design)
    scale = max(float(eigval.max()), 1e-300)
    kept = eigval > 1e-12 * scale
    coords = u @ eigvec
    outside = np.abs(coords[:, ~kept]).max(axis=1, initial=0.0)
    if np.any(outside > 1e-10 * max(1.0, float(np.abs(coords).max()))):
        return float("inf")
    return float(np.max(np.sum(coords[:, kept] ** 2 / eigval[kept], axis=1)))
