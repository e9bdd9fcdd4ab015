"""A registry as a project reads it: its index and manifests fetched once per run,
judged by the registry's trust state (ffstore/trust.py), and verified manifests kept
in the local store. The catalog does the reading and the caching; trust decides."""

import threading
from collections.abc import Callable

from ffstore.index import Index
from ffstore.manifest import Manifest, parse_manifest, parse_signatures
from ffstore.project import RegistryConfig
from ffstore.registry import Registry, canonical_location
from ffstore.store import Store
from ffstore.trust import RegistryTrust


class Catalog:
    def __init__(self, config: RegistryConfig, open_registry: Callable[[], Registry],
                 trusted: frozenset[str], store: Store) -> None:
        """The registry is opened on first use: a sync or rollback whose manifests and
        blobs are all in the store never touches it, and so never pays for importing
        and setting up an HTTP client."""
        self.config = config
        self._open_registry = open_registry
        self._store = store
        self._trust = RegistryTrust(trusted, store, self.where)
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
    def _accepted(self) -> tuple[Index, frozenset[str]]:
        with self._lock:
            if self._index is None:
                location = self.registry.location
                self._index = self._trust.accept_index(self.registry.read_index(),
                                                       canonical_location(location), location)
            return self._index

    @property
    def index(self) -> Index:
        return self._accepted[0]

    @property
    def trusted(self) -> frozenset[str]:
        """Trusted keys for this registry, including keys rotated in by the index."""
        return self._accepted[1]

    def manifest(self, digest: str, model: str) -> tuple[Manifest, list[str]]:
        """`model`'s manifest and its trusted signers, fetched if the store lacks it."""
        if self._store.has_manifest(digest):
            manifest, signatures = self._store.load_manifest(digest)
            return manifest, self._trust.manifest_signers(manifest, digest, signatures,
                                                          lambda: self.trusted)
        data = self.registry.read_manifest(digest, model)
        manifest = parse_manifest(data, digest)
        raw_signatures = self.registry.read_signatures(digest, model)
        signatures = parse_signatures(raw_signatures, f"signatures of {digest}")
        signers = self._trust.manifest_signers(manifest, digest, signatures, lambda: self.trusted)
        self._store.save_manifest(digest, data, raw_signatures)
        return manifest, signers
