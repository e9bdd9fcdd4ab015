"""The registry index: which models and versions a registry holds, signed.

Learned from The Update Framework: the signed part carries a version number that
only grows and an expiry time, so a client that remembers the highest version it has
seen can refuse a replayed old index (rollback attack) and a stale one (freeze
attack). A registry can rotate its signing key by listing the new key signed by the
old one; the chain is followed from the keys the user trusts.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ffstore import signing
from ffstore.canonical import canonical_bytes, parse_json_object
from ffstore.digests import check_digest
from ffstore.errors import InputError, VerificationError
from ffstore.manifest import check_model_name, normalize_version
from ffstore.modules import check_module_kind

INDEX_TYPE = "ff-index"
SPEC = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class VersionEntry:
    manifest: str
    module: str


@dataclass
class Index:
    version: int = 0
    expires: str = ""
    models: dict[str, dict[str, VersionEntry]] = field(default_factory=dict)
    rotations: list[dict[str, str]] = field(default_factory=list)
    signatures: dict[str, str] = field(default_factory=dict)

    def signed_part(self) -> dict[str, Any]:
        return {
            "type": INDEX_TYPE,
            "spec": SPEC,
            "version": self.version,
            "expires": self.expires,
            "models": {
                model: {version: {"manifest": entry.manifest, "module": entry.module}
                        for version, entry in versions.items()}
                for model, versions in self.models.items()
            },
            "rotations": self.rotations,
        }

    def signed_bytes(self) -> bytes:
        return canonical_bytes(self.signed_part())

    def to_bytes(self) -> bytes:
        doc = {"signed": self.signed_part(),
               "signatures": [{"keyid": k, "sig": s} for k, s in sorted(self.signatures.items())]}
        return canonical_bytes(doc)

    def sign(self, key: signing.SigningKey) -> None:
        self.signatures = {key.key_id: key.sign(signing.INDEX_CONTEXT, self.signed_bytes())}

    def expires_at(self) -> dt.datetime:
        return dt.datetime.strptime(self.expires, TIME_FORMAT).replace(tzinfo=dt.UTC)

    def trusted_keys(self, trusted: frozenset[str]) -> frozenset[str]:
        """The user's trusted keys plus every key reached from them through valid
        rotation records (old key signs the new key's id)."""
        keys = set(trusted)
        changed = True
        while changed:
            changed = False
            for record in self.rotations:
                old, new, sig = record.get("old"), record.get("new"), record.get("sig", "")
                if old in keys and new not in keys and isinstance(new, str) and signing.verify(
                        old, sig, signing.ROTATION_CONTEXT, new.encode()):
                    keys.add(new)
                    changed = True
        return frozenset(keys)


def expiry_from_now(days: int) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return moment.strftime(TIME_FORMAT)


def rotation_record(old: signing.SigningKey, new_key_id: str) -> dict[str, str]:
    return {"old": old.key_id, "new": new_key_id,
            "sig": old.sign(signing.ROTATION_CONTEXT, new_key_id.encode())}


def parse_index(data: bytes, where: str) -> Index:
    """Parse an index without judging its signatures (see `verify_index`)."""
    try:
        doc = parse_json_object(data, where)
        signed = doc.get("signed")
        if not isinstance(signed, dict) or signed.get("type") != INDEX_TYPE or signed.get(
                "spec") != SPEC:
            raise ValueError(f"{where} is not an ff index of spec {SPEC}")
        version = signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"{where} has an invalid version number")
        index = Index(version=version, expires=str(signed.get("expires", "")))
        index.expires_at()
        models = signed.get("models")
        if not isinstance(models, dict):
            raise ValueError(f"{where} has no models table")
        for model, versions in models.items():
            check_model_name(model)
            if not isinstance(versions, dict):
                raise ValueError(f"{where}: model {model} is malformed")
            index.models[model] = {
                normalize_version(version_text, where): VersionEntry(
                    check_digest(entry.get("manifest"), where),
                    check_module_kind(entry.get("module"), where))
                for version_text, entry in versions.items() if isinstance(entry, dict)
            }
        rotations = signed.get("rotations", [])
        if not isinstance(rotations, list) or not all(
                isinstance(r, dict) and set(r) == {"old", "new", "sig"}
                and all(isinstance(v, str) for v in r.values()) for r in rotations):
            raise ValueError(f"{where} has malformed key rotations")
        index.rotations = rotations
        signatures = doc.get("signatures")
        for item in signatures if isinstance(signatures, list) else []:
            if isinstance(item, dict) and isinstance(item.get("keyid"), str) and isinstance(
                    item.get("sig"), str):
                index.signatures[item["keyid"]] = item["sig"]
        understood = index.signed_bytes() == canonical_bytes(signed)
        canonical = canonical_bytes(doc) == data
    except (ValueError, TypeError, InputError) as exc:
        raise VerificationError(f"{where} is malformed: {exc}") from None
    if not understood:
        raise VerificationError(f"{where} contains fields this ff does not understand")
    if not canonical:
        raise VerificationError(f"{where} is not in canonical form (docs/FORMATS.md); an index "
                                "ff publish wrote always is")
    return index


def verify_index(index: Index, trusted: frozenset[str], where: str,
                 now: dt.datetime | None = None, min_version: int = 0) -> frozenset[str]:
    """Check signature, expiry and freshness; return the keys trusted for this
    registry (including rotated-in ones). Each refusal says which check failed."""
    keys = index.trusted_keys(trusted)
    message = index.signed_bytes()
    signers = [k for k, s in index.signatures.items()
               if signing.verify(k, s, signing.INDEX_CONTEXT, message)]
    if not any(k in keys for k in signers):
        who = ", ".join(sorted(signers)) or "nobody (no valid signature)"
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
