"""`ff publish` into an OCI registry (docs/FORMATS.md, "OCI registries"): each
version becomes a ModelPack artifact in `REPOSITORY/<model>`, tagged with the
version; its signatures a tagged artifact beside it; the signed index a tagged
artifact in REPOSITORY, pushed last, so readers never see a version whose content
is not all there, exactly as with a directory.

Everything that can refuse the publish (names an OCI registry cannot spell, a
version already published with other content, a key that may not sign) is checked
before the first byte is pushed, so a refusal changes nothing."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ffstore.digests import digest_file
from ffstore.errors import FFError, VerificationError
from ffstore.index import Index, parse_index
from ffstore.publish import (
    OciTarget,
    Prepared,
    PublishResult,
    add_signature,
    listed,
    manifest_of,
    published_entry,
    sign_next,
)
from ffstore.registry.oci import OciRegistry
from ffstore.registry.oci_format import (
    EMPTY_CONFIG,
    FF_INDEX,
    FF_SIGNATURES,
    TITLE,
    Blob,
    single_blob_artifact,
    version_artifact,
)
from ffstore.registry.oci_names import INDEX_TAG, signatures_tag, version_tag
from ffstore.registry.oci_push import MountMemory, OciPusher, file_reader
from ffstore.signing import SigningKey
from ffstore.trust import check_may_sign


@dataclass
class OciIndexSlot:
    """The index of an OCI registry, for one change. No OCI registry offers a lock,
    so the write first checks that the index tag still names what was read: two
    publishes racing lose nothing, the later one is told to run again."""

    pusher: OciPusher
    where: str
    _seen: str | None = None

    def read(self) -> Index | None:
        data, self._seen = self.pusher.find_index()
        if data is None:
            return None
        try:
            return parse_index(data, f"index of {self.where}")
        except VerificationError as exc:
            raise FFError(f"{exc}; the registry's index is damaged, ask its owner") from None

    def write(self, data: bytes) -> None:
        repository = self.pusher.reader.where.repository
        if self.pusher.tag_digest(repository, INDEX_TAG) != self._seen:
            raise FFError(f"another publish changed the index of {self.where} while this one "
                          "ran; run it again (what was pushed stays and is not sent again)")
        blob = Blob(FF_INDEX, data, {TITLE: "index.json"})
        self.pusher.push_bytes(repository, EMPTY_CONFIG)
        self.pusher.push_bytes(repository, blob)
        self.pusher.put_manifest(repository, INDEX_TAG, single_blob_artifact(blob))


@contextmanager
def oci_index_slot(target: OciTarget) -> Iterator[OciIndexSlot]:
    memory = MountMemory(target.mount_memory)
    reader = OciRegistry(target.location, (), target.options, target.insecure)
    try:
        yield OciIndexSlot(OciPusher(reader, memory), target.location)
    finally:
        memory.save()


def _describe(path: Path) -> tuple[str, int]:
    with open(path, "rb") as handle:
        return digest_file(handle), os.fstat(handle.fileno()).st_size


def publish_oci(target: OciTarget, prepared: list[Prepared], key: SigningKey,
                expiry_days: int) -> list[PublishResult]:
    with oci_index_slot(target) as slot:
        pusher = slot.pusher
        where = pusher.reader.where
        index = slot.read() or Index()
        manifests = [manifest_of(item, _describe) for item in prepared]
        entries = [published_entry(index, manifest) for manifest in manifests]
        if any(entry is None for entry in entries):
            check_may_sign(index, key, target.location)
        for manifest in manifests:  # names an OCI registry cannot spell: refused up front
            where.model_repository(manifest.model)
            version_tag(manifest.version)
        results = []
        for item, manifest, entry in zip(prepared, manifests, entries, strict=True):
            repository = where.model_repository(manifest.model)
            sent = pusher.bytes_sent
            for (source, _relative), file in zip(item.named, manifest.files, strict=True):
                pusher.push_blob(repository, file.digest, file.size, file_reader(source))
            artifact = version_artifact(manifest)
            for blob in (artifact.config, artifact.ff_manifest, EMPTY_CONFIG):
                pusher.push_bytes(repository, blob)
            pusher.put_manifest(repository, version_tag(manifest.version), artifact.manifest)
            signatures = add_signature(pusher.find_signatures(manifest.digest, manifest.model),
                                       key, manifest.digest, f"signatures of {manifest.digest}")
            if signatures is not None:
                blob = Blob(FF_SIGNATURES, signatures, {TITLE: "signatures.json"})
                pusher.push_bytes(repository, blob)
                pusher.put_manifest(repository, signatures_tag(manifest.digest),
                                    single_blob_artifact(blob, artifact.descriptor))
            results.append(listed(index, manifest, entry, pusher.bytes_sent - sent,
                                  signatures is not None))
        if any(result.new_version for result in results):
            slot.write(sign_next(index, key, expiry_days))
    return results
