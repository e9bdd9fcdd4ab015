"""The detected-face records passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates.

    ``landmarks`` are five (x, y) points in FaceFusion's order: eye, eye, nose tip,
    mouth corner, mouth corner, left to right *in the image*; alignment relies on it.
    They are the detector's points, or, when a 68-point landmarker is locked and
    sure enough of its points, the five derived from those (FaceFusion's ``5/68``).
    ``estimated`` is true when the detector has no landmark head and the points were
    derived from the box, so callers can tell the alignment is approximate.
    ``landmarks_68`` are the 68 points (the landmarker's, or fan_68_5's estimate
    from the five) when such a model is locked, with the landmarker's score.
    """

    box: np.ndarray  # float32 [4]: x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # float32 [5, 2]
    estimated: bool = False
    landmarks_68: np.ndarray | None = None  # float32 [68, 2]
    landmark_score: float = 0.0

    @property
    def area(self) -> float:
        """Box area in pixels, used to pick the main face of a source image."""
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class SourceFace:
    """The face to put in: the source image, its main face and that face's identity
    embedding as the recogniser gives it (FaceFusion's ``embedding``, not unit
    length; converters take it as is). Image-based swappers (BlendSwap, UniFace)
    crop the image itself."""

    image: np.ndarray
    face: Face
    embedding: np.ndarray  # float32 [512]

    @property
    def normed_embedding(self) -> np.ndarray:
        """Unit length (FaceFusion's ``embedding_norm``)."""
        return unit(self.embedding)


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` scaled to unit L2 length (unchanged if it is zero)."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
