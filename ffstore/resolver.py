"""Turn facefusion.toml into a lock: per module the newest version allowed by its
range and admitting this ff, which must be signed by a trusted key: a release the
signed index lists that does not verify is an error naming it, never a reason to
lock an older one. Like pip-tools, versions that
are already locked and still allowed are kept unless an upgrade is asked for; a
hold (left by `ff rollback`) keeps its version even through `--upgrade`."""

from collections.abc import Callable

from ffstore import __version__
from ffstore.catalog import Catalog
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.lockfile import Lock, LockedModule
from ffstore.manifest import Manifest, find_version, same_version
from ffstore.project import ModuleSpec, Project


def upgrade_names(project: Project, wanted: frozenset[str]) -> frozenset[str]:
    """The entries `--upgrade-module` names: an entry, or every entry of a kind."""
    names = set()
    for name in wanted:
        of_kind = [n for n, spec in project.modules.items() if spec.module == name]
        names.update(of_kind if len(of_kind) > 1 else [project.module(name).name])
    return frozenset(names)


def resolve(project: Project, catalog_for: Callable[[str], Catalog], current: Lock | None,
            upgrade_all: bool = False, upgrade: frozenset[str] = frozenset()) -> Lock:
    upgrade = upgrade_names(project, upgrade)
    modules: dict[str, LockedModule] = {}
    holds = {}
    for name, spec in sorted(project.modules.items()):
        catalog = catalog_for(spec.registry)
        existing = current.modules.get(name) if current else None
        hold = current.holds.get(name) if current else None
        if hold and name not in upgrade and existing and existing.model == spec.model:
            if not spec.allows(hold.version):
                raise InputError(f"{name} is held at {spec.model} {hold.version} (rolled back from "
                                 f"{hold.rolled_back_from}), outside '{spec.version}' in "
                                 f"facefusion.toml; run `ff lock --upgrade-module {name}` to "
                                 "lift the hold")
            modules[name] = _unchanged(existing, pin(catalog, spec, hold.version))
            holds[name] = hold
            continue
        keep = (existing is not None and not upgrade_all and name not in upgrade
                and existing.model == spec.model and existing.registry == spec.registry
                and spec.allows(existing.version))
        if keep and existing is not None:
            published = find_version(_versions(catalog, spec), existing.version)
            if published is not None:  # still listed: it must still verify
                modules[name] = _unchanged(existing, pin(catalog, spec, published))
                continue
        modules[name] = _newest(catalog, spec)
    return Lock(project.inputs_hash(), modules, holds)


def _unchanged(existing: LockedModule | None, found: LockedModule) -> LockedModule:
    """A published release never changes; a registry that now maps a locked version to
    other bytes was rewritten, and silently following it would defeat the lock."""
    if existing is not None and existing.version == found.version and (
            existing.manifest != found.manifest):
        raise VerificationError(
            f"{found.model} {found.version} was changed in registry {found.registry!r}: "
            f"facefusion.lock has manifest {existing.manifest}, the registry now {found.manifest}; "
            "ask the registry's owner why, or move on with `ff lock --upgrade-module "
            f"{found.name}`")
    return found


def _locked(catalog: Catalog, spec: ModuleSpec, version: str,
            digest: str) -> tuple[LockedModule, Manifest]:
    """The release the index lists as `version`, checked against what it claims."""
    manifest, signers = catalog.manifest(digest, spec.model)
    if manifest.module != spec.module:
        raise InputError(f"{spec.model} {manifest.version} is a {manifest.module} model, not a "
                         f"{spec.module}; fix modules.{spec.module} in facefusion.toml")
    if manifest.model != spec.model or not same_version(manifest.version, version):
        raise VerificationError(f"the index of registry {spec.registry!r} lists {spec.model} "
                                f"{version} as manifest {digest}, which is {manifest.model} "
                                f"{manifest.version}")
    return LockedModule.from_manifest(spec.name, spec.registry, manifest, signers), manifest


def _versions(catalog: Catalog, spec: ModuleSpec) -> dict[str, str]:
    versions = catalog.index.models.get(spec.model)
    if versions is None:
        known = ", ".join(sorted(catalog.index.models)) or "none"
        raise InputError(f"model {spec.model!r} ({spec.name}) is not in registry "
                         f"{spec.registry!r}; models there: {known}")
    return {version: entry.manifest for version, entry in versions.items()}


def pin(catalog: Catalog, spec: ModuleSpec, version: str) -> LockedModule:
    versions = _versions(catalog, spec)
    found = find_version(versions, version)
    if found is None:
        from packaging.version import Version

        known = ", ".join(sorted(versions, key=Version)) or "none"
        raise InputError(f"{spec.model} {version} is not in registry {spec.registry!r} "
                         f"(versions there: {known})")
    return _locked(catalog, spec, found, versions[found])[0]


def _newest(catalog: Catalog, spec: ModuleSpec) -> LockedModule:
    from packaging.version import Version

    skipped = []
    versions = _versions(catalog, spec)
    for version in sorted(versions, key=Version, reverse=True):
        if not spec.allows(version):
            continue
        try:
            locked, manifest = _locked(catalog, spec, version, versions[version])
        except FFError as exc:
            # Never fall back to an older version: a server that hides or breaks the
            # newest release's manifest or signatures would pick what gets locked.
            raise type(exc)(f"{spec.model} {version}, the newest release allowed for "
                            f"{spec.name}, cannot be verified: {exc}") from None
        if not manifest.admits_ff(__version__):
            skipped.append(f"{version}: needs ff {manifest.requires_ff}, this is {__version__}")
            continue
        return locked
    detail = f" (skipped {'; '.join(skipped)})" if skipped else ""
    raise FFError(f"no version of {spec.model} satisfies '{spec.version}' for {spec.name} "
                  f"and this ff{detail}")
