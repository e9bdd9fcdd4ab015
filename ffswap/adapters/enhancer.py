"""Face enhancers, run as FaceFusion runs them: GFPGAN 1.2-1.4, GPEN-BFR 256-2048,
RestoreFormer++ and CodeFormer (with its fidelity ``weight``), each on its
template's crop at its size, RGB in -1..1, and blended back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ffswap.align import pixel_lut, warp_blob
from ffswap.face import Face
from ffswap.paste import box_mask, paste_back
from ffswap.zoo import GENERIC

if TYPE_CHECKING:
    import onnxruntime as ort


class FaceEnhancer:
    """Enhances one face. The result is blended at ``blend`` (FaceFusion's default
    80 %) rather than pasted fully, because restorers over-smooth and a little of
    the original keeps texture; FaceFusion's paste-then-blend equals a box mask
    scaled by ``blend``."""

    def __init__(self, session: ort.InferenceSession, *, options: Mapping[str, Any] | None = None,
                 blend: float = 0.8, mask_blur: float = 0.3) -> None:
        options = options or GENERIC["face_enhancer"][0].options
        self._session = session
        self._template = options["template"]
        self._size: int = options["size"]
        weight = options.get("weight")
        self._weight = None if weight is None else np.array([weight], dtype=np.float64)
        self._mask = box_mask(self._size, mask_blur) * np.float32(blend)
        self._lut = pixel_lut(127.5, 1.0)

    def enhance_in_place(self, frame: np.ndarray, face: Face) -> None:
        """Enhance ``face`` of the BGR ``frame``, in place."""
        blob, matrix = warp_blob(frame, face.landmarks, self._template, self._size, self._lut)
        feeds = {"input": blob} if self._weight is None else {"input": blob, "weight": self._weight}
        output = self._session.run(None, feeds)[0]
        # -1..1 to 0..255: clip(x * 127.5 + 127.5) equals (clip(x, -1, 1) + 1) * 127.5.
        paste_back(frame, output[0], 127.5, 127.5, self._mask, matrix)
