"""The swap pipeline: detect → align → embed source → swap each target face →
enhance → paste back.

:class:`FaceSwapper` holds adapters (not sessions) and no other state, so it is cheap
to build and safe to share between threads; the :class:`~ffswap.runtime.Runtime`
builds a fresh one per frame from whatever models are current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ffswap.adapters.registry import select_adapter
from ffswap.contracts import session_io
from ffswap.errors import NoFaceError
from ffswap.face import Face
from ffswap.model_source import FACE_DETECTOR, FACE_ENHANCER, FACE_RECOGNIZER, FACE_SWAPPER

if TYPE_CHECKING:
    import onnxruntime as ort


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]: ...


class Recognizer(Protocol):
    def embed(self, image: np.ndarray, face: Face) -> np.ndarray: ...


class Swapper(Protocol):
    def swap_in_place(self, frame: np.ndarray, face: Face, embedding: np.ndarray) -> None: ...


class Enhancer(Protocol):
    def enhance_in_place(self, frame: np.ndarray, face: Face) -> None: ...


def _check_image(image: np.ndarray, where: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{where} must be a BGR uint8 image of shape [H, W, 3]")


@dataclass(frozen=True)
class FaceSwapper:
    """One consistent set of models applied to images."""

    detector: Detector
    recognizer: Recognizer
    swapper: Swapper
    enhancer: Enhancer | None = None

    @classmethod
    def from_sessions(
        cls,
        *,
        detector: ort.InferenceSession,
        recognizer: ort.InferenceSession,
        swapper: ort.InferenceSession,
        enhancer: ort.InferenceSession | None = None,
        swapper_model: bytes | None = None,
    ) -> FaceSwapper:
        """Wrap ready sessions, picking each adapter by the session's I/O signature.

        ``swapper_model``: the swapper's ONNX bytes, from which a real inswapper's
        ``emap`` is read (a session does not expose its initializers).
        """

        def adapt(module: str, session: ort.InferenceSession) -> Any:
            return select_adapter(module, *session_io(session))(session)

        swapper_class = select_adapter(FACE_SWAPPER, *session_io(swapper))
        return cls(
            detector=adapt(FACE_DETECTOR, detector),
            recognizer=adapt(FACE_RECOGNIZER, recognizer),
            swapper=swapper_class(swapper, model=swapper_model),
            enhancer=None if enhancer is None else adapt(FACE_ENHANCER, enhancer),
        )

    def source_embedding(self, source: np.ndarray) -> np.ndarray:
        """Identity embedding of the largest face in the source image.

        The largest, not the best-scored: in a source with bystanders the subject is
        usually the one filling the frame.
        """
        _check_image(source, "source")
        faces = self.detector.detect(source)
        if not faces:
            raise NoFaceError("source image")
        return self.recognizer.embed(source, max(faces, key=lambda face: face.area))

    def swap_faces(
        self, frame: np.ndarray, faces: list[Face], embedding: np.ndarray, *, in_place: bool = False
    ) -> np.ndarray:
        """Swap (then enhance) the given faces of ``frame``; the result is returned.

        All swaps happen before any enhancement so an enhancer crop that overlaps a
        neighbouring face sees that face already swapped. Every stage pastes into one
        buffer: a new frame copy per face and stage would cost more than the stand-in
        models' inference on a 720p frame. That buffer is a copy of ``frame`` unless
        ``in_place`` is set by a caller that has no further use for the input (a
        decoded video frame), which saves the one full-frame copy too.
        """
        result = frame if in_place else frame.copy()
        for face in faces:
            self.swapper.swap_in_place(result, face, embedding)
        if self.enhancer is not None:
            for face in faces:
                self.enhancer.enhance_in_place(result, face)
        return result

    def swap_target(self, target: np.ndarray, embedding: np.ndarray) -> np.ndarray:
        """Swap every face detected in ``target``; :class:`NoFaceError` if none."""
        _check_image(target, "target")
        faces = self.detector.detect(target)
        if not faces:
            raise NoFaceError("target image")
        return self.swap_faces(target, faces, embedding)

    def swap_image(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Put the source's identity on every face of the target (BGR uint8 in/out)."""
        return self.swap_target(target, self.source_embedding(source))
