"""What the resolver and sync need from any registry, whatever its transport."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ffstore.blobs import BlobStore


class Progress(Protocol):
    """How a fetch reports its bytes (ffstore.progress.Transfer is one)."""

    def advance(self, count: int) -> None:
        """`count` bytes received (negative: taken back, wrong bytes discarded)."""

    def skip(self, count: int) -> None:
        """`count` bytes an earlier run left, resumed."""


def _quiet(_message: str) -> None:
    """No one to tell (a library caller that did not ask)."""


@dataclass(frozen=True)
class TransferOptions:
    """Network behaviour, from the resolved settings. `notify` is told what a
    transfer is waiting for while it retries (the CLI prints it)."""

    timeout: float
    retries: int
    partial_dir: Path  # where interrupted downloads wait to be resumed
    notify: Callable[[str], None] = _quiet


class Registry(Protocol):
    location: str

    def read_index(self) -> bytes:
        """The raw signed index; callers verify it."""

    def read_manifest(self, digest: str) -> bytes:
        """Raw manifest bytes; callers check them against the digest."""

    def read_signatures(self, digest: str) -> bytes | None:
        """The manifest's signature document, or None when there is none."""

    def fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress) -> None:
        """Put the blob into `store`, verified against digest and size."""
