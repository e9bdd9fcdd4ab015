"""Where trust is decided. Every question of the form "may this be believed?" is
answered here, and nowhere else:

- which keys count for a registry: the user's `[trust] keys`, plus those reached
  from them through key-rotation records bound to that registry;
- whether an index is believed: signed by such a key that the registry has not
  rotated away from, unexpired, not older than one seen before (replay), and from the
  registry this location served before;
- whether a manifest is believed: a valid signature by such a key;
- whether a lock entry is believed: its manifest carries the signers the lock names
  and the files the lock lists;
- whether a publisher's key may sign a registry's index.

Modelled on python-tuf's trusted metadata set: the other modules read bytes (the
catalog, the registries), parse them (index.py, manifest.py) or persist what is
remembered (the store), and ask this module for the verdict. The formats are in
docs/FORMATS.md.
"""

import datetime as dt
from collections.abc import Callable

from ffstore import signing
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.index import Index, parse_index
from ffstore.lockfile import LockedModule
from ffstore.manifest import Manifest
from ffstore.store import Store

# --- the keys of a registry ----------------------------------------------------------


def index_signers(index: Index) -> frozenset[str]:
    """The keys whose signatures over this index verify (trusted or not)."""
    message = index.signed_bytes()
    return frozenset(k for k, s in index.signatures.items()
                     if signing.verify(k, s, signing.INDEX_CONTEXT, message))


def _valid_rotations(index: Index, keys: set[str]) -> list[tuple[str, str]]:
    return [(r["old"], r["new"]) for r in index.rotations
            if r.get("old") in keys and signing.is_key_id(r.get("new"))
            and signing.verify(r["old"], r.get("sig", ""), signing.ROTATION_CONTEXT,
                               index.rotation_message(r["new"]))]


def registry_keys(index: Index, trusted: frozenset[str]) -> frozenset[str]:
    """The user's trusted keys plus every key reached from them through valid
    rotation records (the old key signs the new key's id, for this registry): the
    keys whose signatures count in this registry."""
    keys = set(trusted)
    while True:
        reached = {new for _old, new in _valid_rotations(index, keys)} - keys
        if not reached:
            return frozenset(keys)
        keys |= reached


def handed_over(index: Index, trusted: frozenset[str]) -> frozenset[str]:
    """Keys this registry has rotated away from for good: the old key of every
    valid rotation whose new key signs this very index. From then on an index signed
    by the old key alone is refused (the key may have been lost)."""
    signers = index_signers(index)
    return frozenset(old for old, new in _valid_rotations(index, set(registry_keys(index, trusted)))
                     if new in signers)


# --- indexes -------------------------------------------------------------------------


def check_index(index: Index, trusted: frozenset[str], where: str,
                now: dt.datetime | None = None, min_version: int = 0,
                retired: frozenset[str] = frozenset()) -> frozenset[str]:
    """Check signature, expiry and freshness; return the keys trusted for this
    registry (including rotated-in ones). `retired` are keys this registry has been
    seen to hand over from: they no longer sign its index. Each refusal says which
    check failed."""
    keys = registry_keys(index, trusted)
    signers = index_signers(index)
    if not signers & (keys - retired):
        who = ", ".join(sorted(signers)) or "nobody (no valid signature)"
        if signers & retired:
            raise VerificationError(f"{where} is signed by {who}, a key this registry rotated away "
                                    "from (a retired key may be a lost one); refusing it")
        raise VerificationError(f"{where} is signed by {who}, which is not trusted; add the "
                                "registry's key to [trust] keys in facefusion.toml")
    now = now or dt.datetime.now(dt.UTC)
    if index.expires_at() <= now:
        raise VerificationError(f"{where} expired at {index.expires} (freeze attack or a registry "
                                "that is no longer maintained); ask its owner to re-publish")
    if index.version < min_version:
        raise VerificationError(f"{where} is version {index.version}, older than version "
                                f"{min_version} seen before (rollback attack: a replayed old "
                                "index); refusing it")
    return keys


def check_may_sign(index: Index, key: signing.SigningKey, where: str) -> None:
    """A publisher may re-sign an index only with a key its current signer vouched
    for: another key would lock out every client that trusts only the current one.
    A key the registry has handed over from may not sign it again."""
    current = index_signers(index)
    if not current:
        return
    if key.key_id in handed_over(index, current):
        raise InputError(f"key {key.name!r} was rotated out of {where} (its successor signs "
                         "the index now); publish with the new key")
    if key.key_id not in registry_keys(index, current):
        raise InputError(f"the index of {where} is signed by {', '.join(sorted(current))}, "
                         f"not by key {key.name!r}; publish with that key, or hand signing over "
                         f"first: ff key rotate OLD {key.name} --registry {where}")


