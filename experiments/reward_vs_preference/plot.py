"""Figure of the reward-vs-preference experiment."""

from __future__ import annotations

import numpy as np

from nlhf_theory.reproduce import band, subplots

from . import run

FLOOR = 1e-16  # exploitabilities below this (the maximal lottery's ~1e-17) are drawn at it


def plot(results, settings):
    fig, axes = subplots(3, 2, width=4.6, height=3.4)
    exploitability_panel(axes[0, 0], results, settings)
    borda_panel(axes[0, 1], results)
    condorcet_panel(axes[1, 0], results)
    regret_panel(axes[1, 1], results)
    finite_sample_panels(axes[2, 0], axes[2, 1], results, settings)
    fig.tight_layout()
    return fig


def exploitability_panel(ax, results, settings):
    for i, label in enumerate(settings["intransitive"]):
        pol = run.policies(results, label).reset_index()
        color = f"C{i}"
        bt, reg = pol[pol.policy == "bt"], pol[pol.policy == "regularized_nash"]
        ax.loglog(bt.beta, bt.exploitability.clip(lower=FLOOR), color=color, marker="o",
                  markersize=2.5, label=f"{label}: BT")
        ax.loglog(reg.beta, reg.exploitability.clip(lower=FLOOR), color=color, linestyle="--",
                  label=r"    Nash $\pi^*_\beta$")
        greedy = pol[pol.policy == "bt_greedy"].exploitability.iloc[0]
        ax.axhline(greedy, color=color, linestyle=":", linewidth=0.8)
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel(r"KL coefficient $\beta$")
    ax.set_ylabel(r"exploitability $\max_y (P\pi)(y) - 1/2$")
    ax.set_title("Exploitability, uniform $\\pi_{ref}$ (dotted: BT-greedy;\n"
                 "maximal lottery $\\leq 10^{-16}$, off scale)")
    ax.legend(ncol=2, fontsize=5.5)


def borda_panel(ax, results):
    rewards = results[(results.part == "game") & (results.kind == "reward")]
    for i, ((label, behaviour), rows) in enumerate(rewards.groupby(["game", "behaviour"],
                                                                   sort=False)):
        ax.plot(rows.borda, rows.reward, marker="o" if behaviour == "uniform" else "^",
                linestyle="-", linewidth=0.6, markersize=3.5, color=f"C{i // 2}",
                label=f"{label} [{behaviour}]")
    mix = results[results.kind == "mixture"]
    kendall = mix.groupby("behaviour").kendall_borda.min().to_dict()
    ax.set_xlabel(r"Borda count $B_\mu(y) = \sum_{y'} \mu(y') P(y \succ y')$")
    ax.set_ylabel(r"population BT reward $r(y)$ (mean-centred)")
    ax.set_title("BT reward vs Borda count (random mixtures:\nmin Kendall "
                 + ", ".join(f"{v:.2f} ({k} $\\mu$)" for k, v in kendall.items()) + ")")
    ax.legend(fontsize=5)


def condorcet_panel(ax, results):
    names = {"E5 (ii) (a, c, d)": ["E5 a", "E5 c", "E5 d"],
             "condorcet_winner": ["CW a", "CW b", "CW c"]}
    width = 0.27
    offset = 0
    ticks, ticklabels = [], []
    for label in names:
        pol = run.policies(results, label)
        r = run.rewards(results, label)
        bt = run.probs(pol.loc[("bt_greedy", 0.0)])
        nash = run.probs(pol.loc[("maximal_lottery", 0.0)])
        borda = results[(results.part == "game") & (results.game == label)
                        & (results.behaviour == "uniform") & (results.kind == "reward")]
        x = offset + np.arange(3)
        ax.bar(x - width, r, width, color="C0", label="BT reward" if offset == 0 else None)
        ax.bar(x, borda.sort_values("response").borda - 0.5, width, color="C2",
               label=r"Borda $- 1/2$" if offset == 0 else None)
        ax.bar(x + width, nash, width, color="C3", label="maximal lottery (Nash)"
               if offset == 0 else None)
        chosen = int(np.argmax(bt))
        ax.annotate("BT-greedy", (x[chosen] - width, r[chosen]), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=6)
        ticks += list(x)
        ticklabels += names[label]
        offset += 4
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(ticks, ticklabels)
    ax.set_ylabel("reward / Borda - 1/2 / probability")
    ax.set_title("Condorcet winner (Nash) vs BT winner, uniform pairs\n"
                 "E5: P(c>a)=.99, P(d>a)=P(d>c)=.55; CW: condorcet_winner")
    ax.legend(fontsize=6)


def regret_panel(ax, results):
    regret = results[(results.kind == "regret") & (results.beta > 0)]
    names = {"bt": "BT policy", "nash": r"Nash $\pi^*_\beta$"}
    for (k, name), rows in regret.groupby(["type", "policy"]):
        ax.loglog(rows.beta, rows.regret.clip(lower=FLOOR), color=f"C{int(k)}",
                  linestyle="-" if name == "bt" else "--", label=f"type {int(k)}: {names[name]}")
    ax.set_xlabel(r"KL coefficient $\beta$")
    ax.set_ylim(1e-3, 10)
    ax.set_ylabel(r"regret $J_k(\pi_k^*) - J_k(\pi)$ of type $k$")
    ax.set_title("annotator_mixture: per-type regret\n(type 1's favourite is the BT winner)")
    ax.legend(fontsize=6)


def finite_sample_panels(error_ax, rank_ax, results, settings):
    rows = results[results.kind == "finite_sample"].copy()
    rows["kendall_one"] = (rows.kendall_borda == 1.0).astype(float)
    for i, label in enumerate(settings["finite_sample"]["games"]):
        part = rows[rows.game == label]
        fitted = run.slope(results, label)
        summary = band(error_ax, part, "num_pairs", "reward_error", log=True, color=f"C{i}",
                       marker="o", markersize=3, label=f"{label} (slope {fitted.slope:.2f})")
        anchor = summary["mean"].iloc[0] * np.sqrt(summary.num_pairs.iloc[0])
        error_ax.loglog(summary.num_pairs, anchor / np.sqrt(summary.num_pairs), color=f"C{i}",
                        linestyle=":", linewidth=0.8)
        band(rank_ax, part, "num_pairs", "kendall_one", color=f"C{i}", marker="o",
             markersize=3, label=label)
    error_ax.set_xscale("log")
    error_ax.set_yscale("log")
    error_ax.set_xlabel("comparisons n (uniform pairs)")
    error_ax.set_ylabel(r"$\|r_{MAP} - r_{BT}\|_2$ (mean-centred)")
    error_ax.set_title(f"MAP fit vs population BT projection\n({settings['seeds']} seeds, "
                       "95% band; dotted: slope -1/2)")
    error_ax.legend(fontsize=6)
    rank_ax.set_xscale("log")
    rank_ax.set_xlabel("comparisons n (uniform pairs)")
    rank_ax.set_ylabel(r"fraction of seeds, Kendall($r_{MAP}$, Borda) = 1")
    rank_ax.set_title("finite samples: Borda ranking is a tendency\n(95% band over seeds)")
    rank_ax.legend(fontsize=6)
