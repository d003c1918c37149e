"""Reward over-optimization: gold versus proxy along best-of-n and KL-regularized paths.

Claim checked (Gao, Schulman & Hilton 2022, arXiv:2210.10760; Chaudhari et al. 2024,
arXiv:2404.08555, Sec. 7.6.3): optimizing a proxy reward fitted on finite comparisons raises
the proxy monotonically while the gold reward rises and falls against d = sqrt(KL(pi || pi_ref)),
with Gao's functional forms, and a later peak for more data. Best-of-n obeys Beirami et al.'s
bounds (arXiv:2401.01879).

One cell: every data size N (nested datasets of one sample per seed) and seed, each proxy
optimized along both paths. The proxies are fitted in one jit-compiled call vmapped over
(N, seed); the paths are exact closed forms (float64 NumPy).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
from scipy import optimize

import nlhf_theory as nt
from nlhf_theory.algorithms import float64_mode
from nlhf_theory.reproduce import Check

#: Gao et al.'s functional forms of the gold reward gain against d = sqrt(KL) (their eq. 1-2).
FORMS = {
    "best_of_n": lambda d, a, b: d * (a - b * d),
    "kl_regularized": lambda d, a, b: d * (a - b * np.log(np.maximum(d, 1e-300))),
}
PATHS = tuple(FORMS)


def cells(settings: dict) -> list[dict]:
    return [{key: settings[key] for key in (
        "num_responses", "dim", "theta_norm", "curvature", "zipf", "game_seed", "ridge",
        "newton_steps",
        "num_pairs", "seeds", "log10_n", "log10_beta")}]


def gold_game(cell: dict):
    """The gold BT game, the features and the gold reward of a cell.

    ``phi(y) ~ N(0, I)``, ``r*(y) = theta* . phi(y) - curvature |phi(y)|^2 / 2`` with
    ``theta* = theta_norm e_1``, ``pi_ref(y) ~ 1 / y^zipf``.
    """
    Y = cell["num_responses"]
    phi = np.random.default_rng(cell["game_seed"]).standard_normal((Y, cell["dim"]))
    reward = cell["theta_norm"] * phi[:, 0] - 0.5 * cell["curvature"] * np.sum(phi**2, -1)
    return nt.bradley_terry(reward, nt.zipf_policy(np.arange(Y), cell["zipf"])), phi, reward


def fit_proxies(game, phi, num_pairs, seeds: int, ridge: float, steps: int) -> np.ndarray:
    """(len(num_pairs), seeds, Y) BT MAP proxies ``theta_hat . phi`` on nested datasets."""
    phi = phi[None]

    def one_seed(key):
        wins, counts = nt.comparison_counts(game, key, list(num_pairs))
        fit = jax.vmap(lambda w, c: nt.fit_bt_reward(w, c, phi, ridge, steps))(wins, counts)
        return fit.reward[:, 0]

    with float64_mode():  # float64 fits: identical whatever the batch of (N, seed)
        keys = jax.random.split(jax.random.PRNGKey(0), seeds)
        proxies = jax.jit(jax.vmap(one_seed))(keys)  # (seeds, len(N), Y)
    return np.swapaxes(np.asarray(proxies, dtype=np.float64), 0, 1)


def path_policies(proxy: np.ndarray, pi_ref: np.ndarray, ns, betas) -> dict:
    """Policies (K, R, Y) along each path for proxies (R, Y)."""
    ref = np.broadcast_to(pi_ref, proxy.shape)
    return {
        "best_of_n": nt.best_of_n_policy(proxy, ref, np.asarray(ns)),
        "kl_regularized": np.stack([nt.reward_optimal_policy(proxy, ref, b) for b in betas]),
    }


def replicated(game, rows: int):
    """The game with its prompt copied ``rows`` times (one copy per proxy)."""
    return nt.PreferenceGame(np.broadcast_to(game.P, (rows,) + game.P.shape[1:]),
                             np.broadcast_to(game.pi_ref, (rows, game.num_responses)))


def path_metrics(gold, proxy_game, order_game, gold_reward, proxy, policies) -> dict:
    """Per path point and proxy: KL, gold/proxy reward gains and win rates against pi_ref."""
    ref = gold.pi_ref
    base_gold = ref @ gold_reward
    base_proxy = np.sum(ref * proxy, -1)
    out = {k: [] for k in ("kl", "gold_gain", "proxy_gain", "gold_win", "proxy_win",
                           "order_win")}
    for pi in policies:
        out["kl"].append(nt.kl_to_ref(gold, pi, per_prompt=True))
        out["gold_gain"].append(pi @ gold_reward - base_gold)
        out["proxy_gain"].append(np.sum(pi * proxy, -1) - base_proxy)
        out["gold_win"].append(nt.win_rate(gold, pi, ref, per_prompt=True))
        out["proxy_win"].append(nt.win_rate(proxy_game, pi, ref, per_prompt=True))
        out["order_win"].append(nt.win_rate(order_game, pi, ref, per_prompt=True))
    return {k: np.clip(np.stack(v), 0.0, None) if k == "kl" else np.stack(v)
            for k, v in out.items()}


def run_cell(cell: dict) -> pd.DataFrame:
    game, phi, gold_reward = gold_game(cell)
    sizes, seeds = cell["num_pairs"], cell["seeds"]
    proxies = fit_proxies(game, phi, sizes, seeds, cell["ridge"], cell["newton_steps"])
    proxy = proxies.reshape(-1, game.num_responses)  # rows (N, seed)
    ns = np.unique(np.round(np.logspace(*cell["log10_n"])).astype(int))
    betas = np.logspace(*cell["log10_beta"])
    gold = replicated(game, proxy.shape[0])
    proxy_game = nt.bradley_terry(proxy, gold.pi_ref)
    order = (proxy[:, :, None] > proxy[:, None, :]) + 0.5 * (proxy[:, :, None] == proxy[:, None, :])
    order_game = nt.PreferenceGame(order.astype(np.float64), gold.pi_ref)
    frames = []
    for path, policies in path_policies(proxy, game.pi_ref[0], ns, betas).items():
        metrics = path_metrics(gold, proxy_game, order_game, gold_reward, proxy, policies)
        knob = ns if path == "best_of_n" else betas
        K, R = metrics["kl"].shape
        frame = pd.DataFrame({k: v.reshape(-1) for k, v in metrics.items()})
        frame.insert(0, "path", path)
        frame.insert(1, "num_pairs", np.tile(np.repeat(sizes, seeds), K))
        frame.insert(2, "seed", np.tile(np.arange(seeds), K * len(sizes)))
        frame.insert(3, "step", np.repeat(np.arange(K), R))
        frame.insert(4, "knob", np.repeat(knob.astype(np.float64), R))
        frame["d"] = np.sqrt(frame.kl)
        if path == "best_of_n":
            frame["kl_bound"] = nt.best_of_n_kl_bound(frame.knob)
            frame["win_bound"] = frame.knob / (frame.knob + 1.0)
        frames.append(frame)
    return pd.DataFrame(pd.concat(frames, ignore_index=True))


# Analysis -----------------------------------------------------------------------------------
def mean_curve(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean of d, gold and proxy gains at each path point (one path, one N)."""
    return frame.groupby("step", sort=True)[["d", "gold_gain", "proxy_gain", "gold_win",
                                             "proxy_win"]].mean().reset_index()


