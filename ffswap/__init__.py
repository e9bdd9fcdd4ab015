"""Face-swap runtime: detection, alignment, swapping and enhancement over ONNX models.

The package root stays import-light on purpose: the CLI and the model store import
``ffswap`` to read names and types, and must not pay for onnxruntime, OpenCV or NumPy
(or fail where they are missing) until a swap actually runs. Import the submodules
(``ffswap.runtime``, ``ffswap.pipeline``, ...) for the heavy parts.
"""

from ffswap.errors import (
    ContractError,
    MediaError,
    NoFaceError,
    ProviderUnavailableError,
    SwapError,
)

__all__ = [
    "ContractError",
    "MediaError",
    "NoFaceError",
    "ProviderUnavailableError",
    "SwapError",
]
