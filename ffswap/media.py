"""Image input/output with clear errors and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ffstore.fsutil import atomic_write
from ffswap.errors import MediaError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
"""What ff swap and ff compare take as a video (by name, as FaceFusion does)."""


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as BGR uint8 [H, W, 3].

    Reads bytes and decodes them (rather than ``cv2.imread``) so non-ASCII paths work
    and a missing file is told apart from an undecodable one.
    """
    source = Path(path)
    try:
        data = np.fromfile(source, dtype=np.uint8)
    except OSError as error:
        raise MediaError(f"cannot read image {source}: {error.strerror or error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise MediaError(f"cannot decode image {source}: not an image format OpenCV reads")
    return image


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write ``image`` (BGR uint8) atomically; the format follows the extension."""
    target = Path(path)
    extension = target.suffix.lower()
    try:
        ok, encoded = cv2.imencode(extension, image)
    except cv2.error as error:
        raise MediaError(f"cannot encode image as {extension or '(no extension)'}: {target}") from error
    if not ok:
        raise MediaError(f"cannot encode image as {extension}: {target}")
    atomic_write(target, encoded.tobytes())
    return target
