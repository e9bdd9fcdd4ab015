"""The content-addressed blob store: `<root>/blobs/sha256/<hex>`.

The same class serves a user's store (FF_HOME) and a registry directory, so both
have one layout and one set of guarantees: a blob is hashed exactly once, while its
bytes are copied or received; it only becomes visible under its digest after fsync
and an atomic rename; it is read-only; and a blob that exists is never rewritten,
so identical files across models and versions share one copy. Writers need no lock:
two processes ingesting the same bytes rename identical files onto one name.
"""

import errno
import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ffstore import fsutil
from ffstore.digests import check_digest, hex_part
from ffstore.errors import FFError, VerificationError

CHUNK = 4 << 20
READ_ONLY = 0o444
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


class HashingWriter:
    """Hashes chunks on the caller's thread while a background thread writes the
    previous ones, so hashing (the slow part) overlaps the disk write."""

    def __init__(self, handle: BinaryIO, limit: int | None = None, resume: bool = False) -> None:
        """With `resume`, `handle` (opened "r+b") already holds the start of the stream,
        an interrupted download: those bytes are hashed from disk and new ones appended."""
        self._handle = handle
        self._hash = hashlib.file_digest(handle, "sha256") if resume else hashlib.sha256()
        self._limit = limit
        self.size = handle.tell() if resume else 0
        self._pending: queue.Queue[memoryview | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while (chunk := self._pending.get()) is not None:
            if self._error is None:
                try:
                    self._handle.write(chunk)
                except BaseException as exc:  # re-raised on the caller's thread
                    self._error = exc

    def write(self, chunk: bytes | memoryview) -> None:
        """Hash and queue `chunk`. The caller must not reuse the chunk's memory
        until `finish` returns; `ingest_file` keeps a pool of buffers for that."""
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            raise VerificationError(f"received more than the expected {self._limit} bytes")
        if self._error is not None:
            raise self._error
        self._hash.update(chunk)
        self._pending.put(memoryview(chunk))

    def finish(self) -> str:
        self._pending.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return f"sha256:{self._hash.hexdigest()}"

    def abort(self) -> None:
        self._pending.put(None)
        self._thread.join()


def _read_chunks(source: BinaryIO) -> Iterator[memoryview]:
    """Read into a small ring of reused buffers; with the writer's queue bound this
    avoids allocating (and page-faulting) a fresh buffer for every chunk."""
    ring = [bytearray(CHUNK) for _ in range(6)]
    turn = 0
    while True:
        buffer = ring[turn % len(ring)]
        count = source.readinto(buffer)
        if not count:
            return
        turn += 1
        yield memoryview(buffer)[:count]


class Ingested(NamedTuple):
    digest: str
    size: int
    added: bool  # False when the same bytes were already stored


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "blobs" / "sha256"
        self.temp_dir = self.root / "tmp"

    def path(self, digest: str) -> Path:
        return self.blob_dir / hex_part(digest)

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            stat = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or stat.st_size == size

    def ingest_file(self, source: Path, expected: str | None = None,
                    expected_size: int | None = None) -> Ingested:
        """Copy `source` into the store, hashing it in the same pass."""
        with open(source, "rb") as handle:
            return self.ingest_chunks(_read_chunks(handle), expected, expected_size)

    def ingest_chunks(self, chunks: Iterable[bytes | memoryview], expected: str | None = None,
                      expected_size: int | None = None) -> Ingested:
        """Write a stream into the store. With `expected`, the bytes must hash to it and
        number exactly `expected_size`; otherwise nothing becomes visible."""
        if expected is not None:
            check_digest(expected)
        with fsutil.temp_file(self.temp_dir) as (handle, temp):
            writer = HashingWriter(handle, expected_size)
            digest = self._feed(writer, chunks)
            self._check(digest, writer.size, expected, expected_size)
            added = self._publish(handle, temp, digest)
        return Ingested(digest, writer.size, added)

    def ingest_resumed(self, partial: Path, chunks: Iterable[bytes | memoryview], expected: str,
                       expected_size: int) -> Ingested:
        """Finish an interrupted download. `partial` (on the store's filesystem but
        outside the blob namespace) holds a prefix of the blob: it is hashed from disk,
        `chunks` (the rest) are hashed as they are appended, and the file becomes the
        blob only if digest and size match. On failure the appended bytes stay, so the
        caller can resume again, or truncate the file when its bytes proved wrong."""
        check_digest(expected)
        with open(partial, "r+b") as handle:
            writer = HashingWriter(handle, expected_size, resume=True)
            digest = self._feed(writer, chunks)
            self._check(digest, writer.size, expected, expected_size)
            added = self._publish(handle, partial, digest)
        return Ingested(digest, writer.size, added)

    @staticmethod
    def _feed(writer: HashingWriter, chunks: Iterable[bytes | memoryview]) -> str:
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.finish()

    def clone_file(self, source: Path, expected: str, expected_size: int) -> bool:
        """Bring a file in by copy-on-write clone (FICLONE: O(1) in bytes written on
        btrfs, XFS and similar) and verify it by reading it once. The clone is an
        independent copy, unlike a hard link, so damage to the source never reaches
        the store. Returns False where the filesystem cannot clone; the caller copies."""
        import fcntl

        check_digest(expected)
        with fsutil.temp_file(self.temp_dir) as (handle, temp), open(source, "rb") as origin:
            try:
                fcntl.ioctl(handle.fileno(), FICLONE, origin.fileno())
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL,
                                 errno.ENOSYS, errno.EBADF):
                    temp.unlink()
                    return False
                raise
            with open(temp, "rb") as clone:
                digest = f"sha256:{hashlib.file_digest(clone, 'sha256').hexdigest()}"
            self._check(digest, temp.stat().st_size, expected, expected_size)
            self._publish(handle, temp, digest)
        return True

    @staticmethod
    def _check(digest: str, size: int, expected: str | None, expected_size: int | None) -> None:
        if expected_size is not None and size != expected_size:
            raise VerificationError(
                f"blob {expected or digest} has {size} bytes, expected {expected_size}")
        if expected is not None and digest != expected:
            raise VerificationError(f"blob content hashes to {digest}, expected {expected}")

    def _publish(self, handle: BinaryIO, temp: Path, digest: str) -> bool:
        destination = self.path(digest)
        if destination.exists():
            temp.unlink()  # deduplicated: the same bytes are already stored
            return False
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        fsutil.commit(handle, temp, destination, READ_ONLY)
        return True

    def digests(self) -> Iterator[str]:
        if not self.blob_dir.is_dir():
            return
        for entry in sorted(self.blob_dir.iterdir()):
            if not entry.name.startswith(fsutil.TEMP_PREFIX):
                yield f"sha256:{entry.name}"

    def rehash(self, digest: str) -> str:
        with open(self.path(digest), "rb") as handle:
            return f"sha256:{hashlib.file_digest(handle, 'sha256').hexdigest()}"

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def remove(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def sweep(self) -> None:
        fsutil.sweep_temp_files(self.temp_dir)

    def read(self, digest: str) -> bytes:
        """Read a blob and check it on those very bytes, so the caller can hand the
        same buffer on with no window between check and use."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise FFError(f"blob {digest} is not in the store at {self.root}; run `ff sync`") from None
        actual = f"sha256:{hashlib.sha256(data).hexdigest()}"
        if actual != digest:
            raise VerificationError(
                f"stored blob {digest} is corrupt (hashes to {actual}); run `ff verify` then `ff sync`")
        return data
