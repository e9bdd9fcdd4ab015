"""facefusion.toml: the user-facing contract (registries, trusted keys, and per
module a model and a version range). Parsed and validated once, here, so every
command reports the same one-line error for the same mistake."""

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ffstore import signing
from ffstore.canonical import canonical_bytes
from ffstore.digests import digest_bytes
from ffstore.errors import InputError
from ffstore.manifest import check_model_name, check_version_range
from ffstore.modules import check_module_kind, entry_name, find_entry

TOML_NAME = "facefusion.toml"
LOCK_NAME = "facefusion.lock"


@dataclass(frozen=True)
class RegistryConfig:
    name: str
    location: str
    mirrors: tuple[str, ...] = ()
    allow_redirects: bool = False  # to hosts other than the registry's and its mirrors
    insecure: bool = False  # an OCI registry without TLS, away from this machine


@dataclass(frozen=True)
class ModuleSpec:
    """One model a module wants. `name` is the entry's name (see ffstore.modules):
    the kind itself, or `KIND/MODEL` when the kind lists several models."""

    name: str
    module: str
    model: str
    version: str
    registry: str

    def allows(self, version: str) -> bool:
        from packaging.specifiers import SpecifierSet

        return SpecifierSet(self.version).contains(version, prereleases=None)


@dataclass(frozen=True)
class Project:
    root: Path
    registries: dict[str, RegistryConfig]
    trusted: frozenset[str]
    modules: dict[str, ModuleSpec]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def toml_path(self) -> Path:
        return self.root / TOML_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    def inputs_hash(self) -> str:
        """Digest of everything in the toml that decides what gets locked; a lock that
        records another value is stale."""
        return digest_bytes(canonical_bytes({
            "modules": {name: {"model": spec.model, "version": spec.version,
                               "registry": spec.registry} for name, spec in self.modules.items()},
            "trust": sorted(self.trusted),
        }))

    def module(self, name: str) -> ModuleSpec:
        """The entry `name` names (an entry name, or a kind with one model)."""
        return self.modules[find_entry(self.modules, name, TOML_NAME)]


def find_project_root(start: Path) -> Path:
    for directory in (start, *start.parents):
        if (directory / TOML_NAME).is_file():
            return directory
    raise InputError(f"no {TOML_NAME} in {start} or its parents; create one (see README.md) or "
                     "pass --project DIR")


def load_project(root: Path) -> Project:
    path = root / TOML_NAME
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; create it (see README.md)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid TOML ({exc}); fix it and run again") from None
    return parse_project(root.resolve(), doc, str(path))


def check_location(location: str, where: str) -> str:
    """A registry location: a directory, an http(s) URL or an oci:// location that
    parses (a typo such as `http://[::1` is refused here, not deep inside the HTTP
    client)."""
    from ffstore.registry.oci_names import is_oci, parse_oci

    if is_oci(location):
        parse_oci(location, where)
    elif location[:8].lower().startswith(("http://", "https://")):
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(location)
            parts.port  # noqa: B018  (raises for a port that is not a number in range)
        except ValueError as exc:
            raise InputError(f"{where}: {location!r} is not a valid URL ({exc})") from None
        if not parts.hostname:
            raise InputError(f"{where}: {location!r} names no host")
    elif "://" in location:
        raise InputError(f"{where}: {location!r}: ff reads registries from a directory, over "
                         "http:// or https://, or from an OCI registry (oci://)")
    return location


def _check_mirror_kinds(location: str, mirrors: tuple[str, ...], where: str) -> None:
    """A mirror serves blobs the way its registry does: an OCI registry's mirrors
    are OCI registries (replicas, pull-through caches), a web folder's are web
    folders."""
    from ffstore.registry.oci_names import is_oci

    for mirror in mirrors:
        if is_oci(mirror) != is_oci(location):
            kind = "oci:// locations" if is_oci(location) else "http(s) URLs"
            raise InputError(f"{where}.mirrors: {mirror!r}: this registry's mirrors must be "
                             f"{kind}, like the registry")


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise InputError(f"{where}: [{key}] must be a table")
    return value


MODULE_KEYS = ("model", "version", "registry")
REGISTRY_KEYS = ("url", "mirrors", "allow_redirects", "insecure")


