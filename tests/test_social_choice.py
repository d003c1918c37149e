"""Tests of nlhf_theory.social_choice against scipy fits, definitions and golden values.

Golden values: reference note rlhf_deciphered.md, B.4 E5 (uniform pairs, rewards mean-centred).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit, log_expit

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory import testing as ntst

E5_CONDORCET = np.array([[0.5, 0.01, 0.45], [0.99, 0.5, 0.45], [0.55, 0.55, 0.5]])
SLOW = settings(max_examples=15, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def scipy_fit(W, N, ridge):
    """Penalized BT negative log-likelihood minimized by scipy (one (Y, Y) matrix)."""
    iu = np.triu_indices(W.shape[-1], 1)

    def loss(r):
        d = (r[:, None] - r[None, :])[iu]
        value = -(W[iu] * log_expit(d) + (N[iu] - W[iu]) * log_expit(-d)).sum()
        residual = np.zeros((r.size, r.size))
        residual[iu] = W[iu] - N[iu] * expit(d)  # d loss / d d_ab = -residual_ab
        grad = -(residual.sum(1) - residual.sum(0)) + ridge * r
        return value + 0.5 * ridge * r @ r, grad

    r = minimize(loss, np.zeros(W.shape[-1]), jac=True, method="BFGS",
                 options={"gtol": 1e-11}).x
    return r - r.mean()


#: Few distinct shapes: each (batch, Y) shape costs one jit compilation of the Newton fit.
RESPONSES = st.sampled_from([3, 5])
PROMPTS = 2


def interior_games():
    """Games with every P entry in [0.02, 0.98] (the BT MLE is finite)."""
    P = ntst.preference_matrices(num_responses=RESPONSES, num_prompts=st.just(PROMPTS),
                                 deterministic=st.just(False))
    return P.map(lambda p: 0.5 + 0.96 * (p - 0.5))


# Golden values ------------------------------------------------------------------------------
def test_biased_rock_paper_scissors_golden_values():
    P = nt.biased_rock_paper_scissors().P[0]
    r = nt.bradley_terry_projection(P)
    np.testing.assert_allclose(r, [0.359, 0.288, -0.647], atol=1e-3)
    assert abs(nt.bradley_terry_misspecification(P, r) - 0.268) <= 1e-3
    assert nt.find_condorcet_winner(P) == -1


def test_e5_condorcet_golden_values():
    r = nt.bradley_terry_projection(E5_CONDORCET)
    np.testing.assert_allclose(r, [-0.817, 0.664, 0.153], atol=1e-3)
    assert np.argmax(r) == 1 and nt.find_condorcet_winner(E5_CONDORCET) == 2
    assert abs(expit(r[2] - r[1]) - 0.375) <= 1e-3  # BT predicts d loses to c


def test_borda_count_of_munos_example():
    eps = 0.1
    B = nt.borda_count(nt.munos_nontransitive(eps).P[0])
    # the docstring's classical count excludes the diagonal: sum_{y' != y} = Y B - 1/2
    np.testing.assert_allclose(3 * B - 0.5, [1 + 3 * eps / 4, 1 - 3 * eps / 4, 1], atol=1e-12)


def test_condorcet_winner_of_named_games():
    assert nt.find_condorcet_winner(nt.condorcet_winner().P[0]) == 0
    assert nt.find_condorcet_winner(nt.condorcet_cycle().P[0]) == -1
    np.testing.assert_array_equal(
        nt.find_condorcet_winner(nt.bradley_terry([[0.0, 1.0, -1.0], [2.0, 0.0, 1.0]]).P), [1, 0])


# Against scipy ---------------------------------------------------------------------------------
@SLOW
@given(P=interior_games(), data=st.data())
def test_projection_matches_scipy_cross_entropy_fit(P, data):
    X, Y = P.shape[0], P.shape[-1]
    mu = data.draw(ntst.reference_policies(num_prompts=X, num_responses=Y, min_prob=0.02))
    r = nt.bradley_terry_projection(P, mu)
    for x in range(X):
        N = 2 * np.outer(mu[x], mu[x])
        np.testing.assert_allclose(r[x], scipy_fit(N * P[x], N, 0.0), atol=1e-5)


@SLOW
@given(seed=st.integers(0, 2**31), Y=RESPONSES, ridge=st.floats(0.1, 10.0))
def test_map_fit_matches_scipy_on_sampled_counts(seed, Y, ridge):
    rng = np.random.default_rng(seed)
    N = np.triu(rng.integers(0, 20, (PROMPTS, Y, Y)), 1).astype(float)
    W = np.triu(rng.binomial(N.astype(int), 0.5), 1).astype(float)
    N, W = N + np.swapaxes(N, 1, 2), W + np.swapaxes(N - W, 1, 2) * np.triu(np.ones((Y, Y)), 1).T
    r = nt.bradley_terry_fit(W, N, ridge=ridge)
    for s in range(PROMPTS):
        np.testing.assert_allclose(r[s], scipy_fit(W[s], N[s], ridge), atol=1e-5)


# Invariants -------------------------------------------------------------------------------------
@SLOW
@given(game=ntst.bradley_terry_games(num_responses=RESPONSES, num_prompts=st.just(PROMPTS),
                                     reference=st.just(True)))
def test_exact_recovery_on_bradley_terry_preferences(game):
    true = np.log(game.P[:, :, 0] / game.P[:, 0, :])  # r_y - r_0 from P[y, 0] = sigma(r_y - r_0)
    true -= true.mean(-1, keepdims=True)
    # Exact recovery in the maximum-likelihood limit. What remains at a ridge is its bias, linear
    # in the ridge: at the default 1e-12 up to 1e-7 in r and 1e-8 in P when pi_ref has entries
    # ~1e-3 (fixed bounds of 1e-7 and 1e-8 there failed on rare draws), 100x less at 1e-14.
    r = nt.bradley_terry_projection(game.P, game.pi_ref)
    fine = nt.bradley_terry_projection(game.P, game.pi_ref, ridge=1e-14)
    np.testing.assert_allclose(fine, true, atol=1e-8)
    default_bias = nt.bradley_terry_misspecification(game.P, r)
    assert nt.bradley_terry_misspecification(game.P, fine) <= min(1e-9, default_bias / 50 + 1e-13)


@SLOW
@given(P=interior_games(), shift=st.floats(-5.0, 5.0), data=st.data())
def test_shift_invariance_and_mean_centring(P, shift, data):
    mu = data.draw(ntst.reference_policies(num_prompts=P.shape[0], num_responses=P.shape[-1],
                                           min_prob=0.02))
    r = nt.bradley_terry_projection(P, mu)
    np.testing.assert_allclose(r.sum(-1), 0.0, atol=1e-9)
    c = shift * np.arange(1, P.shape[0] + 1)[:, None]  # a different constant per prompt
    np.testing.assert_allclose(nt.bradley_terry_misspecification(P, r + c, per_prompt=True),
                               nt.bradley_terry_misspecification(P, r, per_prompt=True),
                               atol=1e-12)
    # the default ridge (1e-12) has reached the maximum-likelihood limit
    np.testing.assert_allclose(nt.bradley_terry_projection(P, mu, ridge=1e-14), r, atol=1e-6)


@SLOW
@given(P=interior_games(), data=st.data())
def test_bt_order_is_the_weighted_borda_order(P, data):
    """Stationarity: sum_y' mu(y') sigma(r_y - r_y') = B_mu(y), strictly increasing in r_y."""
    mu = data.draw(ntst.reference_policies(num_prompts=P.shape[0], num_responses=P.shape[-1],
                                           min_prob=0.02))
    r, B = nt.bradley_terry_projection(P, mu), nt.borda_count(P, mu)
    gap = B[..., :, None] - B[..., None, :]
    assume(np.all((np.abs(gap) > 1e-6) | np.eye(P.shape[-1], dtype=bool)))
    np.testing.assert_array_equal(np.sign(r[..., :, None] - r[..., None, :]), np.sign(gap))
    fitted = np.einsum("xb,xab->xa", mu, expit(r[..., :, None] - r[..., None, :]))
    np.testing.assert_allclose(fitted, B, atol=1e-8)


@SLOW
@given(P=ntst.preference_matrices(num_responses=st.integers(2, 6)))
def test_condorcet_winner_matches_the_definition(P):
    winner = nt.find_condorcet_winner(P)
    Y = P.shape[-1]
    for x in range(P.shape[0]):
        unbeaten = [y for y in range(Y) if all(P[x, y, z] > 0.5 for z in range(Y) if z != y)]
        assert winner[x] == (unbeaten[0] if unbeaten else -1)
        if unbeaten:  # a Condorcet winner is the (pure) maximal lottery
            pure = np.eye(Y)[unbeaten[0]]
            assert nt.exploitability(nt.PreferenceGame(P[x]), pure) <= 1e-12


def test_separable_comparisons_give_large_finite_map_rewards():
    P = nt.voting_game([[0, 1, 2]]).P  # 0 > 1 > 2 always: the MLE is infinite
    loose, tight = (nt.bradley_terry_projection(P, ridge=lam)[0] for lam in (1e-3, 1e-9))
    assert np.all(np.diff(loose) < 0) and tight[0] - tight[2] > loose[0] - loose[2] > 0


# Bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: nt.bradley_terry_projection(np.ones((3, 3))), "P"),
    (lambda: nt.bradley_terry_projection(E5_CONDORCET, [0.5, 0.5, 0.0]), "behaviour"),
    (lambda: nt.bradley_terry_projection(E5_CONDORCET, [0.5, 0.5]), "behaviour"),
    (lambda: nt.borda_count(E5_CONDORCET, [0.2, 0.2, 0.2]), "behaviour"),
    (lambda: nt.bradley_terry_misspecification(E5_CONDORCET, [0.0, 1.0]), "reward"),
    (lambda: nt.bradley_terry_misspecification(E5_CONDORCET, [0.0, np.nan, 1.0]), "reward"),
    (lambda: nt.bradley_terry_fit(np.zeros((3, 3)), np.triu(np.ones((3, 3)))), "counts"),
    (lambda: nt.bradley_terry_fit(2 * np.ones((3, 3)), np.ones((3, 3))), "wins"),
    (lambda: nt.bradley_terry_fit(np.zeros((3, 2)), np.zeros((3, 2))), "wins"),
    (lambda: nt.bradley_terry_fit(0.5 * np.ones((3, 3)), np.ones((3, 3)), ridge=0.0), "ridge"),
    (lambda: nt.bradley_terry_fit(0.5 * np.ones((3, 3)), np.ones((3, 3)), steps=0), "steps"),
    (lambda: nt.find_condorcet_winner(np.full((2, 2), 0.7)), "P"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(InvalidInputError, match=match):
        call()
