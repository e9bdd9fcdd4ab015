"""`ff export facefusion`: the lock laid out as FaceFusion's `.assets/models`, with
real files and real hard links. Every check of an exported model is the one
FaceFusion itself runs: the `.hash` beside it, at get_hash_path, holds the CRC-32
of the whole file as `format(zlib.crc32(content), '08x')`."""

import errno
import json
import os
import shutil
import time
import tomllib
import zlib
from pathlib import Path

import pytest

from ffstore.canonical import canonical_bytes
from ffstore.context import open_context
from ffstore.export import export_facefusion
from ffstore.publish import Release, publish_releases
from ffstore.signing import load_key
from tests import standins
from tests.conftest import ULFD, YUNET, Workspace

SWAPPER = "inswapper_128.onnx"
DETECTOR = YUNET.name
SCOPED = "iperov/elon_musk_224.dfm"


def facefusion_hash_path(model: Path) -> Path:
    """FaceFusion's get_hash_path: the path without its last extension, plus .hash."""
    stem, _extension = os.path.splitext(model)
    return Path(stem + ".hash")


def facefusion_accepts(model: Path) -> bool:
    """FaceFusion's validate_hash, as it runs it at every start."""
    with open(facefusion_hash_path(model)) as hash_file, open(model, "rb") as model_file:
        return hash_file.read().strip() == format(zlib.crc32(model_file.read()), "08x")


def swappers(root: Path) -> list[Path]:
    """Two versions of a swapper stand-in, each under FaceFusion's file name."""
    paths = []
    for variant in (0, 1):
        path = root / f"swapper-{variant}" / SWAPPER
        path.parent.mkdir()
        path.write_bytes(standins.face_swapper(variant))
        paths.append(path)
    return paths


@pytest.fixture
def project(workspace: Workspace) -> Workspace:
    """inswapper_128 1.0.0 and 1.1.0 (locked: 1.1.0) and the real YuNet detector."""
    old, new = swappers(workspace.root)
    workspace.publish(old, "inswapper_128", "1.0.0", module="face_swapper")
    workspace.publish(new, "inswapper_128", "1.1.0", module="face_swapper")
    workspace.publish(YUNET, "yunet", "2026.5.0")
    workspace.write_toml({"face_swapper": ("inswapper_128", ">=1"),
                          "face_detector": ("yunet", ">=2026")})
    workspace.run("lock")
    return workspace


def models(workspace: Workspace, name: str = "facefusion") -> Path:
    return workspace.root / name / ".assets" / "models"


def export(workspace: Workspace, *flags: str, name: str = "facefusion", expect: int = 0):
    return workspace.run("export", "facefusion", str(workspace.root / name), *flags, expect=expect)


def blob(workspace: Workspace, module: str) -> Path:
    lock = tomllib.loads(workspace.lock_text)
    digest = lock["modules"][module]["files"][0]["digest"]
    return workspace.home / "blobs" / "sha256" / digest.split(":")[1]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under `folder`: content, inode and mode."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_ino, p.stat().st_mode)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def tamper(path: Path) -> None:
    """Flip one byte in place, as a stray writer would (mtime changes; the inode does not)."""
    time.sleep(0.02)  # past the file-time tick of the last write, as any later writer is
    path.chmod(0o644)
    with open(path, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_export_lays_out_what_facefusion_checks(project: Workspace) -> None:
    result = export(project)  # right after `ff lock`: export fetches what it needs
    folder = models(project)
    assert "face_swapper: inswapper_128 1.1.0 -> inswapper_128.onnx (linked)" in result.out
    assert "face_detector: yunet 2026.5.0 -> face_detection_yunet_2026may.onnx (linked)" in result.out
    assert (f"exported 2 files to {folder} (2 linked, 0 copied, 0 unchanged, 0 adopted; 2 hashed), "
            "removed 0") in result.out
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".ff-export.json", SWAPPER, "inswapper_128.hash", DETECTOR,
         "face_detection_yunet_2026may.hash"])
    for name, module in ((SWAPPER, "face_swapper"), (DETECTOR, "face_detector")):
        model = folder / name
        assert facefusion_accepts(model)
        assert facefusion_hash_path(model).read_bytes() == format(
            zlib.crc32(model.read_bytes()), "08x").encode()  # 8 lowercase digits, no newline
        assert model.samefile(blob(project, module))  # a hard link to the store blob
        assert model.stat().st_mode & 0o777 == 0o444
        assert facefusion_hash_path(model).stat().st_mode & 0o222 == 0
    assert (folder / SWAPPER).read_bytes() == (project.root / "swapper-1" / SWAPPER).read_bytes()

    record = (folder / ".ff-export.json").read_bytes()
    assert canonical_bytes(json.loads(record)) == record
    doc = json.loads(record)
    assert doc["type"] == "ff-export" and doc["project"] == str(project.project)
    assert doc["files"]["inswapper_128.hash"]["text"] == (folder / "inswapper_128.hash").read_text()
    assert doc["files"][SWAPPER]["ino"] == (folder / SWAPPER).stat().st_ino
    # The folder given as the models folder itself is the same export.
    again = project.run("export", "facefusion", str(folder), "-q")
    assert again.out == ""


