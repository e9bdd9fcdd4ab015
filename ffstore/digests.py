"""Digest strings (`sha256:<64 hex>`) are the store's only addresses, so they are
made and validated in one place before they are ever used to build a path."""

import hashlib
import re
from typing import BinaryIO

from ffstore.errors import InputError

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(_DIGEST_RE.match(value))


def check_digest(value: object, what: str = "digest") -> str:
    """Return `value` if it is a well-formed digest; refuse it otherwise, because a
    malformed digest used as a path component could escape the store."""
    if not is_digest(value):
        raise InputError(f"{what} {value!r} is not a valid digest (expected sha256:<64 hex digits)")
    return str(value)


def new_hash() -> "hashlib._Hash":
    """The hash behind every digest, for callers that feed it piece by piece."""
    return hashlib.new(ALGORITHM)


def digest_of_hash(state: "hashlib._Hash") -> str:
    return f"{ALGORITHM}:{state.hexdigest()}"


def digest_bytes(data: bytes | memoryview) -> str:
    return digest_of_hash(hashlib.new(ALGORITHM, data))


def hash_file(handle: BinaryIO) -> "hashlib._Hash":
    """The hash of what `handle` holds from its position on (read in large blocks,
    the GIL released), ready to be fed what follows."""
    return hashlib.file_digest(handle, ALGORITHM)


def digest_file(handle: BinaryIO) -> str:
    return digest_of_hash(hash_file(handle))


def hex_part(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def from_hex(text: str) -> str | None:
    """The digest whose hex part is `text`, None if `text` is not one."""
    digest = f"{ALGORITHM}:{text}"
    return digest if is_digest(digest) else None
