"""Bradley-Terry and linear-preference estimation from comparison counts, and coverage.

Comparisons enter every estimator through their sufficient statistics per prompt:
``N[x, a, b] = N[x, b, a]``, the number of comparisons of the pair ``{a, b}``, and
``W[x, a, b]``, the number won by ``a`` (``W + W^T = N`` off the diagonal;
:func:`dataset_counts` of a sample, :func:`expected_counts` of a population). On them:

* the tabular maximum-likelihood preference ``P_hat = W / N`` (:func:`mle_preference`);
* **the one fit**, :func:`fit_linear_preference`: ``P_theta = link(theta . psi(x, a, b))`` by
  ridge logistic regression (Newton's method) or ridge least squares. The Bradley-Terry reward
  ``r_theta(x, y) = theta . phi(x, y)`` is the case ``psi = phi(x, a) - phi(x, b)``
  (:func:`fit_bt_reward`), and :func:`bradley_terry_fit` is that fit with one-hot
  (tabular) features, validated and batched on the host;
* how well comparison data cover a target policy: the tabular :func:`coverage_coefficient`
  and its linear-model version :func:`linear_coverage_coefficient`.

Everything but the host-side functions (:func:`bradley_terry_fit`, :func:`expected_counts`,
:func:`check_features` and the two coverage coefficients, exact float64 NumPy) runs under
``jax.jit``/``vmap``; their shapes are checked at trace time and their values when concrete.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import expit as _expit

from nlhf_theory._arrays import float64_mode
from nlhf_theory.games import LINKS
from nlhf_theory.validation import (
    InvalidInputError,
    check_choice,
    check_shape,
    check_simplex,
    checked_real,
    float_array,
    positive,
    positive_int,
    prompt_distribution,
    traced,
    validation_tolerance,
)

__all__ = [
    "LINKS",
    "MAX_OPPONENTS",
    "LinearFit",
    "RewardFit",
    "bradley_terry_fit",
    "check_features",
    "coverage_coefficient",
    "dataset_counts",
    "elliptical_norm",
    "estimate",
    "expected_counts",
    "fit_bt_reward",
    "fit_linear_preference",
    "linear_coverage_coefficient",
    "mle_preference",
    "tabular_features",
]

#: Largest number of deterministic opponents (``Y ** X``) enumerated by
#: :func:`linear_coverage_coefficient`.
MAX_OPPONENTS = 2**20


# Shape checks (static: they hold under jit and vmap) -----------------------------------------
def _shape(value, name: str, ndim: int, layout: str) -> tuple:
    """The shape of ``value``; it must have ``ndim`` axes (``layout`` names them)."""
    shape = tuple(np.shape(value))
    if len(shape) != ndim:
        raise InvalidInputError(f"{name}: expected shape {layout}, got {shape}")
    return shape


def _statistics_shape(wins, counts) -> tuple:
    """``(X, Y)`` of comparison statistics: ``wins`` (X, Y, Y) and ``counts`` of its shape."""
    shape = _shape(wins, "wins", 3, "(X, Y, Y)")
    if shape[1] != shape[2]:
        raise InvalidInputError(f"wins: expected shape (X, Y, Y), got {shape}")
    if tuple(np.shape(counts)) != shape:
        raise InvalidInputError(f"counts: expected shape {shape} (the shape of wins), got "
                                f"{tuple(np.shape(counts))}")
    return shape[:2]


def _check_counts(counts: np.ndarray, name: str = "counts") -> None:
    """Concrete ``counts`` (..., Y, Y) must be >= 0 and symmetric (diagonal included)."""
    scale = max(1.0, float(counts.max(initial=0.0)))
    tol = validation_tolerance(counts.dtype) * scale
    if np.any(counts < 0) or np.any(np.abs(counts - np.swapaxes(counts, -1, -2)) > tol):
        raise InvalidInputError(f"{name}: must be >= 0 and symmetric, N[y, y'] = N[y', y]")


def _check_statistics(wins, counts) -> None:
    """Concrete ``(W, N)`` must satisfy ``N = N^T >= 0``, ``W >= 0`` and ``W + W^T = N`` off
    the diagonal (the diagonal, ties ``a = a``, is ignored by every estimator)."""
    W = float_array(wins, "wins")
    N = float_array(counts, "counts")
    off = ~np.eye(W.shape[-1], dtype=bool)
    W, N = np.where(off, W, 0.0), np.where(off, N, 0.0)
    _check_counts(N)
    tol = validation_tolerance(np.result_type(W, N)) * max(1.0, float(N.max(initial=0.0)))
    if np.any(W < -tol) or np.any(np.abs(W + np.swapaxes(W, -1, -2) - N) > tol):
        raise InvalidInputError("wins: must be >= 0 with W + W^T = counts off the diagonal")


# Sufficient statistics ------------------------------------------------------------------------
def dataset_counts(data, num_prompts, num_responses, dtype=jnp.float32):
    """Comparison statistics ``(W, N)`` of a dataset of labelled comparisons.

    ``W[x, a, b] = sum_i [x_i = x] (label_i [a, b = y_i, y'_i] + (1 - label_i) [a, b = y'_i,
    y_i])`` and ``N[x, a, b] = sum_i [x_i = x] ([a, b = y_i, y'_i] + [a, b = y'_i, y_i])``:
    ``label_i`` (``data.label``) is the weight of ``y_i`` (``data.y``) beating ``y'_i``
    (``data.y2``) at prompt ``x_i`` (``data.x``). Traceable (the indices are not checked).

    Args:
      data: a :class:`~nlhf_theory.algorithms.Dataset` ``(x, y, y2, label)``, four (n,) arrays.
      num_prompts: ``X``.
      num_responses: ``Y``.
      dtype: dtype of the statistics (default float32).

    Returns:
      ``(wins, counts)``, two (X, Y, Y) arrays.

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> data = (np.array([0, 0]), np.array([0, 1]), np.array([1, 2]), np.array([1.0, 0.0]))
      >>> wins, counts = estimation.dataset_counts(data, 1, 3)
      >>> np.asarray(wins[0]).tolist(), np.asarray(counts[0, 0]).tolist()
      ([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [0.0, 1.0, 0.0])

    References:
      Zhu, Jordan & Jiao 2023, arXiv:2301.11270, Sec. 3 (the BTL likelihood depends on the
      data through these counts).
    """
    if len(data) != 4:
        raise InvalidInputError(f"data: expected four arrays (x, y, y2, label), got {len(data)}")
    x, y, y2, label = data
    n = tuple(np.shape(x))
    for name, arr in zip(("x", "y", "y2", "label"), data):
        if len(n) != 1 or tuple(np.shape(arr)) != n:
            raise InvalidInputError(f"data.{name}: expected shape (n,) = {n}, got "
                                    f"{tuple(np.shape(arr))}")
    shape = (num_prompts, num_responses, num_responses)
    label = label.astype(dtype)
    wins = jnp.zeros(shape, dtype).at[x, y, y2].add(label).at[x, y2, y].add(1.0 - label)
    counts = jnp.zeros(shape, dtype).at[x, y, y2].add(1.0).at[x, y2, y].add(1.0)
    return wins, counts


def expected_counts(behaviour, prompt_weights=None):
    """Population design of a behaviour policy: ``N[x, a, b] ∝ d0(x) 2 mu(a|x) mu(b|x)``.

    The expected counts of comparisons ``a, b ~ mu(. | x)`` (``mu`` = ``behaviour``,
    ``d0`` = ``prompt_weights``) per comparison drawn, symmetrized as the learners store them
    (``N[x, a, b] = N[x, b, a]``); the diagonal holds the ties ``a = b``, which carry no
    information.

    Args:
      behaviour: (X, Y) behaviour policy ``mu``.
      prompt_weights: (X,) ``d0`` (default None: uniform).

    Returns:
      (X, Y, Y) float64 expected counts per comparison.

    Example:
      >>> from nlhf_theory import estimation
      >>> estimation.expected_counts([[0.5, 0.5]]).tolist()
      [[[0.5, 0.5], [0.5, 0.5]]]

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


def mle_preference(wins, counts, prior: float = 0.0):
    """Tabular estimate ``P_hat = (W + prior / 2) / (N + prior)``, 1/2 where nothing was seen.

    ``W`` = ``wins``, ``N`` = ``counts``; ``prior`` is a symmetric Beta pseudo-count per pair
    (0: the maximum-likelihood preference ``W / N``). Traceable.

    Args:
      wins: (X, Y, Y) ``W[x, a, b]``, comparisons of ``{a, b}`` won by ``a``.
      counts: (X, Y, Y) ``N[x, a, b] = N[x, b, a]``, comparisons of ``{a, b}``.
      prior: pseudo-count >= 0 (default 0).

    Returns:
      (X, Y, Y) estimated preference, skew (``P_hat + P_hat^T = 1`` where ``W + W^T = N``).

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> wins = np.array([[[0.0, 3.0], [1.0, 0.0]]])
      >>> counts = np.array([[[0.0, 4.0], [4.0, 0.0]]])
      >>> np.asarray(estimation.mle_preference(wins, counts)).tolist()
      [[[0.5, 0.75], [0.25, 0.5]]]

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 4 (the MLE and the equilibrium oracle).
    """
    _statistics_shape(wins, counts)
    total = counts + prior
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, (wins + 0.5 * prior) / safe, 0.5)


