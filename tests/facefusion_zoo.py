"""Deterministic stand-ins for every model file of FaceFusion 3.x's model zoo.

Tests and benchmarks need FaceFusion-shaped ``.assets/models`` folders (for ``ff
import``, export, the swap runtime), but the real files are large, non-free or both.
Each stand-in here keeps the exact I/O contract FaceFusion's code relies on (input
names, dtypes, shapes, output order and shapes, value ranges), as recorded in
``docs/facefusion/analysers.md`` and ``docs/facefusion/processors.md``, and does
something small, deterministic and visible:

- the face detectors embed the real YuNet network (MIT, ``tests/data/models/yunet``)
  and re-encode its outputs in each detector's format, so they really find the faces
  in the test portraits and FaceFusion's own decoding gives YuNet's boxes;
- the landmarkers produce a fixed mean face (:data:`MEAN_FACE_68`), placed where a
  YuNet box puts the features, nudged by the input so the output depends on it;
- the swappers tint the target crop toward a colour derived from the source, the
  enhancers apply an unsharp mask, the converters a fixed orthogonal map;
- every other file is a tiny graph with the documented I/O, for import and export
  tests.

This is test tooling, not product code: ``onnx`` is imported at module level, and
everything is memoised so a test session builds the zoo once.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests import standins

YUNET = Path(__file__).parent / "data" / "models" / "yunet" / "face_detection_yunet_2026may.onnx"

FLOAT = TensorProto.FLOAT
Shape = Sequence[int | str]

# FaceFusion's ffhq_512 warp template (face_helper.WARP_TEMPLATE_SET), unit coordinates:
# left eye, right eye, nose tip, left and right mouth corner.
FFHQ_512 = np.array(
    [
        [0.37691676, 0.46864664],
        [0.62285697, 0.46912813],
        [0.50123859, 0.61331904],
        [0.39308822, 0.72541100],
        [0.61150205, 0.72490465],
    ]
)

# Where YuNet puts the five points inside its own box (box-relative, x right, y down)
# and the box's width/height ratio. Measured with YuNet on tests/data/images
# (astronaut.png, grace_hopper.jpg), averaged and made left/right symmetric. 2dfan4 and
# peppa_wutz place the mean face so that these points land here in their crop.
_YUNET_BOX_POINTS = np.array(
    [[0.251, 0.347], [0.749, 0.347], [0.500, 0.554], [0.2775, 0.703], [0.7225, 0.703]]
)
_YUNET_BOX_ASPECT = 0.8


def _mean_face_68() -> np.ndarray:
    """A plausible iBUG-68 mean face in the ffhq_512 unit frame.

    Built from simple curves (jaw ellipse, arched brows, eye ellipses, lip arcs) and
    anchored so that FaceFusion's ``convert_to_face_landmark_5`` of it (mean of 36-41,
    mean of 42-47, point 30, 48, 54) is exactly :data:`FFHQ_512`: a face aligned with
    the template has its 68 points where the template says, so 5 -> 68 -> 5 round-trips.
    Points 0 and 16 are level, so ``estimate_face_angle`` reads 0 degrees.
    """
    points = np.zeros((68, 2))
    left_eye, right_eye, nose, mouth_left, mouth_right = FFHQ_512
    eye_y = (left_eye[1] + right_eye[1]) / 2
    centre_x = 0.5
    # Jaw 0-16: lower half of an ellipse from ear to ear through the chin.
    angles = np.pi - np.arange(17) * np.pi / 16
    points[0:17, 0] = centre_x + 0.265 * np.cos(angles)
    points[0:17, 1] = eye_y + 0.40 * np.sin(angles)
    # Brows 17-21 (left, outer to inner) and 22-26 (right, inner to outer).
    arch = np.array([0.0, 0.014, 0.020, 0.016, 0.006])
    spread = np.linspace(-0.075, 0.060, 5)
    points[17:22, 0] = left_eye[0] + spread
    points[17:22, 1] = eye_y - 0.055 - arch
    points[22:27, 0] = right_eye[0] - spread[::-1]
    points[22:27, 1] = eye_y - 0.055 - arch[::-1]
    # Nose 27-30: bridge from between the eyes to the tip; 31-35: the base.
    top = np.array([(left_eye[0] + right_eye[0]) / 2, eye_y - 0.01])
    for index, t in enumerate(np.linspace(0.0, 1.0, 4)):
        points[27 + index] = top + t * (nose - top)
    points[31:36, 0] = nose[0] + np.array([-0.042, -0.022, 0.0, 0.022, 0.042])
    points[31:36, 1] = nose[1] + np.array([0.020, 0.028, 0.031, 0.028, 0.020])
    # Eyes 36-41 and 42-47: outer/inner corner, two upper-lid, corner, two lower-lid
    # points at 60-degree steps, so each eye's mean is its centre.
    eye_angles = np.deg2rad([180.0, 120.0, 60.0, 0.0, -60.0, -120.0])
    for start, centre in ((36, left_eye), (42, right_eye)):
        points[start : start + 6, 0] = centre[0] + 0.046 * np.cos(eye_angles)
        points[start : start + 6, 1] = centre[1] - 0.017 * np.sin(eye_angles)
        points[start : start + 6] += centre - points[start : start + 6].mean(axis=0)
    # Mouth 48-67 along the (slightly tilted) line through the corners: t runs -1..1
    # from corner 48 to corner 54, offsets are along the downward normal.
    middle = (mouth_left + mouth_right) / 2
    along = (mouth_right - mouth_left) / 2
    down = np.array([-along[1], along[0]]) / np.linalg.norm(along)
    lips = [
        (48, -1.0, 0.0), (49, -0.6, -0.020), (50, -0.25, -0.032), (51, 0.0, -0.026),
        (52, 0.25, -0.032), (53, 0.6, -0.020), (54, 1.0, 0.0), (55, 0.6, 0.025),
        (56, 0.25, 0.040), (57, 0.0, 0.045), (58, -0.25, 0.040), (59, -0.6, 0.025),
        (60, -0.85, 0.0), (61, -0.35, -0.008), (62, 0.0, -0.009), (63, 0.35, -0.008),
        (64, 0.85, 0.0), (65, 0.35, 0.008), (66, 0.0, 0.009), (67, -0.35, 0.008),
    ]  # fmt: skip
    for index, t, offset in lips:
        points[index] = middle + t * along + offset * down
    return points


MEAN_FACE_68: np.ndarray = _mean_face_68()
MEAN_FACE_68.setflags(write=False)


def _tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    """An initializer; unlike ``np.ascontiguousarray`` this keeps 0-d arrays 0-d
    (Range wants true scalars, and 0-d outputs must stay 0-d)."""
    return numpy_helper.from_array(np.array(array, order="C"), name=name)


def _seed(stem: str) -> int:
    """A stable per-file seed, so every stand-in differs and rebuilds identically."""
    return zlib.crc32(stem.encode())


# --------------------------------------------------------------------------- graphs


class _Graph:
    """Collects nodes and initializers under generated names, so builders read as
    a sequence of ops rather than name bookkeeping."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _fresh(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        """An initializer holding ``value``; returns its name."""
        name = self._fresh("c")
        self.initializers.append(_tensor(name, np.asarray(value, dtype=dtype)))
        return name

    def ints(self, *values: int) -> str:
        """An int64 vector initializer (shapes, axes, slice bounds)."""
        return self.const(list(values), np.int64)

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """Append one single-output node; returns its output name."""
        output = self._fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def output(self, source: str, name: str) -> None:
        """Expose ``source`` as the graph output ``name`` (through an Identity)."""
        self.nodes.append(helper.make_node("Identity", [source], [name]))

    def finish(
        self,
        inputs: Sequence[tuple[str, int, Shape]],
        outputs: Sequence[tuple[str, int, Shape]],
        final: onnx.TensorProto | None = None,
    ) -> bytes:
        """Assemble, check and serialise. ``final`` is appended as the very last
        initializer (inswapper's emap, which FaceFusion reads by position)."""
        initializers = [*self.initializers, *([final] if final is not None else [])]
        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(*spec) for spec in inputs],
            [helper.make_tensor_value_info(*spec) for spec in outputs],
            initializer=initializers,
        )
        return standins.serialized(graph, "tests.facefusion_zoo")


