"""The detected-face record passed between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates.

    ``landmarks`` are five (x, y) points in FaceFusion's order: eye, eye, nose tip,
    mouth corner, mouth corner, left to right *in the image*; alignment relies on it.
    ``estimated`` is true when the detector has no landmark head and the points were
    derived from the box, so callers can tell the alignment is approximate.
    """

    box: np.ndarray  # float32 [4]: x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # float32 [5, 2]
    estimated: bool = False

    @property
    def area(self) -> float:
        """Box area in pixels, used to pick the main face of a source image."""
        x1, y1, x2, y2 = (float(v) for v in self.box)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)