def test_a_second_export_reads_no_blob(project: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    export(project)
    reads = []
    real = zlib.crc32
    monkeypatch.setattr(zlib, "crc32", lambda *args: reads.append(1) or real(*args))
    context = open_context(project.project)
    same = export_facefusion(context, project.root / "facefusion")
    assert (same.hashed, same.count("unchanged"), reads) == (0, 2, [])
    fresh = export_facefusion(context, project.root / "fresh")  # stamps hold: links only
    assert (fresh.hashed, fresh.count("linked"), reads) == (0, 2, [])
    assert all(facefusion_accepts(models(project, "fresh") / n) for n in (SWAPPER, DETECTOR))
    forced = export_facefusion(context, project.root / "fresh", rehash=True)
    assert forced.hashed == 2 and reads


def test_after_sync_the_first_export_needs_only_the_crc(project: Workspace,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync checked every blob's SHA-256 on receipt and stamped it: the first export
    reads each blob once for its CRC-32, at zlib's rate, and hashes no SHA-256."""
    project.run("sync")

    def no_sha(*args: object, **kwargs: object) -> None:
        raise AssertionError("the blob was hashed again")

    monkeypatch.setattr("ffstore.export.HashingWriter", no_sha)
    report = export_facefusion(open_context(project.project), project.root / "facefusion")
    assert (report.hashed, report.count("linked")) == (2, 2)
    assert all(facefusion_accepts(models(project) / name) for name in (SWAPPER, DETECTOR))


def test_rollback_switches_what_facefusion_loads(project: Workspace) -> None:
    export(project)
    model = models(project) / SWAPPER
    before = facefusion_hash_path(model).read_text()
    project.run("rollback", "face_swapper")
    result = export(project)
    assert "face_swapper: inswapper_128 1.0.0 -> inswapper_128.onnx (linked)" in result.out
    assert model.read_bytes() == (project.root / "swapper-0" / SWAPPER).read_bytes()
    assert facefusion_accepts(model) and facefusion_hash_path(model).read_text() != before
    assert model.samefile(blob(project, "face_swapper"))


def test_a_foreign_file_is_refused_unless_forced(project: Workspace) -> None:
    folder = models(project)
    folder.mkdir(parents=True)
    (folder / SWAPPER).write_bytes(b"FaceFusion's own download, other bytes")
    (folder / "notes.txt").write_text("keep me")
    before = snapshot(project.root / "facefusion")
    result = export(project, expect=1)
    lines = result.err.strip().splitlines()
    assert lines == [f"error: {folder / SWAPPER} is not ff's (it differs from inswapper_128 "
                     "1.1.0); move it away or pass --force"]
    assert snapshot(project.root / "facefusion") == before

    forced = export(project, "--force")
    assert "which was not ff's (--force)" in forced.err
    assert (folder / SWAPPER).samefile(blob(project, "face_swapper"))
    assert facefusion_accepts(folder / SWAPPER)
    assert (folder / "notes.txt").read_text() == "keep me"


def test_a_foreign_identical_file_is_adopted(project: Workspace) -> None:
    folder = models(project)
    folder.mkdir(parents=True)
    data = (project.root / "swapper-1" / SWAPPER).read_bytes()
    (folder / SWAPPER).write_bytes(data)  # FaceFusion downloaded the very file ff locks
    (folder / "inswapper_128.hash").write_text(format(zlib.crc32(data), "08x") + "\n")
    result = export(project)
    assert "inswapper_128.onnx (adopted)" in result.out and "1 adopted" in result.out
    assert (folder / SWAPPER).samefile(blob(project, "face_swapper"))
    assert (folder / "inswapper_128.hash").read_text() == format(zlib.crc32(data), "08x")


def test_files_the_lock_no_longer_names_are_removed(project: Workspace) -> None:
    scoped = project.root / "scoped" / SCOPED
    scoped.parent.mkdir(parents=True)
    scoped.write_bytes(ULFD["slim-320"].read_bytes())
    publish_releases(project.registry, [Release((scoped,), "iperov.elon_musk_224", "1.0.0",
                                                "deep_swapper", names=(SCOPED,))],
                     load_key(project.home / "keys", "alice"))
    project.write_toml({"face_swapper": ("inswapper_128", ">=1"),
                        "face_detector": ("yunet", ">=2026"),
                        "deep_swapper": ("iperov.elon_musk_224", ">=1")})
    project.run("lock")
    export(project)
    folder = models(project)
    assert facefusion_accepts(folder / SCOPED)  # iperov/elon_musk_224.hash
    assert (folder / "iperov" / "elon_musk_224.hash").is_file()

    project.write_toml({"face_swapper": ("inswapper_128", ">=1")})
    project.run("lock")
    (folder / "face_detection_yunet_2026may.hash").unlink()  # a hash file changed by hand
    (folder / "face_detection_yunet_2026may.hash").write_text("mine")
    result = export(project)
    assert result.out.strip().endswith("removed 2")
    assert not (folder / "iperov").exists() and not (folder / DETECTOR).exists()
    assert (folder / "face_detection_yunet_2026may.hash").read_text() == "mine"
    assert "left" in result.err and "face_detection_yunet_2026may.hash" in result.err
    assert sorted(json.loads((folder / ".ff-export.json").read_text())["files"]) == [
        "inswapper_128.hash", SWAPPER]


def test_gc_keeps_exported_files_and_the_blobs_their_record_lists(project: Workspace) -> None:
    export(project)
    exported = blob(project, "face_swapper")
    model = models(project) / SWAPPER
    content = model.read_bytes()
    project.run("rollback", "face_swapper")  # the lock now names 1.0.0 only
    project.run("gc", "--keep", "1")
    assert exported.is_file()  # kept: the export record lists it
    assert model.read_bytes() == content and facefusion_accepts(model)

    shutil.rmtree(project.root / "facefusion")  # a folder that is gone keeps nothing
    assert "1 blobs" in project.run("gc", "--keep", "1").out
    assert not exported.exists()
    assert not (project.home / "stamps" / "sha256" / f"{exported.name}.json").exists()


def test_links_refused_means_read_only_verified_copies(project: Workspace,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def export_without_links() -> str:
        with monkeypatch.context() as patch:  # sync and rollback link their views
            patch.setattr(os, "link", no_links)
            return export(project).out

    project.run("sync")
    assert "(0 linked, 2 copied, 0 unchanged, 0 adopted; 2 hashed)" in export_without_links()
    folder = models(project)
    for name, module in ((SWAPPER, "face_swapper"), (DETECTOR, "face_detector")):
        assert not (folder / name).samefile(blob(project, module))
        assert (folder / name).read_bytes() == blob(project, module).read_bytes()
        assert (folder / name).stat().st_mode & 0o777 == 0o444
        assert facefusion_accepts(folder / name)
    assert "(0 linked, 0 copied, 2 unchanged, 0 adopted; 0 hashed)" in export_without_links()
    project.run("rollback", "face_swapper")
    assert "inswapper_128.onnx (copied)" in export_without_links()
    assert (folder / SWAPPER).read_bytes() == (project.root / "swapper-0" / SWAPPER).read_bytes()
    assert facefusion_accepts(folder / SWAPPER)


def test_a_tampered_blob_is_refused_and_nothing_changes(project: Workspace) -> None:
    export(project)
    tamper(blob(project, "face_swapper"))
    before = snapshot(project.root / "facefusion")
    for name in ("facefusion", "elsewhere"):
        result = export(project, name=name, expect=1)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "is corrupt" in lines[0]
        assert "run `ff verify` then `ff sync`" in lines[0]
    assert snapshot(project.root / "facefusion") == before
    assert not (project.root / "elsewhere").exists()


def test_two_entries_with_one_file_name_are_refused(project: Workspace) -> None:
    twin = project.root / "twin" / DETECTOR
    twin.parent.mkdir()
    twin.write_bytes(ULFD["slim-320"].read_bytes())
    project.publish(twin, "ulfd", "1.0.0")
    (project.project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "../registry"\n\n[trust]\nkeys = ["{project.key_id}"]\n\n'
        '[modules]\nface_detector = [{ model = "yunet" }, { model = "ulfd" }]\n')
    project.run("lock")
    result = export(project, expect=2)
    assert ("face_detector/ulfd (ulfd 1.0.0) and face_detector/yunet (yunet 2026.5.0) both "
            f"export {DETECTOR}") in result.err
    assert not (project.root / "facefusion").exists()


def test_an_export_cut_short_is_completed_and_a_changed_file_is_kept(project: Workspace) -> None:
    export(project)
    folder = models(project)
    record = (folder / ".ff-export.json").read_bytes()
    (folder / ".ff-export.json").unlink()  # killed after placing, before the record
    assert "(0 linked, 0 copied, 2 unchanged, 0 adopted; 0 hashed)" in export(project).out
    assert (folder / ".ff-export.json").read_bytes() == record

    (folder / SWAPPER).unlink()  # someone puts other bytes where ff's file was
    (folder / SWAPPER).write_bytes(b"edited")
    result = export(project, expect=1)
    assert result.err.startswith(f"error: {folder / SWAPPER} changed since ff exported it")
    (folder / ".ff-export.json").write_text("{")
    result = export(project, expect=1)
    assert ".ff-export.json is damaged" in result.err and len(result.err.splitlines()) == 1
