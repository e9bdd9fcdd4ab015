"""GFPGAN-1.4-style face enhancer: restores detail of a (swapped) face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import pixel_lut, warp_blob
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
        self._lut = pixel_lut(127.5, 1.0)

    def enhance_in_place(self, frame: np.ndarray, face: Face) -> None:
        """Enhance ``face`` of the BGR ``frame``, in place."""
        blob, matrix = warp_blob(frame, face.landmarks, "ffhq_512", self.SIZE, self._lut)
        (output,) = self._session.run(["output"], {"input": blob})
        # -1..1 to 0..255: clip(x * 127.5 + 127.5) equals (clip(x, -1, 1) + 1) * 127.5.
        paste_back(frame, output[0], 127.5, 127.5, self._mask, matrix)
