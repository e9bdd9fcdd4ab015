"""The content-addressed blob store (`layout.blob`).

The same class serves a user's store (FF_HOME) and a registry directory, so both
have one layout and one set of guarantees: a blob is hashed exactly once, while its
bytes are copied or received; it only becomes visible under its digest after fsync
and an atomic rename; it is read-only; and a blob that exists is never rewritten,
so identical files across models and versions share one copy. Writers need no lock:
two processes ingesting the same bytes rename identical files onto one name.
"""

import contextlib
import errno
import itertools
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ffstore import fsutil, layout
from ffstore.digests import check_digest, digest_bytes, digest_file, digest_of_hash, hash_file, new_hash
from ffstore.errors import FFError, VerificationError

CHUNK = 4 << 20
QUEUE_DEPTH = 4
READ_ONLY = 0o444
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


Contents = bytes | mmap.mmap
"""A blob read whole: the bytes, in memory that belongs to this process alone."""

Reader = Callable[[memoryview], int]
"""Fills the start of a buffer with the next bytes of a stream and says how many;
0 at the end. A file's or a response's `readinto`."""


class HashingWriter:
    """Pulls a stream through a small ring of reused buffers: the caller's thread
    reads each chunk in and writes it out, while a background thread hashes it.
    Reading and writing are copies the kernel does with the GIL released, SHA-256 is
    the costly part, so the two threads overlap and the bytes are hashed exactly once.
    Reusing buffers spares allocating and page-faulting one per chunk, and reading
    into them spares a copy between whoever received the bytes and the store."""

    def __init__(self, handle: BinaryIO, limit: int | None = None, resume: bool = False) -> None:
        """With `resume`, `handle` (opened "r+b") already holds the start of the stream,
        an interrupted download: those bytes are hashed from disk and new ones appended."""
        self._handle = handle
        self._hash = hash_file(handle) if resume else new_hash()
        self._limit = limit
        self.size = handle.tell() if resume else 0
        self._error: BaseException | None = None
        # A buffer is free again once the hasher is past it: QUEUE_DEPTH queued, one
        # being hashed, one being read into. Made on first use, so a small file
        # costs one buffer, not the whole ring.
        self._ring: list[memoryview] = []
        self._pending: queue.Queue[memoryview | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._hasher = threading.Thread(target=self._hash_pending, daemon=True)
        self._hasher.start()

    def _hash_pending(self) -> None:
        while (chunk := self._pending.get()) is not None:
            if self._error is None:
                try:
                    self._hash.update(chunk)
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc

    def consume(self, read: Reader) -> str:
        """Read, write and hash until `read` reports the end; the digest. Never reads
        more than one byte past `limit`, so a server sending endless data is cut off
        without the store taking the excess."""
        try:
            for turn in itertools.count():
                if turn < QUEUE_DEPTH + 2:
                    self._ring.append(memoryview(bytearray(CHUNK)))
                buffer = self._ring[turn % len(self._ring)]
                if self._limit is not None:
                    buffer = buffer[:max(1, min(CHUNK, self._limit - self.size + 1))]
                count, failure = _fill(read, buffer)
                self.size += count
                if self._limit is not None and self.size > self._limit:
                    raise VerificationError(f"received more than the expected {self._limit} bytes")
                if self._error is not None:
                    raise self._error
                if count:
                    self._pending.put(buffer[:count])
                    # Written even when the stream then failed: a resumed download
                    # continues after these bytes.
                    self._handle.write(buffer[:count])
                if failure is not None:
                    raise failure
                if count < len(buffer):
                    break
        finally:
            self._pending.put(None)
            self._hasher.join()
        if self._error is not None:
            raise self._error
        return digest_of_hash(self._hash)


def _fill(read: Reader, buffer: memoryview) -> tuple[int, Exception | None]:
    """Fill `buffer` as far as the stream allows (a socket hands over what has
    arrived; chunks as large as the buffer keep the per-chunk work small). Short only
    at the end of the stream or when reading failed, and then the failure comes back
    with the bytes that did arrive, so the caller keeps them."""
    filled = 0
    try:
        while filled < len(buffer) and (count := read(buffer[filled:])):
            filled += count
    except Exception as exc:
        return filled, exc
    return filled, None


def _link(source: Path, temp: Path) -> bool:
    try:
        if source.stat().st_mode & 0o222:
            return False  # a writable source could change under the store
        os.link(source, temp)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    return True


def _clone(source: Path, temp: Path) -> bool:
    import fcntl

    with open(source, "rb") as origin, open(temp, "wb") as clone:
        try:
            fcntl.ioctl(clone.fileno(), FICLONE, origin.fileno())
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL,
                             errno.ENOSYS, errno.EBADF):
                return False
            raise
    return True


