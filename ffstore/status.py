"""`ff status` and `ff path`: what the lock names and whether this machine has it,
read-only (nothing here fetches or rewrites)."""

from dataclasses import dataclass

from ffstore.context import Context
from ffstore.errors import FFError
from ffstore.lockfile import Hold
from ffstore.sync import check_fresh, verified_manifest


@dataclass(frozen=True)
class ModuleStatus:
    module: str
    model: str
    version: str
    synced: bool
    hold: Hold | None
    size: int


@dataclass(frozen=True)
class Status:
    modules: list[ModuleStatus]
    fresh: bool
    store_bytes: int


def status(context: Context) -> Status:
    lock = context.require_lock()
    blobs = context.store.blobs
    rows = []
    for name, entry in sorted(lock.modules.items()):
        synced = context.store.has_manifest(entry.manifest) and all(
            blobs.has(f.digest, f.size) for f in entry.files)
        rows.append(ModuleStatus(name, entry.model, entry.version, synced, lock.holds.get(name),
                                 sum(f.size for f in entry.files)))
    store_bytes = sum(blobs.size(d) for d in blobs.digests())
    return Status(rows, check_fresh(context, lock), store_bytes)


def model_path(context: Context, module: str) -> str:
    """The path of a locked module's main file, after checking every one of its
    files against the lock (re-hashed), so a script never loads a tampered model."""
    entry = context.require_lock().module(module)
    manifest = verified_manifest(context, entry)
    for file in manifest.files:
        if not context.store.blobs.has(file.digest, file.size):
            raise FFError(f"{entry.name} ({entry.model} {entry.version}) is not synced; run "
                          "`ff sync`")
        context.store.blobs.check_stored(file.digest)
    return str(context.store.view(manifest) / manifest.main_file.path)
