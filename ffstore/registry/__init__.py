"""Registries hold blobs, manifests, signatures and a signed index (see
docs/FORMATS.md): a directory or a web folder in one layout, or an OCI registry;
this picks the backend for a location."""

from pathlib import Path

from ffstore.project import RegistryConfig
from ffstore.registry.base import Registry, TransferOptions
from ffstore.registry.local import LocalRegistry
from ffstore.registry.oci_names import SCHEME, is_oci, parse_oci


def is_url(location: str) -> bool:
    """Whether `location` is reached over the network (http, https or oci), not a
    directory."""
    return location[:8].lower().startswith(("http://", "https://", SCHEME))


def canonical_location(location: str) -> str:
    """One spelling per registry location, so what ff remembers of it (the index
    version seen, its identity) does not start afresh for `localhost` against
    `127.0.0.1`, a trailing slash, upper-case letters or a default port. Directories
    arrive resolved."""
    if not is_url(location):
        return location
    if is_oci(location):
        return parse_oci(location, "registry").canonical
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host in ("localhost", "127.0.0.1", "::1"):
        host = "localhost"
    port = parts.port
    netloc = host if port in (None, {"http": 80, "https": 443}[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def open_registry(config: RegistryConfig, base_dir: Path, options: TransferOptions) -> Registry:
    """An oci:// location gets the OCI client, a URL the HTTP client; anything else
    is a directory, relative paths being taken from `base_dir` (the directory of the
    facefusion.toml that names it)."""
    if is_oci(config.location):
        from ffstore.registry.oci import OciRegistry

        return OciRegistry(config.location, config.mirrors, options, config.insecure)
    if is_url(config.location):
        from ffstore.registry.http import HttpRegistry

        return HttpRegistry(config.location, config.mirrors, options, config.allow_redirects)
    return LocalRegistry((base_dir / config.location).resolve(), options)


__all__ = ["Registry", "TransferOptions", "canonical_location", "is_oci", "is_url",
           "open_registry"]
