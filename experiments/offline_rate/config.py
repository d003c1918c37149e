"""Configuration of the offline-rate experiment (see README.md beside this file).

Every band below was fixed from theory before the experiment was run (README, "Checks").
"""

ORDER = 1
TITLE = "Offline equilibrium learning: Thm. 1's bound, rate and coverage"
CLAIM = ("Pessimistic equilibrium learning (Ye et al. 2024, arXiv:2402.07314, Alg. 1: the "
         "version-space max-min) has suboptimality at most 4 b sqrt(C / n) with probability "
         "1 - delta, b the version-space radius and C the unilateral coverage coefficient of the "
         "data for pi*_beta (Thm. 1); it needs unilateral coverage (Cui & Du 2022, "
         "arXiv:2201.03522): a response the data never show drags the pessimistic max player "
         "towards it. BT-based methods (RLHF, DPO) converge to the RLHF optimum, not pi*_beta.")

#: Games (label -> spec). kind: "tabular" (a named game), "linear_bt" (Bradley-Terry-linear,
#: rewards theta . phi), "linear_skew" (BT-linear plus a skew-bilinear, intransitive part).
_TABULAR_SKEW = {"kind": "tabular", "name": "random_skew", "num_responses": 5, "seed": 3}
_LINEAR_BT = {"kind": "linear_bt", "num_responses": 5, "dim": 3, "seed": 0}
_TABULAR_BT = {"kind": "tabular", "name": "bradley_terry",
               "reward": [1.5, 0.8, 0.0, -0.6, -1.2]}
_LINEAR_SKEW = {"kind": "linear_skew", "num_responses": 5, "dim": 3, "seed": 0}

_GAMES = {"random skew (tabular)": _TABULAR_SKEW, "Bradley-Terry (tabular)": _TABULAR_BT,
          "BT-linear (d=3)": _LINEAR_BT, "BT + skew-bilinear (linear, d=6)": _LINEAR_SKEW}

#: The settings.
#: runs: (game label, beta, n grid) of the equilibrium learners (pessimistic with the joint
#:   version space, the former entrywise bound, greedy), on comparisons a, b ~ mu_t with
#:   mu_t = (1 - t) uniform + t uniform(the `concentrate_on` responses pi*_beta plays least),
#:   one t of `mixing` per behaviour (t = 0: uniform = pi_ref). Linear games use the logistic
#:   model on the game's features with the valid radius; their n grid reaches the sizes where
#:   that radius is informative.
#: cases: data chosen for what coverage pessimism needs, tabular games:
#:   "unilateral": a ~ pi*_beta, b ~ uniform (pi*_beta covered against every response, pairs of
#:   the responses it rarely plays compared rarely); "missing": a, b ~ uniform on all responses
#:   but the one pi*_beta plays least (never shown: unilateral coverage fails).
#: bt_num_pairs, bt_mixing: the BT methods (`bt_steps` full-batch gradient steps with rate
#:   `bt_learning_rate` on the reward; DPO: the same rate divided by beta^2).
#: delta: the version space's failure probability (pessimism's confidence level 1 - delta).
#: Bands (from theory, fixed before running):
#:   slope_bound: the rate in n under uniform data is at least Thm. 1's n^-1/2: slope <= -0.4.
#:   coverage_slope_band: at fixed n the suboptimality scales like C^s with s between 1/2
#:     (Thm. 1's sqrt(C / n), if tight) and 1 (the KL-regularized local rate C / n), plus 0.25
#:     of slack either side for the spread of seeds.
#:   binomial_level: the bound of Thm. 1 (and the version space's coverage of P*) may fail in
#:     at most a delta fraction of datasets; a count of failures whose binomial(M, delta) upper
#:     tail is below this level is a FAIL.
#:   unilateral_tolerance: "pessimism no worse than greedy" under unilateral coverage: the paired
#:     mean difference (pessimistic - greedy) at most this many standard errors above 0.
QUICK = {
    "games": _GAMES,
    "runs": [["random skew (tabular)", 0.1, [100, 1000, 10000]],
             ["BT-linear (d=3)", 1.0, [10000, 100000, 1000000]]],
    "mixing": [0.0, 0.8, 0.97],
    "concentrate_on": 2,
    "cases": [["Bradley-Terry (tabular)", 0.1, "unilateral", [1000, 10000]],
              ["random skew (tabular)", 0.1, "missing", [1000, 10000]]],
    "seeds": 8,
    "delta": 0.05,
    "bt_num_pairs": [10000],
    "bt_mixing": [0.0],
    "bt_steps": 100,
    "bt_learning_rate": 4.0,
    "slope_bound": -0.4,
    "coverage_slope_band": [0.25, 1.25],
    "binomial_level": 0.01,
    "unilateral_tolerance": 2.0,
}
FULL = {
    **QUICK,
    "runs": [["random skew (tabular)", 0.1, [100, 316, 1000, 3162, 10000]],
             ["random skew (tabular)", 1.0, [100, 316, 1000, 3162, 10000]],
             ["Bradley-Terry (tabular)", 0.1, [100, 316, 1000, 3162, 10000]],
             ["BT-linear (d=3)", 1.0, [10000, 100000, 316228, 1000000]],
             ["BT + skew-bilinear (linear, d=6)", 1.0, [10000, 100000, 316228, 1000000]]],
    "mixing": [0.0, 0.5, 0.8, 0.93, 0.97],
    "cases": [["Bradley-Terry (tabular)", 0.1, "unilateral", [100, 1000, 10000]],
              ["random skew (tabular)", 0.1, "unilateral", [100, 1000, 10000]],
              ["random skew (tabular)", 0.1, "missing", [100, 1000, 10000]],
              ["Bradley-Terry (tabular)", 0.1, "missing", [100, 1000, 10000]]],
    "seeds": 16,
    "bt_num_pairs": [100, 10000],
    "bt_mixing": [0.0, 0.97],
    "bt_steps": 200,
}