@functools.cache
def _yunet_model() -> onnx.ModelProto:
    return onnx.load(str(YUNET))


def _embed_yunet(g: _Graph, raw: str) -> dict[str, str]:
    """Copy YuNet's nodes and weights into ``g`` under the prefix ``yunet/``, fed from
    ``raw`` (BGR 0..255). Returns YuNet's output names mapped to the copied tensors.

    YuNet is opset 11; every op it uses (Conv, Relu, MaxPool, Add, Sigmoid, Resize
    with explicit scales, Transpose, Reshape) means the same under opset 17.
    """
    model = _yunet_model()
    source_input = model.graph.input[0].name

    def rename(name: str) -> str:
        if not name:
            return name
        return raw if name == source_input else f"yunet/{name}"

    for initializer in model.graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(initializer)
        copy.name = rename(initializer.name)
        g.initializers.append(copy)
    for node in model.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"yunet/{node.name}" if node.name else ""
        copy.input[:] = [rename(name) for name in node.input]
        copy.output[:] = [rename(name) for name in node.output]
        g.nodes.append(copy)
    return {value.name: rename(value.name) for value in model.graph.output}


_STRIDES = (8, 16, 32)


def _yunet_score(g: _Graph, yunet: dict[str, str], stride: int) -> str:
    """sqrt(cls * obj), as OpenCV's FaceDetectorYN scores a cell: a 0..1
    probability that clears FaceFusion's 0.5 threshold on a clear face."""
    return g.op("Sqrt", g.op("Mul", yunet[f"cls_{stride}"], yunet[f"obj_{stride}"]))


def _anchor_detector(stem: str, names: Sequence[str]) -> bytes:
    """retinaface_10g / scrfd_2.5g: ``input`` [1,3,H,W] BGR (x-127.5)/128 -> nine
    batchless outputs (scores, l/t/r/b distances, landmark offsets per stride, in
    stride units), two consecutive anchors per grid cell.

    FaceFusion decodes ``x1 = px - d0*s``, ``x2 = px + d2*s`` around the anchor
    ``(col*s, row*s)``, and YuNet's box is ``centre = (dx, dy)*s + anchor``, ``size =
    exp(lw, lh)*s``; so ``(l, t, r, b) = (-dx + e^lw/2, -dy + e^lh/2, dx + e^lw/2,
    dy + e^lh/2)``. Landmarks share the anchor and stride scale, so YuNet's kps pass
    unchanged. Both anchors of a cell carry the same values.
    """
    g = _Graph(stem)
    raw = g.op("Add", g.op("Mul", "input", g.const(128.0)), g.const(127.5))
    yunet = _embed_yunet(g, raw)

    def twice(tensor: str, channels: int) -> str:
        cells = g.op("Reshape", tensor, g.ints(-1, 1, channels))
        return g.op("Reshape", g.op("Concat", cells, cells, axis=1), g.ints(-1, channels))

    scores, boxes, points = [], [], []
    for stride in _STRIDES:
        bbox = yunet[f"bbox_{stride}"]
        shift = g.op("Slice", bbox, g.ints(0), g.ints(2), g.ints(2))
        half = g.op("Mul", g.op("Exp", g.op("Slice", bbox, g.ints(2), g.ints(4), g.ints(2))), g.const(0.5))
        distances = g.op("Concat", g.op("Sub", half, shift), g.op("Add", half, shift), axis=2)
        scores.append(twice(_yunet_score(g, yunet, stride), 1))
        boxes.append(twice(distances, 4))
        points.append(twice(yunet[f"kps_{stride}"], 10))
    outputs: list[tuple[str, int, Shape]] = []
    for group, channels in ((scores, 1), (boxes, 4), (points, 10)):
        for stride, tensor in zip(_STRIDES, group, strict=True):
            name = names[len(outputs)]
            g.output(tensor, name)
            outputs.append((name, FLOAT, [f"anchors_{stride}", channels]))
    return g.finish([("input", FLOAT, [1, 3, "height", "width"])], outputs)


def retinaface_10g(stem: str) -> bytes:
    """See :func:`_anchor_detector`; InsightFace-style output names."""
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in _STRIDES]
    return _anchor_detector(stem, names)


def scrfd_2_5g(stem: str) -> bytes:
    """See :func:`_anchor_detector`; numeric output names as in the exported SCRFD,
    so the two files differ although they compute the same thing."""
    return _anchor_detector(stem, [str(446 + 3 * index) for index in range(9)])


