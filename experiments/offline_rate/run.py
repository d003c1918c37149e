"""Offline equilibrium learning from n comparisons: Thm. 1's bound, rate, coverage, BT bias.

Claims checked (Ye et al. 2024, arXiv:2402.07314, Alg. 1 and Thm. 1; Cui & Du 2022,
arXiv:2201.03522). Suboptimality is
the max player's one-sided suboptimality ``J(pi*, pi*) - min_p J(pi_hat, p) = gap / 2``
(``nt.suboptimality``) against the certified ``pi*_beta``; ``beta`` is the KL coefficient.

* Thm. 1: with probability ``1 - delta`` the pessimistic max player has suboptimality at most
  ``4 b sqrt(C / n)``, ``b`` the version-space radius of the paper (its version space
  ``sum_i (P - P_hat)^2 <= b^2 / 2`` is our ellipsoid of radius ``r = b / sqrt(2)``) and ``C``
  the unilateral coverage coefficient of the data for ``pi*_beta``
  (``coverage_coefficient`` of the sampled counts). Checked over every tabular dataset with
  the radius the algorithm uses: the failures must be compatible with Binomial(M, delta).
* Rate in n under uniform data: at least Thm. 1's ``n^-1/2``; slope in C at fixed n between
  1/2 (Thm. 1) and 1 (the KL-regularized local rate), with slack.
* What coverage pessimism needs: (a) unilateral coverage that is poor elsewhere
  (``a ~ pi*_beta``, ``b ~ uniform``): pessimism no worse than greedy; (b) a response never
  shown: the version space lets it beat everything, the pessimistic max player moves towards
  it (no guarantee for either method; reported).
* BT-based methods (``rlhf_bt``, ``dpo``) converge to the RLHF optimum of the Bradley-Terry
  fit, not to ``pi*_beta``: their suboptimality plateaus at its population value b > 0.

Cells: per run and n, every behaviour, seed and equilibrium learner on the same sampled
counts (NumPy: the host solvers ``pessimistic_nlhf`` and ``greedy_mle_nash`` call); per case
and n likewise; the BT methods through ``run_sweep`` (paired on the same datasets); one
population cell per (game, beta) for the bias b.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory.algorithms import (
    ALGORITHMS,
    coverage_coefficient,
    expected_counts,
    linear_coverage_coefficient,
    run_sweep,
)
from nlhf_theory.reproduce import Check, fit_slope

#: The equilibrium learners: the paper's joint version-space pessimism (``bonus="joint"``,
#: the default up to 6 responses), the former entrywise bound, greedy.
EQUILIBRIUM = ("pessimistic_nlhf", "pessimistic_entrywise", "greedy_mle_nash")
BT_METHODS = ("rlhf_bt", "dpo")
METHODS = EQUILIBRIUM + BT_METHODS
RIDGE = 1.0


# Games --------------------------------------------------------------------------------------
def _skew_bilinear(phi):
    """Skew-bilinear features ``phi_i(y) phi_j(y') - phi_j(y) phi_i(y')`` for ``i < j``.

    Returns an array of shape (Y, Y, d (d - 1) / 2)."""
    d = phi.shape[-1]
    outer = phi[:, None, :, None] * phi[None, :, None, :]
    skew = outer - np.swapaxes(outer, 2, 3)
    i, j = np.triu_indices(d, 1)
    return skew[:, :, i, j]


def build_game(spec: dict):
    """``(game, psi, phi, theta)``: the game, the preference features of the equilibrium
    learners (None: tabular), the reward features of reward-based RLHF (None: tabular) and the
    true preference parameter (None: tabular)."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "tabular":
        return nt.make_game(spec.pop("name"), **spec), None, None, None
    rng = np.random.default_rng(spec["seed"])
    phi = rng.standard_normal((spec["num_responses"], spec["dim"]))
    if kind == "linear_bt":
        model = nt.bradley_terry_linear(phi, rng.standard_normal(spec["dim"]))
    else:
        psi = np.concatenate([phi[:, None] - phi[None, :], _skew_bilinear(phi)], axis=-1)
        model = nt.LinearPreferenceModel(psi, rng.standard_normal(psi.shape[-1]))
    return model.game, np.asarray(model.features), phi[None], np.asarray(model.theta)


