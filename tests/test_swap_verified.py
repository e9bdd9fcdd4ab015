"""`ff swap` and the Runtime end to end through the real store: publish → lock → sync →
verified in-memory load → swap, plus every refusal the verified loader promises.

One module-scoped registry + store + project is built once (publishing is the slow
part); tests that change a project or a store work on their own copy of it, so the
shared one always holds the same lock (face_swapper 1.1.0) and an intact store.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from ffstore.context import Context, open_context
from ffstore.errors import InputError, VerificationError
from ffswap.adapters.detector import YuNetDetector
from ffswap.errors import ContractError
from ffswap.locked import LockedModels
from ffswap.media import read_image
from ffswap.runtime import Runtime
from ffswap.sessions import make_session
from tests import standins
from tests.conftest import Result, Workspace, ff_runner, flag_workspace
from tests.swap_fixtures import (
    ASTRONAUT,
    GRACE_HOPPER,
    ULFD,
    YUNET,
    pan_video,
    wrong_swapper,
)

ort.set_default_logger_severity(3)

REPO = Path(__file__).resolve().parents[1]
MODULES = {
    "face_detector": ("yunet", ">=2026"),
    "face_recognizer": ("standin_arcface", ">=1,<2"),
    "face_swapper": ("standin_inswapper", ">=1,<2"),
    "face_enhancer": ("standin_gfpgan", ">=1,<2"),
}
GRACE_FACE = (183, 121, 353, 333)  # YuNet's box for Grace Hopper (x1, y1, x2, y2)
CORNERS = (np.s_[:60, :60], np.s_[:60, -60:], np.s_[-60:, :60], np.s_[-60:, -60:])


@dataclass(frozen=True)
class Published:
    """The shared registry, store and locked + synced project."""

    root: Path
    home: Path
    registry: Path
    workspace: Workspace  # the shared project: lock at face_swapper 1.1.0, synced
    other_key: str  # a second key nobody's models are signed with

    def project(
        self,
        directory: Path,
        modules: dict[str, tuple[str, str]] | None = None,
        trust: list[str] | None = None,
        home: Path | None = None,
    ) -> Workspace:
        """A new project in ``directory``: the shared lock copied when ``modules`` is
        the shared set (no re-lock), otherwise locked afresh."""
        directory.mkdir(parents=True)
        workspace = Workspace(
            directory.parent, home or self.home, directory, self.registry,
            self.workspace.key_id, ff_runner(home or self.home, directory),
        )
        workspace.write_toml(modules or MODULES, trust=trust, registry=str(self.registry))
        if modules is None:
            shutil.copy(self.workspace.project / "facefusion.lock", directory / "facefusion.lock")
        else:
            workspace.run("lock")
        return workspace


def context_of(workspace: Workspace) -> Context:
    """What `ff` would build for the project, without the test process's environment."""
    return open_context(workspace.project, {"home": str(workspace.home)}, environ={})


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    root = tmp_path_factory.mktemp("verified")
    workspace = flag_workspace(root)
    home, registry, run = workspace.home, workspace.registry, workspace.run
    other_key = run("key", "generate", "bob").out.strip()
    releases: list[tuple[str, str, str, str, bytes]] = [
        ("standin_arcface", "1.0.0", "face_recognizer", "arcface.onnx", standins.face_recognizer(0)),
        ("standin_inswapper", "1.0.0", "face_swapper", "inswapper_128.onnx",
         standins.face_swapper(0, 0.6)),
        ("standin_inswapper", "1.1.0", "face_swapper", "inswapper_128.onnx",
         standins.face_swapper(1, 0.8)),
        ("standin_gfpgan", "1.4.0", "face_enhancer", "gfpgan_1.4.onnx", standins.face_enhancer(0)),
        ("wrong_inswapper", "1.0.0", "face_swapper", "wrong.onnx", wrong_swapper()),
    ]
    workspace.publish(YUNET, "yunet", "2026.5.0")
    for model, version, module, name, data in releases:
        workspace.publish_bytes(data, model, version, module, name)
    workspace.write_toml(MODULES, registry=str(registry))
    run("lock")
    run("sync")
    lock = tomllib.loads(workspace.lock_text)
    assert lock["modules"]["face_swapper"]["version"] == "1.1.0"
    return Published(root, home, registry, workspace, other_key)


