"""The tabular preference game: prompts, responses, a preference P and a reference policy."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from nlhf_theory.validation import (
    InvalidInputError,
    checked_real,
    float_array,
    prompt_distribution,
    reference_policy,
    validation_tolerance,
)


def made_in_tolerance(arr: np.ndarray) -> float:
    """The validation tolerance of the precision ``arr`` was made in: float32 data (float32
    arrays, or float64 arrays whose every entry is a float32 number, as after ``.double()`` of a
    torch tensor) get float32's, other float64 data float64's (:func:`validation_tolerance`)."""
    if arr.dtype == np.float64 and np.array_equal(arr.astype(np.float32).astype(np.float64),
                                                   arr):
        return validation_tolerance(np.float32)
    return validation_tolerance(arr.dtype)


def _precision(tol: float) -> str:
    return "float32" if tol > validation_tolerance(np.float64) else "float64"


def exact_skew(P: np.ndarray) -> np.ndarray:
    """The projection ``(P + 1 - P^T) / 2`` onto skew symmetry, rounded in the stored dtype.

    float64: the projection itself (``P + P^T = 1`` to the last bit). float32: each pair keeps
    its entry ``q >= 1/2`` rounded to float32 and its mirror is ``1 - q``, exact in binary
    floating point for ``q`` in [1/2, 1] (Sterbenz's lemma), so ``P + P^T = 1`` holds exactly
    and metrics computed in float64 from float32 data see an exactly skew game.
    """
    if P.dtype == np.float64:
        return np.clip(0.5 * (P + 1.0 - np.swapaxes(P, -1, -2)), 0.0, 1.0)
    Q = np.clip(0.5 * (P.astype(np.float64) + 1.0 - np.swapaxes(P, -1, -2)), 0.0, 1.0)
    high = np.maximum(Q, np.swapaxes(Q, -1, -2)).astype(P.dtype)
    return np.where(Q >= np.swapaxes(Q, -1, -2), high, P.dtype.type(1) - high)


@jax.tree_util.register_pytree_node_class
class PreferenceGame:
    """A contextual preference bandit: ``P[x, y, y'] = Pr(y beats y' | x)``.

    The game the package is built around (see ``docs/conventions.md``): prompts ``x`` drawn from
    ``d0`` (``prompt_weights``), responses ``y``, a reference policy ``pi_ref(y | x) > 0`` and a
    preference that is skew, ``P + P^T = 1`` with diagonal 1/2, but need not be transitive.

    The object is immutable and validated at construction. Within the validation tolerance of
    the precision the data was made in (1e-9 for float64 data, 1e-5 for float32 data, which
    includes float64 arrays whose entries are all float32 numbers, e.g. a torch float32 tensor
    cast with ``.double()``) the inputs are projected onto the exact constraints: ``P <- (P + 1
    - P^T) / 2``, rounded so that ``P + P^T = 1`` holds exactly in the stored dtype
    (:func:`exact_skew`), and ``pi_ref``, ``prompt_weights`` renormalized. The dtype of ``P``
    (float32 or float64) is kept. It is a jax pytree, so it can be passed through
    ``jax.jit`` and ``jax.vmap`` (no validation is re-run on traced values).

    Args:
      P: preference of shape ``(Y, Y)`` (one prompt) or ``(X, Y, Y)``; entries in ``[0, 1]``.
      pi_ref: reference policy of shape ``(Y,)`` (shared by all prompts) or ``(X, Y)``, every
        entry > 0; default uniform.
      prompt_weights: prompt distribution ``d0`` of shape ``(X,)``; default uniform.

    Attributes:
      P: ``(X, Y, Y)`` array.
      pi_ref: ``(X, Y)`` array.
      prompt_weights: ``(X,)`` array.

    Example:
      >>> import nlhf_theory as nt
      >>> game = nt.PreferenceGame([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])
      >>> game.num_prompts, game.num_responses
      (1, 3)
    """

    __slots__ = ("P", "pi_ref", "prompt_weights")

    def __init__(self, P, pi_ref=None, prompt_weights=None):
        P = float_array(P, "P")
        shape = P.shape
        if P.ndim == 2:
            P = P[None]
        if P.ndim != 3 or P.shape[1] != P.shape[2] or P.shape[1] < 1 or P.shape[0] < 1:
            raise InvalidInputError(
                f"P: expected shape (Y, Y) or (X, Y, Y) with Y >= 1, got {shape}"
            )
        num_prompts, num_responses = P.shape[0], P.shape[1]
        tol = made_in_tolerance(P)
        if P.min() < -tol or P.max() > 1 + tol:
            raise InvalidInputError(
                f"P: entries must lie in [0, 1] (found range [{P.min():.3g}, {P.max():.3g}])"
            )
        skew = float(np.max(np.abs(P + np.swapaxes(P, -1, -2) - 1.0)))
        if skew > tol:
            raise InvalidInputError(
                f"P: must satisfy P + P^T = 1 (skew symmetry, diagonal 1/2); largest violation "
                f"{skew:.3g} exceeds the tolerance {tol:g} of {_precision(tol)} data. If the "
                "violation is rounding from a lower precision, project it first: "
                "P = (P + 1 - P.swapaxes(-1, -2)) / 2; otherwise P is not a preference matrix"
            )
        P = exact_skew(P)

        pi_ref = reference_policy(pi_ref, num_prompts, num_responses, P.dtype)
        prompt_weights = prompt_distribution(prompt_weights, num_prompts, P.dtype)

        for name, value in (("P", P), ("pi_ref", pi_ref), ("prompt_weights", prompt_weights)):
            value = np.array(value, copy=True)
            value.flags.writeable = False
            object.__setattr__(self, name, value)

    # Immutability -------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"PreferenceGame is immutable; cannot set {name!r}")

    # Pytree protocol ----------------------------------------------------------------------
    def tree_flatten(self):
        return (self.P, self.pi_ref, self.prompt_weights), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        game = object.__new__(cls)
        for name, value in zip(cls.__slots__, children):
            object.__setattr__(game, name, value)
        return game

    # Convenience --------------------------------------------------------------------------
    @property
    def num_prompts(self) -> int:
        """X, the number of prompts."""
        return self.P.shape[0]

    @property
    def num_responses(self) -> int:
        """Y, the number of responses per prompt."""
        return self.P.shape[-1]

    @property
    def dtype(self):
        """The floating dtype of the stored arrays."""
        return self.P.dtype

    def astype(self, dtype) -> PreferenceGame:
        """The same game stored in ``dtype`` (float32 or float64); ``self`` if already so."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise InvalidInputError(f"dtype: must be float32 or float64, got {dtype}")
        if dtype == self.dtype:
            return self
        # Already validated: cast without re-checking, then restore the exact constraints in
        # the new precision (a float32 distribution sums to 1 only within ~1e-7 in float64).
        P, pi_ref, weights = (np.array(v, dtype=dtype) for v in self.tree_flatten()[0])
        P = exact_skew(P)
        pi_ref /= pi_ref.sum(-1, keepdims=True)
        weights /= weights.sum()
        for value in (P, pi_ref, weights):
            value.flags.writeable = False
        return self.tree_unflatten(None, [P, pi_ref, weights])

    def oracle(self, key, x, y, y_prime):
        """Sample preference labels ``1[y beats y' | x] ~ Bernoulli(P[x, y, y'])``.

        Args:
          key: a ``jax.random`` PRNG key.
          x, y, y_prime: integer index arrays of one common (broadcastable) shape.

        Returns:
          int32 labels of the broadcast shape (1 when ``y`` wins).
        """
        return bernoulli_labels(key, jax.numpy.asarray(self.P)[x, y, y_prime])

    def __repr__(self) -> str:
        return (
            f"PreferenceGame(num_prompts={self.num_prompts}, "
            f"num_responses={self.num_responses}, dtype={self.dtype})"
        )


def zipf_policy(ranks, exponent) -> np.ndarray:
    """A Zipf-like policy ``pi(y) = (1 + rank(y))^-exponent / Z`` along the last axis.

    The usual unevenly covering reference of simulation studies: rank 0 is the most likely
    response.

    Args:
      ranks: (..., Y) non-negative ranks (any real values >= 0; ties share a probability).
      exponent: finite ``s >= 0`` (0: uniform).

    Returns:
      (..., Y) float64 probabilities summing to 1 along the last axis.

    Example:
      >>> zipf_policy(np.arange(3), 1.0).round(3)
      array([0.545, 0.273, 0.182])
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim < 1 or ranks.shape[-1] == 0 or not np.all(np.isfinite(ranks)) or np.any(
            ranks < 0):
        raise InvalidInputError(f"ranks: must be a non-empty (..., Y) array of finite values "
                                f">= 0, got shape {ranks.shape}")
    exponent = checked_real(exponent, "exponent", lambda v: np.isfinite(v) and v >= 0,
                            "be finite and >= 0")
    weights = (1.0 + ranks) ** -exponent
    return weights / weights.sum(-1, keepdims=True)


def stack_games(games) -> PreferenceGame:
    """Games of equal shapes as one pytree with a leading game axis, in float64 NumPy arrays.

    The result is what ``jax.vmap`` over games takes (``in_axes=0``); under jax's x64 mode its
    leaves stay float64. Each game is validated at its own construction; this only checks
    that the shapes agree.

    Args:
      games: a non-empty sequence of :class:`PreferenceGame` with equal ``P`` shapes.

    Returns:
      A :class:`PreferenceGame` pytree whose leaves have a leading axis of ``len(games)``.

    Example:
      >>> import nlhf_theory as nt
      >>> stacked = nt.stack_games([nt.make_game("comal_cyclic"),
      ...                           nt.make_game("rock_paper_scissors")])
      >>> stacked.P.shape
      (2, 1, 3, 3)
    """
    games = list(games) if isinstance(games, (list, tuple)) else None
    if not games or not all(isinstance(g, PreferenceGame) for g in games):
        raise InvalidInputError("games: expected a non-empty sequence of PreferenceGame")
    if len({g.P.shape for g in games}) > 1:
        raise InvalidInputError(f"games: need equal shapes, got P shapes "
                                f"{sorted({g.P.shape for g in games})}")
    return jax.tree_util.tree_map(lambda *a: np.stack(a), *[g.astype(np.float64) for g in games])


def bernoulli_labels(key, probs):
    """Labels ``1 ~ Bernoulli(probs)`` as int32, drawn from an explicit PRNG key."""
    return jax.random.bernoulli(key, probs).astype(jax.numpy.int32)
