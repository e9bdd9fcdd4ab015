"""FaceFusion's model zoo end to end, as a FaceFusion user meets it: a FaceFusion-shaped
`.assets/models` (every 3.x name, with its `.hash`) imports with every model filed under
its module; every adapter runs its contract-exact stand-in through `ff swap` on the
portraits; unsupported and damaged models are refused at import and lock in one line,
with nothing changed.

One module-scoped import (the slow part) serves every test; each test locks its own
project against that registry.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ffswap.media import read_image
from tests import facefusion_zoo as zoo
from tests.conftest import Result, ff_runner
from tests.swap_fixtures import ASTRONAUT, GRACE_HOPPER

ort.set_default_logger_severity(3)

GRACE_FACE = (183, 121, 353, 333)  # YuNet's box for Grace Hopper (x1, y1, x2, y2)
CORNERS = (np.s_[:40, :40], np.s_[:40, -40:], np.s_[-40:, :40], np.s_[-40:, -40:])
CONVERTERS = {"ghost": "crossface_ghost", "simswap": "crossface_simswap",
              "hififace": "crossface_hififace"}
BASE = {"face_detector": "yoloface_8n", "face_recognizer": "arcface_w600k_r50",
        "face_swapper": "inswapper_128"}


@dataclass(frozen=True)
class Zoo:
    root: Path
    home: Path
    registry: Path
    models: Path  # the FaceFusion models folder that was imported
    key_id: str
    imported: Result

    def project(self, name: str, modules: dict[str, str | list[str]]) -> Project:
        """A project locking `modules` (a model, or several) from the imported registry."""
        directory = self.root / "projects" / name
        directory.mkdir(parents=True)

        def entry(model: str) -> str:
            return f'{{ model = "{model}", version = ">=1" }}'

        lines = [f'[registries]\ndefault = "{self.registry}"', f'[trust]\nkeys = ["{self.key_id}"]',
                 "[modules]"]
        for kind, models in modules.items():
            value = entry(models) if isinstance(models, str) else f"[{', '.join(map(entry, models))}]"
            lines.append(f"{kind} = {value}")
        (directory / "facefusion.toml").write_text("\n".join(lines) + "\n")
        return Project(directory, ff_runner(self.home, directory))


@dataclass(frozen=True)
class Project:
    directory: Path
    run: Callable[..., Result]

    def swap(self, output: Path, *extra: str, expect: int = 0) -> Result:
        return self.run("swap", "--source", str(ASTRONAUT), "--target", str(GRACE_HOPPER),
                        "--output", str(output), *extra, expect=expect)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    root = tmp_path_factory.mktemp("facefusion")
    models = root / "facefusion" / ".assets" / "models"
    zoo.write_models(models)
    home, registry = root / "home", root / "registry"
    run = ff_runner(home, root)
    key_id = run("key", "generate", "alice").out.strip()
    result = run("import", str(root / "facefusion"), "--registry", str(registry), "--key", "alice")
    return Zoo(root, home, registry, models, key_id, result)


def _one_line_error(result: Result) -> str:
    text = result.err.strip()
    assert text.startswith("error: ") and "\n" not in text and "Traceback" not in text, result.err
    return text


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _changed(output: np.ndarray, original: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(output[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2]).mean())


# --- import ------------------------------------------------------------------------


def test_every_facefusion_model_imports_under_its_module(imported: Zoo) -> None:
    index = json.loads((imported.registry / "index.json").read_text())["signed"]["models"]
    expected = {name.replace("/", "."): kind for name, kind in zoo.FILES.items()}
    filed = {model: next(iter(versions.values()))["module"] for model, versions in index.items()}
    assert filed == expected
    for name in zoo.FILES:  # published at FaceFusion's own path, for ff export
        stem = name.replace("/", ".")
        digest = next(iter(index[stem].values()))["manifest"]
        manifest = json.loads((imported.registry / "manifests" / "sha256" /
                               f"{digest.split(':')[1]}.json").read_text())
        suffix = ".dfm" if "/" in name else ".onnx"
        assert manifest["files"][0]["path"] == name + suffix
    # Models ff swap does not run are imported too, and named once.
    assert "ff swap does not use" in imported.imported.err


def test_a_damaged_model_is_refused_and_nothing_is_published(imported: Zoo, tmp_path: Path) -> None:
    models = tmp_path / ".assets" / "models"
    zoo.write_models(models, ["yoloface_8n", "inswapper_128"])
    data = bytearray((models / "inswapper_128.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (models / "inswapper_128.onnx").write_bytes(bytes(data))
    registry = tmp_path / "registry"
    run = ff_runner(imported.home, tmp_path)
    result = run("import", str(tmp_path), "--registry", str(registry), "--key", "alice", expect=1)
    assert "inswapper_128.onnx is damaged" in _one_line_error(result)
    assert not registry.exists()


def test_an_unsupported_model_is_refused_at_import(imported: Zoo, tmp_path: Path) -> None:
    models = tmp_path / ".assets" / "models"
    models.mkdir(parents=True)
    data = zoo.build("inswapper_128")  # a swapper's I/O under a detector family's name
    (models / "yoloface_9x.onnx").write_bytes(data)
    (models / "yoloface_9x.hash").write_text(format(zlib.crc32(data), "08x"))
    registry = tmp_path / "registry"
    registry.mkdir()
    before = _tree(registry)
    run = ff_runner(imported.home, tmp_path)
    result = run("import", str(tmp_path), "--registry", str(registry), "--key", "alice", expect=2)
    line = _one_line_error(result)
    assert "error: ff swap cannot run yoloface_9x (face_detector); supported: " in line
    assert "yoloface_8n" in line and "-v" in line
    assert _tree(registry) == before
    verbose = run("import", str(tmp_path), "--registry", str(registry), "--key", "alice", "-v",
                  expect=2)
    assert "input 'input' is missing" in verbose.err  # the differences, one per line


def test_an_unsupported_model_is_refused_at_lock(imported: Zoo, tmp_path: Path) -> None:
    path = tmp_path / "yoloface_9x.onnx"
    path.write_bytes(zoo.build("gfpgan_1.4"))
    registry = tmp_path / "registry"
    run = ff_runner(imported.home, tmp_path)
    run("publish", str(path), "--registry", str(registry), "--model", "yoloface_9x", "--version",
        "1.0.0", "--module", "face_detector", "--key", "alice")
    (tmp_path / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{registry}"\n[trust]\nkeys = ["{imported.key_id}"]\n'
        '[modules]\nface_detector = { model = "yoloface_9x" }\n')
    result = run("lock", expect=2)
    assert "ff swap cannot run yoloface_9x (face_detector); supported:" in _one_line_error(result)
    assert not (tmp_path / "facefusion.lock").exists()


# --- every adapter through ff swap -----------------------------------------------------


@pytest.fixture(scope="module")
def baseline(imported: Zoo) -> np.ndarray:
    """The swap with the base models only: detector, recogniser, inswapper."""
    project = imported.project("baseline", BASE)
    project.run("lock")
    output = project.directory / "out.png"
    project.swap(output)
    return read_image(output)


def _swapped(imported: Zoo, name: str, modules: dict[str, str | list[str]]) -> tuple[np.ndarray, Result]:
    project = imported.project(name, modules)
    project.run("lock")
    output = project.directory / "out.png"
    result = project.swap(output)
    swapped = read_image(output)
    grace = read_image(GRACE_HOPPER)
    assert _changed(swapped, grace, GRACE_FACE) > 8, "the face was swapped"
    for corner in CORNERS:
        np.testing.assert_array_equal(swapped[corner], grace[corner])
    return swapped, result


@pytest.mark.parametrize("detector", ["retinaface_10g", "scrfd_2.5g", "yoloface_8n", "yunet_2023_mar"])
def test_each_detector_finds_the_face_for_ff_swap(imported: Zoo, detector: str) -> None:
    _swapped_image, result = _swapped(imported, detector, {**BASE, "face_detector": detector})
    assert f"face_detector {detector} 1.0.0" in result.out


@pytest.mark.parametrize("landmarkers", [["2dfan4", "fan_68_5"], ["peppa_wutz", "fan_68_5"], ["2dfan4"]],
                         ids=["2dfan4", "peppa_wutz", "2dfan4-alone"])
def test_landmarkers_refine_the_alignment(imported: Zoo, baseline: np.ndarray,
                                          landmarkers: list[str]) -> None:
    modules: dict[str, str | list[str]] = {**BASE, "face_landmarker": landmarkers}
    if len(landmarkers) == 1:
        modules["face_landmarker"] = landmarkers[0]
    swapped, result = _swapped(imported, "-".join(landmarkers), modules)
    assert not np.array_equal(swapped, baseline), "the 68 points moved the alignment"
    for model in landmarkers:
        assert model in result.out


def test_fan_68_5_alone_keeps_the_detector_alignment(imported: Zoo, baseline: np.ndarray) -> None:
    swapped, _ = _swapped(imported, "fan_68_5", {**BASE, "face_landmarker": "fan_68_5"})
    assert np.array_equal(swapped, baseline), "an estimate from the five does not move them"


SWAPPERS = [name for name in zoo.RUNTIME
            if name.startswith(("inswapper", "hyperswap", "simswap", "ghost", "blendswap", "uniface",
                                "hififace"))]


@pytest.mark.parametrize("swapper", SWAPPERS)
def test_each_swapper_swaps_through_ff_swap(imported: Zoo, baseline: np.ndarray, swapper: str) -> None:
    family = next((kind for kind in CONVERTERS if swapper.startswith(kind)), None)
    models: str | list[str] = [swapper, CONVERTERS[family]] if family else swapper
    swapped, result = _swapped(imported, swapper, {**BASE, "face_swapper": models})
    assert f"{swapper} 1.0.0" in result.out
    if swapper != "inswapper_128":
        assert not np.array_equal(swapped, baseline)


def test_a_swapper_without_its_converter_is_noted_at_lock_and_refused_by_swap(imported: Zoo) -> None:
    project = imported.project("ghost-alone", {**BASE, "face_swapper": "ghost_1_256"})
    locked = project.run("lock")
    assert "ff swap runs ghost_1_256 only with its embedding converter (crossface_ghost)" in locked.err
    output = project.directory / "out.png"
    refused = project.swap(output, expect=1)
    assert "needs its embedding converter (crossface_ghost)" in _one_line_error(refused)
    assert not output.exists()


ENHANCERS = [name for name in zoo.RUNTIME if name.startswith(("gfpgan", "gpen", "codeformer",
                                                               "restoreformer"))]


@pytest.mark.parametrize("enhancer", ENHANCERS)
def test_each_enhancer_enhances_through_ff_swap(imported: Zoo, baseline: np.ndarray,
                                                enhancer: str) -> None:
    swapped, result = _swapped(imported, enhancer, {**BASE, "face_enhancer": enhancer})
    assert f"face_enhancer {enhancer} 1.0.0" in result.out
    assert not np.array_equal(swapped, baseline)
    assert _changed(swapped, baseline, GRACE_FACE) > 0.1


def test_models_ff_swap_does_not_use_are_named(imported: Zoo) -> None:
    project = imported.project("with-masker", {**BASE, "face_masker": ["xseg_1", "bisenet_resnet_34"]})
    locked = project.run("lock")
    assert "ff swap does not use bisenet_resnet_34 (face_masker), xseg_1 (face_masker)" in locked.err
    result = project.swap(project.directory / "out.png")
    assert "ff swap does not use face_masker/bisenet_resnet_34 (bisenet_resnet_34)" in result.err


def test_three_commands_from_a_facefusion_install_to_a_swap(imported: Zoo) -> None:
    """README's path: ff import --init, ff lock, ff swap (FaceFusion's defaults)."""
    project = imported.root / "projects" / "from-facefusion"
    project.mkdir(parents=True)
    run = ff_runner(imported.home, project)
    again = run("import", str(imported.models.parent.parent), "--registry", str(imported.registry),
                "--key", "alice", "--init")
    assert "hyperswap_1a_256 1.0.0 (face_swapper): sha256:" in again.out
    assert "(already there)" in again.out  # the same bytes: nothing new published
    assert "wrote" in again.out and "next: ff lock" in again.out
    locked = run("lock").out
    for line in ("face_detector: yoloface_8n 1.0.0", "face_swapper: hyperswap_1a_256 1.0.0",
                 "face_landmarker/2dfan4: 2dfan4 1.0.0", "face_landmarker/fan_68_5: fan_68_5 1.0.0",
                 "content_analyser/nsfw_1: nsfw_1 1.0.0", "face_masker/xseg_1: xseg_1 1.0.0"):
        assert line in locked
    result = run("swap", "--source", str(ASTRONAUT), "--target", str(GRACE_HOPPER), "--output",
                 str(project / "out.png"))
    assert "face_swapper hyperswap_1a_256 1.0.0" in result.out
    # Exported into the very install it came from: FaceFusion's own files are adopted
    # (same bytes), replaced by read-only links to the verified blobs.
    install = imported.models.parent.parent
    exported = run("export", "facefusion", str(install)).out
    assert "face_swapper: hyperswap_1a_256 1.0.0 -> hyperswap_1a_256.onnx (adopted)" in exported
    assert "0 linked, 0 copied, 0 unchanged, 12 adopted" in exported
    for model in imported.models.glob("*.onnx"):
        hash_file = model.with_suffix(".hash")
        assert hash_file.read_text().strip() == format(zlib.crc32(model.read_bytes()), "08x")
    swapper = imported.models / "hyperswap_1a_256.onnx"
    assert swapper.stat().st_nlink >= 2 and not swapper.stat().st_mode & 0o222
    refused = run("import", str(imported.models), "--registry", str(imported.registry), "--key",
                  "alice", "--init", expect=2)
    assert "exists already" in _one_line_error(refused)
