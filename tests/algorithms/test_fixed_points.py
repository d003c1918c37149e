"""Fixed points of the algorithms against certified solutions and closed forms."""

import jax
import numpy as np
import pytest
from scipy.optimize import linprog

import nlhf_theory as nt
from nlhf_theory.algorithms import ALGORITHMS, make_algorithm, run

BETA = 0.1


def final(frame, column):
    return float(frame[column].iloc[-1])


def final_policy(name, game, beta, steps, **hyper):
    algorithm = make_algorithm(ALGORITHMS, name, beta, "exact", hyper)
    with nt.algorithms.float64_mode():
        game64 = game.astype(np.float64)
        state = algorithm.init(game64, jax.random.key(0))
        update = jax.jit(algorithm.update)
        state = jax.lax.fori_loop(0, steps, lambda i, s: update(s, game64, jax.random.key(i)),
                                  state)
        return np.asarray(algorithm.policy(state))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name, hyper, steps", [
    ("nash_md", {}, 12000),                      # Munos et al.'s schedule eta_t = 2/(beta(t+2))
    ("online_ipo", {"learning_rate": 0.2}, 2000),
    ("inpo", {"learning_rate": 2.0}, 400),
    ("egpo", {"learning_rate": 0.2}, 2000),
])
def test_last_iterate_methods_reach_the_regularized_equilibrium(name, hyper, steps, seed):
    game = nt.make_game("random_skew", num_responses=8, seed=seed, random_ref=True)
    frame = run(name, game, beta=BETA, steps=steps, **hyper)
    assert final(frame, "duality_gap") <= 1e-8
    assert abs(final(frame, "win_rate_nash") - 0.5) <= 1e-4


BT_REWARD = np.array([1.0, 0.0, -0.5, 0.3])
BT_REF = np.array([0.1, 0.2, 0.3, 0.4])


@pytest.fixture(scope="module")
def bt_game():
    return nt.bradley_terry(BT_REWARD, pi_ref=BT_REF)


@pytest.mark.parametrize("name, hyper, steps", [
    ("dpo", {"learning_rate": 5.0}, 3000),
    ("online_dpo", {"learning_rate": 2.0}, 3000),
    ("rlhf_bt", {"learning_rate": 5.0}, 3000),
    ("rlhf_bt", {"learning_rate": 5.0, "features": np.eye(4)[None]}, 3000),
    ("xpo", {"learning_rate": 2.0, "alpha": 0.0}, 3000),
])
def test_bradley_terry_methods_reach_the_rlhf_optimum(name, hyper, steps, bt_game):
    beta = 0.5
    pi = final_policy(name, bt_game, beta, steps, **hyper)
    target = nt.reward_optimal_policy(BT_REWARD, BT_REF, beta)
    np.testing.assert_allclose(pi[0], target, atol=1e-6)


def test_ipo_reaches_azar_closed_form_not_the_bt_optimum(bt_game):
    beta = 0.5
    pi = final_policy("ipo", bt_game, beta, 3000, learning_rate=0.5)[0]
    # Azar et al. 2023, Sec. 5: pi*(y) ∝ pi_ref(y) exp(P(y > mu) / beta), mu = pi_ref here
    azar = nt.reward_optimal_policy(bt_game.P[0] @ BT_REF, BT_REF, beta)
    np.testing.assert_allclose(pi, azar, atol=1e-7)
    assert np.abs(pi - nt.reward_optimal_policy(BT_REWARD, BT_REF, beta)).max() > 0.05


