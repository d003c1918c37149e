"""Tests of nlhf_theory.games._named: the registry and the named games from the literature."""

import inspect

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.special import expit

import nlhf_theory as nt
from nlhf_theory import InvalidInputError


# The registry ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(nt.GAMES))
def test_every_game_builds_with_defaults(name):
    game = nt.make_game(name)
    assert isinstance(game, nt.PreferenceGame)
    P = game.P
    assert game.num_responses >= 2
    assert P.min() >= 0.0 and P.max() <= 1.0
    np.testing.assert_allclose(P + np.swapaxes(P, -1, -2), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(game.pi_ref.sum(-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nt.GAMES[name]().P, P, rtol=0, atol=0)  # deterministic


@pytest.mark.parametrize("name", sorted(nt.GAMES))
def test_every_factory_documents_references(name):
    doc = inspect.getdoc(nt.GAMES[name])
    assert doc, f"{name} has no docstring"
    assert "References:" in doc, f"{name}'s docstring has no References section"
    references = doc.split("References:")[1].strip()
    assert len(references) > 20


def test_list_games():
    listed = nt.list_games()
    assert [name for name, _ in listed] == list(nt.GAMES)
    for name, description in listed:
        assert isinstance(description, str) and description.strip()
        assert description == inspect.getdoc(nt.GAMES[name]).splitlines()[0]


def test_make_game_unknown_name():
    with pytest.raises(InvalidInputError, match=r"^game: unknown name 'no_such_game'"):
        nt.make_game("no_such_game")


def test_make_game_unknown_kwarg():
    with pytest.raises(InvalidInputError, match=r"^num_actions: not a parameter"):
        nt.make_game("random_skew", num_actions=3)


def test_make_game_forwards_kwargs():
    game = nt.make_game("random_skew", num_responses=6, num_prompts=2, seed=5)
    assert (game.num_prompts, game.num_responses) == (2, 6)
    np.testing.assert_array_equal(game.P, nt.random_skew(6, 2, seed=5).P)


# Individual games --------------------------------------------------------------------------
def test_rock_paper_scissors_orientation():
    P = nt.rock_paper_scissors().P[0]
    rock, paper, scissors = 0, 1, 2
    assert P[paper, rock] == 1.0 and P[scissors, paper] == 1.0 and P[rock, scissors] == 1.0
    game = nt.rock_paper_scissors(pi_ref=[0.6, 0.3, 0.1])
    np.testing.assert_allclose(game.pi_ref[0], [0.6, 0.3, 0.1], rtol=0, atol=1e-15)


def test_biased_rock_paper_scissors_is_openspiel_matrix():
    # open_spiel/python/algorithms/lp_solver_test.py, test_biased_rock_paper_scissors
    M = np.array([[0.0, -0.25, 0.5], [0.25, 0.0, -0.05], [-0.5, 0.05, 0.0]])
    np.testing.assert_allclose(nt.biased_rock_paper_scissors().P[0], 0.5 + M, rtol=0, atol=1e-15)


def test_comal_cyclic_matrix():
    a, b, c = 0, 1, 2
    P = nt.comal_cyclic().P[0]
    np.testing.assert_allclose([P[b, a], P[c, b], P[a, c]], [0.9, 0.9, 0.8], rtol=0, atol=1e-15)


def test_bradley_terry_matrix():
    r = np.array([[1.0, 0.0, -0.5], [0.0, 2.0, 1.0]])
    game = nt.bradley_terry(r, prompt_weights=[0.3, 0.7])
    np.testing.assert_allclose(game.P, expit(r[:, :, None] - r[:, None, :]), rtol=0, atol=1e-15)
    np.testing.assert_allclose(nt.bradley_terry().P[0, 0, 1], expit(1.0), rtol=0, atol=1e-15)
    with pytest.raises(InvalidInputError, match="^reward:"):
        nt.bradley_terry(np.zeros((1, 2, 3)))


def test_random_skew():
    game = nt.random_skew(6, 3, seed=7)
    assert (game.num_prompts, game.num_responses) == (3, 6)
    np.testing.assert_array_equal(game.P, nt.random_skew(6, 3, seed=7).P)
    assert np.max(np.abs(game.P - nt.random_skew(6, 3, seed=8).P)) > 0.1
    np.testing.assert_allclose(game.pi_ref, 1 / 6, rtol=0, atol=1e-15)
    random_ref = nt.random_skew(6, 3, seed=7, random_ref=True).pi_ref
    assert np.ptp(random_ref) > 0.05
    lower = game.P[:, np.tril_indices(6, -1)[0], np.tril_indices(6, -1)[1]]
    assert lower.min() >= 0 and lower.max() <= 1 and np.ptp(lower) > 0.5
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="^num_responses:"):
            nt.random_skew(bad)
    with pytest.raises(InvalidInputError, match="^num_prompts:"):
        nt.random_skew(3, 0)


def test_annotator_mixture_matrix_and_maximal_lottery():
    rewards = np.array([[4.0, 2.0, 0.0], [0.0, 4.0, 2.0], [2.0, 0.0, 4.0]])
    w = np.array([0.4, 0.35, 0.25])
    expected = sum(wk * expit(rk[:, None] - rk[None, :]) for wk, rk in zip(w, rewards))
    P = nt.annotator_mixture().P[0]
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-15)
    # The docstring's maximal lottery (0.591, 0.128, 0.282), by an LP written here:
    # max v s.t. (P^T p)(y') >= v for all y', p in the simplex.
    res = linprog(np.r_[0, 0, 0, -1.0], A_ub=np.c_[-P.T, np.ones(3)], b_ub=np.zeros(3),
                  A_eq=[[1, 1, 1, 0]], b_eq=[1], bounds=[(0, None)] * 3 + [(None, None)],
                  method="highs-ds")
    np.testing.assert_allclose(res.x[:3], [0.591, 0.128, 0.282], rtol=0, atol=1e-3)
    with pytest.raises(InvalidInputError, match="^weights:"):
        nt.annotator_mixture(weights=(0.5, 0.5))
    with pytest.raises(InvalidInputError, match="^weights:"):
        nt.annotator_mixture(weights=(0.5, 0.5, 0.5))


