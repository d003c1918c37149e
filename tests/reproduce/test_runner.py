"""The reproduce runner: resumable atomic cells, determinism, the index and the CLI."""

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nlhf_theory import InvalidInputError
from nlhf_theory.cli import main
from nlhf_theory.reproduce import (
    CellStore,
    cell_key,
    code_version,
    experiments_dir,
    list_experiments,
    load_experiment,
    reproduce,
)

_CONFIG = '''
ORDER = {order}
TITLE = "Toy {name}"
CLAIM = "The mean of a fair die is 3.5 (a toy claim)."
QUICK = {{"sizes": [10, 100], "seeds": 3}}
FULL = {{"sizes": [10, 100, 1000], "seeds": 3}}
'''

_RUN = '''
import os
import numpy as np
import pandas as pd
from nlhf_theory.reproduce import Check

CALLS = []


def cells(settings):
    return [{{"n": n, "seeds": settings["seeds"]}} for n in settings["sizes"]]


def run_cell(cell):
    CALLS.append(cell["n"])
    if os.environ.get("TOY_CRASH_AT") == str(cell["n"]):
        raise KeyboardInterrupt("killed")
    rng = np.random.default_rng(cell["n"])
    rolls = rng.integers(1, 7, size=(cell["seeds"], cell["n"]))
    return pd.DataFrame({{"seed": np.arange(cell["seeds"]), "mean": rolls.mean(1)}})


def checks(results, settings):
    err = abs(results["mean"].mean() - 3.5)
    return [Check("mean of a fair die", f"{{err:.2f}}", "<= {band}", err <= {band})]
'''

_PLOT = '''
from nlhf_theory.reproduce import band, subplots

from . import run


def plot(results, settings):
    assert callable(run.run_cell)  # the experiment's modules import each other
    fig, axes = subplots()
    band(axes[0, 0], results, "n", "mean", label="mean roll")
    axes[0, 0].set_xlabel("rolls")
    return fig
'''


def _write_experiment(root, name, order=1, band=1.0):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.py").write_text(textwrap.dedent(_CONFIG.format(order=order, name=name)))
    (folder / "run.py").write_text(textwrap.dedent(_RUN.format(band=band)))
    (folder / "plot.py").write_text(textwrap.dedent(_PLOT))


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "experiments"
    _write_experiment(root, "toy_b", order=2, band=1e-9)  # a claim that fails
    _write_experiment(root, "toy_a", order=1)
    return root


def test_lists_experiments_in_order(toy):
    assert list_experiments(toy) == ["toy_a", "toy_b"]
    assert experiments_dir(toy) == toy


def test_unknown_experiment_and_mode_are_clear_errors(toy, tmp_path):
    with pytest.raises(InvalidInputError, match="unknown experiment 'nope'.*toy_a"):
        reproduce(["nope"], experiments=toy, out=tmp_path / "o", progress=False, log=None)
    with pytest.raises(InvalidInputError, match="mode"):
        reproduce(mode="medium", experiments=toy, out=tmp_path / "o", progress=False, log=None)
    with pytest.raises(InvalidInputError, match="no experiments folder"):
        experiments_dir(tmp_path / "missing")


