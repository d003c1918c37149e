"""Atomic file writes: a killed run never leaves a truncated result behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def publish(tmp, path) -> None:
    """Give the finished temporary file ``tmp`` default permissions and move it onto ``path``.

    ``os.replace`` is atomic on POSIX within one file system, so readers see either the old file
    or the new one, never a partial write.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write_text(path, text: str, *, parents: bool = True) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder, so that a
    reader (or a killed writer) never sees a partial file; ``parents``: create missing
    folders (else a missing folder raises ``FileNotFoundError``)."""
    path = Path(path)
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_section(path, marker: str, section: str) -> None:
    """Put ``section`` between ``<!-- {marker}:start -->`` and ``<!-- {marker}:end -->`` in
    the text file ``path`` (replacing what was there, or appending the marked block; a missing
    file is created), atomically: how the benchmarks record their results in
    ``docs/benchmarks.md``.

    Example:
      >>> import pathlib, tempfile
      >>> from nlhf_theory.reproduce import write_section
      >>> path = pathlib.Path(tempfile.mkdtemp()) / "b.md"
      >>> write_section(path, "x", "old"); write_section(path, "x", "new")
      >>> print(path.read_text())
      <!-- x:start -->
      new
      <!-- x:end -->
      <BLANKLINE>
    """
    path = Path(path)
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    block = f"{start}\n{section.strip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    i, j = old.find(start), old.find(end)
    if i != -1 and j > i:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block + "\n"
    atomic_write_text(path, new)
