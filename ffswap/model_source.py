"""What the runtime needs from a model store: module names, loaded models, a source of them.

Import-light on purpose (no NumPy/onnxruntime): the store implements
:class:`ModelSource` on top of its verified blobs and should not pull in the
inference stack to do so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ffstore.blobs import Contents

FACE_DETECTOR = "face_detector"
FACE_LANDMARKER = "face_landmarker"
FACE_RECOGNIZER = "face_recognizer"
FACE_SWAPPER = "face_swapper"
FACE_ENHANCER = "face_enhancer"

MODULES: tuple[str, ...] = (FACE_DETECTOR, FACE_LANDMARKER, FACE_RECOGNIZER, FACE_SWAPPER,
                            FACE_ENHANCER)
"""Every module kind the runtime knows, in pipeline order."""

REQUIRED_MODULES: tuple[str, ...] = (FACE_DETECTOR, FACE_RECOGNIZER, FACE_SWAPPER)
"""The modules a swap cannot run without; the enhancer is optional."""


@dataclass(frozen=True)
class LoadedModel:
    """One verified model, ready to become an inference session.

    ``data`` are the exact bytes the store verified; ``inputs``/``outputs`` are the
    manifest's I/O records (``{"name", "shape", "dtype"}``), checked against the
    adapter's contract before any session is built. ``file`` is the main file's
    name in the manifest: a FaceFusion model is known by it (see ffswap.zoo).
    """

    module: str
    model: str
    version: str
    data: Contents = field(repr=False)
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    check: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    """Set when `data` has not been verified yet (``deferred_check``): raises unless the
    bytes (``external`` ones too) are the right ones. The runtime runs it while
    onnxruntime builds the session from the same bytes and throws the session away
    unless it passes."""
    external: Mapping[str, Contents] = field(default_factory=dict, repr=False, compare=False)
    """External data files (weights kept beside the ONNX file), keyed by the location
    the model names them by, so onnxruntime takes them from memory, not from disk."""
    file: str = ""


class ModelSource(Protocol):
    """Source of verified models; the store's lockfile-backed loader implements it."""

    def load(self, module: str, version: str | None, *,
             deferred_check: bool = False) -> LoadedModel:
        """Return the model for ``module`` (a module kind, or a lock entry's name such
        as ``face_landmarker/2dfan4``) at ``version`` (``None``: the locked or
        default version). Raise if it is missing or fails verification; with
        ``deferred_check`` the digest check of ``data`` may be left to
        ``LoadedModel.check``, which the caller must run before using the bytes."""
        ...