def test_slic_reaches_the_minimizer_of_its_population_hinge_loss(bt_game):
    beta = 0.5
    pi = final_policy("slic", bt_game, beta, 20000, learning_rate=0.05)[0]
    D = np.log(pi / BT_REF)
    # Independent solution: the population hinge loss over D (log-ratios) is an LP:
    # min sum_{y,y'} w P t_yy' + w (1-P) u_yy'  s.t. t >= 1 - beta (D_y - D_y'),
    # u >= 1 + beta (D_y - D_y'), t, u >= 0.
    Y = 4
    P = bt_game.P[0]
    W = np.outer(BT_REF, BT_REF)
    pairs = [(a, b) for a in range(Y) for b in range(Y) if a != b]
    n = len(pairs)
    c = np.concatenate([np.zeros(Y), [W[a, b] * P[a, b] for a, b in pairs],
                        [W[a, b] * (1 - P[a, b]) for a, b in pairs]])
    A, rhs = [], []
    for k, (a, b) in enumerate(pairs):
        row = np.zeros(Y + 2 * n)
        row[a], row[b], row[Y + k] = -beta, beta, -1.0   # 1 - beta h <= t
        A.append(row)
        rhs.append(-1.0)
        row = np.zeros(Y + 2 * n)
        row[a], row[b], row[Y + n + k] = beta, -beta, -1.0  # 1 + beta h <= u
        A.append(row)
        rhs.append(-1.0)
    bounds = [(None, None)] * Y + [(0, None)] * (2 * n)
    lp = linprog(c, A_ub=np.array(A), b_ub=rhs, bounds=bounds, method="highs")
    h = D[:, None] - D[None, :]
    off = ~np.eye(Y, dtype=bool)  # the LP leaves out y = y', whose loss is the constant 1
    hinge = P * np.maximum(0, 1 - beta * h) + (1 - P) * np.maximum(0, 1 + beta * h)
    loss = np.sum((W * hinge)[off])
    assert lp.status == 0
    assert loss <= lp.fun + 1e-4


def test_online_dpo_misses_the_regularized_equilibrium_on_a_cyclic_game():
    # Calandriello et al. 2024, Thm. F.6: online DPO's fixed point is not pi*_beta. On the
    # COMAL game at beta = 0.1 it converges to a point whose duality gap is 9.40e-4.
    game = nt.make_game("comal_cyclic")
    frame = run("online_dpo", game, beta=BETA, steps=10000, learning_rate=1.0)
    tail = frame.duality_gap.iloc[-1000:]
    assert tail.max() - tail.min() < 1e-7  # converged ...
    assert 9.3e-4 < final(frame, "duality_gap") < 9.5e-4  # ... away from pi*_beta
    ipo = run("online_ipo", game, beta=BETA, steps=3000, learning_rate=0.2)
    assert final(ipo, "duality_gap") < 1e-10  # where online IPO reaches it


@pytest.mark.parametrize("name, hyper", [
    ("mpo", {"learning_rate": 0.4, "period": 50}),
    ("comal", {"learning_rate": 2.0, "period": 100}),
])
def test_magnet_methods_approach_the_unregularized_equilibrium(name, hyper):
    game = nt.make_game("comal_cyclic")
    frame = run(name, game, beta=BETA, steps=3000, **hyper)
    assert final(frame, "exploitability") <= 1e-6
    # while the fixed-reference target keeps its equilibrium gap
    reg = nt.solve_regularized_nash(game, BETA).policy
    assert float(nt.exploitability(game, reg)) > 1e-2


def test_sppo_last_iterate_cycles_on_rock_paper_scissors_like_games():
    frame = run("sppo", nt.make_game("comal_cyclic"), beta=BETA, steps=2000, learning_rate=1.0)
    assert frame.exploitability.iloc[-500:].max() > 0.05


def test_greedy_and_pessimistic_in_the_exact_mode():
    game = nt.make_game("random_skew", num_responses=6, seed=2, random_ref=True)
    greedy = run("greedy_mle_nash", game, beta=BETA, steps=1)
    assert final(greedy, "duality_gap") <= 1e-10  # full coverage: P_hat = P
    pess = run("pessimistic_nlhf", game, beta=BETA, steps=1, num_pairs=10**8)
    assert final(pess, "suboptimality") <= 1e-3  # the bonus vanishes as n grows
