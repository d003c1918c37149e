"""Same numbers everywhere (issue 9 item 5): an experiment cell and ``nt.run`` give identical
bytes whatever the caller's ``JAX_ENABLE_X64``."""

import os
import subprocess
import sys

SCRIPT = r"""
import contextlib
import sys
import nlhf_theory as nt
from nlhf_theory.reproduce import _cells, load_experiment
from nlhf_theory.reproduce._cells import compute_cell

if sys.argv[2] == "unguarded":  # what a cell computed before reproduce fixed jax's x64 state
    _cells.cell_state = contextlib.nullcontext

experiment = load_experiment("offline_rate")
cells = experiment.run.cells(experiment.settings("quick"))
frame = compute_cell(experiment, {**cells[int(sys.argv[1])], "seeds": 2})
sys.stdout.write(frame.to_csv(index=False))
if sys.argv[2] == "guarded":
    run = nt.run("egpo", nt.make_game("comal_cyclic"), beta=0.1, steps=20, mode="sampled",
                 seeds=2)
    sys.stdout.write("# nt.run\n" + run.to_csv(index=False))
"""

RUN = "# nt.run\n"  # the script's line between the cell's frame and nt.run's (guarded only)

CELL = "3"  # offline_rate quick: Bradley-Terry fits on sampled datasets (2 of its 8 seeds)


def output(x64: str | None, guard: str = "guarded") -> str:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    if x64 is not None:
        env["JAX_ENABLE_X64"] = x64
    done = subprocess.run([sys.executable, "-c", SCRIPT, CELL, guard], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_same_bytes_with_and_without_jax_enable_x64():
    plain, x64 = output(None), output("1")
    assert len(plain) > 1000 and plain.count(RUN) == 1
    assert plain == x64
    # the cell is sensitive to the flag: without reproduce's fixed x64 state it differs
    cell, unguarded = plain.partition(RUN)[0], output("1", "unguarded")
    assert len(unguarded.splitlines()) == len(cell.splitlines()) > 2
    assert unguarded.splitlines()[0] == cell.splitlines()[0]  # the same columns
    assert unguarded != cell
