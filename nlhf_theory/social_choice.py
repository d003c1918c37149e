"""Reward models as voting rules: Bradley-Terry projections, Borda counts, Condorcet winners.

A Bradley-Terry (BT) reward model fitted to a preference ``P`` that no reward represents
(intransitive, or aggregated over hidden annotator types) is a social-choice rule. Its
population fit under a product pair distribution ``mu x mu`` ranks the responses exactly by
the ``mu``-weighted Borda count (Siththaranjan et al. 2023, arXiv:2312.08358, Thm. 3.1, for
uniform ``mu``), which can differ from the Condorcet winner and the maximal lottery (the Nash
solution of Munos et al. 2023, arXiv:2312.00886). Rewards are returned mean-centred per
prompt: BT identifies ``r`` only up to an additive ``c(x)``. The finite-sample fit
:func:`bradley_terry_fit` is defined in :mod:`nlhf_theory.estimation` (re-exported here).
"""

from __future__ import annotations

import numpy as np

from nlhf_theory.estimation import bradley_terry_fit
from nlhf_theory.games import PreferenceGame
from nlhf_theory.validation import (
    check_shape,
    check_simplex,
    float_array,
)

__all__ = [
    "borda_count",
    "bradley_terry_fit",
    "bradley_terry_misspecification",
    "bradley_terry_projection",
    "find_condorcet_winner",
]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _preference(P) -> np.ndarray:
    """``P`` validated (skew, entries in [0, 1]) as a float64 (X, Y, Y) array."""
    return np.asarray(PreferenceGame(P).P, dtype=np.float64)


def _unbatch(values: np.ndarray, P) -> np.ndarray:
    """Drop the prompt axis of ``values`` when ``P`` was given as a (Y, Y) matrix."""
    return values[0] if np.ndim(P) == 2 else values


def _behaviour(behaviour, num_prompts: int, num_responses: int) -> np.ndarray:
    """The pair-sampling policy ``mu`` as an (X, Y) array of positive distributions."""
    if behaviour is None:
        return np.full((num_prompts, num_responses), 1.0 / num_responses)
    mu = float_array(behaviour, "behaviour").astype(np.float64)
    if mu.ndim == 1:
        check_shape(mu, "behaviour", (num_responses,), "Y responses")
        mu = np.broadcast_to(mu, (num_prompts, num_responses))
    check_shape(mu, "behaviour", (num_prompts, num_responses), "(Y,) or (X, Y)")
    return check_simplex(mu, "behaviour", strictly_positive=True)


def bradley_terry_projection(P, behaviour=None, *, ridge: float = 1e-12) -> np.ndarray:
    """Population (infinite-data) Bradley-Terry fit: the cross-entropy projection of ``P``.

    ``r(x) = argmin_r sum_{y, y'} mu(y|x) mu(y'|x) CE(P[x, y, y'], sigma(r_y - r_y'))``: the
    limit of the BT maximum-likelihood reward as the number of comparisons ``(y, y') ~ mu x mu``
    grows, computed by :func:`bradley_terry_fit` on the expected counts
    ``N = mu mu^T + (mu mu^T)^T``, ``W = N * P``. The stationarity condition
    ``sum_{y'} mu(y') sigma(r_y - r_y') = sum_{y'} mu(y') P[y, y']`` makes ``r`` strictly
    increasing in the ``mu``-weighted Borda count (:func:`borda_count`), and ``r`` recovers the
    reward exactly (up to ``c(x)``) when ``P = sigma(r*_y - r*_y')``.

    Args:
      P: (Y, Y) or (X, Y, Y) preference, ``P + P^T = 1``.
      behaviour: (Y,) or (X, Y) pair-sampling policy ``mu`` (entries > 0), default uniform.
      ridge: prior precision (default 1e-12: the maximum-likelihood fit up to a bias linear
        in the ridge, about ``ridge |r| / min_{y, y'} mu(y) mu(y')``: 1e-8 in
        ``sigma(r_y - r_y')`` when ``mu`` has entries ~1e-3).

    Returns:
      (Y,) or (X, Y) float64 rewards (the shape of ``P`` without its last axis), mean-centred
      per prompt.

    References:
      Siththaranjan, Laidlaw & Hadfield-Menell 2023, arXiv:2312.08358, Thm. 3.1 (the BT
      population fit aggregates hidden context by Borda count); Chaudhari et al. 2024,
      arXiv:2404.08555, Sec. 5.1 (misspecification).
    """
    Pv = _preference(P)
    mu = _behaviour(behaviour, Pv.shape[0], Pv.shape[-1])
    pair = mu[:, :, None] * mu[:, None, :]
    counts = pair + np.swapaxes(pair, 1, 2)
    return _unbatch(bradley_terry_fit(counts * Pv, counts, ridge=ridge), P)


