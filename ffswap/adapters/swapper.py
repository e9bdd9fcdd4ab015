"""inswapper_128-style face swapper: puts a source identity onto a target face."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ffstore.blobs import Contents
from ffstore.onnxinfo import last_initializer
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


EMAP_DIMS = [512, 512]
_FLOAT32 = 1  # TensorProto.FLOAT


def read_emap(model: Contents) -> np.ndarray | None:
    """The inswapper ``emap``: the model's last initializer when it is a float32
    [512, 512] matrix stored inline, else ``None`` (a model without one)."""
    tensor = last_initializer(model)
    if tensor is None or tensor.data_type != _FLOAT32 or tensor.dims != EMAP_DIMS:
        return None
    if len(tensor.data) != 512 * 512 * 4:
        return None
    return np.frombuffer(tensor.data, dtype="<f4").reshape(512, 512).astype(np.float32)


class InswapperSwapper:
    """Swaps one target face: ``arcface_128_v2`` crop, RGB 0..1, pasted back through
    a feathered box mask.

    The source is the recogniser's embedding. Given the ``model`` bytes, a real
    inswapper_128's ``emap`` (its last initializer, float32 [512, 512]) is read from
    them and applied as FaceFusion does: ``embedding @ emap / |embedding|``. A model
    without one (or no ``model``) gets the unit-length embedding itself.
    """

    CONTRACT = INSWAPPER_CONTRACT
    SIZE = 128

    def __init__(
        self, session: ort.InferenceSession, *, model: Contents | None = None, mask_blur: float = 0.3
    ) -> None:
        self._session = session
        self._emap = None if model is None else read_emap(model)
        self._mask = box_mask(self.SIZE, mask_blur)
        self._lut = pixel_lut(255.0, 0.0)

    def source_input(self, embedding: np.ndarray) -> np.ndarray:
        """The model's ``source`` input for a recogniser embedding: [1, 512] float32."""
        source = embedding.reshape(1, -1).astype(np.float32)
        if self._emap is None:
            return source
        norm = np.linalg.norm(source)
        return (source @ self._emap) / (norm if norm > 0 else 1.0)

    def swap_in_place(self, frame: np.ndarray, face: Face, embedding: np.ndarray) -> None:
        """Give ``face`` of the BGR ``frame`` the source identity, in place."""
        target, matrix = warp_blob(frame, face.landmarks, "arcface_128_v2", self.SIZE, self._lut)
        feeds = {"target": target, "source": self.source_input(embedding)}
        (output,) = self._session.run(["output"], feeds)
        paste_back(frame, output[0], 255.0, 0.0, self._mask, matrix)
