"""Transformers trained by DPO, online IPO, INPO, EGPO and Nash-MD against the exact pi*_beta.

The bridge environment (:func:`nlhf_theory.llm.make_bridge`) enumerates every response, so a
transformer's policy is a table and the package's certified solver gives the sequence-level
regularized Nash equilibrium ``pi*_beta`` of its game. Cells (``part``):

* ``exact``: one method trained in exact mode (:func:`nlhf_theory.llm.exact_update`: every
  expectation over pairs a finite sum, the population gradient through the transformer), Adam
  with a linearly decayed step; per recorded step the exact duality gap, ``KL(pi || pi*)``,
  ``KL(pi* || pi)``, the win rate against ``pi*``, ``KL(pi || pi_ref)`` and, for Nash-MD, the
  total-variation distance between the token-level and the sequence-level mixture of the
  current policy;
* ``sampled``: online IPO through :class:`nlhf_theory.llm.NLHFTrainer` (``transformers.Trainer``,
  pairs from ``generate``, Bernoulli labels from the exact table) from a randomly initialized
  transformer (far from ``pi*_beta``; the reference is still the fitted one), one seed per
  cell, metrics from :class:`nlhf_theory.llm.BridgeMetricsCallback`;
* ``tabular``: the tabular DPO's population limit and constant-step Nash-MD's biased fixed point
  on the same game (the bands of their checks).
"""

from __future__ import annotations

import functools
import json
import tempfile

import numpy as np
import pandas as pd
from scipy import stats

import nlhf_theory as nt
from nlhf_theory.reproduce import Check

from . import config as _config

METRIC_NAMES = ("duality_gap", "kl_to_equilibrium", "kl_from_equilibrium",
                "win_rate_vs_equilibrium", "kl_ref")


@functools.lru_cache(maxsize=2)
def _bridge(spec_json: str):
    from nlhf_theory.llm import make_bridge

    return make_bridge(**json.loads(spec_json))


def bridge_of(spec: dict):
    """The bridge of ``spec`` (built once per process)."""
    return _bridge(json.dumps(spec, sort_keys=True))


def equilibrium(bridge, beta):
    """The certified ``pi*_beta`` of the bridge's game (gap <= 1e-12)."""
    solution = nt.solve_regularized_nash(bridge.to_game(), beta)
    return np.asarray(solution.policy)


def metrics(bridge, model, star, beta) -> dict:
    """The exact metrics of ``model`` (:func:`nlhf_theory.llm.bridge_metrics`), short names."""
    from nlhf_theory.llm import bridge_metrics

    row = bridge_metrics(bridge, bridge.policy(model), star, beta)
    return {k.split("/", 1)[1]: v for k, v in row.items()}


def cells(settings):
    out = []
    for name, spec in settings["methods"].items():
        out.append({"part": "exact", "method": name, "spec": spec, "bridge": settings["bridge"],
                    "beta": settings["beta"], "learning_rate": settings["learning_rate"],
                    "steps": settings["steps"], "every": settings["every"]})
    sampled = settings["sampled"]
    for seed in range(sampled["seeds"]):
        out.append({"part": "sampled", "method": f"{sampled['recipe']} (NLHFTrainer)",
                    "sampled": sampled, "bridge": settings["bridge"], "beta": settings["beta"],
                    "seed": seed})
    out.append({"part": "tabular", "method": "tabular limits", "bridge": settings["bridge"],
                "beta": settings["beta"], "tabular_steps": settings["tabular_steps"],
                "nash_md_eta": settings["methods"]["Nash-MD (sequence mixture)"]["eta"]})
    return out


