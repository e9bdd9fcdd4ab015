"""One exception hierarchy so the CLI can turn every expected failure into a
single `error: ...` line and the right exit code, without tracebacks."""


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
