"""inswapper_128-style face swapper: puts a source identity onto a target face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffswap.align import pixel_lut, warp_blob
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
        self._lut = pixel_lut(255.0, 0.0)

    def swap_in_place(self, frame: np.ndarray, face: Face, embedding: np.ndarray) -> None:
        """Give ``face`` of the BGR ``frame`` the source identity, in place."""
        target, matrix = warp_blob(frame, face.landmarks, "arcface_128_v2", self.SIZE, self._lut)
        feeds = {"target": target, "source": embedding.reshape(1, -1).astype(np.float32)}
        (output,) = self._session.run(["output"], feeds)
        paste_back(frame, output[0], 255.0, 0.0, self._mask, matrix)
