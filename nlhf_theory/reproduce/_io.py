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


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
