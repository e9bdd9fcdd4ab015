"""The runtime's reads of verified model bytes: inswapper's emap, and the weights
onnxruntime can take without copying them.

Both read the protobuf wire format with ffstore.onnxwire's bounded reader, so a
model that is truncated or not ONNX gives one ``ValueError`` and no numpy, onnx or
onnxruntime is needed to take a model apart: `last_initializer` finds inswapper's
``emap`` (the graph's last initializer, which no node uses), and `split_weights`
cuts the large ``raw_data`` fields out of a model so onnxruntime can take the
weights as views of those bytes. The graph around them is copied field by field
(the only writing done here), so what onnxruntime builds from is still exactly the
verified bytes.

Field numbers follow ``onnx.proto`` (checked against onnx 1.23):

* ModelProto: graph=7
* GraphProto: node=1, initializer=5
* NodeProto: input=1
* TensorProto: dims=1, data_type=2, float_data=4, name=8, raw_data=9,
  external_data=13, data_location=14; other storage: segment=3, int32_data=5,
  string_data=6, int64_data=7, double_data=10, uint64_data=11
* StringStringEntryProto (an external_data entry): key=1, value=2

Protobuf merge semantics are honoured as in ffstore.onnxinfo: a graph that appears
twice is merged (its initializers append), a later scalar replaces an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ffstore.blobs import Contents
from ffstore.onnxwire import I32, LEN, VARINT, Malformed, WireReader, memory_reader

__all__ = ["ITEM_SIZES", "InlineWeight", "Tensor", "last_initializer", "split_weights"]


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


def _parse_tensor_fields(r: WireReader, end: int) -> _TensorFields:
    t = _TensorFields()
    while r.pos < end:
        at = r.pos
        field_, wire = r.tag(end)
        if field_ == 1:
            if wire == LEN:  # packed
                sub = r.submessage(wire, end, "TensorProto.dims")
                while r.pos < sub:
                    t.dims.append(r.int64(sub))
            else:
                r.expect(wire, VARINT, "TensorProto.dims")
                t.dims.append(r.int64(end))
        elif field_ == 2:
            r.expect(wire, VARINT, "TensorProto.data_type")
            t.data_type = r.int32(end)
        elif field_ == 4:
            if wire == LEN:  # packed: already little-endian float32
                chunk = r.blob(end)
                if len(chunk) % 4:
                    raise Malformed(f"packed float_data before offset {r.pos} is not whole floats")
                t.floats.append(chunk)
            else:
                r.expect(wire, I32, "TensorProto.float_data")
                t.floats.append(r.take(4, end))
        elif field_ == 8:
            r.expect(wire, LEN, "TensorProto.name")
            t.name = r.string(end)
        elif field_ == 9:
            r.expect(wire, LEN, "TensorProto.raw_data")
            payload_end = r.submessage(wire, end, "TensorProto.raw_data")
            t.raw = (at, r.pos, payload_end)
            t.raws += 1
            r.pos = payload_end
        elif field_ == 14:
            r.expect(wire, VARINT, "TensorProto.data_location")
            if r.int32(end) == _EXTERNAL:
                t.other = True
        else:
            t.other = t.other or field_ in _OTHER_STORAGE
            r.skip(wire, end)
    r.finish(end, "TensorProto")
    return t


def _parse_tensor(r: WireReader, end: int) -> Tensor | None:
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


def _last_initializer_span(r: WireReader) -> tuple[int, int] | None:
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
            r.finish(graph_end, "GraphProto")
        else:
            r.skip(wire, end)
    r.finish(end, "ModelProto")
    if not graph_seen:
        raise Malformed("no graph (not an ONNX ModelProto)")
    return span


def _model_reader(data: Contents) -> WireReader:
    """A reader over a whole model in memory. Empty bytes are refused here: to the
    wire format they are a valid, empty message."""
    if not data:
        raise ValueError("not a valid ONNX model: it is empty")
    return memory_reader(data)


def last_initializer(data: Contents) -> Tensor | None:
    """The ONNX model's last dense initializer (``graph.initializer[-1]``).

    ``data`` is the whole model, in memory. Only that tensor's bytes are read;
    everything else is skipped. Returns ``None`` when the graph has no initializer
    or when the last one's data is not stored inline as ``raw_data`` or float32
    ``float_data`` (external data, int64_data, string_data ...).

    Raises:
        ValueError: the bytes are empty, truncated or not an ONNX ModelProto.
    """
    r = _model_reader(data)
    try:
        span = _last_initializer_span(r)
        if span is None:
            return None
        r.pos = span[0]
        return _parse_tensor(r, span[1])
    except Malformed as exc:
        raise ValueError(f"not a valid ONNX model: {exc}") from None


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
    return [_varint_bytes(number << 3 | LEN), _varint_bytes(size), *parts]


def _external_reference(location: str) -> bytes:
    """TensorProto fields external_data={location: ...} and data_location=EXTERNAL."""
    entry = b"".join([*_len_field(1, [b"location"]), *_len_field(2, [location.encode()])])
    return b"".join([*_len_field(13, [entry]), _varint_bytes(14 << 3 | VARINT), bytes([_EXTERNAL])])


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


def _node_inputs(r: WireReader, end: int) -> set[str]:
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
                r.expect(nwire, LEN, "NodeProto.input")
                names.add(r.string(node_end))
            else:
                r.skip(nwire, node_end)
        r.finish(node_end, "NodeProto")
    return names


def _split_graph(r: WireReader, end: int, view: memoryview, reference: bytes, minimum: int,
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
    r.finish(end, "GraphProto")
    return parts


def split_weights(data: Contents, location: str,
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
    r = _model_reader(data)
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
        r.finish(r.size, "ModelProto")
    except Malformed as exc:
        raise ValueError(f"not a valid ONNX model: {exc}") from None
    if not weights and isinstance(data, bytes):
        return data, []
    return b"".join(parts), weights