def test_writes_data_figures_checks_and_index(toy, tmp_path):
    out = tmp_path / "figs"
    outcomes = reproduce(experiments=toy, out=out, progress=False, log=None)
    assert [o.name for o in outcomes] == ["toy_a", "toy_b"]
    assert [o.computed for o in outcomes] == [2, 2]
    for name in ("toy_a", "toy_b"):
        for ext in ("png", "pdf"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
        data = pd.read_csv(out / "data" / f"{name}.csv")
        # tidy: the cell's scalar parameters became columns, one row per (n, seed)
        assert list(data.columns) == ["n", "seeds", "seed", "mean"]
        assert len(data) == 2 * 3
    index = (out / "README.md").read_text()
    assert "**1 of 2 checks pass.**" in index
    assert "| PASS |" in index and "| **FAIL** |" in index
    assert index.index("## toy_a") < index.index("## toy_b")
    summary = json.loads((out / "data" / "toy_b.checks.json").read_text())
    assert summary["checks"][0]["passed"] is False


def test_resumes_only_unfinished_cells_after_a_kill(toy, tmp_path, monkeypatch):
    out = tmp_path / "figs"
    monkeypatch.setenv("TOY_CRASH_AT", "100")
    with pytest.raises(KeyboardInterrupt):
        reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    store = out / ".cells" / "quick" / "toy_a" / code_version(load_experiment("toy_a", toy))
    assert len(list(store.glob("*.csv"))) == 1          # the finished cell was kept
    assert not list(store.glob("*.tmp"))                # and nothing half-written
    (store / "garbage.tmp").write_text("partial")      # a stray temporary is ignored
    monkeypatch.delenv("TOY_CRASH_AT")
    experiment = load_experiment("toy_a", toy)
    experiment.run.CALLS.clear()
    (outcome,) = reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    assert experiment.run.CALLS == [100]
    assert (outcome.computed, outcome.reused) == (1, 1)
    fresh = reproduce(["toy_a"], experiments=toy, out=tmp_path / "again", fresh=True,
                      progress=False, log=None)[0]
    pd.testing.assert_frame_equal(outcome.results, fresh.results)


def test_edited_experiment_code_does_not_reuse_old_cells(toy, tmp_path):
    out = tmp_path / "figs"
    reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    plot = toy / "toy_a" / "plot.py"
    plot.write_text(plot.read_text() + "\n# a changed figure\n")
    (outcome,) = reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    assert outcome.computed == 0                         # a figure change reuses the results
    run = toy / "toy_a" / "run.py"
    run.write_text(run.read_text() + "\n# a changed computation\n")
    (outcome,) = reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    assert outcome.computed == 2                         # new code, new results


def test_outputs_are_byte_identical_across_runs(toy, tmp_path):
    reproduce(["toy_a"], experiments=toy, out=tmp_path / "one", progress=False, log=None)
    reproduce(["toy_a"], experiments=toy, out=tmp_path / "two", progress=False, log=None)
    for name in ("toy_a.png", "toy_a.pdf", "data/toy_a.csv", "README.md"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_full_mode_has_its_own_cells(toy, tmp_path):
    out = tmp_path / "figs"
    reproduce(["toy_a"], experiments=toy, out=out, progress=False, log=None)
    (outcome,) = reproduce(["toy_a"], mode="full", experiments=toy, out=out, progress=False,
                           log=None)
    assert outcome.computed == 3
    assert "`--full`" in (out / "README.md").read_text()


def test_cell_store_round_trips_float64_exactly(tmp_path):
    frame = pd.DataFrame({"x": np.random.default_rng(0).standard_normal(50) * 1e-7,
                          "name": ["a"] * 50})
    store = CellStore(tmp_path)
    cell = {"n": np.int64(3), "beta": np.float64(0.1), "grid": np.arange(3.0)}
    assert store.load(cell) is None
    store.save(cell, frame)
    pd.testing.assert_frame_equal(store.load(cell), frame)
    assert cell_key(cell) == cell_key({"grid": [0.0, 1.0, 2.0], "beta": 0.1, "n": 3})
    assert cell_key(cell) != cell_key({**cell, "n": 4})
    with pytest.raises(TypeError, match="JSON"):
        cell_key({"f": object()})


def test_cli_lists_runs_and_reports_failures(toy, tmp_path, capsys):
    assert main(["reproduce", "--list", "--experiments", str(toy)]) == 0
    assert "toy_a" in capsys.readouterr().out
    out = tmp_path / "figs"
    assert main(["reproduce", "toy_b", "--full", "--experiments", str(toy), "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "0 of 1 checks pass" in printed and "FAIL toy_b" in printed
    assert main(["reproduce", "nope", "--experiments", str(toy), "--out", str(out)]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_repository_experiments_are_discovered():
    names = list_experiments()
    assert "regularization_path" in names
    for name in names:
        experiment = load_experiment(name)
        for mode in ("quick", "full"):
            assert experiment.run.cells(experiment.settings(mode)), (name, mode)
        assert experiment.config.TITLE and experiment.config.CLAIM


def test_library_fingerprint_sees_every_library_module(tmp_path):
    import shutil

    import nlhf_theory
    from nlhf_theory.reproduce import library_fingerprint

    root = tmp_path / "nlhf_theory"
    shutil.copytree(Path(nlhf_theory.__file__).parent, root,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = library_fingerprint(root)
    assert before == library_fingerprint(Path(nlhf_theory.__file__).parent)
    module = root / "algorithms" / "_base.py"
    module.write_text(module.read_text() + "\n# an edit deep inside the library\n")
    edited = library_fingerprint(root)
    assert edited != before
    (root / "metrics" / "_new.py").write_text("X = 1\n")       # an added module
    assert library_fingerprint(root) not in (before, edited)


def test_code_version_changes_with_the_library(toy, monkeypatch):
    from nlhf_theory.reproduce import _cells

    experiment = load_experiment("toy_a", toy)
    original = code_version(experiment)
    monkeypatch.setattr(_cells, "library_fingerprint", lambda root=None: "0123456789ab")
    changed = code_version(experiment)
    monkeypatch.setattr(_cells, "library_fingerprint", lambda root=None: "ba9876543210")
    assert len({original, changed, code_version(experiment)}) == 3
