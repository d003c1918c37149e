"""CI subset of experiments/bridge: cells, a short exact run, the checks' logic."""

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlhf_theory.reproduce import load_experiment  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one torch thread is faster (no spinning on 2 shared cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def experiment():
    return load_experiment("bridge")


def test_cells_cover_every_method_and_are_json(experiment):
    settings = experiment.config.QUICK
    cells = experiment.run.cells(settings)
    exact = [c["method"] for c in cells if c["part"] == "exact"]
    assert exact == list(settings["methods"])
    assert {"DPO", "online IPO", "INPO", "EGPO", "Nash-MD (sequence mixture)",
            "Nash-MD (token mixture)"} <= set(exact)
    assert sum(c["part"] == "sampled" for c in cells) == settings["sampled"]["seeds"]
    assert sum(c["part"] == "tabular" for c in cells) == 1
    for cell in cells:
        json.dumps(cell)
    assert set(experiment.config.CONVERGENT) <= set(settings["methods"])


def test_short_exact_run_starts_at_pi_ref_and_moves_toward_pi_star(experiment):
    settings = experiment.config.QUICK
    cell = {"part": "exact", "method": "EGPO", "spec": settings["methods"]["EGPO"],
            "bridge": settings["bridge"], "beta": settings["beta"],
            "learning_rate": settings["learning_rate"], "steps": 20, "every": 10}
    frame = experiment.run.run_cell(cell)
    assert list(frame.step) == [0, 1, 10, 20]
    bridge = experiment.run.bridge_of(settings["bridge"])
    import nlhf_theory as nt

    game = bridge.to_game()
    assert frame.duality_gap.iloc[0] == pytest.approx(
        float(nt.duality_gap(game, game.pi_ref, settings["beta"])), rel=1e-9)
    assert frame.kl_ref.iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert frame.duality_gap.iloc[-1] < frame.duality_gap.iloc[0]


def synthetic(settings, factor=1e-3, dpo=0.05, limit=0.06, nash=1e-4, tv=1e-3, sampled=0.5):
    """A results frame with chosen outcomes (checks' logic only)."""
    rows = []
    for method in settings["methods"]:
        last = {"DPO": dpo, "Nash-MD (sequence mixture)": nash}.get(method, 0.01 * factor)
        for step, gap in ((0, 0.01), (settings["steps"], last)):
            rows.append({"part": "exact", "method": method, "step": step, "duality_gap": gap,
                         "mixture_tv": 0.0 if step == 0 else tv})
    for algorithm, g in (("dpo", limit), ("nash_md", 1.5e-4)):
        rows += [{"part": "tabular", "method": "tabular limits", "algorithm": algorithm,
                  "step": s, "duality_gap": v} for s, v in ((0, 0.01), (1000, g))]
    for seed in range(3):
        for step, gap in ((0, 0.01), (30, 0.01 * sampled * (1 + 0.01 * seed))):
            rows.append({"part": "sampled", "method": "online_ipo (NLHFTrainer)", "step": step,
                         "duality_gap": gap, "seed": seed})
    return pd.DataFrame(rows)


def test_checks_pass_and_fail_where_the_numbers_say(experiment):
    settings = experiment.config.QUICK
    checks = experiment.run.checks(synthetic(settings), settings)
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert len(checks) == len(experiment.config.CONVERGENT) + 4
    slow = experiment.run.checks(synthetic(settings, factor=0.05), settings)  # only 20x
    assert [c.passed for c in slow[:3]] == [False] * 3
    assert not experiment.run.checks(synthetic(settings, dpo=0.02), settings)[3].passed
    assert not experiment.run.checks(synthetic(settings, nash=1e-5), settings)[4].passed
    assert not experiment.run.checks(synthetic(settings, nash=4e-4), settings)[4].passed
    assert not experiment.run.checks(synthetic(settings, tv=0.0), settings)[5].passed
    noisy = experiment.run.checks(synthetic(settings, sampled=1.2), settings)
    assert not noisy[6].passed
    np.testing.assert_array_equal([c.passed for c in noisy[:6]], [True] * 6)
