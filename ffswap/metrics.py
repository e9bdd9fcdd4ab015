"""How good a swapped face is, as numbers: shared by `ff compare` (two versions side
by side) and guarded runs (one version against the previous one, as it runs).

Image similarity comes from the field's libraries (scikit-image's SSIM, OpenCV's
PSNR), taken on faces cropped to one fixed size; identity is the cosine of the locked
recogniser's embeddings, as FaceFusion compares faces; whether a face survived the swap is the locked detector
finding it again, with its five landmarks' displacement in units of the face's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ffswap.face import Face, unit
from ffswap.pipeline import Detector, Recognizer


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images; inf when identical.

    OpenCV's rather than scikit-image's (the same formula, data range 255): importing
    skimage's PSNR pulls in scipy.stats, 0.6 s of every `ff compare` start-up
    (bench/RESULTS.md)."""
    if np.array_equal(reference, image):
        return math.inf
    return float(cv2.PSNR(reference, image, 255.0))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """Structural similarity (1 = identical) of two uint8 BGR images, over channels."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, image, channel_axis=2, data_range=255))


def pooled_psnr(values: list[float]) -> float:
    """PSNR of several equally sized comparisons taken together (of their mean squared
    error), not the mean of their dB: one identical pair (inf) would swamp that."""
    if not values:
        raise ValueError("no PSNR values to pool")
    mean_error = sum(10.0 ** (-value / 10.0) for value in values) / len(values)
    return math.inf if mean_error == 0 else -10.0 * math.log10(mean_error)


FACE_CROP = 128
"""Side of the square, in pixels, that image metrics compare faces at: the
inswapper family's working resolution, so nothing a 128 px swapper produces is lost,
and small enough that SSIM costs a few ms a face whatever the frame's size."""


def face_crops(image: np.ndarray, faces: list[Face], size: int = FACE_CROP,
               margin: float = 0.5) -> list[np.ndarray]:
    """Each face as a ``size`` square: the square around its box, grown by ``margin``
    of the box per side (a swap's crop and paste-back reach past the box), scaled to a
    fixed size so a face scores alike in a 4K and a 480p frame and costs the same.
    Beyond the image's edge the square is black, in every version alike."""
    crops = []
    for face in faces:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
        scale = size / side
        left, top = (x1 + x2 - side) / 2, (y1 + y2 - side) / 2
        matrix = np.array([[scale, 0, -left * scale], [0, scale, -top * scale]], np.float32)
        crops.append(cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA
                                    if scale < 1 else cv2.INTER_LINEAR))
    return crops


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two channel-first images, channel by channel, averaged:
    1 when their structure is the same whatever the brightness, tint or contrast
    (a lighter or more strongly tinted swap), low for a face moved, flipped or
    scrambled; 0 for a flat channel. (einsum, not BLAS: a threaded dot product of
    one crop costs more than the crop's swap on a busy CPU.)"""
    x = a.reshape(len(a), -1).astype(np.float32)
    y = b.reshape(len(b), -1).astype(np.float32)
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    def dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", u, v, dtype=np.float64)

    both, spread = dot(x, y), np.sqrt(dot(x, x) * dot(y, y))
    return float(np.mean(np.divide(both, spread, out=np.zeros_like(both), where=spread > 0)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (FaceFusion's face distance is 1 - this)."""
    return float(np.dot(unit(a.ravel()), unit(b.ravel())))


def identity(recognizer: Recognizer, image: np.ndarray, face: Face,
             reference: np.ndarray) -> float:
    """How much the face at `face` in `image` looks like the `reference` embedding."""
    return cosine(recognizer.embed(image, face), reference)


def face_size(face: Face) -> float:
    """The scale landmark displacement is measured in: the box's diagonal."""
    x1, y1, x2, y2 = (float(v) for v in face.box)
    return max(math.hypot(x2 - x1, y2 - y1), 1.0)


@dataclass(frozen=True)
class Refound:
    """The detector's view of a face after the swap: found again (its box overlaps
    the original's), and how far its five landmarks moved, in face sizes."""

    found: bool
    displacement: float  # mean over the five points; inf when not found


def refind(detector: Detector, image: np.ndarray, face: Face,
           min_overlap: float = 0.3) -> Refound:
    """Detect faces in the swapped `image` and match the one where `face` was."""
    return rematch(detector.detect(image), face, min_overlap)


def refind_all(detector: Detector, image: np.ndarray, faces: list[Face],
               min_overlap: float = 0.3) -> list[Refound]:
    """`refind` for every face of a frame, detecting once rather than once per face."""
    found = detector.detect(image)
    return [rematch(found, face, min_overlap) for face in faces]


def rematch(found: list[Face], face: Face, min_overlap: float = 0.3) -> Refound:
    """`refind` on faces already detected in the swapped image: one detection then
    serves every face of a frame (the detector is the cost of a guarded run's check)."""
    best, best_overlap = None, min_overlap
    for candidate in found:
        overlap = box_iou(face.box, candidate.box)
        if overlap >= best_overlap:
            best, best_overlap = candidate, overlap
    if best is None:
        return Refound(False, math.inf)
    moved = np.linalg.norm(best.landmarks - face.landmarks, axis=1).mean()
    return Refound(True, float(moved) / face_size(face))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = float(width * height)
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0