# The fit -------------------------------------------------------------------------------------
class LinearFit(NamedTuple):
    """A linear preference model fitted to comparison counts.

    Attributes:
      p_hat: (X, Y, Y) fitted preference ``link(psi theta)``.
      theta: (d,) fitted parameter.
      design: (d, d) ``lambda I + sum_{x, a<b} N[x, a, b] psi psi^T``.
      slope: (X, Y, Y) derivative of the link at ``psi theta`` (1 for the identity link).
    """

    p_hat: Any
    theta: Any
    design: Any
    slope: Any


def fit_linear_preference(wins, counts, features, link="logistic", ridge=1.0, steps=25):
    """Fit ``P_theta = link(theta . psi)`` to comparison counts (they are sufficient statistics).

    Logistic link: ``theta_hat = argmin_theta sum_{x, a<b} -[W log sigma(theta . psi) +
    (N - W) log sigma(-theta . psi)] + lambda ||theta||^2 / 2``, ridge-regularized maximum
    likelihood (logistic regression) by ``steps`` Newton iterations from ``theta = 0``;
    identity link: ridge least squares of the win frequencies ``W / N`` on ``1/2 + theta .
    psi`` (one Newton step is exact). ``W`` = ``wins``, ``N`` = ``counts``, ``psi`` =
    ``features``, ``lambda`` = ``ridge``. Each unordered pair ``a < b`` counts once; ``psi`` is
    antisymmetric, so the fit is skew by construction. Traceable; the one fit of the package
    (:func:`fit_bt_reward` and :func:`bradley_terry_fit` call it).

    Args:
      wins: (X, Y, Y) ``W[x, a, b]``, comparisons of ``{a, b}`` won by ``a``.
      counts: (X, Y, Y) ``N[x, a, b] = N[x, b, a]``, comparisons of ``{a, b}``.
      features: (X, Y, Y, d) antisymmetric features ``psi``.
      link: ``"logistic"`` (default) or ``"identity"``.
      ridge: ``lambda`` > 0 (default 1).
      steps: Newton iterations of the logistic link, >= 1 (default 25).

    Returns:
      A :class:`LinearFit` (fitted preference, parameter, design, link slope).

    Example:
      >>> import jax.numpy as jnp
      >>> from nlhf_theory import estimation
      >>> psi = jnp.array([[[[0.0], [1.0]], [[-1.0], [0.0]]]])  # psi(0, 1) = 1
      >>> wins = jnp.array([[[0.0, 75.0], [25.0, 0.0]]])
      >>> counts = jnp.array([[[0.0, 100.0], [100.0, 0.0]]])
      >>> fit = estimation.fit_linear_preference(wins, counts, psi, ridge=1e-6)
      >>> round(float(fit.p_hat[0, 0, 1]), 4), round(float(fit.theta[0]), 4)  # log 3
      (0.75, 1.0986)

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 5 (linear preference classes); Zhu, Jordan &
      Jiao 2023, arXiv:2301.11270, Sec. 3 (the MLE of the linear BTL model).
    """
    X, Y = _statistics_shape(wins, counts)
    shape = _shape(features, "features", 4, "(X, Y, Y, d)")
    if shape[:3] != (X, Y, Y):
        raise InvalidInputError(f"features: expected shape ({X}, {Y}, {Y}, d) matching wins, "
                                f"got {shape}")
    check_choice(link, "link", LINKS)
    if not traced(ridge):
        positive(ridge, "ridge")
    if not traced(steps):
        positive_int(steps, "steps")
    psi = jnp.asarray(features, wins.dtype)
    Y = psi.shape[1]
    upper = jnp.triu(jnp.ones((Y, Y), dtype=bool), 1)[None]
    N = jnp.where(upper, counts, 0.0)
    W = jnp.where(upper, wins, 0.0)
    eye = jnp.eye(psi.shape[-1], dtype=psi.dtype)

    def model(theta):
        z = psi @ theta
        if link == "identity":
            return 0.5 + z, jnp.ones_like(z)
        g = jax.nn.sigmoid(z)
        return g, g * (1.0 - g)

    def newton(_, theta):
        g, slope = model(theta)
        grad = ridge * theta - jnp.einsum("xab,xabd->d", W - N * g, psi)
        hess = ridge * eye + jnp.einsum("xab,xabd,xabe->de", N * slope, psi, psi)
        return theta - jnp.linalg.solve(hess, grad)

    theta = jax.lax.fori_loop(0, steps if link == "logistic" else 1, newton,
                              jnp.zeros(psi.shape[-1], psi.dtype))
    p_hat, slope = model(theta)
    design = ridge * eye + jnp.einsum("xab,xabd,xabe->de", N, psi, psi)
    return LinearFit(jnp.clip(p_hat, 0.0, 1.0), theta, design, slope)


