"""Tests for ffswap.weights, the runtime's wire-level reads of verified models.

Checked against onnx's own protobuf bindings on real and generated models: the
emap the swapper applies and the graph onnxruntime builds from must be exactly
what onnx makes of the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ffswap.weights import InlineWeight, last_initializer, split_weights
from tests import standins
from tests.conftest import ONNX_FILES

# --- last_initializer: inswapper's emap without onnx -------------------------------------


def _assert_last_initializer_matches(data: bytes) -> None:
    want = onnx.load_from_string(data).graph.initializer[-1]
    got = last_initializer(data)
    assert got is not None
    assert (got.name, got.dims, got.data_type) == (want.name, list(want.dims), want.data_type)
    assert got.data == numpy_helper.to_array(want).tobytes()


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: p.name)
def test_last_initializer_of_real_models_matches_onnx(path: Path) -> None:
    _assert_last_initializer_matches(path.read_bytes())


def test_last_initializer_of_standin_swapper_is_its_emap() -> None:
    data = standins.face_swapper(variant=2, size=1_200_000, emap=True)
    _assert_last_initializer_matches(data)
    got = last_initializer(data)
    assert got is not None and got.name == "emap" and got.dims == [512, 512]
    assert np.array_equal(np.frombuffer(got.data, "<f4").reshape(512, 512), standins.face_swapper_emap(2))


def test_last_initializer_of_generated_models() -> None:
    rng = np.random.default_rng(0)
    unpacked = helper.make_tensor("unpacked", TensorProto.FLOAT, [2, 3], rng.standard_normal(6).tolist())
    packed = TensorProto(name="packed", data_type=TensorProto.FLOAT, dims=[5, 4])
    packed.float_data.extend(rng.standard_normal(20).astype(np.float32))
    raw = numpy_helper.from_array(rng.standard_normal((3, 7)).astype(np.float32), "raw")
    ints = numpy_helper.from_array(np.arange(6, dtype=np.int64).reshape(2, 3), "ints")
    for tensors in ([raw, unpacked], [unpacked, packed], [packed, raw], [raw, ints]):
        graph = helper.make_graph([], "g", [], [], initializer=tensors)
        data = helper.make_model(graph).SerializeToString()
        _assert_last_initializer_matches(data)
    # Repeated graph fields merge: the last initializer of the last graph wins.
    extra = onnx.ModelProto()
    extra.graph.initializer.append(raw)
    first = helper.make_model(helper.make_graph([], "g", [], [], initializer=[packed]))
    _assert_last_initializer_matches(first.SerializeToString() + extra.SerializeToString())


def test_last_initializer_none_and_errors() -> None:
    empty = helper.make_model(helper.make_graph([], "g", [], []))
    assert last_initializer(empty.SerializeToString()) is None
    # Non-raw storage other than float32 float_data is not read.
    typed = helper.make_tensor("typed", TensorProto.INT64, [3], [1, 2, 3])
    assert not typed.HasField("raw_data")
    model = helper.make_model(helper.make_graph([], "g", [], [], initializer=[typed]))
    assert last_initializer(model.SerializeToString()) is None
    external = numpy_helper.from_array(np.zeros(4, np.float32), "external")
    onnx.external_data_helper.set_external_data(external, "side.bin")
    external.ClearField("raw_data")
    model = helper.make_model(helper.make_graph([], "g", [], [], initializer=[external]))
    assert last_initializer(model.SerializeToString()) is None
    data = standins.face_swapper(emap=True)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        last_initializer(data[:-1000])
    with pytest.raises(ValueError, match="empty"):
        last_initializer(b"")


# --- split_weights: the graph apart from its weights, for onnxruntime --------------------


def _rejoined(small: bytes, data: bytes, weights: list[InlineWeight]) -> onnx.ModelProto:
    """The split model with every moved weight put back inline, as onnx reads it."""
    model = onnx.load_from_string(small)
    moved = {weight.name: weight for weight in weights}
    for tensor in model.graph.initializer:
        weight = moved.pop(tensor.name, None)
        if weight is None:
            continue
        assert tensor.data_location == TensorProto.EXTERNAL
        assert [(e.key, e.value) for e in tensor.external_data] == [("location", "ff:test")]
        assert (weight.data_type, weight.dims) == (tensor.data_type, tuple(tensor.dims))
        del tensor.external_data[:]
        tensor.ClearField("data_location")
        tensor.raw_data = data[weight.offset:weight.offset + weight.length]
    assert not moved
    return model


@pytest.mark.parametrize("path", ONNX_FILES, ids=lambda p: p.name)
def test_split_weights_of_real_models_moves_only_raw_data(path: Path) -> None:
    data = path.read_bytes()
    small, weights = split_weights(data, "ff:test")
    assert weights and len(small) < len(data) - sum(w.length for w in weights) + 64 * len(weights)
    assert all(w.length >= 4096 for w in weights)
    assert _rejoined(small, data, weights) == onnx.load_from_string(data)


def test_split_weights_leaves_what_cannot_move() -> None:
    rng = np.random.default_rng(1)
    big = numpy_helper.from_array(rng.standard_normal((32, 64)).astype(np.float32), "big")
    halves = numpy_helper.from_array(rng.standard_normal(4096).astype(np.float16), "halves")
    small = numpy_helper.from_array(np.ones(8, np.float32), "small")
    unused = numpy_helper.from_array(np.ones(4096, np.float32), "unused")
    typed = helper.make_tensor("typed", TensorProto.FLOAT, [2048], np.ones(2048).tolist())
    brain = helper.make_tensor("brain", TensorProto.BFLOAT16, [4096], np.zeros(4096, np.uint16).tobytes(),
                               raw=True)
    nodes = [helper.make_node("Identity", [name], [f"{name}_out"])
             for name in ("big", "halves", "small", "typed", "brain")]
    graph = helper.make_graph(
        nodes, "g", [], [helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, None)
                         for n in ("big", "halves", "small", "typed", "brain")],
        initializer=[big, halves, small, unused, typed, brain])
    data = helper.make_model(graph).SerializeToString()
    split, weights = split_weights(data, "ff:test")
    assert [w.name for w in weights] == ["big", "halves"]
    assert _rejoined(split, data, weights) == onnx.load_from_string(data)
    # Repeated graph fields merge: each is split on its own and still merges the same.
    extra = onnx.ModelProto()
    extra.graph.initializer.append(numpy_helper.from_array(np.ones(2048, np.int32), "late"))
    extra.graph.node.append(helper.make_node("Identity", ["late"], ["late_out"]))
    data = data + extra.SerializeToString()
    split, weights = split_weights(data, "ff:test")
    assert [w.name for w in weights] == ["big", "halves", "late"]
    assert _rejoined(split, data, weights) == onnx.load_from_string(data)


def test_split_weights_without_weights_and_errors() -> None:
    data = helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString()
    split, weights = split_weights(data, "ff:test")
    assert split is data and weights == []
    full = standins.face_swapper(emap=True)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        split_weights(full[:-1000], "ff:test")
    with pytest.raises(ValueError, match="empty"):
        split_weights(b"", "ff:test")