def behaviours(target, mixing, concentrate_on: int, *, most: bool = False):
    """``mu_t = (1 - t) uniform + t uniform(the concentrate_on responses least played by the
    target)`` (or most played, ``most``) for each ``t`` of ``mixing``: (T, X, Y)."""
    X, Y = target.shape
    order = np.argsort(-target if most else target, axis=-1)[:, :concentrate_on]
    concentrated = np.zeros((X, Y))
    np.put_along_axis(concentrated, order, 1.0 / concentrate_on, axis=-1)
    t = np.asarray(mixing, dtype=np.float64)[:, None, None]
    return (1.0 - t) / Y + t * concentrated


def case_data(target, case: str):
    """The two sampling policies ``(first, second)`` of a coverage case and the response the
    data never show (``-1``: none): ``"unilateral"``: ``a ~ pi*_beta``, ``b ~ uniform``;
    ``"missing"``: both uniform on all but the response ``pi*_beta`` plays least."""
    X, Y = target.shape
    uniform = np.full((X, Y), 1.0 / Y)
    if case == "unilateral":
        return target, uniform, -1
    if case == "missing":
        hidden = int(np.argmin(target[0]))
        mu = uniform.copy()
        mu[:, hidden] = 0.0
        mu /= mu.sum(-1, keepdims=True)
        return mu, mu, hidden
    raise InvalidInputError(f"cases: unknown case {case!r} (unilateral, missing)")


def sample_counts(game, first, second, n: int, rng):
    """Comparison statistics ``(W, N)`` of ``n`` comparisons ``x ~ d0``, ``a ~ first(.|x)``,
    ``b ~ second(.|x)``, labels from the game: pair counts multinomial, wins binomial."""
    P = np.asarray(game.P)
    d0 = np.asarray(game.prompt_weights)
    probs = d0[:, None, None] * first[:, :, None] * second[:, None, :]
    pairs = rng.multinomial(n, probs.reshape(-1) / probs.sum()).reshape(P.shape).astype(float)
    won = rng.binomial(pairs.astype(np.int64), P).astype(float)
    W = won + np.swapaxes(pairs - won, 1, 2)
    return W, pairs + np.swapaxes(pairs, 1, 2)


def coverage(target, mu, game, psi):
    """Population coverage coefficients of ``mu x mu`` for ``target``: the tabular one and,
    with features, the linear one (the model class of the equilibrium learners)."""
    counts = expected_counts(mu, game.prompt_weights)
    tabular = coverage_coefficient(target, counts)
    linear = (tabular if psi is None else
              linear_coverage_coefficient(target, psi, counts, game.prompt_weights))
    return tabular, linear


# Learners on one dataset ------------------------------------------------------------------------
def learn(W, N, game, beta, psi, theta, delta):
    """The equilibrium learners on the counts ``(W, N)``: {method: (policy, radius, gap)}."""
    log_ref = np.log(np.asarray(game.pi_ref))
    d0 = np.asarray(game.prompt_weights)
    common = {"features": psi, "delta": delta, "ridge": RIDGE,
              "norm_bound": 0.0 if theta is None else float(np.linalg.norm(theta))}
    out = {}
    for method, bonus in (("pessimistic_nlhf", "joint"), ("pessimistic_entrywise", "entrywise")):
        res = nt.algorithms.pessimistic_policy(W, N, log_ref, d0, beta, bonus=bonus, **common)
        out[method] = (res.policy, res.radius, res.gap)
    if psi is None:
        p_hat = np.where(N > 0, W / np.where(N > 0, N, 1.0), 0.5)
    else:
        theta_hat, _ = nt.estimation.fit_linear_preference_host(W, N, psi, "logistic", RIDGE)
        p_hat = 1.0 / (1.0 + np.exp(-(psi @ theta_hat)))
    out["greedy_mle_nash"] = (nt.solve_kl_game(p_hat, game.pi_ref, beta).max_policy, 0.0, 0.0)
    return out


