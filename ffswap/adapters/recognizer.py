"""ArcFace face recogniser (arcface_w600k_r50): face -> identity embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import pixel_lut, warp_blob
from ffswap.face import Face

if TYPE_CHECKING:
    import onnxruntime as ort


class ArcFaceRecognizer:
    """Embeds a face aligned to the ``arcface_112_v2`` template, RGB scaled to -1..1.

    The embedding is returned as the model gives it (FaceFusion's ``embedding``):
    embedding converters take it as is, and each swapper normalises it where
    FaceFusion does (see :class:`~ffswap.face.SourceFace`).
    """

    SIZE = 112

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._lut = pixel_lut(127.5, 1.0)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Float32 [512] identity embedding of ``face`` in a BGR image."""
        blob, _ = warp_blob(image, face.landmarks, "arcface_112_v2", self.SIZE, self._lut)
        embedding = self._session.run(None, {"input": blob})[0]
        return embedding.reshape(-1).astype(np.float32)