def test_condorcet_cycle():
    P = nt.condorcet_cycle().P[0]
    a, b, c = 0, 1, 2
    np.testing.assert_allclose([P[a, b], P[b, c], P[c, a]], 2 / 3, rtol=0, atol=1e-15)


def test_condorcet_winner_is_not_borda_winner():
    P = nt.condorcet_winner().P[0]
    a, b, c = 0, 1, 2
    np.testing.assert_allclose([P[a, b], P[a, c], P[b, c]], [0.6, 0.6, 1.0], rtol=0,
                               atol=1e-15)
    # Borda score (expected wins against a uniform opponent): b's is the highest.
    borda = (P - 0.5 * np.eye(3)).sum(axis=1)
    assert np.argmax(borda) == b


def test_voting_game():
    P = nt.voting_game([[0, 1, 2], [2, 1, 0]], weights=[0.7, 0.3]).P[0]
    expected = np.array([[0.5, 0.7, 0.7], [0.3, 0.5, 0.7], [0.3, 0.3, 0.5]])
    np.testing.assert_allclose(P, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kwargs,name", [
    (dict(rankings=[[0, 1, 1]]), "rankings"),
    (dict(rankings=[[0.0, 1.0]]), "rankings"),
    (dict(rankings=[0, 1, 2]), "rankings"),
    (dict(rankings=[[0, 1], [1, 0]], weights=[1.0]), "weights"),
    (dict(rankings=[[0, 1], [1, 0]], weights=[0.9, 0.9]), "weights"),
])
def test_voting_game_bad_input(kwargs, name):
    with pytest.raises(InvalidInputError, match=rf"^{name}:"):
        nt.voting_game(**kwargs)


@pytest.mark.parametrize("epsilon", [-0.2, 0.0, 0.1, 0.3])
def test_munos_nontransitive(epsilon):
    # Munos et al. 2023, Sec. 3: Nash probabilities (1/3 + eps/2, 1/3 + eps/2, 1/3 - eps).
    P = nt.munos_nontransitive(epsilon).P[0]
    res = linprog(np.r_[0, 0, 0, -1.0], A_ub=np.c_[-P.T, np.ones(3)], b_ub=np.zeros(3),
                  A_eq=[[1, 1, 1, 0]], b_eq=[1], bounds=[(0, None)] * 3 + [(None, None)],
                  method="highs-ds")  # max v s.t. (P^T p)(y') >= v, written independently
    expected = np.array([1 / 3 + epsilon / 2, 1 / 3 + epsilon / 2, 1 / 3 - epsilon])
    np.testing.assert_allclose(res.x[:3], expected, rtol=0, atol=1e-9)
    # Borda count (expected number of responses beaten) = (1 + 3 eps/4, 1 - 3 eps/4, 1): the
    # Bradley-Terry / reward-model optimum is y1 for eps > 0 and y2 for eps < 0
    borda = P.sum(axis=1) - 0.5
    np.testing.assert_allclose(borda, [1 + 0.75 * epsilon, 1 - 0.75 * epsilon, 1.0], rtol=0,
                               atol=1e-15)
    # type 1 (share 1/3 - eps) prefers y2 to y1, the others are indifferent on that pair
    assert P[1, 0] == pytest.approx((1 / 3 - epsilon) + 0.5 * (2 / 3 + epsilon), abs=1e-15)


@pytest.mark.parametrize("epsilon", [0.34, -0.5, np.nan])
def test_munos_nontransitive_bad_epsilon(epsilon):
    with pytest.raises(InvalidInputError, match="^epsilon:"):
        nt.munos_nontransitive(epsilon)


def test_random_skew_seed_must_be_a_nonnegative_integer():
    for seed in (-3, 1.5, "1"):
        with pytest.raises(nt.InvalidInputError, match="seed: must be an integer >= 0"):
            nt.make_game("random_skew", seed=seed)
    assert nt.make_game("random_skew", seed=0).num_responses == 10