def in_version_space(game, W, N, radius) -> bool:
    """Whether ``P*`` lies in the tabular version space of radius ``radius`` (the event of
    probability ``>= 1 - delta`` on which Thm. 1 holds)."""
    up = np.triu(np.ones(N.shape[1:], dtype=bool), 1)[None]
    p_hat = np.where(N > 0, W / np.where(N > 0, N, 1.0), 0.5)
    return bool(np.sum(np.where(up, N * (np.asarray(game.P) - p_hat) ** 2, 0.0)) <= radius**2)


def _dataset_rows(game, beta, psi, theta, W, N, n, target, delta, hidden):
    """One row per equilibrium learner on one dataset, with Thm. 1's bound for pessimism."""
    C = (coverage_coefficient(target, N) if psi is None else
         linear_coverage_coefficient(target, psi, N, game.prompt_weights, ridge=RIDGE))
    rows = []
    for method, (policy, radius, gap) in learn(W, N, game, beta, psi, theta, delta).items():
        row = {"method": method, "suboptimality": float(nt.suboptimality(game, policy, beta)),
               "coverage": C, "radius": radius, "max_min_gap": gap,
               "mass_hidden": float(policy[0, hidden]) if hidden >= 0 else np.nan}
        if method == "pessimistic_nlhf" and psi is None:
            row["bound"] = 4.0 * math.sqrt(2.0) * radius * math.sqrt(C / n)   # 4 b sqrt(C/n)
            row["bound_sharp"] = 2.0 * radius * math.sqrt(C / n) + gap
            row["in_version_space"] = in_version_space(game, W, N, radius)
        rows.append(row)
    return rows


def _rng(cell, behaviour: int, seed: int):
    """A generator per (cell, behaviour, seed), deterministic and distinct across cells."""
    key = [int(cell["n"]), int(round(1000 * cell["beta"])), behaviour, seed,
           sum(map(ord, cell["game"] + cell.get("case", "")))]
    return np.random.default_rng(key)


def _equilibrium(cell) -> pd.DataFrame:
    game, psi, _, theta = build_game(cell["spec"])
    beta, n = cell["beta"], cell["n"]
    target = np.asarray(nt.solve_regularized_nash(game, beta).policy)
    if cell["family"] == "case":
        first, second, hidden = case_data(target, cell["case"])
        plans = [(0, np.nan, first, second)]
    else:
        hidden = -1
        mus = behaviours(target, cell["mixing"], cell["concentrate_on"])
        plans = [(b, t, mu, mu) for b, (t, mu) in enumerate(zip(cell["mixing"], mus))]
    rows = []
    for b, t, first, second in plans:
        pop = (coverage(target, first, game, psi)[1] if first is second else np.nan)
        for seed in range(cell["seeds"]):
            W, N = sample_counts(game, first, second, n, _rng(cell, b, seed))
            for row in _dataset_rows(game, beta, psi, theta, W, N, n, target, cell["delta"],
                                     hidden):
                rows.append({"behaviour": b, "mixing": t, "coverage_population": pop,
                             "seed": seed, "step": 1, "target_hidden": (
                                 float(target[0, hidden]) if hidden >= 0 else np.nan), **row})
    return pd.DataFrame(rows)


# BT methods ---------------------------------------------------------------------------------------
def hyperparameters(method: str, cell: dict, phi) -> dict:
    """The fixed arguments of a BT method in ``cell`` (features, learning rate)."""
    lr = cell["learning_rate"]
    if method == "rlhf_bt":
        return {"learning_rate": lr, "features": phi}
    return {"learning_rate": lr / cell["beta"] ** 2}  # same tabular iterates as rlhf_bt


