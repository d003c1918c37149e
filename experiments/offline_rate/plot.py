"""Figure of the offline-rate experiment: rate in n, coverage, Thm. 1's bound, coverage cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from nlhf_theory.reproduce import band, subplots

from . import run

COLORS = {"pessimistic_nlhf": "C0", "pessimistic_entrywise": "C4", "greedy_mle_nash": "C1",
          "rlhf_bt": "C2", "dpo": "C3"}
LABELS = {"pessimistic_nlhf": "pessimistic (joint, Alg. 1)",
          "pessimistic_entrywise": "pessimistic (former entrywise)",
          "greedy_mle_nash": "greedy MLE-NE", "rlhf_bt": "RLHF (BT reward)", "dpo": "DPO"}


def _clipped(frame):
    return frame.assign(suboptimality=frame.suboptimality.clip(lower=1e-16))


def _log_axes(ax):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _against_n(ax, rows, bt, biases):
    good = rows[rows.mixing == 0.0]
    for method in run.EQUILIBRIUM:
        band(ax, _clipped(good[good.method == method]), "n", "suboptimality", log=True,
             color=COLORS[method], marker="o", markersize=3, label=LABELS[method])
    for method in run.BT_METHODS:
        frame = _clipped(bt[(bt.method == method) & (bt.mixing == 0.0)])
        if len(frame):
            ax.plot(frame.n.unique(), [run.geometric_mean(frame.suboptimality)] *
                    frame.n.nunique(), "s", color=COLORS[method], markersize=4,
                    label=LABELS[method])
    b = biases[(biases.method == "rlhf_bt") & (biases.mixing == 0.0)].bias
    if len(b):
        ax.axhline(float(b.iloc[0]), color=COLORS["rlhf_bt"], linestyle="-.", linewidth=0.8,
                   label="b: RLHF optimum (population)")
    n = np.sort(good.n.unique())
    anchor = run.geometric_mean(good[(good.method == "greedy_mle_nash")
                                     & (good.n == n[0])].suboptimality)
    for slope, style in ((-0.5, ":"), (-1.0, "--")):
        ax.plot(n, anchor * (n / n[0]) ** slope, color="0.4", linestyle=style, linewidth=0.8,
                label=f"slope {slope:g}")
    _log_axes(ax)
    ax.set_xlabel("comparisons n (uniform data)")
    ax.set_ylabel(r"suboptimality $J(\pi^*,\pi^*) - J(\hat\pi, \dagger)$")


def _against_coverage(ax, rows):
    large = rows[rows.n == rows.n.max()]
    for k, method in enumerate(run.EQUILIBRIUM):
        frame = large[large.method == method]
        jitter = 1.0 + 0.04 * (k - 1)                     # side by side per behaviour
        ax.scatter(frame.coverage_population * jitter, frame.suboptimality.clip(lower=1e-16),
                   s=5, color=COLORS[method], alpha=0.6)
        means = frame.groupby("coverage_population").suboptimality.apply(run.geometric_mean)
        ax.plot(means.index * jitter, means.values, color=COLORS[method], marker="o",
                markersize=3)
    _log_axes(ax)
    ax.set_xlabel(rf"coverage $C$ of the behaviour for $\pi^*_\beta$ (n={int(rows.n.max())})")
    ax.set_ylabel("suboptimality")


def _theorem(ax, results):
    rows = pd.concat([run.final(results), run.final(results, "case")])
    rows = rows[(rows.method == "pessimistic_nlhf") & rows.bound.notna()
                & np.isfinite(rows.coverage)]
    for n, marker in zip(sorted(rows.n.unique()), "ov^sD"):
        part = rows[rows.n == n]
        ax.scatter(part.bound, part.suboptimality.clip(lower=1e-16), s=6, marker=marker,
                   label=f"n={int(n)}", alpha=0.7)
    lim = [rows.suboptimality.clip(lower=1e-16).min() / 2, rows.bound.max() * 2]
    ax.plot(lim, lim, color="0.3", linewidth=0.8, label="bound = suboptimality")
    _log_axes(ax)
    ax.set_xlabel(r"Thm. 1's bound $4 b \sqrt{C / n}$ (tabular datasets)")
    ax.set_ylabel("suboptimality (pessimistic)")
    ax.set_title("Thm. 1's bound (points: datasets)")
    ax.legend(fontsize=6)


def _cases(ax, results):
    rows = run.final(results, "case")
    labels, x = [], 0
    for (label, beta, case, n), frame in rows.groupby(["game", "beta", "case", "n"],
                                                      sort=False):
        for k, method in enumerate(run.EQUILIBRIUM):
            vals = frame[frame.method == method].suboptimality.clip(lower=1e-16)
            ax.bar(x + 0.27 * (k - 1), run.geometric_mean(vals), width=0.25,
                   color=COLORS[method], label=LABELS[method] if x == 0 else None)
        labels.append(f"{case}\n{label.split(' (')[0]}\nn={int(n)}")
        x += 1
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, fontsize=6)
    ax.set_ylabel("suboptimality (geometric mean)")
    ax.set_title("coverage cases")
    ax.legend(fontsize=6)


def plot(results, settings):
    rows, bt, biases = run.final(results), run.final(results, "bt"), run.bias(results)
    runs = settings["runs"]
    fig, axes = subplots(len(runs) + 1, 2, width=3.8, height=3.0)
    for k, (label, beta, _) in enumerate(runs):
        part = rows[(rows.game == label) & (rows.beta == beta)]
        head = rf"{label}, $\beta$={beta:g}"
        _against_n(axes[k, 0], part, bt[(bt.game == label) & (bt.beta == beta)],
                   biases[(biases.game == label) & (biases.beta == beta)])
        axes[k, 0].set_title(f"{head}\nrate in n")
        _against_coverage(axes[k, 1], part)
        axes[k, 1].set_title(f"{head}\nagainst coverage (points: seeds)")
    _theorem(axes[-1, 0], results)
    _cases(axes[-1, 1], results)
    fig.tight_layout()
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", ncol=4,
               fontsize=7, bbox_to_anchor=(0.5, 0.0))
    return fig