def yoloface_8n(stem: str) -> bytes:
    """yoloface_8n: ``input`` [1,3,640,640] BGR x/255 -> ONE output [1,20,8400].

    Rows: ``cx, cy, w, h`` in input pixels (``(dx + col)*s``, ``(dy + row)*s``,
    ``exp(lw)*s``, ``exp(lh)*s``), the score, then five ``(x, y, conf)`` with
    ``x = (kx + col)*s``; columns are stride 8, 16, 32 cells, each row-major, as
    YuNet orders them. The grid is built with Range/Expand, not stored.
    """
    g = _Graph(stem)
    yunet = _embed_yunet(g, g.op("Mul", "input", g.const(255.0)))
    columns = []
    for stride in _STRIDES:
        n = 640 // stride
        cells = n * n
        steps = g.op("Range", g.const(0.0), g.const(float(n)), g.const(1.0))
        grid = g.ints(n, n)
        col = g.op("Reshape", g.op("Expand", g.op("Reshape", steps, g.ints(1, n)), grid), g.ints(1, cells, 1))
        row = g.op("Reshape", g.op("Expand", g.op("Reshape", steps, g.ints(n, 1)), grid), g.ints(1, cells, 1))
        anchor = g.op("Concat", col, row, axis=2)  # [1, cells, 2], in cells
        bbox = yunet[f"bbox_{stride}"]
        size = g.const(float(stride))
        centre = g.op("Mul", g.op("Add", g.op("Slice", bbox, g.ints(0), g.ints(2), g.ints(2)), anchor), size)
        extent = g.op("Mul", g.op("Exp", g.op("Slice", bbox, g.ints(2), g.ints(4), g.ints(2))), size)
        score = _yunet_score(g, yunet, stride)
        kps = g.op("Reshape", yunet[f"kps_{stride}"], g.ints(1, cells, 5, 2))
        kps = g.op("Mul", g.op("Add", kps, g.op("Reshape", anchor, g.ints(1, cells, 1, 2))), size)
        conf = g.op("Expand", g.op("Reshape", score, g.ints(1, cells, 1, 1)), g.ints(1, cells, 5, 1))
        kps = g.op("Reshape", g.op("Concat", kps, conf, axis=3), g.ints(1, cells, 15))
        columns.append(g.op("Concat", centre, extent, score, kps, axis=2))
    rows = g.op("Transpose", g.op("Concat", *columns, axis=1), perm=[0, 2, 1])
    g.output(rows, "output0")
    return g.finish([("input", FLOAT, [1, 3, 640, 640])], [("output0", FLOAT, [1, 20, 8400])])


