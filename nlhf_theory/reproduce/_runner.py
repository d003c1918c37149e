"""Run theorem-checking experiments: resumable cells, tidy results, figures and a PASS/FAIL index.

An experiment is a folder ``experiments/<name>/`` with three files:

* ``config.py``: ``TITLE`` (a few words), ``CLAIM`` (the claim checked, with its source),
  ``ORDER`` (position in the index), and the settings dicts ``QUICK`` and ``FULL``;
* ``run.py``: ``cells(settings) -> list[dict]`` (the cells: JSON-serializable dicts holding every
  parameter the cell's computation uses), ``run_cell(cell) -> DataFrame`` (tidy rows, one per
  setting, seed and step) and ``checks(results, settings) -> list[Check]``;
* ``plot.py``: ``plot(results, settings) -> Figure``.

:func:`reproduce` runs the cells that are not already stored (each saved atomically as soon as
it is done, under a key hashed from its parameters, so a killed run resumes where it stopped and
never leaves a corrupt file), concatenates them into ``<out>/data/<name>.csv``, draws
``<out>/<name>.png`` and ``.pdf``, evaluates the checks and regenerates ``<out>/README.md``.

Cells are computed one after another in this process, or, with ``jobs=N`` or ``executor=``, by
worker processes: ``concurrent.futures.ProcessPoolExecutor`` or any executor with a
``submit(fn, *args)`` method (a ``dask.distributed`` client's ``get_executor()``, a submitit
executor for Slurm). Each cell runs in a fixed process state (:func:`cell_state`), so the
outputs are byte-identical whichever way the cells were computed.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from nlhf_theory.reproduce._cells import (
    MODES,
    Check,
    Experiment,
    cell_key,
    code_version,
    compute_cell,
    experiments_dir,
    list_experiments,
    load_experiment,
)
from nlhf_theory.reproduce._io import atomic_write_text
from nlhf_theory.reproduce._plot import save_figure
from nlhf_theory.validation import (
    InvalidInputError,
    check_choice,
    positive_int,
)


class Outcome(NamedTuple):
    """What :func:`reproduce` did for one experiment."""

    name: str
    results: pd.DataFrame
    checks: list
    computed: int
    reused: int
    seconds: float


class CellStore:
    """Finished cells of one experiment and mode, one CSV file each, written atomically."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, cell: dict) -> Path:
        return self.root / f"{cell_key(cell)}.csv"

    def load(self, cell: dict):
        """The stored frame of ``cell``, or None when it has not finished."""
        path = self.path(cell)
        return pd.read_csv(path) if path.is_file() else None

    def save(self, cell: dict, frame: pd.DataFrame) -> None:
        atomic_write_text(self.path(cell), frame.to_csv(index=False))


class _Plan:
    """One experiment of a run: its cells, their store, the frames gathered so far."""

    def __init__(self, experiment: Experiment, mode: str, out: Path, fresh: bool):
        self.experiment = experiment
        self.mode = mode
        self.out = out
        self.settings = experiment.settings(mode)
        self.version = code_version(experiment)
        self.store = CellStore(out / ".cells" / mode / experiment.name / self.version)
        if fresh and self.store.root.is_dir():
            for path in self.store.root.glob("*.csv"):
                path.unlink()
        self.cells = list(experiment.run.cells(self.settings))
        if not self.cells:
            raise InvalidInputError(f"{experiment.name}: cells(settings) returned no cells")
        self.frames = [self.store.load(cell) for cell in self.cells]
        self.computed = 0
        self.outcome = None

    def missing(self) -> list[int]:
        return [i for i, frame in enumerate(self.frames) if frame is None]

    def finish(self, start: float) -> Outcome:
        """Write the experiment's data, checks and figure (all cells must be done)."""
        experiment, settings, out = self.experiment, self.settings, self.out
        results = pd.concat(self.frames, ignore_index=True)
        atomic_write_text(out / "data" / f"{experiment.name}.csv", results.to_csv(index=False))
        checks = [Check(*c) for c in experiment.run.checks(results, settings)]
        save_figure(experiment.plot.plot(results, settings), out, experiment.name)
        summary = {
            "name": experiment.name,
            "title": experiment.config.TITLE,
            "claim": experiment.config.CLAIM,
            "order": getattr(experiment.config, "ORDER", 100),
            "mode": self.mode,
            "checks": [c._asdict() | {"passed": bool(c.passed)} for c in checks],
        }
        atomic_write_text(out / "data" / f"{experiment.name}.checks.json",
                          json.dumps(summary, indent=1) + "\n")
        self.outcome = Outcome(experiment.name, results, checks, self.computed,
                               len(self.cells) - self.computed, time.perf_counter() - start)
        return self.outcome


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="cell", file=sys.stderr)


