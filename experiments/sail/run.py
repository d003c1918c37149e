"""SAIL (Ding et al. 2024, arXiv:2406.15567) against online and offline DPO on tabular games.

Four cells (``part``), each covering every game (vmapped: the games have equal shapes):

* ``sampled``: offline DPO, online DPO and the SAIL variants trained from one offline dataset
  of ``pairs_per_prompt`` comparisons per prompt drawn from ``pi_ref`` (per seed, shared by
  every method of that seed), seeds vmapped; per step the win rate against ``pi_ref`` and
  against the held-out split's chosen responses, the implicit reward margin on the held-out
  split, the KL to ``pi_ref``, and the preference labels, generated responses and compute
  consumed so far (counted per the authors' routing, :func:`nlhf_theory.sail_slot_cost`).
* ``exact``: population (exact-mode) trajectories of the special cases and of the exact and
  implemented gradients (the authors' hook at its configuration's scale ``B x GA = 8`` and
  normalized like the loss, ``hook_scale = 1``), and SAIL-PR with the authors' argmax labels;
  rows compare pairs of trajectories (largest entry-wise difference of the policies, and
  their total-variation distance, per step).
* ``gradient``: Monte-Carlo draws of the sampled self-labelled (SAIL-PP) gradient at a fixed
  policy with coefficient ``pi = 0`` (zero mean in theory); z-scores per entry.
* ``cost``: the counted per-slot cost of every method relative to offline DPO.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

import nlhf_theory as nt
from nlhf_theory import InvalidInputError
from nlhf_theory.algorithms import float64_mode, policy_trajectories, sample_dataset
from nlhf_theory.reproduce import Check

#: The SAIL hyper-parameters of the registry's ``sail`` (route weights, coefficients).
SAIL_PARAMETERS = ("r", "rho", "p", "pi", "g", "gamma")
BASELINES = ("DPO", "online DPO")  # the registry's dpo and online_dpo


# Games -----------------------------------------------------------------------------------------
def make_game(spec: dict) -> nt.PreferenceGame:
    """The game of ``spec``: Bradley-Terry or random skew, ``pi_ref`` tilted against quality."""
    rng = np.random.default_rng(spec["seed"])
    X, Y = spec["num_prompts"], spec["num_responses"]
    if spec["kind"] == "bradley_terry":
        reward = spec["reward_scale"] * rng.standard_normal((X, Y))
        P, score = nt.bradley_terry(reward).P, reward
    else:
        P = nt.random_skew(Y, X, seed=spec["seed"]).P
        score = P.mean(-1)  # Borda win rate against the uniform policy
    score = (score - score.mean(-1, keepdims=True)) / score.std(-1, keepdims=True)
    logits = -spec["tilt"] * score + rng.standard_normal((X, Y))
    pi_ref = np.exp(logits - logits.max(-1, keepdims=True))
    return nt.PreferenceGame(P, pi_ref / pi_ref.sum(-1, keepdims=True))


# Trajectories ----------------------------------------------------------------------------------
def checkpoints(steps: int, every: int) -> np.ndarray:
    """The recorded steps: 0, 1 and the multiples of ``every`` up to ``steps``."""
    if steps % every or every < 2:
        raise InvalidInputError(f"steps: must be a multiple of every >= 2, got steps = {steps}, "
                                f"every = {every}")
    return np.r_[0, 1, np.arange(every, steps + 1, every)]


def trajectories(make, grid: dict, games, *, steps: int, every: int, seeds: int, seed: int,
                 chunk: int = 500) -> np.ndarray:
    """Policies of ``make(hp)`` at :func:`checkpoints`, for every game, setting and seed.

    :func:`~nlhf_theory.algorithms.policy_trajectories` over the (game, setting) pairs: the
    keys are those of :func:`nlhf_theory.run`, so these are the trajectories behind its
    metrics. ``chunk``: updates per compiled segment (each holds every step's policies).

    Returns:
      Array (games, settings, seeds, checkpoints, X, Y); one setting when ``grid`` is empty.
    """
    settings = len(next(iter(grid.values()))) if grid else 1
    policies = policy_trajectories(
        make, [game for game in games for _ in range(settings)],
        {k: np.tile(np.asarray(v, dtype=np.float64), len(games)) for k, v in grid.items()},
        checkpoints=checkpoints(steps, every), seeds=seeds, seed=seed, chunk=chunk)
    return policies.reshape(len(games), settings, *policies.shape[1:])


def sail_grid(variants: dict) -> dict:
    """``{name: [values]}`` of the SAIL hyper-parameters, one entry per variant (0 if unset)."""
    return {k: [float(v.get(k, 0.0)) for v in variants.values()] for k in SAIL_PARAMETERS}


def sail_maker(cell, **options):
    """``make(hp)`` of the registry's ``sail`` with the cell's beta and learning rate."""
    return lambda hp: nt.ALGORITHMS["sail"](cell["beta"], cell["learning_rate"], **hp,
                                            **options)


def baseline_maker(name, cell, **options):
    """``make(hp)`` of a registry baseline (``hp`` unused: no sweep)."""
    return lambda hp: nt.ALGORITHMS[name](cell["beta"], cell["learning_rate"], **options)


def policy_metrics(game, policies) -> dict:
    """Win rate against ``pi_ref`` and KL to ``pi_ref`` of (..., X, Y) policies:
    :func:`nlhf_theory.win_rate` and :func:`nlhf_theory.kl_to_ref`, vmapped in float64."""
    policies = np.asarray(policies)
    flat = policies.reshape((-1,) + game.pi_ref.shape)
    with float64_mode():
        win = jax.vmap(lambda p: nt.win_rate(game, p, game.pi_ref))(flat)
        kl = jax.vmap(lambda p: nt.kl_to_ref(game, p))(flat)
    shape = policies.shape[:-2]
    return {"win_rate_ref": np.asarray(win).reshape(shape),
            "kl_ref": np.asarray(kl).reshape(shape)}


def tv_distance(game, a, b):
    """``E_x TV(a(.|x), b(.|x))`` of (..., X, Y) policies."""
    return 0.5 * np.abs(a - b).sum(-1) @ game.prompt_weights


def comparison_rows(game, name, steps, a, b) -> pd.DataFrame:
    """Per recorded step, the largest |a - b| over seeds and entries and the mean TV distance
    of (seeds, checkpoints, X, Y) trajectories."""
    return pd.DataFrame({"kind": "comparison", "method": name, "step": steps,
                         "max_abs_diff": np.abs(a - b).max(axis=(0, 2, 3)),
                         "tv": tv_distance(game, a, b).mean(0)})


#: Sampled-mode SAIL-PR with the authors' deterministic (argmax) oracle labels.
ARGMAX_PR = "SAIL-PR (argmax labels)"


def route_weights(method, variants):
    """Route weights ``(r, p, g)`` of a method (online DPO: ``g = 1``)."""
    if method == "online DPO":
        return (0.0, 0.0, 1.0)
    spec = variants.get("SAIL-PR" if method == ARGMAX_PR else method, {})
    return tuple(float(spec.get(k, 0.0)) for k in ("r", "p", "g"))


# Sampled comparison ----------------------------------------------------------------------------
def heldout_split(game, cell):
    """Per seed, ``heldout_pairs`` comparisons from ``pi_ref``: arrays (seeds, n)."""
    with float64_mode():
        keys = jax.random.split(jax.random.key(cell["heldout_seed"]), cell["seeds"])
        data = jax.vmap(lambda k: sample_dataset(game, k, cell["heldout_pairs"]))(keys)
    return [np.asarray(a) for a in data]


def consumption(weights, cell, game, steps):
    """Preference labels, generated responses and compute used by ``steps`` updates, counted
    per the authors' routing (one slot per pair; the offline dataset has one pair per slot)."""
    cost = nt.sail_slot_cost(*weights)
    slots = cell["pairs_per_prompt"] * game.num_prompts
    offline = slots if cost.dataset_labels > 0 else 0
    return {"labels": offline + steps * slots * cost.oracle_labels,
            "generated": steps * slots * cost.generated,
            "compute": steps * slots * cost.total}


def run_sampled(games, cell) -> pd.DataFrame:
    """Every method from the offline data of each seed (one dataset per seed and game)."""
    sampled = {"mode": "sampled", "pairs_per_prompt": cell["pairs_per_prompt"]}
    offline = {"num_pairs": cell["pairs_per_prompt"] * games[0].num_prompts}
    run = {k: cell[k] for k in ("steps", "every", "seeds", "seed")}
    variants = {**cell["variants"], "SAIL, all route weights 0": {}}
    policies = {
        "DPO": trajectories(baseline_maker("dpo", cell, mode="sampled", **offline), {}, games,
                            **run)[:, 0],
        "online DPO": trajectories(baseline_maker("online_dpo", cell, **sampled), {}, games,
                                   **run)[:, 0],
        **dict(zip(variants, np.moveaxis(trajectories(
            sail_maker(cell, **sampled, **offline), sail_grid(variants), games, **run), 1, 0))),
        ARGMAX_PR: trajectories(
            sail_maker(cell, **sampled, **offline, labels="argmax"),
            sail_grid({"SAIL-PR": cell["variants"]["SAIL-PR"]}), games, **run)[:, 0],
    }
    steps = checkpoints(cell["steps"], cell["every"])
    frames = []
    for index, (label, game) in enumerate(zip(cell["games"], games)):
        heldout = heldout_split(game, cell)
        chosen = nt.empirical_chosen_policy(*heldout, game.num_prompts, game.num_responses)
        for method, pols in policies.items():
            pols = pols[index]  # (seeds, checkpoints, X, Y)
            metrics = policy_metrics(game, pols)
            metrics["win_rate_chosen"] = nt.win_rate_vs_chosen(
                game.P, pols, chosen[:, None], game.prompt_weights)
            metrics["reward_margin"] = nt.implicit_reward_margin(
                pols, game.pi_ref, cell["beta"], *(a[:, None] for a in heldout))
            used = consumption(route_weights(method, cell["variants"]), cell, game, steps)
            seeds = pols.shape[0]
            frames.append(pd.DataFrame({
                "kind": "trajectory", "game": label, "method": method,
                "seed": np.repeat(np.arange(seeds), steps.size), "step": np.tile(steps, seeds),
                **{k: np.tile(v, seeds) for k, v in used.items()},
                **{k: v.reshape(-1) for k, v in metrics.items()}}))
        frames.append(comparison_rows(game, "SAIL, all route weights 0 vs DPO", steps,
                                      policies["SAIL, all route weights 0"][index],
                                      policies["DPO"][index]).assign(game=label))
    return pd.concat(frames, ignore_index=True)


# Exact-mode trajectories -----------------------------------------------------------------------
#: Exact-mode settings beyond the variants: the special cases the authors' code implies (the
#: paper: SAIL generalizes prior online RLHF methods as special cases).
SPECIAL = {
    "SAIL, all route weights 0": {"rho": 0.2, "pi": 0.2, "gamma": 0.3},
    "SAIL-PR, gamma = 0, g = 1": {"g": 1.0},
    "SAIL-PP, pi = 0, p = 0.3": {"p": 0.3},
    "SAIL-PR, gamma = 0, g = 0.3": {"g": 0.3},
}
#: Variants with a response-distribution term (the gradient hook), run in both variants.
HOOKED = ("SAIL-PR", "SAIL-PP", "SAIL (mixture)")


def exact_trajectories(games, cell) -> dict:
    """``(method, variant) -> (games, 1, checkpoints, X, Y)`` exact-mode trajectories."""
    run = {"steps": cell["exact_steps"], "every": cell["exact_every"], "seeds": 1, "seed": 0,
           "chunk": cell["exact_steps"]}  # one compiled segment (one seed: small)
    settings = {**cell["variants"], **SPECIAL}
    hooked = {k: cell["variants"][k] for k in HOOKED}
    pr = sail_grid({"SAIL-PR": cell["variants"]["SAIL-PR"]})
    exact = trajectories(sail_maker(cell, variant="exact"), sail_grid(settings), games, **run)
    implemented = trajectories(sail_maker(cell, variant="implemented"), sail_grid(hooked),
                               games, **run)
    normalized = trajectories(sail_maker(cell, variant="implemented", hook_scale=1.0), pr,
                              games, **run)
    argmax = trajectories(sail_maker(cell, variant="exact", labels="argmax"), pr, games, **run)
    lr, p = cell["learning_rate"], SPECIAL["SAIL-PP, pi = 0, p = 0.3"]["p"]
    dpo = trajectories(lambda hp: nt.ALGORITHMS["dpo"](cell["beta"], hp["learning_rate"]),
                       {"learning_rate": [lr, (1.0 - p) * lr]}, games, **run)
    online = trajectories(baseline_maker("online_dpo", cell), {}, games, **run)
    return {**{(k, "exact"): exact[:, i] for i, k in enumerate(settings)},
            **{(k, "implemented"): implemented[:, i] for i, k in enumerate(hooked)},
            ("DPO", "exact"): dpo[:, 0], ("DPO at 0.7 lr", "exact"): dpo[:, 1],
            ("online DPO", "exact"): online[:, 0],
            ("SAIL-PR", "implemented, hook_scale = 1"): normalized[:, 0],
            ("SAIL-PR, argmax labels", "exact"): argmax[:, 0]}


def run_exact(games, cell) -> pd.DataFrame:
    named = exact_trajectories(games, cell)
    steps = checkpoints(cell["exact_steps"], cell["exact_every"])
    exact, hook = "exact", "implemented"
    pairs = {  # name -> the two (method, variant) trajectories compared
        "SAIL, all route weights 0 vs DPO": (("SAIL, all route weights 0", exact), ("DPO", exact)),
        "SAIL-PR, gamma = 0, g = 1 vs online DPO": (("SAIL-PR, gamma = 0, g = 1", exact),
                                                    ("online DPO", exact)),
        "SAIL-PP, pi = 0, p = 0.3 vs DPO at 0.7 lr": (("SAIL-PP, pi = 0, p = 0.3", exact),
                                                      ("DPO at 0.7 lr", exact)),
        "SAIL-PP vs DPO at 0.7 lr": (("SAIL-PP", exact), ("DPO at 0.7 lr", exact)),
        "SAIL-PR exact vs gamma = 0": (("SAIL-PR", exact), ("SAIL-PR, gamma = 0, g = 0.3", exact)),
        "SAIL-PR implemented vs gamma = 0": (("SAIL-PR", hook),
                                             ("SAIL-PR, gamma = 0, g = 0.3", exact)),
        **{f"{k} exact vs implemented": ((k, exact), (k, hook)) for k in HOOKED},
        "SAIL-PR implemented: hook_scale 8 vs 1": (("SAIL-PR", hook),
                                                   ("SAIL-PR", "implemented, hook_scale = 1")),
        "SAIL-PR: argmax vs Bernoulli labels": (("SAIL-PR, argmax labels", exact),
                                                ("SAIL-PR", exact)),
    }
    frames = []
    for index, (label, game) in enumerate(zip(cell["games"], games)):
        for name, (first, second) in pairs.items():
            frames.append(comparison_rows(game, name, steps, named[first][index],
                                          named[second][index]).assign(game=label))
        for (method, variant), pols in named.items():
            pols = pols[index, 0]
            change = np.r_[np.nan, np.abs(np.diff(pols, axis=0)).max(axis=(1, 2))
                           / np.diff(steps)]
            frames.append(pd.DataFrame({"kind": "exact", "game": label, "method": method,
                                        "variant": variant, "step": steps,
                                        "change_per_step": change,
                                        **policy_metrics(game, pols)}))
    return pd.concat(frames, ignore_index=True)


# Self-labelled gradient ------------------------------------------------------------------------
def self_labelled_gradients(games, cell) -> np.ndarray:
    """Draws of the sampled SAIL-PP (p = 1, pi = 0) gradient at a fixed policy, per game.

    The policy is ``softmax(log pi_ref + N(0, 1))`` (seed ``cell['seed']``). The gradient is
    that of the registry's surrogate :func:`~nlhf_theory.algorithms.sail_objective`
    (the direction of the ``sail_pp`` update).

    Returns:
      Array (games, draws, X, Y).
    """
    rng = np.random.default_rng(cell["seed"])
    thetas = []
    for game in games:
        theta = np.log(game.pi_ref) + rng.standard_normal(game.pi_ref.shape)
        thetas.append(theta - np.log(np.exp(theta).sum(-1, keepdims=True)))
    with float64_mode():
        keys = jax.random.split(jax.random.key(cell["seed"]), cell["gradient_draws"])
        data = sample_dataset(games[0].astype(np.float64), jax.random.key(0), 1)

        def gradient(theta, game, key):
            return jax.grad(nt.algorithms.sail_objective)(
                theta, game, data, key, beta=cell["beta"], weights=(0.0, 1.0, 0.0),
                coefficients=(0.0, 0.0, 0.0), variant="exact", mode="sampled",
                batch_size=cell["pairs_per_prompt"])

        draws = jax.vmap(gradient, in_axes=(None, None, 0))
        per_game = jax.jit(jax.vmap(draws, in_axes=(0, 0, None)))
        return np.asarray(per_game(jnp.asarray(np.stack(thetas)), nt.stack_games(games), keys))


def run_gradient(games, cell) -> pd.DataFrame:
    """Per entry: Monte-Carlo mean and standard error of the sampled gradient and its z-score
    against 0. Entries whose spread over draws is below float64 round-off
    (``se <= 1e-12 max |draw|``: responses never drawn, whose gradient is a cancellation
    residue) get ``resolved = False`` and z = 0."""
    draws = self_labelled_gradients(games, cell)
    frames = []
    for g, label in enumerate(cell["games"]):
        sample = draws[g].reshape(cell["gradient_draws"], -1)
        mean = sample.mean(0)
        se = sample.std(0, ddof=1) / np.sqrt(sample.shape[0])
        resolved = se > 1e-12 * np.abs(sample).max()
        z = np.divide(mean, se, out=np.zeros_like(mean), where=resolved)
        frames.append(pd.DataFrame({"kind": "gradient", "game": label,
                                    "entry": np.arange(mean.size), "mean": mean, "se": se,
                                    "z": z, "resolved": resolved}))
    return pd.concat(frames, ignore_index=True)


# Cost ------------------------------------------------------------------------------------------
def run_cost(games, cell) -> pd.DataFrame:
    """Counted cost of one training slot of each method, relative to offline DPO."""
    methods = [*BASELINES, *cell["variants"]]
    dpo_slot = nt.sail_slot_cost().total
    rows = []
    for method in methods:
        weights = route_weights(method, cell["variants"])
        cost = nt.sail_slot_cost(*weights)
        online = sum(weights)
        rows.append({"kind": "cost", "method": method, **dict(zip("rpg", weights)),
                     **cost._asdict(), "overhead_per_update": cost.total / dpo_slot,
                     # the code runs 1 / (1 - r - p - g) times DPO's epochs (none for g = 1)
                     "updates_factor": 1.0 / (1.0 - online) if online < 1 else np.nan})
    frame = pd.DataFrame(rows)
    frame["overhead_per_run"] = frame.overhead_per_update * frame.updates_factor
    return frame


# Cells -----------------------------------------------------------------------------------------
PARTS = {"sampled": run_sampled, "exact": run_exact, "gradient": run_gradient, "cost": run_cost}
COMMON = ("beta", "learning_rate", "pairs_per_prompt", "variants")
KEYS = {"sampled": ("heldout_pairs", "steps", "every", "seeds", "seed", "heldout_seed"),
        "exact": ("exact_steps", "exact_every"), "gradient": ("gradient_draws", "seed"),
        "cost": ()}


def cells(settings: dict) -> list[dict]:
    """One cell per part; every part covers all the games (vmapped: equal shapes)."""
    return [{"part": part, "games": list(settings["games"]),
             "specs": list(settings["games"].values()),
             **{k: settings[k] for k in (*COMMON, *keys)}} for part, keys in KEYS.items()]


def run_cell(cell: dict) -> pd.DataFrame:
    return PARTS[cell["part"]]([make_game(spec) for spec in cell["specs"]], cell)


# Checks ----------------------------------------------------------------------------------------
def final_gain(results, game, method, confidence):
    """Paired (per seed) final win-rate gain of ``method`` over DPO: mean and t interval."""
    part = results[(results.kind == "trajectory") & (results.game == game)]
    part = part[part.step == part.step.max()]
    dpo = part[part.method == "DPO"].set_index("seed").win_rate_ref
    gain = part[part.method == method].set_index("seed").win_rate_ref - dpo
    half = (stats.t.ppf(0.5 + confidence / 2, gain.size - 1) * gain.std(ddof=1)
            / np.sqrt(gain.size))
    return gain.mean(), gain.mean() - half, gain.mean() + half


def comparison(results, game, name, part, step=None) -> float:
    """Largest entry-wise difference of the compared trajectories (at ``step`` if given)."""
    rows = results[(results.kind == "comparison") & (results.game == game)
                   & (results.method == name) & (results.part == part)]
    if step is not None:
        rows = rows[rows.step == step]
    if rows.empty:
        raise KeyError(f"no comparison {name!r} for {game!r} in part {part!r}")
    return float(rows.max_abs_diff.max())


#: Exact special cases: (claim, comparison, part, step or None for the whole trajectory).
SPECIAL_CHECKS = [
    ("SAIL with all route weights 0 is offline DPO (authors' code), exact mode",
     "SAIL, all route weights 0 vs DPO", "exact", None),
    ("SAIL with all route weights 0 is offline DPO, sampled mode (same data and keys)",
     "SAIL, all route weights 0 vs DPO", "sampled", None),
    ("SAIL-PR with gamma = 0, g = 1 is online DPO (authors' code), exact mode",
     "SAIL-PR, gamma = 0, g = 1 vs online DPO", "exact", None),
    ("self-labelled pairs with pi = 0 have zero expected effect: SAIL-PP (p = 0.3, pi = 0) is "
     "offline DPO with the step scaled by 1 - p",
     "SAIL-PP, pi = 0, p = 0.3 vs DPO at 0.7 lr", "exact", None),
    ("at pi_ref the exact response term E[l S] vanishes (l = -log 2 for every pair, "
     "E_pi grad log pi = 0): first SAIL-PR step equals gamma = 0's",
     "SAIL-PR exact vs gamma = 0", "exact", 1),
]


#: For a special case, the comparison with its coefficient switched on (what it rules out).
CONTRASTS = {
    "SAIL-PP, pi = 0, p = 0.3 vs DPO at 0.7 lr": ("with pi = 0.2",
                                                  "SAIL-PP vs DPO at 0.7 lr"),
}


def checks(results: pd.DataFrame, settings: dict) -> list[Check]:
    tol, confidence = settings["special_case_tol"], settings["confidence"]
    out = []
    for game in settings["games"]:
        for claim, name, part, step in SPECIAL_CHECKS:
            worst = comparison(results, game, name, part, step)
            measured = f"max |pi - pi'| = {worst:.1e}"
            if name in CONTRASTS:  # the same comparison with the coefficient switched on
                measured += (f" ({CONTRASTS[name][0]}: "
                             f"{comparison(results, game, CONTRASTS[name][1], part, step):.1e})")
            out.append(Check(f"{game}: {claim}", measured, f"<= {tol:g} (float64 round-off)",
                             worst <= tol))
        hook = comparison(results, game, "SAIL-PR implemented vs gamma = 0", "exact", 1)
        out.append(Check(
            f"{game}: the authors' hook (c l / log pi) does not vanish at pi_ref (its weight "
            "varies with log pi(y)): first implemented SAIL-PR step differs from gamma = 0's",
            f"max |pi - pi'| = {hook:.1e}", f"> {tol:g}", hook > tol))
        gradient = results[(results.kind == "gradient") & (results.game == game)]
        resolved = gradient[gradient.resolved.astype(bool)]
        level = settings["family_level"]
        bound = stats.norm.ppf(1 - level / (2 * len(resolved)))
        out.append(Check(
            f"{game}: sampled self-labelled (SAIL-PP, p = 1) gradient with pi = 0 has mean zero "
            f"at a generic policy ({settings['gradient_draws']} draws, {len(resolved)} "
            "resolved entries)", f"max |z| = {resolved.z.abs().max():.2f}",
            f"<= {bound:.2f} (Bonferroni, family level {level:g})",
            resolved.z.abs().max() <= bound))
        for method in ("online DPO", "SAIL-PR"):
            mean, low, high = final_gain(results, game, method, confidence)
            out.append(Check(
                f"{game}: {method} beats offline DPO in final win rate vs pi_ref when the data "
                "covers poorly (paper: win-rate gains up to 11.6 points)",
                f"gain {100 * mean:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]",
                f"> 0 ({100 * confidence:g}% interval over seeds above 0)", low > 0))
    cost = results[results.kind == "cost"].set_index("method").overhead_per_update
    out.append(Check("SAIL-DP generates nothing: per-update overhead vs DPO is 1 (counted "
                     "forward, backward passes and generations per slot)",
                     f"{cost['SAIL-DP']:.3f}", "1 (+- 1e-12)", abs(cost["SAIL-DP"] - 1) <= 1e-12))
    out.append(Check("SAIL-PR and SAIL-PP generate responses: per-update overhead vs DPO > 1",
                     f"PR {cost['SAIL-PR']:.3f}, PP {cost['SAIL-PP']:.3f}", "> 1",
                     cost["SAIL-PR"] > 1 and cost["SAIL-PP"] > 1))
    return out