# --- manifests and lock entries ------------------------------------------------------


def manifest_signers(digest: str, signatures: dict[str, str]) -> list[str]:
    """The keys whose signatures over the manifest verify (trusted or not)."""
    return sorted(key for key, sig in signatures.items()
                  if signing.verify(key, sig, signing.MANIFEST_CONTEXT, digest.encode()))


def require_trusted(manifest: Manifest, digest: str, signatures: dict[str, str],
                    trusted: frozenset[str]) -> list[str]:
    """The trusted keys that validly signed the manifest; a refusal names who did
    sign, so the user knows which key to trust or reject."""
    signers = manifest_signers(digest, signatures)
    good = [key for key in signers if key in trusted]
    if good:
        return good
    label = f"{manifest.model} {manifest.version} (manifest {digest})"
    if signers:
        raise VerificationError(f"{label} is signed only by untrusted key(s) {', '.join(signers)}; "
                                "add the key to [trust] keys in facefusion.toml if you trust it")
    if signatures:
        raise VerificationError(f"{label} has invalid signatures (by {', '.join(sorted(signatures))})")
    raise VerificationError(f"{label} is not signed; ask the publisher to sign it")


def check_lock_entry(entry: LockedModule, manifest: Manifest, signers: list[str]) -> None:
    """A lock entry is believed only as far as its manifest backs it: every signer
    it names has signed, and the files are the manifest's (a hand-edited lock could
    otherwise pin other bytes under a trusted name)."""
    unsigned = sorted(set(entry.signers) - set(signers))
    if unsigned:
        raise VerificationError(
            f"facefusion.lock names {', '.join(unsigned)} as a signer of {entry.name} "
            f"({entry.model} {entry.version}), but the manifest carries no trusted signature by "
            "it; restore the lock from git or run `ff lock`")
    if not entry.matches_manifest(manifest):
        raise VerificationError(
            f"facefusion.lock disagrees with manifest {entry.manifest} for {entry.name} "
            f"({entry.model} {entry.version}): the lock was edited by hand; restore it from git or "
            "run `ff lock`")


# --- one registry's trust state ------------------------------------------------------


class RegistryTrust:
    """What one project believes of one registry: the user's keys, and what this
    machine remembers of the registry (its identity at a location, the highest index
    version seen, keys it handed over from), kept in the store."""

    def __init__(self, trusted: frozenset[str], store: Store, where: str) -> None:
        self.trusted = trusted
        self._store = store
        self._where = where

    def accept_index(self, data: bytes, location: str, spelling: str) -> tuple[Index, frozenset[str]]:
        """Parse and judge an index read from `location` (its canonical spelling;
        `spelling` is how it was written), remember what it teaches, and return it
        with the keys it makes trusted. Freshness is remembered by the registry's own
        identity (spec 2), else by where the bytes really come from, not by the
        toml's spelling: two projects saying "models/registry" differ."""
        index = parse_index(data, self._where)
        memory = self._store.registry_memory(location, index.registry_id, spelling)
        if memory.identity and index.registry_id != memory.identity:
            raise VerificationError(
                f"{self._where} identifies as registry {index.registry_id or '(none: spec 1)'}, but "
                f"this location served registry {memory.identity} before: another registry, or an "
                "old index replayed; refusing it")
        keys = check_index(index, self.trusted, self._where, min_version=memory.version,
                           retired=memory.retired)
        self._store.remember_registry(location, index.registry_id, index.version,
                                      handed_over(index, self.trusted) | memory.retired)
        return index, keys

    def manifest_signers(self, manifest: Manifest, digest: str, signatures: dict[str, str],
                         registry_keys: Callable[[], frozenset[str]]) -> list[str]:
        """Trusted signers by the user's keys alone when possible, so a cached
        manifest needs no network; otherwise by the keys the registry's index rotates
        in (`registry_keys` reads it). If the index cannot vouch either, the
        manifest's own refusal is the news."""
        try:
            return require_trusted(manifest, digest, signatures, self.trusted)
        except VerificationError as direct:
            try:
                keys = registry_keys()
            except FFError:
                raise direct from None
            return require_trusted(manifest, digest, signatures, keys)
