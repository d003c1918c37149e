"""Configuration of the online-exploration experiment (see README.md beside this file)."""

ORDER = 2
TITLE = "Batch online exploration: enhancer vs alternatives"
CLAIM = ("Optimistic equilibrium learning with the uncertainty enhancer (Ye et al. 2024, "
         "arXiv:2402.07314, Alg. 2 and Thm. 2) reaches suboptimality eps with O(eps^-2) samples "
         "(error ~ n^-1/2 or faster), Õ(d^2 / eps^2) for a d-dimensional linear preference class "
         "(so eps ~ d / sqrt(n) at most), and explores at least as well as self-play, uniform or "
         "pi_ref opponents on a game where pi_ref covers pi*_beta poorly.")

#: The game (a Bradley-Terry-linear model, built by run.make_model): prompts, responses, the
#: largest feature dimension, the dimension the true reward lives in, the reward's norm, the
#: Zipf exponent of pi_ref (responses ranked from the worst, so the best are the rarest) and
#: the seed of the features and reward.
GAME = {"num_prompts": 3, "num_responses": 30, "max_dim": 16, "true_dim": 2,
        "reward_norm": 3.0, "zipf_exponent": 2.0, "seed": 0}

#: Settings: the game, beta (Ye et al.'s eta = 1 / beta), comparisons per round, rounds, seeds
#: (vmapped), the enhancers compared at ``main_dim``, the feature dimensions of the d sweep
#: and the enhancers run there, the fit range (samples >= fit_from * final budget), and the
#: bands theory gives (stated before the runs).
QUICK = {
    "game": GAME,
    "beta": 0.1,
    "batch_size": 50,
    "rounds": 12,
    "seeds": 8,
    "enhancers": ["uncertainty", "self_play", "uniform", "reference"],
    "main_dim": 16,
    "dims": [2, 16],
    "dim_enhancers": ["uncertainty"],
    "fit_from": 1 / 8,
    "max_sample_slope": -0.5 + 0.1,
    "confidence": 0.95,
}
FULL = {**QUICK, "rounds": 40, "seeds": 16, "dims": [2, 4, 8, 16],
        "dim_enhancers": QUICK["enhancers"]}
