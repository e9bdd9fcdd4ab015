"""Read an ONNX model's signature and weights without onnx, onnxruntime or numpy.

When a model is published, the store records each ONNX file's input and output
names, shapes and dtypes in the signed manifest: that is the compatibility
contract lockfiles and the runtime check against. The store's verbs must start
fast and must not pull in heavy native packages, and models can be well over a
gigabyte, so this module reads the protobuf wire format itself and touches only
the few bytes it needs:

* every length-delimited field it does not need (nodes, ``raw_data``, packed
  ``float_data`` ...) is skipped by moving the file position, never read, so
  memory use and bytes read stay small whatever the size of the weights;
* every length and varint is checked against the end of its enclosing message
  (and so against the file size) before anything is read or allocated, so a
  truncated or garbage file raises :class:`ValueError` quickly instead of
  hanging or allocating huge buffers;
* only the ``.onnx`` file is opened; tensors stored as external data are just
  ``TensorProto`` records whose ``name`` we need, so external-data models work.

Field numbers follow ``onnx.proto`` (checked against onnx 1.23):

* ModelProto: ir_version=1, graph=7, opset_import=8
* OperatorSetIdProto: domain=1, version=2
* GraphProto: node=1, initializer=5, input=11, output=12, sparse_initializer=15
* SparseTensorProto: values=1 (a TensorProto)
* TensorProto: dims=1, data_type=2, float_data=4, name=8, raw_data=9,
  external_data=13, data_location=14; other storage: segment=3, int32_data=5,
  string_data=6, int64_data=7, double_data=10, uint64_data=11
* ValueInfoProto: name=1, type=2
* TypeProto: tensor_type=1; other members of its ``value`` oneof are
  sequence_type=4, map_type=5, opaque_type=7, sparse_tensor_type=8,
  optional_type=9
* TypeProto.Tensor: elem_type=1, shape=2
* TensorShapeProto: dim=1; Dimension: dim_value=1, dim_param=2

The runtime uses the same reader on model bytes it has verified: `last_initializer`
finds inswapper's ``emap``, and `split_weights` cuts the large ``raw_data`` fields
out of a model so onnxruntime can take the weights as views of those bytes (the
only writing done here: the graph around them is copied field by field).

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

import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TypedDict

__all__ = [
    "DTYPE_NAMES", "ITEM_SIZES", "InlineWeight", "OnnxIO", "Tensor", "TensorSpec", "last_initializer",
    "read_io", "split_weights",
]


class TensorSpec(TypedDict):
    """One graph input or output as recorded in the manifest.

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

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
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

# Wire types (protobuf encoding spec).
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

# Bytes fetched per refill. Small, because after every skipped weight the next
# read starts somewhere new; a page is what the OS would fetch anyway.
_CHUNK = 4096
# No real ONNX name, dim_param or domain comes near this; refusing longer ones
# keeps a garbage length from making us allocate most of a huge file.
_MAX_STRING = 1 << 20
_MAX_FIELD = (1 << 29) - 1
_U64 = (1 << 64) - 1

# TypeProto oneof members other than tensor_type: any of them makes the type
# "not a dense tensor" (last member seen wins, as with any protobuf oneof).
_TYPEPROTO_OTHER_VALUES = frozenset({4, 5, 7, 8, 9})


@dataclass(frozen=True)
class Tensor:
    """A dense initializer's header and little-endian element bytes.

    ``data`` is the ``raw_data`` field, or the ``float_data`` values re-encoded
    as float32 little-endian (the same bytes ``raw_data`` would hold).
    """

    name: str
    dims: list[int]
    data_type: int
    data: bytes = field(repr=False)


class _Malformed(Exception):
    """Internal: the bytes are not a well-formed ModelProto; read_io adds the file name."""


