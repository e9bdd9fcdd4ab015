"""A registry that is a directory on this machine (or a mounted share)."""

from pathlib import Path

from ffstore import layout
from ffstore.blobs import BlobStore
from ffstore.errors import FFError, VerificationError
from ffstore.registry.base import Progress


class LocalRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _read(self, relative: str, what: str, limit: int) -> bytes:
        data = self._optional(relative, what, limit)
        if data is None:
            raise FFError(f"{what} not found in registry {self.root}")
        return data

    def _optional(self, relative: str, what: str, limit: int) -> bytes | None:
        """The file's bytes, None if it is missing; refused beyond `limit` bytes."""
        try:
            with open(self.root / relative, "rb") as handle:
                data = handle.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FFError(f"cannot read {what} from registry {self.root}: {exc.strerror}") from None
        if len(data) > limit:
            raise FFError(f"{what} in registry {self.root} is larger than {limit >> 10} KiB, "
                          "which no such ff document is; the registry is damaged")
        return data

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise FFError(f"registry directory {self.root} does not exist; check [registries] "
                          "in facefusion.toml or pass --registry")

    def read_index(self) -> bytes:
        self._require_root()
        return self._read(layout.INDEX, "index.json", layout.MAX_INDEX)

    def read_manifest(self, digest: str) -> bytes:
        return self._read(layout.manifest(digest), f"manifest {digest}", layout.MAX_MANIFEST)

    def read_signatures(self, digest: str) -> bytes | None:
        return self._optional(layout.signatures(digest), f"signatures of {digest}",
                              layout.MAX_SIGNATURES)

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
        progress.advance(size)
