"""The bounded reader of untrusted protobuf bytes.

ONNX files are protobuf messages, and the ones ff reads come from registries and
disks it does not trust: the store reads a model's signature before anything has
vouched for it, and the runtime cuts apart bytes that are verified but were still
written by someone else. Models can be well over a gigabyte, and the store's verbs
must start fast without onnx, onnxruntime or numpy, so ff reads the wire format
itself with :class:`WireReader`, which touches only the bytes a parser asks for:

* a length-delimited field the parser does not need (nodes, ``raw_data``, packed
  ``float_data`` ...) is skipped by moving the position, never read, so memory use
  and bytes read stay small whatever the size of the weights;
* every length and varint is checked against the end of its enclosing message (and
  so against the size of the bytes) before anything is read or allocated, so a
  truncated or garbage input raises :class:`Malformed` quickly instead of hanging
  or allocating huge buffers;
* it is stricter than protobuf where only garbage differs: groups, a known field
  with the wrong wire type (:meth:`WireReader.expect`), a string that is not UTF-8
  or implausibly long.

The parsers built on it (ffstore.onnxinfo for the signature, ffswap.weights for the
runtime's weights) walk the messages and honour protobuf's merge semantics; the
reader gives them int32 fields truncated to 32 bits, as protobuf's own parsers do.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["I32", "I64", "LEN", "VARINT", "Malformed", "WireReader", "file_reader", "memory_reader"]

# Wire types (protobuf encoding spec). 3 and 4, the deprecated groups, are refused:
# onnx.proto never uses them.
VARINT, I64, LEN, I32 = 0, 1, 2, 5

# Bytes fetched per refill. Small, because after every skipped weight the next
# read starts somewhere new; a page is what the OS would fetch anyway.
_CHUNK = 4096
# No real ONNX name, dim_param or domain comes near this; refusing longer ones
# keeps a garbage length from making us allocate most of a huge file.
_MAX_STRING = 1 << 20
_MAX_FIELD = (1 << 29) - 1
_U64 = (1 << 64) - 1


class Malformed(Exception):
    """The bytes are not well-formed protobuf, or not the message being parsed.

    The reader knows only offsets: callers turn this into a ``ValueError`` that
    names what was read (a file, a model in memory).
    """


class WireReader:
    """Random-access protobuf reader with a small read-ahead window.

    It keeps one window of at most a few KiB, taken with ``read_at(pos, n)`` (a
    file's, or a slice of bytes in memory); skipping a field only moves ``pos``,
    so skipped bytes are never read. Every read takes ``end``, the end of the
    message being parsed, and refuses to cross it.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], size: int) -> None:
        self._read_at = read_at
        self.size = size
        self.pos = 0
        self._buf = b""
        self._bstart = 0

    def _window(self, pos: int, n: int) -> None:
        """Make the window cover [pos, pos + n), clipped to the size."""
        n = min(n, self.size - pos)
        if self._bstart <= pos and pos + n <= self._bstart + len(self._buf):
            return
        window = self._read_at(pos, min(max(n, _CHUNK), self.size - pos))
        if len(window) < n:
            # The file shrank under us after we took its size.
            raise Malformed(f"file ends at offset {pos + len(window)} while reading")
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
                    raise Malformed(f"varint at offset {self.pos} runs past its message")
                raise Malformed(f"varint at offset {self.pos} is longer than 10 bytes")
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
            raise Malformed(f"invalid field number {field} at offset {at}")
        return field, wire

    def length(self, end: int) -> int:
        """Read a length prefix and check the payload fits before ``end``."""
        at = self.pos
        n = self.varint(end)
        if n > end - self.pos:
            raise Malformed(
                f"field at offset {at} claims {n} bytes but only {end - self.pos} remain"
            )
        return n

    def string(self, end: int) -> str:
        """Read a length-delimited UTF-8 string (names, dim_param, domain)."""
        at = self.pos
        n = self.length(end)
        if n > _MAX_STRING:
            raise Malformed(f"string at offset {at} is implausibly long ({n} bytes)")
        self._window(self.pos, n)
        i = self.pos - self._bstart
        raw = self._buf[i : i + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(f"string at offset {at} is not UTF-8") from None

    def take(self, n: int, end: int) -> bytes:
        """Read the next ``n`` bytes, which must lie before ``end``."""
        if n > end - self.pos:
            raise Malformed(f"field at offset {self.pos} runs past its message")
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
        if wire == VARINT:
            self.varint(end)
            return
        if wire == LEN:
            n = self.length(end)
        elif wire == I64:
            n = 8
        elif wire == I32:
            n = 4
        else:
            # Groups (3, 4) are deprecated and never used by onnx.proto; 6, 7 don't exist.
            raise Malformed(f"unsupported wire type {wire} at offset {self.pos}")
        if n > end - self.pos:
            raise Malformed(f"field at offset {self.pos} runs past its message")
        self.pos += n

    def submessage(self, wire: int, end: int, what: str) -> int:
        """Check ``wire`` is LEN, read the length and return the submessage's end."""
        if wire != LEN:
            raise Malformed(f"{what} at offset {self.pos} has wire type {wire}, expected 2")
        n = self.length(end)
        return self.pos + n

    def expect(self, wire: int, expected: int, what: str) -> None:
        """Reject a known field carrying the wrong wire type: a strong sign of garbage."""
        if wire != expected:
            raise Malformed(f"{what} at offset {self.pos} has wire type {wire}, expected {expected}")

    def finish(self, end: int, what: str) -> None:
        """A message's last field must end exactly at the message's end."""
        if self.pos != end:
            raise Malformed(f"{what} overruns its length (ends at {self.pos}, expected {end})")


def file_reader(f: BinaryIO, size: int) -> WireReader:
    """A reader over the first ``size`` bytes of an open file, which it seeks in.

    A file that turns out shorter than ``size`` (it shrank after the caller took
    its size) raises :class:`Malformed` when the reader gets there.
    """

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

    return WireReader(read_at, size)


def memory_reader(data: bytes | mmap.mmap) -> WireReader:
    """A reader over bytes in memory: it slices, so threads share no position."""
    return WireReader(lambda pos, n: data[pos:pos + n], len(data))
