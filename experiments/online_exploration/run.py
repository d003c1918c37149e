"""Batch online exploration: optimistic equilibrium learning with the uncertainty enhancer.

Claim checked (Ye et al. 2024, arXiv:2402.07314, Alg. 2 and Thm. 2). Each round the main agent
plays the regularized equilibrium of the fitted preference, pi1_t = NE_beta(P_hat_t), and the
enhancer pi2_t maximizes Alg. 2's information ratio against pi1_t: for the linear class,
||u||_{A_t^-1} with u = E_{x ~ d0} psi(x, pi1_t, pi2) the joint expected feature of the pair
(link' weighted, the logistic model linearized at theta_hat) and A_t = (1/m) sum_i link'^2
psi_i psi_i^T + lambda / (4 B^2) I, maximized over joint pure responses (all 30^3 enumerated);
a batch of m comparisons a ~ pi1_t, b ~ pi2_t is added. Theory: the main agent's suboptimality
(duality gap / 2 against the certified pi*_beta) is at most eps after O(eps^-2) samples, Õ(d^2
/ eps^2) for a d-dimensional linear class [our reading of Thm. 2's rate], i.e. eps <~ d
n^-1/2; the enhancer is the exploration the bound is proved for, so the alternatives (self-play
pi2 = pi1, uniform, pi_ref) should not beat it where pi_ref covers pi*_beta poorly.

Game: a Bradley-Terry-linear model with Gaussian response features phi(x, y) in R^D, a reward
theta . phi living in the first ``true_dim`` coordinates, and a Zipf pi_ref that puts most
mass on the worst responses (the best ones are the rarest), so that pi*_beta is poorly covered.
The learner fits a logistic model on the first d coordinates of psi = phi(y) - phi(y') (nested
classes, all realizable), so the d sweep changes the class, never the game or pi*_beta.

One cell per (enhancer, d): every round and seed of one vmapped ``nt.run`` call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

import nlhf_theory as nt
from nlhf_theory.reproduce import Check, fit_slope

#: Floor applied before logarithms (suboptimalities are >= 0; a converged one can round to 0).
FLOOR = 1e-16


def make_model(spec: dict) -> nt.LinearPreferenceModel:
    """The Bradley-Terry-linear game of ``spec`` (see ``config.GAME``), features of max_dim."""
    rng = np.random.default_rng(spec["seed"])
    X, Y, D = spec["num_prompts"], spec["num_responses"], spec["max_dim"]
    phi = rng.normal(size=(X, Y, D))
    theta = np.zeros(D)
    direction = rng.normal(size=spec["true_dim"])
    theta[:spec["true_dim"]] = spec["reward_norm"] * direction / np.linalg.norm(direction)
    worst_first = np.argsort(np.argsort(phi @ theta, axis=-1), axis=-1)  # rank 0: worst reward
    pi_ref = nt.zipf_policy(worst_first, spec["zipf_exponent"])
    return nt.bradley_terry_linear(phi, theta, pi_ref=pi_ref)


def cells(settings: dict) -> list[dict]:
    common = {key: settings[key] for key in ("game", "beta", "batch_size", "rounds", "seeds")}
    pairs = [(e, settings["main_dim"]) for e in settings["enhancers"]]
    pairs += [(e, d) for e in settings["dim_enhancers"] for d in settings["dims"]
              if (e, d) not in pairs]
    return [{**common, "enhancer": e, "dim": d} for e, d in pairs]


def run_cell(cell: dict) -> pd.DataFrame:
    model = make_model(cell["game"])
    frame = nt.run("optimistic_nlhf", model.game, beta=cell["beta"], steps=cell["rounds"],
                   mode="sampled", seeds=cell["seeds"],
                   comparisons_per_round=cell["batch_size"],
                   enhancer=cell["enhancer"], features=model.features[..., :cell["dim"]])
    frame.insert(1, "samples", frame.step * cell["batch_size"])
    return frame[["step", "samples", "seed", "suboptimality", "duality_gap", "kl_ref"]]


# Analysis -----------------------------------------------------------------------------------
def curve(results: pd.DataFrame, enhancer: str, dim: int) -> pd.DataFrame:
    """Rows of one (enhancer, d) run after at least one round, suboptimality floored."""
    part = results[(results.enhancer == enhancer) & (results.dim == dim)
                   & (results.samples > 0)].copy()
    part["suboptimality"] = part.suboptimality.clip(lower=FLOOR)
    return part


def final(results: pd.DataFrame, enhancer: str, dim: int) -> np.ndarray:
    """Suboptimality per seed at the final sample budget."""
    part = curve(results, enhancer, dim)
    return part[part.step == part.step.max()].sort_values("seed").suboptimality.to_numpy()


def sample_slope(results: pd.DataFrame, enhancer: str, dim: int, fit_from: float):
    """Log-log slope of suboptimality on samples for samples >= fit_from * final budget."""
    part = curve(results, enhancer, dim)
    part = part[part.samples >= fit_from * part.samples.max()]
    return fit_slope(part.samples, part.suboptimality)


def dim_slope(results: pd.DataFrame, enhancer: str, dims):
    """Log-log slope of the final suboptimality on the feature dimension d."""
    values = [final(results, enhancer, d) for d in dims]
    x = np.concatenate([np.full(v.size, float(d)) for d, v in zip(dims, values)])
    return fit_slope(x, np.concatenate(values))


def log_ratio(a, b, confidence: float):
    """``mean log a - mean log b`` with the half-width of its Welch t interval."""
    la, lb = np.log(a), np.log(b)
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    dof = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    return la.mean() - lb.mean(), stats.t.ppf(0.5 + confidence / 2, dof) * np.sqrt(va + vb)


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    d, level = settings["main_dim"], settings["confidence"]
    budget = settings["rounds"] * settings["batch_size"]
    fitted = sample_slope(results, "uncertainty", d, settings["fit_from"])
    out = [Check(
        f"uncertainty enhancer (d = {d}): suboptimality falls at least as n^-1/2 (Thm. 2, "
        f"O(eps^-2) samples; log-log slope for n >= {settings['fit_from']:g} x {budget})",
        f"slope {fitted}", f"<= {settings['max_sample_slope']:g}",
        fitted.slope <= settings["max_sample_slope"])]
    mine = final(results, "uncertainty", d)
    for other in settings["enhancers"]:
        if other == "uncertainty":
            continue
        diff, half = log_ratio(mine, final(results, other, d), level)
        out.append(Check(
            f"uncertainty enhancer at least as good as {other} at n = {budget} (d = {d}; "
            f"mean log suboptimality, Welch {level:.0%} interval)",
            f"ratio of geometric means {np.exp(diff):.3f} "
            f"[{np.exp(diff - half):.3f}, {np.exp(diff + half):.3f}]",
            "interval reaches <= 1 (not significantly worse)", diff - half <= 0.0))
    grown = dim_slope(results, "uncertainty", settings["dims"])
    out.append(Check(
        f"uncertainty enhancer: suboptimality at n = {budget} grows with d (d = "
        f"{', '.join(map(str, settings['dims']))}; the Õ(d^2 / eps^2) bound has eps ~ d)",
        f"slope in d {grown} (bound's exponent 1)", "> 0 (whole interval)", grown.low > 0.0))
    return out
