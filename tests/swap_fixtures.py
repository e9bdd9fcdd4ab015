"""Helpers for the face-swap tests: test-data paths, a file-backed model source and
the manifest-style I/O description of an ONNX file.

Plain functions and classes only; the fixtures live in the test modules (the lead
owns ``tests/conftest.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ffswap.model_source import LoadedModel

DATA = Path(__file__).parent / "data"
YUNET = DATA / "models" / "yunet" / "face_detection_yunet_2026may.onnx"
ULFD = {
    name: DATA / "models" / "ulfd" / f"version-{name}.onnx" for name in ("RFB-320", "slim-320", "RFB-640")
}
ASTRONAUT = DATA / "images" / "astronaut.png"
GRACE_HOPPER = DATA / "images" / "grace_hopper.jpg"

_DTYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 2: "uint8"}


def describe_io(data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """I/O of an ONNX model in the store manifest's format, as onnxruntime sees it
    (initializers listed as graph inputs are not inputs)."""
    import onnx

    graph = onnx.load_from_string(data).graph
    initializers = {init.name for init in graph.initializer}

    def describe(value: onnx.ValueInfoProto) -> dict[str, Any]:
        tensor = value.type.tensor_type
        shape: list[int | str | None] = [
            dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
            for dim in tensor.shape.dim
        ]
        return {"name": value.name, "shape": shape, "dtype": _DTYPES.get(tensor.elem_type, "?")}

    inputs = [describe(value) for value in graph.input if value.name not in initializers]
    return inputs, [describe(value) for value in graph.output]


@dataclass
class FileModelSource:
    """A ModelSource over files: ``catalog[module][version] = path``.

    The first version listed per module is the default (``version=None``). It counts
    loads so tests can tell whether a model was read.
    """

    catalog: Mapping[str, Mapping[str, Path]]
    loads: list[tuple[str, str]] = field(default_factory=list)
    io_overrides: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = field(
        default_factory=dict
    )

    def load(self, module: str, version: str | None, *,
             deferred_check: bool = False) -> LoadedModel:
        versions = self.catalog[module]
        chosen = version if version is not None else next(iter(versions))
        path = versions[chosen]
        data = path.read_bytes()
        inputs, outputs = self.io_overrides.get((module, chosen)) or describe_io(data)
        self.loads.append((module, chosen))
        return LoadedModel(module, path.stem, chosen, data, inputs, outputs)


def wrong_swapper() -> bytes:
    """An inswapper look-alike whose target is 256x256: a real-world mislabelled model."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["target"], ["output"])],
        "wrong",
        [
            helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 256, 256]),
            helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 256, 256])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return model.SerializeToString()


def read_test_image(path: Path) -> np.ndarray:
    """Read a test image as BGR uint8, failing loudly if the test data is missing."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"missing test image {path}"
    return image


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux only)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found")


def pan_video(path: Path, image: np.ndarray, frames: int = 12, size: int = 256) -> Path:
    """Write an MJPG .avi of a ``size`` window panning slowly across ``image``."""
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (size, size))
    assert writer.isOpened()
    scale = 320 / max(height, width)
    small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    for index in range(frames):
        x = round(index * (small.shape[1] - size) / max(1, frames - 1))
        y = (small.shape[0] - size) // 2
        writer.write(np.ascontiguousarray(small[y : y + size, x : x + size]))
    writer.release()
    return path


def read_frames(video: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return frames
            frames.append(frame)
    finally:
        capture.release()
