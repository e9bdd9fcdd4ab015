"""Face detectors: YuNet (box + 5 landmarks) and ULFD (box only).

Both return :class:`~ffswap.face.Face` records in input-image pixels, several per
image, after a score threshold and non-maximum suppression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from ffswap.contracts import Contract, TensorSpec
from ffswap.face import Face

if TYPE_CHECKING:
    import onnxruntime as ort

_STRIDES = (8, 16, 32)

YUNET_CONTRACT = Contract(
    name="yunet",
    inputs=(TensorSpec("input", (1, 3, None, None)),),
    outputs=tuple(
        TensorSpec(f"{head}_{stride}", (1, None, width))
        for head, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
        for stride in _STRIDES
    ),
)

ULFD_CONTRACT = Contract(
    name="ulfd",
    inputs=(TensorSpec("input", (1, 3, None, None)),),
    outputs=(TensorSpec("scores", (1, None, 2)), TensorSpec("boxes", (1, None, 4))),
)

# Where the five landmarks sit inside a ULFD box, as fractions of its width/height.
# Measured as the mean YuNet landmarks relative to ULFD-RFB-320 boxes on the test
# portraits (mirrored to be symmetric): good enough for a similarity warp of a
# frontal face, not for profiles.
_ULFD_LANDMARKS = np.array(
    [[0.26, 0.35], [0.74, 0.35], [0.50, 0.555], [0.29, 0.71], [0.71, 0.71]], dtype=np.float32
)


def _fixed_hw(session: ort.InferenceSession) -> tuple[int, int] | None:
    """The model's input (height, width) when the export fixed it, else None."""
    shape = session.get_inputs()[0].shape
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return height, width
    return None


def _nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float, iou: float) -> np.ndarray:
    """Indices kept by OpenCV's NMS, best score first.

    Candidates under the threshold are dropped before NMS: thousands of anchors
    would otherwise be converted to Python lists on every frame.
    """
    candidates = np.flatnonzero(scores >= score_threshold)
    if len(candidates) == 0:
        return candidates
    kept_boxes = boxes[candidates]
    xywh = np.column_stack([kept_boxes[:, :2], kept_boxes[:, 2:] - kept_boxes[:, :2]])
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores[candidates].tolist(), score_threshold, iou)
    return candidates[np.asarray(keep, dtype=np.int64).reshape(-1)]


class YuNetDetector:
    """OpenCV Zoo's YuNet, decoded exactly like OpenCV's ``FaceDetectorYN``.

    The image is scaled down to at most ``max_side`` pixels (or letterboxed into a
    fixed-size export) and zero-padded bottom/right to multiples of 32, so decoded
    coordinates only need dividing by the scale.
    """

    CONTRACT = YUNET_CONTRACT

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        max_side: int = 640,
    ) -> None:
        self._session = session
        self._fixed = _fixed_hw(session)
        self._score_threshold = score_threshold
        self._nms_threshold = nms_threshold
        self._max_side = max_side
        self._outputs = [spec.name for spec in YUNET_CONTRACT.outputs]

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        if self._fixed is not None:
            in_h, in_w = self._fixed
            scale = min(in_w / width, in_h / height)
        else:
            scale = min(1.0, self._max_side / max(height, width))
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if self._fixed is None:
            in_h, in_w = -(-new_h // 32) * 32, -(-new_w // 32) * 32
        resized = image if scale == 1.0 else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        # Filled channel-first, so onnxruntime gets a contiguous tensor to use as is;
        # from OpenCV's split planes, each a contiguous uint8 -> float32 copy, rather
        # than a strided copy of a transposed view. Only the padding is zeroed.
        canvas = np.empty((1, 3, in_h, in_w), dtype=np.float32)
        canvas[0, :, new_h:, :] = 0
        canvas[0, :, :new_h, new_w:] = 0
        for channel, plane in enumerate(cv2.split(resized)):
            canvas[0, channel, :new_h, :new_w] = plane
        return canvas, scale

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR uint8 image, best score first."""
        blob, scale = self._prepare(image)
        in_w = blob.shape[3]
        results = dict(zip(self._outputs, self._session.run(self._outputs, {"input": blob}), strict=True))
        boxes, scores, points = [], [], []
        for stride in _STRIDES:
            cls = np.clip(results[f"cls_{stride}"][0, :, 0], 0, 1)
            obj = np.clip(results[f"obj_{stride}"][0, :, 0], 0, 1)
            score = np.sqrt(cls * obj)
            # Only anchors that can pass the threshold are decoded: a handful of the
            # thousands per frame.
            anchors = np.flatnonzero(score >= self._score_threshold)
            grid_y, grid_x = (index.astype(np.float32) for index in np.divmod(anchors, in_w // stride))
            bbox = results[f"bbox_{stride}"][0][anchors]
            kps = results[f"kps_{stride}"][0][anchors].reshape(-1, 5, 2)
            centre_x = (grid_x + bbox[:, 0]) * stride
            centre_y = (grid_y + bbox[:, 1]) * stride
            half_w = np.exp(bbox[:, 2]) * stride / 2
            half_h = np.exp(bbox[:, 3]) * stride / 2
            boxes.append(
                np.column_stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h])
            )
            scores.append(score[anchors])
            grid = np.stack([grid_x, grid_y], axis=-1)[:, None, :]
            points.append((kps + grid) * stride)
        all_boxes = np.concatenate(boxes) / scale
        all_scores = np.concatenate(scores)
        all_points = np.concatenate(points) / scale
        keep = _nms(all_boxes, all_scores, self._score_threshold, self._nms_threshold)
        return [
            Face(
                box=all_boxes[i].astype(np.float32),
                score=float(all_scores[i]),
                landmarks=all_points[i].astype(np.float32),
            )
            for i in keep
        ]


class UlfdDetector:
    """Ultra-Light-Fast-Generic-Face-Detector: already-decoded, normalised boxes.

    It has no landmark head, so the five points are placed in the box at fixed
    proportions (``Face.estimated`` is set): alignment is then approximate.
    """

    CONTRACT = ULFD_CONTRACT

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        self._session = session
        self._size = _fixed_hw(session) or (240, 320)
        self._score_threshold = score_threshold
        self._nms_threshold = nms_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR uint8 image, best score first."""
        height, width = image.shape[:2]
        in_h, in_w = self._size
        rgb = cv2.cvtColor(cv2.resize(image, (in_w, in_h)), cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        scores, boxes = self._session.run(["scores", "boxes"], {"input": blob})
        confidence = scores[0, :, 1]
        pixel_boxes = boxes[0] * np.array([width, height, width, height], dtype=np.float32)
        keep = _nms(pixel_boxes, confidence, self._score_threshold, self._nms_threshold)
        faces = []
        for i in keep:
            x1, y1, x2, y2 = pixel_boxes[i]
            landmarks = np.array([x1, y1], dtype=np.float32) + _ULFD_LANDMARKS * np.array(
                [x2 - x1, y2 - y1], dtype=np.float32
            )
            faces.append(
                Face(
                    box=pixel_boxes[i].astype(np.float32),
                    score=float(confidence[i]),
                    landmarks=landmarks,
                    estimated=True,
                )
            )
        return faces
