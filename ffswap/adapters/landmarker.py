"""Face landmarkers, run as FaceFusion runs them: 2dfan4 and peppa_wutz find 68
points in a crop around the detector's box; fan_68_5 estimates the 68 from the
detector's five (FaceFusion uses it for the face's angle, and as the 68 points
when no landmarker is sure of its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ffswap.align import estimate_matrix

if TYPE_CHECKING:
    import onnxruntime as ort

CROP = 256
HEATMAP = 64


def face_angle(landmarks_68: np.ndarray) -> int:
    """FaceFusion's estimate_face_angle: the direction from jaw point 0 to jaw point
    16, snapped to 0, 90, 180 or 270 degrees."""
    (x1, y1), (x2, y2) = landmarks_68[0], landmarks_68[16]
    theta = np.degrees(np.arctan2(y2 - y1, x2 - x1)) % 360
    angles = np.linspace(0, 360, 5)
    return int(angles[int(np.argmin(np.abs(angles - theta)))] % 360)


def five_from_68(landmarks_68: np.ndarray) -> np.ndarray:
    """FaceFusion's convert_to_face_landmark_5: eye centres, nose tip, mouth corners."""
    return np.array([landmarks_68[36:42].mean(axis=0), landmarks_68[42:48].mean(axis=0),
                     landmarks_68[30], landmarks_68[48], landmarks_68[54]], dtype=np.float32)


def _rotation(angle: int, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """FaceFusion's create_rotation_matrix_and_size: rotate about the centre onto a
    canvas that holds the whole rotated crop."""
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    width = int(size * cos + size * sin)
    height = int(size * sin + size * cos)
    matrix[:, 2] += ((width - size) / 2, (height - size) / 2)
    return matrix, (width, height)


def _transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return cv2.transform(points.reshape(1, -1, 2), matrix).reshape(-1, 2)


def _optimised_contrast(crop: np.ndarray) -> np.ndarray:
    """FaceFusion's conditional_optimize_contrast, conversions included: a dark crop
    (mean lightness under 30) gets CLAHE on its lightness."""
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2Lab)
    if np.mean(lab[:, :, 0]) < 30:
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


class BoxLandmarker:
    """What 2dfan4 and peppa_wutz share: the face box scaled to 195 pixels and
    centred in a 256 crop, turned upright by the face's angle, BGR in 0..1; the
    points come back in 64-pixel heatmap units."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def _crop(self, image: np.ndarray, box: np.ndarray, angle: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x1, y1, x2, y2 = (float(v) for v in box)
        scale = 195 / max(x2 - x1, y2 - y1, 1.0)
        translation = (CROP - np.array([x1 + x2, y1 + y2]) * scale) * 0.5
        affine = np.array([[scale, 0, translation[0]], [0, scale, translation[1]]])
        crop = cv2.warpAffine(image, affine, (CROP, CROP))
        rotation, size = _rotation(angle, CROP)
        if angle:  # at 0 degrees the rotation is the identity
            crop = cv2.warpAffine(crop, rotation, size)
        crop = _optimised_contrast(crop)
        blob = (crop.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        return blob, affine, rotation

    def _back(self, points: np.ndarray, affine: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        points = points[:, :2] / HEATMAP * CROP
        points = _transform(points, cv2.invertAffineTransform(rotation))
        return _transform(points, cv2.invertAffineTransform(affine)).astype(np.float32)

    def landmarks(self, image: np.ndarray, box: np.ndarray, angle: int = 0) -> tuple[np.ndarray, float]:
        """68 points in image pixels and the landmarker's score (0..1)."""
        raise NotImplementedError


class Fan2dfan4Landmarker(BoxLandmarker):
    """2dfan4: outputs the 68 points and their heatmaps; the score is the mean of the
    heatmaps' peaks, stretched so 0.9 counts as certain."""

    def landmarks(self, image: np.ndarray, box: np.ndarray, angle: int = 0) -> tuple[np.ndarray, float]:
        blob, affine, rotation = self._crop(image, box, angle)
        points, heatmaps = self._session.run(None, {"input": blob})[:2]
        score = float(np.mean(np.amax(heatmaps, axis=(2, 3))))
        return self._back(points[0], affine, rotation), float(np.interp(score, [0, 0.9], [0, 1]))


class PeppaWutzLandmarker(BoxLandmarker):
    """peppa_wutz: 68 (x, y, score) triples; 0.95 mean score counts as certain."""

    def landmarks(self, image: np.ndarray, box: np.ndarray, angle: int = 0) -> tuple[np.ndarray, float]:
        blob, affine, rotation = self._crop(image, box, angle)
        points = self._session.run(None, {"input": blob})[0].reshape(-1, 3)
        score = float(np.mean(points[:, 2]))
        return self._back(points, affine, rotation), float(np.interp(score, [0, 0.95], [0, 1]))


class Fan68From5Estimator:
    """fan_68_5: the five points moved into the ffhq_512 unit frame, 68 points
    estimated there and moved back."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    def estimate(self, landmarks_5: np.ndarray) -> np.ndarray:
        """68 points in image pixels, estimated from the detector's five."""
        matrix = estimate_matrix(landmarks_5, "ffhq_512", 1)
        unit = _transform(np.asarray(landmarks_5, dtype=np.float64), matrix).astype(np.float32)
        (estimate,) = self._session.run(None, {"input": unit[None]})[:1]
        return _transform(estimate[0].astype(np.float64),
                          cv2.invertAffineTransform(matrix)).astype(np.float32)
