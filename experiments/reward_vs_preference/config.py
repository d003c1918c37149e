"""Configuration of the reward-vs-preference experiment (see README.md beside this file)."""

ORDER = 5
TITLE = "Reward model vs preference model"
CLAIM = ("A Bradley-Terry reward fitted to preferences that no reward represents ranks responses "
         "by the Borda count (Siththaranjan et al. 2023, arXiv:2312.08358, Thm. 3.1) and its "
         "optimal policies, greedy or KL-regularized, stay exploitable, while the Nash policy "
         "(maximal lottery) is unexploitable (Munos et al. 2023, arXiv:2312.00886, Sec. 3; "
         "Chaudhari et al. 2024, arXiv:2404.08555, Sec. 5.1); golden values: the biased "
         "rock-paper-scissors Nash (1/16, 10/16, 5/16) of OpenSpiel's lp_solver_test.py and "
         "closed-form values derived outside this code (population Bradley-Terry fits, "
         "exploitabilities).")

#: A Condorcet winner that is not the Borda winner: responses (a, c, d), P(c>a) = .99,
#: P(d>a) = .55, P(d>c) = .55.
E5_CONDORCET = [[0.5, 0.01, 0.45], [0.99, 0.5, 0.45], [0.55, 0.55, 0.5]]

#: Games without a Condorcet winner (label -> make_game arguments).
INTRANSITIVE = {
    "munos_nontransitive (eps=0.1)": {"name": "munos_nontransitive", "epsilon": 0.1},
    "annotator_mixture": {"name": "annotator_mixture"},
    "condorcet_cycle (0.4/0.35/0.25)": {"name": "condorcet_cycle",
                                        "weights": [0.4, 0.35, 0.25]},
    "biased_rock_paper_scissors": {"name": "biased_rock_paper_scissors"},
}
#: Games whose Condorcet winner is not the Borda winner ({"P": ...}: an explicit matrix).
CONDORCET = {
    "condorcet_winner": {"name": "condorcet_winner"},
    "E5 (ii) (a, c, d)": {"P": E5_CONDORCET},
}
#: A BT-realizable control, where the reward model is exact and BT-greedy is the Condorcet winner.
CONTROL = {"bradley_terry": {"name": "bradley_terry"}}

#: Golden values (OpenSpiel's biased RPS Nash; the rest derived in closed form outside this
#: code), uniform pair distribution and pi_ref, rewards mean-centred, exploitability
#: max_y (P pi)(y) - 1/2.
GOLDEN = {
    "biased_rock_paper_scissors": {
        "reward": [0.359, 0.288, -0.647], "misspecification": 0.268, "greedy": 0.25,
        "nash": [1 / 16, 10 / 16, 5 / 16],
        # stated to 2 decimals: the band is the rounding interval
        "kl": {"0.05": 0.20, "0.2": 0.15, "1.0": 0.10},
    },
    "E5 (ii) (a, c, d)": {
        "reward": [-0.817, 0.664, 0.153], "greedy_index": 1, "nash_index": 2,
        "nash_vs_greedy": 0.55, "bt_predicted_d_over_c": 0.375,
    },
}

_SHARED = {
    "games": {**INTRANSITIVE, **CONDORCET, **CONTROL},
    "control": list(CONTROL),
    "intransitive": list(INTRANSITIVE),
    "golden": GOLDEN,
    # behaviours: uniform pairs and pi_ref; or pairs from pi_ref x pi_ref with a Zipf pi_ref
    "behaviours": {"uniform": 0.0, "zipf": 1.0},  # Zipf exponent s: pi_ref(y) ~ (y + 1)^-s
    "golden_betas": [0.05, 0.2, 1.0],
    "annotators": {"rewards": [[4.0, 2.0, 0.0], [0.0, 4.0, 2.0], [2.0, 0.0, 4.0]],
                   "weights": [0.4, 0.35, 0.25]},
    # random hidden-context mixtures: K types with N(0, scale^2) rewards, Dirichlet(1) shares
    "mixtures": {"types": 3, "responses": 6, "reward_scale": 2.0, "seed": 0},
    # finite-sample MAP fits: Gaussian prior precision, pairs from the uniform behaviour
    "finite_sample": {"games": ["biased_rock_paper_scissors", "annotator_mixture"],
                      "ridge": 1.0, "seed": 0},
    "theory_slope": -0.5,
    "slope_band": 0.1,
}
QUICK = {**_SHARED, "log10_beta": (-3.0, 1.0, 9), "mixture_instances": 128,
         "num_pairs": (2.5, 4.5, 5), "seeds": 32}
FULL = {**_SHARED, "log10_beta": (-3.0, 1.0, 41), "mixture_instances": 2048,
        "num_pairs": (2.0, 5.0, 13), "seeds": 256}
