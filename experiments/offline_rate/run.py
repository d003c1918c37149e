"""Offline learning from n comparisons: rate in n, dependence on coverage, BT bias.

Claims checked (Ye et al. 2024, arXiv:2402.07314, Thm. 1; reference note nlhf_algorithms.md
Sec. 1.2, 6.4-6.5, 7.2). Suboptimality is the max player's one-sided suboptimality
``J(pi*, pi*) - min_p J(pi_hat, p) = gap / 2`` (``nt.suboptimality``), against the certified
``pi*_beta``; ``beta`` is the KL coefficient (Ye et al.'s ``eta = 1 / beta``).

* Pessimistic (``pessimistic_nlhf``) and greedy (``greedy_mle_nash``) equilibrium learning
  converge at least as fast as Thm. 1's ``sqrt(C / n)``: a log-log slope <= -1/2 (+ 0.1 of
  slack) under good coverage. For a KL-regularized (strongly concave) objective the
  suboptimality is quadratic in the estimation error, so sharper analyses give -1.
* Under poor coverage, at the smallest n, pessimism does no worse than greedy: Thm. 1 needs
  only coverage of pi*_beta (single-policy, unilateral coverage), while the greedy plug-in's
  guarantee needs every policy covered (Jin, Yang & Wang 2021, arXiv:2012.15085: pessimism is
  what removes the uniform-coverage requirement). Checked for behaviours concentrated on the
  responses pi*_beta plays least and on those it plays most (pi*_beta covered, others not).
* The suboptimality grows with the coverage coefficient C of the behaviour policy.
* BT-based methods (``rlhf_bt``, ``dpo``) converge to the RLHF optimum of the Bradley-Terry
  fit, not to pi*_beta, even on a BT game (the regularized Nash equilibrium of
  ``sigma(r - r')`` is not ``pi_ref exp(r / beta) / Z``): their suboptimality plateaus at the
  population value b > 0 of that optimum, so the equilibrium learners beat them at large n.

One cell per (game, beta, family, n), a family being the equilibrium learners or the BT
methods, run side by side on the same datasets: every behaviour policy of the coverage grid,
every method of the family and every seed in one vmapped ``run_sweep``; plus one population
cell per game and beta for the bias b (closed-form Bradley-Terry fits).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

import nlhf_theory as nt
from nlhf_theory._validation import InvalidInputError
from nlhf_theory.algorithms import (
    ALGORITHMS,
    coverage_coefficient,
    expected_counts,
    linear_coverage_coefficient,
    run_sweep,
)
from nlhf_theory.algorithms._equilibrium_learning import fit_linear_preference
from nlhf_theory.reproduce import Check, fit_slope

EQUILIBRIUM = ("pessimistic_nlhf", "greedy_mle_nash")
BT_METHODS = ("rlhf_bt", "dpo")
METHODS = EQUILIBRIUM + BT_METHODS


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
    """``(game, psi, phi)``: the game, the preference features of the equilibrium learners
    (None: tabular) and the reward features of reward-based RLHF (None: tabular)."""
    spec = dict(spec)
    kind = spec.pop("kind")
    if kind == "tabular":
        return nt.make_game(spec.pop("name"), **spec), None, None
    rng = np.random.default_rng(spec["seed"])
    phi = rng.standard_normal((spec["num_responses"], spec["dim"]))
    if kind == "linear_bt":
        model = nt.bradley_terry_linear(phi, rng.standard_normal(spec["dim"]))
    else:
        psi = np.concatenate([phi[:, None] - phi[None, :], _skew_bilinear(phi)], axis=-1)
        model = nt.LinearPreferenceModel(psi, rng.standard_normal(psi.shape[-1]))
    return model.game, np.asarray(model.features), phi[None]


def behaviours(target, mixing, concentrate_on: int, *, most: bool = False):
    """``mu_t = (1 - t) uniform + t uniform(the concentrate_on responses least played by the
    target)`` (or most played, ``most``) for each ``t`` of ``mixing``: (T, X, Y)."""
    X, Y = target.shape
    order = np.argsort(-target if most else target, axis=-1)[:, :concentrate_on]
    concentrated = np.zeros((X, Y))
    np.put_along_axis(concentrated, order, 1.0 / concentrate_on, axis=-1)
    t = np.asarray(mixing, dtype=np.float64)[:, None, None]
    return (1.0 - t) / Y + t * concentrated


def behaviour_grid(target, cell):
    """The cell's behaviours: (mus (B, X, Y), mixing t (B,), concentration labels (B,)):
    ``cell["mixing"]`` towards the responses the target plays least (poor coverage of the
    target), ``cell["single_policy_mixing"]`` towards those it plays most (the target covered,
    other policies not)."""
    least, most = cell["mixing"], cell["single_policy_mixing"]
    mus = np.concatenate([behaviours(target, least, cell["concentrate_on"]),
                          behaviours(target, most, cell["concentrate_on"], most=True)])
    return mus, np.array([*least, *most]), np.array(["least"] * len(least) + ["most"] * len(most))


def coverage(target, mu, game, psi):
    """Coverage coefficients of the population design of ``mu`` for ``target``: the tabular
    one and, with features, the linear one (the model class of the equilibrium learners)."""
    counts = expected_counts(mu, game.prompt_weights)
    tabular = coverage_coefficient(target, counts)
    linear = (tabular if psi is None else
              linear_coverage_coefficient(target, psi, counts, game.prompt_weights))
    return tabular, linear


# Cells ----------------------------------------------------------------------------------------
FAMILIES = {"equilibrium": EQUILIBRIUM, "bt": BT_METHODS}


def _base(settings, label, beta, family):
    bt = family == "bt"
    return {"game": label, "spec": settings["games"][label], "beta": beta, "family": family,
            "mixing": settings["bt_mixing" if bt else "mixing"],
            "single_policy_mixing": [] if bt else settings["single_policy_mixing"],
            "concentrate_on": settings["concentrate_on"], "seeds": settings["seeds"],
            "steps": settings["bt_steps"] if bt else 1,
            "learning_rate": settings["bt_learning_rate"] if bt else 0.0}


def cells(settings: dict) -> list[dict]:
    """Per (game, beta): one cell per n for each family (its methods on the same datasets),
    and one population cell (the BT methods' optimum)."""
    out = []
    for label, beta in settings["runs"]:
        for family in FAMILIES:
            base = _base(settings, label, beta, family)
            grid = settings["bt_num_pairs" if family == "bt" else "num_pairs"]
            out += [{**base, "data": "sampled", "n": n} for n in grid]
        out.append({**_base(settings, label, beta, "bt"), "data": "population", "seeds": 1})
    return out


def hyperparameters(method: str, cell: dict, psi, phi) -> dict:
    """The fixed arguments of ``method`` in ``cell`` (features, learning rate)."""
    lr = cell["learning_rate"]
    if method in EQUILIBRIUM:
        return {"features": psi}
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
        fit = fit_linear_preference(jnp.asarray(counts * game.P), jnp.asarray(counts),
                                    jnp.asarray(psi), "logistic", 1e-10)
        return phi @ np.asarray(fit.theta)


def population_bias(game, beta, mus, phi=None) -> np.ndarray:
    """Suboptimality b of the RLHF optimum ``pi_ref exp(r / beta) / Z`` of the population
    Bradley-Terry fit ``r`` (:func:`population_reward`) under each behaviour of ``mus``."""
    out = []
    for mu in mus:
        policy = nt.reward_optimal_policy(population_reward(game, mu, phi), game.pi_ref, beta)
        out.append(float(nt.suboptimality(game, policy, beta)))
    return np.array(out)


def run_cell(cell: dict) -> pd.DataFrame:
    game, psi, phi = build_game(cell["spec"])
    beta = cell["beta"]
    target = nt.solve_regularized_nash(game, beta).policy
    mus, mixing, concentration = behaviour_grid(target, cell)
    methods = FAMILIES[cell["family"]]
    if cell["data"] == "population":
        frame = _population(cell, game, mus, phi)
    else:
        frame = _simulate(cell, game, mus, methods,
                          [hyperparameters(m, cell, psi, phi) for m in methods])
    values = np.array([coverage(target, mu, game, psi) for mu in mus])
    index = frame.pop("behaviour").astype(int)
    frame["mixing"], frame["concentration"] = mixing[index], concentration[index]
    frame["coverage_tabular"], frame["coverage"] = values[index, 0], values[index, 1]
    return frame


def _population(cell, game, mus, phi) -> pd.DataFrame:
    """The BT methods' population suboptimality b (DPO: tabular reward; RLHF: ``phi``)."""
    return pd.concat([pd.DataFrame({
        "method": method, "step": cell["steps"], "seed": 0, "behaviour": np.arange(len(mus)),
        "suboptimality": population_bias(game, cell["beta"], mus,
                                         phi if method == "rlhf_bt" else None)})
        for method in BT_METHODS], ignore_index=True)


def _simulate(cell, game, mus, methods, fixed) -> pd.DataFrame:
    """``run_sweep`` of ``methods`` (paired, on the same data) over the behaviours ``mus``
    (a traced index) and the seeds; the rows of the last and of the halfway step (the latter
    to measure the optimization error)."""
    beta, steps = cell["beta"], cell["steps"]
    size = {"num_pairs": cell["n"]}
    stack = jnp.asarray(mus)

    def make(hp):  # the behaviour is a traced index, vmapped with the seeds and the methods
        mu = jnp.take(stack, hp["behaviour"].astype(jnp.int32), axis=0)
        return paired([ALGORITHMS[m](beta, mode="sampled", behaviour=mu, **size, **kw)
                       for m, kw in zip(methods, fixed)], hp["method"])

    grid = {"behaviour": np.tile(np.arange(len(mus)), len(methods)),
            "method": np.repeat(np.arange(len(methods)), len(mus))}
    frame = run_sweep(make, grid, game, beta=beta, steps=steps, seeds=cell["seeds"])
    frame["method"] = np.asarray(methods)[frame.method.astype(int)]
    return frame[frame.step.isin({steps // 2, steps})].reset_index(drop=True)


# Analysis -------------------------------------------------------------------------------------
def final(results: pd.DataFrame, data: str = "sampled", concentration: str = "least"):
    """Rows of the last step of each run (of the sampled or the population cells), for the
    behaviours concentrated towards the responses the target plays least (or most)."""
    return results[(results.step == results.steps) & (results.data == data)
                   & (results.concentration == concentration)]


def rate(frame: pd.DataFrame) -> nt.reproduce.Slope:
    """Log-log slope of the suboptimality on n (all seeds), clipped at 1e-16."""
    return fit_slope(frame.n, frame.suboptimality.clip(lower=1e-16))


def geometric_mean(values) -> float:
    """exp(mean(log values)), values clipped at 1e-16 (suboptimalities span decades)."""
    return float(np.exp(np.mean(np.log(np.clip(values, 1e-16, None)))))


def bias(results: pd.DataFrame) -> pd.DataFrame:
    """The population suboptimality b of each BT method per (game, beta, mixing)."""
    return (final(results, "population")
            .groupby(["game", "beta", "method", "mixing"]).suboptimality.mean().rename("bias")
            .reset_index())


def _slope_checks(good, bound):
    out = []
    for (label, beta, method), frame in good[good.method.isin(EQUILIBRIUM)].groupby(
            ["game", "beta", "method"], sort=False):
        fitted = rate(frame)
        follows = "-1" if fitted.low <= -1.0 <= fitted.high else (
            "-1/2" if fitted.low <= -0.5 <= fitted.high else "neither")
        out.append(Check(
            f"{label}, beta={beta:g}, {method}: suboptimality ~ n^slope under good coverage "
            f"(uniform behaviour), at least Thm. 1's sqrt(1/n)",
            f"slope {fitted} (CI covers {follows})", f"<= {bound:g}", fitted.slope <= bound))
    return out


def _pessimism_checks(rows, t_poor, n_small, regime):
    out = []
    poor = rows[(rows.mixing == t_poor) & (rows.n == n_small)]
    for (label, beta), frame in poor.groupby(["game", "beta"], sort=False):
        mean = frame.groupby("method").suboptimality.mean()
        out.append(Check(
            f"{label}, beta={beta:g}: {regime} (t={t_poor:g}, C={frame.coverage.iloc[0]:.3g}) "
            f"at n={n_small}, pessimism <= greedy (single-policy coverage suffices for "
            f"pessimism; Jin et al. 2021, arXiv:2012.15085)",
            f"pessimistic {mean['pessimistic_nlhf']:.4f}, greedy {mean['greedy_mle_nash']:.4f}",
            "pessimistic <= greedy",
            mean["pessimistic_nlhf"] <= mean["greedy_mle_nash"]))
    return out


def _coverage_checks(rows, n_large):
    out = []
    large = rows[rows.method.isin(EQUILIBRIUM) & (rows.n == n_large)]
    for (label, beta, method), frame in large.groupby(["game", "beta", "method"], sort=False):
        summary = frame.groupby("coverage").suboptimality.apply(geometric_mean)
        rho = stats.spearmanr(summary.index, summary.values).statistic
        out.append(Check(
            f"{label}, beta={beta:g}, {method}: suboptimality increases with the coverage "
            f"coefficient C at n={n_large} (Thm. 1: sqrt(C / n))",
            "C " + ", ".join(f"{c:.3g}" for c in summary.index) + " -> subopt "
            + ", ".join(f"{v:.2e}" for v in summary.values) + f" (Spearman {rho:.2f})",
            "strictly increasing (Spearman 1)", bool(np.all(np.diff(summary.values) > 0))))
    return out


def _bt_checks(good, biases, n_large):
    out = []
    large = good[good.n == n_large]
    for (label, beta), frame in large.groupby(["game", "beta"], sort=False):
        mean = frame.groupby("method").suboptimality.mean()
        b = biases[(biases.game == label) & (biases.beta == beta)
                   & (biases.mixing == good.mixing.min())].set_index("method").bias
        worst_eq, best_bt = mean[list(EQUILIBRIUM)].max(), mean[list(BT_METHODS)].min()
        out.append(Check(
            f"{label}, beta={beta:g}: at n={n_large} (uniform behaviour) the equilibrium "
            f"learners beat the BT methods, which converge to the RLHF optimum, not pi*_beta",
            f"equilibrium max {worst_eq:.2e}, BT min {best_bt:.2e}", "equilibrium < BT",
            worst_eq < best_bt))
        ratios = {m: mean[m] / b[m] for m in BT_METHODS}
        out.append(Check(
            f"{label}, beta={beta:g}: the BT methods plateau at the suboptimality b of their "
            f"population optimum (statistical error at n={n_large} far below b)",
            ", ".join(f"{m} {mean[m]:.3e} / b {b[m]:.3e}" for m in BT_METHODS),
            "ratio in [1/2, 2]", all(0.5 <= r <= 2.0 for r in ratios.values())))
    return out


def optimization_residual(results: pd.DataFrame) -> pd.DataFrame:
    """Per BT cell and behaviour: |mean change of the suboptimality over the second half of the
    gradient steps| and the standard deviation over seeds at the end (statistical error)."""
    rows = results[(results.data == "sampled") & results.method.isin(BT_METHODS)]
    keys = ["game", "beta", "method", "n", "mixing"]
    last = rows[rows.step == rows.steps].groupby(keys).suboptimality
    half = rows[rows.step == rows.steps // 2].groupby(keys).suboptimality.mean()
    return pd.DataFrame({"drift": (last.mean() - half).abs(), "spread": last.std()}).reset_index()


def _optimization_check(results, t_good):
    res = optimization_residual(results)
    good = res[res.mixing == t_good]
    worst = (good.drift / good.spread).max()
    return Check(
        "BT methods: optimization error far below statistical error (uniform behaviour): the "
        "change over the second half of the gradient steps vs the spread over seeds",
        f"max drift / spread {worst:.2e} (all behaviours: {(res.drift / res.spread).max():.2e})",
        "<= 0.1", worst <= 0.1)


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    rows = final(results)
    t_good, t_poor = min(settings["mixing"]), max(settings["mixing"])
    n_small, n_large = min(settings["num_pairs"]), max(settings["num_pairs"])
    good = rows[rows.mixing == t_good]
    if max(settings["bt_num_pairs"]) != n_large:
        raise InvalidInputError("bt_num_pairs: must reach the largest n of num_pairs")
    return [*_slope_checks(good, settings["slope_bound"]),
            *_pessimism_checks(rows, t_poor, n_small, "mass on the responses pi* plays least"),
            *_pessimism_checks(final(results, concentration="most"),
                               max(settings["single_policy_mixing"], default=0.0), n_small,
                               "mass on the responses pi* plays most"),
            *_coverage_checks(rows, n_large),
            *_bt_checks(good, bias(results), n_large),
            _optimization_check(results, t_good)]
