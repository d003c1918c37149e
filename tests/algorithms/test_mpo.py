"""MPO (Wang et al. 2024, arXiv:2410.16714): magnetic mirror descent with a moving magnet.

Expected values come from NumPy transcriptions of the MMD closed form (Sokota et al. 2023,
arXiv:2206.05825) and from the linearization of the proximal-point outer loop, never from the
code under test.
"""

import math

import jax
import numpy as np
import pytest
from scipy.special import log_softmax

import nlhf_theory as nt
from nlhf_theory.algorithms import mpo, policy_trajectories

GAME = nt.make_game("random_skew", num_responses=5, num_prompts=3, seed=3, random_ref=True)
MAXIMAL_LOTTERY = np.array([4.0, 3.0, 4.0]) / 11  # comal_cyclic's (reference note Sec. 6.8)


def library_trajectory(game, beta, eta, period, steps, **options):
    """Policies and magnets (as probabilities) after each of ``steps`` exact updates."""
    algorithm = mpo(beta, eta, period, **options)
    with nt.algorithms.float64_mode():
        game = game.astype(np.float64)
        state = algorithm.init(game, jax.random.key(0))
        update = jax.jit(algorithm.update)
        policies, magnets = [], []
        for t in range(steps):
            state = update(state, game, jax.random.key(t))
            policies.append(np.exp(np.asarray(state.logits)))
            magnets.append(np.exp(np.asarray(state.magnet)))
    return np.array(policies), np.array(magnets)


def numpy_mmd(game, beta, eta, period, steps):
    """MMD with a magnet moved to the iterate every ``period`` steps, in NumPy:
    ``pi_{t+1} ∝ (pi_t rho^{eta beta} exp(eta P pi_t))^{1 / (1 + eta beta)}``."""
    logp = np.log(game.pi_ref)
    magnet = logp.copy()
    out = []
    for t in range(1, steps + 1):
        wins = np.einsum("xij,xj->xi", game.P, np.exp(logp))
        logp = log_softmax((logp + eta * beta * magnet + eta * wins) / (1 + eta * beta), axis=-1)
        if t % period == 0:
            magnet = logp.copy()
        out.append(np.exp(logp))
    return np.array(out)


def test_mirror_step_is_the_mmd_closed_form():
    beta, eta, period, steps = 0.2, 0.7, 7, 30
    policies, _ = library_trajectory(GAME, beta, eta, period, steps)
    np.testing.assert_allclose(policies, numpy_mmd(GAME, beta, eta, period, steps), rtol=0,
                               atol=1e-12)


def test_old_inpo_parametrization_is_recovered_by_the_documented_conversion():
    # pi_t^{1 - e beta} rho^{e beta} exp(e P pi_t) (the previous step) is MMD's step with
    # eta = e / (1 - e beta) (docstring, "Versions").
    beta, e, period, steps = 0.2, 0.5, 7, 30
    logp = np.log(GAME.pi_ref)
    magnet = logp.copy()
    inpo_form = []
    for t in range(1, steps + 1):
        wins = np.einsum("xij,xj->xi", GAME.P, np.exp(logp))
        logp = log_softmax((1 - e * beta) * logp + e * beta * magnet + e * wins, axis=-1)
        if t % period == 0:
            magnet = logp.copy()
        inpo_form.append(np.exp(logp))
    policies, _ = library_trajectory(GAME, beta, e / (1 - e * beta), period, steps)
    np.testing.assert_allclose(policies, np.array(inpo_form), rtol=0, atol=1e-12)
    # ... and the same learning rate gives a different trajectory (the reparametrization)
    same_lr, _ = library_trajectory(GAME, beta, e, period, steps)
    assert np.abs(same_lr - np.array(inpo_form)).max() > 1e-2


def test_magnet_is_reset_to_the_iterate_every_period_steps():
    period, steps = 4, 13
    policies, magnets = library_trajectory(GAME, 0.2, 0.7, period, steps)
    previous = GAME.pi_ref  # the magnet starts at pi_ref
    for t in range(1, steps + 1):
        if t % period == 0:
            np.testing.assert_array_equal(magnets[t - 1], policies[t - 1])
        else:
            np.testing.assert_allclose(magnets[t - 1], previous, rtol=0, atol=1e-15)
            assert np.abs(magnets[t - 1] - policies[t - 1]).max() > 1e-6
        previous = magnets[t - 1]


def test_period_one_is_multiplicative_weights_with_the_mmd_step():
    # rho = pi_t at every step: pi_{t+1} ∝ pi_t exp(eta / (1 + eta beta) P pi_t), SPPO's update.
    beta, eta, steps = 0.2, 0.7, 25
    a = nt.run("mpo", GAME, beta=beta, steps=steps, learning_rate=eta, period=1)
    b = nt.run("sppo", GAME, beta=beta, steps=steps, learning_rate=eta / (1 + eta * beta))
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=0, atol=1e-12)


