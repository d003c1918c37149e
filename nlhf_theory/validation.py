"""Input validation shared by every public entry point (and by user-written algorithms).

Every check raises :class:`InvalidInputError` (a ``ValueError``) whose message names the
argument and the violated condition, so bad input never turns into a silent NaN or a traceback
from deep inside jax. The hyper-parameter checks (:func:`positive`, :func:`positive_int`,
:func:`unit_interval`, :func:`nonnegative`, :func:`check_choice`, :func:`check_mode`) pass a
traced value (a swept hyper-parameter inside ``vmap``) through unchecked: sweeps check every
value concretely before tracing. The algorithms import this module as ``checks``.

Example:
  >>> from nlhf_theory import validation as checks
  >>> checks.positive_int(3.0, "steps")
  3
  >>> checks.positive(-1.0, "beta")
  Traceback (most recent call last):
  ...
  nlhf_theory.validation.InvalidInputError: beta: must be finite and > 0, got -1.0
"""

from __future__ import annotations

import math

import jax
import numpy as np


class InvalidInputError(ValueError):
    """Bad input to nlhf_theory: the message names the argument and the violated condition."""


def validation_tolerance(dtype) -> float:
    """Absolute tolerance to which input probabilities stored in ``dtype`` must be exact.

    float64 data must be exact to 1e-9, float32 (and lower) data to 1e-5. (Computed results
    are compared with :func:`nlhf_theory.testing.tolerance`, a different, tighter notion.)
    """
    return 1e-9 if np.dtype(dtype) == np.float64 else 1e-5


def float_array(value, name: str) -> np.ndarray:
    """``value`` as a finite floating numpy array (float32 stays float32, the rest float64)."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise InvalidInputError(f"{name}: cannot be converted to an array ({exc})") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise InvalidInputError(f"{name}: must be numeric, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name}: contains NaN or infinite entries")
    return arr


def checked_real(value, name: str, ok, condition: str) -> float:
    """``value`` as a float satisfying ``ok``; else an error saying it must ``condition``."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: must be a real number, got {value!r}") from exc
    if not ok(v):
        raise InvalidInputError(f"{name}: must {condition}, got {value!r}")
    return v


def check_beta(beta, name: str = "beta") -> float:
    """The KL coefficient as a float; it must be finite and > 0."""
    return checked_real(beta, name, lambda v: math.isfinite(v) and v > 0, "be finite and > 0")


def check_simplex(arr: np.ndarray, name: str, *, strictly_positive: bool = False) -> np.ndarray:
    """Check that every row (last axis) of ``arr`` is a distribution; return it renormalized."""
    tol = validation_tolerance(arr.dtype)
    if strictly_positive and np.any(arr <= 0):
        raise InvalidInputError(f"{name}: every entry must be > 0 (found min {arr.min():.3g})")
    if np.any(arr < -tol):
        raise InvalidInputError(f"{name}: entries must be >= 0 (found min {arr.min():.3g})")
    sums = arr.sum(axis=-1)
    worst = float(np.max(np.abs(sums - 1.0))) if sums.size else 0.0
    if worst > max(tol, 1e-12) * max(1, arr.shape[-1]) ** 0.5:
        raise InvalidInputError(
            f"{name}: each distribution must sum to 1 (largest deviation {worst:.3g})"
        )
    arr = np.clip(arr, 0.0, None)
    return arr / arr.sum(axis=-1, keepdims=True)


def check_shape(arr: np.ndarray, name: str, expected: tuple, what: str) -> None:
    """Raise unless ``arr.shape == expected``; ``what`` describes the expected layout."""
    if tuple(arr.shape) != tuple(expected):
        raise InvalidInputError(
            f"{name}: expected shape {tuple(expected)} ({what}), got {arr.shape}")


