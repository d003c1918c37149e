"""Configuration of the offline-rate experiment (see README.md beside this file)."""

ORDER = 1
TITLE = "Offline equilibrium learning: rate and coverage"
CLAIM = ("Pessimistic equilibrium learning from n offline comparisons has suboptimality "
         "O(sqrt(C / n)) with C the coverage coefficient of the data for pi*_beta (Ye et al. "
         "2024, arXiv:2402.07314, Thm. 1), i.e. a log-log slope of at most -1/2 (-1 under good "
         "coverage for KL-regularized objectives); BT-based methods (reward-based RLHF, DPO) "
         "converge to the RLHF optimum, not pi*_beta, and plateau at its suboptimality.")

#: Games (label -> spec). kind: "tabular" (a named game), "linear_bt" (Bradley-Terry-linear,
#: rewards theta . phi), "linear_skew" (BT-linear plus a skew-bilinear, intransitive part).
_TABULAR_SKEW = {"kind": "tabular", "name": "random_skew", "num_responses": 5, "seed": 3}
_LINEAR_BT = {"kind": "linear_bt", "num_responses": 5, "dim": 3, "seed": 0}
_TABULAR_BT = {"kind": "tabular", "name": "bradley_terry",
               "reward": [1.5, 0.8, 0.0, -0.6, -1.2]}
_LINEAR_SKEW = {"kind": "linear_skew", "num_responses": 5, "dim": 3, "seed": 0}

_GAMES = {"random skew (tabular)": _TABULAR_SKEW, "Bradley-Terry (tabular)": _TABULAR_BT,
          "BT-linear (d=3)": _LINEAR_BT, "BT + skew-bilinear (linear, d=6)": _LINEAR_SKEW}

#: The settings. runs: (game label, beta) pairs. behaviour: mu_t = (1 - t) uniform +
#: t (uniform on the `concentrate_on` responses least played by pi*_beta), one t of `mixing`
#: per coverage level (t = 0: uniform = pi_ref); single_policy_mixing: the same towards the
#: responses pi*_beta plays most (pi*_beta covered, other policies not). num_pairs: the n
#: grid of the equilibrium learners; bt_num_pairs, bt_mixing: those of the BT methods
#: (`bt_steps` full-batch gradient steps with learning rate `bt_learning_rate` on the reward;
#: DPO: the same rate divided by beta^2, which makes its tabular iterates those of
#: reward-based RLHF).
#: slope_bound: Thm. 1's -1/2 plus the 0.1 of slack of the check.
QUICK = {
    "games": _GAMES,
    "runs": [["random skew (tabular)", 0.1], ["BT-linear (d=3)", 1.0]],
    "num_pairs": [100, 10000],
    "bt_num_pairs": [10000],
    "mixing": [0.0, 0.8, 0.97],
    "single_policy_mixing": [0.97],
    "bt_mixing": [0.0],
    "concentrate_on": 2,
    "seeds": 8,
    "bt_steps": 100,
    "bt_learning_rate": 4.0,
    "slope_bound": -0.4,
}
FULL = {
    **QUICK,
    "runs": [[label, beta] for label in _GAMES for beta in (0.1, 1.0)],
    "num_pairs": [100, 316, 1000, 3162, 10000],
    "bt_num_pairs": [100, 10000],
    "mixing": [0.0, 0.5, 0.8, 0.93, 0.97],
    "bt_mixing": [0.0, 0.97],
    "seeds": 16,
    "bt_steps": 200,
}
