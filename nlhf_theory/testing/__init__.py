"""Hypothesis strategies for property-based tests of preference games and their solvers.

Public, reusable strategies in the style of ``xarray.testing.strategies``: each data strategy is
an ``@st.composite`` function with keyword-only parameters that themselves accept strategies
(a non-strategy where a strategy is expected raises ``TypeError`` when the strategy is drawn
from), built from :mod:`hypothesis.extra.numpy`. Use them in your own tests of preference
learning code::

    from hypothesis import given
    import nlhf_theory as nt
    from nlhf_theory import testing as ntst

    @given(ntst.games(), ntst.betas())
    def test_equilibrium_is_certified(game, beta):
        assert nt.solve_regularized_nash(game, beta).duality_gap <= 1e-10

This module needs `hypothesis <https://hypothesis.readthedocs.io>`_, which is not a runtime
dependency of ``nlhf_theory``: install the ``test`` extra (``pip install nlhf_theory[test]``).

Conventions are those of ``docs/conventions.md``: ``P[x, y, y'] = Pr(y beats y' | x)`` with
``P + P^T = 1`` (diagonal 1/2), policies of shape ``(X, Y)`` whose rows lie on the simplex,
``beta`` the KL coefficient.
"""

from __future__ import annotations

import hypothesis.extra.numpy as npst
import hypothesis.strategies as st
import numpy as np

from nlhf_theory.games import LinearPreferenceModel, PreferenceGame, bradley_terry

__all__ = [
    "assert_converges",
    "betas",
    "bradley_terry_games",
    "games",
    "linear_models",
    "policies",
    "preference_matrices",
    "reference_policies",
    "tolerance",
]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# Argument checks -----------------------------------------------------------------------------
def _check_strategy(value, name: str) -> st.SearchStrategy:
    """``value`` if it is a hypothesis strategy; ``TypeError`` otherwise (as xarray does)."""
    if not isinstance(value, st.SearchStrategy):
        raise TypeError(
            f"{name}: must be a hypothesis strategy (e.g. st.just({value!r})), got "
            f"{type(value).__name__}"
        )
    return value


def _draw_size(draw: st.DrawFn, value, name: str) -> int:
    """A size given as an int or a strategy of ints, drawn and checked to be >= 1."""
    if isinstance(value, st.SearchStrategy):
        value = draw(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: must be an int or a strategy of ints, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}: must be >= 1, got {value}")
    return int(value)


def _draw_dtype(draw: st.DrawFn, dtype) -> np.dtype:
    """A float32/float64 dtype, given directly or as a strategy of dtypes."""
    if isinstance(dtype, st.SearchStrategy):
        dtype = draw(dtype)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"dtype: must be a numpy dtype or a strategy of them, got {dtype!r}") from exc
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: must be float32 or float64, got {dtype}")
    return dtype


def _positive_weights(draw: st.DrawFn, shape: tuple, min_prob: float) -> np.ndarray:
    """Rows on the simplex with every entry >= ``min_prob``, spread over several decades."""
    num = shape[-1]
    if not 0.0 <= min_prob * num < 1.0:
        raise ValueError(
            f"min_prob: need 0 <= min_prob * num_responses < 1, got {min_prob} * {num}"
        )
    log10_w = draw(npst.arrays(np.float64, shape, elements=st.floats(-3.0, 0.0)))
    w = 10.0**log10_w
    w /= w.sum(axis=-1, keepdims=True)
    return min_prob + (1.0 - num * min_prob) * w


# Scalars ---------------------------------------------------------------------------------------
def tolerance(dtype) -> float:
    """Absolute tolerance for comparing computed quantities stored in ``dtype``.

    ``1e-5`` for float32 (and lower precision) and ``1e-10`` for float64: the accuracy a
    well-conditioned metric or certified solution of a small game (Y <= 20, beta >= 1e-3)
    reaches, with a margin of about 100 ulps times the largest logit ``1 / beta``. It is looser
    than the *input validation* tolerance of :class:`~nlhf_theory.PreferenceGame` for float32
    data (also 1e-5) and tighter for float64 (validation accepts 1e-9).

    Example:
      >>> import numpy as np
      >>> from nlhf_theory.testing import tolerance
      >>> tolerance(np.float32), tolerance(np.float64)
      (1e-05, 1e-10)
    """
    return 1e-10 if np.dtype(dtype) == np.float64 else 1e-5


def betas(*, min_value: float = 1e-3, max_value: float = 10.0) -> st.SearchStrategy[float]:
    """KL coefficients ``beta``, log-uniform in ``[min_value, max_value]`` (default [1e-3, 10]).

    Small ``beta`` (close to the unregularized game) and large ``beta`` (close to ``pi_ref``)
    are drawn as often as ``beta ~ 1``.
    """
    if not 0.0 < min_value <= max_value:
        raise ValueError(f"betas: need 0 < min_value <= max_value, got {min_value}, {max_value}")
    lo, hi = np.log10(min_value), np.log10(max_value)
    return st.floats(lo, hi).map(lambda e: float(min(max(10.0**e, min_value), max_value)))


