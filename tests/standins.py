"""Stand-in ONNX models with FaceFusion's real I/O contracts.

No free face recogniser, swapper or enhancer is small enough to ship, so tests,
benchmarks and the demo registry use these generated graphs instead. Each keeps the
exact tensor names, shapes and value ranges of the real model (arcface_w600k_r50,
inswapper_128, GFPGAN 1.4) and does something simple, deterministic and *visible*,
so loading, verification, alignment and paste-back run for real and their effect
shows in the output.

They live with the tests, outside the installed packages: ``onnx`` is a test/dev
dependency only (imported inside the builders), and nothing in ffstore or ffswap
imports this module. The benchmarks and models/build_demo_registry.py put the repo
root on ``sys.path`` to use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

IR_VERSION = 10  # onnxruntime >= 1.20 accepts it
OPSET = 17
_PAD_NAME = "padding"


def _tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def _padding_nodes(anchor: str, unpadded: str) -> list[Any]:
    """Nodes adding ``0 * padding[index]`` to the output, ``index`` being 0 computed
    from the ``anchor`` input.

    The index depends on an input, so onnxruntime cannot constant-fold the padding
    away: a padded model keeps its bytes resident in the session, as real weights
    would, which is what memory benchmarks need. The cost per run is one gather.
    """
    from onnx import TensorProto, helper

    return [
        helper.make_node("ReduceMin", [anchor], ["pad_min"], keepdims=0),
        helper.make_node("Mul", ["pad_min", "pad_zero"], ["pad_index_float"]),
        helper.make_node("Cast", ["pad_index_float"], ["pad_index"], to=TensorProto.INT64),
        helper.make_node("Gather", [_PAD_NAME, "pad_index"], ["pad_byte"]),
        helper.make_node("Cast", ["pad_byte"], ["pad_value"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pad_value", "pad_zero"], ["pad_nothing"]),
        helper.make_node("Add", [unpadded, "pad_nothing"], ["output"]),
    ]


def _model(
    name: str,
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    initializers: list[Any],
    pad: np.ndarray | None,
    final: Any = None,
) -> bytes:
    """Assemble and check a model whose last node writes ``output``; with ``pad``,
    route that output through :func:`_padding_nodes`. ``final``, if given, is an
    initializer appended after all others (and after the padding)."""
    from onnx import helper

    if pad is not None:
        *body, last = nodes
        unpadded = helper.make_node(
            last.op_type, list(last.input), ["unpadded"], name=last.name, domain=last.domain
        )
        unpadded.attribute.extend(last.attribute)
        nodes = [*body, unpadded, *_padding_nodes(inputs[0].name, "unpadded")]
        initializers = [
            *initializers,
            _tensor(_PAD_NAME, pad),
            _tensor("pad_zero", np.array(0.0, dtype=np.float32)),
        ]
    if final is not None:
        initializers = [*initializers, final]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    # The module's name before it moved to tests/: the demo registry under models/
    # (and facefusion.lock) pin these exact bytes, so the producer stays.
    return serialized(graph, "ffswap.standins")


def serialized(graph: onnx.GraphProto, producer: str) -> bytes:
    """A checked model's bytes, at the IR version and opset onnxruntime takes."""
    from onnx import checker, helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name=producer, ir_version=IR_VERSION)
    checker.check_model(model)
    return model.SerializeToString()


def _padded(build: Callable[[np.ndarray | None], bytes], size: int | None) -> bytes:
    """Build once unpadded, then grow the padding until the file is exactly ``size``.

    Protobuf length prefixes are varints, so the overhead of the padding tensor
    depends on its own length; two or three rounds settle it.
    """
    data = build(None)
    if size is None:
        return data
    if size < len(data):
        raise ValueError(f"model is already {len(data)} bytes, cannot pad to {size}")
    pad_len = size - len(data)
    for _ in range(8):
        # Random rather than zero bytes so compressing transports see the real size.
        pad = np.random.default_rng(0).integers(0, 256, size=max(pad_len, 1), dtype=np.uint8)
        candidate = build(pad)
        if len(candidate) == size:
            return candidate
        pad_len += size - len(candidate)
    raise ValueError(f"cannot pad model to exactly {size} bytes")


def face_recognizer(variant: int = 0, *, size: int | None = None) -> bytes:
    """ArcFace-style recogniser: ``input`` [1,3,112,112] (RGB, x/127.5-1) →
    ``output`` [1,512].

    Average-pools to an 8x8 grid and projects with a fixed random matrix seeded by
    ``variant``: similar faces give similar embeddings, different variants give
    different embedding spaces. ``size`` pads the file to exactly that many bytes.
    """
    from onnx import TensorProto, helper

    weights = np.random.default_rng(1000 + variant).standard_normal((192, 512))
    weights = (weights / np.sqrt(192)).astype(np.float32)

    def build(pad: np.ndarray | None) -> bytes:
        nodes = [
            helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
            helper.make_node("Reshape", ["pooled", "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "projection"], ["output"]),
        ]
        return _model(
            "face_recognizer_standin",
            nodes,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 112, 112])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 512])],
            [
                _tensor("flat_shape", np.array([1, 192], dtype=np.int64)),
                _tensor("projection", weights),
            ],
            pad,
        )

    return _padded(build, size)


