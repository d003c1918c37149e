"""The algorithm interface: pure ``init``/``update`` functions over an explicit state."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nlhf_theory._validation import InvalidInputError, checked_real

Array = Any


class Algorithm(NamedTuple):
    """A preference-learning algorithm as a pair of pure functions (optax style).

    Attributes:
      init: ``init(game, key) -> state``, the state before the first update.
      update: ``update(state, game, key) -> state``, one iteration; ``key`` feeds the sampled
        mode and is ignored in the exact mode.
      policy: ``policy(state) -> (X, Y)`` array, the current policy.
      target: what the algorithm converges to in theory: ``"regularized_nash"``,
        ``"nash"`` (the unregularized equilibrium), ``"reward_optimum"`` or ``"none"``.
    """

    init: Callable
    update: Callable
    policy: Callable
    target: str


class PolicyState(NamedTuple):
    """State of a policy iterate: log-probabilities and the step count.

    Attributes:
      logits: (X, Y) normalized log-probabilities ``log pi_t``.
      step: () int32 iteration counter.
    """

    logits: Array
    step: Array


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


def log_softmax(logits):
    """Normalized log-probabilities along the last axis."""
    return jax.nn.log_softmax(logits, axis=-1)


def policy_from_logits(state) -> Array:
    """``softmax(state.logits)``: the policy of a state that stores logits."""
    return jax.nn.softmax(state.logits, axis=-1)


def reference_state(game) -> PolicyState:
    """The state whose policy is ``pi_ref``."""
    return PolicyState(jnp.log(jnp.asarray(game.pi_ref)), jnp.zeros((), jnp.int32))


def traced(value) -> bool:
    """True for a traced jax value (a hyper-parameter swept by ``vmap``): checks are skipped,
    the sweep's values having been checked concretely."""
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
    """``value`` as a float; it must be finite and > 0."""
    return value if traced(value) else checked_real(
        value, name, lambda v: math.isfinite(v) and v > 0, "be finite and > 0")


def unit_interval(value, name: str) -> float:
    """``value`` as a float in [0, 1]."""
    return value if traced(value) else checked_real(
        value, name, lambda v: 0.0 <= v <= 1.0, "lie in [0, 1]")


def nonnegative(value, name: str) -> float:
    """``value`` as a float; it must be finite and >= 0."""
    return value if traced(value) else checked_real(
        value, name, lambda v: math.isfinite(v) and v >= 0, "be finite and >= 0")


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise InvalidInputError(f"{name}: must be an integer >= 1, got {value!r}")
    return int(value)
