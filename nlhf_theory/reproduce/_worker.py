"""The task a worker process runs for :func:`~nlhf_theory.reproduce.reproduce`: one cell.

It takes only plain values (paths as strings, the cell's dict, the driver's code version), so
any executor can ship it: a process pool pickles it by reference, Dask and submitit with
cloudpickle. A worker may live across runs (a Dask cluster): it reloads an experiment whose
files changed since it imported them, and refuses to compute when its code (the library it
imported, the experiment's files) is not the code the driver fingerprinted, so a stale worker
never stores results under a new code version.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from nlhf_theory.reproduce import _cells
from nlhf_theory.reproduce._io import atomic_write_text

# The library this process imported (its files may be edited later; the modules in memory
# are not).
_LIBRARY = _cells.library_fingerprint()
# One cell at a time per process: a cell sets jax's global x64 flag (``cell_state``), which
# would leak into a cell running concurrently in another thread (Dask's threads_per_worker > 1).
_LOCK = threading.Lock()
# (experiments root, name) -> (code version when loaded, Experiment)
_LOADED: dict = {}


def _experiment(root: str, name: str):
    """The experiment's modules, imported afresh when its files changed since last time."""
    key = (root, name)
    cached = _LOADED.get(key)
    if cached is not None:
        experiment = cached[1]
        if _cells.code_version(experiment, library=_LIBRARY) == cached[0]:
            return experiment
    prefix = f"nlhf_experiments.{name}"
    for module in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[module]
    experiment = _cells.load_experiment(name, root)
    _LOADED[key] = (_cells.code_version(experiment, library=_LIBRARY), experiment)
    return experiment


def run_cell_task(root: str, name: str, cell: dict, version: str, store: str) -> str:
    """Compute ``cell`` of experiment ``name`` and return its CSV text (stored in ``store`` too).

    Args:
      root: the experiments folder (absolute path).
      name: the experiment's folder name.
      cell: one of its ``run.cells(settings)``.
      version: the driver's :func:`~nlhf_theory.reproduce.code_version` of the experiment.
      store: the driver's cell folder; the cell is written there atomically when this process
        can (a shared file system), so it survives the driver being killed.

    Returns:
      The CSV text of the cell's frame, byte for byte what a serial run stores.

    Raises:
      RuntimeError: this process's code differs from the driver's.
    """
    with _LOCK:
        experiment = _experiment(root, name)
        mine = _LOADED[(root, name)][0]
        if mine != version:
            raise RuntimeError(
                f"{name}: this worker's code (version {mine}) differs from the driver's "
                f"({version}): it imported another nlhf_theory, or the files changed since it "
                "started; restart the workers")
        text = _cells.compute_cell(experiment, cell).to_csv(index=False)
    path = Path(store) / f"{_cells.cell_key(cell)}.csv"
    try:
        atomic_write_text(path, text)
    except OSError:  # no shared file system: the driver stores the returned text
        pass
    return text
