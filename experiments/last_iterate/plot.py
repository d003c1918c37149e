"""Figure of the last-iterate experiment: duality gaps (games x betas) and the classification."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from nlhf_theory.reproduce import subplots

from . import run

#: Clip for log axes: duality gaps reach ~ -1e-17 at convergence.
FLOOR = 1e-16
_COLORS = ("#1b9e77", "#7570b3", "#e6ab02", "#d95f02", "#a6cee3", "#bdbdbd")
_SHORT = {"pi*_beta": "pi*b", "maximal lottery": "ML", "RLHF optimum": "RLHF",
          "cycles": "cyc", "slow": "slow", "elsewhere": "else"}


def _gap_panels(axes, results, games, betas, methods):
    for i, game in enumerate(games):
        for j, beta in enumerate(betas):
            ax = axes[i, j]
            part = results[(results.game == game) & np.isclose(results.beta, beta)]
            for k, method in enumerate(methods):
                curve = part[part.method == method].sort_values("step")
                ax.semilogy(curve.step, np.maximum(curve.duality_gap, FLOOR), color=f"C{k}",
                            linewidth=1.0, label=method)
            ax.set_ylim(FLOOR / 2, 2.0)
            ax.set_title(f"{game.replace('_', ' ')}\n$\\beta$ = {beta:g}", fontsize=8)
            ax.set_xlabel("iteration t")
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
            if j == 0:
                ax.set_ylabel("duality gap of pi_t (clipped 1e-16)")


def _heatmap(ax, table, methods):
    columns = list(dict.fromkeys(zip(table.game, table.beta)))
    codes = np.full((len(methods), len(columns)), np.nan)
    for r in table.itertuples():
        i, j = methods.index(r.method), columns.index((r.game, r.beta))
        codes[i, j] = run.LABELS.index(r.label)
        ax.text(j, i, _SHORT[r.label] + ("" if r.matches else " x"), ha="center", va="center",
                fontsize=7, fontweight="normal" if r.matches else "bold")
    ax.imshow(codes, cmap=ListedColormap(_COLORS), vmin=-0.5, vmax=len(run.LABELS) - 0.5,
              aspect="auto")
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xticks(range(len(columns)), [f"{g}\nbeta={b:g}" for g, b in columns], fontsize=6,
                  rotation=30, ha="right")
    ax.grid(False)
    ax.set_title("Last-iterate classification (x: differs from the documented target)")
    ax.legend(handles=[Patch(color=c, label=f"{_SHORT[name]}: {name}")
                       for c, name in zip(_COLORS, run.LABELS)],
              loc="upper left", bbox_to_anchor=(1.01, 1.0))


def plot(results, settings):
    games = list(dict.fromkeys(results.game))
    betas = sorted(set(results.beta), reverse=True)
    methods = list(settings["methods"])
    fig, axes = subplots(len(games) + 2, len(betas), width=3.6, height=2.6)
    _gap_panels(axes, results, games, betas, methods)
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method")
    grid = axes[0, 0].get_gridspec()
    for ax in axes[-2:, :].flat:
        ax.remove()
    _heatmap(fig.add_subplot(grid[-2:, :]), run.summary(results, settings), methods)
    fig.suptitle("Last-iterate convergence: duality gap against iteration (exact updates)")
    fig.tight_layout()
    return fig
