"""Relative paths inside a registry. A registry is a plain directory tree that any
static file server can serve unchanged, so these paths are also URL paths."""

from ffstore.digests import hex_part

INDEX = "index.json"


def blob(digest: str) -> str:
    return f"blobs/sha256/{hex_part(digest)}"


def manifest(digest: str) -> str:
    return f"manifests/sha256/{hex_part(digest)}.json"


def signatures(digest: str) -> str:
    return f"signatures/sha256/{hex_part(digest)}.json"
