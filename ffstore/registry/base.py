"""What every registry does the same way, whatever its transport: the base class
owns the invariants, so a backend (a directory, HTTP, next OCI) only opens byte
streams.

- Documents (index, manifests, signature documents) are capped in size before
  anything parses them (`layout.MAX_*`), for every backend alike.
- Absence is one answer: a document that is not there is None, and a required one
  that is not there is one error that names it.
- Failures are sorted in two: `Transient` (another attempt may succeed: a dropped
  connection, a 5xx) is retried with backoff, telling the user what it waits for;
  `SourceFailed` (another attempt will not help) ends at once. Either way the user
  gets one line in the same words from every backend.
- Blob bytes go to the store's verifier (`BlobStore.ingest*`), which hashes them
  as they arrive and lets nothing under a digest that does not match it.
"""

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from ffstore import layout
from ffstore.blobs import BlobStore
from ffstore.errors import FFError

BACKOFF_FRACTION = 0.05  # first pause between attempts, as a fraction of the timeout
MAX_FREE_ATTEMPTS = 16  # resumed attempts after partial progress; a drip-feeding server ends

T = TypeVar("T")


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


class Transient(Exception):
    """A failure another attempt may fix: connection trouble, a timeout, a 5xx.
    `progressed` says the attempt received bytes before failing."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class SourceFailed(Exception):
    """A failure another attempt at the same source will not fix (not there, wrong
    bytes, retries used up); another source (a mirror) may still serve a blob."""


@dataclass(frozen=True)
class Document:
    """A document a registry holds. The directory layout files it by digest alone;
    an OCI registry files it in its model's repository, hence `model`."""

    kind: Literal["index", "manifest", "signatures"]
    digest: str = ""
    model: str = ""

    @property
    def relative(self) -> str:
        """Where the directory layout (local and HTTP registries) keeps it."""
        if self.kind == "index":
            return layout.INDEX
        return (layout.manifest if self.kind == "manifest" else layout.signatures)(self.digest)

    @property
    def what(self) -> str:
        return {"index": layout.INDEX, "manifest": f"manifest {self.digest}",
                "signatures": f"signatures of {self.digest}"}[self.kind]

    @property
    def limit(self) -> int:
        return {"index": layout.MAX_INDEX, "manifest": layout.MAX_MANIFEST,
                "signatures": layout.MAX_SIGNATURES}[self.kind]


class Registry(ABC):
    """A registry's documents and blobs, with the invariants above. Subclasses
    implement `_read` and `_fetch_blob`, and say how they name a place (`address`)
    and what a user should check when one fails (`advice`)."""

    advice = "check [registries] in facefusion.toml or pass --registry"

    def __init__(self, location: str, options: TransferOptions) -> None:
        self.location = location
        self.options = options

    # --- for subclasses --------------------------------------------------------------

    @abstractmethod
    def _read(self, document: Document, limit: int) -> bytes | None:
        """The document, None when it is not there. May stop reading
        after `limit + 1` bytes (the caller refuses anything over `limit`). Raises
        Transient or SourceFailed."""

    @abstractmethod
    def _fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress,
                    model: str) -> None:
        """Hand the bytes of `model`'s blob to `store`'s verifier. Raises SourceFailed with the
        reason (every source's, where there are several)."""

    def address(self, document: Document) -> str:
        """How the user is told where `document` is."""
        return f"{self.location}/{document.relative}"

    # --- documents -------------------------------------------------------------------

    def read_index(self) -> bytes:
        """The raw signed index; ffstore/trust.py judges it."""
        return self._required(Document("index"))

    def read_manifest(self, digest: str, model: str) -> bytes:
        """Raw bytes of `model`'s manifest; callers check them against the digest."""
        return self._required(Document("manifest", digest, model))

    def read_signatures(self, digest: str, model: str) -> bytes | None:
        """The manifest's signature document, or None when there is none."""
        return self.find(Document("signatures", digest, model))

    def find(self, document: Document) -> bytes | None:
        """The document, None when the registry does not hold it."""
        limit = document.limit
        try:
            data = self.retrying(lambda: self._read(document, limit))
        except SourceFailed as exc:
            raise FFError(f"cannot read {self.address(document)}: {exc}; {self.advice}") from None
        if data is not None and len(data) > limit:
            raise FFError(f"{document.what} in registry {self.location} is larger than "
                          f"{limit >> 10} KiB, which no such ff document is; the registry is "
                          "damaged")
        return data

    def _required(self, document: Document) -> bytes:
        data = self.find(document)
        if data is None:
            raise FFError(f"{document.what} not found in registry {self.location}; {self.advice}")
        return data

    # --- blobs -----------------------------------------------------------------------

    def fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress,
                   model: str) -> None:
        """Put a blob of `model` into `store`, verified against digest and size."""
        try:
            self._fetch_blob(digest, size, store, progress, model)
        except SourceFailed as exc:
            raise FFError(f"cannot download blob {digest} ({size} bytes) {exc}; nothing was "
                          "stored; check the registry (and its mirrors) or retry later") from None

    # --- retries ---------------------------------------------------------------------

    def retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it succeeds, pausing with jittered exponential backoff
        after transient failures. The pause scales with http_timeout: a registry slow
        enough to need a long timeout deserves longer pauses, and tests stay quick.
        An attempt that made progress before failing is free and resumes at once, up to
        MAX_FREE_ATTEMPTS times, so a server that drip-feeds bytes cannot keep it going."""
        failures = free = 0
        while True:
            try:
                return attempt()
            except Transient as exc:
                if exc.progressed and free < MAX_FREE_ATTEMPTS:
                    free += 1
                    continue
                failures += 1
                if failures >= self.options.retries:
                    raise SourceFailed(f"{exc}; gave up after {failures} attempts (setting "
                                       "http_retries)") from None
                pause = min(self.options.timeout,
                            BACKOFF_FRACTION * self.options.timeout * 2 ** (failures - 1))
                self.options.notify(f"{self.location}: {exc}; retrying in {pause:.1f} s "
                                    f"(attempt {failures + 1} of {self.options.retries})")
                time.sleep(pause * random.uniform(0.5, 1.0))