def fit_linear_preference_host(wins, counts, features, link="logistic", ridge=1.0, steps=50):
    """``(theta_hat, design)`` of :func:`fit_linear_preference`, in float64 NumPy on the host.

    The same ridge fit of ``P = link(theta . psi)`` to comparison counts (logistic regression by
    ``steps`` Newton iterations, or ridge least squares for the identity link), with
    ``design = ridge I + sum_{x, a<b} N psi psi^T``, for code that runs outside jax (the
    pessimistic learner's host callbacks). It agrees with the jax fit to rounding
    (``tests/test_estimation.py``); note its default of 50 Newton steps.

    Args:
      wins, counts: (X, Y, Y) comparison statistics.
      features: (X, Y, Y, d) antisymmetric features ``psi``.
      link: ``"logistic"`` or ``"identity"``.
      ridge: ``lambda`` > 0.
      steps: Newton iterations (logistic link).

    Returns:
      ``(theta_hat, design)``: (d,) and (d, d) float64 arrays.
    """
    psi = np.asarray(features, np.float64)
    Y = psi.shape[1]
    up = np.triu(np.ones((Y, Y), dtype=bool), 1)[None]
    N = np.where(up, np.asarray(counts, np.float64), 0.0)
    W = np.where(up, np.asarray(wins, np.float64), 0.0)
    eye = np.eye(psi.shape[-1])
    design = ridge * eye + np.einsum("xab,xabd,xabe->de", N, psi, psi)
    theta = np.zeros(psi.shape[-1])
    for _ in range(steps if link == "logistic" else 1):
        z = psi @ theta
        g, slope = (0.5 + z, np.ones_like(z)) if link == "identity" else (
            _expit(z), _expit(z) * _expit(-z))
        grad = ridge * theta - np.einsum("xab,xabd->d", W - N * g, psi)
        hess = ridge * eye + np.einsum("xab,xabd,xabe->de", N * slope, psi, psi)
        theta = theta - np.linalg.solve(hess, grad)
    return theta, design


