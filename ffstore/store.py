"""The user's local store (FF_HOME): blobs plus the verified manifests and
signatures that describe them, materialised model directories, keys, per-project
history, and what this machine remembers about registries."""

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffstore import fsutil, layout
from ffstore.blobs import BlobStore
from ffstore.canonical import load_json
from ffstore.errors import FFError, VerificationError
from ffstore.manifest import Manifest, parse_manifest, parse_signatures


@dataclass(frozen=True)
class RegistryMemory:
    """What this machine has seen of a registry: the identity it gave at its
    location, its highest index version, and keys it has handed over from."""

    identity: str
    version: int
    retired: frozenset[str]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore(root)
        self.key_dir = root / layout.KEYS
        self.projects_dir = root / layout.PROJECTS
        self.partial_dir = root / layout.PARTIAL
        self._manifest_dir = root / layout.MANIFESTS
        self._view_dir = root / layout.VIEWS
        self._state_file = root / layout.REGISTRY_STATE

    @contextlib.contextmanager
    def using(self, exclusive: bool = False) -> Iterator[None]:
        """Readers and writers hold the store lock shared; `ff gc` holds it exclusive,
        so it never deletes a blob a concurrent sync is about to reference."""
        with fsutil.file_lock(self.root / layout.STORE_LOCK, shared=not exclusive):
            if exclusive:
                self.blobs.sweep()
            yield

    # --- manifests ------------------------------------------------------------

    def manifest_path(self, digest: str) -> Path:
        return self.root / layout.manifest(digest)

    def has_manifest(self, digest: str) -> bool:
        return self.manifest_path(digest).is_file()

    def save_manifest(self, digest: str, data: bytes, signatures: bytes | None) -> None:
        fsutil.atomic_write(self.root / layout.signatures(digest), signatures or b"",
                            mode=0o644)
        if not self.has_manifest(digest):
            fsutil.atomic_write(self.manifest_path(digest), data, mode=0o444)

    def load_manifest(self, digest: str) -> tuple[Manifest, dict[str, str]]:
        """A stored manifest, re-checked against its digest (the store is a cache, not
        a root of trust), with its signatures."""
        try:
            data = self.manifest_path(digest).read_bytes()
        except FileNotFoundError:
            raise FFError(f"manifest {digest} is not in the store; run `ff sync`") from None
        try:
            manifest = parse_manifest(data, digest)
        except VerificationError as exc:
            raise VerificationError(f"stored {exc}; run `ff verify` (it removes it) and retry"
                                    ) from None
        sig_path = self.root / layout.signatures(digest)
        try:
            signatures = parse_signatures(sig_path.read_bytes(), str(sig_path))
        except FileNotFoundError:
            signatures = {}
        return manifest, signatures

    def manifest_digests(self) -> list[str]:
        if not self._manifest_dir.is_dir():
            return []
        return sorted(digest for p in self._manifest_dir.glob("*.json")
                      if (digest := layout.digest_of(p.name)) is not None)

    def remove_manifest(self, digest: str) -> None:
        self.manifest_path(digest).unlink(missing_ok=True)
        (self.root / layout.signatures(digest)).unlink(missing_ok=True)
        view = self.root / layout.view(digest)
        if view.is_symlink():  # never follow a link out of the store
            view.unlink()
        elif view.is_dir():
            shutil.rmtree(view)  # removes links inside it, never what they point to

    # --- views ----------------------------------------------------------------

    def view(self, manifest: Manifest) -> Path:
        """A directory holding the model's files under their manifest paths (hard links
        to the blobs), so an ONNX file finds its external data beside it."""
        directory = self.root / layout.view(manifest.digest)
        for entry in manifest.files:
            target = directory / entry.path
            self._no_links_above(directory, target)
            if target.is_file() and not target.is_symlink() and os.path.samefile(
                    target, self.blobs.path(entry.digest)):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # A name of its own per writer: two syncs may build the same view at once.
            temp = target.parent / (f"{fsutil.TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-"
                                    f"{target.name}")
            temp.unlink(missing_ok=True)
            os.link(self.blobs.path(entry.digest), temp)
            os.replace(temp, target)
        return directory

    def _no_links_above(self, directory: Path, target: Path) -> None:
        """Replace any symlink on the way from the views to `target` (the view, a
        subfolder of it) by nothing: ff writes only inside its store."""
        for place in (self._view_dir, directory, *reversed(target.parents)):
            if place.is_relative_to(directory.parent) and place.is_symlink():
                place.unlink()

    # --- registry freshness memory ---------------------------------------------

    def _registry_state(self) -> dict[str, dict[str, Any]]:
        """{"versions": {registry: highest index version}, "ids": {location: registry
        identity}, "retired": {registry: [keys]}}. The first format, one flat
        {location: version}, is read as versions."""
        try:
            value = load_json(self._state_file.read_bytes(), str(self._state_file))
        except (FileNotFoundError, ValueError):
            return {"versions": {}, "ids": {}, "retired": {}}
        if not isinstance(value, dict):
            value = {}
        if value and all(isinstance(v, int) for v in value.values()):
            value = {"versions": value}
        return {part: value.get(part) if isinstance(value.get(part), dict) else {}
                for part in ("versions", "ids", "retired")}

    def registry_memory(self, location: str, identity: str, *aliases: str) -> RegistryMemory:
        """What this machine remembers of the registry at `location` that now calls
        itself `identity` (empty: a spec 1 index, known by location only); `aliases`
        are older spellings of the location whose counters still count."""
        state = self._registry_state()
        versions, retired = state["versions"], state["retired"]
        key = identity or location
        seen = max(int(versions.get(name, 0)) for name in (key, location, *aliases))
        return RegistryMemory(str(state["ids"].get(location, "")), seen,
                              frozenset(retired.get(key, [])))

    def remember_registry(self, location: str, identity: str, version: int,
                          retired: frozenset[str]) -> None:
        with fsutil.file_lock(self.root / layout.STATE_LOCK):
            state = self._registry_state()
            key = identity or location
            changed = False
            if int(state["versions"].get(key, 0)) < version:
                state["versions"][key] = version
                changed = True
            if identity and state["ids"].get(location) != identity:
                state["ids"][location] = identity
                changed = True
            known = set(state["retired"].get(key, []))
            if not retired <= known:
                state["retired"][key] = sorted(known | retired)
                changed = True
            if changed:
                fsutil.atomic_write(self._state_file,
                                    json.dumps(state, indent=1, sort_keys=True).encode())

    # --- verification stamps ---------------------------------------------------

    def stamp_path(self, digest: str) -> Path:
        return self.root / layout.stamp(digest)

    def stamp(self, digest: str, size: int) -> dict[str, Any] | None:
        """The blob's stamp if it says ff read and checked the blob as it is now: same
        size, inode and mtime as then. Any write changes mtime; a hard link changes
        only ctime, so ctime is not compared (each export would void it). File times
        tick coarsely (a few ms), so a stamp written in the tick of the blob's last
        write proves nothing ("racy git"): it is not trusted. Its `crc32` is None when
        the check was sync's (which hashes SHA-256 only)."""
        path = self.stamp_path(digest)
        try:
            written = path.stat().st_mtime_ns
            stamp = load_json(path.read_bytes(), str(path))
            stat = self.blobs.path(digest).stat()
        except (FileNotFoundError, ValueError):
            return None  # a stamp is a cache: a damaged one only costs a re-read
        if not isinstance(stamp, dict) or stat.st_size != size or written <= stat.st_mtime_ns:
            return None
        now = {"size": stat.st_size, "ino": stat.st_ino, "mtime_ns": stat.st_mtime_ns}
        if any(stamp.get(key) != value for key, value in now.items()):
            return None
        crc = stamp.get("crc32")
        if crc is not None and not (isinstance(crc, str) and len(crc) == 8
                                    and set(crc) <= set("0123456789abcdef")):
            return None
        return stamp

    def stamped_crc32(self, digest: str, size: int) -> str | None:
        """The blob's CRC-32, if its stamp holds and has one."""
        stamp = self.stamp(digest, size)
        return None if stamp is None else stamp.get("crc32")

    def write_stamp(self, digest: str, stat: os.stat_result, crc32: str | None) -> None:
        """Record that ff read the whole blob and found its SHA-256 right (and its
        CRC-32, if given), while the file was as `stat` (taken before the read) says."""
        self._wait_out_tick(stat.st_mtime_ns)
        stamp = {"crc32": crc32, "ino": stat.st_ino, "mtime_ns": stat.st_mtime_ns,
                 "size": stat.st_size}
        fsutil.atomic_write(self.stamp_path(digest),
                            json.dumps(stamp, sort_keys=True, separators=(",", ":")).encode())

    def stamp_fetched(self, digests: list[str]) -> None:
        """Stamp blobs sync has just verified on receipt, so that exporting them
        needs their CRC-32 only, not another SHA-256."""
        stats = [(digest, self.blobs.path(digest).stat()) for digest in digests]
        if stats:
            self._wait_out_tick(max(stat.st_mtime_ns for _digest, stat in stats))
        for digest, stat in stats:
            self.write_stamp(digest, stat, None)

    @staticmethod
    def _wait_out_tick(mtime_ns: int) -> None:
        """A stamp written in the tick of the blob's last write is not trusted (see
        `stamp`): a blob written a moment ago waits two 10 ms ticks out, once."""
        import time

        wait = mtime_ns + 20_000_000 - time.time_ns()
        if wait > 0:
            time.sleep(wait / 1e9)

    def prune_stamps(self) -> None:
        """Drop the stamps of blobs that are gone (gc, verify's quarantine)."""
        directory = self.root / layout.STAMPS
        if not directory.is_dir():
            return
        for stamp in directory.glob("*.json"):
            digest = layout.digest_of(stamp.name)
            if digest is not None and not self.blobs.has(digest):
                stamp.unlink(missing_ok=True)
