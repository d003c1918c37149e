"""Greedy, pessimistic and optimistic equilibrium learning with linear preference models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.algorithms._equilibrium_learning import add_comparisons
from nlhf_theory.estimation import fit_linear_preference

RNG = np.random.default_rng(0)
F = RNG.normal(size=(2, 6, 6, 3))
PSI = F - np.swapaxes(F, 1, 2)
THETA = np.array([0.8, -0.5, 0.3])


@pytest.mark.parametrize("link, theta", [("logistic", THETA), ("identity", 0.02 * THETA)])
def test_fit_recovers_the_parameter_from_expected_counts(link, theta):
    game = nt.LinearPreferenceModel(PSI, theta, link).game
    with nt.algorithms.float64_mode():
        mu = jnp.asarray(game.pi_ref)
        zeros = jnp.zeros(game.P.shape)
        wins, counts = add_comparisons(zeros, zeros, jax.tree_util.tree_map(jnp.asarray, game),
                                       mu, mu, 1e7, None, "exact")
        fit = fit_linear_preference(wins, counts, PSI, link, ridge=1e-6)
    np.testing.assert_allclose(np.asarray(fit.theta), theta, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fit.p_hat), game.P, atol=1e-7)


def test_greedy_with_features_reaches_the_equilibrium_with_enough_data():
    game = nt.LinearPreferenceModel(PSI, THETA).game
    frame = nt.run("greedy_mle_nash", game, beta=0.1, steps=1, features=PSI, num_pairs=10**9,
                   ridge=1e-3)
    assert frame.duality_gap.iloc[-1] <= 1e-10


def test_pessimism_with_features_shrinks_with_the_sample_size():
    game = nt.LinearPreferenceModel(PSI, THETA).game
    subopt = [nt.run("pessimistic_nlhf", game, beta=0.1, steps=1, features=PSI,
                     num_pairs=n).suboptimality.iloc[-1] for n in (10**2, 10**4, 10**6)]
    assert subopt[0] > subopt[1] > subopt[2]
    assert subopt[2] < 1e-3


def test_linear_features_beat_the_tabular_model_on_a_linear_game():
    # d = 3 parameters instead of 15 pair frequencies per prompt: the same data goes further
    game = nt.LinearPreferenceModel(PSI, THETA).game
    kw = dict(beta=0.1, steps=1, mode="sampled", num_pairs=2000, seeds=8)
    linear = nt.run("greedy_mle_nash", game, features=PSI, **kw)
    tabular = nt.run("greedy_mle_nash", game, **kw)
    assert linear[linear.step == 1].suboptimality.mean() < tabular[
        tabular.step == 1].suboptimality.mean()


def test_optimistic_with_features_runs_and_learns():
    game = nt.LinearPreferenceModel(PSI, THETA).game
    frame = nt.run("optimistic_nlhf", game, beta=0.1, steps=10, mode="sampled", seeds=4,
                   comparisons_per_round=100, features=PSI)
    final = frame[frame.step == 10].suboptimality.mean()
    assert final < frame[frame.step == 1].suboptimality.mean()
    assert final < 5e-3


def test_bad_features_rejected():
    game = nt.LinearPreferenceModel(PSI, THETA).game
    with pytest.raises(nt.InvalidInputError, match="features"):
        nt.run("greedy_mle_nash", game, beta=0.1, steps=1, features=F)
    with pytest.raises(nt.InvalidInputError, match="link"):
        nt.run("greedy_mle_nash", game, beta=0.1, steps=1, features=PSI, link="probit")
