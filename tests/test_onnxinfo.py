"""Tests for ffstore.onnxinfo, the pure-Python ONNX signature reader.

The reader is checked against the reference parsers (onnx's protobuf bindings
and onnxruntime) on real and synthetic models, because the manifest's
compatibility contract is only as good as its agreement with what the runtime
will actually see. The big-model tests pin the "reads only a few KiB" promise
that lets store verbs handle multi-GiB models.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ffstore import onnxinfo
from ffstore.onnxinfo import DTYPE_NAMES, OnnxIO, read_io
from tests.conftest import ONNX_FILES

MODELS = Path(__file__).parent / "data" / "models"
YUNET = MODELS / "yunet" / "face_detection_yunet_2026may.onnx"
ULFD = sorted((MODELS / "ulfd").glob("*.onnx"))


def _dtype(elem_type: int) -> str:
    if elem_type == TensorProto.UNDEFINED:
        return "unknown"
    if elem_type == TensorProto.STRING:
        return "string"
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except KeyError:  # a number onnx has no type for (only fuzzed files have these)
        return f"elem_type_{elem_type}"


def _spec(vi: onnx.ValueInfoProto) -> dict[str, Any]:
    if vi.type.WhichOneof("value") != "tensor_type":
        return {"name": vi.name, "shape": [], "dtype": "unknown"}
    tt = vi.type.tensor_type
    shape = []
    for d in tt.shape.dim:
        kind = d.WhichOneof("value")
        shape.append(None if kind is None else getattr(d, kind))
    return {"name": vi.name, "shape": shape, "dtype": _dtype(tt.elem_type)}


def expected(model: onnx.ModelProto) -> OnnxIO:
    """What read_io should return, computed with the onnx package."""
    g = model.graph
    inits = {t.name for t in g.initializer} | {s.values.name for s in g.sparse_initializer}
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return OnnxIO(
        inputs=[_spec(v) for v in g.input if v.name not in inits],
        outputs=[_spec(v) for v in g.output],
        opset=opsets[-1] if opsets else None,
        ir_version=model.ir_version,
    )


class CountingFile:
    """Wraps a file to count the bytes actually read from it."""

    def __init__(self, f: Any, log: list[int]) -> None:
        self._f = f
        self._log = log

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._log.append(len(data))
        return data

    def seek(self, *args: int) -> int:
        return self._f.seek(*args)

    def __enter__(self) -> CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


@pytest.fixture
def read_log(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make read_io's open() count bytes read; the list holds each read's size."""
    log: list[int] = []

    def counting_open(path: Any, mode: str = "r", buffering: int = -1) -> CountingFile:
        return CountingFile(open(path, mode, buffering=buffering), log)

    monkeypatch.setattr(onnxinfo, "open", counting_open, raising=False)
    return log


# --- real models ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: p.name)
def test_real_models_match_onnx(path: Path) -> None:
    model = onnx.load(str(path), load_external_data=False)
    assert read_io(path) == expected(model)


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: p.name)
def test_real_models_match_onnxruntime(path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    io = read_io(str(path))
    ort_types = {"tensor(float)": "float32"}
    for ours, theirs in ((io.inputs, sess.get_inputs()), (io.outputs, sess.get_outputs())):
        assert [s["name"] for s in ours] == [t.name for t in theirs]
        assert [s["shape"] for s in ours] == [t.shape for t in theirs]
        assert [s["dtype"] for s in ours] == [ort_types[t.type] for t in theirs]


@pytest.mark.parametrize("path", ULFD, ids=lambda p: p.name)
def test_ulfd_weights_listed_as_inputs_are_excluded(path: Path) -> None:
    model = onnx.load(str(path), load_external_data=False)
    assert len(model.graph.input) > 100  # the exporter listed every weight as an input
    io = read_io(path)
    assert [s["name"] for s in io.inputs] == ["input"]
    assert io.inputs[0]["dtype"] == "float32"
    assert [s["name"] for s in io.outputs] == ["scores", "boxes"]
    assert (io.opset, io.ir_version) == (9, 4)


def test_yunet_symbolic_dims() -> None:
    io = read_io(YUNET)
    assert io.inputs == [{"name": "input", "shape": [1, 3, "height", "width"], "dtype": "float32"}]
    assert io.outputs[0] == {"name": "cls_8", "shape": [1, "anchors", 1], "dtype": "float32"}
    assert (io.opset, io.ir_version) == (11, 6)


def test_real_models_read_little(read_log: list[int]) -> None:
    for path in ONNX_FILES:
        read_log.clear()
        read_io(path)
        # Each weight skipped costs one small refill; nowhere near the whole file.
        assert sum(read_log) < path.stat().st_size


# --- synthetic models -------------------------------------------------------------------


def _synthetic_model() -> onnx.ModelProto:
    """Dynamic dims, several dtypes, weights-as-inputs, a sparse initializer, odd types."""
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    sparse_vals = numpy_helper.from_array(np.array([1.0], np.float32), "sp")
    sparse_idx = numpy_helper.from_array(np.array([0], np.int64), "sp_idx")
    sparse = helper.make_sparse_tensor(sparse_vals, sparse_idx, [4])
    inputs = [
        helper.make_tensor_value_info("image", TensorProto.FLOAT16, ["batch", 3, None, 640]),
        helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, "h", "w"]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, [-1]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, []),  # scalar
        helper.make_tensor_value_info("text", TensorProto.STRING, None),  # unknown rank
        helper.make_tensor_value_info("bf", TensorProto.BFLOAT16, [2**40]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2]),  # also an initializer
        helper.make_tensor_value_info("sp", TensorProto.FLOAT, [4]),  # sparse initializer
        helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
        helper.make_empty_tensor_value_info("untyped"),
        helper.make_tensor_value_info("nam√©_ü", TensorProto.DOUBLE, ["dîm"]),
    ]
    outputs = [
        helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 512]),
        helper.make_tensor_value_info("idx", TensorProto.INT32, None),
    ]
    node = helper.make_node("Identity", ["image"], ["out"])
    graph = helper.make_graph(
        [node], "g", inputs, outputs, initializer=[w], sparse_initializer=[sparse]
    )
    return helper.make_model(
        graph,
        ir_version=10,
        opset_imports=[helper.make_opsetid("com.example", 3), helper.make_opsetid("", 17)],
    )