@pytest.fixture
def counted_sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Sizes of the models the Runtime made sessions for, in order."""
    made: list[int] = []

    def counting(data: bytes, *args: object, **kwargs: object) -> object:
        made.append(len(data))
        return make_session(data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("ffswap.sessions.make_session", counting)
    yield made


def _swap(workspace: Workspace, source: Path, target: Path, output: Path, expect: int = 0) -> Result:
    return workspace.run("swap", "--source", str(source), "--target", str(target),
                         "--output", str(output), expect=expect)


def _one_line_error(result: Result) -> str:
    text = result.err.strip()
    assert text.startswith("error: ") and "\n" not in text, result.err
    return text


def _changed(output: np.ndarray, original: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x1, y1, x2, y2 = box
    return float(np.abs(output[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2]).mean())


# --- ff swap on images and video ----------------------------------------------------


def test_swap_image_changes_the_face_only_and_writes_atomically(
    published: Published, tmp_path: Path, grace: np.ndarray
) -> None:
    output = tmp_path / "out.png"
    result = _swap(published.workspace, ASTRONAUT, GRACE_HOPPER, output)
    assert f"wrote {output} (1 image; CPUExecutionProvider)" in result.out
    swapped = read_image(output)
    assert swapped.shape == grace.shape
    assert _changed(swapped, grace, GRACE_FACE) > 10
    for corner in CORNERS:
        np.testing.assert_array_equal(swapped[corner], grace[corner])
    assert os.listdir(tmp_path) == ["out.png"], "no temp files left behind"


def test_swap_video_keeps_every_frame(published: Published, tmp_path: Path, astronaut: np.ndarray) -> None:
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=10)
    output = tmp_path / "out.avi"
    result = _swap(published.workspace, GRACE_HOPPER, target, output)
    assert "10 frames, 10 with faces" in result.out
    capture = cv2.VideoCapture(str(output))
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
        ok, frame = capture.read()
    finally:
        capture.release()
    assert ok and frame.shape == (256, 256, 3)
    assert sorted(os.listdir(tmp_path)) == ["out.avi", "pan.avi"]


def test_swap_execution_threads_flag_and_setting(published: Published, tmp_path: Path,
                                                 astronaut: np.ndarray) -> None:
    workspace = published.workspace
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=4)
    result = workspace.run("swap", "--source", str(GRACE_HOPPER), "--target", str(target),
                           "--output", str(tmp_path / "out.avi"), "--execution-threads", "0",
                           expect=2)
    assert "--execution-threads" in _one_line_error(result)
    assert not (tmp_path / "out.avi").exists()
    result = workspace.run("swap", "--source", str(GRACE_HOPPER), "--target", str(target),
                           "--output", str(tmp_path / "out.avi"), "--execution-threads", "1")
    assert "4 frames, 4 with faces" in result.out
    assert "execution_threads    3" in workspace.run("config").out


def test_swap_every_face_of_a_two_face_image(
    published: Published, tmp_path: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    frame = np.hstack([astronaut, cv2.resize(grace, (437, 512), interpolation=cv2.INTER_AREA)])
    target = tmp_path / "two.png"
    cv2.imwrite(str(target), frame)
    _swap(published.workspace, GRACE_HOPPER, target, tmp_path / "out.png")
    output = read_image(tmp_path / "out.png")
    faces = YuNetDetector(make_session(YUNET.read_bytes(), "cpu")[0]).detect(frame)
    assert len(faces) == 2
    for face in faces:
        assert _changed(output, frame, tuple(face.box.astype(int))) > 10
    for corner in CORNERS:
        np.testing.assert_array_equal(output[corner], frame[corner])


def test_target_without_a_face_is_one_clear_error(published: Published, tmp_path: Path) -> None:
    target = tmp_path / "grey.png"
    cv2.imwrite(str(target), np.full((200, 200, 3), 128, dtype=np.uint8))
    result = _swap(published.workspace, ASTRONAUT, target, tmp_path / "out.png", expect=1)
    assert "no face found in the target image" in _one_line_error(result)
    assert os.listdir(tmp_path) == ["grey.png"]


@pytest.mark.parametrize("name", ["garbage.png", "garbage.avi", "missing.jpg"])
def test_unreadable_target_is_bad_input(published: Published, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    if not name.startswith("missing"):
        target.write_bytes(b"not media at all" * 8)
    output = tmp_path / f"out{target.suffix}"
    result = _swap(published.workspace, ASTRONAUT, target, output, expect=2)
    assert "cannot" in _one_line_error(result) and str(target) in result.err
    assert not output.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


# --- refusals -------------------------------------------------------------------------


def test_external_data_is_loaded_from_verified_memory(
    published: Published, tmp_path: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    """A model whose weights sit in an external data file: both files are read once,
    checked, and handed to onnxruntime from memory. Same weights, same pixels."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load_from_string(standins.face_swapper(1, 0.8))  # standin_inswapper 1.1.0
    # onnx's default threshold: weights go out, small shape constants stay inline (as
    # onnxruntime needs them for shape inference before external data is attached).
    convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                   location="inswapper_128.onnx.data", size_threshold=1024)
    split = tmp_path / "split"
    split.mkdir()
    onnx.save_model(model, str(split / "inswapper_128.onnx"))
    assert (split / "inswapper_128.onnx.data").stat().st_size > 0  # the weights went out
    published.workspace.run("publish", str(split / "inswapper_128.onnx"),
                            str(split / "inswapper_128.onnx.data"), "--registry",
                            str(published.registry), "--model", "standin_inswapper_split",
                            "--version", "1.0.0", "--module", "face_swapper", "--key", "alice")
    home = tmp_path / "home"
    workspace = published.project(
        tmp_path / "project", {**MODULES, "face_swapper": ("standin_inswapper_split", "==1.0.0")},
        home=home)
    workspace.run("sync")
    files = tomllib.loads(workspace.lock_text)["modules"]["face_swapper"]["files"]
    assert [file["path"] for file in files] == ["inswapper_128.onnx", "inswapper_128.onnx.data"]

    with Runtime(LockedModels(context_of(published.workspace)), execution_provider="cpu") as whole:
        expected = whole.swap_image(astronaut, grace)
    with Runtime(LockedModels(context_of(workspace)), execution_provider="cpu") as runtime:
        np.testing.assert_array_equal(runtime.swap_image(astronaut, grace), expected)

    data = home / "blobs" / "sha256" / files[1]["digest"].split(":")[1]
    damaged = bytearray(data.read_bytes())
    damaged[-1] ^= 0xFF
    data.unlink()  # the store may share the inode with the registry: damage only this copy
    data.write_bytes(damaged)
    with pytest.raises(VerificationError, match="corrupt"):
        Runtime(LockedModels(context_of(workspace)), execution_provider="cpu")


