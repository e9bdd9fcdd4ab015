"""Paste a processed face crop back into the frame with a feathered box mask.

This mirrors FaceFusion's ``create_static_box_mask`` + ``paste_back``, with one
change: only the frame region the crop maps onto is touched, in place, so pixels away
from the face stay bit-identical to the input and large frames cost no more than
small ones.
"""

from __future__ import annotations

import cv2
import numpy as np

from ffswap.align import crop_region


def box_mask(size: int, blur: float = 0.3, padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """Float mask [size, size] in 0..1: 1 in the middle, fading to 0 at the edges.

    ``blur`` is the feather width as a fraction of half the crop; ``padding`` is
    (top, right, bottom, left) in percent of the crop zeroed before blurring. The fade
    hides the seam between the processed crop and the untouched frame.
    """
    blur_amount = int(size * 0.5 * blur)
    blur_area = max(blur_amount // 2, 1)
    top, right, bottom, left = (max(blur_area, int(size * pad / 100)) for pad in padding)
    mask = np.ones((size, size), dtype=np.float32)
    mask[:top, :] = 0
    mask[-bottom:, :] = 0
    mask[:, :left] = 0
    mask[:, -right:] = 0
    if blur_amount > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), blur_amount * 0.25)
    return mask


def paste_back(
    frame: np.ndarray, planes: np.ndarray, scale: float, offset: float, mask: np.ndarray, matrix: np.ndarray
) -> None:
    """Blend a model's output crop, aligned by ``matrix``, into ``frame`` in place.

    ``planes`` is the model's RGB float [3, size, size] output; its pixel values are
    ``clip(x * scale + offset, 0, 255)``. ``mask`` weights the crop per crop pixel (0
    keeps the frame, 1 takes the crop). Only the frame rectangle the crop maps onto is
    computed, and the float planes are warped straight into it before being turned
    into pixels: a face's rectangle is usually smaller than the 512 enhancer crop, so
    the crop is never converted as a whole. (The clip therefore follows the
    interpolation instead of preceding it, a difference only next to overshooting
    model output.)
    """
    region = crop_region(matrix, mask.shape[0], frame.shape)
    if region is None:
        return
    x1, y1, x2, y2 = region
    # Inverse warp straight into the region: shift the inverse by the region origin.
    inverse = cv2.invertAffineTransform(matrix)
    inverse[:, 2] -= (x1, y1)
    region_size = (x2 - x1, y2 - y1)
    warped = cv2.merge(
        [cv2.warpAffine(planes[channel], inverse, region_size, borderMode=cv2.BORDER_REPLICATE)
         for channel in (2, 1, 0)]  # RGB planes -> interleaved BGR
    )
    weight = cv2.warpAffine(mask, inverse, region_size)
    # One saturating pass to 0..255 pixels (the clip and the rounding FaceFusion does
    # on the crop), then one blend pass: (w * crop + (1 - w) * frame) / (1 + 1e-5).
    pixels = cv2.addWeighted(warped, scale, warped, 0.0, offset, dtype=cv2.CV_8U)
    target = frame[y1:y2, x1:x2]
    target[...] = cv2.blendLinear(pixels, target, weight, cv2.subtract(1.0, weight))
