"""Never a silent uncertified answer (issue 9 item 3): the solvers raise ``SolverError`` when they
miss their tolerance, return a loudly marked result under ``on_failure="return"``, and converge on
references with entries down to the smallest normal float.

The certificates here are recomputed without the library (scipy's ``logsumexp``/``rel_entr``).
"""

import numpy as np
import pytest
from scipy.special import logsumexp, rel_entr

import nlhf_theory as nt
from nlhf_theory import InvalidInputError, SolverError
from nlhf_theory.equilibria import _maximal_lottery

TINY = np.finfo(np.float64).tiny  # smallest normal float64, 2.2e-308


def gap_and_residual(P, pi_ref, beta, q):
    """Independent certificate of a symmetric regularized equilibrium, per prompt: the duality
    gap ``2 beta KL(q || BR(q))`` and the log-space fixed-point residual on the entries
    ``q >= 1e-3`` (far smaller entries carry no relative accuracy: the gap, quadratic in the
    error, certifies the policy to ~1e-8 only)."""
    gaps, residuals = [], []
    for x in range(P.shape[0]):
        z = np.log(pi_ref[x]) + P[x] @ q[x] / beta
        log_br = z - logsumexp(z)
        pos = q[x] > 0  # in log space: BR(q) may underflow where q is a clamped 2.2e-308
        gaps.append(2 * beta * np.sum(q[x][pos] * (np.log(q[x][pos]) - log_br[pos])))
        support = q[x] >= 1e-3
        residuals.append(np.abs(np.log(q[x][support]) - log_br[support]).max())
    return np.array(gaps), np.array(residuals)


def tiny_reference_game(Y, seed):
    """Random skew games with Y responses whose pi_ref has one or two entries in
    {1e-30, 1e-100, 1e-200, 1e-300, tiny}: one prompt per (entry, count) pair, 2 draws each."""
    rng = np.random.default_rng(seed)
    Ps, refs = [], []
    for small in (1e-30, 1e-100, 1e-200, 1e-300, TINY):
        for count in (1, 2, 1, 2):
            P = nt.random_skew(Y, 1, seed=int(rng.integers(1 << 30))).P[0]
            ref = rng.dirichlet(np.ones(Y))
            ref[rng.choice(Y, count, replace=False)] = small
            Ps.append(P)
            refs.append(ref / ref.sum())
    return nt.PreferenceGame(np.stack(Ps), np.stack(refs))


def test_issue_9_reproduction_with_log_space_certificate():
    """pi_ref = (1e-300, 1/2, 1/2), beta = 1e-4: was [4e-260, 0.287, 0.713] with gap 0.29; the
    equilibrium is about (0.3333, 0.2873, 0.3793) (the issue's root-finder value)."""
    P = 0.5 + 0.5 * np.array([[0.0, -1, 1], [1, 0, -1], [-1, 1, 0]])
    ref = np.array([1e-300, 0.5, 0.5])
    res = nt.solve_regularized_nash(nt.PreferenceGame(P[None], ref[None]), 1e-4)
    assert res.converged
    np.testing.assert_allclose(res.policy[0], [0.3333, 0.2873, 0.3793], atol=1e-4)
    gap, residual = gap_and_residual(P[None], ref[None], 1e-4, res.policy)
    assert gap[0] <= 1e-12 and residual[0] <= 1e-8


@pytest.mark.parametrize("beta", [1e-1, 1e-2, 1e-3, 1e-4])
@pytest.mark.parametrize("Y", [5, 9])
def test_tiny_reference_entries_sweep(Y, beta):
    """Entries of pi_ref down to the smallest normal float, beta from 0.1 down to 1e-4, 20
    prompts per case: every prompt is certified (gap <= 1e-12, recomputed here)."""
    game = tiny_reference_game(Y, int(Y / beta))
    res = nt.solve_regularized_nash(game, beta)
    assert res.converged
    gap, residual = gap_and_residual(game.P, game.pi_ref, beta, res.policy)
    assert np.all(gap <= 1e-12), gap.max()
    assert np.all(residual <= 1e-6), residual.max()
    np.testing.assert_allclose(res.per_prompt_gap, gap, rtol=0, atol=1e-13)