def face_swapper_emap(variant: int = 0) -> np.ndarray:
    """The [512, 512] float32 ``emap`` that ``face_swapper(variant, emap=True)`` embeds."""
    emap = np.random.default_rng(3000 + variant).standard_normal((512, 512)) / np.sqrt(512)
    return emap.astype(np.float32)


def face_swapper(
    variant: int = 0, strength: float = 0.6, *, size: int | None = None, emap: bool = False
) -> bytes:
    """inswapper_128-style swapper: ``target`` [1,3,128,128] (RGB 0..1) and
    ``source`` [1,512] → ``output`` [1,3,128,128] (RGB 0..1).

    Blends the target crop toward a flat colour computed from the source embedding
    (``sigmoid(source @ W)``, ``W`` seeded by ``variant``) by ``strength``: the
    swapped face is tinted per source identity, and each variant tints differently.
    With ``emap`` the graph's last initializer is :func:`face_swapper_emap`, as in
    the real inswapper_128: no node uses it, the caller applies it to the source.
    """
    from onnx import TensorProto, helper

    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be within 0..1")
    # Scaled so a unit-norm embedding gives logits of a few units: saturated tints.
    tint = np.random.default_rng(2000 + variant).standard_normal((512, 3)) * 4.0
    tint = tint.astype(np.float32)

    def build(pad: np.ndarray | None) -> bytes:
        nodes = [
            helper.make_node("MatMul", ["source", "tint_weights"], ["logits"]),
            helper.make_node("Sigmoid", ["logits"], ["colour"]),
            helper.make_node("Reshape", ["colour", "colour_shape"], ["colour_map"]),
            helper.make_node("Mul", ["target", "keep"], ["kept"]),
            helper.make_node("Mul", ["colour_map", "amount"], ["added"]),
            helper.make_node("Add", ["kept", "added"], ["output"]),
        ]
        return _model(
            "face_swapper_standin",
            nodes,
            [
                helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
                helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512]),
            ],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])],
            [
                _tensor("tint_weights", tint),
                _tensor("colour_shape", np.array([1, 3, 1, 1], dtype=np.int64)),
                _tensor("keep", np.array(1.0 - strength, dtype=np.float32)),
                _tensor("amount", np.array(strength, dtype=np.float32)),
            ],
            pad,
            _tensor("emap", face_swapper_emap(variant)) if emap else None,
        )

    return _padded(build, size)


def face_enhancer(variant: int = 0, strength: float = 1.5, *, size: int | None = None) -> bytes:
    """GFPGAN-1.4-style enhancer: ``input`` [1,3,512,512] (RGB, -1..1) → ``output``
    same shape and range.

    A depthwise unsharp mask (box blur of radius ``1 + variant``, detail boosted by
    ``strength``), then clipped to -1..1: edges and contrast visibly sharpen, more so
    for larger variants.
    """
    from onnx import TensorProto, helper

    radius = 1 + variant
    width = 2 * radius + 1
    blur = np.full((width, width), 1.0 / width**2, dtype=np.float32)
    identity = np.zeros((width, width), dtype=np.float32)
    identity[radius, radius] = 1.0
    kernel = (identity + strength * (identity - blur)).astype(np.float32)
    kernels = np.stack([kernel[None]] * 3)  # [3, 1, k, k]: one filter per channel

    def build(pad: np.ndarray | None) -> bytes:
        nodes = [
            helper.make_node("Conv", ["input", "kernel"], ["sharp"], group=3, pads=[radius] * 4),
            helper.make_node("Clip", ["sharp", "low", "high"], ["output"]),
        ]
        return _model(
            "face_enhancer_standin",
            nodes,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])],
            [
                _tensor("kernel", kernels),
                _tensor("low", np.array(-1.0, dtype=np.float32)),
                _tensor("high", np.array(1.0, dtype=np.float32)),
            ],
            pad,
        )

    return _padded(build, size)


BUILDERS: dict[str, Callable[..., bytes]] = {
    "face_recognizer": face_recognizer,
    "face_swapper": face_swapper,
    "face_enhancer": face_enhancer,
}


def write_standin(kind: str, path: str | os.PathLike[str], **params: Any) -> Path:
    """Build the stand-in ``kind`` (a key of :data:`BUILDERS`) and write it to ``path``.

    ``params`` go to the builder (``variant``, ``strength``, ``size``, ``emap``).
    """
    if kind not in BUILDERS:
        raise ValueError(f"unknown stand-in {kind!r}; choose from {sorted(BUILDERS)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(BUILDERS[kind](**params))
    return target