def test_tampered_store_blob_is_refused_before_any_session(
    published: Published, tmp_path: Path, counted_sessions: list[int]
) -> None:
    home = tmp_path / "home"
    workspace = published.project(tmp_path / "project", home=home)
    workspace.run("sync")
    entry = tomllib.loads(workspace.lock_text)["modules"]["face_swapper"]
    digest = entry["files"][0]["digest"]
    blob = home / "blobs" / "sha256" / digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.unlink()  # the store may share the inode with the registry: damage only this copy
    blob.write_bytes(data)

    with pytest.raises(VerificationError, match=re.escape(f"stored blob {digest} is corrupt")):
        LockedModels(context_of(workspace)).load("face_swapper")
    with pytest.raises(VerificationError, match="corrupt"):
        Runtime(LockedModels(context_of(workspace)), execution_provider="cpu")
    # The swapper's session may be built while its bytes are hashed, but it is dropped:
    # the runtime never came up, so nothing ran on the tampered bytes.
    assert len(counted_sessions) == 3
    result = _swap(workspace, ASTRONAUT, GRACE_HOPPER, tmp_path / "out.png", expect=1)
    assert "corrupt" in _one_line_error(result)
    assert not (tmp_path / "out.png").exists()


def test_module_not_in_the_lock_is_unknown(published: Published, tmp_path: Path) -> None:
    modules = {name: spec for name, spec in MODULES.items() if name != "face_enhancer"}
    workspace = published.project(tmp_path / "project", modules)
    models = LockedModels(context_of(workspace))
    with pytest.raises(InputError, match=r"unknown module 'face_enhancer'; modules in facefusion\.lock"):
        models.load("face_enhancer")
    with pytest.raises(InputError, match="unknown module 'face_enhancer'"):
        Runtime(models, {"face_enhancer": None}, execution_provider="cpu")
    # `ff swap` runs without the optional enhancer when it is not locked.
    _swap(workspace, ASTRONAUT, GRACE_HOPPER, tmp_path / "out.png")


