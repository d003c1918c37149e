"""Configuration of the reward-overoptimization experiment (see README.md beside this file)."""

ORDER = 6
TITLE = "Reward over-optimization (Goodhart)"
CLAIM = ("Optimizing a Bradley-Terry proxy reward fitted on N comparisons from pi_ref raises the "
         "proxy monotonically while the gold reward rises and then falls against "
         "d = sqrt(KL(pi || pi_ref)), following R_bon(d) = d (alpha - beta_bon d) for best-of-n "
         "and R_RL(d) = d (alpha - beta_RL log d) for the KL-regularized policy, with a peak that "
         "moves right as N grows (Gao, Schulman & Hilton 2022, arXiv:2210.10760, Sec. 3 and "
         "eqs. 1-2; Chaudhari et al. 2024, arXiv:2404.08555, Sec. 7.6.3); best-of-n obeys "
         "KL <= log n - (n - 1)/n and win rate <= n/(n + 1) (Beirami et al. 2024, "
         "arXiv:2401.01879, Thm. 1).")

#: Gold game: Y responses with features phi(y) ~ N(0, I_dim) (seed ``game_seed``), a Zipf
#: reference pi_ref(y) ~ 1 / y^zipf and the gold reward
#: r*(y) = theta* . phi(y) - curvature |phi(y)|^2 / 2 with |theta*| = theta_norm (extreme
#: responses are bad: a concave gold the linear proxy cannot represent). Proxy: the BT MAP
#: reward linear in phi (prior precision ``ridge``) on nested datasets of ``num_pairs``
#: comparisons from pi_ref. Optimizers: best-of-n for n on a log grid and the KL-regularized
#: closed form for beta on a log grid (large to small). ``r2_min``: the band on the fits'
#: R^2, fixed before the first run.
QUICK = {
    "num_responses": 300,
    "dim": 8,
    "theta_norm": 0.5,
    "curvature": 0.25,
    "zipf": 1.0,
    "game_seed": 0,
    "ridge": 1.0,
    "newton_steps": 25,
    "num_pairs": [30, 100, 300, 1000],
    "seeds": 8,
    "log10_n": (0.0, 4.0, 41),
    "log10_beta": (1.0, -2.5, 36),
    "r2_min": 0.9,
}
FULL = {**QUICK, "num_pairs": [30, 60, 100, 200, 300, 600, 1000], "seeds": 32,
        "log10_n": (0.0, 4.0, 81), "log10_beta": (1.0, -3.0, 81)}
