"""Five-point face alignment to FaceFusion's warp templates.

Every model downstream of the detector was trained on faces cropped so that eyes,
nose and mouth land on fixed template positions; feeding anything else degrades
identity and swap quality. The templates are FaceFusion's, normalised to a unit crop.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np

from ffswap.errors import SwapError

Template = Literal["arcface_112_v1", "arcface_112_v2", "arcface_128", "ffhq_512", "mtcnn_512"]

WARP_TEMPLATES: dict[Template, np.ndarray] = {
    # SimSwap and GHOST crops (FaceFusion's arcface_112_v1), 112x112 in its units.
    "arcface_112_v1": np.array(
        [
            [0.35473214, 0.45658929],
            [0.64526786, 0.45658929],
            [0.50000000, 0.61154464],
            [0.37913393, 0.77687500],
            [0.62086607, 0.77687500],
        ],
        dtype=np.float32,
    ),
    # ArcFace recogniser crop (arcface_w600k_r50 and friends), 112x112.
    "arcface_112_v2": np.array(
        [
            [0.34191607, 0.46157411],
            [0.65653393, 0.45983393],
            [0.50022500, 0.64050536],
            [0.37097589, 0.82469196],
            [0.63151696, 0.82325089],
        ],
        dtype=np.float32,
    ),
    # inswapper_128 and HyperSwap crop: the ArcFace points shifted to leave room
    # around the face (FaceFusion 3.0 called it arcface_128_v2).
    "arcface_128": np.array(
        [
            [0.36167656, 0.40387734],
            [0.63696719, 0.40235469],
            [0.50019687, 0.56044219],
            [0.38710391, 0.72160547],
            [0.61507734, 0.72034453],
        ],
        dtype=np.float32,
    ),
    # GFPGAN / FFHQ crop, 512x512: whole head with hair and chin.
    "ffhq_512": np.array(
        [
            [0.37691676, 0.46864664],
            [0.62285697, 0.46912813],
            [0.50123859, 0.61331904],
            [0.39308822, 0.72541100],
            [0.61150205, 0.72490465],
        ],
        dtype=np.float32,
    ),
    # HifiFace crop (FaceFusion's mtcnn_512).
    "mtcnn_512": np.array(
        [
            [0.36562865, 0.46733799],
            [0.63305391, 0.46585885],
            [0.50019127, 0.61942959],
            [0.39032951, 0.77598822],
            [0.61178945, 0.77476328],
        ],
        dtype=np.float32,
    ),
}


def estimate_matrix(landmarks: np.ndarray, template: Template, size: int) -> np.ndarray:
    """Similarity transform (rotation, uniform scale, translation) image → crop.

    A partial affine, not a full one, so faces are never sheared. Fitted to all five
    points by least squares in closed form (Umeyama without reflection): the optimum
    that FaceFusion's ``estimateAffinePartial2D`` with RANSAC at a 100-pixel threshold
    (every point an inlier) converges to, at a tenth of its cost per face and stage.
    """
    # Plain floats: for five points NumPy's per-call overhead is most of the cost.
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2).tolist()
    target = (WARP_TEMPLATES[template].astype(np.float64) * size).tolist()
    count = len(points)
    mean_x, mean_y = (sum(axis) / count for axis in zip(*points, strict=True))
    mean_u, mean_v = (sum(axis) / count for axis in zip(*target, strict=True))
    spread = dot = cross = 0.0
    for (x, y), (u, v) in zip(points, target, strict=True):
        x, y, u, v = x - mean_x, y - mean_y, u - mean_u, v - mean_v
        spread += x * x + y * y
        dot += x * u + y * v
        cross += x * v - y * u
    if spread < 1e-12:
        raise SwapError("cannot align face: its landmarks are degenerate")
    # [[a, -b], [b, a]] minimises the squared distances of the centred points.
    a, b = dot / spread, cross / spread
    return np.array([
        [a, -b, mean_u - a * mean_x + b * mean_y],
        [b, a, mean_v - b * mean_x - a * mean_y],
    ])


def crop_region(matrix: np.ndarray, size: int, shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """Image rectangle (x1, y1, x2, y2) that the ``size`` crop of ``matrix`` covers,
    clipped to the image; None when the crop lies wholly outside it.

    A pixel of margin on each side (two past the far corners) keeps every bilinear
    neighbour of every crop pixel inside the rectangle, so warping from (or pasting
    into) just this rectangle gives the same pixels as using the whole image.
    """
    # Plain floats: this runs twice per face and stage, and NumPy's per-call overhead
    # on four corners outweighs the arithmetic.
    (a, b, c), (d, e, f) = cv2.invertAffineTransform(matrix).tolist()
    xs = (c, a * size + c, b * size + c, a * size + b * size + c)
    ys = (f, d * size + f, e * size + f, d * size + e * size + f)
    height, width = shape[:2]
    x1 = max(0, math.floor(min(xs)) - 1)
    y1 = max(0, math.floor(min(ys)) - 1)
    x2 = min(width, math.ceil(max(xs)) + 2)
    y2 = min(height, math.ceil(max(ys)) + 2)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def pixel_lut(divisor: float, offset: float) -> np.ndarray:
    """Float32 table of ``x / divisor - offset`` for every uint8 ``x``.

    Normalising through a 256-entry table is one pass per plane. It is computed in
    float64 and rounded once, as FaceFusion computes its crops (a uint8 array over a
    Python float is float64) before casting them to float32.
    """
    return (np.arange(256, dtype=np.float64) / divisor - offset).astype(np.float32)


def normalising_lut(mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """Per-RGB-channel tables [3, 256] of FaceFusion's ``(x / 255 - mean) / std``."""
    unit = np.arange(256, dtype=np.float64) / 255.0
    return np.stack([((unit - m) / s).astype(np.float32) for m, s in zip(mean, std, strict=True)])


def warp_blob(
    image: np.ndarray, landmarks: np.ndarray, template: Template, size: int, lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Crop and align one face of a BGR image straight into a model input.

    Returns the RGB float32 [1, 3, size, size] tensor, normalised through ``lut`` (see
    :func:`pixel_lut`; a [3, 256] table normalises each RGB channel on its own), and
    the matrix needed to paste the processed crop back.
    Bilinear, with border replication so faces near the image edge get no black
    wedges. Only the image rectangle the crop covers is read, widened to BGRA first:
    OpenCV's four-channel warp is vectorised, its three-channel one is not, and the
    rectangle is small while the crop (512 for the enhancer) is not.
    """
    matrix = estimate_matrix(landmarks, template, size)
    height, width = image.shape[:2]
    x1, y1, x2, y2 = crop_region(matrix, size, image.shape) or (0, 0, width, height)
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ (x1, y1)  # crop coordinates from rectangle ones
    region = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2BGRA)
    crop = cv2.warpAffine(
        region, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    blue, green, red, _ = cv2.split(crop)
    blob = np.empty((1, 3, size, size), dtype=np.float32)
    tables = lut if lut.ndim == 2 else (lut, lut, lut)
    for channel, plane in enumerate((red, green, blue)):
        cv2.LUT(plane, tables[channel], dst=blob[0, channel])
    return blob, matrix
