"""Last-iterate convergence: which target each method's last iterate reaches, classified.

For every method of ``config.METHODS``, game and beta, the exact trajectory (``trajectories``)
records the duality gap (regularized, 0 only at pi*_beta), the exploitability (unregularized, 0
only at a maximal lottery), the average iterate's exploitability and, on Bradley-Terry games,
the distance to the RLHF optimum. :func:`classify` labels each trajectory with the thresholds
of ``config.CLASSIFY``; :func:`expected` gives the label each method's documented target
predicts; the checks compare them, and fit the rates theory claims.

One cell per (method, group of same-shape games, set of betas sharing a horizon and the
integer hyper-parameters): one vmapped, jit-compiled computation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

import nlhf_theory as nt
from nlhf_theory.algorithms import make_algorithm
from nlhf_theory.reproduce import Check, fit_slope

from . import config
from .trajectories import contraction, trajectories

LABELS = ("pi*_beta", "maximal lottery", "RLHF optimum", "cycles", "slow", "elsewhere")


# Settings -----------------------------------------------------------------------------------
def hyperparameters(method: str, beta: float, steps: int, num_responses: int) -> dict:
    """The learning rates of ``config`` (module docstring) for ``method`` at ``beta``."""
    rules = nt.algorithms  # the library's default rules (nt.algorithms.DEFAULT_RULES)
    lr = config.EGPO_LR[beta]
    if method == "nash_md":
        return {}
    if method in ("inpo",):
        return {"learning_rate": rules.mirror_step(beta)}
    if method == "mpo":  # MMD's step: the same step as INPO's eta, eta' = eta / (1 - eta beta)
        mmd = rules.magnetic_step(beta)
        return {"learning_rate": mmd, "period": rules.magnet_period(beta, mmd)}
    if method == "comal":
        eta = rules.mirror_step(beta)
        return {"learning_rate": eta, "period": rules.anchor_period(beta, eta)}
    if method in ("online_ipo", "egpo"):
        return {"learning_rate": lr}
    if method == "nash_md_pg":
        return {"learning_rate": lr, "mixture": config.NASH_MD_PG_MIXTURE}
    if method == "online_dpo":
        return {"learning_rate": 8 * lr / beta**2}
    if method == "sail_pr":
        return {"learning_rate": 8 * lr / beta**2, **config.SAIL_PR}
    if method == "sppo":
        return {"learning_rate": math.sqrt(8 * math.log(num_responses) / steps)}
    raise nt.InvalidInputError(f"method: no learning-rate rule for {method!r}")


def make(spec: dict) -> nt.PreferenceGame:
    spec = dict(spec)
    return nt.make_game(spec.pop("name"), **spec)


def record_steps(steps: int, points: int) -> np.ndarray:
    """Recorded steps: ``points`` evenly spaced plus ``points / 4`` log-spaced (early steps)."""
    even = np.linspace(0, steps, points + 1)
    early = np.logspace(0, math.log10(steps), points // 4)
    return np.unique(np.round(np.concatenate([even, early])).astype(int))


def cells(settings: dict) -> list[dict]:
    out = []
    for method in settings["methods"]:
        for group in settings["game_groups"]:
            num_responses = make(next(iter(group.values()))).num_responses
            for betas, steps in settings["beta_sets"]:
                by_shared = {}
                only = settings["betas_of"].get(method, betas)
                for beta in [b for b in betas if b in only]:
                    hp = hyperparameters(method, beta, steps, num_responses)
                    shared = {k: v for k, v in hp.items() if isinstance(v, int)}
                    by_shared.setdefault(tuple(sorted(shared.items())), []).append(
                        (beta, {k: v for k, v in hp.items() if k not in shared}))
                for shared, runs in by_shared.items():
                    out.append({"method": method, "games": group, "steps": steps,
                                "betas": [b for b, _ in runs], "real": [h for _, h in runs],
                                "shared": dict(shared),
                                "record_points": settings["record_points"]})
    return out


def reward_optimum(spec: dict, game: nt.PreferenceGame, beta: float) -> np.ndarray:
    """The RLHF optimum of a Bradley-Terry game spec (NaN for games without a reward)."""
    if "reward" not in spec:
        return np.full(game.pi_ref.shape, np.nan)
    reward = np.broadcast_to(np.asarray(spec["reward"], np.float64), game.pi_ref.shape)
    return nt.reward_optimal_policy(reward, game.pi_ref, beta)


def run_cell(cell: dict) -> pd.DataFrame:
    runs = [(label, spec, beta, hp) for beta, hp in zip(cell["betas"], cell["real"])
            for label, spec in cell["games"].items()]
    games = [make(spec) for _, spec, _, _ in runs]
    betas = [beta for _, _, beta, _ in runs]
    targets = [nt.solve_regularized_nash(g, b).policy for g, b in zip(games, betas)]
    optima = [reward_optimum(spec, g, b) for (_, spec, _, _), g, b in zip(runs, games, betas)]
    keep = record_steps(cell["steps"], cell["record_points"])
    out = trajectories(cell["method"], games, betas, [hp for *_, hp in runs], cell["shared"],
                       cell["steps"], keep, np.stack(targets), np.stack(optima))
    frames = []
    for i, (label, _, beta, hp) in enumerate(runs):
        frames.append(pd.DataFrame({
            "game": label, "beta": beta, "seed": 0, "step": keep,
            **{f"hp_{k}": v for k, v in {**hp, **cell["shared"]}.items()},
            **{k: v[i] for k, v in out.items()},
        }))
    return pd.concat(frames, ignore_index=True)


# Classification -----------------------------------------------------------------------------
#: label -> the metric that is 0 exactly at that target.
_TARGETS = {"pi*_beta": "duality_gap", "maximal lottery": "exploitability",
            "RLHF optimum": "l1_reward_optimum"}


def _turns(values: np.ndarray) -> int:
    """Number of direction changes of a sequence (ignoring exact plateaus)."""
    signs = np.sign(np.diff(values))
    signs = signs[signs != 0]
    return int(np.sum(signs[1:] != signs[:-1]))


def classify(run: pd.DataFrame, thresholds: dict) -> str:
    """The label of one trajectory (one method, game, beta), by ``config.CLASSIFY``."""
    run = run.sort_values("step")
    floor = thresholds["floor"]
    window = run[run.step >= run.step.max() * (1 - thresholds["window"])]

    ratios = {}
    for label, column in _TARGETS.items():
        start = run[column].iloc[0]
        if np.isfinite(start) and start > 0:
            ratios[label] = max(window[column].max(), 0.0) / start
    reached = {k: v for k, v in ratios.items() if v <= thresholds["reached"]}
    if reached:  # several targets can nearly coincide (small beta on Bradley-Terry games)
        return min(reached, key=reached.get)
    expl = np.log10(np.maximum(window.exploitability.to_numpy(), floor))
    if _turns(expl) >= thresholds["turns"] and np.ptp(expl) >= thresholds["amplitude"]:
        return "cycles"
    for column in ("duality_gap", "exploitability"):  # still falling toward either target
        values = np.log10(np.maximum(window[column].to_numpy(), floor))
        if values[0] - values[-1] >= thresholds["amplitude"]:
            return "slow"
    return "elsewhere"


def documented_target(method: str) -> str:
    """The kind of ``target`` the library gives ``method`` with this experiment's settings."""
    algorithm = make_algorithm(nt.ALGORITHMS, method, 0.1, "exact",
                               hyperparameters(method, 0.1, 1000, 3))
    return algorithm.target.kind