def test_synthetic_model(tmp_path: Path) -> None:
    model = _synthetic_model()
    path = tmp_path / "synth.onnx"
    onnx.save_model(model, str(path))
    io = read_io(path)
    assert io == expected(onnx.load(str(path)))
    by_name = {s["name"]: s for s in io.inputs}
    assert "w" not in by_name and "sp" not in by_name
    assert by_name["image"] == {
        "name": "image",
        "shape": ["batch", 3, None, 640],
        "dtype": "float16",
    }
    assert by_name["mask"]["dtype"] == "uint8"
    assert by_name["ids"] == {"name": "ids", "shape": [-1], "dtype": "int64"}
    assert by_name["flag"] == {"name": "flag", "shape": [], "dtype": "bool"}
    assert by_name["text"] == {"name": "text", "shape": [], "dtype": "string"}
    assert by_name["bf"] == {"name": "bf", "shape": [2**40], "dtype": "bfloat16"}
    assert by_name["seq"] == {"name": "seq", "shape": [], "dtype": "unknown"}
    assert by_name["untyped"] == {"name": "untyped", "shape": [], "dtype": "unknown"}
    assert by_name["nam√©_ü"] == {"name": "nam√©_ü", "shape": ["dîm"], "dtype": "float64"}
    assert io.outputs == [
        {"name": "out", "shape": ["batch", 512], "dtype": "float32"},
        {"name": "idx", "shape": [], "dtype": "int32"},
    ]
    assert (io.opset, io.ir_version) == (17, 10)


def test_opset_ai_onnx_domain_and_missing_opset(tmp_path: Path) -> None:
    model = _synthetic_model()
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    path = tmp_path / "a.onnx"
    path.write_bytes(model.SerializeToString())
    assert read_io(path).opset == 13

    del model.opset_import[:]
    path.write_bytes(model.SerializeToString())
    assert read_io(path).opset is None


def test_repeated_graph_field_is_merged(tmp_path: Path) -> None:
    """Protobuf merges a repeated embedded message; onnx.load does, so must we."""
    model = _synthetic_model()
    extra = onnx.GraphProto()
    extra.output.append(helper.make_tensor_value_info("late", TensorProto.INT8, [7]))
    extra_model = onnx.ModelProto()
    extra_model.graph.CopyFrom(extra)
    data = model.SerializeToString() + extra_model.SerializeToString()
    path = tmp_path / "merged.onnx"
    path.write_bytes(data)
    io = read_io(path)
    assert io == expected(onnx.ModelProto.FromString(data))
    assert io.outputs[-1] == {"name": "late", "shape": [7], "dtype": "int8"}


@pytest.mark.parametrize("number,name", sorted(DTYPE_NAMES.items()))
def test_dtype_names_follow_onnx(number: int, name: str) -> None:
    try:
        np_name = helper.tensor_dtype_to_np_dtype(number).name
    except (KeyError, ValueError):
        pytest.skip(f"this onnx does not know elem_type {number}")
    assert name == ("string" if number == TensorProto.STRING else np_name)


def test_unknown_elem_type_keeps_its_number(tmp_path: Path) -> None:
    model = _synthetic_model()
    model.graph.output[0].type.tensor_type.elem_type = 99
    path = tmp_path / "future.onnx"
    path.write_bytes(model.SerializeToString())
    assert read_io(path).outputs[0]["dtype"] == "elem_type_99"


