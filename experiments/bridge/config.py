"""Configuration of the bridge experiment (see README.md beside this file)."""

ORDER = 8
TITLE = "Transformers against the exact equilibrium over token sequences"
CLAIM = ("On the bridge (all length-2 sequences over 3 tokens, a cyclic preference, a fitted "
         "2-layer Llama-shaped reference), a transformer trained by online IPO (Calandriello et "
         "al. 2024, arXiv:2403.08635), INPO (Zhang et al. 2024, arXiv:2407.00617) or EGPO (Zhou "
         "et al. 2025, arXiv:2503.08942) approaches the certified regularized Nash equilibrium "
         "pi*_beta over sequences (duality gap cut 100x); DPO (Rafailov et al. 2023) goes to its "
         "own fixed point, which is not pi*_beta under an intransitive preference (Azar et al. "
         "2023, arXiv:2310.12036, Sec. 4); Nash-MD with a constant step (Munos et al. 2023, "
         "arXiv:2312.00886) goes to its biased fixed point; TRL's per-token mixture is a "
         "different opponent from the paper's sequence-level one; the sampled "
         "transformers.Trainer path reduces the exact gap too.")

#: The bridge environment (nlhf_theory.llm.make_bridge arguments).
BRIDGE = {"vocab_size": 3, "length": 2, "num_prompts": 2, "preference": "cyclic", "seed": 0,
          "architecture": "llama", "hidden_size": 16, "num_layers": 2, "fit_steps": 100,
          "skew": 2.0}

#: Methods trained in exact mode (population gradients through the transformer), each a
#: recipe of nlhf_theory.llm.RECIPES with its hyper-parameters; Nash-MD's mixture weight
#: defaults to eta * beta (Munos et al.'s Nash-MD step), at the sequence or the token level.
METHODS = {
    "DPO": {"recipe": "dpo"},
    "online IPO": {"recipe": "online_ipo"},
    "INPO": {"recipe": "inpo", "eta": 1.0},
    "EGPO": {"recipe": "egpo"},
    "Nash-MD (sequence mixture)": {"recipe": "nash_md", "eta": 1.0,
                                   "mixture_level": "sequence"},
    "Nash-MD (token mixture)": {"recipe": "nash_md", "eta": 1.0, "mixture_level": "token"},
}
#: The methods whose last iterate theory sends to pi*_beta (the 100x check). Nash-MD with a
#: constant step goes to a biased fixed point instead (its own check).
CONVERGENT = ("online IPO", "INPO", "EGPO")

QUICK = {
    "bridge": BRIDGE,
    "methods": METHODS,
    # beta: the tabular mirror-descent step contracts the gap by 1 - eta beta with
    # eta beta <= beta^2 / (beta^2 + 1/4) (INPO's step; docs/algorithms.md), i.e. 0.038 at
    # beta = 0.1 (a hundred steps per 100x) and 0.5 at beta = 0.5: a few dozen steps suffice.
    "beta": 0.5,
    "learning_rate": 0.01,  # Adam, decayed linearly to 0 over the run
    "steps": 200,
    "every": 10,
    "reduction": 100.0,  # the claim: gap(T) <= gap(0) / 100 for the convergent methods
    "dpo_fraction": 0.5,  # DPO's last gap >= this fraction of its tabular limit's gap
    "nash_md_band": 2.0,  # Nash-MD's last gap within this factor of its tabular fixed point
    "tabular_steps": 20000,  # tabular DPO (exact) to its limit, for DPO's band
    "sampled": {"recipe": "online_ipo", "seeds": 3, "steps": 30, "batch_size": 16,
                "learning_rate": 0.003, "every": 10, "init_seed": 1},
    "confidence": 0.95,
}
FULL = {**QUICK, "steps": 400, "every": 10,
        "sampled": {**QUICK["sampled"], "seeds": 8, "steps": 200, "every": 20}}