_ALIASES = {}


def aliases(label: str, spec: dict, beta: float, thresholds: dict) -> set:
    """``label`` and the other labels a policy exactly at that target would also earn.

    Targets closer than the classification's resolution (e.g. pi*_beta, the maximal lottery
    and the RLHF optimum of a Bradley-Terry game at small beta) cannot be told apart, so a
    trajectory reaching one may be labelled with another.
    """
    key = (label, json.dumps(spec, sort_keys=True), beta, thresholds["reached"])
    if key not in _ALIASES:
        _ALIASES[key] = _aliases(label, spec, beta, thresholds)
    return _ALIASES[key]


def _aliases(label, spec, beta, thresholds):
    game = make(spec)
    policies = {"pi*_beta": nt.solve_regularized_nash(game, beta).policy,
                "maximal lottery": nt.solve_nash(game).policy}
    if "reward" in spec:
        policies["RLHF optimum"] = reward_optimum(spec, game, beta)
    if label == "elsewhere":  # Nash-MD-PG(m)'s own stationary point
        fixed = nt.solve_mixture_fixed_point(game, beta, config.NASH_MD_PG_MIXTURE,
                                             on_failure="return")
        policies["elsewhere"] = fixed.policy if fixed.converged else None
    policy = policies.get(label)
    if policy is None:
        return {label}
    metrics = {"pi*_beta": lambda p: nt.duality_gap(game, p, beta),
               "maximal lottery": lambda p: nt.exploitability(game, p)}
    if "RLHF optimum" in policies:
        metrics["RLHF optimum"] = lambda p: float(np.abs(p - policies["RLHF optimum"]).sum(-1)
                                                  @ game.prompt_weights)
    return {label} | {other for other, metric in metrics.items()
                      if metric(policy) <= thresholds["reached"] * metric(game.pi_ref)}