def reference_policy(pi_ref, num_prompts: int, num_responses: int, dtype) -> np.ndarray:
    """``pi_ref`` as an (X, Y) array of strictly positive distributions (default uniform);
    a (Y,) array is shared by all prompts."""
    if pi_ref is None:
        return np.full((num_prompts, num_responses), 1.0 / num_responses, dtype=dtype)
    pi_ref = float_array(pi_ref, "pi_ref").astype(dtype)
    if pi_ref.ndim == 1:
        check_shape(pi_ref, "pi_ref", (num_responses,), "Y responses")
        pi_ref = np.broadcast_to(pi_ref, (num_prompts, num_responses))
    check_shape(pi_ref, "pi_ref", (num_prompts, num_responses), "(Y,) or (X, Y)")
    return check_simplex(pi_ref, "pi_ref", strictly_positive=True)


def prompt_distribution(prompt_weights, num_prompts: int, dtype) -> np.ndarray:
    """``d0`` as an (X,) distribution (default uniform)."""
    if prompt_weights is None:
        return np.full((num_prompts,), 1.0 / num_prompts, dtype=dtype)
    prompt_weights = float_array(prompt_weights, "prompt_weights").astype(dtype)
    check_shape(prompt_weights, "prompt_weights", (num_prompts,), "one weight per prompt")
    return check_simplex(prompt_weights, "prompt_weights")


# Hyper-parameters -------------------------------------------------------------------------
def traced(value) -> bool:
    """True for a traced jax value (a hyper-parameter swept by ``vmap``, an array inside
    ``jit``): its entries cannot be inspected, so value checks are skipped (a sweep's values
    are checked concretely before tracing)."""
    return isinstance(value, jax.core.Tracer)


def concrete(value, name: str) -> float:
    """``value`` as a float, for a default computed from it in Python (e.g. an integer period);
    a traced (swept) value cannot be, and the error says to pass the dependent default."""
    if traced(value):
        raise InvalidInputError(
            f"{name}: swept, but a default computed from it (period) needs a concrete value; "
            "pass period explicitly when sweeping it")
    return float(value)


def positive(value, name: str) -> float:
    """``value`` as a float; it must be finite and > 0 (traced values pass unchecked)."""
    return value if traced(value) else checked_real(
        value, name, lambda v: math.isfinite(v) and v > 0, "be finite and > 0")


def unit_interval(value, name: str) -> float:
    """``value`` as a float in [0, 1] (traced values pass unchecked)."""
    return value if traced(value) else checked_real(
        value, name, lambda v: 0.0 <= v <= 1.0, "lie in [0, 1]")


def nonnegative(value, name: str) -> float:
    """``value`` as a float; it must be finite and >= 0 (traced values pass unchecked)."""
    return value if traced(value) else checked_real(
        value, name, lambda v: math.isfinite(v) and v >= 0, "be finite and >= 0")


def _integer(value, name: str, low: int) -> int:
    integral = (isinstance(value, (int, float, np.integer, np.floating))
                and not isinstance(value, bool) and math.isfinite(value)
                and float(value).is_integer())
    if not integral or int(value) < low:
        raise InvalidInputError(f"{name}: must be an integer >= {low}, got {value!r}")
    return int(value)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1: an integer, or an integral real such as ``3.0`` (not a
    string or a bool)."""
    return _integer(value, name, 1)


def nonnegative_int(value, name: str) -> int:
    """``value`` as an int >= 0 (a seed, a count that may be zero)."""
    return _integer(value, name, 0)


def check_choice(value, name: str, choices):
    """``value`` must be one of ``choices`` (a static option such as a mode or a form)."""
    if value not in choices:
        raise InvalidInputError(f"{name}: must be one of {tuple(choices)}, got {value!r}")
    return value


#: How an algorithm computes expectations: exactly over the population, or from oracle draws.
MODES = ("exact", "sampled")


def check_mode(mode: str) -> str:
    """``mode`` must be ``"exact"`` or ``"sampled"``."""
    return check_choice(mode, "mode", MODES)
