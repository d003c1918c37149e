"""Cells in worker processes (``--jobs``, ``executor=``): the same bytes as a serial run.

Two toy experiments: ``toy_jax`` computes in jax outside float64 mode (so its numbers depend on
jax's x64 flag at entry) and ``toy_game`` calls the library's solvers and a jax computation in
its float64 mode (which switches the global flag on and off). Every output file, the stored
cells included, is compared byte for byte with a serial run in this process.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np
import pytest

from nlhf_theory import InvalidInputError
from nlhf_theory.cli import main
from nlhf_theory.reproduce import _worker, cell_key, code_version, load_experiment, reproduce

_JAX_RUN = '''
import os
import time

import jax.numpy as jnp
import numpy as np
import pandas as pd

from nlhf_theory.reproduce import Check


def cells(settings):
    return [{"n": n, "seeds": settings["seeds"]} for n in settings["sizes"]]


def run_cell(cell):
    folder = os.environ.get("TOY_PIDS")
    if folder:  # which process computed the cell (not an output)
        open(os.path.join(folder, f"{os.getpid()}-{cell['n']}"), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(folder)) < int(os.environ.get("TOY_RENDEZVOUS", "0")):
            if time.monotonic() > deadline:  # cells are not computed concurrently
                raise TimeoutError("no other cell started within 60 s")
            time.sleep(0.01)
    if os.environ.get("TOY_CRASH_AT") == str(cell["n"]):
        raise KeyboardInterrupt("killed")
    time.sleep(float(os.environ.get("TOY_SLEEP", "0")))
    if os.environ.get("TOY_BLOCK_AT") == str(cell["n"]):
        time.sleep(120)  # still running when the test kills the run
    x = np.random.default_rng(cell["n"]).standard_normal((cell["seeds"], cell["n"]))
    mean = np.asarray(jnp.mean(jnp.asarray(x) / 3.0, axis=1), dtype=np.float64)  # f32 unless x64
    return pd.DataFrame({"seed": np.arange(cell["seeds"]), "mean": mean,
                         "dtype": str(jnp.asarray(x).dtype)})


def checks(results, settings):
    err = abs(results["mean"].mean())
    return [Check("a third of a standard normal mean is near 0", f"{err:.3g}", "<= 1", err <= 1)]
'''

_GAME_RUN = '''
import jax.numpy as jnp
import numpy as np
import pandas as pd

import nlhf_theory as nt
from nlhf_theory.algorithms import float64_mode
from nlhf_theory.reproduce import Check


def cells(settings):
    return [{"responses": y, "beta": b} for y in settings["responses"] for b in settings["betas"]]


def run_cell(cell):
    game = nt.make_game("random_skew", num_responses=cell["responses"], seed=cell["responses"])
    eq = nt.solve_regularized_nash(game, cell["beta"])
    nash = nt.solve_nash(game)
    with float64_mode():
        energy = float(jnp.sum(jnp.asarray(eq.policy) ** 2) / 3.0)
    return pd.DataFrame({"duality_gap": [eq.duality_gap],
                         "exploitability": [float(nt.exploitability(game, eq.policy))],
                         "l1_to_maximal_lottery": [float(np.abs(eq.policy - nash.policy).sum())],
                         "energy": [energy]})


def checks(results, settings):
    worst = results.duality_gap.max()
    return [Check("certified", f"{worst:.1e}", "<= 1e-10", worst <= 1e-10)]
'''

_PLOT = '''
from nlhf_theory.reproduce import band, subplots


def plot(results, settings):
    fig, axes = subplots()
    band(axes[0, 0], results, "{x}", "{y}", label="{y}")
    return fig
'''

_CONFIGS = {
    "toy_jax": (1, '{"sizes": [5, 6, 7, 8], "seeds": 3}', _JAX_RUN, ("n", "mean")),
    "toy_game": (2, '{"responses": [6, 9], "betas": [0.1, 0.01]}', _GAME_RUN,
                 ("beta", "exploitability")),
}


def _write(root, name):
    order, quick, run, (x, y) = _CONFIGS[name]
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.py").write_text(
        f'ORDER = {order}\nTITLE = "Toy {name}"\nCLAIM = "A toy claim."\n'
        f"QUICK = {quick}\nFULL = QUICK\n")
    (folder / "run.py").write_text(textwrap.dedent(run))
    (folder / "plot.py").write_text(textwrap.dedent(_PLOT.format(x=x, y=y)))


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel") / "experiments"
    for name in _CONFIGS:
        _write(root, name)
    return root


@pytest.fixture(scope="module")
def serial(experiments):
    """The reference: every cell computed one after another in this process."""
    out = experiments.parent / "serial"
    reproduce(experiments=experiments, out=out, progress=False, log=None)
    return out


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file() and p.suffix != ".tmp"}


def _assert_same(reference, out):
    expected, got = _files(reference), _files(out)
    assert sorted(got) == sorted(expected)
    assert len([k for k in expected if k.startswith(".cells/")]) == 8
    differ = [name for name in expected if expected[name] != got[name]]
    assert not differ, f"differ from the serial run: {differ}"


def _workers(pids):
    return {p.name.split("-")[0] for p in pids.iterdir()}


def test_jobs_computes_cells_in_worker_processes_byte_identically(experiments, serial,
                                                                  tmp_path, monkeypatch, capsys):
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("TOY_PIDS", str(pids))
    monkeypatch.setenv("TOY_RENDEZVOUS", "2")   # a cell waits until two cells have started
    out = tmp_path / "out"
    assert main(["reproduce", "--jobs", "2", "--experiments", str(experiments),
                 "--out", str(out)]) == 0
    assert "2 of 2 checks pass" in capsys.readouterr().out
    _assert_same(serial, out)
    workers = _workers(pids)
    assert str(os.getpid()) not in workers and len(workers) == 2
    assert len(list(pids.iterdir())) == 4        # each toy_jax cell computed once


def test_dask_local_cluster_of_two_workers_is_byte_identical(experiments, serial, tmp_path,
                                                             monkeypatch):
    distributed = pytest.importorskip("distributed")
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("TOY_PIDS", str(pids))   # set before the workers start
    monkeypatch.setenv("TOY_RENDEZVOUS", "2")
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            outcomes = reproduce(experiments=experiments, out=out, progress=False, log=None,
                                 executor=client.get_executor())
    assert [(o.computed, o.reused) for o in outcomes] == [(4, 0), (4, 0)]
    _assert_same(serial, out)
    workers = _workers(pids)
    assert str(os.getpid()) not in workers and len(workers) == 2


def test_submitit_executor_is_byte_identical(experiments, serial, tmp_path):
    submitit = pytest.importorskip("submitit")
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")  # submitit's jobs, no Slurm
    executor.update_parameters(timeout_min=5)
    out = tmp_path / "out"
    reproduce(["toy_game"], experiments=experiments, out=out, progress=False, log=None,
              executor=executor)
    got, expected = _files(out), _files(serial)
    assert len([k for k in got if k.startswith(".cells/")]) == 4
    assert all(got[k] == expected[k] for k in got if k != "README.md")


def test_killed_parallel_run_resumes_like_a_serial_one(experiments, serial, tmp_path,
                                                       monkeypatch):
    out = tmp_path / "out"
    env = dict(os.environ, TOY_SLEEP="0.3", TOY_BLOCK_AT="8")
    command = [sys.executable, "-m", "nlhf_theory.cli", "reproduce", "--jobs", "2",
               "--experiments", str(experiments), "--out", str(out)]
    process = subprocess.Popen(command, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = out / ".cells" / "quick" / "toy_jax"
    deadline = time.monotonic() + 120
    while len(list(cells.rglob("*.csv"))) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "no cell finished in 120 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)      # the driver and its workers, at once
    process.wait()
    kept = _files(out)
    finished = [k for k in kept if k.startswith(".cells/")]
    assert 2 <= len(finished) < 8                # killed mid-way (cell n = 8 never finished)
    reference = _files(serial)
    assert all(kept[k] == reference[k] for k in finished)  # no partial or foreign cell
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("TOY_PIDS", str(pids))
    outcomes = reproduce(experiments=experiments, out=out, progress=False, log=None, jobs=2)
    assert len(list(pids.iterdir())) == 4 - len([k for k in finished if "toy_jax" in k])
    assert sum(o.computed for o in outcomes) == 8 - len(finished)
    assert sum(o.reused for o in outcomes) == len(finished)
    _assert_same(serial, out)


def test_a_cell_that_fails_in_a_worker_keeps_the_finished_cells(experiments, serial, tmp_path,
                                                                 monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("TOY_CRASH_AT", "6")
    with ThreadPoolExecutor(2) as pool, pytest.raises(KeyboardInterrupt):
        reproduce(["toy_jax"], experiments=experiments, out=out, progress=False, log=None,
                  executor=pool)
    store = next((out / ".cells" / "quick" / "toy_jax").iterdir())
    stored = {p.name for p in store.glob("*.csv")}
    assert stored and len(stored) < 4 and not list(store.glob("*.tmp"))
    monkeypatch.delenv("TOY_CRASH_AT")
    with ThreadPoolExecutor(2) as pool:
        (outcome,) = reproduce(["toy_jax"], experiments=experiments, out=out, progress=False,
                               log=None, executor=pool)
    assert (outcome.computed, outcome.reused) == (4 - len(stored), len(stored))
    for name in ("toy_jax.png", "data/toy_jax.csv", "data/toy_jax.checks.json"):
        assert (out / name).read_bytes() == (serial / name).read_bytes()


def test_deleted_cells_are_recomputed_by_a_thread_pool(experiments, serial, tmp_path,
                                                       monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(serial, out)
    stored = sorted((out / ".cells").rglob("*.csv"))
    for path in stored[::3]:                     # as if a run had been killed before them
        path.unlink()
    for path in (out / "data").glob("*.csv"):
        path.unlink()
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("TOY_PIDS", str(pids))
    with ThreadPoolExecutor(2) as pool:         # two cells at once in one process
        outcomes = reproduce(experiments=experiments, out=out, progress=False, log=None,
                             executor=pool)
    assert sum(o.computed for o in outcomes) == len(stored[::3])
    assert len(list(pids.iterdir())) == len([p for p in stored[::3] if "toy_jax" in str(p)])
    _assert_same(serial, out)


def test_the_driver_stores_cells_a_worker_could_not(experiments, serial, tmp_path,
                                                    monkeypatch):
    def unwritable(path, text):
        raise PermissionError(path)              # as on a worker without the shared folder

    monkeypatch.setattr(_worker, "atomic_write_text", unwritable)
    out = tmp_path / "out"
    with ThreadPoolExecutor(2) as pool:
        reproduce(experiments=experiments, out=out, progress=False, log=None, executor=pool)
    _assert_same(serial, out)


def test_cells_do_not_depend_on_the_callers_process_state(experiments, serial, tmp_path):
    out = tmp_path / "out"
    previous = jax.config.jax_enable_x64
    np.random.seed(12345)
    random.seed(12345)
    jax.config.update("jax_enable_x64", True)   # e.g. a notebook that switched x64 on
    try:
        reproduce(experiments=experiments, out=out, progress=False, log=None)
        assert jax.config.jax_enable_x64        # restored after every cell
    finally:
        jax.config.update("jax_enable_x64", previous)
    _assert_same(serial, out)
    assert "float32" in (serial / "data" / "toy_jax.csv").read_text()
    enable_x64 = getattr(jax, "enable_x64", None)
    if enable_x64 is None:  # older jax
        from jax.experimental import enable_x64
    with enable_x64(True), pytest.raises(RuntimeError, match="enable_x64"):
        reproduce(["toy_jax"], experiments=experiments, out=tmp_path / "x64", fresh=True,
                  progress=False, log=None)


def test_worker_reloads_edited_experiments_and_refuses_other_code(tmp_path, monkeypatch):
    root = tmp_path / "experiments"
    _write(root, "toy_jax")
    experiment = load_experiment("toy_jax", root)
    cell = experiment.run.cells(experiment.settings("quick"))[0]
    version = code_version(experiment)
    text = _worker.run_cell_task(str(root), "toy_jax", cell, version, str(tmp_path / "a"))
    assert (tmp_path / "a" / f"{cell_key(cell)}.csv").read_text() == text
    with pytest.raises(RuntimeError, match="differs from the driver"):
        _worker.run_cell_task(str(root), "toy_jax", cell, "0123456789ab", str(tmp_path / "b"))
    run = root / "toy_jax" / "run.py"
    run.write_text(run.read_text().replace("x) / 3.0", "x) / 7.25"))  # size changes too
    edited = code_version(load_experiment("toy_jax", root))
    new = _worker.run_cell_task(str(root), "toy_jax", cell, edited, str(tmp_path / "c"))
    assert new != text                           # the edited code ran, not the imported one
    monkeypatch.setattr(_worker, "_LIBRARY", "ba9876543210")  # the library edited since import
    with pytest.raises(RuntimeError, match="restart the workers"):
        _worker.run_cell_task(str(root), "toy_jax", cell, edited, str(tmp_path / "d"))


def test_jobs_and_executor_are_validated(experiments, tmp_path, capsys):
    for jobs in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidInputError, match="jobs: must be an integer >= 1"):
            reproduce(experiments=experiments, out=tmp_path, jobs=jobs, log=None)
    with pytest.raises(InvalidInputError, match="executor: must have a submit"):
        reproduce(experiments=experiments, out=tmp_path, executor=object(), progress=False,
                  log=None)
    assert main(["reproduce", "--jobs", "0", "--experiments", str(experiments),
                 "--out", str(tmp_path)]) == 2
    assert "jobs" in capsys.readouterr().err
