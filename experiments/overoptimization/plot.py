"""Figure of the reward-overoptimization experiment."""

from __future__ import annotations

import numpy as np

from nlhf_theory.reproduce import band, subplots

from . import run

LABELS = {"best_of_n": "best-of-n", "kl_regularized": r"KL-regularized $\pi_\beta$"}


def with_mean_d(frame):
    """``frame`` with ``d_mean``, the seed-mean d of each path point (the curve's abscissa)."""
    return frame.assign(d_mean=frame.groupby("step").d.transform("mean"))


def plot(results, settings):
    fig, axes = subplots(2, 2, width=4.6, height=3.4)
    sizes = sorted(results.num_pairs.unique())
    colors = dict(zip(sizes, ["C0", "C1", "C2", "C3", "C4", "C5", "C6"]))
    for ax, path in zip(axes[0], run.PATHS):
        part = results[results.path == path]
        for size, frame in part.groupby("num_pairs", sort=True):
            frame = with_mean_d(frame)
            alpha, beta, r2 = run.fit_form(path, run.mean_curve(frame))
            band(ax, frame, "d_mean", "gold_gain", color=colors[size],
                 label=rf"N={size}, fit $R^2$ {r2:.2f}")
            grid = np.linspace(1e-3, frame.d_mean.max(), 200)
            ax.plot(grid, run.FORMS[path](grid, alpha, beta), ":", color=colors[size])
        ax.axhline(0.0, color="gray", lw=0.6)
        ax.set_xlabel(r"$d = \sqrt{KL(\pi \| \pi_{ref})}$")
        ax.set_ylabel(r"gold reward gain $E_\pi r^* - E_{\pi_{ref}} r^*$")
        ax.set_title(f"{LABELS[path]}: gold reward (dotted: Gao et al.'s fit)")
        ax.legend(loc="lower left", fontsize=6)
    ax = axes[1, 0]
    for path, style in zip(run.PATHS, ("-", "--")):
        part = results[results.path == path]
        for size, frame in part.groupby("num_pairs", sort=True):
            band(ax, with_mean_d(frame), "d_mean", "proxy_gain", color=colors[size],
                 linestyle=style, label=f"N={size}" if style == "-" else None)
    ax.set_xlabel(r"$d = \sqrt{KL(\pi \| \pi_{ref})}$")
    ax.set_ylabel(r"proxy reward gain $E_\pi \hat r - E_{\pi_{ref}} \hat r$")
    ax.set_title("Proxy reward (solid: best-of-n, dashed: KL-regularized)")
    ax.legend(loc="upper left")
    ax = axes[1, 1]
    middle = sizes[len(sizes) // 2]
    for path, style in zip(run.PATHS, ("-", "--")):
        frame = with_mean_d(results[(results.path == path) & (results.num_pairs == middle)])
        band(ax, frame, "d_mean", "gold_win", color="C3", linestyle=style,
             label=f"gold, {LABELS[path]}")
        band(ax, frame, "d_mean", "proxy_win", color="C7", linestyle=style,
             label=f"proxy, {LABELS[path]}")
    ax.set_xlabel(r"$d = \sqrt{KL(\pi \| \pi_{ref})}$")
    ax.set_ylabel(r"win rate against $\pi_{ref}$")
    ax.set_title(f"Win rates (BT preferences), N={middle}")
    ax.legend()
    fig.tight_layout()
    return fig