def expected(method: str, spec: dict, beta: float, thresholds: dict) -> set:
    """Labels consistent with the method's documented target on the game ``spec``."""
    target = documented_target(method)
    has_reward = "reward" in spec
    if target == "regularized_nash":
        base = "pi*_beta"
    elif target == "stationary_point":  # Nash-MD-PG(m > 0): its own biased fixed point
        base = "elsewhere"
    elif target == "nash":
        base = "maximal lottery"
    elif target == "none":  # a Bradley-Terry game has a dominant response: MWU converges to it
        base = "maximal lottery" if has_reward else "cycles"
    elif method == "online_dpo" and has_reward:
        base = "RLHF optimum"
    else:  # reward-based methods: not pi*_beta (Calandriello et al. Thm. F.6)
        return set(LABELS) - {"pi*_beta"}
    return aliases(base, spec, beta, thresholds)


def summary(results: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """One row per (method, game, beta): the label, the expected labels, the window maxima."""
    rows = []
    specs = {k: v for group in settings["game_groups"] for k, v in group.items()}
    for (method, game, beta), run in results.groupby(["method", "game", "beta"], sort=False):
        run = run.sort_values("step")
        label = classify(run, settings["classify"])
        window = run[run.step >= run.step.max() * (1 - settings["classify"]["window"])]
        rows.append({"method": method, "game": game, "beta": beta, "label": label,
                     "matches": label in expected(method, specs[game], beta, settings["classify"]),
                     "gap_end_max": window.duality_gap.max(),
                     "exploitability_end_max": window.exploitability.max(),
                     "avg_exploitability_end": run.avg_exploitability.iloc[-1],
                     "steps": int(run.step.max())})
    return pd.DataFrame(rows)


# Checks -------------------------------------------------------------------------------------
def _labels(table, method, beta=None, games=None):
    part = table[table.method == method]
    if beta is not None:
        part = part[np.isclose(part.beta, beta)]
    if games is not None:
        part = part[part.game.isin(games)]
    return part


def _label_check(table, claim, method, wanted, beta=None, games=None, negate=False):
    part = _labels(table, method, beta, games)
    if part.empty:
        return []
    measured = "; ".join(f"{r.game} b={r.beta:g}: {r.label}" for r in part.itertuples())
    ok = part.label.isin(wanted)
    passed = bool((~ok).all() if negate else ok.all())
    theory = ("not " if negate else "") + " or ".join(sorted(wanted)) + " on every game"
    return [Check(claim, measured, theory, passed)]


def linear_rate(run: pd.DataFrame, rates: dict):
    """Fitted slope of ln(gap) against the step in the asymptotic regime (or None)."""
    start = run.duality_gap.iloc[0]
    part = run[(run.duality_gap >= rates["low"]) & (run.duality_gap <= rates["high"] * start)]
    if len(part) < 3:
        return None
    return fit_slope(part.step, np.log(part.duality_gap), log=False)


def nash_md_rate(run: pd.DataFrame, beta: float):
    """Log-log slope of KL(pi*_beta || pi_T) on T over the second half of the horizon, and
    the worst ratio of KL to Munos et al.'s bound 8 / (beta^2 (T + 1))."""
    later = run[(run.step >= run.step.max() / 2) & (run.kl_target > 1e-15)]
    bound = 8.0 / (beta**2 * (run.step + 1.0))
    worst = float((run.kl_target / bound)[run.step >= 1].max())
    slope = fit_slope(later.step, later.kl_target) if len(later) >= 3 else None
    return slope, worst


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    table = summary(results, settings)
    intransitive = sorted(set(table.game) - set(
        results.loc[results.l1_reward_optimum.notna(), "game"]))
    bt = sorted(set(table.game) - set(intransitive))
    out = []
    for method in ("egpo", "inpo", "online_ipo", "nash_md"):
        out += _label_check(table, f"{method} reaches pi*_beta in the last iterate at beta = 0.1",
                            method, {"pi*_beta"}, beta=0.1)
    out += _label_check(table, "EGPO reaches pi*_beta at beta = 0.01 (extragradient; Zhou, "
                        "Fazel & Du 2025, arXiv:2503.08942)", "egpo", {"pi*_beta"}, beta=0.01)
    out += _label_check(table, "SPPO's last iterate cycles on intransitive games (no KL anchor)",
                        "sppo", {"cycles"}, games=intransitive)
    sppo = _labels(table, "sppo", games=intransitive)
    if not sppo.empty:
        specs = {k: v for group in settings["game_groups"] for k, v in group.items()}
        bound = [math.sqrt(math.log(make(specs[r.game]).num_responses) / (2 * r.steps))
                 for r in sppo.itertuples()]
        ratio = (sppo.avg_exploitability_end / np.array(bound)).max()
        out.append(Check("SPPO's average iterate converges: exploitability(avg) = regret / T <= "
                         "sqrt(ln Y / (2T)) (Hedge bound, step sqrt(8 ln Y / T))",
                         f"max exploitability(avg) / bound = {ratio:.3f}", "<= 1",
                         bool(ratio <= 1)))
    for method in ("mpo", "comal"):
        out += _label_check(table, f"{method} reaches the maximal lottery at beta = 0.1 (anchor "
                            "moved)", method, {"maximal lottery"}, beta=0.1)
    dpo = _labels(table, "online_dpo", games=bt)
    if not dpo.empty:
        out.append(Check("online DPO reaches the RLHF optimum on Bradley-Terry games (or a "
                         "target that coincides with it at this beta)",
                         "; ".join(f"{r.game} b={r.beta:g}: {r.label}" for r in dpo.itertuples()),
                         "RLHF optimum", bool(dpo.matches.all())))
    out += _label_check(table, "online DPO does not reach pi*_beta on intransitive games "
                        "(Calandriello et al. Thm. F.6)", "online_dpo", {"pi*_beta"},
                        games=intransitive, negate=True)
    out += rate_checks(results, settings)
    first = table[np.isclose(table.beta, settings["rates"]["linear_beta"])]
    misses = "; ".join(f"{r.method} on {r.game}: {r.label}"
                       for r in first.itertuples() if not r.matches)
    out.append(Check(f"at beta = {settings['rates']['linear_beta']:g} every method lands where "
                     "its documented target says (docs/algorithms.md)",
                     f"{int(first.matches.sum())} of {len(first)} match"
                     + (f" (misses: {misses})" if misses else ""), "all",
                     bool(first.matches.all())))
    return out


def rate_checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    rates = settings["rates"]
    out = []
    beta = rates["linear_beta"]
    low, high = rates["ratio_band"]
    for method in rates["linear_methods"]:
        part = results[(results.method == method) & np.isclose(results.beta, beta)]
        for game, run in part.groupby("game", sort=False):
            run = run.sort_values("step")
            fitted = linear_rate(run, rates)
            hp = {k[3:]: v for k, v in run.iloc[0].items()
                  if k.startswith("hp_") and pd.notna(v)}
            spec = next(g[game] for g in settings["game_groups"] if game in g)
            rho = contraction(method, make(spec), beta, hp)
            predicted = 2 * math.log(rho)
            ratio = fitted.slope / predicted if fitted is not None else float("nan")
            out.append(Check(
                f"{method} on {game}: linear last-iterate rate at beta = {beta:g}, ln gap slope "
                f"= 2 ln rho (rho: spectral radius of the update at pi*_beta)",
                f"slope {fitted} per step, 2 ln rho = {predicted:.4f}, ratio {ratio:.3f}",
                f"ratio in [{low}, {high}]", bool(low <= ratio <= high)))
    beta = rates["nash_md_beta"]
    part = results[(results.method == "nash_md") & np.isclose(results.beta, beta)]
    for game, run in part.groupby("game", sort=False):
        slope, worst = nash_md_rate(run.sort_values("step"), beta)
        ok = slope is not None and slope.slope <= rates["nash_md_slope_max"] and worst <= 1
        out.append(Check(
            f"nash_md on {game} (beta = {beta:g}): KL(pi*_beta || pi_T) <= 8 / (beta^2 (T + 1)) "
            "and falls at least as 1/T (Munos et al. Thm. 1)",
            f"log-log slope {slope}, max KL / bound {worst:.2e}",
            f"slope <= {rates['nash_md_slope_max']}, ratio <= 1", bool(ok)))
    return out
