"""Garbage collection: remove what no registered project still needs. A project
needs what its current lock names plus, per module, the last N distinct versions in
its history (so a rollback stays instant), plus every blob that the record of a
folder it exported to (`ff export`) still lists. gc never touches those folders."""

from dataclasses import dataclass

from ffstore.errors import FFError, InputError
from ffstore.export import exported_digests
from ffstore.history import registered_projects
from ffstore.lockfile import Lock, read_lock
from ffstore.project import LOCK_NAME
from ffstore.store import Store


@dataclass(frozen=True)
class Removal:
    """One blob gc removes (or, dry, would): what it was, as far as the store knows."""

    digest: str
    size: int
    model: str = ""
    version: str = ""
    path: str = ""


@dataclass(frozen=True)
class GcReport:
    blobs_removed: int
    bytes_freed: int
    manifests_removed: int
    projects: int
    removals: tuple[Removal, ...] = ()


def _referenced(store: Store, keep: int) -> tuple[set[str], set[str], int]:
    manifests: set[str] = set()
    blobs: set[str] = set()
    count = 0

    def take(lock: Lock, names: set[str] | None = None) -> None:
        for name, entry in lock.modules.items():
            if names is None or name in names:
                manifests.add(entry.manifest)
                blobs.update(f.digest for f in entry.files)

    for history in registered_projects(store.projects_dir):
        # An exported folder outlives its project's lock: FaceFusion may still run it.
        blobs.update(exported_digests(history))
        lock_path = history.project_root / LOCK_NAME
        if not lock_path.is_file():
            continue  # the project is gone; its models are no longer needed
        count += 1
        try:
            current = read_lock(lock_path)
        except InputError as exc:
            raise InputError(f"{exc} (gc refuses to guess what that project needs)") from None
        if current is not None:
            take(current)
        seen: dict[str, list[str]] = {}
        for generation in reversed(history.generations()):
            lock = generation.lock
            for name, entry in lock.modules.items():
                versions = seen.setdefault(name, [])
                if entry.manifest not in versions and len(versions) < keep:
                    versions.append(entry.manifest)
                    take(lock, {name})
    return manifests, blobs, count


def gc(store: Store, keep: int, dry_run: bool = False) -> GcReport:
    with store.using(exclusive=True):
        manifests, blobs, projects = _referenced(store, keep)
        doomed = [d for d in store.blobs.digests() if d not in blobs]
        freed = sum(store.blobs.size(d) for d in doomed)
        stale_manifests = [d for d in store.manifest_digests() if d not in manifests]
        removals = _describe(store, doomed)
        if not dry_run:
            for digest in stale_manifests:
                store.remove_manifest(digest)  # drops its view links too
            for digest in doomed:
                store.blobs.remove(digest)
            store.prune_stamps()
    return GcReport(len(doomed), freed, len(stale_manifests), projects, removals)


def _describe(store: Store, doomed: list[str]) -> tuple[Removal, ...]:
    """Name each doomed blob by the stored manifests that list it (a blob no stored
    manifest lists is named by its digest alone)."""
    known: dict[str, tuple[str, str, str]] = {}
    for digest in store.manifest_digests():
        try:
            manifest, _signatures = store.load_manifest(digest)
        except FFError:
            continue  # a damaged manifest names nothing; ff verify reports it
        for file in manifest.files:
            known.setdefault(file.digest, (manifest.model, manifest.version, file.path))
    return tuple(Removal(digest, store.blobs.size(digest), *known.get(digest, ("", "", "")))
                 for digest in doomed)
