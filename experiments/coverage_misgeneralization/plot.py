"""Figure of the coverage / misgeneralization experiment."""

from __future__ import annotations

from matplotlib.ticker import NullFormatter

from nlhf_theory.reproduce import band, subplots

from . import run

#: Delta J >= 0 exactly; values below this floor (0 on prompts where both greedy policies
#: agree) are clipped for the log axis.
FLOOR = 1e-6
ERRORS = {"error_in": "in distribution", "error_unseen_responses": "unseen responses",
          "error_unseen_prompts": "unseen prompts"}


def plot(results, settings):
    fig, axes = subplots(2, 2, width=4.2, height=3.2)
    ax = axes[0, 0]
    errors = results[(results.method == "map") & (results.beta == results.beta.min())
                     & (results.kappa < 1.0)]
    for column, label in ERRORS.items():
        band(ax, errors, "kappa", column, label=label, marker="o", markersize=3, log=True)
    ax.set_xscale("log")
    ax.set_yscale("log")
    kappas = sorted(errors.kappa.unique())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(kappas, [f"{k:g}" for k in kappas])
    ax.set_xlabel(r"prompt coverage $\kappa$")
    ax.set_ylabel("centred pair error of $\\hat r$ (geom. mean over seeds)")
    ax.set_title("BT MAP reward error")
    ax.legend()
    kappas = sorted(results.kappa.unique())
    colors = {k: f"C{i}" for i, k in enumerate(kappas)}
    panels = ((axes[0, 1], "delta_j", "all prompts"), (axes[1, 0], "delta_j_seen", "seen prompts"),
              (axes[1, 1], "delta_j_unseen", "unseen prompts"))
    for ax, split, title in panels:
        for method, style in zip(run.METHODS, ("-", "--")):
            for kappa in kappas:
                part = results[(results.method == method) & (results.kappa == kappa)]
                if part[split].isna().all():
                    continue
                part = part.assign(**{split: part[split].clip(lower=FLOOR)})
                band(ax, part, "beta", split, color=colors[kappa], linestyle=style,
                     label=rf"$\kappa$={kappa:g}" if method == "map" else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"KL coefficient $\beta$")
        ax.set_ylabel(r"$J(\pi^*_\beta) - J(\pi_\beta)$ (mean over seeds)")
        ax.set_title(rf"$\Delta J(\beta)$, {title} (solid: MAP, dashed: LCB)")
        ax.legend()
    fig.tight_layout()
    return fig