def run_exact(cell) -> pd.DataFrame:
    import torch

    from nlhf_theory.llm import exact_update

    torch.manual_seed(0)
    bridge = bridge_of(cell["bridge"])
    beta, steps, every = cell["beta"], cell["steps"], cell["every"]
    star = equilibrium(bridge, beta)
    spec = dict(cell["spec"])
    recipe = spec.pop("recipe")
    level = spec.pop("mixture_level", "sequence")
    model = bridge.reference_model().train()
    reference = bridge.reference_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=cell["learning_rate"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / steps)
    state, rows = None, []

    def record(step):
        row = {"step": step, **metrics(bridge, model, star, beta)}
        if recipe == "nash_md":
            weight = spec["eta"] * beta
            with torch.no_grad():
                token = bridge.mixture_logprobs(model, reference, weight, level="token")
                sequence = bridge.mixture_logprobs(model, reference, weight, level="sequence")
            tv = 0.5 * (token.exp() - sequence.exp()).abs().sum(-1)
            row["mixture_tv"] = float(tv.double().numpy() @ bridge.to_game().prompt_weights)
        rows.append(row)

    record(0)
    for step in range(1, steps + 1):
        state = exact_update(recipe, model, bridge, optimizer, beta=beta, state=state,
                             mixture_level=level, ref_model=reference, **spec)
        schedule.step()
        if step % every == 0 or step == 1:
            record(step)
    return pd.DataFrame(rows)


def run_sampled(cell) -> pd.DataFrame:
    import torch

    from nlhf_theory.llm import BridgeMetricsCallback, NLHFConfig, NLHFTrainer

    bridge = bridge_of(cell["bridge"])
    options = cell["sampled"]
    beta = cell["beta"]
    torch.manual_seed(cell["seed"])
    rng = np.random.default_rng(cell["seed"])
    steps, batch = options["steps"], options["batch_size"]
    prompts = rng.choice(bridge.num_prompts, size=steps * batch, p=bridge.prompt_weights)
    rows = [{"prompt_input_ids": bridge.prompt_ids[x].tolist()} for x in prompts]
    callback = BridgeMetricsCallback(bridge, beta, every=options["every"])
    with tempfile.TemporaryDirectory() as out:
        args = NLHFConfig(output_dir=out, recipe=options["recipe"], beta=beta,
                          per_device_train_batch_size=batch, max_steps=steps,
                          learning_rate=options["learning_rate"], lr_scheduler_type="linear",
                          warmup_steps=0, weight_decay=0.0, max_grad_norm=0.0,
                          logging_steps=options["every"], save_strategy="no", report_to="none",
                          use_cpu=True, disable_tqdm=True, seed=cell["seed"],
                          data_seed=cell["seed"], label_mode="bernoulli")
        model = bridge.new_model(seed=options["init_seed"]).train()  # far from pi*_beta
        trainer = NLHFTrainer(model, args, rows, bridge=bridge,
                              ref_model=bridge.reference_model(), callbacks=[callback])
        trainer.train()
    frame = pd.DataFrame(callback.history)
    frame.columns = [c.split("/", 1)[-1] for c in frame.columns]
    frame["seed"] = cell["seed"]
    return frame


