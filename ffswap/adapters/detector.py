"""Face detectors: FaceFusion's four (retinaface_10g, scrfd_2.5g, yoloface_8n,
yunet_2023_mar, run exactly as FaceFusion runs them), OpenCV's YuNet (decoded as
OpenCV's FaceDetectorYN does) and ULFD (box only).

All return :class:`~ffswap.face.Face` records in input-image pixels, several per
image, after a score threshold and non-maximum suppression.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ffswap.face import Face
from ffswap.zoo import YUNET_CONTRACT

if TYPE_CHECKING:
    import onnxruntime as ort

_STRIDES = (8, 16, 32)

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


# --- FaceFusion's detectors ------------------------------------------------------

_PIXELS = np.arange(256, dtype=np.float32)
# FaceFusion normalises the detector canvas after casting it to float32, so these are
# float32 arithmetic (unlike the crops of the models downstream).
_NORMALISATION = {"-1..1": (_PIXELS - np.float32(127.5)) / np.float32(128.0),
                  "0..1": _PIXELS / np.float32(255.0), "0..255": _PIXELS}


@functools.cache
def _static_anchors(stride: int, count: int, size: int) -> np.ndarray:
    """FaceFusion's create_static_anchors: cell (row, col) at (col, row) * stride,
    row-major, each repeated `count` times; no half-cell offset."""
    cells = size // stride
    rows, cols = np.divmod(np.arange(cells * cells), cells)
    anchors = np.stack([cols, rows], axis=-1).astype(np.float32) * stride
    return np.repeat(anchors, count, axis=0)


class FaceFusionDetector:
    """What FaceFusion's four detectors share: the frame only ever shrunk to fit the
    detector size (restrict_frame), pasted top-left on a canvas of zeros
    (prepare_detect_frame), normalised per model, BGR; everything decoded is scaled
    back by the shrink ratios; one NMS over all candidates (apply_nms)."""

    NORMALISATION = "0..255"

    def __init__(self, session: ort.InferenceSession, *, size: int = 640, score: float = 0.5,
                 nms: float = 0.4) -> None:
        self._session = session
        self._size = size
        self._score = score
        self._nms = nms
        self._lut = _NORMALISATION[self.NORMALISATION]
        self._input = session.get_inputs()[0].name

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = image.shape[:2]
        size = self._size
        if height > size or width > size:
            scale = min(size / height, size / width)
            image = cv2.resize(image, (int(width * scale), int(height * scale)))
        ratio = np.array([width / image.shape[1], height / image.shape[0]], dtype=np.float32)
        canvas = np.empty((1, 3, size, size), dtype=np.float32)
        canvas[...] = self._lut[0]  # FaceFusion normalises the zero padding too
        rows, cols = image.shape[:2]
        for channel, plane in enumerate(cv2.split(image)):
            canvas[0, channel, :rows, :cols] = cv2.LUT(plane, self._lut)
        return canvas, ratio

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [N,4], scores [N], landmarks [N,5,2]) in detector-input pixels."""
        raise NotImplementedError

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR uint8 image, best score first."""
        blob, ratio = self._prepare(image)
        boxes, scores, points = self._decode(self._session.run(None, {self._input: blob}))
        boxes = boxes * np.tile(ratio, 2)
        boxes = np.column_stack([np.minimum(boxes[:, 0], boxes[:, 2]), np.minimum(boxes[:, 1], boxes[:, 3]),
                                 np.maximum(boxes[:, 0], boxes[:, 2]), np.maximum(boxes[:, 1], boxes[:, 3])])
        points = points * ratio
        keep = _nms(boxes, scores, self._score, self._nms)
        return [Face(box=boxes[i].astype(np.float32), score=float(scores[i]),
                     landmarks=points[i].astype(np.float32)) for i in keep]


class AnchorDetector(FaceFusionDetector):
    """retinaface_10g and scrfd_2.5g (FaceFusion decodes both alike): per stride 8,
    16, 32 a score, four box distances and ten landmark offsets for each of two
    anchors per cell, in stride units; outputs in that order, no batch axis."""

    NORMALISATION = "-1..1"

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, points = [], [], []
        for index, stride in enumerate(_STRIDES):
            score = outputs[index].reshape(-1)
            keep = np.flatnonzero(score >= self._score)
            anchors = _static_anchors(stride, 2, self._size)[keep]
            distance = outputs[index + 3].reshape(-1, 4)[keep] * stride
            offsets = outputs[index + 6].reshape(-1, 5, 2)[keep] * stride
            boxes.append(np.concatenate([anchors - distance[:, :2], anchors + distance[:, 2:]], axis=1))
            scores.append(score[keep])
            points.append(offsets + anchors[:, None, :])
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


class YoloFaceDetector(FaceFusionDetector):
    """yoloface_8n: one output [1, 20, 8400], per candidate its centre, size and
    score, then five (x, y, confidence) landmarks, in detector-input pixels."""

    NORMALISATION = "0..1"

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        detection = np.squeeze(outputs[0]).T
        keep = np.flatnonzero(detection[:, 4] > self._score)  # strictly above, as FaceFusion
        detection = detection[keep]
        centre, half = detection[:, :2], detection[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = detection[:, 5:].reshape(-1, 5, 3)[:, :, :2]
        return boxes, detection[:, 4], points


class FaceFusionYuNetDetector(FaceFusionDetector):
    """yunet_2023_mar as FaceFusion 3.4+ runs it: twelve outputs by position (cls,
    obj, bbox, kps for strides 8, 16, 32), score cls * obj (OpenCV takes the square
    root), on FaceFusion's 640x640 canvas of raw 0..255 BGR pixels."""

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, points = [], [], []
        for index, stride in enumerate(_STRIDES):
            score = (outputs[index] * outputs[index + 3]).reshape(-1)
            keep = np.flatnonzero(score >= self._score)
            anchors = _static_anchors(stride, 1, self._size)[keep]
            bbox = outputs[index + 6].reshape(-1, 4)[keep]
            centre = bbox[:, :2] * stride + anchors
            half = np.exp(bbox[:, 2:4]) * stride / 2
            boxes.append(np.concatenate([centre - half, centre + half], axis=1))
            scores.append(score[keep])
            points.append(outputs[index + 9].reshape(-1, 5, 2)[keep] * stride + anchors[:, None, :])
        return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