def test_untrusted_signer_is_refused_by_name(
    published: Published, tmp_path: Path, counted_sessions: list[int]
) -> None:
    workspace = published.project(tmp_path / "project", trust=[published.other_key])
    with pytest.raises(VerificationError) as raised:
        LockedModels(context_of(workspace)).load("face_detector")
    # Refused at the registry's signed index or the manifest, whichever is checked
    # first; either way the message names the signer so the user can decide.
    assert published.workspace.key_id in str(raised.value)
    assert re.search("not trusted|untrusted", str(raised.value))
    result = _swap(workspace, ASTRONAUT, GRACE_HOPPER, tmp_path / "out.png", expect=1)
    assert published.workspace.key_id in _one_line_error(result)
    assert counted_sessions == []
    assert not (tmp_path / "out.png").exists()


def test_io_contract_mismatch_is_refused_at_lock(published: Published, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="ff swap cannot run wrong_inswapper"):
        published.project(tmp_path / "project", {**MODULES, "face_swapper": ("wrong_inswapper", ">=1")})
    assert not (tmp_path / "project" / "facefusion.lock").exists()


def test_io_contract_mismatch_is_refused_before_a_session(
    published: Published, tmp_path: Path, counted_sessions: list[int],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock made where ff swap's check was not installed (or by hand): the runtime
    # still refuses the model before it builds a session.
    monkeypatch.setattr("ffstore.lock_changes.check_models", lambda models, complete: [])
    workspace = published.project(tmp_path / "project",
                                  {**MODULES, "face_swapper": ("wrong_inswapper", ">=1")})
    with pytest.raises(ContractError) as raised:
        Runtime(LockedModels(context_of(workspace)), execution_provider="cpu")
    message = str(raised.value)
    assert "face_swapper" in message
    assert "input 'target'" in message and "[1,3,256,256]" in message
    assert "expected [1,3,128,128]" in message
    assert len(counted_sessions) == 2, "detector and recogniser only, none for the swapper"
    result = _swap(workspace, ASTRONAUT, GRACE_HOPPER, tmp_path / "out.png", expect=1)
    assert "expected [1,3,128,128]" in _one_line_error(result)
    assert not (tmp_path / "out.png").exists()


# --- hot switching --------------------------------------------------------------------


def test_hot_switch_after_rollback_and_under_load(
    published: Published, tmp_path: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    source = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    target = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    workspace = published.project(tmp_path / "project")
    with Runtime(LockedModels(context_of(workspace)), execution_provider="cpu") as runtime:
        assert runtime.active["face_swapper"].version == "1.1.0"
        newer = runtime.swap_image(source, target)

        assert "1.1.0 -> 1.0.0" in workspace.run("rollback", "face_swapper").out
        runtime.switch("face_swapper", "1.0.0")
        assert runtime.active["face_swapper"].version == "1.0.0"
        older = runtime.swap_image(source, target)
        assert not np.array_equal(newer, older)
        # The switched-in model is exactly what a fresh process gets from the new lock.
        with Runtime(LockedModels(context_of(workspace)), execution_provider="cpu") as fresh:
            assert fresh.active["face_swapper"].version == "1.0.0"
            assert np.array_equal(fresh.swap_image(source, target), older)

        # Switch back and forth while another thread keeps swapping frames: every frame
        # is wholly one version's output, never a mix, and nothing fails.
        errors: list[BaseException] = []
        outputs: list[np.ndarray] = []
        done = threading.Event()

        def work() -> None:
            try:
                while not done.is_set() or not outputs:
                    outputs.append(runtime.swap_image(source, target))
            except BaseException as error:
                errors.append(error)

        worker = threading.Thread(target=work)
        worker.start()
        switches = 0
        try:
            # At least 6 switches and 8 frames, so both really interleave.
            while (switches < 6 or len(outputs) < 8) and worker.is_alive():
                switches += 1
                runtime.switch("face_swapper", ("1.1.0", "1.0.0")[switches % 2])
        finally:
            done.set()
            worker.join()
        assert errors == []
        assert all(np.array_equal(o, newer) or np.array_equal(o, older) for o in outputs)
        assert runtime.active["face_swapper"].version == ("1.1.0", "1.0.0")[switches % 2]


# --- determinism ----------------------------------------------------------------------


def test_swap_is_bit_identical_across_processes_and_stores(published: Published, tmp_path: Path) -> None:
    """Two interpreters, two store locations synced from the same lock, same bytes out."""
    workspace = published.project(tmp_path / "project")
    outputs, processes = [], []
    for name in ("a", "b"):
        home = tmp_path / f"home-{name}"
        ff_runner(home, workspace.project)("sync")
        outputs.append(tmp_path / f"out-{name}.png")
        env = {**os.environ, "FF_HOME": str(home), "PYTHONPATH": str(REPO)}
        env.pop("FF_PROJECT", None)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "ffstore", "swap", "--source", str(ASTRONAUT),
             "--target", str(GRACE_HOPPER), "--output", str(outputs[-1])],
            cwd=workspace.project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    first, second = (path.read_bytes() for path in outputs)
    assert first == second
    # ...and the same as this process made through the shared store.
    _swap(published.workspace, ASTRONAUT, GRACE_HOPPER, tmp_path / "here.png")
    assert (tmp_path / "here.png").read_bytes() == first


def test_a_failed_digest_check_outranks_a_failed_parse() -> None:
    """Bytes that are both corrupt and unparsable are reported as corrupt."""
    from ffswap.model_source import LoadedModel
    from ffswap.sessions import make_checked_session

    def corrupt() -> None:
        raise VerificationError("stored blob sha256:00 is corrupt")

    garbage = LoadedModel("face_swapper", "m", "1.0.0", b"not onnx" * 64, [], [], corrupt)
    with pytest.raises(VerificationError, match="corrupt"):
        make_checked_session(garbage, "cpu")
    unchecked = LoadedModel("face_swapper", "m", "1.0.0", b"not onnx" * 64, [], [], lambda: None)
    with pytest.raises(Exception, match=r"(?i)protobuf|invalid|load"):
        make_checked_session(unchecked, "cpu")


def test_onnxruntime_refusing_a_model_is_a_swap_error() -> None:
    """A graph whose I/O fits but whose operator onnxruntime does not know."""
    from onnx import TensorProto, helper

    from ffswap.errors import ModelLoadError
    from ffswap.sessions import make_session

    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["target", "source"], ["output"])], "odd",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, 128, 128]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 128, 128])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load the model"):
        make_session(model.SerializeToString(), "cpu")


