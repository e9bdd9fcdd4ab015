"""inswapper_128-style face swapper: puts a source identity onto a target face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import warp_face
from ffswap.contracts import Contract, TensorSpec
from ffswap.face import Face
from ffswap.paste import box_mask, paste_back, to_bgr_uint8

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
        # BGR HWC -> RGB CHW by view, then one contiguous float copy: no cvtColor, and
        # onnxruntime gets a C-contiguous tensor instead of copying a transposed view.
        target = crop[..., ::-1].transpose(2, 0, 1).astype(np.float32, order="C")
        target /= 255.0
        feeds = {
            "target": target[None],
            "source": embedding.reshape(1, -1).astype(np.float32),
        }
        (output,) = self._session.run(["output"], feeds)
        return paste_back(frame, to_bgr_uint8(output[0], 255.0, 0.0, 255.0), self._mask, matrix)
