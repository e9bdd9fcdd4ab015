"""`ff compare` end to end through the real store: a good release and deliberately
broken ones (tests/broken_releases.py) published as newer versions of the stand-in
swapper, compared on a real portrait and a short generated video; the JSON summary
and the exit code must name exactly the planted regression.

The project locks standin_inswapper 1.1.0 before the broken releases exist (as when
new releases appear upstream and CI compares them before anyone upgrades), so the
default comparison is 1.0.0 (what `ff rollback` would pick) against the locked 1.1.0.
The broken releases are 1.0.0's bytes with one flaw each, so they are compared from
1.0.0: the slow one then computes exactly what 1.0.0 does.

Timings on a shared 2-core machine wobble, so every run passes `--max-slowdown 3`:
the slow release is planted at about 10x a whole frame (SLOW_WORK), far past it,
while a good release's noise stays well below (0.7-1.1x measured).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ffswap.compare import Thresholds, compare
from ffswap.metrics import cosine
from ffswap.runtime import Runtime
from tests import standins
from tests.broken_releases import broken_swapper
from tests.conftest import Result, Workspace, flag_workspace
from tests.swap_fixtures import (
    ASTRONAUT,
    GRACE_HOPPER,
    YUNET,
    FileModelSource,
    pan_video,
    read_test_image,
)

SLOW_WORK = 20
"""Matrix products ([512, 512] each) in the slow release. The planted slowdown is in
whole-frame terms (detect, swap, paste back, as `ff compare` times a frame), not in
terms of the swapper's own run: about 10x the good release's 3 ms frames on these
inputs on an idle 2-core VM, more under load (17-29x measured with a neighbour's
test run), since the products contend for the cores more than the rest of a frame."""
BROKEN = {"nan": "1.2.0", "black": "1.3.0", "shifted": "1.4.0", "scrambled": "1.5.0",
          "slow": "1.6.0"}
MODULES = {
    "face_detector": ("yunet", ">=2026"),
    "face_recognizer": ("standin_arcface", ">=1,<2"),
    "face_swapper": ("standin_inswapper", ">=1,<2"),
}


@dataclass(frozen=True)
class Setup:
    workspace: Workspace
    inputs: Path  # a folder: the portrait and a 6-frame video panning over it
    video: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    root = tmp_path_factory.mktemp("compare")
    workspace = flag_workspace(root)
    registry, run = workspace.registry, workspace.run

    def publish(model: str, version: str, module: str, data: bytes) -> None:
        workspace.publish_bytes(data, model, version, module, f"{model}.onnx")

    good = standins.face_swapper(0, 0.6)
    workspace.publish(YUNET, "yunet", "2026.5.0")
    publish("standin_arcface", "1.0.0", "face_recognizer", standins.face_recognizer(0))
    publish("standin_inswapper", "1.0.0", "face_swapper", good)
    publish("standin_inswapper", "1.1.0", "face_swapper", standins.face_swapper(0, 0.65))
    workspace.write_toml(MODULES, registry=str(registry))
    run("lock")
    run("sync")
    for flaw, version in BROKEN.items():
        publish("standin_inswapper", version, "face_swapper",
                broken_swapper(good, flaw, work=SLOW_WORK))
    inputs = root / "inputs"
    inputs.mkdir()
    shutil.copy(ASTRONAUT, inputs / "astronaut.png")
    video = pan_video(inputs / "pan.avi", read_test_image(ASTRONAUT), frames=6)
    return Setup(workspace, inputs, video)


def _compare(setup: Setup, tmp_path: Path, *args: str, expect: int) -> tuple[Result, dict[str, Any]]:
    summary = tmp_path / "compare.json"
    result = setup.workspace.run("compare", "face_swapper", "--source", str(GRACE_HOPPER),
                                 "--json", str(summary), "--report", str(tmp_path / "report.html"),
                                 "--max-slowdown", "3", *args, expect=expect)
    return result, json.loads(summary.read_text())


def _one_line_error(result: Result) -> str:
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.err.rstrip().endswith(errors[0]), result.err
    return errors[0]


def test_default_compares_the_previous_version_with_the_locked_one(
        setup: Setup, tmp_path: Path) -> None:
    result, summary = _compare(setup, tmp_path, "--inputs", str(setup.inputs), expect=0)
    assert "compared face_swapper standin_inswapper 1.0.0 -> 1.1.0 on 2 input(s), 7 frame(s)" \
        in result.out
    assert (summary["type"], summary["spec"], summary["module"]) == ("ff-compare", 1, "face_swapper")
    assert summary["from"]["version"] == "1.0.0" and summary["to"]["version"] == "1.1.0"
    assert summary["worse"] is False and summary["failed"] == []
    total = summary["total"]
    assert (total["frames"], total["faces"]) == (7, 7)
    assert total["ssim"] > 0.95 and total["from"]["found"] == total["to"]["found"] == 1.0
    assert [(i["kind"], i["frames"]) for i in summary["inputs"]] == [("image", 1), ("video", 6)]
    assert [f["index"] for f in summary["inputs"][1]["per_frame"]] == list(range(6))
    assert summary["thresholds"]["max_slowdown"] == 3.0
    report = (tmp_path / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 6 and report.count("<svg") == 5
    assert "http" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in report


PLANTED = {
    # flaw: the thresholds it must trip (and no others)
    "nan": {"identity", "found"},
    "black": {"found"},
    "shifted": {"landmarks"},
    "scrambled": {"landmarks"},
    "slow": {"slowdown"},
}


@pytest.mark.parametrize("flaw", sorted(PLANTED))
def test_a_broken_release_fails_the_gate_on_its_planted_regression(
        setup: Setup, tmp_path: Path, flaw: str) -> None:
    version = BROKEN[flaw]
    result, summary = _compare(setup, tmp_path, "--from", "1.0.0", "--to", version, "--inputs",
                               str(setup.inputs / "astronaut.png"), str(setup.video), expect=1)
    failed = {failure["metric"] for failure in summary["failed"]}
    total = summary["total"]
    a, b = total["from"], total["to"]
    assert summary["worse"] is True and summary["to"]["version"] == version
    if flaw in ("nan", "black"):
        assert a["found"] == 1.0 and b["found"] == 0.0 and b["displacement"] is None
        assert "found" in failed and total["ssim"] < 0.85
    elif flaw == "slow":
        assert failed == {"slowdown"} and total["slowdown"] > 3
        assert total["ssim"] == 1.0 and total["psnr"] is None  # identical output, just slower
        assert b["identity_source"] == a["identity_source"]
    else:
        assert b["found"] == 1.0 and b["displacement"] > a["displacement"] + 0.05
        assert total["ssim"] < 0.85 and failed == {"landmarks"}
    assert failed == PLANTED[flaw]
    for failure in summary["failed"]:
        assert f"worse: {failure['message']}" in result.err
    assert _one_line_error(result) == (
        f"error: face_swapper {version} is worse than 1.0.0 beyond {len(failed)} threshold(s): "
        + ", ".join(f["metric"] for f in summary["failed"]))


def test_thresholds_decide_the_gate(setup: Setup, tmp_path: Path) -> None:
    lenient = ("--max-ssim-drop", "1", "--max-landmark-shift", "1")
    _, summary = _compare(setup, tmp_path, "--from", "1.1.0", "--to", BROKEN["shifted"],
                          "--inputs", str(setup.video), "--max-frames", "3", *lenient, expect=0)
    assert summary["worse"] is False and summary["total"]["frames"] == 3
    assert [f["index"] for f in summary["inputs"][0]["per_frame"]] == [0, 2, 4]  # spread evenly
    assert summary["thresholds"]["max_ssim_drop"] == 1.0
    # SSIM gates only when asked: it measures change (which the shifted face is).
    _, summary = _compare(setup, tmp_path, "--from", "1.1.0", "--to", BROKEN["shifted"],
                          "--inputs", str(setup.video), "--max-frames", "3",
                          "--max-landmark-shift", "1", "--max-ssim-drop", "0.1", expect=1)
    assert [failure["metric"] for failure in summary["failed"]] == ["ssim"]


def test_bad_input_is_one_error_line_and_exit_2(setup: Setup, tmp_path: Path) -> None:
    run = setup.workspace.run
    base = ("compare", "face_swapper", "--source", str(GRACE_HOPPER))
    cases = {
        "nothing to compare": (*base, "--from", "1.1", "--to", "1.1.0", "--inputs", str(setup.video)),
        "no inputs": base,
        "no such file or folder": (*base, "--inputs", str(tmp_path / "missing.png")),
        "has no images or videos": (*base, "--inputs", str(tmp_path)),
        "not a valid version": (*base, "--to", "latest", "--inputs", str(setup.video)),
    }
    for expected, args in cases.items():
        assert expected in _one_line_error(run(*args, expect=2))
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((64, 64, 3), np.uint8))
    refused = run(*base, "--from", "1.0.0", "--inputs", str(black), expect=1)
    assert "no face found in the inputs" in _one_line_error(refused)
    assert "face_enhancer" in _one_line_error(run("compare", "face_enhancer", "--source",
                                                  str(GRACE_HOPPER), "--inputs", str(setup.video),
                                                  expect=2))


def test_a_compared_recogniser_is_not_its_own_judge(tmp_path: Path, grace: np.ndarray,
                                                   astronaut: np.ndarray) -> None:
    """Comparing the recogniser itself, identity is still measured with the one the
    runtime started with (the locked one), not with the version under test."""
    files = {"r0": standins.face_recognizer(0), "r1": standins.face_recognizer(1),
             "swap": standins.face_swapper(0, 0.6)}
    for name, data in files.items():
        (tmp_path / f"{name}.onnx").write_bytes(data)
    models = FileModelSource({
        "face_detector": {"y": YUNET},
        "face_recognizer": {"1.0.0": tmp_path / "r0.onnx", "2.0.0": tmp_path / "r1.onnx"},
        "face_swapper": {"1.0.0": tmp_path / "swap.onnx"},
    })
    result = compare(models, "face_recognizer", "1.0.0", "2.0.0", grace, [ASTRONAUT],
                     execution_provider="cpu")
    assert models.loads.count(("face_recognizer", "1.0.0")) == 1  # the judge, kept as A
    assert (result.a.version, result.b.version) == ("1.0.0", "2.0.0")
    with Runtime(models, {"face_recognizer": "2.0.0"}, execution_provider="cpu") as runtime:
        output = runtime.swap_image(grace, astronaut)
    with Runtime(models, {"face_recognizer": "1.0.0"}, execution_provider="cpu") as runtime:
        roles = {model.role: model.adapter for model in runtime.active.values()}
        detector, recognizer = roles["detector"], roles["recognizer"]
        source = recognizer.embed(grace, max(detector.detect(grace), key=lambda face: face.area))
        (face,) = detector.detect(astronaut)
        expected = cosine(recognizer.embed(output, face), source)
    assert math.isclose(result.total.b.identity_source, expected, abs_tol=1e-5)


def test_threshold_names_and_defaults_are_the_documented_ones() -> None:
    assert {name: getattr(Thresholds(), name) for name in Thresholds.names()} == {
        "max_ssim_drop": None, "max_identity_drop": 0.10, "max_found_drop": 0.10,
        "max_landmark_shift": 0.05, "max_slowdown": 1.5}


def test_frames_without_faces_are_counted_not_measured(tmp_path: Path, grace: np.ndarray) -> None:
    from ffswap.report import render_html, summary

    (tmp_path / "r.onnx").write_bytes(standins.face_recognizer(0))
    for version, strength in (("1.0.0", 0.6), ("1.1.0", 0.7)):
        (tmp_path / f"{version}.onnx").write_bytes(standins.face_swapper(0, strength))
    models = FileModelSource({
        "face_detector": {"y": YUNET}, "face_recognizer": {"r": tmp_path / "r.onnx"},
        "face_swapper": {v: tmp_path / f"{v}.onnx" for v in ("1.0.0", "1.1.0")}})
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((96, 96, 3), 128, np.uint8))
    result = compare(models, "face_swapper", "1.0.0", "1.1.0", grace, [empty, ASTRONAUT],
                     execution_provider="cpu")
    nothing, portrait = result.inputs
    assert (nothing.summary.frames, nothing.summary.faces, nothing.sample) == (1, 0, None)
    assert nothing.summary.ssim is None and nothing.summary.b.found is None
    assert (result.total.frames, result.total.faces) == (2, 1)
    assert result.total.ssim == portrait.summary.ssim and 0.9 < result.total.ssim < 1
    assert not result.worse or {f.metric for f in result.failures} == {"slowdown"}
    data = summary(result)
    assert data["inputs"][0]["ssim"] is None and data["inputs"][0]["to"]["displacement"] is None
    assert render_html(result).count("data:image/png;base64,") == 3
