"""The OCI documents ff writes and reads (docs/FORMATS.md, "OCI registries"): an
image manifest per model version that follows the CNCF ModelPack media types, so
other model tools read ff's pushes, and small tagged artifacts for the signed index
and each manifest's signatures. Every document is canonical JSON without
timestamps, so pushing the same release twice yields the same digests and moves
no tag."""

import functools
from dataclasses import dataclass
from typing import Any

from ffstore.canonical import canonical_bytes, load_json
from ffstore.digests import digest_bytes, is_digest
from ffstore.manifest import Manifest

IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
# CNCF ModelPack (github.com/modelpack/model-spec)
MODEL_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODEL_WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
FILEPATH = "org.cncf.model.filepath"
# ff's own
FF_MANIFEST = "application/vnd.ff.manifest.v1+json"
FF_SIGNATURES = "application/vnd.ff.signatures.v1+json"
FF_INDEX = "application/vnd.ff.index.v1+json"
TITLE = "org.opencontainers.image.title"  # the file name `oras pull` writes a layer to
VERSION = "org.opencontainers.image.version"
FF_MANIFEST_FILE = "ff-manifest.json"


@dataclass(frozen=True)
class Blob:
    """Bytes ff pushes as a blob, with the descriptor that names them."""

    media_type: str
    data: bytes
    annotations: dict[str, str] | None = None

    @functools.cached_property
    def digest(self) -> str:
        return digest_bytes(self.data)

    def descriptor(self) -> dict[str, Any]:
        return _descriptor(self.media_type, self.digest, len(self.data), self.annotations)


EMPTY_CONFIG = Blob(EMPTY, EMPTY_BYTES)


def _descriptor(media_type: str, digest: str, size: int,
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size,
            **({"annotations": annotations} if annotations else {})}


def image_manifest(artifact_type: str, config: dict[str, Any], layers: list[dict[str, Any]],
                   annotations: dict[str, str] | None = None,
                   subject: dict[str, Any] | None = None) -> bytes:
    """An OCI image manifest of an artifact: the form of every document ff pushes."""
    return canonical_bytes({"schemaVersion": 2, "mediaType": IMAGE_MANIFEST,
                            "artifactType": artifact_type, "config": config, "layers": layers,
                            **({"subject": subject} if subject else {}),
                            **({"annotations": annotations} if annotations else {})})


@dataclass(frozen=True)
class VersionArtifact:
    """A model version as OCI content: the manifest, and the blobs ff makes for it
    (the ModelPack config and ff's manifest); the model's files are its other layers."""

    manifest: bytes
    config: Blob
    ff_manifest: Blob

    @property
    def descriptor(self) -> dict[str, Any]:
        return _descriptor(IMAGE_MANIFEST, digest_bytes(self.manifest), len(self.manifest))


def version_artifact(manifest: Manifest) -> VersionArtifact:
    """One weight layer per file, at its manifest path, then ff's manifest. The
    ModelPack config lists every layer's digest (they are raw, so DiffID and digest
    are one)."""
    layers = [_descriptor(MODEL_WEIGHT, file.digest, file.size,
                          {FILEPATH: file.path, TITLE: file.path}) for file in manifest.files]
    ff_manifest = Blob(FF_MANIFEST, manifest.canonical(), {TITLE: FF_MANIFEST_FILE})
    layers.append(ff_manifest.descriptor())
    onnx = all(file.path.endswith(".onnx") for file in manifest.files)
    config = Blob(MODEL_CONFIG, canonical_bytes({
        "descriptor": {"name": manifest.model, "version": manifest.version},
        "config": {"format": "onnx"} if onnx else {},
        "modelfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }))
    document = image_manifest(MODEL_ARTIFACT, config.descriptor(), layers,
                               {TITLE: manifest.model, VERSION: manifest.version})
    return VersionArtifact(document, config, ff_manifest)


def single_blob_artifact(blob: Blob, subject: dict[str, Any] | None = None) -> bytes:
    """An artifact of one ff document (the index, a signature document), which a
    tag makes findable; `subject` ties signatures to their version, for registries
    that list referrers."""
    return image_manifest(blob.media_type, EMPTY_CONFIG.descriptor(), [blob.descriptor()],
                           subject=subject)


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int


def artifact_layer(data: bytes, media_type: str) -> Layer:
    """The layer of `media_type` in an artifact manifest ff pushed. Raises
    ValueError, saying what is wrong, for anything else."""
    document = load_json(data, "the registry's manifest")
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list):
        raise ValueError("the registry's answer is not an OCI image manifest")
    for layer in layers:
        if isinstance(layer, dict) and layer.get("mediaType") == media_type:
            digest, size = layer.get("digest"), layer.get("size")
            if not is_digest(digest) or not isinstance(size, int) or size < 0:
                raise ValueError(f"its {media_type} layer has no valid digest and size")
            return Layer(str(digest), size)
    raise ValueError(f"the artifact has no {media_type} layer; it was not pushed by ff")
