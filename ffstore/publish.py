"""Writing to a registry: `ff publish`, `ff import` and `ff key rotate`, into a
directory here or an OCI registry (ffstore/publish_oci.py does the pushing).

Order matters for crash safety: blobs first, then the manifest and its signatures,
then the index last. A publish killed at any point leaves the previous index, so
readers never see a version whose files are not all there."""

import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ffstore import fsutil, layout
from ffstore.blobs import BlobStore
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.index import Index, VersionEntry, expiry_from_now, new_registry_id, parse_index
from ffstore.manifest import (
    FileEntry,
    Manifest,
    check_model_name,
    check_relative_path,
    check_version_range,
    find_version,
    normalize_version,
    parse_signatures,
    sign_manifest,
    signature_document,
)
from ffstore.modules import check_module_kind
from ffstore.signing import SigningKey
from ffstore.trust import check_may_sign

if TYPE_CHECKING:
    from ffstore.registry.base import TransferOptions

DEFAULT_REQUIRES_FF = ">=0.1"
ONNX_SUFFIXES = (".onnx", ".dfm")  # .dfm: DeepFaceLive's models, ONNX inside


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    bytes_added: int
    new_version: bool
    new_signature: bool


def _relative_paths(files: list[Path], names: tuple[str, ...] | None = None
                    ) -> list[tuple[Path, str]]:
    """Manifest paths are `names`, or relative to the files' common directory.
    Symlinks are refused: what gets signed must be the file that was named, nothing
    it points at."""
    for file in files:
        if file.is_symlink():
            raise InputError(f"{file} is a symlink; publish the file it points to")
        if not file.is_file():
            raise InputError(f"{file} is not a file")
    absolute = [file.absolute() for file in files]
    base = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    if names is not None and len(names) != len(files):
        raise InputError("give one manifest path per file")
    result = []
    for index, file in enumerate(absolute):
        relative = names[index] if names is not None else file.relative_to(base).as_posix()
        try:
            result.append((file, check_relative_path(relative, "publish")))
        except VerificationError as exc:
            raise InputError(str(exc)) from None
    if len({rel for _f, rel in result}) != len(result):
        raise InputError("two files would have the same path in the manifest")
    return result


def _read_index(root: Path) -> Index:
    path = root / layout.INDEX
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Index()
    return parse_index(data, str(path))


@dataclass(frozen=True)
class OciTarget:
    """An OCI registry to publish into (`oci://HOST[:PORT]/REPOSITORY`), with how
    to reach it and where ff remembers which repositories hold which blobs."""

    location: str
    options: "TransferOptions"
    mount_memory: Path
    insecure: bool = False


Target = Path | OciTarget


@dataclass(frozen=True)
class Release:
    """One model version to publish: its files and what they are. `names` are the
    files' paths in the manifest (default: relative to their common directory)."""

    files: tuple[Path, ...]
    model: str
    version: str
    module: str
    requires_ff: str = DEFAULT_REQUIRES_FF
    names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Prepared:
    """A release past every check that needs no registry, ready for any of them."""

    release: Release
    named: list[tuple[Path, str]]
    onnx: list[dict[str, Any] | None]


def _prepare(release: Release) -> Prepared:
    """Every check that needs no registry: names, version, kind, paths, ONNX I/O."""
    from ffstore.onnxinfo import read_io

    check_model_name(release.model)
    check_module_kind(release.module, "--module")
    check_version_range(release.requires_ff, "--requires-ff")
    if not release.files:
        raise InputError("nothing to publish: name at least one file")
    named = _relative_paths(list(release.files), release.names)
    onnx: list[dict[str, Any] | None] = []
    for source, relative in named:
        if not relative.endswith(ONNX_SUFFIXES):
            onnx.append(None)
            continue
        try:
            io = read_io(source)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        onnx.append({"inputs": io.inputs, "outputs": io.outputs})
    return Prepared(replace(release, version=normalize_version(release.version)), named, onnx)


def publish(registry: Target, files: list[Path], model: str, version: str, module: str,
            key: SigningKey, requires_ff: str = DEFAULT_REQUIRES_FF,
            expiry_days: int = 365) -> PublishResult:
    """Add a signed model version to a registry. Publishing the same bytes again
    stores nothing; with another key it adds that key's signature."""
    release = Release(tuple(files), model, version, module, requires_ff)
    return publish_releases(registry, [release], key, expiry_days)[0]


def publish_releases(registry: Target, releases: list[Release], key: SigningKey,
                     expiry_days: int = 365) -> list[PublishResult]:
    """Publish several versions as one change: all of them, or (on any refusal)
    none, with nothing left behind; the index is signed once at the end."""
    return _publish_prepared(registry, [_prepare(release) for release in releases], key,
                             expiry_days)


