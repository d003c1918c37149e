"""Configuration of the SAIL experiment (see README.md beside this file)."""

ORDER = 4
TITLE = "SAIL vs online and offline DPO"
CLAIM = ("SAIL (Ding et al. 2024, arXiv:2406.15567): the self-improving variants SAIL-PR/PP/DP "
         "generalize offline DPO (all route weights 0) and online DPO (SAIL-PR, gamma = 0) as "
         "exact special cases; self-labelled pairs without the extra term (pi = 0) have zero "
         "expected effect; online pairs beat offline DPO in win rate when the dataset covers "
         "poorly (up to 11.6% win-rate gain, abstract) at little overhead (SAIL-DP none).")

#: Route weights (r, p, g) and coefficients (rho, pi, gamma) of the SAIL variants: the
#: defaults of the authors' configs/tasks.yaml; the mixture
#: is our choice (each route at 0.2, offline DPO 0.4, the default coefficients).
VARIANTS = {
    "SAIL-PR": {"g": 0.3, "gamma": 0.3},
    "SAIL-PP": {"p": 0.3, "pi": 0.2},
    "SAIL-DP": {"r": 0.4, "rho": 0.2},
    "SAIL (mixture)": {"r": 0.2, "rho": 0.2, "p": 0.2, "pi": 0.2, "g": 0.2, "gamma": 0.3},
}

#: Tabular games: a Bradley-Terry game and an intransitive one (random skew), each with a
#: reference policy tilted against the better responses (log pi_ref = -tilt * score + noise,
#: score = reward or Borda win rate, standardized per prompt), so data from pi_ref covers the
#: good responses poorly.
GAMES = {
    "Bradley-Terry": {"kind": "bradley_terry", "num_prompts": 8, "num_responses": 16,
                      "reward_scale": 2.0, "tilt": 1.0, "seed": 0},
    "intransitive (random skew)": {"kind": "random_skew", "num_prompts": 8,
                                   "num_responses": 16, "tilt": 1.0, "seed": 0},
}

QUICK = {
    "games": GAMES,
    "variants": VARIANTS,
    "beta": 0.1,  # the code's default DPO beta (the KL coefficient)
    "learning_rate": 30.0,  # gradient step on the logits (per-prompt step lr * beta / X)
    "pairs_per_prompt": 4,  # offline pairs per prompt = on-policy pairs per prompt and update
    "heldout_pairs": 256,  # held-out comparisons from pi_ref (margin, chosen responses)
    "steps": 200,
    "every": 5,  # record the policy at steps 0, 1 and every `every` steps
    "seeds": 8,
    "seed": 0,
    "heldout_seed": 1,
    "exact_steps": 2000,  # exact-mode trajectories (special cases, exact vs implemented)
    "exact_every": 20,
    "gradient_draws": 2000,  # Monte-Carlo draws of the self-labelled gradient
    "special_case_tol": 1e-10,  # exact special cases: float64 round-off only
    "family_level": 1e-3,  # family-wise level of the zero-mean z-test (Bonferroni)
    "confidence": 0.95,  # interval of the win-rate gains over seeds
}
FULL = {**QUICK, "steps": 1000, "every": 10, "seeds": 32, "exact_steps": 10000,
        "exact_every": 50, "gradient_draws": 20000}
