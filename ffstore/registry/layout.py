"""Relative paths inside a registry. A registry is a plain directory tree that any
static file server can serve unchanged, so these paths are also URL paths."""

from ffstore.digests import hex_part

INDEX = "index.json"

# The most bytes a registry document may have. Read before anything is checked (an
# unsigned index is parsed to find its signatures), so a hostile or broken registry
# must not get to make ff hold a huge one: JSON takes ~25 times its size in memory.
# 8 MiB of index is some 50,000 versions.
MAX_INDEX = 8 << 20
MAX_MANIFEST = 1 << 20
MAX_SIGNATURES = 256 << 10


def blob(digest: str) -> str:
    return f"blobs/sha256/{hex_part(digest)}"


def manifest(digest: str) -> str:
    return f"manifests/sha256/{hex_part(digest)}.json"


def signatures(digest: str) -> str:
    return f"signatures/sha256/{hex_part(digest)}.json"
