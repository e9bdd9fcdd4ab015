"""Ed25519 keys and signatures.

A key id is the public key itself (`ed25519:<base64url, no padding>`), so a
signature can be checked with nothing but the id; trust is a separate question,
answered by the `[trust] keys` list. Every signed message starts with a context
string, so a manifest signature can never be replayed as an index signature.
"""

import base64
import binascii
import os
from pathlib import Path

from ffstore import fsutil
from ffstore.errors import InputError

KEY_PREFIX = "ed25519:"
MANIFEST_CONTEXT = b"ff-manifest-v1:"
INDEX_CONTEXT = b"ff-index-v1:"
ROTATION_CONTEXT = b"ff-key-rotation-v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_key_id(value: object) -> bool:
    if not isinstance(value, str) or not value.startswith(KEY_PREFIX):
        return False
    try:
        return len(_unb64(value[len(KEY_PREFIX):])) == 32
    except (binascii.Error, ValueError):
        return False


def check_key_id(value: object, where: str) -> str:
    if not is_key_id(value):
        raise InputError(f"{where}: {value!r} is not a key id (expected ed25519:... as printed by "
                         "`ff key generate`)")
    return str(value)


class SigningKey:
    """A private key loaded from a PEM file, with the id of its public half."""

    def __init__(self, private_key: "object", name: str) -> None:
        self._key = private_key
        self.name = name
        from cryptography.hazmat.primitives import serialization

        raw = self._key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = KEY_PREFIX + _b64(raw)

    def sign(self, context: bytes, message: bytes) -> str:
        return _b64(self._key.sign(context + message))  # type: ignore[attr-defined]


def generate_key(directory: Path, name: str) -> SigningKey:
    """Write `<name>.key` (PKCS#8 PEM, mode 0600) and `<name>.pub` (the key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not name or "/" in name or name.startswith("."):
        raise InputError(f"invalid key name {name!r}: use letters, digits, '-' or '_'")
    private_path = directory / f"{name}.key"
    if private_path.exists():
        raise InputError(f"a key named {name!r} already exists at {private_path}; "
                         "choose another name")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fsutil.atomic_write(private_path, pem, mode=0o600)
    key = SigningKey(private, name)
    fsutil.atomic_write(directory / f"{name}.pub", (key.key_id + "\n").encode(), mode=0o644)
    return key


def load_key(key_dir: Path, name_or_path: str) -> SigningKey:
    """Load a key by name (from the key directory) or by path to a PEM file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    candidate = Path(name_or_path)
    path = candidate if candidate.suffix == ".key" or candidate.is_file() else (
        key_dir / f"{name_or_path}.key")
    try:
        data = path.read_bytes()
    except OSError:
        raise InputError(f"no signing key {name_or_path!r} (looked for {path}); create one with "
                         f"`ff key generate {candidate.stem}`") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path} is not an unencrypted Ed25519 PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key")
    return SigningKey(private, candidate.stem)


def verify(key_id: str, signature: str, context: bytes, message: bytes) -> bool:
    """True when `signature` by `key_id` covers `context + message`. Malformed ids or
    signatures are simply invalid, never an exception."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not is_key_id(key_id) or not isinstance(signature, str):
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(_unb64(key_id[len(KEY_PREFIX):]))
        public.verify(_unb64(signature), context + message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