def check_features(features, link, ridge):
    """Validate the arguments of a linear preference model on the host (before tracing).

    Args:
      features: (X, Y, Y, d) antisymmetric features ``psi``, or None (the tabular model).
      link: one of :data:`LINKS`.
      ridge: ``lambda`` > 0.

    Returns:
      ``(psi, ridge)``: the features as a float64 array (None for the tabular model) and the
      ridge as a float.

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> estimation.check_features(np.ones((1, 2, 2, 1)), "logistic", 1.0)
      Traceback (most recent call last):
      ...
      nlhf_theory.validation.InvalidInputError: features: must be antisymmetric, ...

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 5 (linear preference classes).
    """
    check_choice(link, "link", LINKS)
    ridge = positive(ridge, "ridge")
    if features is None:
        return None, ridge
    psi = np.asarray(features, dtype=np.float64)
    if psi.ndim != 4 or psi.shape[1] != psi.shape[2]:
        raise InvalidInputError(f"features: expected shape (X, Y, Y, d), got {psi.shape}")
    if np.max(np.abs(psi + np.swapaxes(psi, 1, 2))) > 1e-9:
        raise InvalidInputError("features: must be antisymmetric, psi(x, y, y') = -psi(x, y', y)")
    return psi, ridge


def estimate(wins, counts, features, link, ridge, prior=0.0):
    """The estimated preference: tabular (``features`` None) or a fitted linear model.

    ``P_hat = mle_preference(W, N, prior)`` without features, else the ``p_hat`` of
    ``fit_linear_preference(W, N, psi, link, ridge)`` (``prior`` unused). Traceable.

    Args:
      wins: (X, Y, Y) ``W``.
      counts: (X, Y, Y) ``N``.
      features: (X, Y, Y, d) antisymmetric features ``psi``, or None.
      link: one of :data:`LINKS` (linear model).
      ridge: ``lambda`` > 0 (linear model).
      prior: Beta pseudo-count >= 0 (tabular model; default 0).

    Returns:
      ``(P_hat, fit)``: the (X, Y, Y) estimate and the :class:`LinearFit` (None if tabular).

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> wins = np.array([[[0.0, 3.0], [1.0, 0.0]]])
      >>> counts = np.array([[[0.0, 4.0], [4.0, 0.0]]])
      >>> p_hat, fit = estimation.estimate(wins, counts, None, "logistic", 1.0)
      >>> float(p_hat[0, 0, 1]), fit is None
      (0.75, True)

    References:
      Ye et al. 2024, arXiv:2402.07314, Sec. 4 and 5.
    """
    if features is None:
        return mle_preference(wins, counts, prior), None
    fit = fit_linear_preference(wins, counts, features, link, ridge)
    return fit.p_hat, fit


