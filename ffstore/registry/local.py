"""A registry that is a directory on this machine (or a mounted share)."""

from pathlib import Path

from ffstore.blobs import BlobStore
from ffstore.errors import FFError, VerificationError
from ffstore.registry import layout
from ffstore.registry.base import Progress


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _read(self, relative: str, what: str) -> bytes:
        try:
            return (self.root / relative).read_bytes()
        except FileNotFoundError:
            raise FFError(f"{what} not found in registry {self.root}") from None
        except OSError as exc:
            raise FFError(f"cannot read {what} from registry {self.root}: {exc.strerror}") from None

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise FFError(f"registry directory {self.root} does not exist; check [registries] "
                          "in facefusion.toml or pass --registry")

    def read_index(self) -> bytes:
        self._require_root()
        return self._read(layout.INDEX, "index.json")

    def read_manifest(self, digest: str) -> bytes:
        return self._read(layout.manifest(digest), f"manifest {digest}")

    def read_signatures(self, digest: str) -> bytes | None:
        try:
            return (self.root / layout.signatures(digest)).read_bytes()
        except FileNotFoundError:
            return None

    def fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress) -> None:
        source = self.root / layout.blob(digest)
        self._require_root()
        if not source.is_file():
            raise FFError(f"blob {digest} is missing from registry {self.root}")
        try:
            if not store.adopt_file(source, digest, size):
                store.ingest_file(source, digest, size)
        except VerificationError as exc:
            raise VerificationError(f"registry {self.root} holds a corrupt blob: {exc}; ask its "
                                    "owner to re-publish it") from None
        progress(size)
