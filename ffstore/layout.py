"""Where each file of ff's on-disk formats lives, relative to its root
(docs/FORMATS.md). A registry and a store share the content-addressed part, blobs,
manifests and signature documents filed by digest, so one code path writes and
checks them in both, a local registry's blobs can be hard-linked into a store, and a
registry directory can be served by any static file server unchanged: these paths
are also URL paths."""

from ffstore.digests import from_hex, hex_part

# --- shared by registries and stores -------------------------------------------------

BLOBS = "blobs/sha256"
MANIFESTS = "manifests/sha256"
SIGNATURES = "signatures/sha256"
TMP = "tmp"  # temp files of blob writers, on the blobs' filesystem


def blob(digest: str) -> str:
    return f"{BLOBS}/{hex_part(digest)}"


def manifest(digest: str) -> str:
    return f"{MANIFESTS}/{hex_part(digest)}.json"


def signatures(digest: str) -> str:
    return f"{SIGNATURES}/{hex_part(digest)}.json"


def digest_of(file_name: str) -> str | None:
    """The digest a file in one of the digest folders is filed under (`<hex>` or
    `<hex>.json`); None for temp files and strays."""
    return from_hex(file_name.removesuffix(".json"))


# --- registries only -----------------------------------------------------------------

INDEX = "index.json"
PUBLISH_LOCK = ".ff-publish.lock"

# The most bytes a registry document may have. Read before anything is checked (an
# unsigned index is parsed to find its signatures), so a hostile or broken registry
# must not get to make ff hold a huge one: JSON takes ~25 times its size in memory.
# 8 MiB of index is some 50,000 versions.
MAX_INDEX = 8 << 20
MAX_MANIFEST = 1 << 20
MAX_SIGNATURES = 256 << 10

# --- stores only ---------------------------------------------------------------------

VIEWS = "views/sha256"  # a directory per manifest, hard links to its blobs
STAMPS = "stamps/sha256"  # what was verified when, per blob
PARTIAL = "partial"  # interrupted downloads, outside the blob namespace
QUARANTINE = "quarantine"  # blobs `ff verify` found corrupt
LOCKS = "locks"
STORE_LOCK = "locks/store.lock"
STATE_LOCK = "locks/state.lock"
REGISTRY_STATE = "state/registries.json"  # what this machine remembers of registries
OCI_MOUNTS = "state/oci-blobs.json"  # which OCI repositories ff pushed each blob to
KEYS = "keys"
PROJECTS = "projects"


def view(digest: str) -> str:
    return f"{VIEWS}/{hex_part(digest)}"


def stamp(digest: str) -> str:
    return f"{STAMPS}/{hex_part(digest)}.json"
