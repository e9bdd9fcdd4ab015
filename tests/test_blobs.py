"""The blob store's own guarantees, below the CLI."""

import os
import stat
from pathlib import Path

import pytest

from ffstore.blobs import CHUNK, BlobStore
from ffstore.errors import VerificationError


@pytest.mark.parametrize("size", [0, 100, CHUNK, CHUNK + 100])
def test_same_bytes_are_stored_once_and_read_only(tmp_path: Path, size: int) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(size))
    store = BlobStore(tmp_path / "store")
    first = store.ingest_file(source)
    inode = store.path(first.digest).stat().st_ino
    again = store.ingest_file(source)
    assert first.added and not again.added and again.digest == first.digest
    assert store.path(first.digest).stat().st_ino == inode  # not rewritten
    assert not stat.S_IMODE(store.path(first.digest).stat().st_mode) & 0o222
    assert bytes(store.read(first.digest)) == source.read_bytes()


def test_a_blob_read_whole_is_private_memory(tmp_path: Path) -> None:
    """What `read_unchecked` returns is checked and handed on later (to onnxruntime):
    a change to the file after the read must not reach it."""
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 * CHUNK + 5))
    store = BlobStore(tmp_path / "store")
    digest = store.ingest_file(source).digest
    data = store.read_unchecked(digest)
    blob = store.path(digest)
    blob.chmod(0o644)
    with open(blob, "r+b") as handle:  # in place, as a misbehaving process could
        handle.seek(CHUNK)
        handle.write(b"\0" * 4096)
    store.check_bytes(data, digest)
    assert bytes(data) == source.read_bytes()
    with pytest.raises(VerificationError, match="corrupt"):
        store.read(digest)


def test_wrong_bytes_never_become_visible(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"x" * 1000)
    store = BlobStore(tmp_path / "store")
    with pytest.raises(VerificationError, match="hashes to"):
        store.ingest_file(source, "sha256:" + "0" * 64, 1000)
    with pytest.raises(VerificationError, match="expected 999"):
        store.ingest_file(source, "sha256:" + "0" * 64, 999)
    assert list(store.digests()) == []
    assert [p.name for p in (tmp_path / "store" / "tmp").iterdir()] == []