def yunet_2023_mar(stem: str) -> bytes:
    """yunet_2023_mar: YuNet itself, re-saved at 640x640 with this zoo's IR/opset.

    FaceFusion reads its 12 outputs by position as cls x3, obj x3, bbox x3, kps x3,
    which is already YuNet's own output order, so no re-ordering is needed.
    """
    g = _Graph(stem)
    yunet = _embed_yunet(g, "input")
    outputs: list[tuple[str, int, Shape]] = []
    for name, tensor in yunet.items():
        stride = int(name.rsplit("_", 1)[1])
        channels = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}[name.split("_")[0]]
        g.output(tensor, name)
        outputs.append((name, FLOAT, [1, (640 // stride) ** 2, channels]))
    return g.finish([("input", FLOAT, [1, 3, 640, 640])], outputs)


# ----------------------------------------------------------------------- landmarkers


def _fan_weights() -> np.ndarray:
    """[68, 5] affine-combination weights: row i is the least-norm ``w`` with
    ``w @ FFHQ_512 = MEAN_FACE_68[i]`` and ``sum(w) = 1``.

    Rows summing to 1 make ``W @ points`` commute with any affine map of the input,
    so the 68 points follow translation, scale and rotation of the five.
    """
    system = np.vstack([FFHQ_512.T, np.ones(5)])  # [3, 5]
    targets = np.vstack([MEAN_FACE_68.T, np.ones(68)])  # [3, 68]
    return (np.linalg.pinv(system) @ targets).T


def fan_68_5(stem: str) -> bytes:
    """fan_68_5 (3.0.x: face_landmarker_68_5): ``input`` [1,5,2] -> [1,68,2], the
    fixed affine combinations of :func:`_fan_weights` (MatMul(W, input))."""
    g = _Graph(stem)
    g.output(g.op("MatMul", g.const(_fan_weights()), "input"), "output")
    return g.finish([("input", FLOAT, [1, 5, 2])], [("output", FLOAT, [1, 68, 2])])


def _crop_landmarks_64() -> np.ndarray:
    """MEAN_FACE_68 in a 2dfan4/peppa_wutz crop, in 64x64 heatmap units.

    FaceFusion crops with ``scale = 195 / max(w, h)`` and centres the box in 256; a
    YuNet box (width/height ~0.8) thus spans 156x195 px. The similarity fitted from the
    template's five points onto the five YuNet box points (see ``_YUNET_BOX_POINTS``)
    maps the whole mean face, so the landmarker agrees with the detector it follows.
    """
    half = np.array([195.0 * _YUNET_BOX_ASPECT, 195.0])
    targets = (128.0 + (_YUNET_BOX_POINTS - 0.5) * half) / 4.0
    # Least-squares similarity [a -b; b a] + t from FFHQ_512 onto targets.
    x, y = FFHQ_512[:, 0], FFHQ_512[:, 1]
    one, zero = np.ones(5), np.zeros(5)
    system = np.vstack([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
    a, b, tx, ty = np.linalg.lstsq(system, np.concatenate([targets[:, 0], targets[:, 1]]), rcond=None)[0]
    matrix = np.array([[a, -b], [b, a]])
    return MEAN_FACE_68 @ matrix.T + np.array([tx, ty])


def _crop_landmarker(g: _Graph, gain: float, score: float) -> str:
    """[1,68,3] (x, y, score): the crop mean face shifted by ``gain * (mean(input) -
    0.5)`` heatmap units, so the output depends on the input, with a constant score."""
    mean = g.op("ReduceMean", "input", keepdims=0)
    shift = g.op("Mul", g.op("Sub", mean, g.const(0.5)), g.const(gain))
    xy = g.op("Add", g.const(_crop_landmarks_64()[None]), shift)
    scores = g.op("Expand", g.const([[[score]]]), g.ints(1, 68, 1))
    return g.op("Concat", xy, scores, axis=2)


def landmarker_2dfan4(stem: str) -> bytes:
    """2dfan4: ``input`` [1,3,256,256] BGR 0..1 -> landmarks [1,68,3] (64 units) and
    heatmaps [1,68,64,64] of 0.85 everywhere (Expand of a scalar): each point's max
    is 0.85, so FaceFusion's score interp(0.85, [0, 0.9], [0, 1]) is ~0.94."""
    g = _Graph(stem)
    g.output(_crop_landmarker(g, 0.5, 0.85), "landmarks")
    g.output(g.op("Expand", g.const(0.85), g.ints(1, 68, 64, 64)), "heatmaps")
    return g.finish(
        [("input", FLOAT, [1, 3, 256, 256])],
        [("landmarks", FLOAT, [1, 68, 3]), ("heatmaps", FLOAT, [1, 68, 64, 64])],
    )


def peppa_wutz(stem: str) -> bytes:
    """peppa_wutz: ``input`` [1,3,256,256] -> [1,68,3] = 204 values (x, y in 64 units,
    score 0.9: interp(0.9, [0, 0.95]) ~ 0.95), shifted opposite to 2dfan4."""
    g = _Graph(stem)
    g.output(_crop_landmarker(g, -0.5, 0.9), "output")
    return g.finish([("input", FLOAT, [1, 3, 256, 256])], [("output", FLOAT, [1, 68, 3])])


def arcface_w600k_r50(stem: str) -> bytes:
    """The ff stand-in recogniser (``tests.standins.face_recognizer(0)``), so
    embeddings agree with the rest of ff's tests."""
    del stem
    return standins.face_recognizer(0)


# ------------------------------------------------------------------------ swappers


def embedding_converter(stem: str) -> bytes:
    """crossface_* / arcface_converter_*: ``input`` [1,512] -> [1,512], a seeded
    random orthogonal matrix (unit in, unit out), different per file.

    Stored as float16 and Cast up: half the bytes of float32 (512 KiB), precise
    enough for a stand-in.
    """
    rng = np.random.default_rng(_seed(stem))
    q, r = np.linalg.qr(rng.standard_normal((512, 512)))
    orthogonal = q * np.sign(np.diag(r))
    g = _Graph(stem)
    matrix = g.op("Cast", g.const(orthogonal, np.float16), to=FLOAT)
    g.output(g.op("MatMul", "input", matrix), "output")
    return g.finish([("input", FLOAT, [1, 512])], [("output", FLOAT, [1, 512])])


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])
_STRENGTH = 0.6


def _swapper(
    stem: str,
    size: int,
    source: str,
    target_range: str,
    output_range: str,
    *,
    tint_gain: float = 4.0,
    mask: bool = False,
) -> bytes:
    """A swapper: ``source`` and ``target`` -> output 0 the target crop blended 60%
    toward a flat colour computed from the source.

    ``source`` is ``"embedding"`` ([1,512]: colour ``sigmoid(source @ W)``, ``W``
    seeded, scaled by ``tint_gain`` so typical sources give saturated, distinct tints)
    or ``"image112"``/``"image256"`` ([1,3,n,n] RGB 0..1: colour ``sigmoid(4 *
    (mean - 0.5) @ M + b)``, ``M`` a seeded 3x3 mix). ``target_range`` is ``unit``
    (0..1), ``signed`` (-1..1) or ``imagenet`` (mean/std normalised);
    ``output_range`` ``unit`` or ``signed``. ``mask`` adds HyperSwap's second output.
    """
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    if target_range == "unit":
        unit = "target"
    elif target_range == "signed":
        unit = g.op("Mul", g.op("Add", "target", g.const(1.0)), g.const(0.5))
    else:
        std, mean = (g.const(v.reshape(1, 3, 1, 1)) for v in (_IMAGENET_STD, _IMAGENET_MEAN))
        unit = g.op("Add", g.op("Mul", "target", std), mean)
    if source == "embedding":
        tint = rng.standard_normal((512, 3)) * tint_gain
        logits = g.op("MatMul", "source", g.const(tint))
        source_spec: Shape = [1, 512]
    else:
        side = int(source.removeprefix("image"))
        average = g.op("ReduceMean", "source", axes=[2, 3], keepdims=0)
        centred = g.op("Mul", g.op("Sub", average, g.const(0.5)), g.const(4.0))
        logits = g.op(
            "Add",
            g.op("MatMul", centred, g.const(rng.standard_normal((3, 3)))),
            g.const(rng.standard_normal(3) * 0.5),
        )
        source_spec = [1, 3, side, side]
    colour = g.op("Reshape", g.op("Sigmoid", logits), g.ints(1, 3, 1, 1))
    blended = g.op(
        "Add", g.op("Mul", unit, g.const(1.0 - _STRENGTH)), g.op("Mul", colour, g.const(_STRENGTH))
    )
    if output_range == "signed":
        blended = g.op("Sub", g.op("Mul", blended, g.const(2.0)), g.const(1.0))
    g.output(blended, "output")
    outputs: list[tuple[str, int, Shape]] = [("output", FLOAT, [1, 3, size, size])]
    if mask:
        g.output(g.op("Expand", g.const(1.0), g.ints(1, 1, size, size)), "mask")
        outputs.append(("mask", FLOAT, [1, 1, size, size]))
    inputs = [("source", FLOAT, source_spec), ("target", FLOAT, [1, 3, size, size])]
    return g.finish(inputs, outputs)


def inswapper_128(stem: str) -> bytes:
    """inswapper_128: ``tests.standins.face_swapper(0, emap=True)``, whose last
    initializer is the float32 [512,512] emap FaceFusion reads from the file."""
    del stem
    return standins.face_swapper(0, emap=True)


def inswapper_128_fp16(stem: str) -> bytes:
    """inswapper_128_fp16: float32 graph inputs and outputs (FaceFusion has no cast
    path), float16 inside, and a float16 [512,512] emap as the LAST initializer."""
    rng = np.random.default_rng(_seed(stem))
    half = TensorProto.FLOAT16
    g = _Graph(stem)
    source = g.op("Cast", "source", to=half)
    target = g.op("Cast", "target", to=half)
    tint = g.const(rng.standard_normal((512, 3)) * 4.0, np.float16)
    colour = g.op("Reshape", g.op("Sigmoid", g.op("MatMul", source, tint)), g.ints(1, 3, 1, 1))
    kept = g.op("Mul", target, g.const(1.0 - _STRENGTH, np.float16))
    added = g.op("Mul", colour, g.const(_STRENGTH, np.float16))
    g.output(g.op("Cast", g.op("Add", kept, added), to=FLOAT), "output")
    emap = rng.standard_normal((512, 512)) / np.sqrt(512)
    return g.finish(
        [("target", FLOAT, [1, 3, 128, 128]), ("source", FLOAT, [1, 512])],
        [("output", FLOAT, [1, 3, 128, 128])],
        final=_tensor("emap", emap.astype(np.float16)),
    )


# ----------------------------------------------------------------------- enhancers


def _enhancer(stem: str, size: int, radius: int, strength: float, *, weight: bool = False) -> bytes:
    """``input`` [1,3,S,S] RGB -1..1 -> same: a depthwise unsharp mask, ``x +
    strength * (x - box_blur(x))``, clipped to -1..1. With ``weight`` (CodeFormer's
    float64 [1] fidelity input), the strength is multiplied by the weight."""
    width = 2 * radius + 1
    high_pass = -np.full((width, width), 1.0 / width**2)
    high_pass[radius, radius] += 1.0
    kernels = np.stack([high_pass[None]] * 3)  # [3, 1, k, k], one filter per channel
    g = _Graph(stem)
    detail = g.op("Conv", "input", g.const(kernels), group=3, pads=[radius] * 4)
    gain = g.const(strength)
    if weight:
        gain = g.op("Mul", g.op("Cast", "weight", to=FLOAT), gain)
    sharp = g.op("Add", "input", g.op("Mul", detail, gain))
    g.output(g.op("Clip", sharp, g.const(-1.0), g.const(1.0)), "output")
    inputs: list[tuple[str, int, Shape]] = [("input", FLOAT, [1, 3, size, size])]
    if weight:
        inputs.append(("weight", TensorProto.DOUBLE, [1]))
    return g.finish(inputs, [("output", FLOAT, [1, 3, size, size])])


# ------------------------------------------------- every other file: I/O-exact stubs


def _input_mean(g: _Graph, name: str) -> str:
    """The 0-d mean of an input: the cheapest way to make an output depend on it."""
    return g.op("ReduceMean", name, keepdims=0)


def fairface(stem: str) -> bytes:
    """fairface: ``input`` [1,3,224,224] -> race_id, gender_id, age_id, int64 [1]
    class ids (7, 2 and 9 classes) from seeded projections of the channel means."""
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    average = g.op("ReduceMean", "input", axes=[2, 3], keepdims=0)
    outputs: list[tuple[str, int, Shape]] = []
    for name, classes in (("race_id", 7), ("gender_id", 2), ("age_id", 9)):
        logits = g.op("MatMul", average, g.const(rng.standard_normal((3, classes))))
        g.output(g.op("ArgMax", logits, axis=1, keepdims=0), name)
        outputs.append((name, TensorProto.INT64, [1]))
    return g.finish([("input", FLOAT, [1, 3, 224, 224])], outputs)


def xseg(stem: str) -> bytes:
    """xseg_*: NHWC ``input`` [1,256,256,3] BGR 0..1 -> [1,256,256,1] in 0..1 (4x the
    channel mean, clipped: any non-dark pixel counts as unoccluded face)."""
    g = _Graph(stem)
    mean = g.op("ReduceMean", "input", axes=[3], keepdims=1)
    g.output(g.op("Clip", g.op("Mul", mean, g.const(4.0)), g.const(0.0), g.const(1.0)), "output")
    return g.finish([("input", FLOAT, [1, 256, 256, 3])], [("output", FLOAT, [1, 256, 256, 1])])


def _pointwise(
    stem: str,
    inputs: Shape,
    channels: int,
    bias: np.ndarray | None = None,
    activation: str | None = None,
) -> bytes:
    """``input`` [1,3,H,W] -> [1,channels,H,W]: a seeded 1x1 convolution (plus
    ``bias``, then ``activation``); H and W may be symbolic. The shape of a per-pixel
    head at almost no cost."""
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    weights = rng.standard_normal((channels, 3, 1, 1)) * 0.5
    values = g.op(
        "Conv", "input", g.const(weights), g.const(bias if bias is not None else np.zeros(channels))
    )
    if activation is not None:
        values = g.op(activation, values)
    g.output(values, "output")
    return g.finish([("input", FLOAT, list(inputs))], [("output", FLOAT, [1, channels, *inputs[2:]])])


def bisenet(stem: str) -> bytes:
    """bisenet_resnet_*: [1,3,512,512] -> [1,19,512,512] class logits, skin (class 1)
    favoured so ``argmax`` gives a face-like parse."""
    bias = np.zeros(19)
    bias[1] = 3.0
    return _pointwise(stem, [1, 3, 512, 512], 19, bias)


def _classifier(stem: str, input_shape: Shape, logits: Sequence[float], softmax: bool) -> bytes:
    """``input`` -> [1, k] fixed logits (optionally softmaxed) nudged by the input
    mean: every content analyser says "safe"."""
    g = _Graph(stem)
    mean = _input_mean(g, "input")
    values = g.op("Add", g.const([list(logits)]), g.op("Mul", mean, g.const(0.01)))
    if softmax:
        values = g.op("Softmax", values, axis=1)
    g.output(values, "output")
    return g.finish([("input", FLOAT, list(input_shape))], [("output", FLOAT, [1, len(logits)])])


def open_nsfw(stem: str) -> bytes:
    """open_nsfw (3.0-3.2): NHWC [1,224,224,3] BGR minus mean (the docs give no layout;
    Yahoo's TF export is NHWC) -> [1,2] (sfw, nsfw) probabilities, nsfw ~0.002."""
    return _classifier(stem, [1, 224, 224, 3], [3.0, -3.0], softmax=True)


def nsfw_1(stem: str) -> bytes:
    """nsfw_1: [1,3,640,640] -> YOLO-style [1,5,8400] (cx, cy, w, h, score) with every
    score ~0.01, under the 0.2 flag threshold."""
    g = _Graph(stem)
    mean = _input_mean(g, "input")
    row = g.op(
        "Add",
        g.const([[[320.0], [320.0], [640.0], [640.0], [0.01]]]),
        g.op("Mul", mean, g.const([[[0.0], [0.0], [0.0], [0.0], [0.001]]])),
    )
    g.output(g.op("Expand", row, g.ints(1, 5, 8400)), "output0")
    return g.finish([("input", FLOAT, [1, 3, 640, 640])], [("output0", FLOAT, [1, 5, 8400])])


def nsfw_2(stem: str) -> bytes:
    """nsfw_2: [1,3,384,384] -> [1,2] probabilities, ``d0 - d1`` far below 0.25."""
    return _classifier(stem, [1, 3, 384, 384], [-2.0, 2.0], softmax=True)


def nsfw_3(stem: str) -> bytes:
    """nsfw_3: [1,3,448,448] -> [1,4] logits, ``(d2 + d3) - (d0 + d1)`` = -8 < 10.5."""
    return _classifier(stem, [1, 3, 448, 448], [2.0, 2.0, -2.0, -2.0], softmax=False)


def voice_extractor(stem: str) -> bytes:
    """kim_vocal_* / uvr_mdxnet: ``input`` [B,4,3072,256] STFT -> same shape (half the
    mix: "the vocals"). Dimension 3 is a static 256, as FaceFusion reads it."""
    g = _Graph(stem)
    g.output(g.op("Mul", "input", g.const(0.5)), "output")
    shape: Shape = ["batch", 4, 3072, 256]
    return g.finish([("input", FLOAT, shape)], [("output", FLOAT, shape)])


def frame_enhancer(stem: str, tile: int, scale: int) -> bytes:
    """Frame enhancer: ``input`` [1,3,T,T] RGB 0..1 -> [1,3,T*scale,T*scale] (a
    nearest-neighbour upscale: FaceFusion's tile merge needs exactly ``scale x``)."""
    g = _Graph(stem)
    scales = g.const([1.0, 1.0, float(scale), float(scale)])
    g.output(g.op("Resize", "input", "", scales, mode="nearest"), "output")
    return g.finish(
        [("input", FLOAT, [1, 3, tile, tile])], [("output", FLOAT, [1, 3, tile * scale, tile * scale])]
    )


def ddcolor(stem: str) -> bytes:
    """ddcolor*: ``input`` [1,3,H,W] grey RGB 0..1 (H, W = frame_colorizer_size) ->
    [1,2,H,W] LAB ab channels."""
    return _pointwise(stem, [1, 3, "height", "width"], 2)


def deoldify(stem: str) -> bytes:
    """deoldify*: ``input`` [1,3,H,W] grey 0..255 -> [1,3,H,W] 0..255, a colour tint."""
    g = _Graph(stem)
    tint = np.eye(3)[:, :, None, None] * np.array([1.05, 0.97, 0.90])[:, None, None, None]
    g.output(g.op("Clip", g.op("Conv", "input", g.const(tint)), g.const(0.0), g.const(255.0)), "output")
    shape: Shape = [1, 3, "height", "width"]
    return g.finish([("input", FLOAT, shape)], [("output", FLOAT, shape)])


def wav2lip(stem: str) -> bytes:
    """wav2lip*_96: ``source`` mel [1,1,80,16], ``target`` [1,6,96,96] (masked crop +
    crop, BGR 0..1) -> [1,3,96,96]: the full crop, brightened by the audio mean."""
    g = _Graph(stem)
    crop = g.op("Slice", "target", g.ints(3), g.ints(6), g.ints(1))
    voiced = g.op("Add", crop, g.op("Mul", _input_mean(g, "source"), g.const(0.01)))
    g.output(g.op("Clip", voiced, g.const(0.0), g.const(1.0)), "output")
    return g.finish(
        [("source", FLOAT, [1, 1, 80, 16]), ("target", FLOAT, [1, 6, 96, 96])],
        [("output", FLOAT, [1, 3, 96, 96])],
    )


def edtalk_256(stem: str) -> bytes:
    """edtalk_256: ``source`` mel [1,1,80,16], ``target`` [1,3,256,256] RGB 0..1,
    ``weight`` float32 [1] -> [1,3,256,256] RGB 0..1."""
    g = _Graph(stem)
    nudge = g.op("Mul", g.op("Mul", _input_mean(g, "source"), "weight"), g.const(0.01))
    g.output(g.op("Clip", g.op("Add", "target", nudge), g.const(0.0), g.const(1.0)), "output")
    return g.finish(
        [("source", FLOAT, [1, 1, 80, 16]), ("target", FLOAT, [1, 3, 256, 256]), ("weight", FLOAT, [1])],
        [("output", FLOAT, [1, 3, 256, 256])],
    )


def styleganex_age(stem: str) -> bytes:
    """styleganex_age: ``target`` [1,3,256,256], ``target_with_background``
    [1,3,384,384] (RGB -1..1) and a 0-d ``direction`` -> [1,3,384,384] -1..1, the
    background crop shifted by ``direction`` (FaceFusion resizes any H x W to 1024)."""
    g = _Graph(stem)
    shift = g.op("Mul", g.op("Mul", "direction", _input_mean(g, "target")), g.const(0.02))
    aged = g.op("Add", "target_with_background", shift)
    g.output(g.op("Clip", aged, g.const(-1.0), g.const(1.0)), "output")
    return g.finish(
        [
            ("target", FLOAT, [1, 3, 256, 256]),
            ("target_with_background", FLOAT, [1, 3, 384, 384]),
            ("direction", FLOAT, []),
        ],
        [("output", FLOAT, [1, 3, 384, 384])],
    )


_FEATURE_VOLUME: Shape = [1, 32, 16, 64, 64]  # LivePortrait's appearance feature volume
_KEYPOINTS: Shape = [1, 21, 3]


def live_portrait_feature_extractor(stem: str) -> bytes:
    """``input`` [1,3,256,256] RGB 0..1 -> feature volume [1,32,16,64,64] (the docs
    give no shape; this is LivePortrait's), the input mean expanded."""
    g = _Graph(stem)
    mean = g.op("ReduceMean", "input", keepdims=1)
    g.output(g.op("Expand", g.op("Reshape", mean, g.ints(1, 1, 1, 1, 1)), g.ints(*_FEATURE_VOLUME)), "output")
    return g.finish([("input", FLOAT, [1, 3, 256, 256])], [("output", FLOAT, _FEATURE_VOLUME)])


def live_portrait_motion_extractor(stem: str) -> bytes:
    """``input`` [1,3,256,256] -> 7 outputs by position: pitch, yaw, roll (0-d, in
    degrees: ``from_euler('xyz', [pitch, yaw, roll])`` needs three scalars), scale
    [1,1], translation [1,3], expression [1,21,3], motion_points [1,21,3]."""
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    centred = g.op("Sub", _input_mean(g, "input"), g.const(0.5))
    outputs: list[tuple[str, int, Shape]] = []

    def emit(name: str, base: np.ndarray, gain: float) -> None:
        g.output(g.op("Add", g.const(base), g.op("Mul", centred, g.const(gain))), name)
        outputs.append((name, FLOAT, list(base.shape)))

    for name, gain in (("pitch", 4.0), ("yaw", -6.0), ("roll", 2.0)):
        emit(name, np.array(0.0), gain)
    emit("scale", np.array([[1.5]]), 0.01)
    emit("translation", np.zeros((1, 3)), 0.01)
    emit("expression", rng.standard_normal((1, 21, 3)) * 0.01, 0.001)
    emit("motion_points", rng.uniform(-0.5, 0.5, (1, 21, 3)), 0.0)
    return g.finish([("input", FLOAT, [1, 3, 256, 256])], outputs)


def live_portrait_generator(stem: str) -> bytes:
    """``feature_volume`` [1,32,16,64,64], ``source`` and ``target`` keypoints
    [1,21,3] -> [1,3,512,512] RGB 0..1, a flat grey set by the three inputs."""
    g = _Graph(stem)
    level = g.op("Add", g.const(0.5), g.op("Mul", _input_mean(g, "feature_volume"), g.const(0.1)))
    moved = g.op("Sub", _input_mean(g, "target"), _input_mean(g, "source"))
    level = g.op("Clip", g.op("Add", level, moved), g.const(0.0), g.const(1.0))
    g.output(g.op("Expand", level, g.ints(1, 3, 512, 512)), "output")
    return g.finish(
        [
            ("feature_volume", FLOAT, _FEATURE_VOLUME),
            ("source", FLOAT, _KEYPOINTS),
            ("target", FLOAT, _KEYPOINTS),
        ],
        [("output", FLOAT, [1, 3, 512, 512])],
    )


def _retargeter(stem: str, features: int) -> bytes:
    """``input`` [1,features] (63 keypoint values + ratios) -> a [1,63] keypoint delta,
    a small seeded projection."""
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    g.output(g.op("MatMul", "input", g.const(rng.standard_normal((features, 63)) * 0.01)), "output")
    return g.finish([("input", FLOAT, [1, features])], [("output", FLOAT, [1, 63])])


def live_portrait_stitcher(stem: str) -> bytes:
    """``source``, ``target`` keypoints [1,21,3] -> [1,21,3] (fed to the generator as
    its ``source``): the source moved 10% toward the target."""
    g = _Graph(stem)
    moved = g.op("Add", "source", g.op("Mul", g.op("Sub", "target", "source"), g.const(0.1)))
    g.output(moved, "output")
    return g.finish(
        [("source", FLOAT, _KEYPOINTS), ("target", FLOAT, _KEYPOINTS)], [("output", FLOAT, _KEYPOINTS)]
    )


def deep_swapper(stem: str) -> bytes:
    """DeepFaceLive ``.dfm``: NHWC ``in_face:0`` [1,S,S,3] BGR 0..1 (S static, from the
    name) and, for the iperov models, ``morph_value:0`` float32 [1] -> target mask
    [1,S,S,1], swapped face [1,S,S,3] (tinted toward a seeded colour, by the morph
    value where there is one) and source mask [1,S,S,1], in that order."""
    size = int(stem.rsplit("_", 1)[1])
    morph = stem.startswith("iperov/")
    rng = np.random.default_rng(_seed(stem))
    g = _Graph(stem)
    mask = g.op(
        "Clip",
        g.op("Mul", g.op("ReduceMean", "in_face:0", axes=[3], keepdims=1), g.const(4.0)),
        g.const(0.0),
        g.const(1.0),
    )
    amount = g.const([0.4])
    if morph:
        amount = g.op("Mul", amount, "morph_value:0")
    colour = g.const(rng.uniform(0.2, 0.8, (1, 1, 1, 3)))
    face = g.op("Add", "in_face:0", g.op("Mul", g.op("Sub", colour, "in_face:0"), amount))
    g.output(mask, "out_face_mask:0")
    g.output(face, "out_celeb_face:0")
    g.output(g.op("Identity", mask), "out_celeb_face_mask:0")
    inputs: list[tuple[str, int, Shape]] = [("in_face:0", FLOAT, [1, size, size, 3])]
    if morph:
        inputs.append(("morph_value:0", FLOAT, [1]))
    return g.finish(
        inputs,
        [
            ("out_face_mask:0", FLOAT, [1, size, size, 1]),
            ("out_celeb_face:0", FLOAT, [1, size, size, 3]),
            ("out_celeb_face_mask:0", FLOAT, [1, size, size, 1]),
        ],
    )


def background_remover(stem: str, size: int, classes: int = 1) -> bytes:
    """``input`` [1,3,S,S] normalised RGB -> [1,1,S,S] mask in 0..1 (sigmoid of a 1x1
    conv); u2net_cloth gives [1,4,S,S] class scores, which FaceFusion argmaxes."""
    return _pointwise(stem, [1, 3, size, size], classes, activation="Sigmoid" if classes == 1 else None)


# ------------------------------------------------------------------------ the zoo


def _partial(function: Callable[..., bytes], *args: Any, **kwargs: Any) -> Callable[[str], bytes]:
    """A stem -> bytes builder with the file's parameters bound (the table below)."""
    return lambda stem: function(stem, *args, **kwargs)


def _signed_256(**kwargs: Any) -> Callable[[str], bytes]:
    """The GHOST / HifiFace / HyperSwap contract: a [1,512] source, 256 px -1..1 in and out."""
    return _partial(_swapper, 256, "embedding", "signed", "signed", **kwargs)


_ZOO: dict[str, tuple[str, Callable[[str], bytes]]] = {
    # face_detector
    "retinaface_10g": ("face_detector", retinaface_10g),
    "scrfd_2.5g": ("face_detector", scrfd_2_5g),
    "yoloface_8n": ("face_detector", yoloface_8n),
    "yunet_2023_mar": ("face_detector", yunet_2023_mar),
    # face_landmarker
    "2dfan4": ("face_landmarker", landmarker_2dfan4),
    "peppa_wutz": ("face_landmarker", peppa_wutz),
    "fan_68_5": ("face_landmarker", fan_68_5),
    "face_landmarker_68_5": ("face_landmarker", fan_68_5),
    # face_recognizer
    "arcface_w600k_r50": ("face_recognizer", arcface_w600k_r50),
    # face_swapper: swappers (3.x names, then the 3.0.0 names) and embedding converters
    "inswapper_128": ("face_swapper", inswapper_128),
    "inswapper_128_fp16": ("face_swapper", inswapper_128_fp16),
    **{
        f"hyperswap_1{letter}_256": ("face_swapper", _signed_256(mask=True))
        for letter in "abc"
    },
    "simswap_256": ("face_swapper", _partial(_swapper, 256, "embedding", "imagenet", "unit")),
    "simswap_unofficial_512": ("face_swapper", _partial(_swapper, 512, "embedding", "unit", "unit")),
    "simswap_512_unofficial": ("face_swapper", _partial(_swapper, 512, "embedding", "unit", "unit")),
    # ghost's source is the converter output, not normalised (norm ~ the raw ArcFace
    # embedding's), hence the smaller tint gain.
    **{
        stem: ("face_swapper", _signed_256(tint_gain=0.5))
        for stem in ("ghost_1_256", "ghost_2_256", "ghost_3_256",
                     "ghost_256_unet_1", "ghost_256_unet_2", "ghost_256_unet_3")
    },
    "blendswap_256": ("face_swapper", _partial(_swapper, 256, "image112", "unit", "unit")),
    "uniface_256": ("face_swapper", _partial(_swapper, 256, "image256", "signed", "signed")),
    "hififace_unofficial_256": ("face_swapper", _signed_256()),
    **{
        stem: ("face_swapper", embedding_converter)
        for stem in (
            "crossface_ghost", "crossface_simswap", "crossface_hififace",
            "arcface_converter_ghost", "arcface_converter_simswap", "arcface_converter_hififace",
            "arcface_converter_w600k_r50_ghost", "arcface_converter_w600k_r50_simswap",
        )
    },
    # face_enhancer: (size, blur radius, strength)
    **{
        stem: ("face_enhancer", _partial(_enhancer, size, radius, strength))
        for stem, size, radius, strength in (
            ("gfpgan_1.2", 512, 1, 1.2), ("gfpgan_1.3", 512, 1, 1.4), ("gfpgan_1.4", 512, 1, 1.6),
            ("gpen_bfr_256", 256, 1, 1.0), ("gpen_bfr_512", 512, 2, 1.2),
            ("gpen_bfr_1024", 1024, 2, 1.5), ("gpen_bfr_2048", 2048, 3, 1.5),
            ("restoreformer_plus_plus", 512, 2, 0.8),
        )
    },
    "codeformer": ("face_enhancer", _partial(_enhancer, 512, 1, 2.0, weight=True)),
    # face_masker
    **{stem: ("face_masker", xseg) for stem in ("xseg_1", "xseg_2", "xseg_3")},
    **{stem: ("face_masker", bisenet) for stem in ("bisenet_resnet_18", "bisenet_resnet_34")},
    # face_classifier
    "fairface": ("face_classifier", fairface),
    # content_analyser
    "open_nsfw": ("content_analyser", open_nsfw),
    "nsfw_1": ("content_analyser", nsfw_1),
    "nsfw_2": ("content_analyser", nsfw_2),
    "nsfw_3": ("content_analyser", nsfw_3),
    # voice_extractor
    **{stem: ("voice_extractor", voice_extractor) for stem in ("kim_vocal_1", "kim_vocal_2", "uvr_mdxnet")},
    # frame_enhancer: (tile, scale)
    **{
        stem: ("frame_enhancer", _partial(frame_enhancer, tile, scale))
        for stem, tile, scale in (
            ("clear_reality_x4", 128, 4), ("lsdir_x4", 128, 4), ("nomos8k_sc_x4", 128, 4),
            ("real_esrgan_x2", 256, 2), ("real_esrgan_x2_fp16", 256, 2),
            ("real_esrgan_x4", 256, 4), ("real_esrgan_x4_fp16", 256, 4),
            ("real_esrgan_x8", 256, 8), ("real_esrgan_x8_fp16", 256, 8),
            ("real_hatgan_x4", 256, 4), ("real_web_photo_x4", 64, 4), ("realistic_rescaler_x4", 128, 4),
            ("remacri_x4", 128, 4), ("siax_x4", 128, 4), ("span_kendata_x4", 128, 4),
            ("swin2_sr_x4", 128, 4), ("ultra_sharp_x4", 128, 4), ("ultra_sharp_2_x4", 1024, 4),
            ("face_dat_x4", 128, 4), ("tghq_face_x8", 128, 8),
        )
    },
    # frame_colorizer
    **{stem: ("frame_colorizer", ddcolor) for stem in ("ddcolor", "ddcolor_artistic")},
    **{stem: ("frame_colorizer", deoldify) for stem in ("deoldify", "deoldify_artistic", "deoldify_stable")},
    # lip_syncer
    "wav2lip_96": ("lip_syncer", wav2lip),
    "wav2lip_gan_96": ("lip_syncer", wav2lip),
    "edtalk_256": ("lip_syncer", edtalk_256),
    # age_modifier
    "styleganex_age": ("age_modifier", styleganex_age),
    # LivePortrait: the three files expression_restorer uses, then face_editor's own
    "live_portrait_feature_extractor": ("expression_restorer", live_portrait_feature_extractor),
    "live_portrait_motion_extractor": ("expression_restorer", live_portrait_motion_extractor),
    "live_portrait_generator": ("expression_restorer", live_portrait_generator),
    "live_portrait_eye_retargeter": ("face_editor", _partial(_retargeter, 66)),
    "live_portrait_lip_retargeter": ("face_editor", _partial(_retargeter, 65)),
    "live_portrait_stitcher": ("face_editor", live_portrait_stitcher),
    # deep_swapper: "<scope>/<name>", stored as <scope>/<name>.dfm
    **{
        stem: ("deep_swapper", deep_swapper)
        for stem in (
            "iperov/elon_musk_224", "iperov/keanu_reeves_320", "druuzil/henry_cavill_448",
            "mats/yu_jimin_352", "jen/angelica_trae_288", "edel/winona_ryder_224",
            "rumateus/taylor_swift_224",
        )
    },
    # background_remover: input size (u2net_cloth: 4 class maps)
    **{
        stem: ("background_remover", _partial(background_remover, size))
        for stem, size in (
            ("ben_2", 1024), ("birefnet_general", 1024), ("birefnet_portrait", 1024),
            ("isnet_general", 1024), ("modnet", 512), ("rmbg_1.4", 1024), ("rmbg_2.0", 1024),
            ("silueta", 320), ("u2net_general", 320), ("u2net_human", 320), ("u2net_portable", 320),
        )
    },
    "u2net_cloth": ("background_remover", _partial(background_remover, 768, classes=4)),
}  # fmt: skip

FILES: dict[str, str] = {stem: kind for stem, (kind, _) in _ZOO.items()}
"""Every FaceFusion 3.x model file stem -> the ff module kind that runs it."""

RUNTIME: tuple[str, ...] = (
    "retinaface_10g", "scrfd_2.5g", "yoloface_8n", "yunet_2023_mar",
    "2dfan4", "peppa_wutz", "fan_68_5",
    "arcface_w600k_r50",
    "inswapper_128", "inswapper_128_fp16", "hyperswap_1a_256", "hyperswap_1b_256", "hyperswap_1c_256",
    "simswap_256", "simswap_unofficial_512", "ghost_1_256", "ghost_2_256", "ghost_3_256",
    "blendswap_256", "uniface_256", "hififace_unofficial_256",
    "crossface_ghost", "crossface_simswap", "crossface_hififace",
    "codeformer", "gfpgan_1.2", "gfpgan_1.3", "gfpgan_1.4",
    "gpen_bfr_256", "gpen_bfr_512", "gpen_bfr_1024", "gpen_bfr_2048", "restoreformer_plus_plus",
)  # fmt: skip
"""The stems of the models ff's swap runtime runs."""


@functools.cache
def build(stem: str) -> bytes:
    """The serialised stand-in for the FaceFusion file ``stem`` (``"yoloface_8n"``,
    ``"iperov/elon_musk_224"``). Memoised: bytes are immutable and rebuilding is
    deterministic. Raises KeyError for a stem FaceFusion 3.x does not have."""
    if stem not in _ZOO:
        raise KeyError(stem)
    return _ZOO[stem][1](stem)


def model_path(folder: Path, stem: str) -> Path:
    """Where FaceFusion keeps ``stem`` under its ``.assets/models`` folder."""
    return folder / (f"{stem}.dfm" if FILES[stem] == "deep_swapper" else f"{stem}.onnx")


def write_models(folder: Path, stems: Iterable[str] | None = None) -> list[Path]:
    """Write FaceFusion's ``.assets/models`` layout into ``folder`` (the models folder
    itself): each model plus a ``.hash`` beside it holding FaceFusion's
    ``create_hash``, the 8-digit lowercase CRC-32 of the file, without which
    FaceFusion's pre-check deletes the model. Default: every stem in :data:`FILES`.
    Returns the model paths, in order."""
    written = []
    for stem in FILES if stems is None else stems:
        data = build(stem)
        path = model_path(folder, stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.with_suffix(".hash").write_text(format(zlib.crc32(data), "08x"))
        written.append(path)
    return written
