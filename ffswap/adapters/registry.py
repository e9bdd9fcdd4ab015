"""Which adapters can serve each module, and picking one by a model's I/O signature."""

from __future__ import annotations

from collections.abc import Sequence

from ffswap.adapters.detector import UlfdDetector, YuNetDetector
from ffswap.adapters.enhancer import GfpganEnhancer
from ffswap.adapters.recognizer import ArcFaceRecognizer
from ffswap.adapters.swapper import InswapperSwapper
from ffswap.contracts import IoSpec, check_contract
from ffswap.errors import ContractError
from ffswap.model_source import FACE_DETECTOR, FACE_ENHANCER, FACE_RECOGNIZER, FACE_SWAPPER

AdapterClass = (
    type[YuNetDetector]
    | type[UlfdDetector]
    | type[ArcFaceRecognizer]
    | type[InswapperSwapper]
    | type[GfpganEnhancer]
)

ADAPTERS: dict[str, tuple[AdapterClass, ...]] = {
    FACE_DETECTOR: (YuNetDetector, UlfdDetector),
    FACE_RECOGNIZER: (ArcFaceRecognizer,),
    FACE_SWAPPER: (InswapperSwapper,),
    FACE_ENHANCER: (GfpganEnhancer,),
}


def select_adapter(module: str, inputs: Sequence[IoSpec], outputs: Sequence[IoSpec]) -> AdapterClass:
    """The first adapter for ``module`` whose contract the model's I/O satisfies.

    Raises :class:`ContractError` listing, per candidate adapter, what differs, so a
    publisher sees why e.g. a detector matched neither YuNet nor ULFD.
    """
    if module not in ADAPTERS:
        raise ValueError(f"unknown module {module!r}; known: {', '.join(ADAPTERS)}")
    candidates = ADAPTERS[module]
    differences: list[str] = []
    for adapter in candidates:
        found = check_contract(adapter.CONTRACT, inputs, outputs)
        if not found:
            return adapter
        prefix = f"as {adapter.CONTRACT.name}: " if len(candidates) > 1 else ""
        differences.extend(prefix + difference for difference in found)
    raise ContractError(module, differences)