def _file_at(f: BinaryIO) -> Callable[[int, int], bytes]:
    """Up to ``n`` bytes of the file from ``pos``."""

    def read_at(pos: int, n: int) -> bytes:
        f.seek(pos)
        parts: list[bytes] = []
        got = 0
        while got < n:
            part = f.read(n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    return read_at


class _Reader:
    """Random-access protobuf reader with a small read-ahead window.

    It keeps one window of at most a few KiB, taken with ``read_at(pos, n)`` (a
    file's, or a slice of a model in memory); skipping a field only moves ``pos``,
    so skipped bytes are never read.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], size: int) -> None:
        self._read_at = read_at
        self.size = size
        self.pos = 0
        self._buf = b""
        self._bstart = 0

    def _window(self, pos: int, n: int) -> None:
        """Make the window cover [pos, pos + n), clipped to the file size."""
        n = min(n, self.size - pos)
        if self._bstart <= pos and pos + n <= self._bstart + len(self._buf):
            return
        window = self._read_at(pos, min(max(n, _CHUNK), self.size - pos))
        if len(window) < n:
            # The file shrank under us after we took its size.
            raise _Malformed(f"file ends at offset {pos + len(window)} while reading")
        self._buf = window
        self._bstart = pos

    def varint(self, end: int) -> int:
        """Decode a varint at ``pos`` that must finish before ``end`` (max 10 bytes)."""
        pos = self.pos
        i = pos - self._bstart
        buf = self._buf
        # Fast path: most varints (tags, short lengths) are one byte already in the window.
        if pos < end and 0 <= i < len(buf):
            b = buf[i]
            if b < 0x80:
                self.pos = pos + 1
                return b
        self._window(pos, 10)
        buf = self._buf
        i = pos - self._bstart
        limit = min(end, pos + 10)
        result = 0
        shift = 0
        while True:
            if pos >= limit:
                if pos >= end:
                    raise _Malformed(f"varint at offset {self.pos} runs past its message")
                raise _Malformed(f"varint at offset {self.pos} is longer than 10 bytes")
            b = buf[i]
            i += 1
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        self.pos = pos
        return result & _U64

    def int64(self, end: int) -> int:
        """Decode an int64 varint (negative values are 10-byte two's complement)."""
        v = self.varint(end)
        return v - (1 << 64) if v >= 1 << 63 else v

    def int32(self, end: int) -> int:
        """Decode an int32 varint, truncating to 32 bits as protobuf parsers do."""
        v = self.varint(end) & 0xFFFFFFFF
        return v - (1 << 32) if v >= 1 << 31 else v

    def tag(self, end: int) -> tuple[int, int]:
        """Read a field tag and return (field number, wire type)."""
        at = self.pos
        key = self.varint(end)
        field, wire = key >> 3, key & 7
        if field == 0 or field > _MAX_FIELD:
            raise _Malformed(f"invalid field number {field} at offset {at}")
        return field, wire

    def length(self, end: int) -> int:
        """Read a length prefix and check the payload fits before ``end``."""
        at = self.pos
        n = self.varint(end)
        if n > end - self.pos:
            raise _Malformed(
                f"field at offset {at} claims {n} bytes but only {end - self.pos} remain"
            )
        return n

    def string(self, end: int) -> str:
        """Read a length-delimited UTF-8 string (names, dim_param, domain)."""
        at = self.pos
        n = self.length(end)
        if n > _MAX_STRING:
            raise _Malformed(f"string at offset {at} is implausibly long ({n} bytes)")
        self._window(self.pos, n)
        i = self.pos - self._bstart
        raw = self._buf[i : i + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Malformed(f"string at offset {at} is not UTF-8") from None

    def take(self, n: int, end: int) -> bytes:
        """Read the next ``n`` bytes, which must lie before ``end``."""
        if n > end - self.pos:
            raise _Malformed(f"field at offset {self.pos} runs past its message")
        self._window(self.pos, n)
        i = self.pos - self._bstart
        raw = self._buf[i : i + n]
        self.pos += n
        return raw

    def blob(self, end: int) -> bytes:
        """Read a length-delimited payload of any size (bounded by ``end``)."""
        n = self.length(end)
        return self.take(n, end)

    def skip(self, wire: int, end: int) -> None:
        """Skip one field's payload without reading it (seek, for LEN fields)."""
        if wire == _VARINT:
            self.varint(end)
            return
        if wire == _LEN:
            n = self.length(end)
        elif wire == _I64:
            n = 8
        elif wire == _I32:
            n = 4
        else:
            # Groups (3, 4) are deprecated and never used by onnx.proto; 6, 7 don't exist.
            raise _Malformed(f"unsupported wire type {wire} at offset {self.pos}")
        if n > end - self.pos:
            raise _Malformed(f"field at offset {self.pos} runs past its message")
        self.pos += n

    def submessage(self, wire: int, end: int, what: str) -> int:
        """Check ``wire`` is LEN, read the length and return the submessage's end."""
        if wire != _LEN:
            raise _Malformed(f"{what} at offset {self.pos} has wire type {wire}, expected 2")
        n = self.length(end)
        return self.pos + n


def _expect(wire: int, expected: int, what: str, r: _Reader) -> None:
    """Reject a known field carrying the wrong wire type: a strong sign of garbage."""
    if wire != expected:
        raise _Malformed(f"{what} at offset {r.pos} has wire type {wire}, expected {expected}")


def _finish(r: _Reader, end: int, what: str) -> None:
    """A message's last field must end exactly at the message's end."""
    if r.pos != end:
        raise _Malformed(f"{what} overruns its length (ends at {r.pos}, expected {end})")


class _Value:
    """Mutable ValueInfoProto state while parsing (protobuf merges repeats into it)."""

    __slots__ = ("dims", "elem_type", "is_tensor", "name")

    def __init__(self) -> None:
        self.name = ""
        self.is_tensor = False
        self.elem_type = 0
        self.dims: list[int | str | None] = []

    def spec(self) -> TensorSpec:
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


def _parse_dimension(r: _Reader, end: int) -> int | str | None:
    dim: int | str | None = None
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            _expect(wire, _VARINT, "Dimension.dim_value", r)
            dim = r.int64(end)
        elif field == 2:
            _expect(wire, _LEN, "Dimension.dim_param", r)
            dim = r.string(end)
        else:
            r.skip(wire, end)
    _finish(r, end, "TensorShapeProto.Dimension")
    return dim


def _parse_shape(r: _Reader, end: int, value: _Value) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            sub = r.submessage(wire, end, "TensorShapeProto.dim")
            value.dims.append(_parse_dimension(r, sub))
        else:
            r.skip(wire, end)
    _finish(r, end, "TensorShapeProto")


def _parse_tensor_type(r: _Reader, end: int, value: _Value) -> None:
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            _expect(wire, _VARINT, "TypeProto.Tensor.elem_type", r)
            value.elem_type = r.int32(end)
        elif field == 2:
            _parse_shape(r, r.submessage(wire, end, "TypeProto.Tensor.shape"), value)
        else:
            r.skip(wire, end)
    _finish(r, end, "TypeProto.Tensor")


def _parse_type(r: _Reader, end: int, value: _Value) -> None:
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
    _finish(r, end, "TypeProto")


def _parse_value_info(r: _Reader, end: int) -> _Value:
    value = _Value()
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            _expect(wire, _LEN, "ValueInfoProto.name", r)
            value.name = r.string(end)
        elif field == 2:
            _parse_type(r, r.submessage(wire, end, "ValueInfoProto.type"), value)
        else:
            r.skip(wire, end)
    _finish(r, end, "ValueInfoProto")
    return value


def _parse_tensor_name(r: _Reader, end: int) -> str:
    """Return TensorProto.name, seeking over dims, raw_data, float_data and the rest."""
    name = ""
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 8:
            _expect(wire, _LEN, "TensorProto.name", r)
            name = r.string(end)
        else:
            r.skip(wire, end)
    _finish(r, end, "TensorProto")
    return name


def _parse_sparse_tensor_name(r: _Reader, end: int) -> str:
    """A sparse initializer is named by its ``values`` tensor."""
    name = ""
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            sub = r.submessage(wire, end, "SparseTensorProto.values")
            name = _parse_tensor_name(r, sub) or name
        else:
            r.skip(wire, end)
    _finish(r, end, "SparseTensorProto")
    return name


def _parse_graph(r: _Reader, end: int, graph: _Graph) -> None:
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
            _expect(wire, _LEN, "GraphProto.node", r)
            r.skip(wire, end)
        else:
            r.skip(wire, end)
    _finish(r, end, "GraphProto")


def _parse_opset(r: _Reader, end: int) -> tuple[str, int]:
    domain, version = "", 0
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            _expect(wire, _LEN, "OperatorSetIdProto.domain", r)
            domain = r.string(end)
        elif field == 2:
            _expect(wire, _VARINT, "OperatorSetIdProto.version", r)
            version = r.int64(end)
        else:
            r.skip(wire, end)
    _finish(r, end, "OperatorSetIdProto")
    return domain, version


def _parse_model(r: _Reader) -> OnnxIO:
    end = r.size
    ir_version: int | None = None
    opset: int | None = None
    graph: _Graph | None = None
    while r.pos < end:
        field, wire = r.tag(end)
        if field == 1:
            _expect(wire, _VARINT, "ModelProto.ir_version", r)
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
    _finish(r, end, "ModelProto")
    if ir_version is None or ir_version < 1:
        raise _Malformed("no ir_version (not an ONNX ModelProto)")
    if graph is None:
        raise _Malformed("no graph (not an ONNX ModelProto)")
    inputs = [v.spec() for v in graph.inputs if v.name not in graph.initializers]
    outputs = [v.spec() for v in graph.outputs]
    return OnnxIO(inputs=inputs, outputs=outputs, opset=opset, ir_version=ir_version)


# TensorProto storage fields other than raw_data/float_data, and data_location=EXTERNAL.
_OTHER_STORAGE = frozenset({3, 5, 6, 7, 10, 11, 13})
_EXTERNAL = 1


class _TensorFields:
    """A TensorProto's header, and where its data lies (parsed, not read)."""

    __slots__ = ("data_type", "dims", "floats", "name", "other", "raw", "raws")

    def __init__(self) -> None:
        self.name = ""
        self.data_type = 0
        self.dims: list[int] = []
        self.raw: tuple[int, int, int] | None = None
        """The last raw_data field: (tag offset, payload offset, payload end)."""
        self.raws = 0
        self.floats: list[bytes] = []
        self.other = False
        """Data stored anywhere but raw_data/float_data (external, int64_data ...)."""


def _parse_tensor_fields(r: _Reader, end: int) -> _TensorFields:
    t = _TensorFields()
    while r.pos < end:
        at = r.pos
        field_, wire = r.tag(end)
        if field_ == 1:
            if wire == _LEN:  # packed
                sub = r.submessage(wire, end, "TensorProto.dims")
                while r.pos < sub:
                    t.dims.append(r.int64(sub))
            else:
                _expect(wire, _VARINT, "TensorProto.dims", r)
                t.dims.append(r.int64(end))
        elif field_ == 2:
            _expect(wire, _VARINT, "TensorProto.data_type", r)
            t.data_type = r.int32(end)
        elif field_ == 4:
            if wire == _LEN:  # packed: already little-endian float32
                chunk = r.blob(end)
                if len(chunk) % 4:
                    raise _Malformed(f"packed float_data before offset {r.pos} is not whole floats")
                t.floats.append(chunk)
            else:
                _expect(wire, _I32, "TensorProto.float_data", r)
                t.floats.append(r.take(4, end))
        elif field_ == 8:
            _expect(wire, _LEN, "TensorProto.name", r)
            t.name = r.string(end)
        elif field_ == 9:
            _expect(wire, _LEN, "TensorProto.raw_data", r)
            payload_end = r.submessage(wire, end, "TensorProto.raw_data")
            t.raw = (at, r.pos, payload_end)
            t.raws += 1
            r.pos = payload_end
        elif field_ == 14:
            _expect(wire, _VARINT, "TensorProto.data_location", r)
            if r.int32(end) == _EXTERNAL:
                t.other = True
        else:
            t.other = t.other or field_ in _OTHER_STORAGE
            r.skip(wire, end)
    _finish(r, end, "TensorProto")
    return t


def _parse_tensor(r: _Reader, end: int) -> Tensor | None:
    """Parse a TensorProto; ``None`` unless its data is inline raw_data/float_data."""
    t = _parse_tensor_fields(r, end)
    if t.other:
        return None
    if t.raw is not None:
        _, start, stop = t.raw
        r.pos = start
        data = r.take(stop - start, stop)
    else:
        if t.floats and t.data_type != 1:
            return None  # float_data also carries complex64; keep to plain float32
        data = b"".join(t.floats)
    return Tensor(name=t.name, dims=t.dims, data_type=t.data_type, data=data)


def _last_initializer_span(r: _Reader) -> tuple[int, int] | None:
    """Where the model's last dense initializer lies (merged graphs append)."""
    end = r.size
    span: tuple[int, int] | None = None
    graph_seen = False
    while r.pos < end:
        field_, wire = r.tag(end)
        if field_ == 7:
            graph_end = r.submessage(wire, end, "ModelProto.graph")
            graph_seen = True
            while r.pos < graph_end:
                gfield, gwire = r.tag(graph_end)
                if gfield == 5:
                    sub = r.submessage(gwire, graph_end, "GraphProto.initializer")
                    span = (r.pos, sub)
                    r.pos = sub
                else:
                    r.skip(gwire, graph_end)
            _finish(r, graph_end, "GraphProto")
        else:
            r.skip(wire, end)
    _finish(r, end, "ModelProto")
    if not graph_seen:
        raise _Malformed("no graph (not an ONNX ModelProto)")
    return span


def _memory_reader(data: bytes | mmap.mmap) -> _Reader:
    """A reader over a model held in memory: it slices, so threads share no position."""
    if not data:
        raise ValueError("not a valid ONNX model: it is empty")
    return _Reader(lambda pos, n: data[pos:pos + n], len(data))


def last_initializer(data: bytes | mmap.mmap) -> Tensor | None:
    """The ONNX model's last dense initializer (``graph.initializer[-1]``).

    ``data`` is the whole model, in memory. Only that tensor's bytes are read;
    everything else is skipped. Returns ``None`` when the graph has no initializer
    or when the last one's data is not stored inline as ``raw_data`` or float32
    ``float_data`` (external data, int64_data, string_data ...).

    Raises:
        ValueError: the bytes are empty, truncated or not an ONNX ModelProto.
    """
    r = _memory_reader(data)
    try:
        span = _last_initializer_span(r)
        if span is None:
            return None
        r.pos = span[0]
        return _parse_tensor(r, span[1])
    except _Malformed as exc:
        raise ValueError(f"not a valid ONNX model: {exc}") from None


#: Bytes per element of the real and integer TensorProto data types NumPy holds
#: natively: the weights `split_weights` may move out of a model. Others (bfloat16,
#: float8, 4-bit, complex, string) stay where they are.
ITEM_SIZES: dict[int, int] = {
    1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
}


@dataclass(frozen=True)
class InlineWeight:
    """A dense initializer's ``raw_data``, by position in the model's bytes."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    offset: int
    length: int


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, parts: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """``parts`` wrapped as one length-delimited field ``number``."""
    size = sum(len(part) for part in parts)
    return [_varint_bytes(number << 3 | _LEN), _varint_bytes(size), *parts]


def _external_reference(location: str) -> bytes:
    """TensorProto fields external_data={location: ...} and data_location=EXTERNAL."""
    entry = b"".join([*_len_field(1, [b"location"]), *_len_field(2, [location.encode()])])
    return b"".join([*_len_field(13, [entry]), _varint_bytes(14 << 3 | _VARINT), bytes([_EXTERNAL])])


def _movable(t: _TensorFields, minimum: int) -> InlineWeight | None:
    """The tensor's raw_data when it can stand apart from the model as is."""
    if t.other or t.raw is None or t.raws != 1 or t.floats or any(d < 0 for d in t.dims):
        return None
    _, start, stop = t.raw
    count = 1
    for dim in t.dims:
        count *= dim
    if stop - start < minimum or count * ITEM_SIZES.get(t.data_type, 0) != stop - start:
        return None
    return InlineWeight(t.name, t.data_type, tuple(t.dims), start, stop - start)


def _node_inputs(r: _Reader, end: int) -> set[str]:
    """Every name a node of this graph (not of its subgraphs) takes as input."""
    names: set[str] = set()
    while r.pos < end:
        field_, wire = r.tag(end)
        if field_ != 1:
            r.skip(wire, end)
            continue
        node_end = r.submessage(wire, end, "GraphProto.node")
        while r.pos < node_end:
            nfield, nwire = r.tag(node_end)
            if nfield == 1:
                _expect(nwire, _LEN, "NodeProto.input", r)
                names.add(r.string(node_end))
            else:
                r.skip(nwire, node_end)
        _finish(r, node_end, "NodeProto")
    return names


def _split_graph(r: _Reader, end: int, view: memoryview, reference: bytes, minimum: int,
                 weights: list[InlineWeight]) -> list[bytes | memoryview]:
    # Only weights a node takes can move: onnxruntime drops unused initializers before
    # it attaches external ones, and would then miss the name.
    start = r.pos
    used = _node_inputs(r, end)
    r.pos = start
    parts: list[bytes | memoryview] = []
    while r.pos < end:
        at = r.pos
        field_, wire = r.tag(end)
        if field_ != 5:
            r.skip(wire, end)
            parts.append(view[at:r.pos])
            continue
        sub = r.submessage(wire, end, "GraphProto.initializer")
        body = r.pos
        tensor = _parse_tensor_fields(r, sub)
        weight = _movable(tensor, minimum)
        if weight is None or tensor.raw is None or weight.name not in used:
            parts.append(view[at:sub])
            continue
        weights.append(weight)
        raw_field, _, raw_end = tensor.raw
        parts += _len_field(5, [view[body:raw_field], view[raw_end:sub], reference])
    _finish(r, end, "GraphProto")
    return parts


def split_weights(data: bytes | mmap.mmap, location: str,
                  minimum: int = 4096) -> tuple[bytes, list[InlineWeight]]:
    """The model with its large inline weights moved out, and where they lie in ``data``.

    onnxruntime, handed a model as bytes, copies every weight three times on the
    way to a session (into a C++ string, into the parsed protobuf, into tensors).
    Handed the graph alone, with each weight marked as external data at
    ``location`` and supplied as an external initializer viewing ``data``, it
    copies each weight once, and the bytes it builds from are still exactly the
    verified ones. Moved are the main graph's initializers of at least ``minimum``
    bytes that one of its nodes takes and whose ``raw_data`` matches their dims and
    a NumPy data type; everything else (small or unused tensors, subgraphs, typed
    storage, external data) stays byte for byte.
    ``data`` is returned as is when it is ``bytes`` and nothing moves.

    Raises:
        ValueError: the bytes are empty, truncated or not an ONNX ModelProto.
    """
    r = _memory_reader(data)
    view = memoryview(data)
    reference = _external_reference(location)
    weights: list[InlineWeight] = []
    parts: list[bytes | memoryview] = []
    try:
        while r.pos < r.size:
            at = r.pos
            field_, wire = r.tag(r.size)
            if field_ == 7:
                graph_end = r.submessage(wire, r.size, "ModelProto.graph")
                parts += _len_field(7, _split_graph(r, graph_end, view, reference, minimum, weights))
            else:
                r.skip(wire, r.size)
                parts.append(view[at:r.pos])
        _finish(r, r.size, "ModelProto")
    except _Malformed as exc:
        raise ValueError(f"not a valid ONNX model: {exc}") from None
    if not weights and isinstance(data, bytes):
        return data, []
    return b"".join(parts), weights


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
            return _parse_model(_Reader(_file_at(f), size))
        except _Malformed as exc:
            raise ValueError(f"{shown} is not a valid ONNX model: {exc}") from None
