"""Atomic file replacement for outputs.

A crash or Ctrl-C mid-write must never leave a truncated image or video under the
output name (a later run, or the user, would take it for a result). Writers produce
a temp file in the *same directory* (so the rename cannot cross filesystems) with
the *same extension* (OpenCV picks the encoder/container from it), which is fsynced
and then renamed over the target in one step.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def _fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write; on clean exit it replaces ``final`` atomically,
    on error it is removed and ``final`` is left as it was."""
    target = Path(final)
    directory = target.parent
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        _fsync_path(temp)
        os.replace(temp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            temp.unlink()
        raise
    # Persist the rename itself; not every platform can fsync a directory.
    with suppress(OSError):
        _fsync_path(directory, directory=True)
