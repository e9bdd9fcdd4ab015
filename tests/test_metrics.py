"""The swap metrics on real images and the real YuNet detector."""

import math

import numpy as np

from ffswap.adapters.detector import YuNetDetector
from ffswap.metrics import box_iou, cosine, psnr, refind, ssim
from ffswap.sessions import make_session
from tests.swap_fixtures import YUNET


def test_image_metrics_agree_with_what_they_measure(grace: np.ndarray) -> None:
    noisy = np.clip(grace.astype(np.int16) + np.random.default_rng(0).integers(
        -20, 21, grace.shape), 0, 255).astype(np.uint8)
    assert psnr(grace, grace) == math.inf and ssim(grace, grace) == 1.0
    assert 20 < psnr(grace, noisy) < 40 and 0 < ssim(grace, noisy) < 0.95
    assert ssim(grace, np.zeros_like(grace)) < 0.1


def test_cosine_and_box_overlap() -> None:
    a = np.array([1.0, 0.0], np.float32)
    assert cosine(a, 3 * a) == 1.0 and cosine(a, np.array([0.0, 2.0])) == 0.0
    box = np.array([0, 0, 10, 10], np.float32)
    assert box_iou(box, box) == 1.0 and box_iou(box, box + 20) == 0.0
    assert math.isclose(box_iou(box, np.array([5, 0, 15, 10], np.float32)), 1 / 3)


def test_a_face_is_found_again_unless_it_is_gone(grace: np.ndarray) -> None:
    detector = YuNetDetector(make_session(YUNET.read_bytes(), "cpu")[0])
    (face,) = detector.detect(grace)
    same = refind(detector, grace, face)
    assert same.found and same.displacement < 1e-6
    x1, y1, x2, y2 = (int(v) for v in face.box)
    blanked = grace.copy()
    blanked[max(y1, 0):y2, max(x1, 0):x2] = 0
    gone = refind(detector, blanked, face)
    assert not gone.found and gone.displacement == math.inf
