"""Guarded runs (`ff swap --guard`): deliberately broken swapper releases are caught,
switched back to the previous version with the right frames redone and rolled back
in facefusion.lock; good releases never trip.

One base registry and store (standin_inswapper 1.0.0 and 1.1.0, locked at 1.1.0) is
built once; each release under test is published over a copy of it as 1.2.0, the
newer version of the same swapper, and every test upgrades a project of its own to
it (a guard rollback rewrites the lock, so no two tests share one).
"""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from ffswap.face import Face
from ffswap.guard import SATURATED_SHARE, WINDOW, Watch, crop_fault
from ffswap.metrics import correlation
from ffswap.video import Review, process_video
from tests import standins
from tests.broken_releases import broken_swapper
from tests.conftest import Result, Workspace, ff_runner, flag_workspace
from tests.swap_fixtures import ASTRONAUT, GRACE_HOPPER, YUNET, pan_video, read_frames

ort.set_default_logger_severity(3)

MODULES = {
    "face_detector": ("yunet", ">=2026"),
    "face_recognizer": ("standin_arcface", ">=1,<2"),
    "face_swapper": ("standin_inswapper", ">=1,<2"),
}
GOOD = standins.face_swapper(1, 0.8)  # standin_inswapper 1.1.0
RELEASES: dict[str, Callable[[], bytes]] = {
    **{flaw: (lambda flaw=flaw: broken_swapper(GOOD, flaw)) for flaw in
       ("nan", "black", "shifted", "scrambled")},
    "good": lambda: standins.face_swapper(1, 0.7),  # 1.1.0's identity, a little lighter
}
BLANK = 4  # the late-face video's first frames, without a face
GUARD_LINE = re.compile(r"^guard rollback face_swapper 1\.2\.0 -> 1\.1\.0 \((.+)\); (\d+) frames? "
                        r"redone$", re.MULTILINE)


@dataclass(frozen=True)
class Base:
    """The shared registry and store, a project locked at 1.1.0, and the test videos."""

    root: Path
    home: Path
    registry: Path
    key_id: str
    lock_text: str
    videos: dict[str, Path]

    def project(self, directory: Path, home: Path | None = None,
                modules: dict[str, tuple[str, str]] | None = None, extra: str = "") -> Workspace:
        """A project over this registry, its store ``home`` (default: this one), at
        the base lock (1.1.0) unless other ``modules`` are locked afresh."""
        home = home or self.home
        directory.mkdir(parents=True)
        workspace = Workspace(directory.parent, home, directory, self.registry, self.key_id,
                              ff_runner(home, directory))
        workspace.write_toml(modules or MODULES, registry=str(self.registry), extra=extra)
        if modules is None:
            (directory / "facefusion.lock").write_text(self.lock_text)
        else:
            workspace.run("lock")
        return workspace


def _late_face_video(path: Path, image: np.ndarray, frames: int = 12) -> Path:
    """A pan across ``image`` whose first BLANK frames are plain grey: the frames a
    guard judges start at BLANK, the ones before it are written as they are."""
    panned = read_frames(pan_video(path.with_name(f"pan-{path.name}"), image, frames - BLANK))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (256, 256))
    for frame in [np.full_like(panned[0], 128)] * BLANK + panned:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray,
         grace: np.ndarray) -> Base:
    root = tmp_path_factory.mktemp("guard")
    workspace = flag_workspace(root)
    home, registry, key_id, run = workspace.home, workspace.registry, workspace.key_id, workspace.run
    workspace.publish(YUNET, "yunet", "2026.5.0")
    for model, version, module, data in (
        ("standin_arcface", "1.0.0", "face_recognizer", standins.face_recognizer(0)),
        ("standin_inswapper", "1.0.0", "face_swapper", standins.face_swapper(0, 0.6)),
        ("standin_inswapper", "1.1.0", "face_swapper", GOOD),
    ):
        workspace.publish_bytes(data, model, version, module)
    workspace.write_toml(MODULES, registry=str(registry))
    run("lock")
    run("sync")
    videos = root / "videos"
    videos.mkdir()
    return Base(root, home, registry, key_id, workspace.lock_text, {
        "late face": _late_face_video(videos / "late.avi", astronaut),
        "astronaut": pan_video(videos / "astronaut.avi", astronaut, frames=12),
        "grace": pan_video(videos / "grace.avi", grace, frames=12),
    })


