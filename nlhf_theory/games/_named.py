"""Named preference games from the literature, and a registry of them by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from nlhf_theory.games._game import PreferenceGame
from nlhf_theory.validation import (
    InvalidInputError,
    check_simplex,
    float_array,
    nonnegative_int,
    positive_int,
)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def rock_paper_scissors(pi_ref=None) -> PreferenceGame:
    """Rock-paper-scissors with deterministic wins (responses: rock, paper, scissors).

    ``P[paper, rock] = P[scissors, paper] = P[rock, scissors] = 1``. With a uniform ``pi_ref``
    the regularized equilibrium is uniform for every ``beta`` (and so is the maximal lottery).

    References:
      Munos et al. 2023, arXiv:2312.00886, Sec. 3 (non-transitive preferences); the standard
      cyclic example of von Neumann & Morgenstern 1944.
    """
    P = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])
    return PreferenceGame(P, pi_ref)


def biased_rock_paper_scissors() -> PreferenceGame:
    """OpenSpiel's biased rock-paper-scissors: maximal lottery ``(1/16, 10/16, 5/16)``.

    ``P = 1/2 + M`` with the zero-sum payoff
    ``M = [[0, -0.25, 0.5], [0.25, 0, -0.05], [-0.5, 0.05, 0]]``.

    References:
      Bosansky et al. 2016, "Algorithms for computing strategies in two-player simultaneous
      move games", Artif. Intell. 237, Sec. 6.2; OpenSpiel
      ``open_spiel/python/algorithms/lp_solver_test.py`` (``test_biased_rock_paper_scissors``).
    """
    M = np.array([[0.0, -0.25, 0.5], [0.25, 0.0, -0.05], [-0.5, 0.05, 0.0]])
    return PreferenceGame(0.5 + M)


def comal_cyclic(pi_ref=None) -> PreferenceGame:
    """The 3x3 cyclic game of COMAL: ``P[b>a] = P[c>b] = 0.9``, ``P[a>c] = 0.8``.

    Responses ``(a, b, c)``; its maximal lottery is ``(4/11, 3/11, 4/11)``, while
    fixed-reference methods converge to the regularized equilibrium and keep a constant gap.

    References:
      Liu et al. 2024, "COMAL: A Convergent Meta-Algorithm for Aligning LLMs with General
      Preferences", arXiv:2410.23223, Sec. 5 (synthetic experiment).
    """
    P = np.array([[0.5, 0.1, 0.8], [0.9, 0.5, 0.1], [0.2, 0.9, 0.5]])
    return PreferenceGame(P, pi_ref)


def bradley_terry(reward=(1.0, 0.0, -0.5), pi_ref=None, prompt_weights=None) -> PreferenceGame:
    """Bradley-Terry-realizable game ``P[x, y, y'] = sigma(r(x, y) - r(x, y'))``.

    The RLHF/DPO optimum is ``pi_ref exp(r / beta) / Z`` (see
    :func:`~nlhf_theory.reward_optimal_policy`), which differs from the regularized Nash
    equilibrium of the same ``P`` (default reward ``(1, 0, -0.5)``: at beta = 1 the equilibrium
    is about ``(0.397, 0.318, 0.285)`` and the RLHF optimum ``(0.629, 0.231, 0.140)``).

    Args:
      reward: (Y,) or (X, Y) finite rewards.
      pi_ref, prompt_weights: as in :class:`~nlhf_theory.PreferenceGame`.

    References:
      Bradley & Terry 1952, Biometrika 39(3/4); Rafailov et al. 2023, arXiv:2305.18290, eq. 1.
    """
    r = float_array(reward, "reward").astype(np.float64)
    if r.ndim not in (1, 2):
        raise InvalidInputError(f"reward: expected shape (Y,) or (X, Y), got {r.shape}")
    return PreferenceGame(_sigmoid(r[..., :, None] - r[..., None, :]), pi_ref, prompt_weights)


def random_skew(num_responses: int = 10, num_prompts: int = 1, seed: int = 0,
                random_ref: bool = False) -> PreferenceGame:
    """Random skew game: ``P[y, y'] ~ U(0, 1)`` below the diagonal, ``P + P^T = 1``.

    Args:
      num_responses: Y >= 1.
      num_prompts: X >= 1 (independent draws per prompt).
      seed: integer >= 0, the seed of ``numpy.random.default_rng``.
      random_ref: if True, ``pi_ref = softmax(N(0, 1) logits)`` per prompt (as in EGPO's
        simulations); uniform otherwise.

    References:
      Zhou, Fazel & Du 2025 (EGPO), arXiv:2503.08942, Sec. 6 and ``zhourunlong/EGPO``
      ``simulations/``: the random tabular games of their experiments.
    """
    Y, X = positive_int(num_responses, "num_responses"), positive_int(num_prompts, "num_prompts")
    rng = np.random.default_rng(nonnegative_int(seed, "seed"))
    lower = np.tril(rng.uniform(size=(X, Y, Y)), -1)
    P = lower + np.triu(1.0 - np.swapaxes(lower, -1, -2), 1)
    P[:, np.arange(Y), np.arange(Y)] = 0.5
    pi_ref = None
    if random_ref:
        logits = rng.standard_normal((X, Y))
        pi_ref = np.exp(logits - logits.max(-1, keepdims=True))
        pi_ref /= pi_ref.sum(-1, keepdims=True)
    return PreferenceGame(P, pi_ref)


def annotator_mixture(rewards=((4.0, 2.0, 0.0), (0.0, 4.0, 2.0), (2.0, 0.0, 4.0)),
                      weights=(0.4, 0.35, 0.25), pi_ref=None) -> PreferenceGame:
    """Hidden annotator populations, each Bradley-Terry: ``P = sum_k w_k sigma(r_k(y) - r_k(y'))``.

    The mixture of transitive populations need not be transitive, and a single Bradley-Terry
    reward fitted to it tracks the Borda count rather than any population's reward. The
    default (three cyclically shifted rewards with shares 0.4, 0.35, 0.25) is intransitive:
    its maximal lottery is about ``(0.591, 0.128, 0.282)``.

    Args:
      rewards: (K, Y) or (K, X, Y) rewards of the K populations.
      weights: (K,) population shares, summing to 1.
      pi_ref: as in :class:`~nlhf_theory.PreferenceGame`.

    References:
      Siththaranjan, Laidlaw & Hadfield-Menell 2023, "Distributional Preference Learning",
      arXiv:2312.08358, Thm. 3.1 (BT on hidden context = Borda count); Chaudhari et al. 2024,
      arXiv:2404.08555, Sec. 5.
    """
    r = float_array(rewards, "rewards").astype(np.float64)
    if r.ndim not in (2, 3):
        raise InvalidInputError(f"rewards: expected shape (K, Y) or (K, X, Y), got {r.shape}")
    w = check_simplex(float_array(weights, "weights").astype(np.float64), "weights")
    if w.shape != (r.shape[0],):
        raise InvalidInputError(f"weights: expected shape ({r.shape[0]},), got {w.shape}")
    P = np.tensordot(w, _sigmoid(r[..., :, None] - r[..., None, :]), axes=1)
    return PreferenceGame(P, pi_ref)


def voting_game(rankings, weights=None, pi_ref=None) -> PreferenceGame:
    """Preferences of voter populations with strict rankings (deterministic comparisons).

    ``P[y, y'] = sum of the weights of the voters ranking y above y'`` (ties count 1/2: they
    cannot occur with strict rankings).

    Args:
      rankings: (K, Y) integer array; row k lists the responses from best to worst.
      weights: (K,) shares summing to 1, default uniform.
      pi_ref: as in :class:`~nlhf_theory.PreferenceGame`.

    References:
      Brandt 2017, "Rolling the dice: recent results in probabilistic social choice", in
      Trends in Computational Social Choice (maximal lotteries of majority margins).
    """
    ranks = np.asarray(rankings)
    if ranks.ndim != 2 or not np.issubdtype(ranks.dtype, np.integer):
        raise InvalidInputError(f"rankings: expected an integer array (K, Y), got {ranks.shape}")
    K, Y = ranks.shape
    if not all(sorted(row) == list(range(Y)) for row in ranks.tolist()):
        raise InvalidInputError("rankings: each row must be a permutation of 0..Y-1")
    w = np.full(K, 1.0 / K) if weights is None else check_simplex(
        float_array(weights, "weights").astype(np.float64), "weights")
    if w.shape != (K,):
        raise InvalidInputError(f"weights: expected shape ({K},), got {w.shape}")
    position = np.argsort(ranks, axis=1)  # position[k, y] = rank of y for voter k
    beats = (position[:, :, None] < position[:, None, :]).astype(np.float64)
    P = np.tensordot(w, beats, axes=1)
    P[np.arange(Y), np.arange(Y)] = 0.5
    return PreferenceGame(P, pi_ref)


def condorcet_cycle(weights=(1 / 3, 1 / 3, 1 / 3), pi_ref=None) -> PreferenceGame:
    """Condorcet's paradox: voters ``a>b>c``, ``b>c>a``, ``c>a>b``; majorities cycle.

    With equal weights every pairwise majority is 2/3 and the maximal lottery is uniform; any
    weights each below 1/2 keep the cycle.

    References:
      Condorcet 1785, "Essai sur l'application de l'analyse..."; Munos et al. 2023,
      arXiv:2312.00886, Sec. 3.
    """
    return voting_game([[0, 1, 2], [1, 2, 0], [2, 0, 1]], weights, pi_ref)


def condorcet_winner(pi_ref=None) -> PreferenceGame:
    """Condorcet winner that is not the Borda winner: 3 voters ``a>b>c``, 2 voters ``b>c>a``.

    ``a`` beats ``b`` and ``c`` with probability 3/5 (the maximal lottery is pure ``a``),
    while ``b`` has the highest Borda count (7 against 6 for ``a``): reward-based methods that
    aggregate like Borda and the Nash solution disagree.

    References:
      Siththaranjan et al. 2023, arXiv:2312.08358, Sec. 3 (Borda vs Condorcet); Chaudhari et
      al. 2024, arXiv:2404.08555, Sec. 5.
    """
    return voting_game([[0, 1, 2], [1, 2, 0]], [0.6, 0.4], pi_ref)


def munos_nontransitive(epsilon: float = 0.1, pi_ref=None) -> PreferenceGame:
    """Munos et al.'s non-transitive example: 3 responses, 3 types of humans.

    Type 1 (share ``1/3 - eps``) prefers ``y2`` to ``y1``, type 2 (share ``1/3 + eps/2``)
    prefers ``y1`` to ``y3``, type 3 (share ``1/3 + eps/2``) prefers ``y3`` to ``y2``; each type
    is indifferent (1/2) on its other two comparisons. Hence ``P[y1 > y2] = 1/3 + eps/2``,
    ``P[y1 > y3] = P[y3 > y2] = 2/3 + eps/4``: a cycle whose maximal lottery
    ``(1/3 + eps/2, 1/3 + eps/2, 1/3 - eps)`` moves continuously with ``eps``, while the
    Bradley-Terry reward fitted to it (which follows the Borda count
    ``(1 + 3 eps/4, 1 - 3 eps/4, 1)``) puts all mass on ``y1`` for ``eps > 0`` and on ``y2``
    for ``eps < 0``: the reward-model solution flips as ``eps`` crosses 0.

    Type 1's share and preference and both outcomes are as reported for the paper's example;
    the shares of types 2 and 3 are the ones that reproduce its Nash equilibrium.

    Args:
      epsilon: in ``[-1/3, 1/3]``.
      pi_ref: as in :class:`~nlhf_theory.PreferenceGame`.

    References:
      Munos et al. 2023, "Nash Learning from Human Feedback", arXiv:2312.00886, Sec. 3.2.
    """
    eps = float(epsilon)
    if not -1.0 / 3.0 <= eps <= 1.0 / 3.0:
        raise InvalidInputError(f"epsilon: must lie in [-1/3, 1/3], got {epsilon!r}")
    p12, p13, p32 = 1.0 / 3.0 + eps / 2.0, 2.0 / 3.0 + eps / 4.0, 2.0 / 3.0 + eps / 4.0
    P = np.array([[0.5, p12, p13], [1.0 - p12, 0.5, 1.0 - p32], [1.0 - p13, p32, 0.5]])
    return PreferenceGame(P, pi_ref)


GAMES: dict[str, Callable[..., PreferenceGame]] = {
    "rock_paper_scissors": rock_paper_scissors,
    "biased_rock_paper_scissors": biased_rock_paper_scissors,
    "comal_cyclic": comal_cyclic,
    "munos_nontransitive": munos_nontransitive,
    "bradley_terry": bradley_terry,
    "random_skew": random_skew,
    "annotator_mixture": annotator_mixture,
    "condorcet_cycle": condorcet_cycle,
    "condorcet_winner": condorcet_winner,
}


def list_games() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered game."""
    return [(name, inspect.getdoc(f).splitlines()[0]) for name, f in GAMES.items()]


def make_game(name: str, **kwargs) -> PreferenceGame:
    """Build the registered game ``name`` with optional keyword arguments.

    Example:
      >>> import nlhf_theory as nt
      >>> nt.make_game("random_skew", num_responses=5, seed=1).num_responses
      5
    """
    if name not in GAMES:
        raise InvalidInputError(f"game: unknown name {name!r}; known games: {', '.join(GAMES)}")
    factory = GAMES[name]
    params = inspect.signature(factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        raise InvalidInputError(
            f"{unknown[0]}: not a parameter of game {name!r} (parameters: {', '.join(params)})"
        )
    return factory(**kwargs)
