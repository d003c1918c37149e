"""Preference-learning algorithms as pure ``init``/``update`` pairs, and the ``run`` driver."""

import itertools

import numpy as np

from nlhf_theory._arrays import float64_mode
from nlhf_theory.algorithms._base import Algorithm, PolicyState
from nlhf_theory.algorithms._defaults import (
    DEFAULT_RULES,
    PAYOFF_BOUND,
    anchor_period,
    hedge_step,
    magnet_period,
    magnetic_step,
    mirror_step,
)
from nlhf_theory.algorithms._equilibrium_learning import (
    greedy_mle_nash,
    optimistic_nlhf,
    pessimistic_nlhf,
)
from nlhf_theory.algorithms._mirror import comal, dno, inpo, mpo, nash_md, sppo
from nlhf_theory.algorithms._offline import dpo, ipo, rlhf_bt, slic
from nlhf_theory.algorithms._pairwise import egpo, ipo_md, online_dpo, online_ipo
from nlhf_theory.algorithms._pessimism import PessimismResult, pessimistic_policy
from nlhf_theory.algorithms._policy_gradient import nash_md_pg, xpo
from nlhf_theory.algorithms._run import (
    METRICS,
    make_algorithm,
    policy_trajectories,
    run_algorithm,
    run_sweep,
)
from nlhf_theory.algorithms._sail import sail, sail_dp, sail_objective, sail_pp, sail_pr
from nlhf_theory.algorithms._targets import KINDS as TARGET_KINDS
from nlhf_theory.algorithms._targets import Target, bradley_terry_reward
from nlhf_theory.algorithms._uncertainty import linear_uncertainty, uncertainty_ratio
from nlhf_theory.data import Dataset, sample_dataset, win_rates
from nlhf_theory.estimation import (
    coverage_coefficient,
    expected_counts,
    linear_coverage_coefficient,
)
from nlhf_theory.validation import InvalidInputError

#: Registry of the algorithms by snake_case name (factories of :class:`Algorithm`).
ALGORITHMS = {
    "dpo": dpo,
    "ipo": ipo,
    "slic": slic,
    "rlhf_bt": rlhf_bt,
    "greedy_mle_nash": greedy_mle_nash,
    "pessimistic_nlhf": pessimistic_nlhf,
    "optimistic_nlhf": optimistic_nlhf,
    "nash_md": nash_md,
    "nash_md_pg": nash_md_pg,
    "inpo": inpo,
    "sppo": sppo,
    "dno": dno,
    "mpo": mpo,
    "comal": comal,
    "online_dpo": online_dpo,
    "online_ipo": online_ipo,
    "ipo_md": ipo_md,
    "egpo": egpo,
    "xpo": xpo,
    "sail_pr": sail_pr,
    "sail_pp": sail_pp,
    "sail_dp": sail_dp,
    "sail": sail,
}


def run(name, game, *, beta, steps, mode="exact", seeds=1, seed=0, sweep=None,
        **hyperparameters):
    """Run the registered algorithm ``name`` on ``game`` and return its metrics per step.

    Args:
      name: a key of :data:`ALGORITHMS`.
      game: a :class:`~nlhf_theory.PreferenceGame`.
      beta: KL coefficient > 0 (passed to the algorithm when it takes one; always used for the
        metrics).
      steps: number of updates.
      mode: ``"exact"`` (population expectations) or ``"sampled"`` (oracle batches).
      seeds: number of independent runs, vmapped.
      seed: base PRNG seed.
      sweep: optional dict ``name -> list of values`` of real-valued hyper-parameters; every
        combination (their Cartesian product) runs in the same vmapped computation as the
        seeds, and the DataFrame gets one column per swept name.
      **hyperparameters: the algorithm's other arguments (e.g. ``learning_rate``).

    Returns:
      A pandas DataFrame with columns ``step, seed``, the swept hyper-parameters, and
      ``duality_gap, suboptimality, exploitability, kl_ref, win_rate_ref, win_rate_nash``.

    Example:
      >>> import nlhf_theory as nt
      >>> df = nt.run("inpo", nt.make_game("comal_cyclic"), beta=0.1, steps=300,
      ...             learning_rate=1.0)
      >>> bool(df.duality_gap.iloc[-1] < 1e-10)
      True
    """
    if not sweep:
        algorithm = make_algorithm(ALGORITHMS, name, beta, mode, hyperparameters)
        return run_algorithm(algorithm, game, beta=beta, steps=steps, seeds=seeds, seed=seed)
    names = list(sweep)
    overlap = [k for k in names if k in hyperparameters or k in ("beta", "mode")]
    if overlap:
        raise InvalidInputError(f"sweep: {overlap[0]!r} is also given as a fixed argument")
    values = [np.asarray(sweep[k], dtype=np.float64).reshape(-1) for k in names]
    combos = [dict(zip(names, c)) for c in itertools.product(*[v.tolist() for v in values])]
    for combo in combos:  # every setting is checked concretely before the traced run
        make_algorithm(ALGORITHMS, name, beta, mode, {**hyperparameters, **combo})
    grid = {k: np.array([c[k] for c in combos]) for k in names}
    return run_sweep(lambda hp: make_algorithm(ALGORITHMS, name, beta, mode,
                                               {**hyperparameters, **hp}),
                     grid, game, beta=beta, steps=steps, seeds=seeds, seed=seed)


__all__ = [
    "ALGORITHMS",
    "DEFAULT_RULES",
    "PAYOFF_BOUND",
    "anchor_period",
    "hedge_step",
    "magnet_period",
    "magnetic_step",
    "mirror_step",
    "METRICS",
    "Algorithm",
    "Dataset",
    "PessimismResult",
    "PolicyState",
    "TARGET_KINDS",
    "Target",
    "bradley_terry_reward",
    "comal",
    "coverage_coefficient",
    "dno",
    "dpo",
    "egpo",
    "expected_counts",
    "float64_mode",
    "greedy_mle_nash",
    "inpo",
    "ipo",
    "ipo_md",
    "linear_coverage_coefficient",
    "linear_uncertainty",
    "make_algorithm",
    "mpo",
    "nash_md",
    "nash_md_pg",
    "online_dpo",
    "online_ipo",
    "optimistic_nlhf",
    "pessimistic_nlhf",
    "pessimistic_policy",
    "policy_trajectories",
    "rlhf_bt",
    "run",
    "run_algorithm",
    "run_sweep",
    "sail",
    "sail_dp",
    "sail_pp",
    "sail_objective",
    "sail_pr",
    "sample_dataset",
    "slic",
    "sppo",
    "uncertainty_ratio",
    "win_rates",
    "xpo",
]
