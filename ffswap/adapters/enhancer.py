"""GFPGAN-1.4-style face enhancer: restores detail of a (swapped) face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import warp_face
from ffswap.contracts import Contract, TensorSpec
from ffswap.face import Face
from ffswap.paste import box_mask, paste_back, to_bgr_uint8

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
        # RGB CHW straight from the BGR crop, normalised in place (see the swapper).
        blob = crop[..., ::-1].transpose(2, 0, 1).astype(np.float32, order="C")
        blob /= 127.5
        blob -= 1.0
        (output,) = self._session.run(["output"], {"input": blob[None]})
        restored = output[0] if output.flags.writeable else output[0].copy()
        np.clip(restored, -1, 1, out=restored)
        restored += 1.0
        return paste_back(frame, to_bgr_uint8(restored, 127.5, 0.0, 255.0), self._mask, matrix)
