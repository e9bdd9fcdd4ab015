"""What a command works on: the project (if any), the resolved settings, the local
store and lazily opened, verified registries. Built once per command by the CLI or
by a program using ff as a library."""

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffstore import layout
from ffstore import settings as settings_mod
from ffstore.catalog import Catalog
from ffstore.errors import InputError
from ffstore.history import History
from ffstore.lockfile import Lock, read_lock
from ffstore.project import (
    Project,
    RegistryConfig,
    check_location,
    find_project_root,
    load_project,
)
from ffstore.store import Store

if TYPE_CHECKING:
    from ffstore.publish import Target
    from ffstore.registry import TransferOptions


@dataclass
class Context:
    settings: dict[str, settings_mod.Resolved]
    store: Store
    project_root: Path | None
    _project: Project | None = None
    _catalogs: dict[str, Catalog] = field(default_factory=dict)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)
    notify: Callable[[str], None] | None = None
    """Told what a network transfer waits for while it retries (the CLI prints it)."""

    def setting(self, name: str) -> Any:
        return self.settings[name].value

    @property
    def project(self) -> Project:
        if self._project is None:
            if self.project_root is None:
                raise InputError("this command needs a project: run it in a directory with "
                                 "facefusion.toml or pass --project DIR")
            self._project = load_project(self.project_root)
        return self._project

    @property
    def history(self) -> History:
        return History(self.store.projects_dir, self.project.root)

    def read_lock(self) -> Lock | None:
        return read_lock(self.project.lock_path)

    def require_lock(self) -> Lock:
        lock = self.read_lock()
        if lock is None:
            raise InputError(f"{self.project.lock_path} does not exist; run `ff lock` first")
        return lock

    def _registry_config(self, registry_name: str) -> RegistryConfig:
        from ffstore.registry import is_url

        config = self.project.registries.get(registry_name)
        override = self.settings["registry"]
        if registry_name == "default" and override.source != "default":
            # A directory given on the command line or in FF_REGISTRY is relative to
            # where the user is, not to the project.
            location = override.value if is_url(override.value) else str(
                Path(override.value).resolve())
            check_location(location, f"registry from {override.source}")
            config = RegistryConfig("default", location)
        if config is None:
            raise InputError(f"registry {registry_name!r} is not in [registries] of "
                             "facefusion.toml")
        return config

    def _has_project(self) -> bool:
        """Whether this command runs in a project (some need none)."""
        return self.project_root is not None and (self.project_root / "facefusion.toml").is_file()

    def local_registry_dirs(self) -> list[Path]:
        """The project's registries that are directories (none outside a project):
        the store may hard-link their blobs, so their damage is the store's too."""
        from ffstore.registry import is_url

        if not self._has_project():
            return []
        configs = [self._registry_config(name) for name in self.project.registries]
        return [(self.project.root / config.location).resolve() for config in configs
                if not is_url(config.location)]

    def catalog(self, registry_name: str) -> Catalog:
        with self._catalog_lock:  # sync verifies manifests from several threads
            return self._catalog(registry_name)

    def _catalog(self, registry_name: str) -> Catalog:
        if registry_name not in self._catalogs:
            from ffstore.registry import open_registry

            config = self._registry_config(registry_name)
            self._catalogs[registry_name] = Catalog(
                config, functools.partial(open_registry, config, self.project.root,
                                          self.transfer_options()),
                self.project.trusted, self.store)
        return self._catalogs[registry_name]

    def transfer_options(self) -> "TransferOptions":
        """Network behaviour from the settings, for every registry this command opens."""
        from ffstore.registry import TransferOptions

        return TransferOptions(self.setting("http_timeout"), self.setting("http_retries"),
                               self.store.partial_dir,
                               **({"notify": self.notify} if self.notify else {}))

    def publish_target(self, registry: str) -> "Target":
        """Where `--registry` of a publishing command points: a directory, or an OCI
        registry, reached as the project's entry for it says (`insecure`)."""
        from ffstore.publish import OciTarget
        from ffstore.registry import canonical_location, is_oci, is_url

        if not is_url(registry):
            return Path(registry)
        if not is_oci(registry):
            raise InputError(f"--registry {registry}: ff publishes into a directory (which a web "
                             "server may then serve) or an OCI registry (oci://), not over "
                             "HTTP")
        check_location(registry, "--registry")
        canonical = canonical_location(registry)
        insecure = any(config.insecure and canonical_location(config.location) == canonical
                       for config in (self.project.registries.values() if self._has_project()
                                      else ()))
        return OciTarget(registry, self.transfer_options(), self.store.root / layout.OCI_MOUNTS,
                         insecure)


def open_context(project_dir: Path | None = None, flags: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None, need_project: bool = True) -> Context:
    """Find the project (walking up from the current directory unless one is given),
    then resolve settings flag > env > toml > default."""
    environ = os.environ if environ is None else environ
    root: Path | None = None
    chosen = project_dir or (Path(environ["FF_PROJECT"]) if environ.get("FF_PROJECT") else None)
    if chosen is not None:
        root = chosen.resolve()
        if not (root / "facefusion.toml").is_file() and need_project:
            raise InputError(f"no facefusion.toml in {root}")
    elif need_project:
        root = find_project_root(Path.cwd())
    else:
        try:
            root = find_project_root(Path.cwd())
        except InputError:
            root = None
    project = load_project(root) if root is not None and (root / "facefusion.toml").is_file() \
        else None
    resolved = settings_mod.resolve(flags or {}, environ, project.settings if project else {})
    store = Store(Path(resolved["home"].value))
    return Context(resolved, store, root, project)
