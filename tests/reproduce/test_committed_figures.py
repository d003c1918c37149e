"""The committed paper_figures/ are what `nlhf reproduce --quick` produces from the experiments.

Rerunning every experiment is the main job, not a test (minutes); these checks are cheap and
catch a stale commit: every experiment has its figure, data and checks; the checks recomputed
from the committed data equal the committed ones; the committed index is the one the runner
writes from them.
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nlhf_theory.reproduce import Check, list_experiments, load_experiment, write_index

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ROOT / "paper_figures"
NAMES = list_experiments(ROOT / "experiments")


@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_has_its_committed_outputs(name):
    for path in (f"{name}.png", f"{name}.pdf", f"data/{name}.csv", f"data/{name}.checks.json"):
        assert (FIGURES / path).is_file(), f"paper_figures/{path} missing: run nlhf reproduce"
    summary = json.loads((FIGURES / "data" / f"{name}.checks.json").read_text())
    assert summary["mode"] == "quick"


@pytest.mark.parametrize("name", NAMES)
def test_committed_checks_follow_from_committed_data(name):
    experiment = load_experiment(name, ROOT / "experiments")
    results = pd.read_csv(FIGURES / "data" / f"{name}.csv")
    recomputed = [Check(*c) for c in experiment.run.checks(results, experiment.settings("quick"))]
    summary = json.loads((FIGURES / "data" / f"{name}.checks.json").read_text())
    assert summary["claim"] == experiment.config.CLAIM
    assert [c._asdict() | {"passed": bool(c.passed)} for c in recomputed] == summary["checks"]


def test_committed_index_is_generated_from_the_checks(tmp_path):
    shutil.copytree(FIGURES / "data", tmp_path / "data",
                    ignore=shutil.ignore_patterns("*.csv"))
    assert write_index(tmp_path).read_text() == (FIGURES / "README.md").read_text()
    committed = {p.name.removesuffix(".checks.json")
                 for p in (FIGURES / "data").glob("*.checks.json")}
    assert committed == set(NAMES), "paper_figures/data holds checks of unknown experiments"
