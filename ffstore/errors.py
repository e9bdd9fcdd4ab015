"""One exception hierarchy so the CLI can turn every expected failure into a
single `error: ...` line and the right exit code, without tracebacks."""

import errno
import os


class FFError(Exception):
    """An operation failed (exit code 1): a check did not pass, a fetch failed.

    `details` are lines that explain the one-line message further (every tensor a
    model lacks, say); the CLI prints them only with `-v`."""

    exit_code = 1

    def __init__(self, message: str, details: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class InputError(FFError):
    """The user's input is wrong (exit code 2): bad flags, a malformed toml or lock,
    an unknown module, a missing key. The message says what to do."""

    exit_code = 2


class VerificationError(FFError):
    """Bytes or metadata failed a digest or signature check; nothing was accepted."""


class StaleLockError(FFError):
    """facefusion.lock no longer matches facefusion.toml."""


_FREE_SPACE = "free some space there (`ff gc` removes models no project needs) and run it again"
_OS_ADVICE = {
    errno.ENOSPC: _FREE_SPACE,
    errno.EDQUOT: _FREE_SPACE,
    errno.EROFS: ("ff must write there: make it writable, or point FF_HOME (or the registry) "
                  "at a place that is"),
    errno.EACCES: "check its permissions (or use another place)",
    errno.EPERM: "check its permissions (or use another place)",
    errno.EXDEV: ("ff renames its temp files into place: keep FF_HOME (or the registry) on one "
                  "filesystem, not split across mounts"),
}


def _read_only_directory(*names: object) -> str | None:
    """The first of the named files' directories that is on a read-only mount."""
    for name in names:
        if isinstance(name, str):
            directory = os.path.dirname(name) or "."
            try:
                if os.statvfs(directory).f_flag & os.ST_RDONLY:
                    return directory
            except OSError:
                continue
    return None


def describe_os_error(exc: OSError) -> str:
    """What the system refused, where, and what to do, on one line: an operation
    failed (exit code 1) because of the machine (a full disk, a read-only mount),
    not because of ff's input."""
    if exc.errno == errno.EXDEV:
        # A rename between two mounts of one tree (a read-only bind mount of blobs/,
        # say): the kernel names the mounts before it would name the read-only one.
        read_only = _read_only_directory(exc.filename2, exc.filename)
        if read_only is not None:
            return describe_os_error(OSError(errno.EROFS, os.strerror(errno.EROFS), read_only))
    reason = str(exc.strerror or exc)
    reason = reason[:1].lower() + reason[1:]
    where = f" ({exc.filename})" if exc.filename else ""
    advice = _OS_ADVICE.get(exc.errno or 0)
    return f"{reason}{where}" + (f"; {advice}" if advice else "")