def run_experiment(experiment: Experiment, *, mode: str = "quick", out="paper_figures",
                   fresh: bool = False, progress: bool = True, executor=None) -> Outcome:
    """Compute (or reuse) every cell of ``experiment``, then write its data, figure and checks.

    Args:
      experiment: from :func:`load_experiment`.
      mode: ``"quick"`` or ``"full"``.
      out: output folder (figures, ``data/``, ``README.md``; finished cells in
        ``.cells/<mode>/<name>/<code version>/``, see :func:`code_version`).
      fresh: discard the stored cells of this experiment and mode first.
      progress: show a progress bar over cells.
      executor: None (default) to compute the cells here, one after another; else an executor
        whose ``submit(fn, *args)`` computes them elsewhere (see :func:`reproduce`).

    Returns:
      An :class:`Outcome`.
    """
    if executor is not None:
        return _run_with_executor([experiment], mode=mode, out=out, fresh=fresh,
                                  progress=progress, log=None, executor=executor)[0]
    out = Path(out)
    plan = _Plan(experiment, mode, out, fresh)
    start = time.perf_counter()
    bar = _bar(len(plan.cells), f"{experiment.name} ({mode})", progress)
    for index, cell in enumerate(plan.cells):
        if plan.frames[index] is None:
            plan.store.save(cell, compute_cell(experiment, cell))
            plan.frames[index] = plan.store.load(cell)  # identical whether computed now or resumed
            plan.computed += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return plan.finish(start)


def _log_outcome(log, outcome: Outcome) -> None:
    if log is not None:
        passed = sum(bool(c.passed) for c in outcome.checks)
        log(f"{outcome.name}: {passed}/{len(outcome.checks)} checks pass; "
            f"{outcome.computed} cells computed, {outcome.reused} reused, "
            f"{outcome.seconds:.1f} s")


def _completed(futures, poll: float = 0.2):
    """Yield ``futures`` as they finish.

    ``concurrent.futures.Future`` objects (process pools, Dask's executor) through
    :func:`concurrent.futures.as_completed`; other job objects (submitit's) by polling their
    ``done()`` every ``poll`` seconds, or, without ``done()``, in submission order.
    """
    futures = list(futures)
    if all(isinstance(f, cf.Future) for f in futures):
        yield from cf.as_completed(futures)
        return
    while futures:
        ready = [f for f in futures if not callable(getattr(f, "done", None)) or f.done()]
        if not ready:
            time.sleep(poll)
            continue
        for future in ready:
            futures.remove(future)
            yield future


def _run_with_executor(experiments, *, mode, out, fresh, progress, log, executor):
    """Compute the missing cells of every experiment with ``executor``, all submitted at once.

    Each experiment's data, checks and figure are written here as soon as its last cell is in,
    while the other experiments' cells are still computing. The worker stores each cell it
    finishes (best effort, see :func:`~nlhf_theory.reproduce._worker.run_cell_task`), and this
    process stores it too when the worker could not (no shared file system), so cells finished
    before an interruption are kept, as in a serial run.
    """
    from nlhf_theory.reproduce._worker import run_cell_task

    if not callable(getattr(executor, "submit", None)):
        raise InvalidInputError(
            "executor: must have a submit(fn, *args) method returning a future (a "
            f"concurrent.futures.Executor, a Dask client's get_executor(), a submitit executor); "
            f"got {type(executor).__name__}")
    out = Path(out).resolve()
    start = time.perf_counter()
    plans = [_Plan(experiment, mode, out, fresh) for experiment in experiments]
    pending = {}
    try:
        for plan in plans:
            root = str(plan.experiment.path.parent.resolve())
            for index in plan.missing():
                future = executor.submit(run_cell_task, root, plan.experiment.name,
                                         plan.cells[index], plan.version, str(plan.store.root))
                pending[future] = (plan, index)
        total = sum(len(plan.cells) for plan in plans)
        bar = _bar(total, f"{len(plans)} experiment(s) ({mode})", progress)
        if bar is not None:
            bar.update(total - len(pending))
        for plan in plans:
            if not plan.missing():
                _log_outcome(log, plan.finish(start))
        for future in _completed(list(pending)):
            plan, index = pending.pop(future)
            cell = plan.cells[index]
            text = future.result()
            if not plan.store.path(cell).is_file():
                atomic_write_text(plan.store.path(cell), text)
            plan.frames[index] = plan.store.load(cell)
            plan.computed += 1
            if bar is not None:
                bar.update(1)
            if plan.outcome is None and not plan.missing():
                _log_outcome(log, plan.finish(start))
        if bar is not None:
            bar.close()
    except BaseException:
        for future in pending:
            if isinstance(future, cf.Future):
                future.cancel()
        raise
    return [plan.outcome for plan in plans]


def process_pool(jobs: int) -> cf.ProcessPoolExecutor:
    """A pool of ``jobs`` worker processes, started with ``spawn`` (jax is multithreaded, and
    forking a process that runs threads may deadlock)."""
    return cf.ProcessPoolExecutor(max_workers=jobs,
                                  mp_context=multiprocessing.get_context("spawn"))