def run_tabular(cell) -> pd.DataFrame:
    """Tabular limits on the bridge's game: DPO's population fixed point and constant-step
    Nash-MD's biased fixed point ``pi ∝ pi_ref exp(P pi_mix / beta)`` (mirror form, step
    ``eta`` and mixture weight ``eta beta`` as the LLM recipe)."""
    game = bridge_of(cell["bridge"]).to_game()
    frames = []
    for name, options in (("dpo", {"learning_rate": 1.0}),
                          ("nash_md", {"learning_rate": cell["nash_md_eta"]})):
        frame = nt.run(name, game, beta=cell["beta"], steps=cell["tabular_steps"], **options)
        last = frame.iloc[[0, -1]]
        frames.append(pd.DataFrame({"algorithm": name, "step": last.step.to_numpy(),
                                    "duality_gap": last.duality_gap.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def run_cell(cell) -> pd.DataFrame:
    import torch

    part = cell["part"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster and leaves the other core free
    try:
        frame = {"exact": run_exact, "sampled": run_sampled, "tabular": run_tabular}[part](cell)
    finally:
        torch.set_num_threads(threads)
    frame.insert(0, "method", cell["method"])
    frame.insert(0, "part", part)
    return frame


# Checks ------------------------------------------------------------------------------------------
def _final(frame):
    return frame[frame.step == frame.step.max()]


def checks(results, settings):
    out = []
    exact = results[results.part == "exact"]
    tabular = results[results.part == "tabular"]
    reduction = settings["reduction"]
    for name in _config.CONVERGENT:
        part = exact[exact.method == name]
        first = float(part[part.step == 0].duality_gap.iloc[0])
        last = float(_final(part).duality_gap.iloc[0])
        out.append(Check(
            f"{name}: the last iterate approaches pi*_beta (exact mode, a transformer): the "
            f"duality gap falls by {reduction:g}x in {int(part.step.max())} steps",
            f"gap {first:.3g} -> {last:.3g} ({first / last:.3g}x)",
            f">= {reduction:g}x", first / last >= reduction))

    def limit(algorithm):
        part = tabular[tabular.algorithm == algorithm]
        return float(_final(part).duality_gap.iloc[0])

    dpo_limit = limit("dpo")
    dpo = float(_final(exact[exact.method == "DPO"]).duality_gap.iloc[0])
    fraction = settings["dpo_fraction"]
    out.append(Check(
        "DPO (pairs from pi_ref) goes to its own fixed point, not pi*_beta, under the cyclic "
        "preference (Azar et al. 2023, Sec. 4): its gap stays near its tabular limit's",
        f"last gap {dpo:.3g}; tabular DPO limit {dpo_limit:.3g}",
        f">= {fraction:g} x limit and limit > 1e-3", dpo >= fraction * dpo_limit
        and dpo_limit > 1e-3))
    nash_limit = limit("nash_md")
    band = settings["nash_md_band"]
    sequence = exact[exact.method == "Nash-MD (sequence mixture)"]
    gap_sequence = float(_final(sequence).duality_gap.iloc[0])
    out.append(Check(
        "Nash-MD with a constant step eta (mixture weight eta beta, the paper's sequence-level "
        "mixture) goes to the biased fixed point pi ∝ pi_ref exp(P pi_mix / beta), not "
        "pi*_beta (Munos et al. 2023, Thm. 1 needs eta_t = 2 / (beta (t + 2))): its gap is "
        "the tabular fixed point's",
        f"last gap {gap_sequence:.3g}; tabular constant-step Nash-MD {nash_limit:.3g}",
        f"within a factor {band:g} of it", nash_limit / band <= gap_sequence
        <= nash_limit * band))
    token = exact[exact.method == "Nash-MD (token mixture)"]
    tv = float(token[token.step > 0].mixture_tv.max())
    out.append(Check(
        "TRL's per-token geometric mixture is not the paper's sequence-level mixture (Munos et "
        "al. 2023, Sec. 6) once pi_t != pi_ref: largest TV between the two along the token run",
        f"TV {tv:.3g}", "> 1e-6", tv > 1e-6))
    sampled = results[results.part == "sampled"]
    first = sampled[sampled.step == 0].duality_gap.to_numpy()
    last = _final(sampled).duality_gap.to_numpy()
    ratio = last / first
    n = ratio.size
    high = ratio.mean() + stats.t.ppf(0.5 + settings["confidence"] / 2, max(n - 1, 1)) * (
        ratio.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf)
    out.append(Check(
        "online IPO through NLHFTrainer (transformers.Trainer, generate, Bernoulli oracle "
        "labels) reduces the exact gap: its stochastic gradient is unbiased for the exact one",
        f"last / first gap {ratio.mean():.3g} (95% upper {high:.3g}, {n} seeds)", "< 1",
        bool(high < 1)))
    return out
