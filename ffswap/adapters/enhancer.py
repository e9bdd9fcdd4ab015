"""GFPGAN-1.4-style face enhancer: restores detail of a (swapped) face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ffswap.align import warp_face
from ffswap.contracts import Contract, TensorSpec
from ffswap.face import Face
from ffswap.paste import box_mask, paste_back

if TYPE_CHECKING:
    import onnxruntime as ort

GFPGAN_CONTRACT = Contract(
    name="gfpgan",
    inputs=(TensorSpec("input", (1, 3, 512, 512)),),
    outputs=(TensorSpec("output", (1, 3, 512, 512)),),
)


class GfpganEnhancer:
    """Enhances one face on an ``ffhq_512`` crop, RGB in -1..1.

    The result is blended at ``blend`` (FaceFusion's default 80 %) rather than pasted
    fully, because restorers over-smooth and a little of the original keeps texture.
    """

    CONTRACT = GFPGAN_CONTRACT
    SIZE = 512

    def __init__(self, session: ort.InferenceSession, *, blend: float = 0.8, mask_blur: float = 0.3) -> None:
        self._session = session
        self._mask = box_mask(self.SIZE, mask_blur) * np.float32(blend)

    def enhance(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """Return a copy of the BGR ``frame`` with ``face`` enhanced."""
        crop, matrix = warp_face(frame, face.landmarks, "ffhq_512", self.SIZE)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)
        blob = (rgb / 127.5 - 1.0).transpose(2, 0, 1)[None]
        (output,) = self._session.run(["output"], {"input": blob})
        restored = (np.clip(output[0].transpose(1, 2, 0), -1, 1) + 1.0) * 127.5
        restored_bgr = cv2.cvtColor(np.rint(restored).astype(np.uint8), cv2.COLOR_RGB2BGR)
        return paste_back(frame, restored_bgr, self._mask, matrix)
