"""Regularization path: how far the regularized target pi*_beta is from the maximal lottery.

Claim checked. Fixed-reference methods (Nash-MD, INPO, Online IPO, EGPO) converge to the
regularized equilibrium pi*_beta, which keeps a nonzero "equilibrium gap" (exploitability) in
the original game (Liu et al. 2024, COMAL, arXiv:2410.23223, Sec. 3). Expanding the fixed point
pi = softmax(log pi_ref + P pi / beta) around the maximal lottery pi* on its support S gives
pi*_beta = pi* + beta delta + O(beta^2) with A_SS delta = log(pi*_S / pi_ref_S) + c [derived],
so exploitability(pi*_beta) = Theta(beta) as beta -> 0: a log-log slope of 1 (unless pi* = pi_ref
on S, where the gap is 0 for every beta, e.g. rock-paper-scissors).

One cell per game: every beta of the grid, each pi*_beta certified by its duality gap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import nlhf_theory as nt
from nlhf_theory.reproduce import Check, fit_slope


def cells(settings: dict) -> list[dict]:
    start, stop, num = settings["log10_beta"]
    betas = np.logspace(start, stop, num).tolist()
    return [{"game": label, "spec": spec, "betas": betas}
            for label, spec in settings["games"].items()]


def trace(game: nt.PreferenceGame, betas) -> pd.DataFrame:
    """Exploitability, duality gap and distance to the maximal lottery along ``betas``."""
    nash = nt.solve_nash(game)
    rows = []
    for beta in betas:
        eq = nt.solve_regularized_nash(game, beta)
        rows.append({
            "beta": float(beta),
            "exploitability": float(nt.exploitability(game, eq.policy)),
            "duality_gap": eq.duality_gap,
            "l1_to_maximal_lottery": float(np.abs(eq.policy - nash.policy).sum(-1).mean()),
            "kl_to_ref": float(nt.kl_to_ref(game, eq.policy)),
        })
    return pd.DataFrame(rows)


def run_cell(cell: dict) -> pd.DataFrame:
    spec = dict(cell["spec"])
    return trace(nt.make_game(spec.pop("name"), **spec), cell["betas"])


def slope(frame: pd.DataFrame, max_beta: float) -> nt.reproduce.Slope:
    """Fitted slope of log exploitability on log beta for beta <= max_beta."""
    part = frame[(frame.beta <= max_beta) & (frame.exploitability > 0)]
    return fit_slope(part.beta, part.exploitability)


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    out = []
    theory, band = settings["theory_slope"], settings["band"]
    for label, frame in results.groupby("game", sort=False):
        fitted = slope(frame, settings["fit_max_beta"])
        out.append(Check(
            f"{label}: exploitability(pi*_beta) = Theta(beta) (log-log slope for beta <= "
            f"{settings['fit_max_beta']:g})",
            f"slope {fitted}", f"{theory} +- {band}", abs(fitted.slope - theory) <= band))
    worst = results.duality_gap.max()
    out.append(Check("every pi*_beta is certified (duality gap of the solver's answer)",
                     f"max gap {worst:.1e}", "<= 1e-10", worst <= 1e-10))
    return out
