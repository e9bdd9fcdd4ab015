"""Registries hold blobs, manifests, signatures and a signed index in one layout
(see docs/FORMATS.md); this picks the transport for a location."""

from pathlib import Path

from ffstore.project import RegistryConfig
from ffstore.registry.base import Registry, TransferOptions
from ffstore.registry.local import LocalRegistry


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def open_registry(config: RegistryConfig, base_dir: Path, options: TransferOptions) -> Registry:
    """A URL gets the HTTP client; anything else is a directory, relative paths being
    taken from `base_dir` (the directory of the facefusion.toml that names it)."""
    if is_url(config.location):
        from ffstore.registry.http import HttpRegistry

        return HttpRegistry(config.location, config.mirrors, options, config.allow_redirects)
    return LocalRegistry((base_dir / config.location).resolve())


__all__ = ["Registry", "TransferOptions", "is_url", "open_registry"]
