"""The verbs that change facefusion.lock (`ff lock`, `ff rollback`), as a library API
that the CLI and other programs call. Each one fetches what it needs before it
rewrites the lock, so a failure leaves facefusion.lock and the history as they were.
Resolving a toml into pins is ffstore/resolver.py; this module records, guards and
commits the result."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ffstore import __version__, fsutil
from ffstore.consumers import ModelInfo, check_models
from ffstore.context import Context
from ffstore.errors import FFError, InputError
from ffstore.history import Generation
from ffstore.lockfile import Hold, Lock, LockedModule, write_lock
from ffstore.manifest import normalize_version
from ffstore.resolver import pin, resolve
from ffstore.sync import sync_modules


@contextlib.contextmanager
def _project_lock(context: Context) -> Iterator[None]:
    """One lock-rewriting command per project at a time."""
    with fsutil.file_lock(context.history.directory / "project.lock"):
        yield


def _baseline(context: Context, lock: Lock) -> Generation:
    """Record the current lock if history does not know it yet (a fresh clone, or a
    lock changed by `git pull`), so a rollback can always return to it."""
    return context.history.record(lock, "lock found on disk", only_if_changed=True)


@dataclass(frozen=True)
class ModuleChange:
    module: str
    model: str
    from_version: str | None
    """None: the module was not locked before."""
    to_version: str


@dataclass(frozen=True)
class RollbackResult:
    lock: Lock
    """The lock as written."""
    changes: list[ModuleChange]
    """Each module the rollback moved (and now holds), in module order."""


def _changes(before: Lock, after: Lock) -> list[ModuleChange]:
    changes = []
    for name, entry in sorted(after.modules.items()):
        old = before.modules.get(name)
        if old is None or old.manifest != entry.manifest:
            changes.append(ModuleChange(name, entry.model, old.version if old else None,
                                        entry.version))
    return changes


@dataclass(frozen=True)
class LockResult:
    lock: Lock
    changed: bool
    previous: Lock | None
    notes: list[str]
    """What the installed runtimes say of locked models they do not use."""


def check_runnable(context: Context, entries: list[LockedModule], complete: bool) -> list[str]:
    """Refuse entries that an installed runtime cannot run (see ffstore.consumers),
    or whose release says it does not work with this ff; what the runtimes note.
    `complete`: the entries are a whole lock, not a few changed ones."""
    manifests = [context.catalog(entry.registry).manifest(entry.manifest, entry.model)[0]
                 for entry in entries]
    for manifest in manifests:
        manifest.require_ff(__version__)
    return check_models([ModelInfo.of(manifest) for manifest in manifests], complete)


def lock(context: Context, upgrade_all: bool = False,
         upgrade: frozenset[str] = frozenset()) -> LockResult:
    project = context.project
    with _project_lock(context):
        current = context.read_lock()
        new = resolve(project, context.catalog, current, upgrade_all, upgrade)
        notes = check_runnable(context, [new.modules[name] for name in sorted(new.modules)],
                               complete=True)
        if current is not None:
            _baseline(context, current)
        changed = write_lock(project.lock_path, new)
        what = "lock --upgrade" if upgrade_all else (
            f"lock --upgrade-module {','.join(sorted(upgrade))}" if upgrade else "lock")
        context.history.record(new, what, only_if_changed=True)
    return LockResult(new, changed, current, notes)


def _previous_entry(generations: list[Generation], current: Generation, module: str,
                    entry: LockedModule) -> tuple[LockedModule, int] | None:
    origin = current.module_origins.get(module, current.number)
    for generation in reversed(generations):
        if generation.number >= origin:
            continue
        older = generation.lock.modules.get(module)
        if older is not None and older.manifest != entry.manifest:
            return older, generation.module_origins.get(module, generation.number)
    return None


def _previous_release(context: Context, entry: LockedModule) -> LockedModule:
    """With no earlier version in this machine's history (a fresh clone), the
    previous version is the newest release below the current one that the toml allows."""
    from packaging.version import Version

    spec = context.project.module(entry.name)
    catalog = context.catalog(spec.registry)
    older = [v for v in catalog.index.models.get(entry.model, {})
             if Version(v) < Version(entry.version) and spec.allows(v)]
    if not older:
        raise FFError(f"no earlier version of {entry.name} in this machine's history or in "
                      f"registry {spec.registry!r}; see `ff history {entry.name}`")
    return pin(catalog, spec, max(older, key=Version))


def _check_allowed(context: Context, target: LockedModule) -> None:
    """A rollback target must be one the toml allows and this ff can run."""
    spec = context.project.module(target.name)
    if spec.model != target.model or not spec.allows(target.version):
        raise InputError(f"{target.name} {target.model} {target.version} is outside "
                         f"{spec.model} '{spec.version}' in facefusion.toml; widen the range to "
                         "roll back to it")
    check_runnable(context, [target], complete=False)


def _previous(context: Context, generations: list[Generation], current: Generation,
              entry: LockedModule) -> tuple[LockedModule, int]:
    """The entry a rollback of `entry`'s module returns to, and the generation it is
    from: its last different version in this machine's history, else (a fresh
    clone) the newest earlier release, placed before the current entry's origin so
    a further rollback steps back again instead of returning here."""
    found = _previous_entry(generations, current, entry.name, entry)
    if found is not None:
        return found
    return _previous_release(context, entry), current.module_origins.get(entry.name,
                                                                          current.number)


def previous_version(context: Context, module: str) -> LockedModule:
    """What `ff rollback MODULE` would return MODULE to, without rolling back: the
    version ff compare measures against and a guarded run falls back to."""
    with _project_lock(context):
        lock = context.require_lock()
        current = _baseline(context, lock)
        return _previous(context, context.history.generations(), current, lock.module(module))[0]


def rollback(context: Context, module: str | None = None, to_version: str | None = None, *,
             by: str = "", reason: str = "") -> RollbackResult:
    """Return one module (or, with no module, the whole lock) to where it was in the
    previous generation, or `module` to `to_version`. Adds a hold per changed module
    so `ff lock --upgrade` does not bring the rolled-back version straight back.
    `by` and `reason` say who rolled a module back and why (a guarded run: "guard",
    what tripped it); both go into the history and the hold, so the team sees them."""
    with _project_lock(context):
        lock = context.require_lock()
        current = _baseline(context, lock)
        generations = context.history.generations()
        if module is None:
            if to_version is not None:
                raise InputError("--to needs a module: ff rollback MODULE --to VERSION")
            new = _rollback_all(context, lock, current, generations)
            return RollbackResult(new, _changes(lock, new))
        entry = lock.module(module)
        module = entry.name
        origin: int | None = None
        if to_version is not None:
            spec = context.project.module(module)
            target = pin(context.catalog(spec.registry), spec, normalize_version(to_version))
        else:
            target, origin = _previous(context, generations, current, entry)
        if target.manifest == entry.manifest:
            raise InputError(f"{module} is already at {target.model} {target.version}")
        _check_allowed(context, target)
        holds = dict(lock.holds)
        said = f"{by} rollback" if by else "rollback"
        holds[module] = Hold(target.version, entry.version,
                             f"{said}: {reason}" if reason else "")
        new = replace(lock.with_module(target), holds=holds)
        _commit(context, new, [target],
                f"{said} {module} {entry.version} -> {target.version}"
                + (f" ({reason})" if reason else ""),
                module_origins=None if origin is None else {module: origin})
        return RollbackResult(new, _changes(lock, new))


def _commit(context: Context, new: Lock, entries: list[LockedModule], reason: str,
            **history: Any) -> None:
    """Fetch what `entries` need first, then write the lock and record it: a failed
    fetch leaves facefusion.lock and the history as they were."""
    with context.store.using():
        sync_modules(context, entries)
        write_lock(context.project.lock_path, new)
        context.history.record(new, reason, **history)


def _rollback_all(context: Context, lock: Lock, current: Generation,
                  generations: list[Generation]) -> Lock:
    target_generation = next((g for g in reversed(generations)
                              if g.number < current.origin and g.lock.modules != lock.modules),
                             None)
    if target_generation is None:
        raise FFError("no earlier generation to roll back to (see `ff history`)")
    target = target_generation.lock
    holds = dict(target.holds)
    for name, entry in target.modules.items():
        now = lock.modules.get(name)
        if now is not None and now.manifest != entry.manifest:
            holds[name] = Hold(entry.version, now.version)
    new = replace(target, holds=holds)
    check_runnable(context, [entry for name, entry in new.modules.items()
                             if lock.modules.get(name) != entry], complete=False)
    _commit(context, new, list(new.modules.values()),
            f"rollback to generation {target_generation.number}",
            origin=target_generation.origin, module_origins=dict(target_generation.module_origins))
    return new
