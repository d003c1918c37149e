"""Configuration of the regularization-path experiment (see README.md beside this file)."""

ORDER = 0
TITLE = "Equilibrium gap of the regularized target"
CLAIM = ("Methods with a fixed reference converge to the regularized equilibrium pi*_beta, whose "
         "exploitability in the unregularized game (COMAL's 'equilibrium gap', Liu et al. 2024, "
         "arXiv:2410.23223, Sec. 3) is Theta(beta) as beta -> 0: a log-log slope of 1 "
         "(first-order expansion of the fixed point, derived in the experiment's README).")

_GAMES = {
    "comal_cyclic": {"name": "comal_cyclic"},
    "biased_rock_paper_scissors": {"name": "biased_rock_paper_scissors"},
    "annotator_mixture": {"name": "annotator_mixture"},
    "random_skew (Y=20)": {"name": "random_skew", "num_responses": 20, "seed": 0},
    "random_skew (Y=200)": {"name": "random_skew", "num_responses": 200, "seed": 0},
}

#: The settings: games (label -> make_game arguments), the beta grid (log10 from, to, points),
#: the fit range and the slope theory predicts with the band the check accepts.
QUICK = {
    "games": _GAMES,
    "log10_beta": (0.0, -4.0, 17),
    "fit_max_beta": 1e-2,
    "theory_slope": 1.0,
    "band": 0.1,
}
FULL = {**QUICK, "log10_beta": (0.0, -5.0, 41)}