def test_external_data_needs_only_the_onnx_file(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.zeros((256, 256), np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weights"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 256])],
        initializer=[weights],
    )
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "ext.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="ext.bin", size_threshold=0
    )
    side = tmp_path / "ext.bin"
    assert side.stat().st_size == 256 * 256 * 4
    assert path.stat().st_size < 4096
    want = expected(onnx.load(str(path), load_external_data=False))
    side.unlink()  # proves the side file is never opened
    io = read_io(path)
    assert io == want
    assert io.inputs == [{"name": "x", "shape": ["n", 256], "dtype": "float32"}]


# --- big models: skip, don't read ---------------------------------------------------------


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~54 MiB: a 50 MiB raw_data weight and a 4 MiB packed float_data weight,
    both serialized before the graph's inputs and outputs."""
    big = numpy_helper.from_array(np.zeros(50 * 2**20, np.uint8), "big")
    packed = TensorProto(name="packed", data_type=TensorProto.FLOAT, dims=[2**20])
    packed.float_data.extend(np.zeros(2**20, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "big",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 224, 224]),
            helper.make_tensor_value_info("big", TensorProto.UINT8, [50 * 2**20]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        initializer=[big, packed],
    )
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("big") / "big.onnx"
    onnx.save_model(model, str(path))
    return path


def test_big_model_is_fast_and_reads_little(big_model: Path, read_log: list[int]) -> None:
    assert big_model.stat().st_size > 54 * 2**20
    start = time.perf_counter()
    io = read_io(big_model)
    elapsed = time.perf_counter() - start
    assert io.inputs == [{"name": "x", "shape": ["batch", 3, 224, 224], "dtype": "float32"}]
    assert io.outputs == [{"name": "y", "shape": ["batch", 3, 224, 224], "dtype": "float32"}]
    assert elapsed < 0.5
    assert sum(read_log) < 64 * 1024
    assert max(read_log) <= 4096


# --- garbage ------------------------------------------------------------------------------


def _raises(path: Path) -> str:
    with pytest.raises(ValueError) as info:
        read_io(path)
    msg = str(info.value)
    assert msg.startswith(f"{path} is not a valid ONNX model: ")
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, world\n" * 100,
        b"\x00" * 64,
        b"\xff" * 64,  # a varint that never ends
        b"\x08" + b"\xff" * 11,  # ir_version varint longer than 10 bytes
        b"\x08\x07\x3a\xff\xff\xff\xff\xff\xff\xff\xff\x3f",  # graph claims ~4 EiB
        b"\x08\x07\x3a\x05\x5a\x10",  # graph.input claims more than graph holds
        b"\x08\x07\x3b\x00",  # graph with a group wire type
        b"\x08\x07\x3d\x00\x00\x00\x00",  # graph sent as fixed32
        b"\x08\x07",  # ir_version but no graph
        b"\x3a\x00",  # graph but no ir_version
        b"\x08\x07\x3a\x04\x5a\x02\x0a\xff",  # name claims 255 bytes in a 2-byte message
        b"\x08\x07\x3a\x05\x5a\x03\x0a\x01\xff",  # name not UTF-8
        b"PK\x03\x04" + bytes(200),  # a zip
        onnx.TensorProto(name="t", dims=[3]).SerializeToString(),  # protobuf, wrong message
    ],
    ids=lambda d: d[:12].hex() or "empty",
)
def test_garbage_raises_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.onnx"
    path.write_bytes(data)
    _raises(path)


def test_every_truncation_agrees_with_protobuf(tmp_path: Path) -> None:
    """Cutting the file anywhere either raises ValueError or (at a field boundary)
    gives exactly what protobuf itself makes of the shorter file."""
    data = _synthetic_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        try:
            model = onnx.ModelProto.FromString(data[:n])
        except Exception:
            model = None
        if model is None or not model.HasField("graph") or model.ir_version < 1:
            _raises(path)
        else:
            assert read_io(path) == expected(model), n


def test_truncated_real_model(tmp_path: Path) -> None:
    data = YUNET.read_bytes()
    path = tmp_path / "yunet.onnx"
    for n in (1, 2, 10, 100, 1000, len(data) // 2, len(data) - 10, len(data) - 1):
        path.write_bytes(data[:n])
        _raises(path)


def test_random_corruption_never_escapes_value_error(tmp_path: Path) -> None:
    """Flipped bytes must give a result or a ValueError: never a crash, hang or huge
    read. Where both we and protobuf accept the bytes, we must agree with protobuf."""
    rng = random.Random(1234)
    data = _synthetic_model().SerializeToString()
    path = tmp_path / "fuzz.onnx"
    agreed = 0
    for _ in range(3000):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        path.write_bytes(bytes(buf))
        try:
            ours = read_io(path)
        except ValueError:
            continue
        try:
            model = onnx.ModelProto.FromString(bytes(buf))
        except Exception:
            continue  # damage inside a sub-message we skip (a node, a weight)
        assert ours == expected(model)
        agreed += 1
    assert agreed > 100
    for _ in range(200):
        path.write_bytes(rng.randbytes(rng.randint(1, 4096)))
        with contextlib.suppress(ValueError):
            read_io(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_io(tmp_path / "nope.onnx")