def paired(algorithms, index) -> nt.algorithms.Algorithm:
    """The algorithms run side by side on the same PRNG keys (hence the same dataset); the
    policy is that of ``algorithms[index]`` (``index`` may be traced, to vmap over methods)."""

    def init(game, key):
        return tuple(a.init(game, key) for a in algorithms)

    def update(state, game, key):
        return tuple(a.update(s, game, key) for a, s in zip(algorithms, state))

    def policy(state):
        policies = jnp.stack([a.policy(s) for a, s in zip(algorithms, state)])
        return jnp.take(policies, index.astype(jnp.int32), axis=0)

    return nt.algorithms.Algorithm(init, update, policy, "none")


def population_reward(game, mu, phi=None) -> np.ndarray:
    """The population (infinite-data) Bradley-Terry reward fit under pairs from ``mu x mu``:
    tabular (the cross-entropy projection of ``P``) or linear, ``r = phi theta`` with ``theta``
    the logistic-regression fit of ``P`` on ``psi = phi(y) - phi(y')`` with the expected
    counts as weights (ridge 1e-10: the maximum-likelihood fit)."""
    if phi is None:
        return nt.bradley_terry_projection(game.P, mu)
    counts = expected_counts(mu, game.prompt_weights)
    psi = phi[:, :, None, :] - phi[:, None, :, :]
    with nt.algorithms.float64_mode():
        fit = nt.estimation.fit_linear_preference(jnp.asarray(counts * game.P),
                                                  jnp.asarray(counts), jnp.asarray(psi),
                                                  "logistic", 1e-10)
        return phi @ np.asarray(fit.theta)


def population_bias(game, beta, mus, phi=None) -> np.ndarray:
    """Suboptimality b of the RLHF optimum ``pi_ref exp(r / beta) / Z`` of the population
    Bradley-Terry fit ``r`` (:func:`population_reward`) under each behaviour of ``mus``."""
    out = []
    for mu in mus:
        policy = nt.reward_optimal_policy(population_reward(game, mu, phi), game.pi_ref, beta)
        out.append(float(nt.suboptimality(game, policy, beta)))
    return np.array(out)


