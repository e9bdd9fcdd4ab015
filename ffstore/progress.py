"""Transfer progress for `ff sync`: files and bytes done out of what is missing, and
the rate. Counting is separate from drawing so the library can always report and
only a terminal gets a bar; logs and pipes stay clean."""

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

REDRAW_SECONDS = 0.1


class Transfer:
    """Counts one sync's transfers. Fetch threads call `advance` concurrently; a
    negative count takes back bytes that were discarded (wrong bytes from a mirror)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files = self.files_done = 0
        self.total = self.done = 0
        self.resumed = 0  # of `done`: bytes an earlier run left (not received now)
        self.current = ""  # the file being fetched, for the display
        self.started = time.monotonic()
        self._cancelled = False

    def begin(self, files: int, total: int) -> None:
        with self._lock:
            self.files, self.total = files, total
            self.started = time.monotonic()
        self._changed()

    def advance(self, count: int) -> None:
        """Count `count` bytes. After `cancel`, raises KeyboardInterrupt instead, in
        whichever fetch thread reports next, so a Ctrl-C stops every transfer within
        a chunk (what arrived stays in partial/ for a resume)."""
        if self._cancelled:
            raise KeyboardInterrupt
        with self._lock:
            self.done += count
        self._changed()

    def skip(self, count: int) -> None:
        """Count bytes an earlier, interrupted run left: done, but not received now,
        so they do not inflate the rate."""
        with self._lock:
            self.done += count
            self.resumed += count
        self._changed()

    def start_file(self, name: str) -> None:
        with self._lock:
            self.current = name
        self._changed()

    def cancel(self) -> None:
        self._cancelled = True

    def file_done(self) -> None:
        with self._lock:
            self.files_done += 1
        self._changed()

    def _changed(self) -> None:
        """Called after every update; the terminal bar redraws here."""

    def __enter__(self) -> "Transfer":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        """Ends the display, so what is printed next starts on a clean line."""


def format_size(count: int) -> str:
    """Byte counts as ff prints them: `512 B`, `1.5 MiB`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


class Bar(Transfer):
    """A one-line bar on a terminal, redrawn at most every REDRAW_SECONDS."""

    def __init__(self, stream: TextIO, size_text: Callable[[int], str], width: int = 24) -> None:
        super().__init__()
        self._stream = stream
        self._size_text = size_text
        self._width = width
        self._drawn_at = 0.0
        self._shown = False

    def _changed(self) -> None:
        now = time.monotonic()
        if self.files and now - self._drawn_at >= REDRAW_SECONDS:
            self._drawn_at = now
            self._draw(now)

    def line(self, now: float) -> str:
        with self._lock:
            files, files_done, total, done = self.files, self.files_done, self.total, self.done
            received, current = done - self.resumed, self.current
            elapsed = max(now - self.started, 1e-6)
        filled = int(self._width * done / total) if total else self._width
        bar = "#" * filled + "-" * (self._width - filled)
        size = self._size_text
        rate = received / elapsed  # this run's bytes only: a resumed prefix cost nothing
        line = f"[{bar}] {files_done}/{files} files  {size(done)} / {size(total)}  {size(round(rate))}/s"
        if rate > 0 and total > done:
            left = round((total - done) / rate)
            line += f"  ETA {left // 60}:{left % 60:02d}"
        if current and files_done < files:
            line += f"  {current if len(current) <= 40 else '…' + current[-39:]}"
        return line

    def _draw(self, now: float) -> None:
        self._stream.write(f"\r{self.line(now)}\x1b[K")
        self._stream.flush()
        self._shown = True

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._shown:
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()


def for_terminal(quiet: bool, size_text: Callable[[int], str], stream: TextIO | None = None
                 ) -> Transfer:
    """A bar on stderr when it is a terminal and the user did not ask for quiet;
    a silent counter otherwise. `size_text` formats byte counts as the CLI does."""
    stream = stream or sys.stderr
    return Bar(stream, size_text) if not quiet and stream.isatty() else Transfer()