# Arrays ----------------------------------------------------------------------------------------
@st.composite
def preference_matrices(
    draw: st.DrawFn,
    *,
    num_responses: st.SearchStrategy[int] = st.integers(2, 8),
    num_prompts: st.SearchStrategy[int] = st.integers(1, 3),
    dtype=np.float64,
    deterministic: st.SearchStrategy[bool] = st.booleans(),
) -> np.ndarray:
    """Skew preference arrays ``P`` of shape ``(X, Y, Y)`` with entries in ``[0, 1]``.

    The strict lower triangle is drawn, the upper triangle is ``1 - `` its transpose and the
    diagonal is 1/2, so ``P + P^T = 1`` up to one rounding of ``dtype``. Entries are drawn from
    ``[0, 1]`` (hypothesis favours the endpoints, i.e. sure wins and losses) or, when
    ``deterministic`` draws True, from ``{0, 1/2, 1}`` (a tournament with ties).

    Args:
      num_responses: strategy for ``Y``.
      num_prompts: strategy for ``X``.
      dtype: ``np.float32`` or ``np.float64`` (or a strategy of them).
      deterministic: strategy deciding whether the entries are restricted to ``{0, 1/2, 1}``.

    Returns:
      A strategy of ``(X, Y, Y)`` numpy arrays of ``dtype``.
    """
    _check_strategy(num_responses, "num_responses")
    _check_strategy(num_prompts, "num_prompts")
    _check_strategy(deterministic, "deterministic")
    Y = _draw_size(draw, num_responses, "num_responses")
    X = _draw_size(draw, num_prompts, "num_prompts")
    dtype = _draw_dtype(draw, dtype)
    if draw(deterministic):
        elements = st.sampled_from([0.0, 0.5, 1.0])
    else:
        elements = st.floats(0.0, 1.0, allow_subnormal=False)
    lower = draw(npst.arrays(np.float64, (X, Y, Y), elements=elements))
    lower = np.tril(lower, -1)
    P = lower + np.triu(1.0 - np.swapaxes(lower, -1, -2), 1)
    P[:, np.arange(Y), np.arange(Y)] = 0.5
    return P.astype(dtype)


@st.composite
def reference_policies(
    draw: st.DrawFn, *, num_prompts, num_responses, min_prob: float = 1e-3, dtype=np.float64
) -> np.ndarray:
    """Strictly positive reference policies ``pi_ref`` of shape ``(X, Y)``.

    Each row sums to 1 and every entry is at least ``min_prob``; the weights above that floor
    are log-uniform over three decades, so both near-uniform and peaked references occur.

    Args:
      num_prompts: ``X``, an int or a strategy of ints.
      num_responses: ``Y``, an int or a strategy of ints.
      min_prob: floor on every probability; needs ``min_prob * Y < 1``.
      dtype: ``np.float32`` or ``np.float64`` (or a strategy of them).
    """
    X = _draw_size(draw, num_prompts, "num_prompts")
    Y = _draw_size(draw, num_responses, "num_responses")
    dtype = _draw_dtype(draw, dtype)
    return _positive_weights(draw, (X, Y), float(min_prob)).astype(dtype)


@st.composite
def policies(
    draw: st.DrawFn, *, num_prompts, num_responses, allow_zeros: bool = True, dtype=np.float64
) -> np.ndarray:
    """Policies of shape ``(X, Y)``: every row on the probability simplex.

    With ``allow_zeros`` (default) rows may put probability 0 on some responses, including
    pure (one-hot) policies; otherwise every entry is at least 1e-6.

    Args:
      num_prompts: ``X``, an int or a strategy of ints.
      num_responses: ``Y``, an int or a strategy of ints.
      allow_zeros: whether entries may be exactly 0.
      dtype: ``np.float32`` or ``np.float64`` (or a strategy of them).
    """
    X = _draw_size(draw, num_prompts, "num_prompts")
    Y = _draw_size(draw, num_responses, "num_responses")
    dtype = _draw_dtype(draw, dtype)
    if not allow_zeros:
        return _positive_weights(draw, (X, Y), 1e-6 if Y * 1e-6 < 1 else 0.0).astype(dtype)
    w = draw(npst.arrays(np.float64, (X, Y),
                         elements=st.one_of(st.just(0.0), st.floats(1e-3, 1.0))))
    for x in np.flatnonzero(w.sum(axis=-1) == 0.0):  # an all-zero row becomes a pure policy
        w[x, draw(st.integers(0, Y - 1))] = 1.0
    return (w / w.sum(axis=-1, keepdims=True)).astype(dtype)


# Games -----------------------------------------------------------------------------------------
def _maybe_reference(draw, reference, X, Y, dtype):
    _check_strategy(reference, "reference")
    if draw(reference):
        return draw(reference_policies(num_prompts=X, num_responses=Y, dtype=dtype))
    return None


def _maybe_weights(draw, prompt_weights, X):
    _check_strategy(prompt_weights, "prompt_weights")
    if draw(prompt_weights):
        return draw(reference_policies(num_prompts=1, num_responses=X, min_prob=0.01))[0]
    return None


