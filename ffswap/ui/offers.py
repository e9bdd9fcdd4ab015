"""What a module's registry offers: every version of the locked model it lists, and
whether each one could run here (signed by a trusted key, admitting this ff, meeting
the module's I/O contract) or why not, judged by the very calls `ff lock` and
`ff rollback` make (`resolver.pin`, `lock_changes.check_runnable`), so the page never
says yes to a version the CLI would refuse."""

from __future__ import annotations

from dataclasses import dataclass

from ffstore.context import Context
from ffstore.errors import FFError
from ffstore.lock_changes import check_runnable
from ffstore.lockfile import LockedModule
from ffstore.resolver import pin


@dataclass(frozen=True)
class Offer:
    version: str
    signers: tuple[str, ...]
    """The trusted keys that signed it; empty when it is refused."""
    refusal: str
    """Why this ff would not run it (the CLI's one-line error); empty when it would."""
    details: tuple[str, ...]
    """What `ff -v` adds to that line (every tensor that differs, say)."""
    in_range: bool
    """facefusion.toml's range allows it: what `ff lock` and `ff rollback` need, not a
    live switch (trying a version before widening the range is what a switch is for)."""


@dataclass(frozen=True)
class Offers:
    registry: str
    versions: list[Offer]
    """Newest first: the versions of the model facefusion.toml names for the entry
    (the one the next `ff lock` pins)."""
    error: str = ""
    """Why the registry could not be read (its index refused, unreachable)."""


def offers(context: Context, entry: LockedModule) -> Offers:
    from packaging.version import Version

    registry = entry.registry
    try:
        spec = context.project.module(entry.name)
        registry = spec.registry
        catalog = context.catalog(spec.registry)
        listed = sorted(catalog.index.models.get(spec.model, {}), key=Version, reverse=True)
    except FFError as exc:
        return Offers(registry, [], str(exc))
    result = []
    for version in listed:
        try:
            pinned = pin(catalog, spec, version)
            check_runnable(context, [pinned], complete=False)
        except FFError as exc:
            result.append(Offer(version, (), str(exc), exc.details, spec.allows(version)))
            continue
        result.append(Offer(version, tuple(pinned.signers), "", (), spec.allows(version)))
    return Offers(spec.registry, result)
