"""Crash-safe file primitives. Every write in ff goes through here: a temp file in
the destination's directory, fsync, rename, fsync of the directory. A reader (or a
process killed half-way) therefore sees either the old file or the new one, never a
mix."""

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".ff-tmp-"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# What a write can meet that is about the place written, not the bytes read.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def naming(place: Path) -> Iterator[None]:
    """Name `place` in a write's OSError that names no file: a failed write, fsync or
    close reports only its errno ("No space left on device"), and the user needs to
    hear which disk is full or read-only."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno in WRITE_ERRNOS:
            exc.filename = str(place)
        raise


@contextlib.contextmanager
def temp_file(directory: Path, suffix: str = "") -> Iterator[tuple[BinaryIO, Path]]:
    """A temp file in `directory` (same filesystem, so the final rename is atomic).
    The file is removed if the block raises; a SIGKILL leaves it behind under a name
    that `sweep_temp_files` recognises. A write that fails names `directory`."""
    with naming(directory):
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=suffix,
                                    dir=directory)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle, path
        except BaseException:
            path.unlink(missing_ok=True)
            raise


def _default_mode() -> int:
    """What a plainly created file would get (mkstemp makes temp files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def commit(handle: BinaryIO, temp: Path, destination: Path, mode: int | None = None) -> None:
    """Flush and fsync `handle`, set `mode` (None: leave it), then rename `temp`
    over `destination`."""
    handle.flush()
    os.fsync(handle.fileno())
    if mode is not None:
        os.chmod(temp, mode)
    os.replace(temp, destination)
    fsync_dir(destination.parent)


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """For writers that need a file name rather than a handle (OpenCV's encoders): a
    temp path beside `destination` with its extension (encoders choose the format by
    it). On a clean exit it is fsynced and renamed over `destination`; on an error it
    is removed and `destination` is left as it was."""
    with temp_file(destination.parent, suffix=destination.suffix) as (_handle, temp):
        yield temp
        with open(temp, "rb") as written:
            commit(written, temp, destination, _default_mode())


def atomic_write(destination: Path, data: bytes, mode: int | None = None) -> None:
    """Replace `destination` with `data`; without `mode`, the file gets the mode a
    newly created file would (mkstemp's temp files are 0600)."""
    with temp_file(destination.parent) as (handle, temp):
        handle.write(data)
        commit(handle, temp, destination, _default_mode() if mode is None else mode)


def _writer_gone(name: str) -> bool:
    """Whether the process whose pid a temp file's name carries (`.ff-tmp-<pid>-...`)
    has ended. A name without one, or a pid still running (or reused), counts as
    alive: only the hour then tells."""
    pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def sweep_temp_files(root: Path) -> None:
    """Remove temp files that killed processes left anywhere under `root`: at once
    when the writer named in the file is gone, else once untouched for an hour, so a
    live writer's temp file is left alone."""
    if not root.is_dir():
        return
    cutoff = time.time() - 3600
    for entry in root.rglob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file() and not entry.is_symlink() and (
                    _writer_gone(entry.name) or entry.stat().st_mtime < cutoff):
                entry.unlink()


def open_no_follow(path: Path) -> int:
    """Open (creating) a file ff owns for reading and writing, never through a
    symlink: a link planted where ff keeps its files (the store, a partial download)
    would make ff write wherever it points. The link is replaced by a file."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    path.unlink()
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def _open_lock(path: Path) -> int:
    """A lock file's descriptor. Where this process may not write (a store on a
    read-only mount, another user's cache) an existing lock file is opened for
    reading: flock needs no write access, so readers still exclude the writers that
    can write there (through another mount), and a command with nothing to write
    (a sync with everything cached) works. The command that must write fails at
    that write, naming it."""
    try:
        return open_no_follow(path)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES):
            raise
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            raise exc from None


@contextlib.contextmanager
def file_lock(path: Path, shared: bool = False) -> Iterator[None]:
    """An advisory lock (flock) that the kernel drops when the process dies, so a
    killed `ff` never leaves the store locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
