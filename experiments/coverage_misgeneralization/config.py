"""Configuration of the coverage / misgeneralization experiment (see README.md beside this file)."""

ORDER = 7
TITLE = "Coverage, misgeneralization and the policy gap"
CLAIM = ("A Bradley-Terry MAP reward fitted on comparisons that cover only a fraction kappa of "
         "the prompts and the top-k responses under pi_ref is accurate in distribution but not "
         "out of it, more so as coverage shrinks; the exact gap Delta J(beta) = J(pi*_beta) - "
         "J(pi_beta) of the KL-regularized policy falls as beta grows, and a pessimistic (lower "
         "confidence bound) reward reduces it under partial coverage (Chaudhari et al. 2024, "
         "arXiv:2404.08555, Sec. 5-6.2; Zhu, Jiao & Jordan 2023, arXiv:2301.11270, Sec. 3).")

#: Instances (one per seed, vectorized): X prompts, Y responses, a Zipf pi_ref(y | x) ~
#: 1 / (rank + 1)^zipf in a random order per prompt, features phi(x, y) = [m_x * g(x, y),
#: q(x, y) h(x, y)] with g, h standard normal, m_x a mask of ``active`` of ``dim`` topic
#: features per prompt and q = rank / (Y - 1) scaling ``rare`` features (traits of responses
#: pi_ref seldom produces), gold reward r* = theta* . phi with theta* ~ N(0, I) (realizable).
#: Data: ``num_pairs`` comparisons on the first ceil(kappa X) prompts (uniformly), both
#: responses drawn from pi_ref restricted to its ``top_k`` responses. Reward: BT MAP (prior
#: precision ``ridge``), and its lower confidence bound with ``confidence`` Laplace-posterior
#: standard deviations of r(x, y) - E_ref r(x, .).
#: ``asymptote_band``: the band on Delta J / (E_x Var_ref(r_hat - r*) / (2 beta)) at the
#: largest beta (first-order expansion in 1/beta).
QUICK = {
    "num_prompts": 40,
    "num_responses": 20,
    "dim": 12,
    "active": 3,
    "rare": 4,
    "zipf": 1.0,
    "top_k": 5,
    "num_pairs": 500,
    "kappas": [0.1, 0.25, 0.5, 1.0],
    "ridge": 0.01,
    "confidence": 1.0,
    "newton_steps": 25,
    "seeds": 8,
    "log10_beta": (-2.0, 2.0, 17),
    "asymptote_band": 0.1,
}
FULL = {**QUICK, "kappas": [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0], "seeds": 32,
        "log10_beta": (-2.0, 2.0, 33)}
