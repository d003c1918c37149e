"""Figure of the offline-rate experiment: suboptimality against n and against coverage."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import NullFormatter

from nlhf_theory.reproduce import band, subplots

from . import run

COLORS = {"pessimistic_nlhf": "C0", "greedy_mle_nash": "C1", "rlhf_bt": "C2", "dpo": "C3"}
LABELS = {"pessimistic_nlhf": "pessimistic", "greedy_mle_nash": "greedy MLE-NE",
          "rlhf_bt": "RLHF (BT reward)", "dpo": "DPO"}


def _clipped(frame):
    return frame.assign(suboptimality=frame.suboptimality.clip(lower=1e-16))


def _reference_slopes(ax, n, anchor):
    for slope, style in ((-0.5, ":"), (-1.0, "--")):
        ax.plot(n, anchor * (n / n[0]) ** slope, color="0.4", linestyle=style, linewidth=0.8,
                label=f"slope {slope:g}")


def _against_n(ax, rows, biases, t_good, t_poor):
    good = rows[rows.mixing == t_good]
    for method in run.METHODS:
        frame = _clipped(good[good.method == method])
        band(ax, frame, "n", "suboptimality", log=True, color=COLORS[method], marker="o",
             markersize=3, label=f"{LABELS[method]} (uniform)")
    for method in run.EQUILIBRIUM:
        frame = _clipped(rows[(rows.mixing == t_poor) & (rows.method == method)])
        band(ax, frame, "n", "suboptimality", log=True, color=COLORS[method], linestyle="--",
             marker="s", markersize=3, label=f"{LABELS[method]} (t={t_poor:g})")
    b = biases[(biases.method == "rlhf_bt") & (biases.mixing == t_good)].bias
    if len(b):
        ax.axhline(float(b.iloc[0]), color=COLORS["rlhf_bt"], linestyle="-.", linewidth=0.8,
                   label="b: RLHF optimum (population)")
    n = np.sort(good.n.unique())
    greedy = good[(good.method == "greedy_mle_nash") & (good.n == n[0])].suboptimality
    _reference_slopes(ax, n, run.geometric_mean(greedy))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("comparisons n")
    ax.set_ylabel(r"suboptimality $J(\pi^*,\pi^*) - J(\hat\pi, \dagger)$")


def _against_coverage(ax, rows, n_values):
    for method in run.EQUILIBRIUM:
        for n, style in zip(n_values, ("-", "--")):
            frame = _clipped(rows[(rows.method == method) & (rows.n == n)])
            band(ax, frame, "coverage", "suboptimality", log=True, color=COLORS[method],
                 linestyle=style, marker="o", markersize=3, label=f"{LABELS[method]}, n={n}")
    c = np.sort(rows.coverage.unique())
    first = rows[(rows.method == "greedy_mle_nash") & (rows.n == n_values[-1])
                 & (rows.coverage == c[0])].suboptimality
    ax.plot(c, run.geometric_mean(first) * np.sqrt(c / c[0]), color="0.4", linestyle=":",
            linewidth=0.8, label=r"$\propto\sqrt{C}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"coverage coefficient $C$ of the behaviour policy for $\pi^*_\beta$")
    ax.set_ylabel("suboptimality")


def plot(results, settings):
    rows, biases = run.final(results), run.bias(results)
    t_good, t_poor = min(settings["mixing"]), max(settings["mixing"])
    n_values = (min(settings["num_pairs"]), max(settings["num_pairs"]))
    runs = settings["runs"]
    ncols = 2 * min(len(runs), 2)
    fig, axes = subplots(-(-2 * len(runs) // ncols), ncols, width=3.6, height=3.0)
    for k, (label, beta) in enumerate(runs):
        part = rows[(rows.game == label) & (rows.beta == beta)]
        bias = biases[(biases.game == label) & (biases.beta == beta)]
        ax_n, ax_c = axes.flat[2 * k], axes.flat[2 * k + 1]
        _against_n(ax_n, part, bias, t_good, t_poor)
        head = rf"{label}, $\beta$={beta:g}"
        ax_n.set_title(f"{head}\nrate in n (solid: uniform, dashed: t={t_poor:g})")
        _against_coverage(ax_c, part, n_values)
        ax_c.set_title(f"{head}\nagainst coverage (solid: n={n_values[0]})")
    for ax in axes.flat[2 * len(runs):]:
        ax.set_visible(False)
    fig.tight_layout()
    for ax, anchor in ((axes[0, 0], 0.3), (axes[0, 1], 0.75)):
        fig.legend(*ax.get_legend_handles_labels(), loc="upper center", ncol=3, fontsize=7,
                   bbox_to_anchor=(anchor, 0.0))
    return fig