def fit_form(path: str, curve: pd.DataFrame):
    """Least-squares fit of Gao's form for ``path`` to a mean curve: ``(alpha, beta, R^2)``."""
    form = FORMS[path]
    d, gain = curve.d.to_numpy(), curve.gold_gain.to_numpy()
    result = optimize.least_squares(lambda p: form(d, *p) - gain, x0=[1.0, 0.1])
    residual = np.sum(result.fun**2)
    total = np.sum((gain - gain.mean()) ** 2)
    return float(result.x[0]), float(result.x[1]), float(1.0 - residual / total)


def peak_distance(frame: pd.DataFrame) -> pd.Series:
    """Per seed: ``d*`` (the d of the highest gold gain) and the seed's largest d."""
    def per_seed(part):
        part = part.sort_values("step")
        return pd.Series({"d_star": part.d.iloc[int(np.argmax(part.gold_gain))],
                          "d_max": part.d.max()})
    return frame.groupby("seed").apply(per_seed, include_groups=False)


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    out = []
    ordered = results.sort_values(["path", "num_pairs", "seed", "step"])
    grouped = ordered.groupby(["path", "num_pairs", "seed"], sort=False)
    worst = grouped.proxy_gain.apply(lambda s: np.min(np.diff(s.to_numpy()))).min()
    out.append(Check("the proxy reward increases monotonically along both paths (best-of-n in "
                     "n, KL-regularized as beta decreases; stochastic dominance / "
                     "d E r_hat / d(1/beta) = beta Var(r_hat) >= 0)",
                     f"smallest step {worst:.2e}", ">= -1e-9", worst >= -1e-9))
    bon = results[results.path == "best_of_n"]
    kl_excess = (bon.kl - bon.kl_bound).max()
    win_excess = (bon.order_win - bon.win_bound).max()
    out.append(Check("best-of-n: KL(pi_n || pi_ref) <= log n - (n-1)/n (Beirami et al. 2024, "
                     "Thm. 1), every n, N, seed",
                     f"max KL - bound {kl_excess:.2e}", "<= 1e-12", kl_excess <= 1e-12))
    out.append(Check("best-of-n: win rate against pi_ref under the proxy's ordering <= n/(n+1) "
                     "(ties 1/2; Beirami et al. 2024)",
                     f"max win - bound {win_excess:.2e}", "<= 1e-12", win_excess <= 1e-12))
    for path in PATHS:
        part = results[results.path == path]
        stars = []
        for size, frame in part.groupby("num_pairs", sort=True):
            curve = mean_curve(frame)
            top = int(np.argmax(curve.gold_gain))
            peaks = peak_distance(frame)
            stars.append(float(peaks.d_star.mean()))
            out.append(Check(
                f"{path}, N = {size}: the gold reward rises then falls (interior peak of the "
                f"seed-mean curve, 0 < d* < max d; Gao et al. 2022, Fig. 1)",
                f"peak gain {curve.gold_gain.iloc[top]:.3f} at d = {curve.d.iloc[top]:.2f}, "
                f"end {curve.gold_gain.iloc[-1]:.3f} at d = {curve.d.iloc[-1]:.2f}",
                "0 < argmax < last point", 0 < top < len(curve) - 1))
            alpha, beta, r2 = fit_form(path, curve)
            form = "d (alpha - beta d)" if path == "best_of_n" else "d (alpha - beta log d)"
            out.append(Check(
                f"{path}, N = {size}: Gao et al.'s form R(d) = {form} explains the seed-mean "
                f"gold gain (least squares)",
                f"alpha {alpha:.3f}, beta {beta:.3f}, R^2 {r2:.3f}",
                f"R^2 >= {settings['r2_min']}", r2 >= settings["r2_min"]))
        increasing = bool(np.all(np.diff(stars) > 0))
        sizes = sorted(part.num_pairs.unique())
        out.append(Check(
            f"{path}: the peak d* (seed mean) moves right as N grows (Gao et al. 2022, Sec. 3.2)",
            ", ".join(f"N={n}: {s:.2f}" for n, s in zip(sizes, stars)),
            "strictly increasing in N", increasing))
    return out
