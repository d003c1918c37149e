"""An experiment's cells: loading experiment folders, cell keys, code fingerprints, and the
computation of one cell in a fixed process state (what a worker process needs; the runner and
the worker both build on it)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import pandas as pd

from nlhf_theory.validation import InvalidInputError, check_choice

MODES = ("quick", "full")


class Check(NamedTuple):
    """One claim checked by an experiment.

    Attributes:
      claim: what theory says, with its source (one sentence).
      measured: the measured quantity, formatted (e.g. a fitted slope with its interval).
      theory: the value or band theory allows.
      passed: whether the measurement lies in that band.
    """

    claim: str
    measured: str
    theory: str
    passed: bool


class Experiment(NamedTuple):
    """The three modules of an experiment folder."""

    name: str
    path: Path
    config: ModuleType
    run: ModuleType
    plot: ModuleType

    def settings(self, mode: str) -> dict:
        """The settings dict of ``mode`` (``"quick"`` or ``"full"``)."""
        check_choice(mode, "mode", MODES)
        return dict(getattr(self.config, mode.upper()))


def experiments_dir(directory=None) -> Path:
    """The folder holding the experiments.

    ``directory`` if given; else ``./experiments`` when the current directory has one; else the
    ``experiments/`` folder beside the installed package's source (a checkout or editable
    install).
    """
    candidates = ([Path(directory)] if directory is not None else
                  [Path.cwd() / "experiments", Path(__file__).resolve().parents[2] / "experiments"])
    for candidate in candidates:
        if candidate.is_dir() and any((p / "run.py").is_file() for p in candidate.iterdir()):
            return candidate
    raise InvalidInputError(
        f"experiments: no experiments folder found (looked in {', '.join(map(str, candidates))});"
        " run from the repository root or pass --experiments DIR")


def _package(name: str, path: Path) -> ModuleType:
    """Register ``name`` as a package rooted at ``path`` (dropping stale submodules)."""
    module = sys.modules.get(name)
    if module is None or list(getattr(module, "__path__", [])) != [str(path)]:
        for key in [k for k in sys.modules if k.startswith(name + ".")]:
            del sys.modules[key]
        module = ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    return module


def _import(root: Path, name: str, part: str) -> ModuleType:
    """Import ``<root>/<name>/<part>.py`` as ``nlhf_experiments.<name>.<part>``.

    The experiment folder is a package, so its modules may import each other relatively
    (``from . import run``).
    """
    _package("nlhf_experiments", root)
    _package(f"nlhf_experiments.{name}", root / name)
    return importlib.import_module(f"nlhf_experiments.{name}.{part}")


def load_experiment(name: str, directory=None) -> Experiment:
    """Load ``experiments/<name>/`` (its ``config``, ``run`` and ``plot`` modules)."""
    root = experiments_dir(directory).resolve()
    path = root / name
    if not (path / "run.py").is_file():
        raise InvalidInputError(
            f"names: unknown experiment {name!r}; known: {', '.join(list_experiments(root))}")
    modules = {part: _import(root, name, part) for part in ("config", "run", "plot")}
    return Experiment(name, path, **modules)


def list_experiments(directory=None) -> list[str]:
    """The experiment names, in their configs' ``ORDER``."""
    root = experiments_dir(directory).resolve()
    names = sorted(p.name for p in root.iterdir()
                   if (p / "run.py").is_file() and not p.name.startswith(("_", ".")))
    order = {}
    for name in names:
        config = _import(root, name, "config")
        order[name] = getattr(config, "ORDER", 100)
    return sorted(names, key=lambda n: (order[n], n))


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cell values must be JSON-serializable, got {type(value).__name__}")


def cell_key(cell: dict) -> str:
    """A stable key for a cell: the SHA-256 of its canonical JSON (first 16 hex digits)."""
    text = json.dumps(cell, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def library_fingerprint(root=None) -> str:
    """SHA-256 (first 12 hex digits) of every Python module of the library under ``root``.

    ``root`` defaults to the installed ``nlhf_theory`` package. Files are visited in the order
    of their relative paths, and each contributes its relative path and its bytes, so an edit,
    an added or a removed module anywhere in the library changes the fingerprint.
    """
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def code_version(experiment: Experiment, library: str | None = None) -> str:
    """A fingerprint of the code that computes an experiment's cells.

    The SHA-256 (first 12 hex digits) of the package version, of every Python module of the
    library (:func:`library_fingerprint`) and of every Python module of the experiment folder
    but ``plot.py`` (a changed figure reuses the results). Cells are stored under it, so an
    edit to ``run.py`` or to any module of the library never reuses results computed by the
    old code.

    ``library`` replaces :func:`library_fingerprint` (a worker passes the fingerprint of the
    library it imported, to detect an edit made since).
    """
    from nlhf_theory import __version__

    digest = hashlib.sha256(__version__.encode())
    digest.update((library_fingerprint() if library is None else library).encode())
    for path in sorted(experiment.path.glob("*.py")):
        if path.name != "plot.py":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _with_cell_columns(frame: pd.DataFrame, cell: dict) -> pd.DataFrame:
    """Prepend the cell's scalar parameters as columns (those the frame lacks)."""
    frame = frame.copy()
    scalars = [(k, v) for k, v in cell.items()
               if isinstance(v, (str, bool, int, float, np.integer, np.floating))
               and k not in frame.columns]
    for position, (key, value) in enumerate(scalars):
        frame.insert(position, key, value)
    return frame


@contextlib.contextmanager
def cell_state():
    """Compute a cell in a fixed process state: jax's global x64 mode off (its default).

    Cells compute the same bytes whatever the calling process did before (a notebook that
    switched x64 on, a worker that ran other cells): the global ``jax_enable_x64`` flag is set
    to False for the cell and restored afterwards (the library's float64 computations switch it
    on themselves, :func:`nlhf_theory.algorithms.float64_mode`). No cell reads NumPy's or
    Python's global random state (every draw comes from a seeded generator or an explicit jax
    key).

    Raises:
      RuntimeError: inside jax's thread-local ``jax.enable_x64(True)`` context, which the global
        flag cannot override.

    Example:
      >>> import jax
      >>> from nlhf_theory.reproduce import cell_state
      >>> jax.config.update("jax_enable_x64", True)
      >>> with cell_state():
      ...     print(jax.config.jax_enable_x64)
      False
      >>> print(jax.config.jax_enable_x64)
      True
      >>> jax.config.update("jax_enable_x64", False)
    """
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        if jax.config.jax_enable_x64:
            raise RuntimeError("reproduce: called inside jax.enable_x64(True), a thread-local "
                               "x64 mode that would change the cells' results; call it outside")
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def compute_cell(experiment: Experiment, cell: dict) -> pd.DataFrame:
    """One cell's tidy frame (``run.run_cell`` in :func:`cell_state`, cell columns prepended)."""
    with cell_state():
        frame = experiment.run.run_cell(dict(cell))
    return _with_cell_columns(frame, cell)