def elliptical_norm(vectors, design):
    """``||v||_{Sigma^-1} = sqrt(v^T Sigma^-1 v)`` over the last axis of ``vectors``.

    ``v`` = each vector of ``vectors``, ``Sigma`` = ``design`` (symmetric positive definite).
    Traceable.

    Args:
      vectors: (..., d) vectors ``v``.
      design: (d, d) matrix ``Sigma``.

    Returns:
      (...) norms.

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> np.asarray(estimation.elliptical_norm(np.array([[2.0, 0.0], [0.0, 3.0]]),
      ...                                       np.diag([4.0, 9.0]))).tolist()
      [1.0, 1.0]

    References:
      Zhu, Jordan & Jiao 2023, arXiv:2301.11270, Sec. 3.2 (the bonus ``||.||_{Sigma^-1}``).
    """
    d = _shape(design, "design", 2, "(d, d)")
    if d[0] != d[1]:
        raise InvalidInputError(f"design: expected shape (d, d), got {d}")
    shape = tuple(np.shape(vectors))
    if len(shape) < 1 or shape[-1] != d[0]:
        raise InvalidInputError(f"vectors: expected shape (..., {d[0]}) matching design, got "
                                f"{shape}")
    solved = jnp.linalg.solve(design, jnp.moveaxis(vectors, -1, 0).reshape(design.shape[0], -1))
    solved = jnp.moveaxis(solved.reshape((design.shape[0],) + vectors.shape[:-1]), 0, -1)
    return jnp.sqrt(jnp.maximum(jnp.sum(vectors * solved, -1), 0.0))


# Bradley-Terry rewards -----------------------------------------------------------------------
class RewardFit(NamedTuple):
    """A Bradley-Terry MAP reward.

    Attributes:
      reward: (X, Y) fitted reward ``theta . phi(x, y)``.
      theta: (d,) MAP parameter.
      precision: (d, d) Laplace posterior precision (Fisher information plus prior),
        ``ridge I + sum_{x, a<b} N[x, a, b] sigma'(psi theta) psi psi^T``.
    """

    reward: Any
    theta: Any
    precision: Any


def tabular_features(num_prompts: int, num_responses: int):
    """One-hot features ``phi(x, y) = e_{x Y + y}``: the tabular reward.

    Args:
      num_prompts: ``X`` >= 1.
      num_responses: ``Y`` >= 1.

    Returns:
      (X, Y, X Y) float64 features.

    Example:
      >>> from nlhf_theory import estimation
      >>> estimation.tabular_features(1, 2).tolist()
      [[[1.0, 0.0], [0.0, 1.0]]]

    References:
      Zhu, Jordan & Jiao 2023, arXiv:2301.11270, Sec. 3 (the tabular case of the linear model).
    """
    num_prompts = positive_int(num_prompts, "num_prompts")
    num_responses = positive_int(num_responses, "num_responses")
    return np.eye(num_prompts * num_responses).reshape(num_prompts, num_responses, -1)


