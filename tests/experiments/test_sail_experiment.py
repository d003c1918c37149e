"""CI subset of experiments/sail and tests of the SAIL metrics (nlhf_theory.metrics)."""

import itertools

import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.reproduce import load_experiment


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("sail")


@pytest.fixture(scope="module")
def games(experiment):
    return [experiment.run.make_game(spec) for spec in experiment.config.GAMES.values()]


def small_game(seed=0, X=2, Y=4):
    rng = np.random.default_rng(seed)
    P = nt.random_skew(Y, X, seed=seed).P
    ref = rng.dirichlet(np.ones(Y), size=X)
    return nt.PreferenceGame(P, ref)


# Library: nlhf_theory.metrics._sail_metrics ----------------------------------------------------
def test_chosen_policy_matches_enumeration_of_pairs_and_labels():
    game = small_game()
    X, Y = game.pi_ref.shape
    brute = np.zeros((X, Y))
    for x, a, b in itertools.product(range(X), range(Y), range(Y)):
        weight = game.pi_ref[x, a] * game.pi_ref[x, b]
        brute[x, a] += weight * game.P[x, a, b]  # a drawn first and preferred
        brute[x, b] += weight * game.P[x, b, a]
    np.testing.assert_allclose(nt.chosen_policy(game.P, game.pi_ref), brute, atol=1e-15)
    np.testing.assert_allclose(brute.sum(-1), 1.0, atol=1e-15)


def test_empirical_chosen_policy_counts_per_prompt_and_soft_labels():
    x = np.array([0, 0, 0, 2])
    y = np.array([1, 1, 3, 0])
    y2 = np.array([2, 3, 1, 1])
    label = np.array([1.0, 0.0, 0.5, 1.0])
    q = nt.empirical_chosen_policy(x, y, y2, label, 3, 4)
    np.testing.assert_allclose(q[0], [0, 1.5 / 3, 0, 1.5 / 3])
    np.testing.assert_allclose(q[0].sum() + q[1].sum() + q[2].sum(), 2.0)
    assert np.all(q[1] == 0) and q[2, 0] == 1.0
    batched = nt.empirical_chosen_policy(np.stack([x, x]), np.stack([y, y]), np.stack([y2, y2]),
                                         np.stack([label, 1 - label]), 3, 4)
    np.testing.assert_allclose(batched[0], q)
    np.testing.assert_allclose(batched[1, 2], [0, 1, 0, 0])


def test_win_rate_vs_chosen_reduces_to_win_rate_and_skips_prompts_without_data():
    game = small_game(1, X=3)
    rng = np.random.default_rng(2)
    pi = rng.dirichlet(np.ones(4), size=3)
    chosen = nt.chosen_policy(game.P, game.pi_ref)
    assert nt.win_rate_vs_chosen(game.P, pi, chosen) == pytest.approx(
        float(nt.win_rate(game, pi, chosen)), abs=1e-14)
    partial = chosen.copy()
    partial[1] = 0.0
    per_prompt = np.einsum("xy,xyz,xz->x", pi, game.P, chosen)
    assert nt.win_rate_vs_chosen(game.P, pi, partial) == pytest.approx(
        (per_prompt[0] + per_prompt[2]) / 2, abs=1e-14)
    batched = nt.win_rate_vs_chosen(game.P, np.stack([pi, game.pi_ref]), chosen)
    assert batched.shape == (2,)
    with pytest.raises(nt.InvalidInputError, match="chosen"):
        nt.win_rate_vs_chosen(game.P, pi, np.zeros_like(chosen))


def test_implicit_reward_margin_matches_per_pair_formula():
    game = small_game(3)
    rng = np.random.default_rng(4)
    pi = rng.dirichlet(np.ones(4), size=2)
    x, y, y2 = rng.integers(0, 2, 50), rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    label = rng.uniform(size=50)
    ratio = np.log(pi / game.pi_ref)
    direct = np.mean((2 * label - 1) * 0.1 * (ratio[x, y] - ratio[x, y2]))
    assert nt.implicit_reward_margin(pi, game.pi_ref, 0.1, x, y, y2, label) == pytest.approx(
        direct, abs=1e-15)
    assert nt.implicit_reward_margin(game.pi_ref, game.pi_ref, 0.1, x, y, y2, label) == 0.0
    with pytest.raises(nt.InvalidInputError, match="beta"):
        nt.implicit_reward_margin(pi, game.pi_ref, 0.0, x, y, y2, label)
    with pytest.raises(nt.InvalidInputError, match="y_prime"):
        nt.implicit_reward_margin(pi, game.pi_ref, 0.1, x, y, y2 + 4, label)