def _bt(cell) -> pd.DataFrame:
    game, psi, phi, _ = build_game(cell["spec"])
    beta, steps = cell["beta"], cell["steps"]
    target = nt.solve_regularized_nash(game, beta).policy
    mus = behaviours(target, cell["mixing"], cell["concentrate_on"])
    if cell["data"] == "population":
        frame = pd.concat([pd.DataFrame({
            "method": method, "step": steps, "seed": 0, "behaviour": np.arange(len(mus)),
            "suboptimality": population_bias(game, beta, mus,
                                             phi if method == "rlhf_bt" else None)})
            for method in BT_METHODS], ignore_index=True)
    else:
        stack = jnp.asarray(mus)
        fixed = [hyperparameters(m, cell, phi) for m in BT_METHODS]

        def make(hp):  # the behaviour is a traced index, vmapped with the seeds and methods
            mu = jnp.take(stack, hp["behaviour"].astype(jnp.int32), axis=0)
            return paired([ALGORITHMS[m](beta, mode="sampled", behaviour=mu,
                                         num_pairs=cell["n"], **kw)
                           for m, kw in zip(BT_METHODS, fixed)], hp["method"])

        grid = {"behaviour": np.tile(np.arange(len(mus)), len(BT_METHODS)),
                "method": np.repeat(np.arange(len(BT_METHODS)), len(mus))}
        frame = run_sweep(make, grid, game, beta=beta, steps=steps, seeds=cell["seeds"])
        frame["method"] = np.asarray(BT_METHODS)[frame.method.astype(int)]
        frame = frame[frame.step.isin({steps // 2, steps})].reset_index(drop=True)
    index = frame.pop("behaviour").astype(int)
    frame["behaviour"] = index
    frame["mixing"] = np.asarray(cell["mixing"])[index]
    frame["coverage_population"] = [coverage(target, mus[i], game, psi)[1] for i in index]
    return frame


# Cells ------------------------------------------------------------------------------------------
def cells(settings: dict) -> list[dict]:
    """Per run and n: the equilibrium learners; per case and n: the learners on the case's
    data; per (game, beta) of the runs: the BT methods at each n of ``bt_num_pairs`` and one
    population cell (their optimum's bias)."""
    base = {"concentrate_on": settings["concentrate_on"], "seeds": settings["seeds"],
            "delta": settings["delta"]}
    out = []
    for label, beta, grid in settings["runs"]:
        spec = settings["games"][label]
        out += [{**base, "family": "equilibrium", "game": label, "spec": spec, "beta": beta,
                 "n": n, "mixing": settings["mixing"], "data": "sampled", "steps": 1}
                for n in grid]
        bt = {**base, "family": "bt", "game": label, "spec": spec, "beta": beta,
              "mixing": settings["bt_mixing"], "steps": settings["bt_steps"],
              "learning_rate": settings["bt_learning_rate"]}
        out += [{**bt, "data": "sampled", "n": n} for n in settings["bt_num_pairs"]]
        out.append({**bt, "data": "population", "seeds": 1, "n": 0})
    for label, beta, case, grid in settings["cases"]:
        out += [{**base, "family": "case", "case": case, "game": label,
                 "spec": settings["games"][label], "beta": beta, "n": n, "data": "sampled",
                 "steps": 1} for n in grid]
    return out


def run_cell(cell: dict) -> pd.DataFrame:
    if cell["family"] in ("equilibrium", "case"):
        return _equilibrium(cell)
    return _bt(cell)


# Analysis ---------------------------------------------------------------------------------------
def final(results: pd.DataFrame, family: str = "equilibrium") -> pd.DataFrame:
    """Rows of the last step of each run of ``family`` (sampled data)."""
    rows = results[(results.family == family) & (results.data == "sampled")]
    return rows[rows.step == rows.steps]


def rate(frame: pd.DataFrame, x: str = "n") -> nt.reproduce.Slope:
    """Log-log slope of the suboptimality on ``x`` (all seeds), clipped at 1e-16."""
    return fit_slope(frame[x], frame.suboptimality.clip(lower=1e-16))


def geometric_mean(values) -> float:
    """exp(mean(log values)), values clipped at 1e-16 (suboptimalities span decades)."""
    return float(np.exp(np.mean(np.log(np.clip(values, 1e-16, None)))))


def binomial_tail(failures: int, trials: int, delta: float) -> float:
    """``P(Binomial(trials, delta) >= failures)``."""
    return float(stats.binom.sf(failures - 1, trials, delta)) if trials else 1.0


def _theorem_checks(results, settings):
    rows = pd.concat([final(results), final(results, "case")])
    rows = rows[(rows.method == "pessimistic_nlhf") & rows.bound.notna()]
    delta, level = settings["delta"], settings["binomial_level"]
    finite = rows[np.isfinite(rows.coverage)]
    fails = int(np.sum(finite.suboptimality > finite.bound))
    sharp = int(np.sum(finite.suboptimality > finite.bound_sharp))
    ratio = float((finite.suboptimality / finite.bound).max())
    covered = int(rows.in_version_space.astype(bool).sum())
    p_bound = binomial_tail(fails, len(finite), delta)
    p_set = binomial_tail(len(rows) - covered, len(rows), delta)
    return [
        Check(f"Thm. 1: suboptimality <= 4 b sqrt(C / n) (b = sqrt(2) r, the radius "
              f"pessimistic_nlhf uses, C the data's unilateral coverage of pi*_beta) with "
              f"probability >= 1 - delta = {1 - delta:g}, over every tabular dataset",
              f"{fails} of {len(finite)} datasets above the bound (largest ratio "
              f"{ratio:.2e}; {len(rows) - len(finite)} with C = inf, vacuous); the sharper "
              f"2 r sqrt(C / n) + gap [derived]: {sharp} above; P(Binomial >= failures) "
              f"{p_bound:.3g}", f"P >= {level:g}", p_bound >= level),
        Check(f"The version space (radius r = confidence_radius(d, delta)) contains P* with "
              f"probability >= {1 - delta:g} (Hsu, Kakade & Zhang 2012)",
              f"{covered} of {len(rows)} datasets; P(Binomial >= misses) {p_set:.3g}",
              f"P >= {level:g}", p_set >= level)]


def _slope_checks(rows, bound):
    out = []
    good = rows[rows.mixing == 0.0]
    for (label, beta), frame in good.groupby(["game", "beta"], sort=False):
        fits = {m: rate(frame[frame.method == m]) for m in EQUILIBRIUM}
        for method in ("pessimistic_nlhf", "greedy_mle_nash"):
            fitted = fits[method]
            follows = "-1" if fitted.low <= -1.0 <= fitted.high else (
                "-1/2" if fitted.low <= -0.5 <= fitted.high else "neither")
            extra = (f"; entrywise {fits['pessimistic_entrywise']}"
                     if method == "pessimistic_nlhf" else "")
            out.append(Check(
                f"{label}, beta={beta:g}, {method}: suboptimality ~ n^slope under uniform data, "
                f"at least Thm. 1's sqrt(1/n)",
                f"slope {fitted} (CI covers {follows}){extra}", f"<= {bound:g}",
                fitted.slope <= bound))
    return out


def _coverage_checks(rows, band):
    out = []
    for (label, beta), frame in rows.groupby(["game", "beta"], sort=False):
        large = frame[frame.n == frame.n.max()]
        fits = {m: rate(large[large.method == m], "coverage_population") for m in EQUILIBRIUM}
        fitted = fits["pessimistic_nlhf"]
        out.append(Check(
            f"{label}, beta={beta:g}, n={int(large.n.max())}: pessimistic suboptimality ~ "
            f"C^slope across behaviours, C the behaviour's coverage of pi*_beta (Thm. 1: "
            f"sqrt(C / n); KL-regularized local rate: C / n)",
            f"slope {fitted}; greedy {fits['greedy_mle_nash']}, entrywise "
            f"{fits['pessimistic_entrywise']}", f"in [{band[0]:g}, {band[1]:g}]",
            band[0] <= fitted.slope <= band[1]))
    return out


def _case_checks(results, settings):
    out = []
    rows = final(results, "case")
    for (label, beta, case, n), frame in rows.groupby(["game", "beta", "case", "n"],
                                                      sort=False):
        wide = frame.pivot_table(index="seed", columns="method", values="suboptimality")
        mean = wide.mean()
        if case == "unilateral":
            diff = wide["pessimistic_nlhf"] - wide["greedy_mle_nash"]
            se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
            tol = settings["unilateral_tolerance"]
            C = frame.coverage.max()
            out.append(Check(
                f"{label}, beta={beta:g}, n={n}: unilateral coverage poor elsewhere (a ~ "
                f"pi*, b ~ uniform; C <= {C:.3g}): pessimism no worse than greedy",
                f"pessimistic {mean['pessimistic_nlhf']:.3e}, greedy "
                f"{mean['greedy_mle_nash']:.3e}, entrywise "
                f"{mean['pessimistic_entrywise']:.3e} (paired difference {diff.mean():.2e} "
                f"+- {se:.1e})", f"difference <= {tol:g} SE", diff.mean() <= tol * se))
        else:
            mass = frame.groupby("method").mass_hidden.mean()
            star = float(frame.target_hidden.iloc[0])
            out.append(Check(
                f"{label}, beta={beta:g}, n={n}: a response never shown (unilateral coverage "
                f"fails, C = inf): the version space lets it beat everything, so the "
                f"pessimistic max player moves towards it (Cui & Du 2022); neither method "
                f"has a guarantee",
                f"mass on it: pessimistic {mass['pessimistic_nlhf']:.3f}, greedy "
                f"{mass['greedy_mle_nash']:.3f}, pi* {star:.3f}; suboptimality "
                f"pessimistic {mean['pessimistic_nlhf']:.3e}, greedy "
                f"{mean['greedy_mle_nash']:.3e}, entrywise {mean['pessimistic_entrywise']:.3e}",
                "pessimistic mass > pi* and > greedy",
                mass["pessimistic_nlhf"] > max(star, mass["greedy_mle_nash"])))
    return out


def bias(results: pd.DataFrame) -> pd.DataFrame:
    """The population suboptimality b of each BT method per (game, beta, mixing)."""
    rows = results[(results.family == "bt") & (results.data == "population")]
    return (rows.groupby(["game", "beta", "method", "mixing"]).suboptimality.mean()
            .rename("bias").reset_index())


def _bt_checks(results, n_bt):
    out = []
    eq = final(results)
    eq = eq[(eq.n == n_bt) & (eq.mixing == 0.0)]
    bt = final(results, "bt")
    bt = bt[(bt.n == n_bt) & (bt.mixing == 0.0)]
    biases = bias(results)
    for (label, beta), frame in bt.groupby(["game", "beta"], sort=False):
        mean = frame.groupby("method").suboptimality.mean()
        learners = eq[(eq.game == label) & (eq.beta == beta)].groupby("method").suboptimality
        worst_eq = learners.mean().max()
        b = biases[(biases.game == label) & (biases.beta == beta)
                   & (biases.mixing == 0.0)].set_index("method").bias
        out.append(Check(
            f"{label}, beta={beta:g}: at n={n_bt} (uniform behaviour) the equilibrium "
            f"learners beat the BT methods, which converge to the RLHF optimum, not pi*_beta",
            f"equilibrium max {worst_eq:.2e}, BT min {mean.min():.2e}", "equilibrium < BT",
            worst_eq < mean.min()))
        ratios = {m: mean[m] / b[m] for m in BT_METHODS}
        out.append(Check(
            f"{label}, beta={beta:g}: the BT methods plateau at the suboptimality b of their "
            f"population optimum (statistical error at n={n_bt} far below b)",
            ", ".join(f"{m} {mean[m]:.3e} / b {b[m]:.3e}" for m in BT_METHODS),
            "ratio in [1/2, 2]", all(0.5 <= r <= 2.0 for r in ratios.values())))
    return out


def optimization_residual(results: pd.DataFrame) -> pd.DataFrame:
    """Per BT cell and behaviour: |mean change of the suboptimality over the second half of the
    gradient steps| and the standard deviation over seeds at the end (statistical error)."""
    rows = results[(results.family == "bt") & (results.data == "sampled")]
    keys = ["game", "beta", "method", "n", "mixing"]
    last = rows[rows.step == rows.steps].groupby(keys).suboptimality
    half = rows[rows.step == rows.steps // 2].groupby(keys).suboptimality.mean()
    return pd.DataFrame({"drift": (last.mean() - half).abs(), "spread": last.std()}).reset_index()


def _optimization_check(results):
    res = optimization_residual(results)
    good = res[res.mixing == 0.0]
    worst = (good.drift / good.spread).max()
    return Check(
        "BT methods: optimization error far below statistical error (uniform behaviour): the "
        "change over the second half of the gradient steps vs the spread over seeds",
        f"max drift / spread {worst:.2e} (all behaviours: {(res.drift / res.spread).max():.2e})",
        "<= 0.1", worst <= 0.1)


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    n_bt = max(settings["bt_num_pairs"])
    if any(n_bt not in grid for _, _, grid in settings["runs"]):
        raise InvalidInputError("bt_num_pairs: its largest n must be in every run's n grid")
    rows = final(results)
    return [*_theorem_checks(results, settings),
            *_slope_checks(rows, settings["slope_bound"]),
            *_coverage_checks(rows, settings["coverage_slope_band"]),
            *_case_checks(results, settings),
            *_bt_checks(results, n_bt),
            _optimization_check(results)]
