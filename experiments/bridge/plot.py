"""Figure of the bridge experiment: exact gap, KL to pi*_beta and win rate against steps."""

from __future__ import annotations

from nlhf_theory.reproduce import band, subplots


def plot(results, settings):
    fig, axes = subplots(1, 4, width=3.4, height=2.8)
    axes = axes[0]
    exact = results[results.part == "exact"]
    methods = list(settings["methods"])
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for method in methods:
        part = exact[exact.method == method]
        style = "--" if "token" in method else "-"
        axes[0].plot(part.step, part.duality_gap, style, color=colors[method], label=method)
        axes[1].plot(part.step, part.kl_from_equilibrium, style, color=colors[method])
        axes[2].plot(part.step, part.win_rate_vs_equilibrium, style, color=colors[method])
    tabular = results[results.part == "tabular"]
    for algorithm, method, label in (("dpo", "DPO", "DPO, tabular limit"),
                                     ("nash_md", "Nash-MD (sequence mixture)",
                                      "Nash-MD (constant step), tabular fixed point")):
        part = tabular[tabular.algorithm == algorithm]
        if len(part):
            axes[0].axhline(float(part.duality_gap.iloc[-1]), color=colors[method],
                            linewidth=0.8, linestyle=":", label=label)
    for ax, label in zip(axes[:3], [r"duality gap of $\pi_\theta$ (exact)",
                                    r"KL$(\pi^*_\beta \,\|\, \pi_\theta)$",
                                    r"win rate vs $\pi^*_\beta$"]):
        ax.set_xlabel("step (exact mode, Adam)")
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].axhline(0.5, color="k", linewidth=0.6)
    axes[0].legend(fontsize=6)
    sampled = results[results.part == "sampled"]
    if len(sampled):
        band(axes[3], sampled, "step", "duality_gap",
             label=f"{settings['sampled']['recipe']} via NLHFTrainer", color="C1")
        axes[3].set_yscale("log")
        axes[3].set_xlabel("optimizer step (sampled, transformers.Trainer)")
        axes[3].set_ylabel("duality gap (exact)")
        axes[3].legend(fontsize=6)
    fig.suptitle(f"Bridge: V={settings['bridge']['vocab_size']}, "
                 f"L={settings['bridge']['length']}, {settings['bridge']['preference']} "
                 f"preference, beta={settings['beta']}", fontsize=8)
    return fig
