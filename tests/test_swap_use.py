"""`ff swap --use MODULE=VERSION` (and FF_USE): try another version for one run. The
run takes it only when its manifest is signed by a trusted key, admits this ff and
meets the module's contract; facefusion.lock and the history stay byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ffstore import layout
from ffstore.manifest import sign_manifest, signature_document
from ffstore.signing import load_key
from ffswap.media import read_image
from tests import standins
from tests.conftest import Result, Workspace
from tests.swap_fixtures import ASTRONAUT, GRACE_HOPPER, wrong_swapper
from tests.test_swap_verified import Published, published  # noqa: F401  (a fixture)

SWAP = ("swap", "--source", str(ASTRONAUT), "--target", str(GRACE_HOPPER))


@pytest.fixture(scope="module")
def tried(published: Published) -> Workspace:  # noqa: F811  (the imported fixture)
    """The shared project, plus releases outside its range that a --use must refuse:
    0.9.0 breaks the swapper contract, 0.8.0 is signed only by an untrusted key (its
    signature document replaced, as a lying registry would), 0.7.0 needs a newer ff."""
    workspace = published.workspace
    files = published.root / "tried"
    for version, data, extra in (("0.9.0", wrong_swapper(), ()),
                                 ("0.8.0", standins.face_swapper(4), ()),
                                 ("0.7.0", standins.face_swapper(5), ("--requires-ff", ">=99"))):
        path = files / version / "inswapper_128.onnx"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        workspace.run("publish", str(path), "--registry", str(published.registry), "--model",
                      "standin_inswapper", "--version", version, "--module", "face_swapper",
                      "--key", "alice", *extra)
    index = json.loads((published.registry / layout.INDEX).read_bytes())
    digest = index["signed"]["models"]["standin_inswapper"]["0.8.0"]["manifest"]
    bob = load_key(published.home / "keys", "bob")
    document = published.registry / layout.signatures(digest)
    document.chmod(0o644)
    document.write_bytes(signature_document({bob.key_id: sign_manifest(bob, digest)}))
    return workspace


def _state(workspace: Workspace) -> tuple[bytes, list[str]]:
    history = sorted(p.name for p in (workspace.home / "projects").glob("*/generations/*.json"))
    return (workspace.project / "facefusion.lock").read_bytes(), history


def _swapped(workspace: Workspace, output: Path, *args: str) -> Result:
    return workspace.run(*SWAP, "--output", str(output), *args)


def test_use_runs_another_version_and_leaves_the_lock_alone(
        tried: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _state(tried)
    locked = _swapped(tried, tmp_path / "locked.png")
    assert "face_swapper standin_inswapper 1.1.0," in locked.out and "--use" not in locked.out
    used = _swapped(tried, tmp_path / "used.png", "--use", "face_swapper=1.0")
    assert ("face_swapper standin_inswapper 1.0.0 (--use; facefusion.lock has 1.1.0)"
            in used.out)
    assert _state(tried) == before, "the lock and the history are untouched"
    assert not np.array_equal(read_image(tmp_path / "locked.png"), read_image(tmp_path / "used.png"))
    monkeypatch.setenv("FF_USE", "face_swapper=1.0.0")
    from_env = _swapped(tried, tmp_path / "env.png")
    assert "1.0.0 (--use; facefusion.lock has 1.1.0)" in from_env.out
    np.testing.assert_array_equal(read_image(tmp_path / "env.png"), read_image(tmp_path / "used.png"))
    # The flag wins over the environment, as every setting does.
    flagged = _swapped(tried, tmp_path / "flag.png", "--use", "face_swapper=1.1.0")
    assert "--use" not in flagged.out
    assert _state(tried) == before


@pytest.mark.parametrize(("use", "code", "message"), [
    ("face_swapper=0.8.0", 1, "signed only by untrusted key(s)"),
    ("face_swapper=0.7.0", 2, "needs ff >=99"),
    ("face_swapper=0.9.0", 1, "does not fit its I/O contract"),
    ("face_swapper=3.0.0", 2, "standin_inswapper 3.0.0 is not in registry"),
    ("face_swaper=1.0.0", 2, "unknown module 'face_swaper'"),
    ("face_swapper", 2, "is not MODULE=VERSION"),
])
def test_use_refuses_what_a_lock_would_refuse(tried: Workspace, tmp_path: Path, use: str,
                                              code: int, message: str) -> None:
    before = _state(tried)
    output = tmp_path / "out.png"
    result = tried.run(*SWAP, "--output", str(output), "--use", use, expect=code)
    text = result.err.strip()
    assert text.startswith("error: ") and "\n" not in text and message in text, result.err
    assert not output.exists() and _state(tried) == before


def test_use_of_a_module_the_run_skips_is_refused(tried: Workspace, tmp_path: Path) -> None:
    result = tried.run(*SWAP, "--output", str(tmp_path / "out.png"), "--no-enhance",
                       "--use", "face_enhancer=1.4.0", expect=2)
    assert "ff swap does not run face_enhancer in this run" in result.err
