"""Make the local store hold exactly what a lock names, verified: each manifest
against its digest and a trusted signature, each blob against its digest and size.
Blobs already present are not re-read, so a sync with nothing to do is instant
whatever the model sizes; `ff verify` is the command that re-hashes."""

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ffstore.context import Context
from ffstore.errors import StaleLockError
from ffstore.lockfile import Lock, LockedModule
from ffstore.manifest import Manifest
from ffstore.progress import Transfer
from ffstore.project import Project
from ffstore.trust import check_lock_entry


@dataclass(frozen=True)
class SyncReport:
    modules: int
    files_fetched: int
    bytes_fetched: int
    bytes_total: int
    stale: bool


def lock_problems(project: Project, lock: Lock) -> list[str]:
    """How the lock disagrees with facefusion.toml, entry by entry. The lock's
    `inputs` line is not enough: a lock edited by hand, truncated, or copied from
    another project may keep the line and pin anything."""
    problems = []
    if lock.inputs != project.inputs_hash():
        problems.append("facefusion.toml changed since the lock was made")
    for name in sorted(set(project.modules) - set(lock.modules)):
        problems.append(f"{name} is in facefusion.toml but not in the lock")
    for name in sorted(set(lock.modules) - set(project.modules)):
        problems.append(f"{name} is locked but not in facefusion.toml")
    for name in sorted(set(lock.modules) & set(project.modules)):
        spec, entry = project.modules[name], lock.modules[name]
        if entry.model != spec.model:
            problems.append(f"{name} is locked to {entry.model}, facefusion.toml wants {spec.model}")
        elif not spec.allows(entry.version):
            problems.append(f"{name} is locked at {entry.version}, outside '{spec.version}'")
        if entry.registry != spec.registry:
            problems.append(f"{name} is locked from registry {entry.registry!r}, facefusion.toml "
                            f"says {spec.registry!r}")
    for name, hold in sorted(lock.holds.items()):
        entry = lock.modules.get(name)
        if entry is None or entry.version != hold.version:
            problems.append(f"the hold on {name} is at {hold.version}, not the locked version")
    return problems


def check_fresh(context: Context, lock: Lock) -> bool:
    """True when the lock is what facefusion.toml asks for (see lock_problems)."""
    return not lock_problems(context.project, lock)


def verified_manifest(context: Context, entry: LockedModule) -> Manifest:
    """The manifest a lock entry names, from the store or its registry, checked
    against the lock's digest, a trusted signature, and the lock's file list."""
    manifest, signers = context.catalog(entry.registry).manifest(entry.manifest, entry.model)
    check_lock_entry(entry, manifest, signers)
    return manifest


def _verified_manifests(context: Context, entries: list[LockedModule]) -> list[Manifest]:
    """The entries' manifests, checked at once: one the store lacks is a round trip or
    two (manifest, signatures) to a registry that may be far away."""
    with ThreadPoolExecutor(max_workers=context.setting("jobs")) as pool:
        return list(pool.map(lambda entry: verified_manifest(context, entry), entries))


def sync_modules(context: Context, entries: Iterable[LockedModule],
                 progress: Transfer | None = None) -> tuple[int, int, int]:
    """Fetch what is missing for `entries`; returns (files fetched, bytes fetched,
    bytes in total). Any failure leaves the store as it was, minus nothing."""
    store = context.store
    entries = list(entries)
    manifests = list(zip(entries, _verified_manifests(context, entries), strict=True))
    missing: dict[str, tuple[LockedModule, int, str]] = {}
    total = 0
    for entry, manifest in manifests:
        for file in manifest.files:
            total += file.size
            if not store.blobs.has(file.digest, file.size):
                missing[file.digest] = (entry, file.size, file.path)
    transfer = progress or Transfer()
    transfer.begin(len(missing), sum(size for _e, size, _p in missing.values()))

    def fetch(item: tuple[str, tuple[LockedModule, int, str]]) -> None:
        digest, (entry, size, path) = item
        transfer.start_file(path)
        context.catalog(entry.registry).registry.fetch_blob(digest, size, store.blobs, transfer,
                                                            entry.model)
        transfer.file_done()

    if missing:
        pool = ThreadPoolExecutor(max_workers=context.setting("jobs"))
        try:
            for future in [pool.submit(fetch, item) for item in missing.items()]:
                future.result()
        except KeyboardInterrupt:
            transfer.cancel()  # the fetch threads stop at their next chunk
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        store.stamp_fetched(list(missing))
    for _entry, manifest in manifests:
        store.view(manifest)
    return len(missing), sum(size for _e, size, _p in missing.values()), total


def sync(context: Context, locked: bool = False,
         progress: Transfer | None = None) -> SyncReport:
    lock = context.require_lock()
    problems = lock_problems(context.project, lock)
    if locked and problems:
        more = f" (and {len(problems) - 1} more; -v lists them)" if len(problems) > 1 else ""
        raise StaleLockError(f"facefusion.lock is stale: {problems[0]}{more}; "
                             "run `ff lock` and commit facefusion.lock", problems)
    fresh = not problems
    with context.store.using():
        files, fetched, total = sync_modules(context, lock.modules.values(), progress)
        context.history.record(lock, "sync: lock changed on disk", only_if_changed=True)
    return SyncReport(len(lock.modules), files, fetched, total, not fresh)