def _check_keys(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """A misspelt key (`verison = ...`) would otherwise be ignored and the default
    silently used instead of what the user wrote."""
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected "
                         f"{', '.join(allowed)}")


def _module_spec(kind: str, value: object, several: bool, registries: dict[str, RegistryConfig],
                 where: str) -> ModuleSpec:
    label = f"{where}: modules.{kind}" + ("[...]" if several else "")
    if not isinstance(value, dict) or not isinstance(value.get("model"), str):
        raise InputError(f'{label} must be {{ model = "...", version = "..." }}')
    _check_keys(value, MODULE_KEYS, label)
    model = check_model_name(value["model"])
    version = value.get("version", "")
    check_version_range(version, f"{label}.version")
    registry = value.get("registry", "default")
    if registry not in registries:
        raise InputError(f"{label} uses registry {registry!r}, which is not in [registries]")
    return ModuleSpec(entry_name(kind, model, several), kind, model, version, registry)


def parse_project(root: Path, doc: dict[str, Any], where: str) -> Project:
    known = {"registries", "trust", "modules", "settings"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(f"{where}: unknown section(s) {', '.join(unknown)}; expected "
                         f"{', '.join(sorted(known))}")
    registries: dict[str, RegistryConfig] = {}
    for name, value in _table(doc, "registries", where).items():
        label = f"{where}: registries.{name}"
        if isinstance(value, str):
            registries[name] = RegistryConfig(name, check_location(value, label))
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            _check_keys(value, REGISTRY_KEYS, label)
            mirrors = value.get("mirrors", [])
            if not isinstance(mirrors, list) or not all(isinstance(m, str) for m in mirrors):
                raise InputError(f"{label}.mirrors must be a list of URLs")
            flags: dict[str, bool] = {}
            for flag in ("allow_redirects", "insecure"):
                flags[flag] = value.get(flag, False)
                if not isinstance(flags[flag], bool):
                    raise InputError(f"{label}.{flag} must be true or false")
            location = check_location(value["url"], label)
            checked = tuple(check_location(m, f"{label}.mirrors") for m in mirrors)
            _check_mirror_kinds(location, checked, label)
            registries[name] = RegistryConfig(name, location, checked, **flags)
        else:
            raise InputError(f"{where}: registries.{name} must be a path, a URL, or "
                             "{ url = ..., mirrors = [...] }")
    trust = _table(doc, "trust", where)
    _check_keys(trust, ("keys",), f"{where}: [trust]")
    keys = trust.get("keys", [])
    if not isinstance(keys, list):
        raise InputError(f"{where}: [trust] keys must be a list of key ids")
    trusted = frozenset(signing.check_key_id(key, f"{where}: [trust] keys") for key in keys)
    modules: dict[str, ModuleSpec] = {}
    for kind, value in _table(doc, "modules", where).items():
        check_module_kind(kind, f"{where}: [modules]")
        several = isinstance(value, list)
        if several and not value:
            raise InputError(f"{where}: modules.{kind} is an empty list; remove it or list models")
        for item in value if several else [value]:
            spec = _module_spec(kind, item, several, registries, where)
            if spec.name in modules:
                raise InputError(f"{where}: modules.{kind} lists {spec.model} twice")
            modules[spec.name] = spec
    return Project(root, registries, trusted, modules, _table(doc, "settings", where))


def starter_toml(registry: str, key_id: str, modules: dict[str, list[str]], version: str) -> bytes:
    """A first facefusion.toml (people edit it afterwards, so it is written as text
    with comments rather than dumped): one registry, one trusted key, and per module
    its models at `version` or newer. Strings are quoted as JSON does, which TOML
    reads the same."""

    def entry(model: str) -> str:
        return f"{{ model = {json.dumps(model)}, version = {json.dumps('>=' + version)} }}"

    lines = ["# Written by `ff import --init`. Edit it, then run `ff lock`.", "", "[registries]",
             f"default = {json.dumps(registry)}", "", "[trust]", f"keys = [{json.dumps(key_id)}]",
             "", "[modules]"]
    for kind, models in sorted(modules.items()):
        if len(models) == 1:
            lines.append(f"{kind} = {entry(models[0])}")
        else:
            lines += [f"{kind} = [", *(f"    {entry(model)}," for model in models), "]"]
    return ("\n".join(lines) + "\n").encode()