def fit_bt_reward(wins, counts, phi, ridge: float = 1.0, steps: int = 50) -> RewardFit:
    """Bradley-Terry MAP reward: ``argmax sum log sigma(r(y_w) - r(y_l)) - ridge |theta|^2 / 2``.

    The reward is ``r(x, y) = theta . phi(x, y)`` (``phi`` = ``phi``); the fit is
    :func:`fit_linear_preference` (logistic link, ``steps`` Newton iterations) on the comparison
    counts ``W`` = ``wins``, ``N`` = ``counts`` with ``psi = phi(x, y) - phi(x, y')`` (each
    unordered pair once), i.e. the MAP estimate under the prior ``theta ~ N(0, I / ridge)``. A
    tabular reward (``phi`` one-hot, :func:`tabular_features`) is identified only up to a
    constant per prompt; the prior picks the minimum-norm one, so it is mean-centred per prompt
    and equals :func:`bradley_terry_fit`. Traceable: the statistics are validated as in
    :func:`bradley_terry_fit` when they are concrete, but convergence cannot be checked inside
    ``jit`` (use :func:`bradley_terry_fit` for a checked tabular fit).

    Args:
      wins: (X, Y, Y) ``W[x, a, b]``, comparisons of ``{a, b}`` won by ``a``.
      counts: (X, Y, Y) ``N = N^T``, comparisons of ``{a, b}``.
      phi: (X, Y, d) response features.
      ridge: prior precision ``lambda`` > 0 (default 1).
      steps: Newton iterations >= 1 (default 50, as :func:`bradley_terry_fit`).

    Returns:
      A :class:`RewardFit` (reward, MAP parameter, Laplace posterior precision).

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> wins = np.array([[[0.0, 75.0], [25.0, 0.0]]])
      >>> counts = np.array([[[0.0, 100.0], [100.0, 0.0]]])
      >>> fit = estimation.fit_bt_reward(wins, counts, estimation.tabular_features(1, 2),
      ...                                ridge=1e-6)
      >>> round(float(fit.reward[0, 0] - fit.reward[0, 1]), 4)  # log 3
      1.0986

    References:
      Chaudhari et al. 2024, arXiv:2404.08555, Sec. 2.1 and 4.2 (reward modelling as MAP under
      the BT likelihood); Zhu, Jordan & Jiao 2023, arXiv:2301.11270, Sec. 3 (the BTL MLE).
    """
    X, Y = _statistics_shape(wins, counts)
    if _shape(phi, "phi", 3, f"(X, Y, d) with (X, Y) = {(X, Y)}")[:2] != (X, Y):
        raise InvalidInputError(f"phi: expected shape (X, Y, d) with (X, Y) = {(X, Y)}, got "
                                f"{tuple(np.shape(phi))}")
    ridge = positive(ridge, "ridge")
    if not traced(wins) and not traced(counts):
        _check_statistics(wins, counts)
    phi = jnp.asarray(phi)
    wins = jnp.asarray(wins)
    phi = phi.astype(wins.dtype)
    psi = phi[:, :, None, :] - phi[:, None, :, :]
    fit = fit_linear_preference(wins, jnp.asarray(counts, wins.dtype), psi, "logistic", ridge,
                                steps)
    upper = jnp.triu(jnp.ones((Y, Y), dtype=bool), 1)[None]
    weight = jnp.where(upper, counts * fit.slope, 0.0)
    precision = (ridge * jnp.eye(phi.shape[-1], dtype=phi.dtype)
                 + jnp.einsum("xab,xabd,xabe->de", weight, psi, psi))
    return RewardFit(phi @ fit.theta, fit.theta, precision)


@partial(jax.jit, static_argnames="steps")
def _fit_rewards(wins, counts, ridge, steps):
    """Mean-centred MAP rewards of a batch of (Y, Y) count matrices (vmapped tabular fits)."""
    phi = jnp.eye(wins.shape[-1], dtype=wins.dtype)[None]  # psi[y, y'] = e_y - e_y'

    def one(w, n):
        theta = fit_bt_reward(w[None], n[None], phi, ridge, steps).theta
        return theta - theta.mean()

    return jax.vmap(one)(wins, counts)


def _stationarity(wins, counts, rewards, ridge) -> np.ndarray:
    """``max_y |ridge r_y - sum_{y'} (W[y, y'] - N[y, y'] sigma(r_y - r_y'))|`` per matrix."""
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * (rewards[..., :, None] - rewards[..., None, :])))
    fitted = counts * sigmoid
    residual = ridge * rewards - (wins - fitted).sum(-1)
    return np.abs(residual).max(-1)


