"""Array helpers shared by the metrics, losses, solvers and algorithms.

Written once against the array API (``array_api_compat``) so that the same code runs on NumPy
arrays, jax arrays (inside ``jit``/``vmap``) and torch tensors; plus jax's float64 switch.
"""

from __future__ import annotations

import contextlib

import array_api_compat
import jax
import numpy as np


def namespace(*arrays):
    """The array-API namespace of the first non-NumPy array (NumPy if all are NumPy)."""
    for arr in arrays:
        if array_api_compat.is_array_api_obj(arr) and not isinstance(arr, np.ndarray):
            return array_api_compat.array_namespace(arr)
    return array_api_compat.array_namespace(np.empty(0))


def logsumexp(xp, z, axis=-1):
    """``log sum exp z`` along ``axis``, stable for any finite ``z``."""
    zmax = xp.max(z, axis=axis, keepdims=True)
    return xp.squeeze(zmax, axis=axis) + xp.log(xp.sum(xp.exp(z - zmax), axis=axis))


def xlogy_ratio(xp, p, log_q):
    """``sum p (log p - log_q)`` along the last axis, with ``0 log 0 = 0``."""
    positive = p > 0
    safe_p = xp.where(positive, p, xp.ones_like(p))
    terms = xp.where(positive, p * (xp.log(safe_p) - log_q), xp.zeros_like(p))
    return xp.sum(terms, axis=-1)


def matvec(xp, M, v):
    """``(M v)[x] = M[x] @ v[x]`` for ``M`` of shape (X, Y, Y) and ``v`` of shape (X, Y)."""
    return xp.squeeze(M @ v[..., None], axis=-1)


@contextlib.contextmanager
def float64_mode():
    """Switch jax to float64 (``jax_enable_x64``) globally for the block, then restore it.

    Global rather than jax's thread-local ``enable_x64`` context manager: the algorithms that
    call the certified NumPy solvers through ``jax.pure_callback`` (greedy, pessimistic and
    optimistic equilibrium learning) run those callbacks on XLA's threads, which do not see a
    thread-local setting. :func:`~nlhf_theory.algorithms.run` uses it for every algorithm.
    """
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
