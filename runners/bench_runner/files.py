"""Crash-safe file writes shared by the spool and the runner config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Temp files start with this; a crash mid-write leaves at most one, which readers may delete.
TEMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the whole new one.

    A temp file in the same folder, fsync, rename, then the folder's fsync. With `mode` the
    temp file gets it before any byte is written (a secret is never readable by others).
    """
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