def test_slot_cost_counts_the_routes():
    dpo = nt.sail_slot_cost()
    assert dpo.total == 8.0 and dpo.dataset_labels == 1.0 and dpo.generated == 0.0
    assert nt.sail_slot_cost(r=1.0).total == dpo.total  # relabels from the same forward pass
    assert nt.sail_slot_cost(g=1.0).total == 12.0 and nt.sail_slot_cost(p=1.0).total == 14.0
    mixed = nt.sail_slot_cost(0.2, 0.2, 0.2)
    assert mixed.total == pytest.approx(0.4 * 8 + 0.2 * 8 + 0.2 * 14 + 0.2 * 12)
    with pytest.raises(nt.InvalidInputError, match="r \\+ p \\+ g"):
        nt.sail_slot_cost(0.5, 0.3, 0.3)
    with pytest.raises(nt.InvalidInputError, match="g"):
        nt.sail_slot_cost(g=-0.1)


# Experiment ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sampled_baselines(experiment, games):
    """Offline and online DPO on the Bradley-Terry game: (seeds, checkpoints, X, Y) each."""
    run = experiment.run
    cell = {"beta": 0.1, "learning_rate": 30.0}
    options = {"steps": 200, "every": 100, "seeds": 4, "seed": 3}
    dpo = run.trajectories(run.baseline_maker("dpo", cell, mode="sampled", num_pairs=32), {},
                           games[:1], **options)[0, 0]
    online = run.trajectories(
        run.baseline_maker("online_dpo", cell, mode="sampled", pairs_per_prompt=4), {},
        games[:1], **options)[0, 0]
    return dpo, online


def test_trajectories_use_the_keys_of_nt_run(experiment, games, sampled_baselines):
    frame = nt.run("online_dpo", games[0], beta=0.1, steps=200, mode="sampled", seeds=4, seed=3,
                   learning_rate=30.0, pairs_per_prompt=4)
    for seed, pols in enumerate(sampled_baselines[1]):
        expected = frame[frame.seed == seed].set_index("step").win_rate_ref.loc[[0, 1, 100, 200]]
        measured = experiment.run.policy_metrics(games[0], pols)["win_rate_ref"]
        np.testing.assert_allclose(measured, expected.to_numpy(), atol=1e-12)


def test_exact_special_cases(experiment, games):
    run = experiment.run
    cell = {"beta": 0.1, "learning_rate": 30.0}
    options = {"steps": 40, "every": 20, "seeds": 1, "seed": 0}
    settings = {"zeros": {"rho": 0.2, "pi": 0.2, "gamma": 0.3}, "online": {"g": 1.0},
                "pp": {"p": 0.3}}
    sail = run.trajectories(run.sail_maker(cell), run.sail_grid(settings), games, **options)
    dpo = run.trajectories(lambda hp: nt.ALGORITHMS["dpo"](0.1, hp["learning_rate"]),
                           {"learning_rate": [30.0, 21.0]}, games, **options)
    online = run.trajectories(run.baseline_maker("online_dpo", cell), {}, games, **options)
    tol = experiment.config.QUICK["special_case_tol"]
    assert np.abs(sail[:, 0] - dpo[:, 0]).max() <= tol
    assert np.abs(sail[:, 1] - online[:, 0]).max() <= tol
    assert np.abs(sail[:, 2] - dpo[:, 1]).max() <= tol
    assert np.abs(sail[:, 2, :, -1] - games[0].pi_ref).max() > 1e-2  # the policies moved


def test_online_dpo_beats_offline_dpo_under_poor_coverage(experiment, games, sampled_baselines):
    run = experiment.run
    dpo, online = (run.policy_metrics(games[0], p[:, -1])["win_rate_ref"]
                   for p in sampled_baselines)
    gain = online - dpo
    half = run.stats.t.ppf(0.975, gain.size - 1) * gain.std(ddof=1) / np.sqrt(gain.size)
    assert gain.mean() - half > 0, gain


def test_overhead_counts(experiment):
    cost = experiment.run.run_cost(None, experiment.config.QUICK).set_index("method")
    assert cost.overhead_per_update["SAIL-DP"] == pytest.approx(1.0, abs=1e-12)
    assert cost.overhead_per_update["SAIL-PR"] > 1 and cost.overhead_per_update["SAIL-PP"] > 1
    assert cost.overhead_per_update["online DPO"] == pytest.approx(1.5)
