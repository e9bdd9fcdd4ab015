"""Writing to a registry directory: `ff publish` and `ff import`.

Order matters for crash safety: blobs first, then the manifest and its signatures,
then the index last. A publish killed at any point leaves the previous index, so
readers never see a version whose files are not all there."""

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
class _Prepared:
    release: Release
    named: list[tuple[Path, str]]
    onnx: list[dict[str, Any] | None]


def _prepare(release: Release) -> _Prepared:
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
    return _Prepared(replace(release, version=normalize_version(release.version)), named, onnx)


def publish(registry_root: Path, files: list[Path], model: str, version: str, module: str,
            key: SigningKey, requires_ff: str = DEFAULT_REQUIRES_FF,
            expiry_days: int = 365) -> PublishResult:
    """Add a signed model version to a registry directory. Publishing the same bytes
    again stores nothing; with another key it adds that key's signature."""
    release = Release(tuple(files), model, version, module, requires_ff)
    return publish_releases(registry_root, [release], key, expiry_days)[0]


def publish_releases(registry_root: Path, releases: list[Release], key: SigningKey,
                     expiry_days: int = 365) -> list[PublishResult]:
    """Publish several versions as one change: all of them, or (on any refusal)
    none, with nothing left behind; the index is signed once at the end."""
    return _publish_prepared(registry_root, [_prepare(release) for release in releases], key,
                             expiry_days)


def _publish_prepared(registry_root: Path, prepared: list[_Prepared], key: SigningKey,
                      expiry_days: int) -> list[PublishResult]:
    seen: set[tuple[str, str]] = set()
    for item in prepared:
        label = (item.release.model, item.release.version)
        if label in seen:
            raise InputError(f"{label[0]} {label[1]} is named twice in one publish")
        seen.add(label)
    created = not registry_root.exists()
    try:
        return _publish_locked(registry_root, prepared, key, expiry_days)
    except BaseException:
        if created:  # a refused first publish leaves no half-made registry behind
            shutil.rmtree(registry_root, ignore_errors=True)
        raise


def _publish_locked(registry_root: Path, prepared: list[_Prepared], key: SigningKey,
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


def _write_releases(registry_root: Path, index: Index, prepared: list[_Prepared],
                    key: SigningKey, expiry_days: int, blobs: BlobStore, added: list[str],
                    created: list[Path]) -> list[PublishResult]:
    """Blobs, then each manifest and its signatures, then the index. What it adds is
    listed in `added` (blobs) and `created` (documents) as it goes, for the caller
    to take back should any step fail."""
    manifests = [_ingest(blobs, item, added) for item in prepared]
    existing = [_existing(index, manifest) for manifest in manifests]
    results = []
    for manifest, entry in zip(manifests, existing, strict=True):
        digest = manifest.digest
        manifest_path = registry_root / layout.manifest(digest)
        if not manifest_path.exists():
            created.append(manifest_path)
            fsutil.atomic_write(manifest_path, manifest.canonical(), mode=0o444)
        signature_path = registry_root / layout.signatures(digest)
        signatures = parse_signatures(signature_path.read_bytes() if signature_path.exists()
                                      else None, str(signature_path))
        new_signature = key.key_id not in signatures
        if new_signature:
            signatures[key.key_id] = sign_manifest(key, digest)
            if not signature_path.exists():
                created.append(signature_path)
            fsutil.atomic_write(signature_path, signature_document(signatures), mode=0o644)
        if entry is None:
            index.models.setdefault(manifest.model, {})[manifest.version] = VersionEntry(
                digest, manifest.module)
        size = sum(f.size for f in manifest.files if f.digest in added)
        results.append(PublishResult(manifest, size, entry is None, new_signature))
    if any(result.new_version for result in results):
        write_index(registry_root, index, key, expiry_days)
    return results


def _ingest(blobs: BlobStore, item: _Prepared, added: list[str]) -> Manifest:
    entries = []
    for (source, relative), onnx in zip(item.named, item.onnx, strict=True):
        stored = blobs.ingest_file(source)
        if stored.added:
            added.append(stored.digest)
        entries.append(FileEntry(relative, stored.digest, stored.size, onnx))
    release = item.release
    return Manifest(release.model, release.version, release.module, tuple(entries),
                    release.requires_ff)


def _existing(index: Index, manifest: Manifest) -> VersionEntry | None:
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


def rotate_key(registry_root: Path, old: SigningKey, new: SigningKey | str,
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
    if not (registry_root / layout.INDEX).is_file():
        raise InputError(f"{registry_root} has no {layout.INDEX}; publish into it first")
    with fsutil.file_lock(registry_root / layout.PUBLISH_LOCK):
        index = _read_index(registry_root)
        if any(r.get("old") == old.key_id and r.get("new") == new_key_id
               for r in index.rotations):
            return Rotation(new_key_id, added=False)
        _identify(index)
        index.rotations.append(rotation_record(index, old, new_key_id))
        write_index(registry_root, index, old, expiry_days,
                    *(() if isinstance(new, str) else (new,)))
    return Rotation(new_key_id, added=True)


def _identify(index: Index) -> None:
    """Give a registry its identity (index spec 2) unless it has one. A spec 1
    index that already lists rotations keeps spec 1: its records were signed
    without an identity and would no longer verify."""
    if not index.registry_id and not index.rotations:
        index.registry_id = new_registry_id()


def write_index(registry_root: Path, index: Index, key: SigningKey, expiry_days: int,
                *cosigners: SigningKey) -> None:
    """Bump the version (it must only grow), renew the expiry, sign, write."""
    _identify(index)
    index.version += 1
    index.expires = expiry_from_now(expiry_days)
    index.sign(key, *cosigners)
    fsutil.atomic_write(registry_root / layout.INDEX, index.to_bytes(), mode=0o644)


def import_facefusion(source: Path, registry_root: Path, key: SigningKey, version: str,
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
    return _publish_prepared(registry_root, prepared, key, expiry_days), notes
