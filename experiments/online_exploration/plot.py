"""Figure of the online-exploration experiment."""

from __future__ import annotations

import numpy as np

from nlhf_theory.reproduce import band, subplots

from . import run

LABELS = {"uncertainty": "uncertainty enhancer (Alg. 2)", "self_play": "self-play",
          "uniform": "uniform", "reference": r"$\pi_{\mathrm{ref}}$"}


def reference_line(ax, x, anchor_x, anchor_y, slope, label):
    """A dotted power law ``anchor_y (x / anchor_x)^slope``."""
    x = np.asarray(x, dtype=float)
    ax.plot(x, anchor_y * (x / anchor_x) ** slope, "k:", linewidth=1, label=label)


def plot(results, settings):
    fig, axes = subplots(1, 2, width=4.0, height=3.4, gridspec_kw={"wspace": 0.35})
    d, fit_from = settings["main_dim"], settings["fit_from"]
    ax = axes[0, 0]
    for enhancer in settings["enhancers"]:
        part = run.curve(results, enhancer, d)
        fitted = run.sample_slope(results, enhancer, d, fit_from)
        summary = band(ax, part, "samples", "suboptimality", log=True, marker="o",
                       markersize=2, label=f"{LABELS[enhancer]} (slope {fitted.slope:.2f})")
        if enhancer == "uncertainty":
            start = summary[summary.samples >= fit_from * summary.samples.max()].iloc[0]
            line_x = summary.samples[summary.samples >= start.samples]
    reference_line(ax, line_x, start.samples, start["mean"], -0.5, r"$n^{-1/2}$ (Thm. 2)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [t for t in (50, 100, 200, 500, 1000, 2000, 5000)
             if results.samples[results.samples > 0].min() <= t <= results.samples.max()]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("comparisons n (rounds x batch size)")
    ax.set_ylabel("main agent's suboptimality (gap / 2)\n(geometric mean over seeds, 95% band)")
    ax.set_title(f"(a) vs samples, d = {d}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)

    ax = axes[0, 1]
    budget = settings["rounds"] * settings["batch_size"]
    for enhancer in settings["dim_enhancers"]:
        part = results[(results.enhancer == enhancer) & results.dim.isin(settings["dims"])]
        part = part[part.step == settings["rounds"]].copy()
        part["suboptimality"] = part.suboptimality.clip(lower=run.FLOOR)
        fitted = run.dim_slope(results, enhancer, settings["dims"])
        summary = band(ax, part, "dim", "suboptimality", log=True, marker="o", markersize=3,
                       label=f"{LABELS[enhancer]} (slope {fitted.slope:.2f})")
        if enhancer == "uncertainty":
            first = summary.iloc[0]
    reference_line(ax, settings["dims"], first.dim, first["mean"], 1.0,
                   r"$d^{1}$ (Õ$(d^2/\epsilon^2)$ bound)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(settings["dims"], [str(v) for v in settings["dims"]])
    ax.minorticks_off()
    ax.set_xlabel("feature dimension d of the fitted linear class")
    ax.set_ylabel(f"suboptimality at n = {budget} (gap / 2)")
    ax.set_title(f"(b) vs feature dimension, n = {budget}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)
    return fig
