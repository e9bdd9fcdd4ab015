"""Picks the adapter class for a model and builds it: from a profile (ffswap.zoo) and a
session to a ready adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ffswap.adapters.detector import (
    AnchorDetector,
    FaceFusionDetector,
    FaceFusionYuNetDetector,
    UlfdDetector,
    YoloFaceDetector,
    YuNetDetector,
)
from ffswap.adapters.enhancer import FaceEnhancer
from ffswap.adapters.landmarker import Fan2dfan4Landmarker, Fan68From5Estimator, PeppaWutzLandmarker
from ffswap.adapters.recognizer import ArcFaceRecognizer
from ffswap.adapters.swapper import EmbeddingConverter, FaceSwapAdapter
from ffswap.contracts import IoSpec
from ffswap.errors import ContractError
from ffswap.zoo import Profile, UnsupportedModel, select_profile

if TYPE_CHECKING:
    import onnxruntime as ort

    from ffstore.blobs import Contents

ADAPTERS: dict[str, type] = {
    "yunet": YuNetDetector,
    "ulfd": UlfdDetector,
    "anchor_detector": AnchorDetector,
    "yolo_face": YoloFaceDetector,
    "facefusion_yunet": FaceFusionYuNetDetector,
    "2dfan4": Fan2dfan4Landmarker,
    "peppa_wutz": PeppaWutzLandmarker,
    "fan_68_5": Fan68From5Estimator,
    "arcface": ArcFaceRecognizer,
    "embedding_converter": EmbeddingConverter,
    "swapper": FaceSwapAdapter,
    "enhancer": FaceEnhancer,
}


def profile_of(module: str, model: str, file: str | None, inputs: Sequence[IoSpec],
               outputs: Sequence[IoSpec]) -> Profile:
    """The profile for a model, or ContractError listing why none fits."""
    try:
        return select_profile(module, model, file, inputs, outputs)
    except UnsupportedModel as exc:
        raise ContractError(module, [str(exc), *exc.details]) from None


def make_adapter(profile: Profile, session: ort.InferenceSession, model: Contents | None = None) -> Any:
    """The adapter for `profile` over `session`; `model` is the model's bytes (the
    swapper reads inswapper's emap from them)."""
    adapter = ADAPTERS[profile.adapter]
    if adapter is FaceSwapAdapter:
        return FaceSwapAdapter(session, options=profile.options, model=model)
    if adapter is EmbeddingConverter:
        return EmbeddingConverter(session, serves=profile.options["serves"])
    if adapter is FaceEnhancer:
        return FaceEnhancer(session, options=profile.options)
    if issubclass(adapter, FaceFusionDetector):
        return adapter(session, **profile.options)
    return adapter(session)


def select_adapter(module: str, inputs: Sequence[IoSpec], outputs: Sequence[IoSpec]) -> type:
    """The adapter class for a model known only by its I/O (a generic contract)."""
    return ADAPTERS[profile_of(module, "", None, inputs, outputs).adapter]
