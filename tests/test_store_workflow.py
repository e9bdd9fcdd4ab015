"""End to end through the CLI: publish, lock, sync, upgrade, rollback, holds, gc,
verify, and team consistency across two stores."""

import hashlib
import tomllib
import zlib
from pathlib import Path

from tests.conftest import ULFD, YUNET, Workspace, make_runner


def _lock(workspace: Workspace) -> dict:
    return tomllib.loads(workspace.lock_text)


def _version(workspace: Workspace, module: str = "face_detector") -> str:
    return _lock(workspace)["modules"][module]["version"]


def _store_files(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / "blobs" / "sha256").iterdir()}


def test_full_lifecycle(workspace: Workspace) -> None:
    run = workspace.run
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(YUNET, "yunet", "2026.5.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1,<2")})
    run("lock")
    assert _version(workspace) == "1.0.0"
    lock = _lock(workspace)["modules"]["face_detector"]
    assert lock["signers"] == [workspace.key_id]
    assert lock["files"][0]["digest"] == "sha256:" + hashlib.sha256(
        ULFD["slim-320"].read_bytes()).hexdigest()
    first_lock = workspace.lock_text
    run("lock")
    assert workspace.lock_text == first_lock  # deterministic, unchanged
    run("sync")

    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    run("lock")
    assert _version(workspace) == "1.0.0"  # like pip-tools: keep what is locked
    run("lock", "--upgrade")
    assert _version(workspace) == "1.1.0"
    run("sync")
    path = Path(run("path", "face_detector").out.strip())
    assert path.read_bytes() == ULFD["RFB-320"].read_bytes()

    workspace.publish(ULFD["RFB-640"], "ulfd", "1.2.0")
    run("lock", "--upgrade")
    assert _version(workspace) == "1.2.0"
    run("sync")

    # Rollback one module: previous version, held, survives lock --upgrade.
    out = run("rollback", "face_detector").out
    assert "1.2.0 -> 1.1.0" in out
    assert _version(workspace) == "1.1.0"
    assert _lock(workspace)["holds"]["face_detector"] == {"version": "1.1.0",
                                                          "rolled-back-from": "1.2.0"}
    assert "held (rolled back from 1.2.0)" in run("status").out
    run("lock", "--upgrade")
    assert _version(workspace) == "1.1.0"
    # A second rollback steps further back instead of bouncing to 1.2.0.
    run("rollback", "face_detector")
    assert _version(workspace) == "1.0.0"
    # Lifting the hold moves forward again.
    run("lock", "--upgrade-module", "face_detector")
    assert _version(workspace) == "1.2.0"
    assert "holds" not in _lock(workspace)

    # Whole-lock rollback restores the previous generation.
    run("rollback")
    assert _version(workspace) == "1.0.0"
    run("rollback")
    assert _version(workspace) == "1.1.0"
    history = run("history").out
    assert "rollback to generation" in history
    assert "ulfd 1.2.0" in run("history", "face_detector").out

    run("rollback", "face_detector", "--to", "1.0.0")
    assert _version(workspace) == "1.0.0"
    run("rollback", "face_detector", "--to", "1.1.0")
    run("sync")
    run("verify")

    # gc keeps the current lock and recent generations; with --keep 1 only the current.
    before = _store_files(workspace.home)
    dry = run("gc", "--keep", "1", "--dry-run").out
    assert "would free" in dry
    # What would go, by model, version, file and size, not only totals.
    assert "would remove ulfd 1.2.0 (version-RFB-640.onnx), " in dry
    assert "would remove ulfd 1.1.0" not in dry  # locked
    assert _store_files(workspace.home) == before  # a dry run removes nothing
    run("gc", "--keep", "1")
    after = _store_files(workspace.home)
    assert set(after) < set(before)
    current = _lock(workspace)["modules"]["face_detector"]["files"][0]["digest"].split(":")[1]
    assert current in after
    run("verify")
    assert Path(run("path", "face_detector").out.strip()).read_bytes() == ULFD[
        "RFB-320"].read_bytes()


def test_team_gets_identical_models(workspace: Workspace, capsys, monkeypatch) -> None:
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    workspace.publish(YUNET, "yunet", "2026.5.0")
    workspace.write_toml({"face_detector": ("yunet", ">=2026")})
    workspace.run("lock")
    workspace.run("sync")
    # A teammate: same project files (as from git), their own store.
    teammate_home = workspace.root / "teammate-home"
    teammate = make_runner(capsys, workspace.project, teammate_home, monkeypatch)
    teammate("sync", "--locked")
    assert _store_files(teammate_home) == _store_files(workspace.home)
    assert teammate("path", "face_detector").out.strip().endswith(YUNET.name)


