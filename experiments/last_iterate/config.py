"""Configuration of the last-iterate experiment (see README.md beside this file).

Learning rates come from each method's theory or paper, as a rule of beta (never tuned per
game); ``run.hyperparameters`` applies them:

* ``nash_md``: Munos et al.'s schedule ``eta_t = 2 / (beta (t + 2))`` (Thm. 1).
* ``inpo``, ``comal``: the mirror step ``eta = beta / (beta^2 + L^2)`` with
  ``L = max |P - 1/2| <= 1/2`` [derived]: the linearized INPO map at ``pi*_beta`` has
  eigenvalues ``1 - eta beta + i eta w`` with ``|w| <= L``, whose worst-case modulus
  ``(1 - eta beta)^2 + eta^2 L^2`` this step minimizes; it satisfies INPO's ``eta beta <= 1``.
  COMAL's inner steps ``K = ceil(2 ln 10 / (eta beta))``: COMAL's inner bound
  ``KL <= (1 - eta beta / 2)^k KL_0`` (Liu et al. 2024, arXiv:2410.23223) falls 10-fold
  before the anchor moves.
* ``mpo``: the same step in MMD's parametrization, ``eta' = eta / (1 - eta beta) = beta / L^2``,
  the largest step of magnetic mirror descent's linear-rate condition ``eta' <= beta / L^2``
  (Sokota et al. 2023, arXiv:2206.05825, Sec. 3). Magnet period ``K = ceil(ln 10 /
  ln(1 + eta' beta))``: MMD's bound ``KL <= (1 + eta' beta)^{-k} KL_0`` falls 10-fold before
  the magnet moves.
* ``online_ipo``, ``egpo``, ``nash_md_pg``: EGPO's tabular configs (Zhou et al. 2025,
  arXiv:2503.08942, ``simulations/``): lr 0.1, 0.02, 2e-4 at beta = 0.1, 0.01, 0.001 (the
  paper that compares these methods); Nash-MD-PG with Munos et al.'s mixture 0.125.
* ``online_dpo``, ``sail_pr``: the same lr times ``8 / beta^2``: near ``h = 0`` the DPO loss
  ``-log sigma(beta h)`` has curvature ``beta^2 / 4`` in the margin ``h``, the IPO loss 2
  [derived], so the same step in the policy's logits. SAIL-PR with the code's ``gamma = 0.3``
  and ``g = 1`` (on-policy route only).
* ``sppo``: Hedge's step ``eta = sqrt(8 ln Y / T)`` for horizon ``T`` (Freund & Schapire
  1997), which bounds the regret by ``sqrt(T ln Y / 2)``; in self-play ``pi_t^T P pi_t = 1/2``,
  so the average iterate's exploitability is exactly ``regret / T <= sqrt(ln Y / (2 T))``.
"""

ORDER = 3
TITLE = "Last-iterate convergence"
CLAIM = ("Fixed-reference methods (Nash-MD, Munos et al. 2023, arXiv:2312.00886, Thm. 1; INPO, "
         "arXiv:2407.00617; online IPO, arXiv:2403.08635, Prop. 4.1; EGPO, arXiv:2503.08942) "
         "converge in the last iterate to pi*_beta, EGPO linearly even at small beta; "
         "anchor-moving methods (MPO, arXiv:2410.16714; COMAL, arXiv:2410.23223) to the "
         "maximal lottery; SPPO's multiplicative weights (arXiv:2405.00675) cycle on "
         "intransitive games while its average converges; online DPO reaches the RLHF optimum "
         "on Bradley-Terry games, not pi*_beta (Calandriello et al. Thm. F.6).")

METHODS = ("nash_md", "nash_md_pg", "online_ipo", "inpo", "sppo", "egpo", "mpo", "comal",
           "online_dpo", "sail_pr")

#: Learning rates of EGPO's tabular simulations (beta -> lr).
EGPO_LR = {0.1: 0.1, 0.01: 0.02, 0.001: 2e-4}
NASH_MD_PG_MIXTURE = 0.125
SAIL_PR = {"gamma": 0.3, "g": 1.0}
#: ``L = max |P - 1/2|`` bound used by the mirror step (any preference game).
PAYOFF_BOUND = 0.5

#: Classification of a trajectory (thresholds fixed before the first run; two rules were
#: refined after it, see README.md): W = the last ``window`` of the recorded steps; a metric
#: m "reaches 0" when max_W m <= reached * m(step 0) (Nash-MD's slowest claimed rate, 1/T,
#: gives 1/T <= 5e-4 < 1e-3 at T >= 2000 steps); when several targets are reached (they
#: nearly coincide at small beta on Bradley-Terry games) the label is the one with the
#: smallest ratio; otherwise the last iterate "cycles" when its exploitability in W changes
#: direction >= ``turns`` times with amplitude log10(max_W / min_W) >= ``amplitude``; it is
#: "slow" when the duality gap or the exploitability still falls by >= ``amplitude`` decades
#: across W; "elsewhere" otherwise (stationary, at no target).
CLASSIFY = {"window": 0.2, "reached": 1e-3, "turns": 2, "amplitude": 0.1, "floor": 1e-300}

#: Rate fits: the linear-rate fit uses the steps with gap in [low, high * gap(0)] (the
#: asymptotic regime above the float64 floor); the band on slope / (2 ln rho) allows the
#: transient of the complex eigenvalue pair.
RATES = {"linear_methods": ("inpo", "egpo"), "linear_beta": 0.1, "low": 1e-13, "high": 1e-3,
         "ratio_band": (0.8, 1.25), "nash_md_beta": 0.1, "nash_md_slope_max": -1.0}

_SMALL_GAMES = {
    "comal_cyclic": {"name": "comal_cyclic"},
    "biased_rock_paper_scissors": {"name": "biased_rock_paper_scissors"},
    "bradley_terry": {"name": "bradley_terry", "reward": [1.0, 0.0, -0.5]},
}
_RANDOM = {"random_skew (Y=10)": {"name": "random_skew", "num_responses": 10, "seed": 0}}

#: Games are grouped by shape (one vmapped computation per group); beta sets share a horizon.
QUICK = {
    "methods": METHODS,
    "game_groups": [_SMALL_GAMES],
    "beta_sets": [([0.1, 0.01], 5000)],
    # at beta = 0.01 the anchor periods (COMAL K = 11518, MPO K = 5758) exceed the quick
    # horizon: MPO and COMAL would be fixed-magnet methods, so quick runs them at beta = 0.1 only
    "betas_of": {"mpo": [0.1], "comal": [0.1]},
    "record_points": 400,
    "classify": CLASSIFY,
    "rates": RATES,
}
FULL = {
    **QUICK,
    "betas_of": {},
    "game_groups": [_SMALL_GAMES, _RANDOM],
    "beta_sets": [([0.1], 10000), ([0.01], 50000), ([0.001], 100000)],
}
