"""The algorithm interface: pure ``init``/``update`` functions over an explicit state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nlhf_theory.algorithms._targets import Target

Array = Any


class Algorithm(NamedTuple):
    """A preference-learning algorithm as a pair of pure functions (optax style).

    Attributes:
      init: ``init(game, key) -> state``, the state before the first update.
      update: ``update(state, game, key) -> state``, one iteration; ``key`` feeds the sampled
        mode and is ignored in the exact mode.
      policy: ``policy(state) -> (X, Y)`` array, the current policy.
      target: a :class:`~nlhf_theory.algorithms.Target`, what the algorithm converges to in
        theory for its hyper-parameters: its ``kind`` (``"regularized_nash"``,
        ``"stationary_point"``, ``"nash"``, ``"reward_optimum"``, ``"loss_optimum"``,
        ``"none"``) and ``policy(game)``, the target policy on a game.
    """

    init: Callable
    update: Callable
    policy: Callable
    target: Target


class PolicyState(NamedTuple):
    """State of a policy iterate: log-probabilities and the step count.

    Attributes:
      logits: (X, Y) normalized log-probabilities ``log pi_t``.
      step: () int32 iteration counter.
    """

    logits: Array
    step: Array


def log_softmax(logits):
    """Normalized log-probabilities along the last axis."""
    return jax.nn.log_softmax(logits, axis=-1)


def policy_from_logits(state) -> Array:
    """``softmax(state.logits)``: the policy of a state that stores logits."""
    return jax.nn.softmax(state.logits, axis=-1)


def reference_state(game) -> PolicyState:
    """The state whose policy is ``pi_ref``."""
    return PolicyState(jnp.log(jnp.asarray(game.pi_ref)), jnp.zeros((), jnp.int32))
