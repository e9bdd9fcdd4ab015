"""Face swappers, run as FaceFusion runs them: one adapter for every swapper type
(inswapper, HyperSwap, SimSwap, GHOST, HifiFace, BlendSwap, UniFace), set up by the
model's profile (template, crop size, mean and standard deviation; see ffswap.zoo),
and the embedding converters GHOST, SimSwap and HifiFace need.

What differs by type is only how the model's ``source`` input is made from the
source face (the emap, a converter, the unit embedding, or a face crop) and in which
range the output comes back; the target crop, the box mask and the paste-back are
shared."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ffstore.blobs import Contents
from ffswap.align import normalising_lut, pixel_lut, warp_blob
from ffswap.errors import SwapError
from ffswap.face import Face, SourceFace, unit
from ffswap.paste import box_mask, paste_back
from ffswap.weights import last_initializer
from ffswap.zoo import ZOO

if TYPE_CHECKING:
    import onnxruntime as ort

CropInspector = Callable[[np.ndarray], None]
"""Sees one face's swapped crop as float RGB [3, size, size] in pixel units (0..255
when the model behaves), before it is clipped and pasted."""

EMAP_DIMS = [512, 512]
_EMAP_TYPES = {1: "<f4", 10: "<f2"}  # TensorProto FLOAT, FLOAT16 (inswapper_128_fp16)
# Output in -1..1 for these types, 0..1 for the others (FaceFusion's normalize_crop_frame).
_SIGNED_OUTPUT = ("ghost", "hififace", "hyperswap", "uniface")
_CONVERTED = {"ghost": False, "simswap": True, "hififace": True}  # type -> normalised after


def read_emap(model: Contents) -> np.ndarray | None:
    """The inswapper ``emap``: the model's last initializer when it is a [512, 512]
    matrix stored inline (float32, or float16 in the fp16 release), as float32;
    else ``None`` (a model without one)."""
    tensor = last_initializer(model)
    if tensor is None or tensor.dims != EMAP_DIMS or tensor.data_type not in _EMAP_TYPES:
        return None
    dtype = np.dtype(_EMAP_TYPES[tensor.data_type])
    if len(tensor.data) != 512 * 512 * dtype.itemsize:
        return None
    return np.frombuffer(tensor.data, dtype=dtype).reshape(512, 512).astype(np.float32)


class EmbeddingConverter:
    """Maps an ArcFace embedding into a swapper's own identity space (FaceFusion's
    crossface_* / arcface_converter_* models): ``input`` [1, 512] -> [1, 512]."""

    def __init__(self, session: ort.InferenceSession, *, serves: str) -> None:
        self._session = session
        self.serves = serves

    def convert(self, embedding: np.ndarray) -> np.ndarray:
        feed = {"input": embedding.reshape(-1, 512).astype(np.float32)}
        return self._session.run(None, feed)[0].ravel().astype(np.float32)


class FaceSwapAdapter:
    """Swaps one target face at a time; see the module docstring. ``model`` is the
    model's own bytes, where inswapper keeps its emap (the last initializer)."""

    def __init__(self, session: ort.InferenceSession, *, options: Mapping[str, Any] | None = None,
                 model: Contents | None = None, mask_blur: float = 0.3) -> None:
        options = options or ZOO["inswapper_128"].options
        self._session = session
        self.type: str = options["type"]
        self._template = options["template"]
        self._size: int = options["size"]
        self._converter_type: str | None = options.get("converter")
        self._source_crop: tuple[str, int] | None = options.get("source_crop")
        self._emap = read_emap(model) if self.type == "inswapper" and model is not None else None
        mean, std = options["mean"], options["std"]
        self._lut = normalising_lut(mean, std)
        if self.type in _SIGNED_OUTPUT:  # x * std + mean, then to 0..255 (std, mean uniform)
            self._scale, self._offset = 255.0 * std[0], 255.0 * mean[0]
        else:
            self._scale, self._offset = 255.0, 0.0
        self._mask = box_mask(self._size, mask_blur)
        self._source_lut = pixel_lut(255.0, 0.0)

    @property
    def needs_converter(self) -> str | None:
        """The converter type this swapper's source goes through, if any."""
        return self._converter_type

    def source_input(self, source: SourceFace | np.ndarray,
                     converter: EmbeddingConverter | None = None) -> np.ndarray:
        """The model's ``source`` input for a source face (or just its embedding),
        made once per source and reused for every target face."""
        if self._source_crop is not None:
            if not isinstance(source, SourceFace):
                raise SwapError(f"a {self.type} swapper takes the source face's image, not an "
                                "embedding")
            template, size = self._source_crop
            blob, _ = warp_blob(source.image, source.face.landmarks, template, size, self._source_lut)
            return blob
        embedding = source.embedding if isinstance(source, SourceFace) else np.asarray(source)
        vector = embedding.reshape(1, -1).astype(np.float32)
        if self._converter_type is not None:
            if converter is None or converter.serves != self._converter_type:
                raise SwapError(f"a {self.type} swapper needs its embedding converter "
                                f"(crossface_{self._converter_type}); add it to "
                                "modules.face_swapper in facefusion.toml")
            converted = converter.convert(vector).reshape(1, -1)
            return unit(converted) if _CONVERTED[self.type] else converted
        if self._emap is not None:
            norm = np.linalg.norm(vector)
            return (vector @ self._emap) / (norm if norm > 0 else 1.0)
        return unit(vector)

    def swap_in_place(self, frame: np.ndarray, face: Face, source: np.ndarray,
                      inspect: CropInspector | None = None) -> None:
        """Give ``face`` of the BGR ``frame`` the identity ``source`` (the model's
        source input, see :meth:`source_input`), in place. ``inspect`` sees the
        model's crop in pixel units before paste-back clips it to uint8, where NaN
        or saturated output can still be told from a dark or bright face (a guarded
        run, ffswap.guard)."""
        target, matrix = warp_blob(frame, face.landmarks, self._template, self._size, self._lut)
        output = self._session.run(None, {"target": target, "source": source})[0]
        if inspect is not None:
            inspect(output[0] * np.float32(self._scale) + np.float32(self._offset))
        paste_back(frame, output[0], self._scale, self._offset, self._mask, matrix)
