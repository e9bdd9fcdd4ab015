"""ArcFace-style face recogniser (arcface_w600k_r50 contract): face → identity embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import pixel_lut, warp_blob
from ffswap.contracts import Contract, TensorSpec
from ffswap.face import Face

if TYPE_CHECKING:
    import onnxruntime as ort

ARCFACE_CONTRACT = Contract(
    name="arcface",
    inputs=(TensorSpec("input", (None, 3, 112, 112)),),
    outputs=(TensorSpec("output", (None, 512)),),
)


class ArcFaceRecognizer:
    """Embeds a face aligned to the ``arcface_112_v2`` template, RGB scaled to -1..1.

    The embedding is L2-normalised: swappers expect a unit-length identity vector,
    and normalising here keeps the swap independent of the face crop's brightness.
    """

    CONTRACT = ARCFACE_CONTRACT
    SIZE = 112

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._lut = pixel_lut(127.5, 1.0)

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """Unit-length float32 [512] identity embedding of ``face`` in a BGR image."""
        blob, _ = warp_blob(image, face.landmarks, "arcface_112_v2", self.SIZE, self._lut)
        (embedding,) = self._session.run(["output"], {"input": blob})
        vector = embedding.reshape(-1).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector
