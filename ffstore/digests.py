"""Digest strings (`sha256:<64 hex>`) are the store's only addresses, so they are
validated in one place before they are ever used to build a path."""

import hashlib
import re

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


def digest_bytes(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def hex_part(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]