def test_republish_stores_nothing_new_and_second_key_cosigns(workspace: Workspace) -> None:
    workspace.publish(YUNET, "yunet", "1.0.0")
    out = workspace.publish(YUNET, "yunet", "1.0.0").out
    assert "nothing new" in out and "0 B added" in out
    bob = workspace.run("key", "generate", "bob").out.strip()
    assert "signed again" in workspace.publish(YUNET, "yunet", "1.0.0", key="bob").out
    # Co-signing leaves the index alone: it stays signed by alice.
    workspace.write_toml({"face_detector": ("yunet", ">=1")}, trust=[workspace.key_id, bob])
    workspace.run("lock")
    assert _lock(workspace)["modules"]["face_detector"]["signers"] == sorted([workspace.key_id, bob])
    # A new version by bob would re-sign alice's index: refused until alice hands over.
    result = workspace.publish(ULFD["RFB-320"], "yunet", "1.1.0", key="bob", expect=2)
    assert "ff key rotate OLD bob" in result.err
    # The same version with other bytes is refused: versions are immutable.
    result = workspace.publish(ULFD["RFB-320"], "yunet", "1.0.0", expect=1)
    assert "immutable" in result.err


def test_lock_skips_versions_that_need_a_newer_ff(workspace: Workspace) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.run("publish", str(ULFD["RFB-320"]), "--registry", str(workspace.registry),
                  "--model", "ulfd", "--version", "1.1.0", "--module", "face_detector",
                  "--key", "alice", "--requires-ff", ">=99")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    assert _version(workspace) == "1.0.0"


def test_import_facefusion_models_folder(workspace: Workspace, tmp_path: Path) -> None:
    models = tmp_path / "facefusion" / ".assets" / "models"
    models.mkdir(parents=True)
    (models / "yunet_2023mar.onnx").write_bytes(YUNET.read_bytes())
    (models / "yunet_2023mar.hash").write_text("0000")
    (models / "mystery_model.onnx").write_bytes(YUNET.read_bytes())
    command = ("import", str(tmp_path / "facefusion"), "--registry", str(workspace.registry),
               "--key", "alice")
    # A file ff does not know is refused, not skipped; nothing is published.
    unknown = workspace.run(*command, expect=2)
    assert "mystery_model.onnx" in unknown.err and "--module" in unknown.err
    assert not workspace.registry.exists()
    # A .hash that does not match its file means the file is damaged.
    damaged = workspace.run(*command, "--module", "mystery_model=face_detector", expect=1)
    assert "yunet_2023mar.onnx is damaged" in damaged.err
    assert not workspace.registry.exists()
    (models / "yunet_2023mar.hash").write_text(format(zlib.crc32(YUNET.read_bytes()), "08x"))
    result = workspace.run(*command, "--module", "mystery_model=face_detector")
    assert "yunet_2023mar 1.0.0 (face_detector)" in result.out
    assert "mystery_model 1.0.0 (face_detector)" in result.out
    workspace.write_toml({"face_detector": ("yunet_2023mar", "==1.0.0")})
    workspace.run("lock")
    workspace.run("sync")


def test_config_shows_sources(workspace: Workspace, monkeypatch) -> None:
    workspace.write_toml({}, extra="\n[settings]\njobs = 7\ngc_keep = 5\n")
    monkeypatch.setenv("FF_GC_KEEP", "2")
    out = workspace.run("config").out
    assert "jobs                 7" in out and "(facefusion.toml;" in out
    assert "(env FF_GC_KEEP;" in out
    assert "(env FF_HOME;" in out


def test_rollback_on_a_fresh_clone_uses_the_registry(workspace: Workspace, capsys,
                                                     monkeypatch) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    # A teammate clones the repo: no history on their machine, yet rollback works.
    teammate = make_runner(capsys, workspace.project, workspace.root / "teammate", monkeypatch)
    assert "1.1.0 -> 1.0.0" in teammate("rollback", "face_detector").out
    assert _version(workspace) == "1.0.0"
    result = teammate("rollback", "face_detector", expect=1)
    assert "no earlier version of face_detector" in result.err


