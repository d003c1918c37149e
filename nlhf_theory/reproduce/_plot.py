"""Figure helpers: mean curves with confidence bands over seeds, deterministic atomic saving."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nlhf_theory.reproduce._io import publish  # noqa: E402
from nlhf_theory.reproduce._stats import seed_band  # noqa: E402

#: Figure style for print: readable fonts at a column width.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 7,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 150,
    "savefig.bbox": "tight",
    "svg.hashsalt": "nlhf_theory",
}


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 3.4, height: float = 2.7,
             **kwargs):
    """``plt.subplots`` with the print style and ``width x height`` inches per panel."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                                 squeeze=False, **kwargs)
    fig.set_dpi(STYLE["figure.dpi"])
    return fig, axes


def band(ax, frame, x: str, y: str, *, label=None, log: bool = False, confidence=0.95,
         **line_kwargs):
    """Plot the mean of ``y`` over seeds against ``x`` with a shaded confidence band.

    Args:
      ax: a matplotlib axis.
      frame: tidy results for one curve (one row per seed and ``x``).
      x, y: column names.
      label: legend label.
      log: geometric mean and band (for log axes).
      confidence: level of the band.
      **line_kwargs: passed to ``ax.plot``.

    Returns:
      The summary frame (``x, mean, low, high, num_seeds``).
    """
    summary = seed_band(frame, x, y, log=log, confidence=confidence)
    (line,) = ax.plot(summary[x], summary["mean"], label=label, **line_kwargs)
    if (summary["num_seeds"] > 1).any():
        ax.fill_between(summary[x], summary["low"], summary["high"], color=line.get_color(),
                        alpha=0.2, linewidth=0)
    return summary


def save_figure(fig, directory, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` and ``name.pdf`` into ``directory``, atomically.

    Metadata that changes between runs (creation dates) is dropped, so the same results give
    byte-identical files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(STYLE):
        for ext, metadata in (("png", {"Software": None}),
                              ("pdf", {"CreationDate": None, "Producer": None,
                                       "Creator": None})):
            path = directory / f"{name}.{ext}"
            fd, tmp = tempfile.mkstemp(dir=directory, suffix=f".{ext}.tmp")
            os.close(fd)
            try:
                fig.savefig(tmp, format=ext, metadata=metadata)
                publish(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            paths.append(path)
    plt.close(fig)
    return paths