def bradley_terry_fit(wins, counts, *, ridge: float = 1.0, steps: int = 50) -> np.ndarray:
    """MAP Bradley-Terry rewards from pairwise comparison counts (batched over leading axes).

    ``r_hat = argmin_r sum_{y < y'} -[W log sigma(r_y - r_y') + (N - W) log sigma(r_y' - r_y)]
    + ridge ||r||^2 / 2`` per (Y, Y) matrix (``W`` = ``wins``, ``N`` = ``counts``): the tabular
    :func:`fit_bt_reward` (one-hot ``phi``, so ``psi(y, y') = e_y - e_y'``) of each matrix, in
    float64 and vmapped over every leading axis (seeds, prompts), on the host. The ridge is a
    Gaussian prior ``N(0, 1 / ridge)`` on each reward (the MAP of Chaudhari et al.'s Sec. 2.1);
    it leaves the mean of ``r`` unidentified by the data at 0, so the rewards come out
    mean-centred. Unlike the traceable :func:`fit_bt_reward` (same statistics checks, same
    defaults) it checks after the fit that Newton's method reached a stationary point.

    Args:
      wins: (..., Y, Y) ``W[y, y']``, comparisons of ``{y, y'}`` won by ``y``.
      counts: (..., Y, Y) ``N[y, y'] = N[y', y]``, comparisons of ``{y, y'}``; ``W + W^T = N``
        off the diagonal (the diagonal is ignored).
      ridge: the prior precision ``lambda`` > 0 (default 1). Tiny values give the
        maximum-likelihood fit, which is finite only if no set of responses wins all its
        comparisons with the rest (otherwise the MAP rewards grow like ``log(1 / ridge)``).
      steps: Newton iterations >= 1 (default 50).

    Returns:
      (..., Y) float64 rewards, mean-centred over the last axis.

    Raises:
      InvalidInputError: bad counts or ``steps``, or Newton's method did not reach a
        stationary point in ``steps`` iterations.

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> wins = np.array([[0.0, 75.0], [25.0, 0.0]])
      >>> counts = np.array([[0.0, 100.0], [100.0, 0.0]])
      >>> estimation.bradley_terry_fit(wins, counts, ridge=1e-9).round(4).tolist()  # log 3
      [0.5493, -0.5493]

    References:
      Bradley & Terry 1952, Biometrika 39(3/4); Chaudhari et al. 2024, arXiv:2404.08555,
      Sec. 2.1 and 4.2 (reward modeling as MAP under the BT likelihood).
    """
    W = float_array(wins, "wins").astype(np.float64)
    N = float_array(counts, "counts").astype(np.float64)
    if W.ndim < 2 or W.shape[-1] != W.shape[-2]:
        raise InvalidInputError(f"wins: expected shape (..., Y, Y), got {W.shape}")
    check_shape(N, "counts", W.shape, "the shape of wins")
    ridge = checked_real(ridge, "ridge", lambda v: np.isfinite(v) and v > 0, "be finite and > 0")
    steps = positive_int(steps, "steps")
    _check_statistics(W, N)
    off = ~np.eye(W.shape[-1], dtype=bool)
    W, N = np.where(off, W, 0.0), np.where(off, N, 0.0)
    shape = W.shape
    with float64_mode():
        rewards = np.asarray(_fit_rewards(jnp.asarray(W.reshape((-1,) + shape[-2:])),
                                          jnp.asarray(N.reshape((-1,) + shape[-2:])),
                                          ridge, steps)).reshape(shape[:-1])
    worst = float(_stationarity(W, N, rewards, ridge).max(initial=0.0))
    if not np.isfinite(worst) or worst > 1e-8 * max(1.0, float(N.sum(-1).max(initial=0.0))):
        raise InvalidInputError(
            f"wins: the Bradley-Terry fit did not converge in {steps} Newton steps (stationarity "
            f"residual {worst:.2g}): raise steps, or ridge if the comparisons are separable")
    return rewards


# Coverage ------------------------------------------------------------------------------------
def _coverage_inputs(policy, counts):
    """Checked (X, Y) ``policy`` and (X, Y, Y) ``counts`` of a coverage coefficient, as given."""
    pi = float_array(policy, "policy")
    if pi.ndim != 2:
        raise InvalidInputError(f"policy: expected shape (X, Y), got {pi.shape}")
    check_simplex(pi, "policy")
    N = float_array(counts, "counts")
    check_shape(N, "counts", pi.shape + pi.shape[-1:], "(X, Y, Y) matching policy")
    _check_counts(N)
    return pi, N