def _publish_prepared(registry: Target, prepared: list[Prepared], key: SigningKey,
                      expiry_days: int) -> list[PublishResult]:
    seen: set[tuple[str, str]] = set()
    for item in prepared:
        label = (item.release.model, item.release.version)
        if label in seen:
            raise InputError(f"{label[0]} {label[1]} is named twice in one publish")
        seen.add(label)
    if isinstance(registry, OciTarget):
        from ffstore.publish_oci import publish_oci

        return publish_oci(registry, prepared, key, expiry_days)
    created = not registry.exists()
    try:
        return _publish_locked(registry, prepared, key, expiry_days)
    except BaseException:
        if created:  # a refused first publish leaves no half-made registry behind
            shutil.rmtree(registry, ignore_errors=True)
        raise


def _publish_locked(registry_root: Path, prepared: list[Prepared], key: SigningKey,
                    expiry_days: int) -> list[PublishResult]:
    with fsutil.file_lock(registry_root / layout.PUBLISH_LOCK):
        index = _read_index(registry_root)
        if any(find_version(index.models.get(p.release.model, {}), p.release.version) is None
               for p in prepared):
            check_may_sign(index, key, str(registry_root))
        blobs = BlobStore(registry_root)
        blobs.sweep()  # what killed publishes left behind
        added: list[str] = []
        created: list[Path] = []
        try:
            return _write_releases(registry_root, index, prepared, key, expiry_days, blobs,
                                   added, created)
        except BaseException:
            # Nothing the index lists refers to them: a refusal, or a write that failed
            # (a full disk), leaves no trace, and gives back the room it took.
            for path in created:
                path.unlink(missing_ok=True)
            for digest in added:
                blobs.remove(digest)
            raise


def _write_releases(registry_root: Path, index: Index, prepared: list[Prepared],
                    key: SigningKey, expiry_days: int, blobs: BlobStore, added: list[str],
                    created: list[Path]) -> list[PublishResult]:
    """Blobs, then each manifest and its signatures, then the index. What it adds is
    listed in `added` (blobs) and `created` (documents) as it goes, for the caller
    to take back should any step fail."""
    manifests = [_ingest(blobs, item, added) for item in prepared]
    existing = [published_entry(index, manifest) for manifest in manifests]
    results = []
    for manifest, entry in zip(manifests, existing, strict=True):
        digest = manifest.digest
        manifest_path = registry_root / layout.manifest(digest)
        if not manifest_path.exists():
            created.append(manifest_path)
            fsutil.atomic_write(manifest_path, manifest.canonical(), mode=0o444)
        signature_path = registry_root / layout.signatures(digest)
        document = add_signature(signature_path.read_bytes() if signature_path.exists()
                                 else None, key, digest, str(signature_path))
        if document is not None:
            if not signature_path.exists():
                created.append(signature_path)
            fsutil.atomic_write(signature_path, document, mode=0o644)
        size = sum(f.size for f in manifest.files if f.digest in added)
        results.append(listed(index, manifest, entry, size, document is not None))
    if any(result.new_version for result in results):
        write_index(registry_root, index, key, expiry_days)
    return results


def add_signature(document: bytes | None, key: SigningKey, digest: str, where: str
                  ) -> bytes | None:
    """The signature document with `key`'s signature of manifest `digest` added;
    None when it already holds one."""
    signatures = parse_signatures(document, where)
    if key.key_id in signatures:
        return None
    signatures[key.key_id] = sign_manifest(key, digest)
    return signature_document(signatures)


def listed(index: Index, manifest: Manifest, entry: VersionEntry | None, bytes_added: int,
           new_signature: bool) -> PublishResult:
    """List a new version in `index` (entry None: it was not there); the result."""
    if entry is None:
        index.models.setdefault(manifest.model, {})[manifest.version] = VersionEntry(
            manifest.digest, manifest.module)
    return PublishResult(manifest, bytes_added, entry is None, new_signature)


def _ingest(blobs: BlobStore, item: Prepared, added: list[str]) -> Manifest:
    def stored(source: Path) -> tuple[str, int]:
        result = blobs.ingest_file(source)
        if result.added:
            added.append(result.digest)
        return result.digest, result.size

    return manifest_of(item, stored)


def manifest_of(item: Prepared, describe: Callable[[Path], tuple[str, int]]) -> Manifest:
    """The release's manifest, `describe` giving each file's digest and size."""
    entries = []
    for (source, relative), onnx in zip(item.named, item.onnx, strict=True):
        digest, size = describe(source)
        entries.append(FileEntry(relative, digest, size, onnx))
    release = item.release
    return Manifest(release.model, release.version, release.module, tuple(entries),
                    release.requires_ff)


def published_entry(index: Index, manifest: Manifest) -> VersionEntry | None:
    """The index entry of this version, if published; refused if its content differs."""
    published = find_version(index.models.get(manifest.model, {}), manifest.version)
    if published is None:
        return None
    entry = index.models[manifest.model][published]
    if entry.manifest != manifest.digest:
        raise FFError(f"{manifest.model} {published} is already published with other content "
                      f"(manifest {entry.manifest}); versions are immutable, publish a new version")
    return entry