def test_loss_form_minimizes_the_mmd_objective_in_the_sampled_mode_too():
    # same keys, same sampled win rates: the loss form's minimizer is the mirror step (GAME
    # has responses of probability ~0.02, where gradient descent on the logits is slow: hence
    # the many inner steps)
    hyper = {"learning_rate": 0.4, "period": 5, "mode": "sampled",
             "comparisons_per_response": 4, "seeds": 2}
    mirror = nt.run("mpo", GAME, beta=0.1, steps=12, **hyper)
    loss = nt.run("mpo", GAME, beta=0.1, steps=12, form="loss", loss_steps=4000,
                  loss_learning_rate=2.0, **hyper)
    np.testing.assert_allclose(loss.to_numpy(), mirror.to_numpy(), rtol=0, atol=1e-9)


def test_faithful_period_contracts_at_the_proximal_point_rate():
    # Theory (derived). Exact proximal point with magnet rho: pi = pi*_rho solves
    # log pi = log rho + A pi / beta + c (A = P - 1/2). At the interior maximal lottery pi*
    # (A pi* = 0) its linearization is d pi' = (I - Pi A / beta)^{-1} d pi, Pi = diag(pi*) -
    # pi* pi*^T; Pi A has eigenvalues +-i w, so the map contracts the chi-square norm
    # ||d pi / sqrt(pi*)|| by r = 1 / sqrt(1 + w^2 / beta^2) per magnet move (the map is
    # normal in those coordinates). A faithful period (inner KL reduced by eps = 1e-6 per
    # reset, MMD's bound) perturbs the reset map by O(sqrt(eps)) relative, so the fitted
    # per-reset contraction must lie within 1% of r.
    game = nt.make_game("comal_cyclic")
    beta = 0.1
    eta = 4 * beta  # beta / L^2 with L = 1/2, the largest step the check admits
    period = math.ceil(math.log(1e6) / math.log(1 + eta * beta))
    assert period == 353
    A = game.P[0] - 0.5
    Pi = np.diag(MAXIMAL_LOTTERY) - np.outer(MAXIMAL_LOTTERY, MAXIMAL_LOTTERY)
    w = np.abs(np.linalg.eigvals(Pi @ A).imag).max()
    r = 1 / math.sqrt(1 + (w / beta) ** 2)
    resets = 14
    policies = np.asarray(policy_trajectories(
        lambda hp: mpo(beta, eta, period), [game], {},
        checkpoints=np.arange(0, resets * period + 1, period), chunk=resets * period))[0, 0, :, 0]
    error = np.linalg.norm((policies - MAXIMAL_LOTTERY) / np.sqrt(MAXIMAL_LOTTERY), axis=-1)
    k = np.arange(4, resets + 1)  # past the transient of the first resets
    fitted = math.exp(np.polyfit(k, np.log(error[4:]), 1)[0])
    assert abs(fitted / r - 1) <= 0.01, (fitted, r)
    assert float(nt.exploitability(game, policies[-1][None])) < 1e-6  # toward the lottery


def test_magnet_reset_every_step_does_not_approach_the_lottery():
    # period = 1 is multiplicative weights, whose KL(pi* || pi_t) is non-decreasing in a game
    # with an interior equilibrium (Bailey & Piliouras 2018, arXiv:1802.04451): no convergence.
    game = nt.make_game("comal_cyclic")
    policies = np.asarray(policy_trajectories(
        lambda hp: mpo(0.1, 0.4, 1), [game], {}, checkpoints=np.arange(0, 2001, 100),
        chunk=2000))[0, 0, :, 0]
    kl = np.sum(MAXIMAL_LOTTERY * np.log(MAXIMAL_LOTTERY / policies), -1)
    assert np.all(np.diff(kl) >= -1e-15)


def test_step_size_condition_of_mmd_is_enforced():
    # Sokota et al. 2023, Sec. 3: linear rate for eta <= beta / L^2, L = max|P - 1/2| <= 1/2
    mpo(0.1, 0.4)  # 4 beta: admitted
    with pytest.raises(nt.InvalidInputError, match="learning_rate"):
        mpo(0.1, 0.41)
    with pytest.raises(nt.InvalidInputError, match="learning_rate"):
        mpo(0.1, 0.0)
    with pytest.raises(nt.InvalidInputError, match="period"):
        mpo(0.1, 0.4, period=0)
    with pytest.raises(nt.InvalidInputError, match="form"):
        mpo(0.1, 0.4, form="square")
