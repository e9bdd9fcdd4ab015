"""Read an ONNX model's input/output signature without onnx, onnxruntime or numpy.

When a model is published, the store records each ONNX file's input and output
names, shapes and dtypes in the signed manifest: that is the compatibility
contract lockfiles and the runtime check against. The store's verbs must start
fast and must not pull in heavy native packages, and models can be well over a
gigabyte, so :func:`read_io` reads the protobuf wire format with the bounded
reader of ffstore.onnxwire and touches only the few bytes it needs: nodes and
weights are skipped, never read, and a truncated or garbage file raises
:class:`ValueError` quickly. Only the ``.onnx`` file is opened; tensors stored as
external data are just ``TensorProto`` records whose ``name`` we need, so
external-data models work.

Field numbers follow ``onnx.proto`` (checked against onnx 1.23):

* ModelProto: ir_version=1, graph=7, opset_import=8
* OperatorSetIdProto: domain=1, version=2
* GraphProto: node=1, initializer=5, input=11, output=12, sparse_initializer=15
* SparseTensorProto: values=1 (a TensorProto)
* TensorProto: name=8
* ValueInfoProto: name=1, type=2
* TypeProto: tensor_type=1; other members of its ``value`` oneof are
  sequence_type=4, map_type=5, opaque_type=7, sparse_tensor_type=8,
  optional_type=9
* TypeProto.Tensor: elem_type=1, shape=2
* TensorShapeProto: dim=1; Dimension: dim_value=1, dim_param=2

This is a reader, not a validator: sub-messages it skips (nodes, weights,
non-tensor types) are not checked, so a file it accepts may still be refused by
onnx or onnxruntime. Conversely it is stricter than protobuf in a few places
(a known field with the wrong wire type, a string that is not UTF-8), because
those only happen in garbage. Protobuf merge semantics are honoured where they
can matter: a later scalar replaces an earlier one, repeated fields append, an
embedded message that appears twice is merged, and int32 fields are truncated to
32 bits, so an accepted file gives exactly what ``onnx.load`` would see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypedDict

from ffstore.onnxwire import LEN, VARINT, Malformed, WireReader, file_reader

__all__ = ["DTYPE_NAMES", "OnnxIO", "TensorInfo", "read_io"]


class TensorInfo(TypedDict):
    """One graph input or output as the ONNX file declares it, recorded in the manifest.

    ``shape`` holds an ``int`` for a fixed dimension (``dim_value``), a ``str``
    for a symbolic one (``dim_param``, e.g. ``"batch"``) and ``None`` for a
    dimension that names neither. An unknown rank and a scalar both give ``[]``.
    """

    name: str
    shape: list[int | str | None]
    dtype: str


@dataclass(frozen=True)
class OnnxIO:
    """The parts of an ONNX model that form its compatibility contract.

    ``inputs`` excludes graph inputs that are also initializers: older
    exporters list every weight as an input, but a caller never feeds those.
    ``opset`` is the version of the default operator domain (``""`` or
    ``"ai.onnx"``), or ``None`` when the model declares no such import.
    """

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    opset: int | None
    ir_version: int


#: TensorProto.DataType number -> dtype name. Names are numpy's (and, beyond
#: numpy, ml_dtypes', as ``onnx.helper.tensor_dtype_to_np_dtype`` gives them),
#: except STRING, which numpy would only call "object".
DTYPE_NAMES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    16: "bfloat16",
    17: "float8_e4m3fn",
    18: "float8_e4m3fnuz",
    19: "float8_e5m2",
    20: "float8_e5m2fnuz",
    21: "uint4",
    22: "int4",
    23: "float4_e2m1fn",
    24: "float8_e8m0fnu",
    25: "uint2",
    26: "int2",
    27: "float6_e2m3fn",
    28: "float6_e3m2fn",
}

# TypeProto oneof members other than tensor_type: any of them makes the type
# "not a dense tensor" (last member seen wins, as with any protobuf oneof).
_TYPEPROTO_OTHER_VALUES = frozenset({4, 5, 7, 8, 9})


class _Value:
    """Mutable ValueInfoProto state while parsing (protobuf merges repeats into it)."""

    __slots__ = ("dims", "elem_type", "is_tensor", "name")

    def __init__(self) -> None:
        self.name = ""
        self.is_tensor = False
        self.elem_type = 0
        self.dims: list[int | str | None] = []

    def info(self) -> TensorInfo:
        """Turn into the manifest's dict form."""
        if not self.is_tensor:
            return {"name": self.name, "shape": [], "dtype": "unknown"}
        if self.elem_type == 0:
            dtype = "unknown"
        else:
            dtype = DTYPE_NAMES.get(self.elem_type, f"elem_type_{self.elem_type}")
        return {"name": self.name, "shape": list(self.dims), "dtype": dtype}


class _Graph:
    """What we collect from GraphProto (possibly across several merged occurrences)."""

    def __init__(self) -> None:
        self.inputs: list[_Value] = []
        self.outputs: list[_Value] = []
        self.initializers: set[str] = set()


def _parse_dimension(r: WireReader, end: int) -> int | str | None:
    dim: int | str | None = None
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            r.expect(wire, VARINT, "Dimension.dim_value")
            dim = r.int64(end)
        elif field == 2:
            r.expect(wire, LEN, "Dimension.dim_param")
            dim = r.string(end)
        else:
            r.skip(wire, end)
    r.finish(end, "TensorShapeProto.Dimension")
    return dim