@dataclass(frozen=True)
class Rotation:
    new_key_id: str
    added: bool  # False: the registry already listed this rotation


def rotate_key(registry: Target, old: SigningKey, new: SigningKey | str,
               expiry_days: int) -> Rotation:
    """Introduce `new` (a key, or just its id) as this registry's signing key,
    vouched for by `old` for this registry only: clients that trust `old` then
    accept indexes and manifests signed by the new key. When the new key itself is
    at hand it co-signs the index, which completes the handover at once: clients
    then refuse an index signed by `old` alone. A registry with no index yet has
    no signer to hand over from: publish into it first."""
    from ffstore.index import rotation_record
    from ffstore.signing import check_key_id

    new_key_id = new if isinstance(new, str) else new.key_id
    check_key_id(new_key_id, "new key")
    if isinstance(registry, Path) and not (registry / layout.INDEX).is_file():
        raise InputError(f"{registry} has no {layout.INDEX}; publish into it first")
    with index_slot(registry) as slot:
        index = slot.read()
        if index is None:
            raise InputError(f"{slot.where} has no index; publish into it first")
        if any(r.get("old") == old.key_id and r.get("new") == new_key_id
               for r in index.rotations):
            return Rotation(new_key_id, added=False)
        _identify(index)
        index.rotations.append(rotation_record(index, old, new_key_id))
        slot.write(sign_next(index, old, expiry_days, *(() if isinstance(new, str) else (new,))))
    return Rotation(new_key_id, added=True)


class IndexSlot(Protocol):
    """Where a registry keeps its index, as a change (a rotation) sees it: read,
    then replaced, with no other writer in between."""

    where: str

    def read(self) -> Index | None:
        """The index; None when nothing was published yet."""

    def write(self, data: bytes) -> None:
        """Replace the index with the signed `data`."""


@dataclass(frozen=True)
class _DirectorySlot:
    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def read(self) -> Index | None:
        return _read_index(self.root) if (self.root / layout.INDEX).is_file() else None

    def write(self, data: bytes) -> None:
        fsutil.atomic_write(self.root / layout.INDEX, data, mode=0o644)


@contextmanager
def index_slot(registry: Target) -> Iterator[IndexSlot]:
    """The registry's index slot, guarded: a directory's by its publish lock, an OCI
    registry's by checking, before the write, that no one pushed an index since
    the read (OCI registries have no locks)."""
    if isinstance(registry, OciTarget):
        from ffstore.publish_oci import oci_index_slot

        with oci_index_slot(registry) as slot:
            yield slot
    else:
        with fsutil.file_lock(registry / layout.PUBLISH_LOCK):
            yield _DirectorySlot(registry)


def _identify(index: Index) -> None:
    """Give a registry its identity (index spec 2) unless it has one. A spec 1
    index that already lists rotations keeps spec 1: its records were signed
    without an identity and would no longer verify."""
    if not index.registry_id and not index.rotations:
        index.registry_id = new_registry_id()


def sign_next(index: Index, key: SigningKey, expiry_days: int, *cosigners: SigningKey) -> bytes:
    """The index's next signed form: version bumped (it must only grow), expiry
    renewed."""
    _identify(index)
    index.version += 1
    index.expires = expiry_from_now(expiry_days)
    index.sign(key, *cosigners)
    return index.to_bytes()


def write_index(registry_root: Path, index: Index, key: SigningKey, expiry_days: int,
                *cosigners: SigningKey) -> None:
    """Sign the index's next version and write it into a registry directory."""
    _DirectorySlot(registry_root).write(sign_next(index, key, expiry_days, *cosigners))


def import_facefusion(source: Path, registry: Target, key: SigningKey, version: str,
                      expiry_days: int = 365, modules: Mapping[str, str] | None = None
                      ) -> tuple[list[PublishResult], list[str]]:
    """Publish every model of a FaceFusion models folder as a signed version, at
    FaceFusion's file names. All of them or none: a file ff does not know (unless
    `modules` names its kind), a damaged one (its `.hash` disagrees) or one an
    installed runtime cannot run is refused before anything is written. Returns what
    was published and what the runtimes note."""
    from ffstore.consumers import ModelInfo, check_models
    from ffstore.facefusion import check_hashes, find_models, models_folder

    found = find_models(models_folder(source), modules or {})
    check_hashes(found)
    releases = [Release(item.files, item.model, version, item.module, names=item.paths)
                for item in found]
    prepared = [_prepare(release) for release in releases]
    notes = check_models([ModelInfo(p.release.module, p.release.model, p.release.version,
                                    p.named[0][1], p.onnx[0]) for p in prepared], complete=False)
    return _publish_prepared(registry, prepared, key, expiry_days), notes