@pytest.fixture(scope="module")
def releases(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Base]:
    """A copy of the base registry and store with RELEASES[name] published as
    standin_inswapper 1.2.0, made once per release."""
    made: dict[str, Base] = {}

    def release(name: str) -> Base:
        if name not in made:
            root = tmp_path_factory.mktemp(f"release-{name}")
            home = Path(shutil.copytree(base.home, root / "home"))
            registry = Path(shutil.copytree(base.registry, root / "registry"))
            path = root / "files" / "model.onnx"
            path.parent.mkdir()
            path.write_bytes(RELEASES[name]())
            ff_runner(home, base.root / "project")(
                "publish", str(path), "--registry", str(registry), "--model", "standin_inswapper",
                "--version", "1.2.0", "--module", "face_swapper", "--key", "alice")
            made[name] = Base(root, home, registry, base.key_id, base.lock_text, base.videos)
        return made[name]

    return release


@pytest.fixture(scope="module")
def fallback_output(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    """Each test video swapped, unguarded, by 1.1.0: what a rolled-back run must give."""
    root = tmp_path_factory.mktemp("fallback")
    workspace = base.project(root / "project")
    outputs = {}
    for name, video in base.videos.items():
        output = root / f"{video.stem}.avi"
        _swap(workspace, video, output)
        outputs[name] = read_frames(output)
    return outputs


def upgraded(releases: Callable[[str], Base], name: str, directory: Path, extra: str = "") -> Workspace:
    """A project of its own, locked at 1.1.0 and then upgraded to release ``name``."""
    release = releases(name)
    workspace = release.project(directory / "project",
                                Path(shutil.copytree(release.home, directory / "home")), extra=extra)
    workspace.run("lock", "--upgrade")
    assert tomllib.loads(workspace.lock_text)["modules"]["face_swapper"]["version"] == "1.2.0"
    return workspace


def _swap(workspace: Workspace, target: Path, output: Path, *flags: str, expect: int = 0,
          source: Path = GRACE_HOPPER) -> Result:
    return workspace.run("swap", "--source", str(source), "--target", str(target), "--output",
                         str(output), *flags, expect=expect)


def _differs(a: np.ndarray, b: np.ndarray, original: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` differ where the swap changed ``original`` (the face)."""
    face = np.abs(a.astype(np.int16) - original).max(axis=2) > 8
    return bool(face.any()) and float(np.abs(a.astype(np.int16) - b)[face].mean()) > 2.0


# --- the checks and the pipeline's hold-back, on their own ----------------------------


def test_a_crop_is_faulted_for_non_finite_or_saturated_values_only() -> None:
    face = np.random.default_rng(0).uniform(10, 245, (3, 128, 128)).astype(np.float32)
    assert crop_fault(face) is None
    dark = face.copy()
    dark[:, :40] = -3.0  # a dark band: under the saturated share
    assert crop_fault(dark) is None
    assert crop_fault(np.zeros_like(face)) == "saturated output (100% black or white)"
    white = face.copy()
    white[:, : round(128 * SATURATED_SHARE) + 1] = 300.0
    assert (crop_fault(white) or "").startswith("saturated output")
    broken = face.copy()
    broken[0, 5, 5] = np.nan
    assert crop_fault(broken) == "non-finite output"
    broken[0, 5, 5] = np.inf
    assert crop_fault(broken) == "non-finite output"


def test_crop_correlation_ignores_tint_and_contrast_not_structure(grace: np.ndarray) -> None:
    face = grace[120:340, 160:380].transpose(2, 0, 1).astype(np.float32)  # square, channel-first
    tinted = face * 0.2 + np.array([200.0, 10.0, 90.0], np.float32)[:, None, None]
    assert correlation(face, tinted) == pytest.approx(1.0)
    assert correlation(face, np.roll(face, 45, axis=2)) < 0.6  # shifted
    assert correlation(face, face.transpose(0, 2, 1)) < 0.6  # scrambled
    assert correlation(face, np.zeros_like(face)) == 0.0  # black


class _StandInPipeline:
    """Just enough of a FaceSwapper for a Watch: one fixed face that the detector
    finds where it was, one identity, and a crop that is NaN on ``bad`` frames."""

    def __init__(self, bad: tuple[int, ...] = ()) -> None:
        self.bad = bad
        self.detector, self.recognizer = self, self
        self.face = Face(np.array([10, 10, 60, 60], np.float32), 0.9,
                         np.array([[25, 30], [45, 30], [35, 40], [28, 50], [42, 50]], np.float32))
        self.crop = np.random.default_rng(1).uniform(20, 230, (3, 128, 128)).astype(np.float32)

    def swap_faces(self, frame: np.ndarray, faces: list[Face], source: np.ndarray, *,
                   inspect: Callable[[Face, np.ndarray], None]) -> np.ndarray:
        index = int(frame[0, 0, 0])
        inspect(faces[0], self.crop * (np.nan if index in self.bad else 1.0))
        return frame.copy()

    def detect(self, image: np.ndarray) -> list[Face]:
        return [self.face]

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return np.ones(512, np.float32)


def _judge(bad: tuple[int, ...], frames: int = 30) -> tuple[int | None, Watch]:
    """Frames 0.. through a Watch in order, NaN crops on ``bad`` ones; the recall."""
    reference = _StandInPipeline()
    watch = Watch(reference, np.zeros(512), np.ones(512), "1.1.0")  # type: ignore[arg-type]
    guarded = _StandInPipeline(bad)
    for index in range(frames):
        frame = np.full((8, 8, 3), index, np.uint8)
        watch.swap(index, frame, [guarded.face], guarded, np.zeros(512))  # type: ignore[arg-type]
        recall = watch.settle(index)
        if recall is not None:
            return recall, watch
    return None, watch


def test_one_odd_frame_does_not_trip_a_run_of_them_does() -> None:
    assert _judge((3,))[0] is None
    assert _judge((3, 9))[0] is None  # two, more than a window apart
    # Judged: frame 0 (the first with a face), 11 (bad), and from then on every frame.
    recall, watch = _judge((11, 13, 14))
    assert recall == 11
    assert watch.tripped == (11, "non-finite output on 3 of 5 checked frames from frame 11")
    assert watch.hold == WINDOW


def test_a_recall_redoes_the_held_frames_from_the_first_bad_one(tmp_path: Path) -> None:
    """The video pipeline's side of a trip: frames before the recalled one are
    written as first made; every later one, held back or in work, is made again."""
    target = tmp_path / "levels.avi"
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 12.0, (64, 64))
    for index in range(20):
        writer.write(np.full((64, 64, 3), 10 * index, np.uint8))
    writer.release()
    version = {"now": "A"}
    made: list[tuple[int, str]] = []

    def process(index: int, frame: np.ndarray) -> np.ndarray:
        made.append((index, version["now"]))
        return frame.copy() if version["now"] == "A" else 255 - frame  # frame left unchanged

    def settle(index: int) -> int | None:
        if index == 9 and version["now"] == "A":
            version["now"] = "B"
            return 7
        return None

    result = process_video(target, tmp_path / "out.avi", Review(process, settle, 4), workers=3)
    assert (result.frames, result.redone) == (20, 6)  # 7, 8, 9 and the three in work
    again = made[made.index((7, "B")):]
    assert [index for index, _ in again] == list(range(7, 20))
    levels = [float(frame.mean()) for frame in read_frames(tmp_path / "out.avi")]
    decoded = [float(frame.mean()) for frame in read_frames(target)]
    assert levels == pytest.approx([255 - level if index >= 7 else level
                                    for index, level in enumerate(decoded)], abs=4)

    def late(index: int) -> int | None:
        return 0 if index == 10 else None

    with pytest.raises(RuntimeError, match="frame 0 was recalled after it was written"):
        process_video(target, tmp_path / "late.avi", Review(process, late, 4), workers=3)


# --- ff swap --guard with the releases -------------------------------------------------


@pytest.mark.parametrize("flaw", ["nan", "black", "shifted", "scrambled"])
def test_a_broken_release_is_caught_rolled_back_and_its_frames_redone(
    releases: Callable[[str], Base], fallback_output: dict[str, list[np.ndarray]],
    tmp_path: Path, flaw: str,
) -> None:
    workspace = upgraded(releases, flaw, tmp_path)
    video = releases(flaw).videos["late face"]
    _swap(workspace, video, tmp_path / "broken.avi")  # unguarded: what the release makes
    broken = read_frames(tmp_path / "broken.avi")

    result = _swap(workspace, video, tmp_path / "out.avi", "--guard")
    line = GUARD_LINE.search(result.out)
    assert line is not None, result.out
    reason, redone = line[1], int(line[2])
    # The first face is at BLANK; the third bad frame trips it, and the three frames
    # in work then (execution_threads) are made again too.
    assert reason.endswith(f"on 3 of 3 checked frames from frame {BLANK}"), reason
    assert redone == 3 + 3
    output, original = read_frames(tmp_path / "out.avi"), read_frames(video)
    expected = fallback_output["late face"]
    assert len(output) == len(expected) == 12
    for index, (frame, fallback) in enumerate(zip(output, expected, strict=True)):
        np.testing.assert_array_equal(frame, fallback, err_msg=f"frame {index}")
        if index >= BLANK:
            assert _differs(frame, broken[index], original[index]), \
                f"frame {index} is the broken release's"
    assert "ran face_detector yunet 2026.5.0, face_recognizer standin_arcface 1.0.0, " \
           "face_swapper standin_inswapper 1.1.0" in result.out

    lock = tomllib.loads(workspace.lock_text)
    assert lock["modules"]["face_swapper"]["version"] == "1.1.0"
    assert lock["holds"]["face_swapper"] == {"version": "1.1.0", "rolled-back-from": "1.2.0",
                                             "reason": f"guard rollback: {reason}"}
    status = workspace.run("status").out
    assert f"held (rolled back from 1.2.0; guard rollback: {reason})" in status
    history = workspace.run("history", "face_swapper").out.splitlines()
    assert f"guard rollback face_swapper 1.2.0 -> 1.1.0 ({reason})" in history[-1]
    assert history[-1].rstrip().endswith("standin_inswapper 1.1.0")
    # The hold holds: the broken release does not come back with the next upgrade.
    workspace.run("lock", "--upgrade")
    assert tomllib.loads(workspace.lock_text)["modules"]["face_swapper"]["version"] == "1.1.0"


def test_what_each_flaw_trips_on(releases: Callable[[str], Base], tmp_path: Path) -> None:
    """The reason names the check that failed (from the setting, not the flag)."""
    expected = {"nan": "non-finite output", "black": "saturated output (100% black or white)",
                "shifted": "face unlike 1.1.0's (correlation 0.",
                "scrambled": "face unlike 1.1.0's (correlation 0."}
    for flaw, cause in expected.items():
        workspace = upgraded(releases, flaw, tmp_path / flaw, extra="[settings]\nguard = true\n")
        video = releases(flaw).videos["grace"]
        result = _swap(workspace, video, tmp_path / flaw / "out.avi", source=ASTRONAUT)
        line = GUARD_LINE.search(result.out)
        assert line is not None and line[1].startswith(cause), (flaw, result.out)
    assert re.search(r"^guard +True +\(facefusion\.toml", workspace.run("config").out, re.MULTILINE)


def test_a_broken_release_on_an_image_is_redone_with_the_previous_version(
    releases: Callable[[str], Base], base: Base, tmp_path: Path
) -> None:
    workspace = upgraded(releases, "shifted", tmp_path)
    result = _swap(workspace, GRACE_HOPPER, tmp_path / "out.png", "--guard", source=ASTRONAUT)
    line = GUARD_LINE.search(result.out)
    assert line is not None and line[2] == "1", result.out
    assert line[1].startswith("face unlike 1.1.0's"), line[1]
    fallback = base.project(tmp_path / "fallback")
    _swap(fallback, GRACE_HOPPER, tmp_path / "fallback.png", source=ASTRONAUT)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "out.png")),
                                  cv2.imread(str(tmp_path / "fallback.png")))
    assert tomllib.loads(workspace.lock_text)["holds"]["face_swapper"]["version"] == "1.1.0"


@pytest.mark.parametrize("release", ["good", "base"])
def test_a_good_release_never_trips_and_changes_nothing(
    releases: Callable[[str], Base], base: Base, tmp_path: Path, release: str
) -> None:
    """"base" is 1.1.0 guarded against 1.0.0 (another tint); "good" a 1.2.0 against
    1.1.0. Every test video and the image: no trip, the output the unguarded run's."""
    workspace = base.project(tmp_path / "project") if release == "base" else upgraded(
        releases, release, tmp_path)
    lock = workspace.lock_text
    targets = [*base.videos.values(), GRACE_HOPPER]
    for source in (GRACE_HOPPER, ASTRONAUT):
        for target in targets:
            plain, guarded = (tmp_path / f"{name}{target.suffix}" for name in ("plain", "guarded"))
            _swap(workspace, target, plain, source=source)
            result = _swap(workspace, target, guarded, "--guard", source=source)
            assert not re.search("^guard", result.out, re.MULTILINE), (source, target, result.out)
            if target.suffix == ".png":
                np.testing.assert_array_equal(cv2.imread(str(guarded)), cv2.imread(str(plain)))
            else:
                for a, b in zip(read_frames(guarded), read_frames(plain), strict=True):
                    np.testing.assert_array_equal(a, b)
    assert workspace.lock_text == lock


def test_without_a_previous_version_the_guard_refuses_before_writing(
    base: Base, tmp_path: Path
) -> None:
    workspace = base.project(tmp_path / "project",
                             modules={**MODULES, "face_swapper": ("standin_inswapper", "==1.1.0")})
    output = tmp_path / "out.avi"
    result = _swap(workspace, base.videos["astronaut"], output, "--guard", expect=1)
    text = result.err.strip()
    assert text.startswith("error: no earlier version of face_swapper") and "\n" not in text
    assert not output.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]


def test_a_broken_release_tried_with_use_falls_back_to_the_locked_version(
    releases: Callable[[str], Base], fallback_output: dict[str, list[np.ndarray]],
    tmp_path: Path,
) -> None:
    """`--use` tries a version without the lock, so the guard falls back to the locked
    one and leaves facefusion.lock (and its history) as they were."""
    release = releases("nan")
    workspace = release.project(tmp_path / "project",
                                Path(shutil.copytree(release.home, tmp_path / "home")))
    history = sorted((workspace.home / "projects").glob("*/generations/*.json"))
    before = workspace.lock_text
    result = _swap(workspace, release.videos["late face"], tmp_path / "out.avi", "--guard",
                   "--use", "face_swapper=1.2.0")
    assert re.search(r"^guard switched face_swapper 1\.2\.0 -> 1\.1\.0 \(non-finite output .+\); "
                     r"\d+ frames redone; facefusion\.lock is unchanged \(not the locked version\)$",
                     result.out, re.MULTILINE), result.out
    assert "face_swapper standin_inswapper 1.1.0" in result.out and "(--use" not in result.out
    for frame, fallback in zip(read_frames(tmp_path / "out.avi"), fallback_output["late face"],
                               strict=True):
        np.testing.assert_array_equal(frame, fallback)
    assert workspace.lock_text == before
    assert sorted((workspace.home / "projects").glob("*/generations/*.json")) == history
