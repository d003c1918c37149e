"""Reproduce the theorem-checking experiments: resumable runs, rates with intervals, figures.

``nlhf reproduce`` (or :func:`reproduce`) runs the experiments in ``experiments/``; each one
checks a claim from the literature and reports PASS or FAIL in ``paper_figures/README.md``. The
statistics (:func:`fit_slope`, :func:`seed_band`) and figure helpers (:func:`band`,
:func:`subplots`, :func:`save_figure`) are what the experiments share. See docs/experiments.md.
"""

from nlhf_theory.reproduce._cells import (
    MODES,
    Check,
    Experiment,
    cell_key,
    cell_state,
    code_version,
    experiments_dir,
    library_fingerprint,
    list_experiments,
    load_experiment,
)
from nlhf_theory.reproduce._io import atomic_write_text, write_section
from nlhf_theory.reproduce._plot import band, save_figure, subplots
from nlhf_theory.reproduce._runner import (
    CellStore,
    Outcome,
    reproduce,
    run_experiment,
    write_index,
)
from nlhf_theory.reproduce._stats import Slope, fit_slope, seed_band

__all__ = [
    "atomic_write_text",
    "write_section",
    "MODES",
    "CellStore",
    "Check",
    "Experiment",
    "Outcome",
    "Slope",
    "band",
    "cell_key",
    "cell_state",
    "code_version",
    "experiments_dir",
    "fit_slope",
    "library_fingerprint",
    "list_experiments",
    "load_experiment",
    "reproduce",
    "run_experiment",
    "save_figure",
    "seed_band",
    "subplots",
    "write_index",
]