def coverage_coefficient(policy, counts, *, per_prompt: bool = False):
    """Unilateral coverage of a target ``policy`` by comparison counts (tabular model).

    ``C(x) = max_{pi2} sum_{a < b} w_ab(pi, pi2)^2 / (N_ab / n)`` with
    ``w_ab = pi(a) pi2(b) - pi(b) pi2(a)``, ``pi`` = ``policy``, ``N`` = ``counts`` and
    ``n = sum_{a<b} N_ab`` the comparisons of the prompt: the squared out-of-sample error of
    the comparison ``pi vs pi2`` relative to the in-sample design (a tabular version of the
    coefficient in Ye et al.'s Thm. 1; the maximum over ``pi2`` of this convex function is at
    a pure response). Infinite when a pair with ``w_ab != 0`` was never compared. With one
    prompt it is :func:`linear_coverage_coefficient` with one-hot pair features.

    Args:
      policy: (X, Y) target policy (e.g. the regularized equilibrium).
      counts: (X, Y, Y) symmetric comparison counts ``N``.
      per_prompt: return (X,) values instead of the maximum over prompts (default False).

    Returns:
      ``max_x C(x)`` (a float, possibly ``inf``), or the (X,) array of ``C(x)``.

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> counts = np.ones((1, 2, 2)) - np.eye(2)
      >>> estimation.coverage_coefficient([[0.5, 0.5]], counts)
      0.25

    References:
      Ye et al. 2024, arXiv:2402.07314, Thm. 1; Zhong et al. 2022, arXiv:2202.07511
      (unilateral coverage in offline Markov games).
    """
    policy, counts = _coverage_inputs(policy, counts)
    pi = np.asarray(policy, dtype=np.float64)
    N = np.asarray(counts, dtype=np.float64)
    X, Y = pi.shape
    n = np.triu(N, 1).sum(axis=(1, 2))
    values = np.zeros(X)
    upper = np.triu(np.ones((Y, Y), dtype=bool), 1)
    for x in range(X):
        best = 0.0
        for b in range(Y):  # pure opponent e_b
            w = pi[x][:, None] * np.eye(Y)[b][None, :] - pi[x][None, :] * np.eye(Y)[b][:, None]
            w2 = np.where(upper, w**2, 0.0)
            if np.any((w2 > 0) & (N[x] == 0)):
                best = np.inf
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                best = max(best, float(np.sum(np.where(w2 > 0, w2 / (N[x] / n[x]), 0.0))))
        values[x] = best
    return values if per_prompt else float(values.max())


def linear_coverage_coefficient(policy, features, counts, prompt_weights=None,
                                ridge: float = 0.0) -> float:
    """Unilateral coverage of ``policy`` under a linear preference model.

    ``C_lin = max_{pi2} || E_{x ~ d0} psi(x, pi, pi2) ||^2_{(Sigma_n / n)^{-1}}`` with
    ``psi(x, pi, pi2) = sum_{a, b} pi(a|x) pi2(b|x) psi(x, a, b)`` (``pi`` = ``policy``,
    ``psi`` = ``features``, ``d0`` = ``prompt_weights``), the design
    ``Sigma_n = ridge I + sum_{x, a<b} N[x, a, b] psi psi^T`` and
    ``n = sum_{x, a<b} N[x, a, b]`` (``N`` = ``counts``). The squared norm is convex in
    ``pi2``, so the maximum is at a deterministic opponent ``b(x)``; all ``Y ** X`` of them are
    enumerated (at most :data:`MAX_OPPONENTS`). Infinite when the target's comparison leaves
    the span of the design (ridge 0). With one-hot pair features and one prompt it is the
    tabular :func:`coverage_coefficient`.

    Args:
      policy: (X, Y) target policy ``pi`` (e.g. the regularized equilibrium).
      features: (X, Y, Y, d) antisymmetric features ``psi``.
      counts: (X, Y, Y) symmetric comparison counts ``N`` (e.g. :func:`expected_counts`).
      prompt_weights: (X,) ``d0`` (default None: uniform).
      ridge: ``lambda`` >= 0 of the design (default 0).

    Returns:
      ``C_lin`` (a float, possibly ``inf``).

    Example:
      >>> import numpy as np
      >>> from nlhf_theory import estimation
      >>> psi = np.array([[[[0.0], [1.0]], [[-1.0], [0.0]]]])  # one pair, one feature
      >>> counts = np.ones((1, 2, 2)) - np.eye(2)
      >>> estimation.linear_coverage_coefficient([[0.5, 0.5]], psi, counts)
      0.25

    References:
      Ye et al. 2024, arXiv:2402.07314, Thm. 1 (coverage coefficient of a d-dimensional
      linear class); Zhong et al. 2022, arXiv:2202.07511 (unilateral coverage).
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
    _check_counts(N)
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