def _parse_shape(r: WireReader, end: int, value: _Value) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            sub = r.submessage(wire, end, "TensorShapeProto.dim")
            value.dims.append(_parse_dimension(r, sub))
        else:
            r.skip(wire, end)
    r.finish(end, "TensorShapeProto")


def _parse_tensor_type(r: WireReader, end: int, value: _Value) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            r.expect(wire, VARINT, "TypeProto.Tensor.elem_type")
            value.elem_type = r.int32(end)
        elif field == 2:
            _parse_shape(r, r.submessage(wire, end, "TypeProto.Tensor.shape"), value)
        else:
            r.skip(wire, end)
    r.finish(end, "TypeProto.Tensor")


def _parse_type(r: WireReader, end: int, value: _Value) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            sub = r.submessage(wire, end, "TypeProto.tensor_type")
            if not value.is_tensor:
                # Switching oneof member: start from an empty Tensor.
                value.is_tensor, value.elem_type, value.dims = True, 0, []
            _parse_tensor_type(r, sub, value)
        else:
            if field in _TYPEPROTO_OTHER_VALUES:
                value.is_tensor, value.elem_type, value.dims = False, 0, []
            r.skip(wire, end)
    r.finish(end, "TypeProto")


def _parse_value_info(r: WireReader, end: int) -> _Value:
    value = _Value()
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            r.expect(wire, LEN, "ValueInfoProto.name")
            value.name = r.string(end)
        elif field == 2:
            _parse_type(r, r.submessage(wire, end, "ValueInfoProto.type"), value)
        else:
            r.skip(wire, end)
    r.finish(end, "ValueInfoProto")
    return value


def _parse_tensor_name(r: WireReader, end: int) -> str:
    """Return TensorProto.name, seeking over dims, raw_data, float_data and the rest."""
    name = ""
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 8:
            r.expect(wire, LEN, "TensorProto.name")
            name = r.string(end)
        else:
            r.skip(wire, end)
    r.finish(end, "TensorProto")
    return name


def _parse_sparse_tensor_name(r: WireReader, end: int) -> str:
    """A sparse initializer is named by its ``values`` tensor."""
    name = ""
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            sub = r.submessage(wire, end, "SparseTensorProto.values")
            name = _parse_tensor_name(r, sub) or name
        else:
            r.skip(wire, end)
    r.finish(end, "SparseTensorProto")
    return name


def _parse_graph(r: WireReader, end: int, graph: _Graph) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 5:
            sub = r.submessage(wire, end, "GraphProto.initializer")
            graph.initializers.add(_parse_tensor_name(r, sub))
        elif field == 15:
            sub = r.submessage(wire, end, "GraphProto.sparse_initializer")
            graph.initializers.add(_parse_sparse_tensor_name(r, sub))
        elif field == 11:
            sub = r.submessage(wire, end, "GraphProto.input")
            graph.inputs.append(_parse_value_info(r, sub))
        elif field == 12:
            sub = r.submessage(wire, end, "GraphProto.output")
            graph.outputs.append(_parse_value_info(r, sub))
        elif field == 1:
            # Nodes are irrelevant to the signature; check the wire type, then seek.
            r.expect(wire, LEN, "GraphProto.node")
            r.skip(wire, end)
        else:
            r.skip(wire, end)
    r.finish(end, "GraphProto")


def _parse_opset(r: WireReader, end: int) -> tuple[str, int]:
    domain, version = "", 0
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            r.expect(wire, LEN, "OperatorSetIdProto.domain")
            domain = r.string(end)
        elif field == 2:
            r.expect(wire, VARINT, "OperatorSetIdProto.version")
            version = r.int64(end)
        else:
            r.skip(wire, end)
    r.finish(end, "OperatorSetIdProto")
    return domain, version


def _parse_model(r: WireReader) -> OnnxIO:
    end = r.size
    ir_version: int | None = None
    opset: int | None = None
    graph: _Graph | None = None
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            r.expect(wire, VARINT, "ModelProto.ir_version")
            ir_version = r.int64(end)
        elif field == 7:
            sub = r.submessage(wire, end, "ModelProto.graph")
            if graph is None:
                graph = _Graph()
            _parse_graph(r, sub, graph)
        elif field == 8:
            sub = r.submessage(wire, end, "ModelProto.opset_import")
            domain, version = _parse_opset(r, sub)
            if domain in ("", "ai.onnx"):
                opset = version
        else:
            r.skip(wire, end)
    r.finish(end, "ModelProto")
    if ir_version is None or ir_version < 1:
        raise Malformed("no ir_version (not an ONNX ModelProto)")
    if graph is None:
        raise Malformed("no graph (not an ONNX ModelProto)")
    inputs = [v.info() for v in graph.inputs if v.name not in graph.initializers]
    outputs = [v.info() for v in graph.outputs]
    return OnnxIO(inputs=inputs, outputs=outputs, opset=opset, ir_version=ir_version)


def read_io(path: str | os.PathLike[str]) -> OnnxIO:
    """Read the input/output signature, opset and IR version of the ONNX file at ``path``.

    Reads only the ``.onnx`` file (external data is never opened) and only a few
    KiB of it, whatever the size of the weights.

    Raises:
        ValueError: the file is empty, truncated or not an ONNX ModelProto; the
            one-line message names the file.
        OSError: the file cannot be opened or read.
    """
    shown = os.fspath(path)
    with open(path, "rb", buffering=0) as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            raise ValueError(f"{shown} is not a valid ONNX model: the file is empty")
        try:
            return _parse_model(file_reader(f, size))
        except Malformed as exc:
            raise ValueError(f"{shown} is not a valid ONNX model: {exc}") from None
