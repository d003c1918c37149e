"""Figure of the regularization-path experiment."""

from __future__ import annotations

from nlhf_theory.reproduce import subplots

from . import run


def plot(results, settings):
    fig, axes = subplots(1, 1, width=5.0, height=3.6)
    ax = axes[0, 0]
    for label, frame in results.groupby("game", sort=False):
        fitted = run.slope(frame, settings["fit_max_beta"])
        ax.loglog(frame.beta, frame.exploitability, marker="o", markersize=3,
                  label=f"{label} (slope {fitted.slope:.2f})")
    ax.set_xlabel(r"KL coefficient $\beta$")
    ax.set_ylabel(r"exploitability of $\pi^*_\beta$: $\max_y (P\pi)(y) - 1/2$")
    ax.set_title(r"Exploitability of $\pi^*_\beta$ (theory: slope 1 as $\beta \to 0$)")
    ax.legend()
    return fig