def reproduce(names=None, *, mode: str = "quick", out="paper_figures", experiments=None,
              fresh: bool = False, progress: bool = True, log=print, jobs: int = 1,
              executor=None) -> list[Outcome]:
    """Run the named experiments (default: all) and regenerate ``<out>/README.md``.

    Args:
      names: experiment names (folders of the experiments directory); None for all.
      mode: ``"quick"`` (minutes on a laptop) or ``"full"``.
      out: output folder.
      experiments: the experiments folder (see :func:`experiments_dir`).
      fresh: recompute every cell instead of resuming.
      progress: progress bars.
      log: where one summary line per experiment goes (None: nowhere).
      jobs: number of worker processes computing cells (default 1: one after another in this
        process); ignored when ``executor`` is given.
      executor: None (default), or an executor whose ``submit(fn, *args)`` returns a future
        (``.result()``, and ``.done()`` unless it is a ``concurrent.futures.Future``): a
        ``concurrent.futures.ProcessPoolExecutor``, a Dask ``Client.get_executor()``, a
        submitit executor (Slurm). Its workers must see the experiments folder and ``out``
        at the same paths (a shared file system) and run the same code; the executor is not
        shut down here.

    Returns:
      One :class:`Outcome` per experiment, in the order of ``names``. With workers, an
      outcome's ``seconds`` run from the start of the whole run to that experiment's end.
    """
    check_choice(mode, "mode", MODES)
    jobs = positive_int(jobs, "jobs")
    root = experiments_dir(experiments)
    known = list_experiments(root)
    names = known if not names else list(names)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(
            f"names: unknown experiment {unknown[0]!r}; known: {', '.join(known)}")
    loaded = [load_experiment(name, root) for name in names]
    if executor is None and jobs == 1:
        outcomes = []
        for experiment in loaded:
            outcome = run_experiment(experiment, mode=mode, out=out, fresh=fresh,
                                     progress=progress)
            outcomes.append(outcome)
            _log_outcome(log, outcome)
    elif executor is not None:
        outcomes = _run_with_executor(loaded, mode=mode, out=out, fresh=fresh,
                                      progress=progress, log=log, executor=executor)
    else:
        with process_pool(int(jobs)) as pool:
            try:
                outcomes = _run_with_executor(loaded, mode=mode, out=out, fresh=fresh,
                                              progress=progress, log=log, executor=pool)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # running cells finish, stored
                raise
    write_index(out)
    return outcomes


_INDEX_HEAD = """# Paper figures

Generated by `nlhf reproduce` (do not edit by hand): each figure, the claim it checks, the
measured quantity against the value theory allows, and PASS or FAIL. The tidy results behind
each figure are in `data/<name>.csv` (one row per setting, seed and step); each experiment's
config, run and plot are in `experiments/<name>/`, explained in
[docs/experiments.md](../docs/experiments.md).
"""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_index(out="paper_figures") -> Path:
    """Regenerate ``<out>/README.md`` from every ``data/*.checks.json`` in ``out``."""
    out = Path(out)
    summaries = [json.loads(p.read_text()) for p in sorted((out / "data").glob("*.checks.json"))]
    summaries.sort(key=lambda s: (s["order"], s["name"]))
    lines = [_INDEX_HEAD]
    modes = sorted({s["mode"] for s in summaries})
    total = sum(len(s["checks"]) for s in summaries)
    passed = sum(c["passed"] for s in summaries for c in s["checks"])
    lines.append(f"Mode: {', '.join(f'`--{m}`' for m in modes)}. "
                 f"**{passed} of {total} checks pass.**\n")
    lines.append("| experiment | claim checked | checks passed |")
    lines.append("|---|---|---|")
    for s in summaries:
        ok = sum(c["passed"] for c in s["checks"])
        lines.append(f"| [{s['name']}](#{s['name']}) | {_cell(s['title'])} | "
                     f"{ok} of {len(s['checks'])}{'' if ok == len(s['checks']) else ' (FAIL)'} |")
    for s in summaries:
        lines.append(f"\n## {s['name']}\n")
        lines.append(f"**{s['title']}.** {s['claim']}\n")
        lines.append(f"![{s['name']}]({s['name']}.png)\n")
        lines.append(f"PDF: [{s['name']}.pdf]({s['name']}.pdf); data: "
                     f"[data/{s['name']}.csv](data/{s['name']}.csv); "
                     f"experiment: [experiments/{s['name']}](../experiments/{s['name']}/).\n")
        lines.append("| claim | measured | theory | status |")
        lines.append("|---|---|---|---|")
        for c in s["checks"]:
            lines.append(f"| {_cell(c['claim'])} | {_cell(c['measured'])} | "
                         f"{_cell(c['theory'])} | {'PASS' if c['passed'] else '**FAIL**'} |")
    path = out / "README.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