@st.composite
def games(
    draw: st.DrawFn,
    *,
    reference: st.SearchStrategy[bool] = st.booleans(),
    prompt_weights: st.SearchStrategy[bool] = st.booleans(),
    **matrix_options,
) -> PreferenceGame:
    """Tabular :class:`~nlhf_theory.PreferenceGame` objects.

    ``P`` is drawn by :func:`preference_matrices`; ``pi_ref`` is uniform or, when
    ``reference`` draws True, drawn by :func:`reference_policies`; the prompt distribution is
    uniform or, when ``prompt_weights`` draws True, a random distribution with every weight
    >= 0.01. The game keeps ``P``'s dtype.

    Args:
      reference: strategy deciding whether ``pi_ref`` is random (True) or uniform (False).
      prompt_weights: strategy deciding whether ``d0`` is random (True) or uniform (False).
      **matrix_options: ``num_responses``, ``num_prompts``, ``dtype``, ``deterministic``,
        passed to :func:`preference_matrices` (with its defaults).
    """
    P = draw(preference_matrices(**matrix_options))
    X, Y = P.shape[0], P.shape[-1]
    pi_ref = _maybe_reference(draw, reference, X, Y, P.dtype)
    weights = _maybe_weights(draw, prompt_weights, X)
    return PreferenceGame(P, pi_ref, weights)


@st.composite
def bradley_terry_games(
    draw: st.DrawFn,
    *,
    num_responses: st.SearchStrategy[int] = st.integers(2, 8),
    num_prompts: st.SearchStrategy[int] = st.integers(1, 3),
    rewards: st.SearchStrategy[float] = st.floats(-3.0, 3.0),
    reference: st.SearchStrategy[bool] = st.booleans(),
) -> PreferenceGame:
    """Bradley-Terry-realizable games ``P[x, y, y'] = sigmoid(r(x, y) - r(x, y'))`` (float64).

    Built with :func:`nlhf_theory.bradley_terry`. Use ``rewards`` to control the reward
    entries (for instance ``st.integers(-3, 3).map(float)`` for ties).

    Args:
      num_responses: strategy for ``Y``.
      num_prompts: strategy for ``X``.
      rewards: strategy for each entry of the ``(X, Y)`` reward array.
      reference: strategy deciding whether ``pi_ref`` is random (True) or uniform (False).
    """
    _check_strategy(num_responses, "num_responses")
    _check_strategy(num_prompts, "num_prompts")
    _check_strategy(rewards, "rewards")
    Y = _draw_size(draw, num_responses, "num_responses")
    X = _draw_size(draw, num_prompts, "num_prompts")
    r = draw(npst.arrays(np.float64, (X, Y), elements=rewards))
    pi_ref = _maybe_reference(draw, reference, X, Y, np.float64)
    return bradley_terry(r, pi_ref)


@st.composite
def linear_models(
    draw: st.DrawFn,
    *,
    link: st.SearchStrategy[str] = st.sampled_from(["logistic", "identity"]),
    num_responses: st.SearchStrategy[int] = st.integers(2, 6),
    num_prompts: st.SearchStrategy[int] = st.integers(1, 2),
    dim: st.SearchStrategy[int] = st.integers(1, 4),
    reference: st.SearchStrategy[bool] = st.booleans(),
) -> LinearPreferenceModel:
    """:class:`~nlhf_theory.LinearPreferenceModel` objects with antisymmetric features.

    Features are ``psi = F - swap(F)`` for ``F`` with entries in ``[-1, 1]`` (so
    ``psi(x, y, y') = -psi(x, y', y)``), ``theta`` has entries in ``[-2, 2]``; for the identity
    link ``theta`` is scaled down so that ``|theta . psi| <= 1/2`` (``P`` stays in ``[0, 1]``).

    Args:
      link: strategy for the link, ``"logistic"`` or ``"identity"``.
      num_responses: strategy for ``Y``.
      num_prompts: strategy for ``X``.
      dim: strategy for the feature dimension ``d``.
      reference: strategy deciding whether ``pi_ref`` is random (True) or uniform (False).
    """
    for value, name in ((link, "link"), (num_responses, "num_responses"),
                        (num_prompts, "num_prompts"), (dim, "dim")):
        _check_strategy(value, name)
    link = draw(link)
    Y = _draw_size(draw, num_responses, "num_responses")
    X = _draw_size(draw, num_prompts, "num_prompts")
    d = _draw_size(draw, dim, "dim")
    unit = st.floats(-1.0, 1.0, allow_subnormal=False)
    F = draw(npst.arrays(np.float64, (X, Y, Y, d), elements=unit))
    psi = F - np.swapaxes(F, 1, 2)
    theta = 2.0 * draw(npst.arrays(np.float64, (d,), elements=unit))
    if link == "identity":
        worst = float(np.max(np.abs(psi @ theta)))
        if worst > 0.5:
            theta = theta * (0.5 / worst)
    pi_ref = _maybe_reference(draw, reference, X, Y, np.float64)
    return LinearPreferenceModel(psi, theta, link, pi_ref)


from nlhf_theory.testing._convergence import assert_converges  # noqa: E402
