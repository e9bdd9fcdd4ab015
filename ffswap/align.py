"""Five-point face alignment to FaceFusion's warp templates.

Every model downstream of the detector was trained on faces cropped so that eyes,
nose and mouth land on fixed template positions; feeding anything else degrades
identity and swap quality. The templates are FaceFusion's, normalised to a unit crop.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Template = Literal["arcface_112_v2", "arcface_128_v2", "ffhq_512"]

WARP_TEMPLATES: dict[Template, np.ndarray] = {
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
    # inswapper_128 crop: the ArcFace points shifted to leave room around the face.
    "arcface_128_v2": np.array(
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
}


def estimate_matrix(landmarks: np.ndarray, template: Template, size: int) -> np.ndarray:
    """Similarity transform (rotation, uniform scale, translation) image → crop.

    A partial affine, not a full one, so faces are never sheared. RANSAC with a huge
    threshold keeps all five points as inliers, as FaceFusion does, while staying
    robust to a degenerate estimate.
    """
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    target = WARP_TEMPLATES[template] * np.float32(size)
    matrix, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.RANSAC, ransacReprojThreshold=100)
    if matrix is None:  # collinear or coincident points: fall back to least squares
        matrix, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("cannot align face: landmarks are degenerate")
    return matrix.astype(np.float64)


def warp_face(
    image: np.ndarray, landmarks: np.ndarray, template: Template, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop and align one face; return the ``size``x``size`` crop and its matrix.

    The matrix is needed to paste the processed crop back with the inverse warp.
    Border replication avoids black wedges when the face is near the image edge.
    """
    matrix = estimate_matrix(landmarks, template, size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix
