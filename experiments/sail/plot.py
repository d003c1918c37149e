"""Figure of the SAIL experiment: win rates, margin and KL against samples and compute,
the per-update overhead, and the exact against the implemented gradient."""

from __future__ import annotations

import numpy as np

from nlhf_theory.reproduce import band, seed_band, subplots

from . import run

LABELS = {
    "win_rate_ref": r"win rate vs $\pi_{\rm ref}$",
    "win_rate_chosen": r"win rate vs chosen $y_w^D$ (held-out)",
    "kl_ref": r"KL$(\pi \,\|\, \pi_{\rm ref})$ (nats)",
    "reward_margin": r"reward margin $\beta h(y_w, y_l)$ (held-out)",
}
SAMPLES = "preference labels consumed (offline + oracle)"
COMPUTE = "compute (forward-pass units, counted)"


def methods(settings):
    return [*run.BASELINES, *settings["variants"]]


def curves(ax, frame, x, y, settings, colors):
    """One band per method; a method whose ``x`` never moves (no new labels) is drawn as its
    final mean (dashed line) with a marker at its ``x``."""
    for method in methods(settings):
        part = frame[(frame.method == method) & (frame[x] > 0)]
        if part[x].nunique() > 1:
            band(ax, part, x, y, label=method, color=colors[method])
            continue
        final = seed_band(part[part.step == part.step.max()], x, y)
        ax.axhline(final["mean"].iloc[0], color=colors[method], linestyle="--", linewidth=1)
        ax.errorbar(final[x], final["mean"], yerr=[final["mean"] - final["low"],
                                                    final["high"] - final["mean"]],
                    color=colors[method], marker="o", markersize=3, capsize=2,
                    label=f"{method} (final; no new labels)")
    ax.set_xscale("log")


def plot(results, settings):
    games = list(settings["games"])
    fig, axes = subplots(len(games) + 1, 4, width=3.3, height=2.6)
    colors = {m: f"C{i}" for i, m in enumerate(methods(settings))}
    trajectories = results[results.kind == "trajectory"]
    for row, game in enumerate(games):
        frame = trajectories[trajectories.game == game]
        for col, y in enumerate(LABELS):
            ax = axes[row, col]
            curves(ax, frame, "labels", y, settings, colors)
            ax.set_xlabel(SAMPLES)
            ax.set_ylabel(LABELS[y])
            ax.set_title(f"{game}", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=6,
               fontsize=7, title="offline data: pi_ref pairs; dashed = final value of methods "
               "that consume no new labels (band: 95% over seeds)", title_fontsize=7)
    bottom = axes[len(games)]
    first = trajectories[trajectories.game == games[0]]
    for ax, y in zip(bottom[:2], ("win_rate_ref", "kl_ref")):
        for method in methods(settings):
            band(ax, first[(first.method == method) & (first.compute > 0)], "compute", y,
                 label=method, color=colors[method])
        ax.set_xscale("log")
        ax.set_xlabel(COMPUTE)
        ax.set_ylabel(LABELS[y])
        ax.set_title(f"{games[0]}: against compute", fontsize=8)
    overhead(bottom[2], results[results.kind == "cost"], colors)
    exact_vs_implemented(bottom[3], results, games)
    fig.tight_layout()
    return fig


def overhead(ax, cost, colors):
    x = np.arange(len(cost))
    ax.bar(x - 0.2, cost.overhead_per_update, width=0.4,
           color=[colors[m] for m in cost.method], label="per update (counted)")
    ax.bar(x + 0.2, cost.overhead_per_run.fillna(0.0), width=0.4, color="none",
           edgecolor=[colors[m] for m in cost.method], hatch="//",
           label="per run (code's 1/(1-r-p-g) epochs; n/a for online DPO)")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, cost.method, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("cost relative to offline DPO")
    ax.set_title("Overhead vs DPO (forward/backward passes, generations)", fontsize=8)
    ax.set_ylim(0, 1.25 * np.nanmax(cost.overhead_per_run))
    ax.legend(fontsize=6, loc="upper left")


def exact_vs_implemented(ax, results, games):
    """TV distance between the exact and the implemented trajectories; the legend gives the
    final win rates vs pi_ref of both."""
    rows = results[(results.kind == "comparison") & results.method.str.endswith(
        "exact vs implemented")]
    final = results[results.kind == "exact"]
    final = final[final.step == final.step.max()].set_index(["game", "method", "variant"])
    for (game, name), part in rows.groupby(["game", "method"], sort=False):
        method = name.removesuffix(" exact vs implemented")
        wins = [final.win_rate_ref[game, method, v] for v in ("exact", "implemented")]
        ax.plot(part.step, part.tv, "-" if game == games[0] else ":",
                label=f"{method}, {game.split()[0]}: win {wins[0]:.2f} vs {wins[1]:.2f}")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("update (exact mode)")
    ax.set_ylabel(r"$E_x$ TV(exact, implemented)")
    ax.set_title("Exact gradient vs authors' hook (c l / log pi)", fontsize=8)
    ax.legend(fontsize=5, title="final win rate vs pi_ref: exact vs implemented",
              title_fontsize=5)