def test_tiny_reference_entries_in_kl_game():
    """The general-payoff solver shares the rescue: a non-skew Q with a 1e-300 reference entry."""
    rng = np.random.default_rng(3)
    P = nt.random_skew(6, 1, seed=3).P[0]
    Q = P - 0.3 * rng.uniform(size=(6, 6))
    ref = rng.dirichlet(np.ones(6))
    ref[2] = 1e-300
    ref /= ref.sum()
    beta = 1e-3
    res = nt.solve_kl_game(Q, ref, beta)
    p, q = res.max_policy[0], res.min_policy[0]
    upper = beta * logsumexp(np.log(ref) + Q @ q / beta) + beta * rel_entr(q, ref).sum()
    lower = -beta * logsumexp(np.log(ref) - Q.T @ p / beta) - beta * rel_entr(p, ref).sum()
    assert res.converged and upper - lower <= 1e-12


# A forced miss raises; on request it is returned, loudly ------------------------------------
def test_forced_miss_raises():
    game = nt.random_skew(10, 2, seed=1, random_ref=True)
    with pytest.raises(SolverError, match="solve_regularized_nash.*above tol=1e-12") as info:
        nt.solve_regularized_nash(game, 1e-3, max_iter=1)
    assert not info.value.result.converged
    assert info.value.result.duality_gap > 1e-12
    assert isinstance(info.value, RuntimeError) and not isinstance(info.value, InvalidInputError)


def test_forced_miss_returned_on_request_is_loud():
    game = nt.random_skew(10, 2, seed=1, random_ref=True)
    res = nt.solve_regularized_nash(game, 1e-3, max_iter=1, on_failure="return")
    assert not res.converged and res.tol == 1e-12
    assert repr(res).startswith("RegularizedNashResult(UNCERTIFIED: duality gap")
    assert str(res).startswith("RegularizedNashResult(UNCERTIFIED")
    with pytest.raises(SolverError, match="UNCERTIFIED"):
        res.raise_if_uncertified()
    good = nt.solve_regularized_nash(game, 1e-3)
    assert good.converged and "UNCERTIFIED" not in repr(good)
    assert good.raise_if_uncertified() is good


def test_kl_game_forced_miss():
    Q = nt.random_skew(8, 1, seed=2).P[0] - 0.2
    with pytest.raises(SolverError, match="solve_kl_game"):
        nt.solve_kl_game(Q, np.full(8, 1 / 8), 1e-3, max_iter=1)
    res = nt.solve_kl_game(Q, np.full(8, 1 / 8), 1e-3, max_iter=1, on_failure="return")
    assert not res.converged and "UNCERTIFIED" in repr(res)


def test_solve_nash_miss_raises(monkeypatch):
    """A maximal lottery that is not certified (here: the LP path forced to return the uniform
    policy) raises, or is returned marked under on_failure='return'."""
    game = nt.random_skew(12, 1, seed=4)

    def uniform(P, A, method="highs-ipm"):
        return np.full(P.shape[0], 1.0 / P.shape[0])

    monkeypatch.setattr(_maximal_lottery, "_polished_lp", uniform)
    with pytest.raises(SolverError, match="solve_nash.*exploitability") as info:
        nt.solve_nash(game, method="highs")
    assert not info.value.result.converged
    res = nt.solve_nash(game, method="highs", on_failure="return")
    assert not res.converged and repr(res).startswith("NashResult(UNCERTIFIED: exploitability")
    assert nt.solve_nash(game).converged  # the fast path does not use the patched LP


def test_large_beta_is_certified_at_the_rounding_floor():
    """At beta = 1e6 the gap is computed only to ~beta * eps: the solver accepts a gap at that
    level rather than raising (it cannot be lowered in float64)."""
    game = nt.random_skew(5, 2, seed=0, random_ref=True)
    res = nt.solve_regularized_nash(game, 1e6)
    assert res.converged
    assert res.duality_gap <= 1e-8


@pytest.mark.parametrize("solver", ["regularized", "kl", "nash"])
@pytest.mark.parametrize("on_failure", ["warn", "", None, 1])
def test_bad_on_failure(solver, on_failure):
    game = nt.comal_cyclic()
    with pytest.raises(InvalidInputError, match="^on_failure:"):
        if solver == "regularized":
            nt.solve_regularized_nash(game, 0.1, on_failure=on_failure)
        elif solver == "kl":
            nt.solve_kl_game(game.P, game.pi_ref, 0.1, on_failure=on_failure)
        else:
            nt.solve_nash(game, on_failure=on_failure)


@pytest.mark.parametrize("kwargs,name", [
    ({"tol": 0.0}, "tol"), ({"tol": np.nan}, "tol"), ({"max_iter": 0}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"), ({"max_cg": 0}, "max_cg"), ({"max_iter": True}, "max_iter"),
])
def test_bad_budget(kwargs, name):
    with pytest.raises(InvalidInputError, match=f"^{name}:"):
        nt.solve_regularized_nash(nt.comal_cyclic(), 0.1, **kwargs)
