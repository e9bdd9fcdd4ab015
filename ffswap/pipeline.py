"""The swap pipeline, in FaceFusion's order: detect -> estimate 68 points from the
five (fan_68_5) -> refine the five with a 68-point landmarker -> embed the source ->
swap each target face -> enhance -> paste back.

:class:`FaceSwapper` holds adapters (not sessions) and no other state, so it is cheap
to build and safe to share between threads; the :class:`~ffswap.runtime.Runtime`
builds a fresh one per frame from whatever models are current.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ffswap.adapters.factory import make_adapter, profile_of
from ffswap.adapters.landmarker import face_angle, five_from_68
from ffswap.contracts import session_io
from ffswap.errors import NoFaceError
from ffswap.face import Face, SourceFace
from ffswap.model_source import FACE_DETECTOR, FACE_ENHANCER, FACE_RECOGNIZER, FACE_SWAPPER

if TYPE_CHECKING:
    import onnxruntime as ort

    from ffswap.adapters.swapper import CropInspector, EmbeddingConverter

LANDMARKER_SCORE = 0.5
"""FaceFusion's face_landmarker_score: the 68 points replace the detector's five
for alignment only when the landmarker is at least this sure of them."""


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]: ...


class Landmarker(Protocol):
    def landmarks(self, image: np.ndarray, box: np.ndarray, angle: int = 0) -> tuple[np.ndarray, float]: ...


class LandmarkEstimator(Protocol):
    def estimate(self, landmarks_5: np.ndarray) -> np.ndarray: ...


class Recognizer(Protocol):
    def embed(self, image: np.ndarray, face: Face) -> np.ndarray: ...


class Swapper(Protocol):
    def source_input(self, source: SourceFace | np.ndarray,
                     converter: EmbeddingConverter | None = None) -> np.ndarray: ...

    def swap_in_place(self, frame: np.ndarray, face: Face, source: np.ndarray,
                      inspect: CropInspector | None = None) -> None: ...


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
    landmarker: Landmarker | None = None
    landmark_estimator: LandmarkEstimator | None = None
    converter: EmbeddingConverter | None = None

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

        def adapt(module: str, session: ort.InferenceSession, model: bytes | None = None) -> Any:
            return make_adapter(profile_of(module, "", None, *session_io(session)), session, model)

        return cls(
            detector=adapt(FACE_DETECTOR, detector),
            recognizer=adapt(FACE_RECOGNIZER, recognizer),
            swapper=adapt(FACE_SWAPPER, swapper, swapper_model),
            enhancer=None if enhancer is None else adapt(FACE_ENHANCER, enhancer),
        )

    def faces(self, image: np.ndarray) -> list[Face]:
        """Every face in ``image`` with its five alignment points, refined as
        FaceFusion's create_faces does when landmark models are locked."""
        faces = self.detector.detect(image)
        if self.landmarker is None and self.landmark_estimator is None:
            return faces
        return [self._refined(image, face) for face in faces]

    def _refined(self, image: np.ndarray, face: Face) -> Face:
        estimate = None if self.landmark_estimator is None else self.landmark_estimator.estimate(
            face.landmarks)
        if self.landmarker is None:
            return replace(face, landmarks_68=estimate)
        angle = 0 if estimate is None else face_angle(estimate)
        points, score = self.landmarker.landmarks(image, face.box, angle)
        five = five_from_68(points) if score > LANDMARKER_SCORE else face.landmarks
        return replace(face, landmarks=five, landmarks_68=points, landmark_score=score)

    def source_face(self, source: np.ndarray) -> SourceFace:
        """The largest face in the source image, with its embedding.

        The largest, not the best-scored: in a source with bystanders the subject is
        usually the one filling the frame.
        """
        _check_image(source, "source")
        faces = self.faces(source)
        if not faces:
            raise NoFaceError("source image")
        face = max(faces, key=lambda face: face.area)
        return SourceFace(source, face, self.recognizer.embed(source, face))

    def source_embedding(self, source: np.ndarray) -> np.ndarray:
        """The source face's identity embedding (as the recogniser gives it)."""
        return self.source_face(source).embedding

    def source_input(self, source: SourceFace | np.ndarray) -> np.ndarray:
        """What the swapper is fed for this source: compute once per source."""
        return self.swapper.source_input(source, self.converter)

    def swap_faces(
        self, frame: np.ndarray, faces: list[Face], source: np.ndarray, *, in_place: bool = False,
        inspect: Callable[[Face, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Swap (then enhance) the given faces of ``frame``; the result is returned.
        ``source`` is the swapper's source input (:meth:`source_input`); ``inspect``
        is shown each face's raw swapped crop (see ``FaceSwapAdapter.swap_in_place``).

        All swaps happen before any enhancement so an enhancer crop that overlaps a
        neighbouring face sees that face already swapped. Every stage pastes into one
        buffer: a new frame copy per face and stage would cost more than the stand-in
        models' inference on a 720p frame. That buffer is a copy of ``frame`` unless
        ``in_place`` is set by a caller that has no further use for the input (a
        decoded video frame), which saves the one full-frame copy too.
        """
        result = frame if in_place else frame.copy()
        for face in faces:
            self.swapper.swap_in_place(result, face, source, None if inspect is None else
                                       functools.partial(inspect, face))
        if self.enhancer is not None:
            for face in faces:
                self.enhancer.enhance_in_place(result, face)
        return result

    def target_faces(self, target: np.ndarray) -> list[Face]:
        """Every face of a target image; :class:`NoFaceError` if none."""
        _check_image(target, "target")
        faces = self.faces(target)
        if not faces:
            raise NoFaceError("target image")
        return faces

    def swap_target(self, target: np.ndarray, source: SourceFace | np.ndarray) -> np.ndarray:
        """Swap every face detected in ``target`` with ``source`` (a source face, or an
        embedding for swappers that take one); :class:`NoFaceError` if none."""
        return self.swap_faces(target, self.target_faces(target), self.source_input(source))

    def swap_image(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Put the source's identity on every face of the target (BGR uint8 in/out)."""
        return self.swap_target(target, self.source_face(source))