def borda_count(P, behaviour=None) -> np.ndarray:
    """The (weighted) Borda count ``B(x, y) = sum_{y'} mu(y'|x) P[x, y, y']``.

    With the default uniform ``mu`` it is ``mean_{y'} P(y > y')`` (the diagonal, 1/2, included:
    an affine function of the classical count ``sum_{y' != y} P(y > y')``).

    Args:
      P: (Y, Y) or (X, Y, Y) preference, ``P + P^T = 1``.
      behaviour: (Y,) or (X, Y) weights ``mu`` on the opponents (entries > 0), default uniform.

    Returns:
      (Y,) or (X, Y) float64 scores in [0, 1].

    References:
      de Borda 1781; Siththaranjan et al. 2023, arXiv:2312.08358, Sec. 3 (Borda count of
      hidden-context preferences).
    """
    Pv = _preference(P)
    mu = _behaviour(behaviour, Pv.shape[0], Pv.shape[-1])
    return _unbatch(np.einsum("xab,xb->xa", Pv, mu), P)


def bradley_terry_misspecification(P, reward, *, per_prompt: bool = False):
    """How far ``P`` is from a Bradley-Terry model: ``max_{y, y'} |P[y, y'] - sigma(r_y - r_y')|``.

    Args:
      P: (Y, Y) or (X, Y, Y) preference, ``P + P^T = 1``.
      reward: (Y,) or (X, Y) finite rewards (e.g. :func:`bradley_terry_projection` of ``P``).
      per_prompt: return one value per prompt (X,) instead of the maximum over prompts.

    Returns:
      A float in [0, 1] (or an (X,) array).

    References:
      Chaudhari et al. 2024, arXiv:2404.08555, Sec. 5.1 (reward misspecification).
    """
    Pv = _preference(P)
    r = float_array(reward, "reward").astype(np.float64)
    r = r[None] if r.ndim == 1 else r
    check_shape(r, "reward", Pv.shape[:2], "(Y,) or (X, Y), matching P")
    gap = np.abs(Pv - _sigmoid(r[:, :, None] - r[:, None, :])).max(axis=(1, 2))
    return gap if per_prompt else float(gap.max())


def find_condorcet_winner(P):
    """The Condorcet winner per prompt: the ``y`` with ``P[y, y'] > 1/2`` for every ``y' != y``.

    A Condorcet winner is the unique maximal lottery (pure), and exists only if ``P`` has no
    cycle through it.

    Args:
      P: (Y, Y) or (X, Y, Y) preference, ``P + P^T = 1``.

    Returns:
      An int (or an (X,) int array): the winner's index, -1 where there is none.

    References:
      Condorcet 1785; Fishburn 1984 (maximal lotteries); Munos et al. 2023, arXiv:2312.00886.
    """
    Pv = _preference(P)
    Y = Pv.shape[-1]
    beats = (Pv > 0.5) | np.eye(Y, dtype=bool)
    wins_all = beats.all(axis=-1)
    winner = np.where(wins_all.any(-1), wins_all.argmax(-1), -1)
    return int(winner[0]) if np.ndim(P) == 2 else winner
