"""Turn facefusion.toml into a lock: per module the newest version allowed by its
range, signed by a trusted key, and admitting this ff. Like pip-tools, versions that
are already locked and still allowed are kept unless an upgrade is asked for; a
hold (left by `ff rollback`) keeps its version even through `--upgrade`."""

from collections.abc import Callable

from ffstore import __version__
from ffstore.catalog import Catalog
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.lockfile import Lock, LockedModule
from ffstore.project import ModuleSpec, Project


def resolve(project: Project, catalog_for: Callable[[str], Catalog], current: Lock | None,
            upgrade_all: bool = False, upgrade: frozenset[str] = frozenset()) -> Lock:
    for name in upgrade:
        project.module(name)
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
            modules[name] = pin(catalog, spec, hold.version)
            holds[name] = hold
            continue
        keep = (existing is not None and not upgrade_all and name not in upgrade
                and existing.model == spec.model and existing.registry == spec.registry
                and spec.allows(existing.version))
        if keep and existing is not None:
            entry = catalog.index.models.get(spec.model, {}).get(existing.version)
            if entry is not None and entry.manifest == existing.manifest:
                try:
                    modules[name] = _locked(catalog, spec, existing.manifest)
                    continue
                except VerificationError:
                    pass  # no longer trusted: resolve afresh below
        modules[name] = _newest(catalog, spec)
    return Lock(project.inputs_hash(), modules, holds)


def _locked(catalog: Catalog, spec: ModuleSpec, digest: str) -> LockedModule:
    manifest, signers = catalog.manifest(digest)
    if manifest.module != spec.module:
        raise InputError(f"{spec.model} {manifest.version} is a {manifest.module} model, not a "
                         f"{spec.module}; fix modules.{spec.module} in facefusion.toml")
    return LockedModule.from_manifest(spec.module, spec.registry, manifest, signers)


def _versions(catalog: Catalog, spec: ModuleSpec) -> dict[str, str]:
    versions = catalog.index.models.get(spec.model)
    if versions is None:
        known = ", ".join(sorted(catalog.index.models)) or "none"
        raise InputError(f"model {spec.model!r} (modules.{spec.module}) is not in registry "
                         f"{spec.registry!r}; models there: {known}")
    return {version: entry.manifest for version, entry in versions.items()}


def pin(catalog: Catalog, spec: ModuleSpec, version: str) -> LockedModule:
    digest = _versions(catalog, spec).get(version)
    if digest is None:
        raise FFError(f"{spec.model} {version} is no longer in registry {spec.registry!r}")
    return _locked(catalog, spec, digest)


def _newest(catalog: Catalog, spec: ModuleSpec) -> LockedModule:
    from packaging.version import Version

    skipped = []
    versions = _versions(catalog, spec)
    for version in sorted(versions, key=Version, reverse=True):
        if not spec.allows(version):
            continue
        try:
            locked = _locked(catalog, spec, versions[version])
        except VerificationError as exc:
            skipped.append(f"{version}: {exc}")
            continue
        manifest, _ = catalog.manifest(versions[version])
        if not manifest.admits_ff(__version__):
            skipped.append(f"{version}: needs ff {manifest.requires_ff}, this is {__version__}")
            continue
        return locked
    detail = f" (skipped {'; '.join(skipped)})" if skipped else ""
    raise FFError(f"no version of {spec.model} satisfies '{spec.version}' for {spec.module} "
                  f"with a trusted signature{detail}")
