"""Shared fixtures: an in-process `ff` runner (fast: no interpreter start per call)
and a workspace with a signing key, a registry directory and a project."""

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ffstore.cli import main

if TYPE_CHECKING:
    import numpy as np

DATA = Path(__file__).parent / "data"
MODELS = DATA / "models"
YUNET = MODELS / "yunet" / "face_detection_yunet_2026may.onnx"
ULFD = {name: MODELS / "ulfd" / f"version-{name}.onnx" for name in ("slim-320", "RFB-320", "RFB-640")}
ONNX_FILES = [YUNET, *sorted(ULFD.values())]
"""Every real ONNX file the tests have: what the wire-level readers are checked against onnx on."""

os.environ.setdefault("ORT_LOG_SEVERITY_LEVEL", "3")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    root: Path
    home: Path
    project: Path
    registry: Path
    key_id: str
    run: Callable[..., Result]

    def write_toml(self, modules: dict[str, tuple[str, str]], trust: list[str] | None = None,
                   registry: str = "../registry", extra: str = "") -> None:
        lines = ["[registries]", f'default = "{registry}"', "", "[trust]",
                 "keys = [" + ", ".join(f'"{k}"' for k in (trust if trust is not None
                                                             else [self.key_id])) + "]",
                 "", "[modules]"]
        lines += [f'{name} = {{ model = "{model}", version = "{spec}" }}'
                  for name, (model, spec) in modules.items()]
        (self.project / "facefusion.toml").write_text("\n".join(lines) + "\n" + extra)

    def publish(self, path: Path, model: str, version: str, module: str = "face_detector",
                key: str = "alice", expect: int = 0) -> Result:
        return self.run("publish", str(path), "--registry", str(self.registry), "--model", model,
                        "--version", version, "--module", module, "--key", key, expect=expect)

    def publish_bytes(self, data: bytes, model: str, version: str, module: str,
                      name: str = "model.onnx") -> Result:
        """Publish generated model bytes, written as `name` (a FaceFusion file name
        tells the runtime which model it is) under files/MODEL/VERSION."""
        path = self.root / "files" / model / version / name
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        return self.publish(path, model, version, module)

    @property
    def lock_text(self) -> str:
        return (self.project / "facefusion.lock").read_text()


def make_runner(capsys: pytest.CaptureFixture[str], cwd: Path, home: Path,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    def run(*args: str, expect: int | None = 0) -> Result:
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("FF_HOME", str(home))
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        result = Result(code, captured.out, captured.err)
        if expect is not None:
            assert code == expect, f"ff {' '.join(args)} -> {code}\n{captured.out}\n{captured.err}"
        return result

    return run


@pytest.fixture
def workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    home, project, registry = tmp_path / "home", tmp_path / "project", tmp_path / "registry"
    project.mkdir()
    run = make_runner(capsys, project, home, monkeypatch)
    key_id = run("key", "generate", "alice").out.strip()
    yield Workspace(tmp_path, home, project, registry, key_id, run)


def ff_runner(home: Path, project: Path) -> Callable[..., Result]:
    """In-process `ff` bound to a store and a project by flags, not by chdir/env, so
    module-scoped fixtures (which cannot use monkeypatch or capsys) can call it."""

    def run(*args: str, expect: int | None = 0) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["--home", str(home), "--project", str(project), *args])
        result = Result(code, out.getvalue(), err.getvalue())
        if expect is not None:
            assert code == expect, f"ff {' '.join(args)} -> {code}\n{result.out}\n{result.err}"
        return result

    return run


def flag_workspace(root: Path) -> Workspace:
    """A store, a registry and a project under `root`, with the key alice, driven by
    flags (see ff_runner): the start of a module-scoped fixture's world."""
    home, registry, project = root / "home", root / "registry", root / "project"
    project.mkdir()
    run = ff_runner(home, project)
    key_id = run("key", "generate", "alice").out.strip()
    return Workspace(root, home, project, registry, key_id, run)


def run_ff_process(args: list[str], cwd: Path, home: Path, **kwargs: object) -> subprocess.CompletedProcess:
    """Run ff as a real process (for tests that kill it or time its start-up)."""
    env = {**os.environ, "FF_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "ffstore", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def _portrait(path: Path) -> "np.ndarray":
    """A test portrait, read-only: one array serves the whole session."""
    from tests.swap_fixtures import read_test_image

    image = read_test_image(path)
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def astronaut() -> "np.ndarray":
    from tests.swap_fixtures import ASTRONAUT

    return _portrait(ASTRONAUT)


@pytest.fixture(scope="session")
def grace() -> "np.ndarray":
    from tests.swap_fixtures import GRACE_HOPPER

    return _portrait(GRACE_HOPPER)
