"""A registry seen through verification: its index is accepted only when signed by
a trusted key, unexpired and not older than one seen before, and a manifest only
when it matches its digest and carries a trusted signature. Verified manifests are
kept in the local store."""

import threading
from collections.abc import Callable

from ffstore.errors import FFError, VerificationError
from ffstore.index import Index, parse_index, verify_index
from ffstore.manifest import Manifest, parse_manifest, parse_signatures, require_trusted
from ffstore.project import RegistryConfig
from ffstore.registry import Registry, canonical_location
from ffstore.store import Store


class Catalog:
    def __init__(self, config: RegistryConfig, open_registry: Callable[[], Registry],
                 trusted: frozenset[str], store: Store) -> None:
        """The registry is opened on first use: a sync or rollback whose manifests and
        blobs are all in the store never touches it, and so never pays for importing
        and setting up an HTTP client."""
        self.config = config
        self._open_registry = open_registry
        self._trusted = trusted
        self._store = store
        # Sync asks for several manifests and blobs at once: one registry and one
        # index check per catalog, whichever thread comes first.
        self._lock = threading.RLock()
        self._registry: Registry | None = None
        self._index: tuple[Index, frozenset[str]] | None = None

    @property
    def registry(self) -> Registry:
        with self._lock:
            if self._registry is None:
                self._registry = self._open_registry()
            return self._registry

    @property
    def where(self) -> str:
        return f"index of registry {self.config.name!r} ({self.config.location})"

    @property
    def _verified(self) -> tuple[Index, frozenset[str]]:
        with self._lock:
            if self._index is None:
                index = parse_index(self.registry.read_index(), self.where)
                # Remembered by the registry's own identity (spec 2), else by where
                # the bytes really come from (a resolved directory, a URL in one
                # spelling), not by the toml's spelling: two projects saying
                # "models/registry" differ.
                raw = self.registry.location
                location = canonical_location(raw)
                memory = self._store.registry_memory(location, index.registry, raw)
                if memory.identity and index.registry != memory.identity:
                    raise VerificationError(
                        f"{self.where} identifies as registry {index.registry or '(none: spec 1)'}"
                        f", but this location served registry {memory.identity} before: another "
                        "registry, or an old index replayed; refusing it")
                keys = verify_index(index, self._trusted, self.where, min_version=memory.version,
                                    retired=memory.retired)
                self._store.remember_registry(location, index.registry, index.version,
                                              index.handed_over(self._trusted) | memory.retired)
                self._index = index, keys
            return self._index

    @property
    def index(self) -> Index:
        return self._verified[0]

    @property
    def trusted(self) -> frozenset[str]:
        """Trusted keys for this registry, including keys rotated in by the index."""
        return self._verified[1]

    def manifest(self, digest: str) -> tuple[Manifest, list[str]]:
        """The manifest and its trusted signers, fetched if the store lacks it."""
        if self._store.has_manifest(digest):
            manifest, signatures = self._store.load_manifest(digest)
            signers = self._signers(manifest, digest, signatures)
            return manifest, signers
        data = self.registry.read_manifest(digest)
        manifest = parse_manifest(data, digest)
        raw_signatures = self.registry.read_signatures(digest)
        signatures = parse_signatures(raw_signatures, f"signatures of {digest}")
        signers = self._signers(manifest, digest, signatures)
        self._store.save_manifest(digest, data, raw_signatures)
        return manifest, signers

    def _signers(self, manifest: Manifest, digest: str, signatures: dict[str, str]) -> list[str]:
        """Trusted signers by the user's keys alone when possible, so a cached manifest
        needs no network; otherwise the index is read for keys rotated in. If the index
        cannot vouch either, the manifest's own refusal is the news."""
        try:
            return require_trusted(manifest, digest, signatures, self._trusted)
        except VerificationError as direct:
            try:
                keys = self.trusted
            except FFError:
                raise direct from None
            return require_trusted(manifest, digest, signatures, keys)