def test_versions_compare_as_pep_440_releases(workspace: Workspace) -> None:
    workspace.publish(ULFD["slim-320"], "ulfd", "1.1")
    result = workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0", expect=1)
    assert "immutable" in result.err  # 1.1 and 1.1.0 are one release
    workspace.publish(ULFD["RFB-640"], "ulfd", "1.2.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    workspace.run("rollback", "face_detector", "--to", "1.1.0")
    assert _version(workspace) == "1.1"
    result = workspace.run("rollback", "face_detector", "--to", "9", expect=2)
    assert "versions there: 1.1, 1.2.0" in result.err


def test_a_rewritten_release_is_reported_not_followed(workspace: Workspace) -> None:
    from ffstore.index import VersionEntry
    from ffstore.publish import _read_index, write_index
    from ffstore.signing import load_key

    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    before = workspace.lock_text
    # The registry's owner re-points 1.0.0 at other bytes (published as 9.0.0 first).
    workspace.publish(ULFD["RFB-320"], "ulfd", "9.0.0")
    index = _read_index(workspace.registry)
    index.models["ulfd"]["1.0.0"] = VersionEntry(index.models["ulfd"].pop("9.0.0").manifest,
                                                 "face_detector")
    write_index(workspace.registry, index, load_key(workspace.home / "keys", "alice"), 30)
    result = workspace.run("lock", expect=1)
    assert "was changed" in result.err or "lists ulfd 1.0.0" in result.err
    assert workspace.lock_text == before


def test_several_models_of_one_module(workspace: Workspace) -> None:
    """A kind may list several models (FaceFusion loads 2dfan4 and fan_68_5 at once);
    each is an entry named KIND/MODEL that lock, status, path and rollback handle."""
    workspace.publish(ULFD["slim-320"], "occluder", "1.0.0", module="face_masker")
    workspace.publish(ULFD["RFB-320"], "occluder", "1.1.0", module="face_masker")
    workspace.publish(ULFD["RFB-640"], "parser", "1.0.0", module="face_masker")
    workspace.publish(YUNET, "yunet", "2026.5.0")
    (workspace.project / "facefusion.toml").write_text(
        '[registries]\ndefault = "../registry"\n\n'
        f'[trust]\nkeys = ["{workspace.key_id}"]\n\n'
        '[modules]\nface_detector = { model = "yunet", version = ">=2026" }\n'
        'face_masker = [\n    { model = "occluder", version = ">=1" },\n'
        '    { model = "parser", version = ">=1" },\n]\n')
    result = workspace.run("lock")
    assert "face_masker/occluder: occluder 1.1.0" in result.out
    assert "face_masker/parser: parser 1.0.0" in result.out
    assert "ff swap does not use occluder (face_masker), parser (face_masker)" in result.err
    lock = _lock(workspace)
    assert lock["lock-version"] == 2
    assert set(lock["modules"]) == {"face_detector", "face_masker/occluder", "face_masker/parser"}
    workspace.run("sync")
    status = workspace.run("status").out
    assert "face_masker/occluder" in status and "face_masker/parser" in status
    assert workspace.run("path", "face_masker/parser").out.strip().endswith("version-RFB-640.onnx")
    ambiguous = workspace.run("rollback", "face_masker", expect=2)
    assert "face_masker has 2 models" in ambiguous.err and "face_masker/occluder" in ambiguous.err
    rolled = workspace.run("rollback", "face_masker/occluder").out
    assert "face_masker/occluder: occluder 1.1.0 -> 1.0.0 (held)" in rolled
    assert _lock(workspace)["holds"]["face_masker/occluder"]["version"] == "1.0.0"
    assert "1.0.0" in workspace.run("history", "face_masker/occluder").out
    workspace.run("lock", "--upgrade-module", "face_masker")  # every entry of the kind
    assert _version(workspace, "face_masker/occluder") == "1.1.0"
    # Back to one model per kind: the lock is version 1 again, readable by older ff.
    workspace.write_toml({"face_detector": ("yunet", ">=2026")})
    workspace.run("lock")
    assert _lock(workspace)["lock-version"] == 1


def test_rollback_returns_what_it_changed(workspace: Workspace) -> None:
    """The library verb answers with the lock it wrote and each module it moved, so a
    program (or the CLI) reports a rollback without diffing locks itself."""
    from ffstore.context import open_context
    from ffstore.lock_changes import ModuleChange, rollback

    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    context = open_context(workspace.project, {"home": str(workspace.home)})
    result = rollback(context, "face_detector")
    assert result.changes == [ModuleChange("face_detector", "ulfd", "1.1.0", "1.0.0")]
    assert result.lock.modules["face_detector"].version == "1.0.0"
    assert result.lock.holds["face_detector"].rolled_back_from == "1.1.0"


def test_previous_version_and_a_rollback_with_a_reason(workspace: Workspace) -> None:
    """What ff compare and guarded runs build on: the version `ff rollback` would
    pick, asked without rolling back, and a rollback that says who did it and why in
    the history, the hold (so the lock carries it) and `ff status`."""
    from ffstore.context import open_context
    from ffstore.lock_changes import previous_version, rollback
    from ffstore.lockfile import read_lock

    workspace.publish(ULFD["slim-320"], "ulfd", "1.0.0")
    workspace.publish(ULFD["RFB-320"], "ulfd", "1.1.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    context = open_context(workspace.project, {"home": str(workspace.home)})
    before = workspace.lock_text
    assert previous_version(context, "face_detector").version == "1.0.0"
    assert workspace.lock_text == before
    rollback(context, "face_detector", by="guard", reason="non-finite output on 3 of 8 frames")
    hold = read_lock(workspace.project / "facefusion.lock").holds["face_detector"]
    assert hold.reason == "guard rollback: non-finite output on 3 of 8 frames"
    assert ("guard rollback face_detector 1.1.0 -> 1.0.0 (non-finite output on 3 of 8 frames)"
            in workspace.run("history").out)
    assert "rolled back from 1.1.0; guard rollback: non-finite" in workspace.run("status").out
