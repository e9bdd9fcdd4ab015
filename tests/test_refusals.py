"""Every refusal: a clear one-line error, the right exit code, and nothing changed
(the lock, the toml and the store are byte-for-byte as before)."""

import hashlib
import json
import os
import re
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from ffstore import layout
from ffstore.blobs import BlobStore
from ffstore.canonical import canonical_bytes
from ffstore.manifest import FileEntry, Manifest, sign_manifest, signature_document
from ffstore.publish import _read_index, write_index
from ffstore.signing import load_key
from tests.conftest import ULFD, YUNET, Result, Workspace


def _snapshot(workspace: Workspace) -> dict[str, bytes]:
    files = {}
    for root in (workspace.project, workspace.home / "blobs", workspace.home / "manifests"):
        if root.exists():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    files[str(path)] = path.read_bytes()
    return files


def _refused(result: Result, code: int, *phrases: str) -> None:
    assert result.code == code
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    for phrase in phrases:
        assert phrase in result.err, result.err


@pytest.fixture
def locked(workspace: Workspace) -> Workspace:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    workspace.run("sync")
    return workspace


def _writable(path: Path) -> None:
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def _tamper(path: Path) -> None:
    _writable(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_registry_blob_never_enters_the_store(locked: Workspace) -> None:
    locked.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    locked.run("lock", "--upgrade")
    digest = "sha256:" + hashlib.sha256(ULFD["RFB-320"].read_bytes()).hexdigest()
    _tamper(locked.registry / layout.blob(digest))
    before = _snapshot(locked)
    _refused(locked.run("sync", expect=None), 1, "hashes to", digest)
    assert _snapshot(locked) == before
    assert not BlobStore(locked.home).has(digest)


def test_tampered_store_blob_is_caught_and_repaired(workspace: Workspace) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    for blob in (workspace.registry / "blobs" / "sha256").iterdir():
        _writable(blob)  # as after a git clone: the store copies instead of linking
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    workspace.run("sync")
    digest = "sha256:" + hashlib.sha256(ULFD["slim-320"].read_bytes()).hexdigest()
    _tamper(BlobStore(workspace.home).path(digest))
    _refused(workspace.run("path", "face_detector", expect=None), 1, "corrupt")
    result = workspace.run("verify", expect=1)
    assert "was corrupt" in result.err
    workspace.run("sync")
    workspace.run("verify")
    assert Path(workspace.run("path", "face_detector").out.strip()).read_bytes() == ULFD[
        "slim-320"].read_bytes()


def test_truncated_store_blob_is_replaced_by_sync(locked: Workspace) -> None:
    digest = "sha256:" + hashlib.sha256(ULFD["slim-320"].read_bytes()).hexdigest()
    blob = BlobStore(locked.home).path(digest)
    os.replace(blob, blob.with_name("moved"))  # keep the registry's linked copy intact
    blob.write_bytes(b"short")
    locked.run("sync")
    assert blob.read_bytes() == ULFD["slim-320"].read_bytes()


def test_read_only_local_registry_blobs_are_linked_not_copied(locked: Workspace) -> None:
    digest = "sha256:" + hashlib.sha256(ULFD["slim-320"].read_bytes()).hexdigest()
    stored = BlobStore(locked.home).path(digest).stat()
    published = (locked.registry / layout.blob(digest)).stat()
    assert stored.st_ino == published.st_ino and not stored.st_mode & 0o222


def test_tampered_manifest_is_refused(workspace: Workspace) -> None:
    result = workspace.publish(YUNET, "yunet", "1.0.0")
    digest = result.out.split("manifest ")[1].split(",")[0]
    _tamper(workspace.registry / layout.manifest(digest))
    workspace.write_toml({"face_detector": ("yunet", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, "tampered", digest)
    assert not (workspace.project / "facefusion.lock").exists()


def test_untrusted_signer_is_named(workspace: Workspace) -> None:
    workspace.run("key", "generate", "mallory")
    mallory = (workspace.home / "keys" / "mallory.pub").read_text().strip()
    workspace.publish(YUNET, "yunet", "1.0.0", key="mallory")
    workspace.write_toml({"face_detector": ("yunet", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, mallory, "not trusted")
    assert not (workspace.project / "facefusion.lock").exists()


def test_untrusted_manifest_signer_is_named(workspace: Workspace) -> None:
    """The index is signed by a trusted key but the manifest only by another."""
    workspace.run("key", "generate", "mallory")
    mallory = (workspace.home / "keys" / "mallory.pub").read_text().strip()
    workspace.publish(YUNET, "yunet", "1.0.0", key="mallory")
    index = _read_index(workspace.registry)  # the registry owner re-signs the index
    write_index(workspace.registry, index, load_key(workspace.home / "keys", "alice"), 30)
    workspace.write_toml({"face_detector": ("yunet", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, "untrusted key(s) " + mallory)


def _publish_crafted(workspace: Workspace, path: str) -> None:
    key = load_key(workspace.home / "keys", "alice")
    blobs = BlobStore(workspace.registry)
    stored = blobs.ingest_file(YUNET)
    manifest = Manifest("evil", "1.0.0", "face_detector",
                        (FileEntry(path, stored.digest, stored.size),), "")
    data = canonical_bytes(manifest.to_json())
    from ffstore.digests import digest_bytes

    digest = digest_bytes(data)
    (workspace.registry / layout.manifest(digest)).parent.mkdir(parents=True, exist_ok=True)
    (workspace.registry / layout.manifest(digest)).write_bytes(data)
    (workspace.registry / layout.signatures(digest)).parent.mkdir(parents=True, exist_ok=True)
    (workspace.registry / layout.signatures(digest)).write_bytes(
        signature_document({key.key_id: sign_manifest(key, digest)}))
    from ffstore.index import VersionEntry

    index = _read_index(workspace.registry)
    index.models["evil"] = {"1.0.0": VersionEntry(digest, "face_detector")}
    write_index(workspace.registry, index, key, 30)


@pytest.mark.parametrize("path", ["../escape.onnx", "/etc/passwd", "a/../../b.onnx", "C:/x.onnx"])
def test_path_escaping_the_model_directory(workspace: Workspace, path: str) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    _publish_crafted(workspace, path)
    workspace.write_toml({"face_detector": ("evil", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, "escapes the model directory", repr(path))


def test_publishing_a_symlink_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    link = tmp_path / "model.onnx"
    link.symlink_to(YUNET)
    _refused(workspace.publish(link, "yunet", "1.0.0", expect=None), 2, "symlink")


def test_malformed_toml(locked: Workspace) -> None:
    (locked.project / "facefusion.toml").write_text("[modules\nface_detector = ")
    before = _snapshot(locked)
    _refused(locked.run("lock", expect=None), 2, "not valid TOML")
    _refused(locked.run("sync", expect=None), 2, "not valid TOML")
    assert _snapshot(locked) == before


@pytest.mark.parametrize("toml, phrase", [
    ('[modules]\nface_detector = { model = "ulfd", version = "~~1" }\n', "not a version range"),
    ('[modules]\nface_swaper = { model = "x", version = ">=1" }\n', "unknown module 'face_swaper'"),
    ('[trust]\nkeys = ["rsa:abc"]\n', "not a key id"),
    ('[modulez]\n', "unknown section"),
    ('[modules]\nface_detector = { model = "ulfd", verison = ">=1" }\n', "unknown key(s) 'verison'"),
    ('[modules]\nface_detector = [{ model = "ulfd" }, { model = "ulfd" }]\n', "lists ulfd twice"),
    ('[modules]\nface_detector = []\n', "empty list"),
    ('[trust]\nkey = []\n', "unknown key(s) 'key'"),
])
def test_invalid_toml_contents(locked: Workspace, toml: str, phrase: str) -> None:
    (locked.project / "facefusion.toml").write_text('[registries]\ndefault = "../registry"\n' + toml)
    _refused(locked.run("lock", expect=None), 2, phrase)


@pytest.mark.parametrize("text", ["not toml [", 'lock-version = 1\ninputs = "sha256:zz"\n',
                                  'lock-version = 99\ninputs = "x"\n'])
def test_malformed_lock(locked: Workspace, text: str) -> None:
    (locked.project / "facefusion.lock").write_text(text)
    before = _snapshot(locked)
    for command in (["sync"], ["lock"], ["rollback", "face_detector"], ["status"]):
        _refused(locked.run(*command, expect=None), 2, "facefusion.lock is malformed")
    assert _snapshot(locked) == before


def test_hand_edited_lock_disagreeing_with_manifest(locked: Workspace) -> None:
    lock = locked.project / "facefusion.lock"
    real = hashlib.sha256(ULFD["slim-320"].read_bytes()).hexdigest()
    lock.write_text(lock.read_text().replace(real, "0" * 64))
    _refused(locked.run("sync", expect=None), 1, "disagrees with manifest")


def test_stale_lock_under_locked(locked: Workspace) -> None:
    locked.write_toml({"face_detector": ("ulfd", ">=1,<3")})
    before = _snapshot(locked)
    _refused(locked.run("sync", "--locked", expect=None), 1, "stale", "ff lock")
    assert _snapshot(locked) == before
    assert "stale" in locked.run("sync").err  # without --locked: a warning


def test_unknown_module(locked: Workspace) -> None:
    before = _snapshot(locked)
    for command in (["path", "face_swapper"], ["rollback", "face_swapper"],
                    ["lock", "--upgrade-module", "nope"], ["history", "nope"]):
        _refused(locked.run(*command, expect=None), 2, "unknown module")
    assert _snapshot(locked) == before


def test_missing_key(workspace: Workspace) -> None:
    _refused(workspace.publish(YUNET, "yunet", "1.0.0", key="nobody", expect=None), 2,
             "no signing key 'nobody'", "ff key generate nobody")
    assert not workspace.registry.exists() or not (workspace.registry / "index.json").exists()


def test_not_an_onnx_file(workspace: Workspace, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\xff" * 100)
    _refused(workspace.publish(bogus, "bogus", "1.0.0", expect=None), 2, "not a valid ONNX model")


def test_usage_errors_exit_2(workspace: Workspace) -> None:
    _refused(workspace.run("publish", expect=None), 2)
    _refused(workspace.run("rollback", "--to", "1.0", expect=None), 2)
    _refused(workspace.run("frobnicate", expect=None), 2, "No such command")


def test_no_project(workspace: Workspace, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    from ffstore.cli import main

    assert main(["--project", str(tmp_path / "nowhere"), "lock"]) == 2


@pytest.mark.parametrize("mangle", [
    lambda doc: doc.update(signatures=5),
    lambda doc: doc["signed"].update(rotations=[{"old": [1], "new": "x", "sig": "y"}]),
    lambda doc: doc["signed"].update(extra=1.5),
    lambda doc: doc["signed"].update(models=[]),
])
def test_a_lying_index_is_refused_without_a_traceback(workspace: Workspace, mangle) -> None:
    import json

    workspace.publish(YUNET, "yunet", "1.0.0")
    index = workspace.registry / "index.json"
    doc = json.loads(index.read_text())
    mangle(doc)
    index.write_text(json.dumps(doc))
    workspace.write_toml({"face_detector": ("yunet", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, "index")


def test_damaged_history_is_named(locked: Workspace) -> None:
    generation = next((locked.home / "projects").glob("*/generations/*.json"))
    generation.write_text("{not json")
    _refused(locked.run("history", expect=None), 1, "is damaged", str(generation))
    _refused(locked.run("gc", expect=None), 1, "is damaged")


def _signatures_of(registry: Path, version: str) -> Path:
    index = json.loads((registry / "index.json").read_text())["signed"]["models"]["ulfd"]
    return registry / layout.signatures(index[version]["manifest"])


@pytest.mark.parametrize("mangle", ["missing signatures", "swapped signatures", "untrusted signer"])
def test_no_silent_downgrade_when_the_newest_release_does_not_verify(workspace: Workspace,
                                                                    mangle: str) -> None:
    """A server that hides or breaks the newest release's signatures must not get an
    older one locked instead: the newest is named as unverifiable, nothing is locked."""
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    newest, older = (_signatures_of(workspace.registry, v) for v in ("1.1.0", "1.0.0"))
    if mangle == "missing signatures":
        newest.unlink()
    elif mangle == "swapped signatures":
        newest.write_bytes(older.read_bytes())
    else:
        workspace.run("key", "generate", "mallory")
        key = load_key(workspace.home / "keys", "mallory")
        digest = "sha256:" + newest.stem
        newest.write_bytes(signature_document({key.key_id: sign_manifest(key, digest)}))
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    before = _snapshot(workspace)
    _refused(workspace.run("lock", expect=None), 1, "ulfd 1.1.0, the newest release allowed")
    assert _snapshot(workspace) == before
    assert not (workspace.project / "facefusion.lock").exists()


def _relock_inputs(workspace: Workspace, doc: dict) -> None:
    """Write `doc` as the lock, with the inputs line of the current facefusion.toml:
    the one line a hand edit would keep right."""
    import tomli_w

    from ffstore.context import open_context

    doc["inputs"] = open_context(workspace.project, {"home": str(workspace.home)},
                                 environ={}).project.inputs_hash()
    (workspace.project / "facefusion.lock").write_text(tomli_w.dumps(doc))


@pytest.mark.parametrize("edit, phrase", [
    ("another model", "face_detector is locked to yunet, facefusion.toml wants ulfd"),
    ("outside the range", "face_detector is locked at 1.1.0, outside '>=1,<1.1'"),
    ("an extra module", "face_recognizer is locked but not in facefusion.toml"),
    ("a missing module", "face_detector is in facefusion.toml but not in the lock"),
])
def test_sync_locked_checks_every_entry_against_the_toml(workspace: Workspace, edit: str,
                                                         phrase: str) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    workspace.publish(YUNET, "yunet", "2026.5.0")
    workspace.write_toml({"face_detector": ("yunet", ">=2026")})
    workspace.run("lock")
    yunet = tomllib.loads(workspace.lock_text)["modules"]["face_detector"]
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    doc = tomllib.loads(workspace.lock_text)
    if edit == "another model":
        doc["modules"]["face_detector"] = yunet
    elif edit == "outside the range":
        workspace.write_toml({"face_detector": ("ulfd", ">=1,<1.1")})
    elif edit == "an extra module":
        doc["modules"]["face_recognizer"] = {**yunet}
    else:
        del doc["modules"]["face_detector"]
    _relock_inputs(workspace, doc)
    before = _snapshot(workspace)
    _refused(workspace.run("sync", "--locked", expect=None), 1, "stale", phrase)
    assert _snapshot(workspace) == before
    assert "STALE" in workspace.run("status", expect=None).out


DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's parser recurses


@pytest.mark.parametrize("damage, phrase", [
    (lambda w: (w.registry / "index.json").write_bytes(DEEP), "nested too deeply"),
    (lambda w: (w.registry / "index.json").write_bytes(
        (w.registry / "index.json").read_bytes().replace(b":", b": ", 1)), "canonical form"),
    (lambda w: (w.registry / "index.json").write_bytes(b" " * (layout.MAX_INDEX + 1)),
     "larger than"),
    (lambda w: next((w.registry / "signatures" / "sha256").iterdir()).write_bytes(DEEP),
     "not signed"),
])
def test_hostile_registry_documents_are_refused_in_one_line(workspace: Workspace, damage,
                                                           phrase: str) -> None:
    workspace.publish(YUNET, "yunet", "1.0.0")
    damage(workspace)
    workspace.write_toml({"face_detector": ("yunet", ">=1")})
    _refused(workspace.run("lock", expect=None), 1, phrase)
    assert not (workspace.project / "facefusion.lock").exists()


def test_deeply_nested_history_and_store_state_are_named(locked: Workspace) -> None:
    generation = next((locked.home / "projects").glob("*/generations/*.json"))
    generation.write_bytes(DEEP)
    _refused(locked.run("history", expect=None), 1, "is damaged")


@pytest.mark.parametrize("setting", ["jobs = inf", "jobs = 2.5", "http_timeout = nan",
                                     "http_timeout = 1e400", "index_expiry_days = 999999999",
                                     "jobs = true"])
def test_numbers_that_are_not_numbers_in_settings(locked: Workspace, setting: str) -> None:
    toml = locked.project / "facefusion.toml"
    toml.write_text(toml.read_text() + f"\n[settings]\n{setting}\n")
    _refused(locked.run("sync", expect=None), 2, f"setting {setting.split()[0]}")


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e400"])
def test_http_timeout_from_the_environment(locked: Workspace, monkeypatch: pytest.MonkeyPatch,
                                           value: str) -> None:
    monkeypatch.setenv("FF_HTTP_TIMEOUT", value)
    _refused(locked.run("sync", expect=None), 2, "setting http_timeout")


@pytest.mark.parametrize("size", ["inf", "nan", "1e400", "-5", "2.5", "true"])
def test_a_lock_size_that_is_not_a_number_of_bytes(locked: Workspace, size: str) -> None:
    lock = locked.project / "facefusion.lock"
    lock.write_text(re.sub(r"size = \d+", f"size = {size}", lock.read_text(), count=1))
    _refused(locked.run("sync", expect=None), 2, "facefusion.lock is malformed")


@pytest.mark.parametrize("location", ["http://[::1", "http://host:99999/x", "http://", "ftp://x/y"])
def test_registry_locations_that_do_not_parse(locked: Workspace, location: str) -> None:
    (locked.project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{location}"\n[modules]\n')
    _refused(locked.run("lock", expect=None), 2, repr(location))
    _refused(locked.run("sync", "--registry", location, expect=None), 2, repr(location))


def test_out_of_range_flags(workspace: Workspace) -> None:
    _refused(workspace.run("serve", str(workspace.root), "--port", "99999", expect=None), 2, "99999")
    _refused(workspace.run("publish", str(YUNET), "--registry", str(workspace.registry), "--model",
                           "yunet", "--version", "1.0.0", "--module", "face_detector", "--key",
                           "alice", "--expires-days", "999999999", expect=None), 2,
             "index_expiry_days")
    _refused(workspace.run("publish", str(YUNET), "--registry", str(workspace.registry), "--model",
                           "yunet", "--version", "1.0.0", "--module", "face_detector", "--key",
                           "alice", "--requires-ff", "not a range", expect=None), 2,
             "not a version range")
    assert not workspace.registry.exists()


def test_links_planted_in_the_store_are_never_followed(locked: Workspace, tmp_path: Path) -> None:
    """A symlink in FF_HOME (a view, a partial download) must not make ff delete or
    write outside the store."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    views = locked.home / "views" / "sha256"
    view = next(views.iterdir())
    shutil.rmtree(view)
    view.symlink_to(outside, target_is_directory=True)
    (locked.project / "facefusion.lock").unlink()  # the project is gone: gc frees its models
    assert "1 manifests" in locked.run("gc").out
    assert (outside / "precious.txt").read_text() == "keep me"
    assert not view.is_symlink()


def test_a_planted_partial_download_link_is_replaced(locked: Workspace, tmp_path: Path) -> None:
    from ffstore import fsutil

    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    part = locked.home / "partial" / "x.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.symlink_to(victim)
    with fsutil.file_lock(part):
        pass
    assert not part.is_symlink() and victim.read_text() == "untouched"


def test_temp_files_of_killed_writers_are_swept_at_once(workspace: Workspace) -> None:
    """A killed publish leaves its temp file; the next publish removes it at once
    when its writer is gone, and leaves a live writer's alone."""
    import subprocess
    import sys

    workspace.publish(YUNET, "yunet", "1.0.0")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    tmp = workspace.registry / "tmp"
    tmp.mkdir(exist_ok=True)
    (tmp / f".ff-tmp-{dead}-abc").write_bytes(b"half a blob")
    (tmp / f".ff-tmp-{os.getpid()}-live").write_bytes(b"someone writing")
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    assert sorted(p.name for p in tmp.iterdir()) == [f".ff-tmp-{os.getpid()}-live"]


def test_a_corrupt_local_registry_blob_is_repaired_as_the_error_says(locked: Workspace) -> None:
    """The store hard-links a read-only local registry's blobs, so both share one
    file's damage: verify says so and names the registry's copy, publishing the same bytes again replaces the
    registry's copy, and verify --repair fetches a good copy into the store."""
    digest = "sha256:" + hashlib.sha256(ULFD["slim-320"].read_bytes()).hexdigest()
    registry_blob = locked.registry / layout.blob(digest)
    assert registry_blob.samefile(BlobStore(locked.home).path(digest))
    _tamper(registry_blob)
    result = locked.run("verify", expect=1)
    assert "hard-linked elsewhere too" in result.err
    assert f"{registry_blob.resolve()} (the local registry it was linked from)" in result.err
    republished = locked.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    assert "0 B added" not in republished.out
    assert hashlib.sha256(registry_blob.read_bytes()).hexdigest() == digest.split(":")[1]
    repaired = locked.run("verify", "--repair")
    assert "repaired: fetched 1 files" in repaired.out
    assert "ok:" in locked.run("verify").out
