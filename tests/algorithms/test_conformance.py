"""Conformance of every registered algorithm (optax's shared conformance-test pattern)."""

import jax
import numpy as np
import pytest

import nlhf_theory as nt
from nlhf_theory.algorithms import ALGORITHMS, make_algorithm, run

from .algorithm_settings import HYPERPARAMETERS

BETA = 0.1


def test_registry_names():
    expected = {"dpo", "ipo", "slic", "rlhf_bt", "greedy_mle_nash", "pessimistic_nlhf",
                "online_dpo", "sail_pr", "sail_pp", "sail_dp", "sail", "optimistic_nlhf",
                "nash_md", "nash_md_pg", "online_ipo", "ipo_md", "sppo", "inpo", "egpo", "mpo",
                "comal", "xpo", "dno"}
    assert set(ALGORITHMS) == expected
    assert set(HYPERPARAMETERS) == expected
    assert nt.ALGORITHMS is ALGORITHMS


@pytest.mark.parametrize("mode", ["exact", "sampled"])
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_valid_policies_deterministic_jit_vmap(name, mode, small_game):
    frame = run(name, small_game, beta=BETA, steps=4, mode=mode, seeds=2, seed=7,
                **HYPERPARAMETERS[name])
    assert list(frame.columns[:2]) == ["step", "seed"]
    assert len(frame) == 2 * 5
    assert np.all(np.isfinite(frame.drop(columns=["step", "seed"]).to_numpy()))
    assert (frame.duality_gap >= -1e-12).all() and (frame.exploitability >= -1e-12).all()
    again = run(name, small_game, beta=BETA, steps=4, mode=mode, seeds=2, seed=7,
                **HYPERPARAMETERS[name])
    np.testing.assert_array_equal(frame.to_numpy(), again.to_numpy())
    # the policy itself is on the simplex, also under jit of the update, which compiles once:
    # the state keeps its types and shapes from step to step (optax's no-recompilation check)
    algorithm = make_algorithm(ALGORITHMS, name, BETA, mode, HYPERPARAMETERS[name])
    traces = []

    def update(state, game, key):
        traces.append(key)
        return algorithm.update(state, game, key)

    with nt.algorithms.float64_mode():
        game = small_game.astype(np.float64)
        state = algorithm.init(game, jax.random.key(0))
        step = jax.jit(update)
        for i in range(1, 4):
            state = step(state, game, jax.random.key(i))
        policy = np.asarray(algorithm.policy(state))
    assert len(traces) == 1, f"{name}: the update was traced {len(traces)} times in 3 calls"
    assert policy.shape == (2, 5)
    assert np.all(policy >= 0) and np.allclose(policy.sum(-1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_bad_beta_rejected(name, small_game):
    for beta in (0.0, -1.0, float("nan")):
        with pytest.raises(nt.InvalidInputError, match="beta"):
            run(name, small_game, beta=beta, steps=1, **HYPERPARAMETERS[name])


@pytest.mark.parametrize("name", sorted(n for n, h in HYPERPARAMETERS.items()
                                        if "learning_rate" in h))
def test_negative_learning_rate_rejected(name, small_game):
    params = dict(HYPERPARAMETERS[name], learning_rate=-0.1)
    with pytest.raises(nt.InvalidInputError, match="learning_rate"):
        run(name, small_game, beta=BETA, steps=1, **params)


@pytest.mark.parametrize("name", ["online_ipo", "egpo", "nash_md_pg", "xpo", "sail", "nash_md",
                                  "inpo", "optimistic_nlhf"])
def test_zero_sample_count_rejected(name, small_game):
    count = {"optimistic_nlhf": "comparisons_per_round", "nash_md": "comparisons_per_response",
             "inpo": "comparisons_per_response"}.get(name, "pairs_per_prompt")
    with pytest.raises(nt.InvalidInputError, match=count):
        run(name, small_game, beta=BETA, steps=1, mode="sampled",
            **dict(HYPERPARAMETERS[name], **{count: 0}))


@pytest.mark.parametrize("params, match", [
    ({"r": 1.5}, "r"), ({"p": -0.1}, "p"), ({"r": 0.6, "p": 0.3, "g": 0.3}, "sum"),
    ({"rho": -1.0}, "rho"), ({"variant": "nope"}, "variant"),
])
def test_sail_bad_mixing_weights(params, match, small_game):
    with pytest.raises(nt.InvalidInputError, match=match):
        run("sail", small_game, beta=BETA, steps=1, learning_rate=1.0, **params)


def test_mixture_weight_outside_unit_interval(small_game):
    with pytest.raises(nt.InvalidInputError, match="mixture"):
        run("ipo_md", small_game, beta=BETA, steps=1, learning_rate=0.1, mixture=1.5)


@pytest.mark.parametrize("name", ["dpo", "rlhf_bt", "greedy_mle_nash", "sail"])
def test_dataset_with_out_of_range_indices(name, small_game):
    bad = nt.algorithms.Dataset(np.array([0, 1]), np.array([0, 5]), np.array([1, 2]),
                                np.array([1, 0]))
    with pytest.raises(nt.InvalidInputError, match="dataset.y"):
        run(name, small_game, beta=BETA, steps=1, dataset=bad,
            **{k: v for k, v in HYPERPARAMETERS[name].items()})


def test_unknown_algorithm_and_hyperparameter(small_game):
    with pytest.raises(nt.InvalidInputError, match="algorithm"):
        run("nope", small_game, beta=BETA, steps=1)
    with pytest.raises(nt.InvalidInputError, match="bogus"):
        run("inpo", small_game, beta=BETA, steps=1, learning_rate=1.0, bogus=3)
    with pytest.raises(nt.InvalidInputError, match="mode"):
        run("inpo", small_game, beta=BETA, steps=1, learning_rate=1.0, mode="approximate")
    with pytest.raises(nt.InvalidInputError, match="steps"):
        run("inpo", small_game, beta=BETA, steps=0, learning_rate=1.0)
