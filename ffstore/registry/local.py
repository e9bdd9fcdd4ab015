"""A registry that is a directory on this machine (or a mounted share). Its blobs
are hard-linked (or cloned) into the store where the filesystem allows, after the
store's verifier has read them."""

from pathlib import Path

from ffstore import layout
from ffstore.blobs import BlobStore
from ffstore.errors import VerificationError
from ffstore.registry.base import Document, Progress, Registry, SourceFailed, TransferOptions


class LocalRegistry(Registry):
    def __init__(self, root: Path, options: TransferOptions) -> None:
        super().__init__(str(root), options)
        self.root = root

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise SourceFailed(f"registry directory {self.root} does not exist")

    def _read(self, document: Document, limit: int) -> bytes | None:
        self._require_root()
        try:
            with open(self.root / document.relative, "rb") as handle:
                return handle.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceFailed(exc.strerror or type(exc).__name__) from None

    def _fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress,
                    model: str) -> None:
        self._require_root()
        source = self.root / layout.blob(digest)
        if not source.is_file():
            raise SourceFailed(f"from {self.root}: it is missing from the registry")
        try:
            if not store.adopt_file(source, digest, size):
                store.ingest_file(source, digest, size)
        except VerificationError as exc:
            raise SourceFailed(f"from {self.root}: the registry holds a corrupt copy ({exc}); ask "
                               "its owner to re-publish it") from None
        progress.advance(size)
