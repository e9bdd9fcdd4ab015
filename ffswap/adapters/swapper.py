"""inswapper_128-style face swapper: puts a source identity onto a target face."""

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

INSWAPPER_CONTRACT = Contract(
    name="inswapper",
    inputs=(TensorSpec("target", (1, 3, 128, 128)), TensorSpec("source", (1, 512))),
    outputs=(TensorSpec("output", (1, 3, 128, 128)),),
)


class InswapperSwapper:
    """Swaps one target face: ``arcface_128_v2`` crop, RGB 0..1, pasted back through
    a feathered box mask.

    The source is the unit-length embedding from the recogniser. (The real
    inswapper_128 additionally wants it multiplied by the graph's own ``emap``
    initializer; reading that needs the ``onnx`` package, which the runtime avoids.)
    """

    CONTRACT = INSWAPPER_CONTRACT
    SIZE = 128

    def __init__(self, session: ort.InferenceSession, *, mask_blur: float = 0.3) -> None:
        self._session = session
        self._mask = box_mask(self.SIZE, mask_blur)

    def swap(self, frame: np.ndarray, face: Face, embedding: np.ndarray) -> np.ndarray:
        """Return a copy of the BGR ``frame`` with ``face`` given the source identity."""
        crop, matrix = warp_face(frame, face.landmarks, "arcface_128_v2", self.SIZE)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        feeds = {
            "target": rgb.transpose(2, 0, 1)[None],
            "source": embedding.reshape(1, -1).astype(np.float32),
        }
        (output,) = self._session.run(["output"], feeds)
        swapped = np.clip(output[0].transpose(1, 2, 0) * 255.0, 0, 255)
        swapped_bgr = cv2.cvtColor(np.rint(swapped).astype(np.uint8), cv2.COLOR_RGB2BGR)
        return paste_back(frame, swapped_bgr, self._mask, matrix)
