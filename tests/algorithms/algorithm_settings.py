"""Hyper-parameters with which every registered algorithm is exercised in the tests."""

#: Hyper-parameters (beyond beta and mode) with which every registered algorithm is exercised.
HYPERPARAMETERS = {
    "dpo": {"learning_rate": 1.0},
    "ipo": {"learning_rate": 0.5},
    "slic": {"learning_rate": 0.2},
    "rlhf_bt": {"learning_rate": 2.0},
    "greedy_mle_nash": {},
    "pessimistic_nlhf": {},
    "online_dpo": {"learning_rate": 1.0},
    "sail_pr": {"learning_rate": 1.0},
    "sail_pp": {"learning_rate": 1.0},
    "sail_dp": {"learning_rate": 1.0},
    "sail": {"learning_rate": 1.0, "r": 0.2, "rho": 0.2, "p": 0.2, "pi": 0.2, "g": 0.2,
             "gamma": 0.3},
    "optimistic_nlhf": {"comparisons_per_round": 50},
    "nash_md": {},
    "nash_md_pg": {"learning_rate": 0.5},
    "online_ipo": {"learning_rate": 0.2},
    "ipo_md": {"learning_rate": 0.2},
    "sppo": {"learning_rate": 1.0},
    "inpo": {"learning_rate": 2.0},
    "egpo": {"learning_rate": 0.2},
    "mpo": {"learning_rate": 0.4, "period": 20},
    "comal": {"learning_rate": 2.0, "period": 20},
    "xpo": {"learning_rate": 1.0, "alpha": 0.01},
    "dno": {"learning_rate": 1.0},
}
