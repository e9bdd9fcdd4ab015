"""The repo's own demo, as a user runs it from a fresh clone: sync the shipped
registry, swap with the default execution provider, and hear nothing but the result
(onnxruntime-gpu on a machine without CUDA must fall back to CPU without a word)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "tests" / "data" / "images"


def test_demo_sync_and_swap_are_quiet(tmp_path: Path) -> None:
    env = {**os.environ, "FF_HOME": str(tmp_path / "home")}
    env.pop("FF_EXECUTION_PROVIDER", None)

    def ff(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ffstore", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    project = ["--project", str(REPO)]
    synced = ff(*project, "sync", "--locked")
    assert synced.returncode == 0 and synced.stderr == "", synced.stderr
    output = tmp_path / "swapped.png"
    swapped = ff(*project, "swap", "--source", str(IMAGES / "astronaut.png"), "--target",
                 str(IMAGES / "grace_hopper.jpg"), "--output", str(output))
    assert swapped.returncode == 0, swapped.stderr
    assert swapped.stderr == ""
    assert "ExecutionProvider" in swapped.stdout and output.stat().st_size > 0