class Ingested(NamedTuple):
    digest: str
    size: int
    added: bool  # False when the same bytes were already stored


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / layout.BLOBS
        self.temp_dir = self.root / layout.TMP

    def path(self, digest: str) -> Path:
        return self.root / layout.blob(digest)

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            stat = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def ingest_file(self, source: Path, expected: str | None = None,
                    expected_size: int | None = None) -> Ingested:
        """Copy `source` into the store, hashing it in the same pass."""
        with open(source, "rb", buffering=0) as handle:
            return self.ingest(handle.readinto, expected, expected_size)

    def ingest(self, read: Reader, expected: str | None = None,
               expected_size: int | None = None) -> Ingested:
        """Write a stream into the store. With `expected`, the bytes must hash to it and
        number exactly `expected_size`; otherwise nothing becomes visible."""
        if expected is not None:
            check_digest(expected)
        with fsutil.temp_file(self.temp_dir) as (handle, temp):
            writer = HashingWriter(handle, expected_size)
            digest = writer.consume(read)
            self._check(digest, writer.size, expected, expected_size)
            added = self._publish(handle, temp, digest)
        return Ingested(digest, writer.size, added)

    def ingest_resumed(self, partial: Path, read: Reader, expected: str,
                       expected_size: int) -> Ingested:
        """Finish an interrupted download. `partial` (on the store's filesystem but
        outside the blob namespace) holds a prefix of the blob: it is hashed from disk,
        the rest (from `read`) is hashed as it is appended, and the file becomes the
        blob only if digest and size match. On failure the appended bytes stay, so the
        caller can resume again, or truncate the file when its bytes proved wrong."""
        check_digest(expected)
        with fsutil.naming(partial.parent), open(partial, "r+b") as handle:
            writer = HashingWriter(handle, expected_size, resume=True)
            digest = writer.consume(read)
            self._check(digest, writer.size, expected, expected_size)
            added = self._publish(handle, partial, digest)
        return Ingested(digest, writer.size, added)

    def adopt_file(self, source: Path, expected: str, expected_size: int) -> bool:
        """Bring in a file from the same filesystem without copying its bytes, and
        verify it by reading it once. A read-only source is hard-linked (O(1); the
        registry and the store then share one inode, which is why only files nobody
        can write are linked); otherwise a copy-on-write clone is tried (FICLONE:
        btrfs, XFS). Returns False when neither works, so the caller copies."""
        check_digest(expected)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        temp = self.temp_dir / f"{fsutil.TEMP_PREFIX}adopt-{os.getpid()}-{threading.get_ident()}"
        temp.unlink(missing_ok=True)
        try:
            if not (_link(source, temp) or _clone(source, temp)):
                return False
            with open(temp, "rb") as adopted:
                digest = digest_file(adopted)
                self._check(digest, os.fstat(adopted.fileno()).st_size, expected, expected_size)
                self._publish(adopted, temp, digest)
        finally:
            temp.unlink(missing_ok=True)
        return True

    @staticmethod
    def _check(digest: str, size: int, expected: str | None, expected_size: int | None) -> None:
        if expected_size is not None and size != expected_size:
            raise VerificationError(
                f"blob {expected or digest} has {size} bytes, expected {expected_size}")
        if expected is not None and digest != expected:
            raise VerificationError(f"blob content hashes to {digest}, expected {expected}")

    def _publish(self, handle: BinaryIO, temp: Path, digest: str) -> bool:
        """Move a verified temp file to its digest's name (fsync, read-only, rename)."""
        destination = self.path(digest)
        handle.flush()  # the last chunk may still sit in the file object's buffer
        with contextlib.suppress(FileNotFoundError):
            if destination.stat().st_size == os.fstat(handle.fileno()).st_size and (
                    self.rehash(digest) == digest):
                temp.unlink()  # deduplicated: the same bytes are already stored
                return False
            # else a damaged copy (truncated, flipped bits) sits there: the verified
            # one replaces it (a hard link to the damaged file elsewhere keeps it)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        # A hard-linked file is already read-only; chmod would change the source too.
        mode = READ_ONLY if temp.stat().st_mode & 0o222 else None
        fsutil.commit(handle, temp, destination, mode)
        return True

    def digests(self) -> Iterator[str]:
        if not self.blob_dir.is_dir():
            return
        for entry in sorted(self.blob_dir.iterdir()):
            digest = layout.digest_of(entry.name)
            if digest is not None:  # not temp files or strays
                yield digest

    def rehash(self, digest: str) -> str:
        with open(self.path(digest), "rb") as handle:
            return digest_file(handle)

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove temp files that killed writers left anywhere under the root."""
        fsutil.sweep_temp_files(self.root)

    def read(self, digest: str) -> Contents:
        """Read a blob and check it on those very bytes, so the caller can hand the
        same buffer on with no window between check and use."""
        data = self.read_unchecked(digest)
        self.check_bytes(data, digest)
        return data

    def read_unchecked(self, digest: str) -> Contents:
        """The blob's bytes, for a caller that runs `check_bytes` on them itself
        (overlapping it with other work) before anything uses them."""
        try:
            return _read_private(self.path(digest))
        except FileNotFoundError:
            raise FFError(f"blob {digest} is not in the store at {self.root}; run `ff sync`") from None

    @staticmethod
    def check_bytes(data: Contents, digest: str) -> None:
        _require(digest_bytes(data), digest)

    def check_stored(self, digest: str) -> None:
        """Re-hash a stored blob from disk (streaming, for files not loaded whole)."""
        _require(self.rehash(digest), digest)


def _read_private(path: Path) -> Contents:
    """The file's bytes in an anonymous mapping: private memory, so nothing done to the
    file after the read can change them. Reading a model into a fresh `bytes` costs a
    page fault every 4 KiB, more than the copy; a mapping that may use huge pages
    faults far less often, so the read is faster (bench/RESULTS.md, "Blob reads")."""
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            return b""
        # Private, not the default shared anonymous mapping, which Linux backs with
        # shmem: no huge pages there, and a fork would share it.
        memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux; EINVAL where THP is compiled out
            with contextlib.suppress(OSError):
                memory.madvise(mmap.MADV_HUGEPAGE)
        with memoryview(memory) as view:
            done = 0
            while done < size:  # one read stops at 2 GiB
                count = handle.readinto(view[done:])
                if not count:
                    raise FFError(f"{path} shrank while it was read; run `ff verify`")
                done += count
        return memory


def _require(actual: str, digest: str) -> None:
    if actual != digest:
        raise VerificationError(
            f"stored blob {digest} is corrupt (hashes to {actual}); run `ff verify` then `ff sync`")
