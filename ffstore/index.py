"""The registry index: which models and versions a registry holds, signed.

Learned from The Update Framework: the signed part carries a version number that
only grows and an expiry time, so a client that remembers the highest version it has
seen can refuse a replayed old index (rollback attack) and a stale one (freeze
attack). A registry can rotate its signing key by listing the new key signed by the
old one; the chain is followed from the keys the user trusts.

Spec 2 gives each registry an identity (`registry`, chosen at its first publish):
clients key their freshness memory by it, whatever URL spells the registry, and a
key rotation is signed for that registry only, so a record made for one registry
means nothing in another. Once the new key has signed the index, the
old one can no longer sign it (it may have been lost): clients remember the
handover; what the old key signed before stays valid. Spec 1 indexes (no
identity) are still read.

This module is the format: reading, writing and signing an index. Whether one is
believed is decided in ffstore/trust.py.
"""

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from ffstore import signing
from ffstore.canonical import canonical_bytes, parse_json_object
from ffstore.digests import check_digest
from ffstore.errors import InputError, VerificationError
from ffstore.manifest import check_model_name, normalize_version
from ffstore.modules import check_module_kind

INDEX_TYPE = "ff-index"
SPEC = 2
READABLE_SPECS = (1, 2)
REGISTRY_ID = re.compile(r"^[0-9a-f]{32}$")
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
    registry_id: str = ""
    """The registry's identity (spec 2, the `registry` field); empty for a spec 1 index."""

    def signed_part(self) -> dict[str, Any]:
        identity = {"registry": self.registry_id} if self.registry_id else {}
        return {
            "type": INDEX_TYPE,
            "spec": SPEC if self.registry_id else 1,
            **identity,
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

    def sign(self, *keys: signing.SigningKey) -> None:
        self.signatures = {key.key_id: key.sign(signing.INDEX_CONTEXT, self.signed_bytes())
                           for key in keys}

    def expires_at(self) -> dt.datetime:
        return dt.datetime.strptime(self.expires, TIME_FORMAT).replace(tzinfo=dt.UTC)

    def rotation_message(self, new_key_id: str) -> bytes:
        """What a rotation record's old key signs: the new key, for this registry
        (spec 1, which has no identity: the new key alone)."""
        return (f"{self.registry_id}/{new_key_id}".encode() if self.registry_id
                else new_key_id.encode())


def expiry_from_now(days: int) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return moment.strftime(TIME_FORMAT)


def rotation_record(index: Index, old: signing.SigningKey, new_key_id: str) -> dict[str, str]:
    """`old` vouches for `new_key_id` as the signer of `index`'s registry."""
    return {"old": old.key_id, "new": new_key_id,
            "sig": old.sign(signing.ROTATION_CONTEXT, index.rotation_message(new_key_id))}


def new_registry_id() -> str:
    return uuid.uuid4().hex


def parse_index(data: bytes, where: str) -> Index:
    """Parse an index without judging its signatures (see `verify_index`)."""
    try:
        doc = parse_json_object(data, where)
        signed = doc.get("signed")
        if not isinstance(signed, dict) or signed.get("type") != INDEX_TYPE or signed.get(
                "spec") not in READABLE_SPECS:
            raise ValueError(f"{where} is not an ff index of spec {' or '.join(map(str, READABLE_SPECS))}")
        version = signed.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"{where} has an invalid version number")
        registry_id = signed.get("registry", "") if signed["spec"] >= 2 else ""
        if signed["spec"] >= 2 and not (isinstance(registry_id, str) and REGISTRY_ID.match(registry_id)):
            raise ValueError(f"{where} has no valid registry identity")
        index = Index(version=version, expires=str(signed.get("expires", "")),
                      registry_id=registry_id)
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
