"""Tests of nlhf_theory.games._game: PreferenceGame and its preference oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory import testing as ntst

RPS = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])


# Construction ----------------------------------------------------------------------------------
def test_single_prompt_defaults():
    game = nt.PreferenceGame(RPS)
    assert game.P.shape == (1, 3, 3)
    assert (game.num_prompts, game.num_responses) == (1, 3)
    np.testing.assert_allclose(game.P[0], RPS, rtol=0, atol=0)
    np.testing.assert_allclose(game.pi_ref, np.full((1, 3), 1 / 3), rtol=0, atol=1e-15)
    np.testing.assert_allclose(game.prompt_weights, [1.0], rtol=0, atol=0)


def test_shared_reference_is_broadcast_over_prompts():
    P = np.stack([RPS, 1.0 - RPS])
    game = nt.PreferenceGame(P, pi_ref=[0.2, 0.3, 0.5], prompt_weights=[0.25, 0.75])
    np.testing.assert_allclose(game.pi_ref, [[0.2, 0.3, 0.5]] * 2, rtol=0, atol=1e-15)
    np.testing.assert_allclose(game.prompt_weights, [0.25, 0.75], rtol=0, atol=1e-15)


def test_projection_onto_exact_skew_and_simplex():
    rng = np.random.default_rng(0)
    noise = 1e-10 * rng.uniform(-1, 1, size=(2, 4, 4))
    P0 = nt.random_skew(4, 2, seed=0).P
    ref0 = np.array([0.1, 0.2, 0.3, 0.4])
    game = nt.PreferenceGame(P0 + noise, ref0 * (1 + 1e-10))
    P = game.P
    assert np.max(np.abs(P + np.swapaxes(P, -1, -2) - 1.0)) <= 2e-16
    np.testing.assert_allclose(np.diagonal(P, axis1=1, axis2=2), 0.5, rtol=0, atol=1e-15)
    np.testing.assert_allclose(P, P0, rtol=0, atol=2e-10)  # projection moves P by at most noise
    np.testing.assert_allclose(game.pi_ref.sum(-1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(game.pi_ref[0], ref0, rtol=0, atol=1e-15)


def test_float32_is_kept():
    game = nt.PreferenceGame(RPS.astype(np.float32), pi_ref=[0.2, 0.3, 0.5])
    assert game.dtype == np.float32
    assert game.P.dtype == game.pi_ref.dtype == game.prompt_weights.dtype == np.float32
    game64 = game.astype(np.float64)
    assert game64.dtype == np.float64
    np.testing.assert_allclose(game64.pi_ref, game.pi_ref, rtol=0, atol=1e-7)
    # upcasting restores the exact constraints in float64
    np.testing.assert_allclose(game64.pi_ref.sum(-1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(game64.P + np.swapaxes(game64.P, -1, -2), 1.0)
    assert game.astype(np.float32) is game
    with pytest.raises(InvalidInputError, match="dtype"):
        game.astype(np.int32)


def test_integer_reference_becomes_float():
    game = nt.PreferenceGame([[0.5]], pi_ref=np.array([1]), prompt_weights=np.array([1]))
    assert game.pi_ref.dtype == game.prompt_weights.dtype == np.float64


# Immutability and copies -------------------------------------------------------------------
def test_immutable():
    game = nt.PreferenceGame(RPS)
    with pytest.raises(AttributeError):
        game.P = np.zeros((1, 3, 3))
    with pytest.raises(AttributeError):
        game.new_attribute = 1
    for arr in (game.P, game.pi_ref, game.prompt_weights):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[..., 0] = 0.25


def test_inputs_are_copied():
    P = RPS.copy()
    ref = np.array([0.2, 0.3, 0.5])
    game = nt.PreferenceGame(P, ref)
    P[0, 1] = 0.7
    ref[0] = 0.9
    assert game.P[0, 0, 1] == 0.0
    assert game.pi_ref[0, 0] == 0.2


# Pytree ------------------------------------------------------------------------------------
def test_pytree_round_trip():
    game = nt.random_skew(4, 2, seed=1, random_ref=True)
    leaves, treedef = jax.tree_util.tree_flatten(game)
    assert len(leaves) == 3
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(rebuilt, nt.PreferenceGame)
    for a, b in zip((game.P, game.pi_ref, game.prompt_weights),
                    (rebuilt.P, rebuilt.pi_ref, rebuilt.prompt_weights)):
        np.testing.assert_array_equal(a, b)
    doubled = jax.tree_util.tree_map(lambda v: 2 * v, game)
    np.testing.assert_allclose(doubled.pi_ref, 2 * game.pi_ref, rtol=0, atol=0)


def test_usable_as_jit_argument(x32):
    game = nt.random_skew(5, 2, seed=2, random_ref=True)
    pi = np.full((2, 5), 0.2, dtype=np.float32)

    @jax.jit
    def f(g, policy):
        return jnp.einsum("xij,xj->xi", g.P, policy), g.num_responses

    Ppi, Y = f(game, pi)
    assert Y == 5
    np.testing.assert_allclose(Ppi, np.einsum("xij,xj->xi", game.P, pi), rtol=0, atol=1e-6)
    expl = jax.jit(nt.exploitability)(game, jnp.asarray(pi))
    expected = np.mean(np.max(np.einsum("xij,xj->xi", game.P, pi), -1) - 0.5)
    np.testing.assert_allclose(expl, expected, rtol=0, atol=1e-6)


# Oracle ------------------------------------------------------------------------------------
def _oracle_game():
    P = np.array([[0.5, 0.2, 0.9], [0.8, 0.5, 0.35], [0.1, 0.65, 0.5]])
    return nt.PreferenceGame(np.stack([P, P.T]))


def test_oracle_deterministic_under_fixed_key():
    game = _oracle_game()
    x, y, y2 = np.zeros(100, int), np.zeros(100, int), np.full(100, 2)
    a = game.oracle(jax.random.PRNGKey(3), x, y, y2)
    b = game.oracle(jax.random.PRNGKey(3), x, y, y2)
    c = game.oracle(jax.random.PRNGKey(4), x, y, y2)
    np.testing.assert_array_equal(a, b)
    assert np.any(np.asarray(a) != np.asarray(c))
    assert a.dtype == jnp.int32 and a.shape == (100,)
    assert set(np.unique(np.asarray(a))) <= {0, 1}


@pytest.mark.parametrize("x,y,y_prime", [(0, 0, 1), (0, 2, 1), (1, 0, 2), (1, 1, 1)])
def test_oracle_mean(x, y, y_prime):
    game = _oracle_game()
    n = 20000
    labels = game.oracle(jax.random.PRNGKey(0), np.full(n, x), np.full(n, y), np.full(n, y_prime))
    p = game.P[x, y, y_prime]
    se = np.sqrt(p * (1 - p) / n)
    assert abs(np.mean(np.asarray(labels)) - p) <= 4 * se


def test_oracle_sure_outcomes_and_broadcasting():
    game = nt.PreferenceGame(RPS)
    labels = game.oracle(jax.random.PRNGKey(1), 0, np.array([[1], [2]]), np.array([0, 1, 2]))
    assert labels.shape == (2, 3)
    # paper (1) always beats rock (0), scissors (2) always beats paper (1), and the reverse never
    assert int(labels[0, 0]) == 1 and int(labels[1, 1]) == 1
    assert int(labels[0, 2]) == 0 and int(labels[1, 0]) == 0


# Bad input ---------------------------------------------------------------------------------
BAD_GAMES = [
    (dict(P=[[0.5, 0.3], [0.3, 0.5]]), "P"),  # not skew
    (dict(P=[[0.5, 0.4], [0.6, 0.6]]), "P"),  # diagonal not 1/2
    (dict(P=[[0.5, 1.5], [-0.5, 0.5]]), "P"),  # outside [0, 1]
    (dict(P=[[0.5, np.nan], [np.nan, 0.5]]), "P"),
    (dict(P=[[0.5, np.inf], [-np.inf, 0.5]]), "P"),
    (dict(P=np.full((2, 3), 0.5)), "P"),
    (dict(P=np.full((3,), 0.5)), "P"),
    (dict(P=np.full((1, 1, 2, 2), 0.5)), "P"),
    (dict(P=[["a", "b"], ["c", "d"]]), "P"),
    (dict(P=RPS, pi_ref=[0.5, 0.5]), "pi_ref"),
    (dict(P=RPS, pi_ref=np.full((2, 3), 1 / 3)), "pi_ref"),
    (dict(P=RPS, pi_ref=[0.5, 0.5, 0.0]), "pi_ref"),
    (dict(P=RPS, pi_ref=[0.5, 0.5, 0.5]), "pi_ref"),
    (dict(P=RPS, pi_ref=[0.5, 0.6, -0.1]), "pi_ref"),
    (dict(P=RPS, pi_ref=[np.nan, 0.5, 0.5]), "pi_ref"),
    (dict(P=RPS, pi_ref=[np.inf, 0.5, 0.5]), "pi_ref"),
    (dict(P=RPS, prompt_weights=[0.5, 0.5]), "prompt_weights"),
    (dict(P=RPS, prompt_weights=[2.0]), "prompt_weights"),
    (dict(P=np.stack([RPS, RPS]), prompt_weights=[1.5, -0.5]), "prompt_weights"),
]


@pytest.mark.parametrize("kwargs,name", BAD_GAMES)
def test_bad_input(kwargs, name):
    with pytest.raises(InvalidInputError, match=rf"^{name}:"):
        nt.PreferenceGame(**kwargs)


def test_invalid_input_error_is_value_error():
    assert issubclass(InvalidInputError, ValueError)


def test_float32_validation_tolerance():
    # 1e-6 skew violations are rounding noise for float32 data but an error for float64 data
    P = np.array([[0.5, 0.3 + 1e-6], [0.7, 0.5]])
    assert nt.PreferenceGame(P.astype(np.float32)).dtype == np.float32
    with pytest.raises(InvalidInputError, match="P"):
        nt.PreferenceGame(P)


# Properties --------------------------------------------------------------------------------
@given(ntst.games(dtype=st.sampled_from([np.float32, np.float64])))
def test_drawn_games_are_valid(game):
    tol = ntst.tolerance(game.dtype)
    P = game.P
    assert P.shape == (game.num_prompts, game.num_responses, game.num_responses)
    assert P.min() >= 0.0 and P.max() <= 1.0
    assert np.max(np.abs(P + np.swapaxes(P, -1, -2) - 1.0)) <= tol
    assert game.pi_ref.min() > 0.0
    np.testing.assert_allclose(game.pi_ref.sum(-1), 1.0, rtol=0, atol=tol)
    np.testing.assert_allclose(game.prompt_weights.sum(), 1.0, rtol=0, atol=tol)
    # Re-validating a valid game is the identity (up to one rounding).
    again = nt.PreferenceGame(game.P, game.pi_ref, game.prompt_weights)
    np.testing.assert_allclose(again.P, game.P, rtol=0, atol=tol)


def test_zipf_policy_by_hand():
    # ranks 2, 0, 3, 1 with exponent 2: proportional to 1/9, 1, 1/16, 1/4
    pi = nt.zipf_policy(np.array([[2, 0, 3, 1]]), 2.0)
    np.testing.assert_allclose(pi.sum(-1), 1.0)
    np.testing.assert_allclose(pi[0] / pi[0, 1], [1 / 9, 1.0, 1 / 16, 1 / 4], rtol=1e-15)
    np.testing.assert_allclose(nt.zipf_policy(np.arange(5), 0.0), np.full(5, 0.2))


@pytest.mark.parametrize("ranks, exponent, match", [
    ([-1, 0, 1], 1.0, "ranks"), ([], 1.0, "ranks"), ([0, np.nan], 1.0, "ranks"),
    ([0, 1], -0.5, "exponent"), ([0, 1], np.inf, "exponent"),
])
def test_zipf_policy_rejects_bad_input(ranks, exponent, match):
    with pytest.raises(nt.InvalidInputError, match=match):
        nt.zipf_policy(ranks, exponent)


def test_stack_games_adds_a_leading_axis_and_checks_shapes():
    games = [nt.make_game("comal_cyclic"), nt.make_game("rock_paper_scissors")]
    stacked = nt.stack_games(games)
    assert stacked.P.shape == (2, 1, 3, 3) and stacked.P.dtype == np.float64
    np.testing.assert_array_equal(stacked.pi_ref[1], games[1].pi_ref)
    with pytest.raises(nt.InvalidInputError, match="equal shapes"):
        nt.stack_games([games[0], nt.make_game("random_skew", num_responses=4)])
    with pytest.raises(nt.InvalidInputError, match="games"):
        nt.stack_games([])