@pytest.mark.parametrize("path", [YUNET, *ULFD.values()], ids=lambda p: p.name)
def test_a_session_from_verified_bytes_computes_exactly_what_one_from_the_file_does(
        path: Path, grace: np.ndarray) -> None:
    """make_session hands the weights over as views of the verified bytes (one copy in
    onnxruntime, not three); the session must be the one onnxruntime builds itself."""
    from ffswap.sessions import CPU, session_options

    data = path.read_bytes()
    session, _ = make_session(data, "cpu")
    reference = ort.InferenceSession(str(path), sess_options=session_options(), providers=[CPU])
    (feed,) = reference.get_inputs()
    height, width = (256, 320) if isinstance(feed.shape[2], str) else feed.shape[2:]
    image = cv2.resize(grace, (width, height)).transpose(2, 0, 1)[None].astype(np.float32)
    got = session.run(None, {feed.name: image})
    want = reference.run(None, {feed.name: image})
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    # Neither the model's bytes nor views of them stay with the session.
    assert session._model_bytes is None and session._sess_options_initial is None


def test_onnxruntime_copies_the_weights_it_is_handed(grace: np.ndarray) -> None:
    """The weights reach onnxruntime as views of the verified buffer, which the runtime
    frees once the session exists; onnxruntime's contract for external initializers is
    to copy them. Checked, not assumed: overwrite the buffer, the session must not
    notice, and nothing may still hold a view of it."""
    import mmap

    raw = YUNET.read_bytes()
    memory = mmap.mmap(-1, len(raw), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    memory[:] = raw
    session, _ = make_session(memory, "cpu")
    image = cv2.resize(grace, (320, 256)).transpose(2, 0, 1)[None].astype(np.float32)
    before = session.run(None, {"input": image})
    memory[:] = bytes(len(raw))
    after = session.run(None, {"input": image})
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    memory.close()  # BufferError if a view were still alive


# --- what ff swap says: fetching, offline, video progress, audio ----------------------


def test_swap_fetches_what_the_store_lacks_or_refuses_offline(
    published: Published, tmp_path: Path
) -> None:
    workspace = published.project(tmp_path / "project", home=tmp_path / "empty-home")
    output = tmp_path / "out.png"
    refused = workspace.run("swap", "--source", str(ASTRONAUT), "--target", str(GRACE_HOPPER),
                            "--output", str(output), "--offline", expect=1)
    assert "run `ff sync`" in _one_line_error(refused)
    assert not output.exists()
    _swap(workspace, ASTRONAUT, GRACE_HOPPER, output)  # online: fetched, verified, swapped
    assert output.exists()
    assert "synced" in workspace.run("status").out


def test_frame_progress_shows_rate_and_eta_and_ends_its_line() -> None:
    from ffswap.cli import FrameProgress

    stream = io.StringIO()
    progress = FrameProgress(stream)
    for done in range(1, 11):
        progress(done, 10)
    progress.end()
    text = stream.getvalue()
    assert "frames 10/10" in text and " fps" in text and "ETA 0:00" in text
    assert text.endswith("\n")


def _with_sound(video: Path, output: Path) -> Path:
    """`video` with a one-second tone muxed in (Matroska holds MJPG and PCM)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "pcm_s16le", "-shortest", str(output)], check=True)
    return output


def _audio_streams(video: Path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
                           "stream=codec_name", "-of", "csv=p=0", str(video)],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (.ci/run installs it)")
def test_swap_video_keeps_the_audio(published: Published, tmp_path: Path, astronaut: np.ndarray) -> None:
    target = _with_sound(pan_video(tmp_path / "pan.avi", astronaut, frames=12), tmp_path / "pan.mkv")
    assert _audio_streams(target) == "pcm_s16le"
    output = tmp_path / "out.mkv"
    result = _swap(published.workspace, GRACE_HOPPER, target, output)
    assert "12 frames, 12 with faces, audio kept" in result.out
    assert _audio_streams(output) == "pcm_s16le"
    capture = cv2.VideoCapture(str(output))
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    finally:
        capture.release()
    assert sorted(os.listdir(tmp_path)) == ["out.mkv", "pan.avi", "pan.mkv"], "no temp files left"


def test_swap_video_says_when_ffmpeg_is_missing(
    published: Published, tmp_path: Path, astronaut: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=4)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    result = _swap(published.workspace, GRACE_HOPPER, target, tmp_path / "out.avi")
    assert "4 frames, 4 with faces" in result.out
    assert "ffmpeg is not installed: the output has no sound" in result.err
    assert (tmp_path / "out.avi").exists()


def test_a_release_for_a_newer_ff_is_refused_by_rollback_and_by_the_runtime(
    published: Published, tmp_path: Path
) -> None:
    registry = shutil.copytree(published.registry, tmp_path / "registry")  # the shared one stays
    workspace = published.project(tmp_path / "project")
    workspace.write_toml(MODULES, registry=str(registry))
    path = tmp_path / "future" / "inswapper_128.onnx"
    path.parent.mkdir()
    path.write_bytes(standins.face_swapper(3))
    workspace.run("publish", str(path), "--registry", str(registry), "--model",
                  "standin_inswapper", "--version", "1.9.0", "--module", "face_swapper", "--key",
                  "alice", "--requires-ff", ">=99")
    before = workspace.lock_text
    refused = workspace.run("rollback", "face_swapper", "--to", "1.9.0", expect=2)
    assert "needs ff >=99" in _one_line_error(refused)
    assert workspace.lock_text == before
    with Runtime(LockedModels(context_of(workspace)), execution_provider="cpu") as runtime:
        with pytest.raises(InputError, match="needs ff >=99"):
            runtime.switch("face_swapper", "1.9.0")
        assert runtime.active["face_swapper"].version == "1.1.0"
