"""Several ff processes writing at once: publishes into one registry (each version
lands in the index, none lost) and syncs into one store (identical, verified blobs)."""

import subprocess
import sys
from pathlib import Path

from ffstore.index import parse_index
from tests.conftest import ULFD, YUNET, Workspace


def _spawn(args: list[str], cwd: Path, home: Path) -> subprocess.Popen:
    import os

    return subprocess.Popen([sys.executable, "-m", "ffstore", *args], cwd=cwd,
                            env={**os.environ, "FF_HOME": str(home)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_publishes_and_syncs(workspace: Workspace) -> None:
    files = [ULFD["slim-320"], ULFD["RFB-320"], ULFD["RFB-640"], YUNET]
    procs = [_spawn(["publish", str(path), "--registry", str(workspace.registry), "--model", "m",
                     "--version", f"1.{i}.0", "--module", "face_detector", "--key", "alice"],
                    workspace.project, workspace.home) for i, path in enumerate(files)]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    index = parse_index((workspace.registry / "index.json").read_bytes(), "index")
    assert sorted(index.models["m"]) == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert index.version == 4

    workspace.write_toml({"face_detector": ("m", ">=1")})
    workspace.run("lock")
    syncs = [_spawn(["sync"], workspace.project, workspace.home) for _ in range(3)]
    for proc in syncs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    workspace.run("verify")
    assert Path(workspace.run("path", "face_detector").out.strip()).read_bytes() == YUNET.read_bytes()
