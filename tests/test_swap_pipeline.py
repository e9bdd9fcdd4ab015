"""End-to-end tests of the face-swap runtime with real detectors and stand-in models."""

from __future__ import annotations

import gc
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from ffswap import sessions
from ffswap.adapters.detector import UlfdDetector, YuNetDetector
from ffswap.adapters.factory import select_adapter
from ffswap.adapters.swapper import FaceSwapAdapter, read_emap
from ffswap.contracts import check_contract
from ffswap.errors import ContractError, MediaError, NoFaceError, ProviderUnavailableError
from ffswap.media import read_image, write_image
from ffswap.pipeline import FaceSwapper
from ffswap.runtime import Runtime
from ffswap.sessions import CPU, make_session
from ffswap.zoo import INSWAPPER_CONTRACT
from tests import standins
from tests.swap_fixtures import (
    ASTRONAUT,
    GRACE_HOPPER,
    ULFD,
    YUNET,
    FileModelSource,
    describe_io,
    pan_video,
    read_frames,
    read_test_image,
    rss_bytes,
    wrong_swapper,
)

SWAP_PAD = 4 * 2**20  # padded swappers: a leaked model would show up in RSS


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("standins")
    standins.write_standin("face_recognizer", directory / "recognizer.onnx")
    standins.write_standin("face_swapper", directory / "swapper-0.onnx", size=SWAP_PAD)
    standins.write_standin("face_swapper", directory / "swapper-1.onnx", variant=1, size=SWAP_PAD)
    standins.write_standin("face_enhancer", directory / "enhancer.onnx")
    return directory


@pytest.fixture(scope="session")
def catalog(model_dir: Path) -> dict[str, dict[str, Path]]:
    return {
        "face_detector": {"yunet": YUNET, "ulfd": ULFD["RFB-320"]},
        "face_recognizer": {"1.0.0": model_dir / "recognizer.onnx"},
        "face_swapper": {
            "1.0.0": model_dir / "swapper-0.onnx",
            "1.1.0": model_dir / "swapper-1.onnx",
        },
        "face_enhancer": {"1.0.0": model_dir / "enhancer.onnx"},
    }


@pytest.fixture(scope="module")
def runtime(catalog: dict[str, dict[str, Path]]) -> Runtime:
    return Runtime(FileModelSource(catalog), execution_provider="cpu")


def _session(path: Path) -> ort.InferenceSession:
    return make_session(path.read_bytes(), "cpu")[0]


# --- detection -------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["yunet", *ULFD])
@pytest.mark.parametrize("image_path", [ASTRONAUT, GRACE_HOPPER], ids=["astronaut", "grace"])
def test_detector_finds_the_one_face(detector: str, image_path: Path) -> None:
    image = read_test_image(image_path)
    path = YUNET if detector == "yunet" else ULFD[detector]
    adapter_class = select_adapter("face_detector", *describe_io(path.read_bytes()))
    assert adapter_class is (YuNetDetector if detector == "yunet" else UlfdDetector)
    faces = adapter_class(_session(path)).detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    x1, y1, x2, y2 = face.box
    assert (x1 < face.landmarks[:, 0]).all() and (face.landmarks[:, 0] < x2).all()
    assert (y1 < face.landmarks[:, 1]).all() and (face.landmarks[:, 1] < y2).all()
    assert face.landmarks[0, 0] < face.landmarks[1, 0], "eyes must be ordered left to right"
    assert face.estimated is (detector != "yunet")


def test_yunet_decoding_matches_opencv(grace: np.ndarray) -> None:
    """Our decode of the raw heads equals OpenCV's FaceDetectorYN on the same model."""
    height, width = grace.shape[:2]
    reference = cv2.FaceDetectorYN.create(str(YUNET), "", (width, height), 0.5, 0.3)
    _, expected = reference.detect(grace)
    (face,) = YuNetDetector(_session(YUNET)).detect(grace)
    x, y, w, h = expected[0, :4]
    np.testing.assert_allclose(face.box, [x, y, x + w, y + h], atol=0.5)
    np.testing.assert_allclose(face.landmarks.reshape(-1), expected[0, 4:14], atol=0.5)


# --- image swaps -----------------------------------------------------------------


def test_swap_changes_the_face_and_nothing_far_from_it(
    runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    output = runtime.swap_image(astronaut, grace)
    assert output.shape == grace.shape and output.dtype == np.uint8
    x1, y1, x2, y2 = (183, 121, 353, 333)  # YuNet's box for Grace Hopper
    inside = np.abs(output[y1:y2, x1:x2].astype(int) - grace[y1:y2, x1:x2]).mean()
    assert inside > 10
    for corner in (np.s_[:60, :60], np.s_[:60, -60:], np.s_[-60:, :60], np.s_[-60:, -60:]):
        np.testing.assert_array_equal(output[corner], grace[corner])


def test_swap_is_deterministic(runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray) -> None:
    first = runtime.swap_image(astronaut, grace)
    second = runtime.swap_image(astronaut, grace)
    assert np.array_equal(first, second)


def test_pipeline_from_ready_sessions_matches_the_runtime(
    runtime: Runtime, model_dir: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    swapper = FaceSwapper.from_sessions(
        detector=_session(YUNET),
        recognizer=_session(model_dir / "recognizer.onnx"),
        swapper=_session(model_dir / "swapper-0.onnx"),
    )
    assert np.array_equal(swapper.swap_image(astronaut, grace), runtime.swap_image(astronaut, grace))


def test_inswapper_emap_is_read_from_the_model_bytes_and_applied(
    model_dir: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    data = standins.face_swapper(emap=True)
    emap = standins.face_swapper_emap()
    assert np.array_equal(read_emap(data), emap)
    # Models whose last initializer is anything else get no emap.
    assert read_emap(standins.face_swapper()) is None
    assert read_emap((model_dir / "swapper-0.onnx").read_bytes()) is None

    session = make_session(data, "cpu")[0]
    with_emap = FaceSwapAdapter(session, model=data)
    embedding = np.random.default_rng(5).standard_normal(512).astype(np.float32) * 3.0
    reference = np.dot(embedding.reshape(1, -1), emap) / np.linalg.norm(embedding)
    np.testing.assert_allclose(with_emap.source_input(embedding), reference, rtol=1e-5, atol=1e-6)
    # Without an emap the swapper gets the unit embedding (FaceFusion's embedding_norm).
    plain = FaceSwapAdapter(session).source_input(embedding)
    assert np.array_equal(plain, embedding.reshape(1, -1) / np.linalg.norm(embedding))

    def pipeline(model: bytes | None) -> FaceSwapper:
        return FaceSwapper.from_sessions(
            detector=_session(YUNET),
            recognizer=_session(model_dir / "recognizer.onnx"),
            swapper=session,
            swapper_model=model,
        )

    applied = pipeline(data).swap_image(astronaut, grace)
    assert not np.array_equal(applied, pipeline(None).swap_image(astronaut, grace))
    # Same result as feeding the numpy reference latent to the swapper.
    source = pipeline(None).source_embedding(astronaut)
    latent = np.dot(source.reshape(1, -1), emap) / np.linalg.norm(source)
    faces = pipeline(None).faces(grace)
    assert np.array_equal(applied, pipeline(data).swap_faces(grace, faces, latent))


def test_runtime_applies_the_emap(
    catalog: dict[str, dict[str, Path]], tmp_path: Path, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    path = standins.write_standin("face_swapper", tmp_path / "emap.onnx", emap=True)
    with_emap = {**catalog, "face_swapper": {"2.0.0": path}}
    runtime = Runtime(FileModelSource(with_emap), execution_provider="cpu")
    try:
        swapper = runtime.active["face_swapper"].adapter
        assert np.array_equal(swapper._emap, standins.face_swapper_emap())
        expected = FaceSwapper.from_sessions(
            detector=_session(YUNET),
            recognizer=_session(catalog["face_recognizer"]["1.0.0"]),
            swapper=_session(path),
            swapper_model=path.read_bytes(),
        ).swap_image(astronaut, grace)
        assert np.array_equal(runtime.swap_image(astronaut, grace), expected)
    finally:
        runtime.close()


def test_every_face_of_a_multi_face_frame_is_swapped(
    runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    grace_small = cv2.resize(grace, (437, 512), interpolation=cv2.INTER_AREA)
    frame = np.hstack([astronaut, grace_small])
    detector = YuNetDetector(_session(YUNET))
    faces = sorted(detector.detect(frame), key=lambda face: face.box[0])
    assert len(faces) == 2
    output = runtime.swap_image(grace, frame)
    for face in faces:
        x1, y1, x2, y2 = face.box.astype(int)
        change = np.abs(output[y1:y2, x1:x2].astype(int) - frame[y1:y2, x1:x2]).mean()
        assert change > 10


def test_enhancer_changes_the_face_only(
    catalog: dict[str, dict[str, Path]], runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray
) -> None:
    with Runtime(FileModelSource(catalog), {"face_enhancer": None}, execution_provider="cpu") as enhanced:
        output = enhanced.swap_image(astronaut, grace)
    plain = runtime.swap_image(astronaut, grace)
    assert not np.array_equal(output, plain)
    np.testing.assert_array_equal(output[:40, :40], grace[:40, :40])


def test_no_face_raises(runtime: Runtime, astronaut: np.ndarray) -> None:
    grey = np.full((256, 256, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="target"):
        runtime.swap_image(astronaut, grey)
    with pytest.raises(NoFaceError, match="source"):
        runtime.swap_image(grey, astronaut)


# --- contracts -------------------------------------------------------------------


def _wrong_swapper(path: Path) -> Path:
    path.write_bytes(wrong_swapper())
    return path


def test_contract_mismatch_is_refused_before_a_session(
    catalog: dict[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = {**catalog, "face_swapper": {"9.9.9": _wrong_swapper(tmp_path / "wrong.onnx")}}
    made: list[str] = []
    real_make_session = make_session

    def counting_make_session(data: bytes, *args: object, **kwargs: object) -> object:
        made.append("session")
        return real_make_session(data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("ffswap.sessions.make_session", counting_make_session)
    with pytest.raises(ContractError) as raised:
        Runtime(FileModelSource(wrong), execution_provider="cpu")
    message = str(raised.value)
    assert "face_swapper" in message
    assert "input 'target'" in message and "[1,3,256,256]" in message
    assert "expected [1,3,128,128]" in message
    assert made == ["session", "session"], "only detector and recognizer sessions were made"


def test_manifest_that_lies_about_io_is_caught(catalog: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    wrong = {**catalog, "face_swapper": {"9.9.9": _wrong_swapper(tmp_path / "wrong.onnx")}}
    honest_io = describe_io(catalog["face_swapper"]["1.0.0"].read_bytes())
    source = FileModelSource(wrong, io_overrides={("face_swapper", "9.9.9"): honest_io})
    with pytest.raises(ContractError, match="differs from its manifest"):
        Runtime(source, execution_provider="cpu")


def test_check_contract_lists_every_difference() -> None:
    good_inputs = [
        {"name": "target", "shape": ["batch", 3, 128, 128], "dtype": "float32"},
        {"name": "source", "shape": [1, 512], "dtype": "float32"},
    ]
    outputs = [{"name": "output", "shape": [1, 3, 128, 128], "dtype": "float32"}]
    assert check_contract(INSWAPPER_CONTRACT, good_inputs, outputs) == []
    bad_inputs = [
        {"name": "target", "shape": [1, 3, 128], "dtype": "float16"},
        {"name": "extra", "shape": [1], "dtype": "float32"},
    ]
    differences = check_contract(INSWAPPER_CONTRACT, bad_inputs, [])
    text = "\n".join(differences)
    assert "dtype is float16, expected float32" in text
    assert "rank 3" in text
    assert "input 'source' is missing" in text
    assert "output 'output' is missing" in text
    assert "input 'extra' is not fed" in text


# --- runtime switching -----------------------------------------------------------


def test_switching_changes_output_and_does_not_leak(
    catalog: dict[str, dict[str, Path]], astronaut: np.ndarray, grace: np.ndarray
) -> None:
    small = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    source = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    with Runtime(FileModelSource(catalog), execution_provider="cpu") as runtime:
        first = runtime.swap_image(source, small)
        runtime.switch("face_swapper", "1.1.0")
        assert runtime.active["face_swapper"].version == "1.1.0"
        second = runtime.swap_image(source, small)
        assert not np.array_equal(first, second)
        runtime.switch("face_swapper", "1.0.0")
        assert np.array_equal(runtime.swap_image(source, small), first)

        gc.collect()
        before = rss_bytes()
        for index in range(50):
            runtime.switch("face_swapper", ("1.1.0", "1.0.0")[index % 2])
            runtime.swap_image(source, small)
        growth = rss_bytes() - before
    # 50 leaked 4 MiB models plus sessions would be >200 MiB; allow allocator noise.
    assert growth < 64 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 50 switches"


def test_switching_while_frames_run_in_other_threads(
    catalog: dict[str, dict[str, Path]], astronaut: np.ndarray
) -> None:
    frame = cv2.resize(astronaut, (192, 192), interpolation=cv2.INTER_AREA)
    errors: list[BaseException] = []
    done = threading.Event()
    with Runtime(FileModelSource(catalog), execution_provider="cpu") as runtime:

        def work() -> None:
            try:
                while not done.is_set():
                    runtime.swap_image(frame, frame)
            except BaseException as error:
                errors.append(error)

        workers = [threading.Thread(target=work) for _ in range(2)]
        for worker in workers:
            worker.start()
        for index in range(10):
            runtime.switch("face_swapper", ("1.1.0", "1.0.0")[index % 2])
        done.set()
        for worker in workers:
            worker.join()
    assert errors == []


def test_switch_during_a_video_takes_effect_between_frames(
    catalog: dict[str, dict[str, Path]], astronaut: np.ndarray, grace: np.ndarray,
    tmp_path: Path
) -> None:
    """With several frames in work, a switch mid-video changes later frames and no
    frame mixes models: each output frame is what one version alone writes."""
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=16)
    with Runtime(FileModelSource(catalog), execution_provider="cpu") as runtime:
        runtime.swap_video(grace, target, tmp_path / "old.avi", workers=3)
        runtime.switch("face_swapper", "1.1.0")
        runtime.swap_video(grace, target, tmp_path / "new.avi", workers=3)
        runtime.switch("face_swapper", "1.0.0")

        def switch_midway(done: int, _total: int | None) -> None:
            if done == 6:
                runtime.switch("face_swapper", "1.1.0")

        runtime.swap_video(grace, target, tmp_path / "mixed.avi", workers=3,
                           progress=switch_midway)
    old, new, mixed = (read_frames(tmp_path / f"{name}.avi") for name in ("old", "new", "mixed"))
    versions = []
    for index, frame in enumerate(mixed):
        if np.array_equal(frame, old[index]):
            versions.append("1.0.0")
        else:
            assert np.array_equal(frame, new[index]), f"frame {index} mixes models"
            versions.append("1.1.0")
    assert versions[:6] == ["1.0.0"] * 6 and versions[-1] == "1.1.0"
    assert versions == sorted(versions), "once switched, later frames stay switched"


def test_failed_switch_keeps_the_current_model(catalog: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    wrong = {
        **catalog,
        "face_swapper": {**catalog["face_swapper"], "9.9.9": _wrong_swapper(tmp_path / "w.onnx")},
    }
    with Runtime(FileModelSource(wrong), execution_provider="cpu") as runtime:
        with pytest.raises(ContractError):
            runtime.switch("face_swapper", "9.9.9")
        assert runtime.active["face_swapper"].version == "1.0.0"


# --- video -----------------------------------------------------------------------


def test_video_swaps_end_to_end(
    runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray, tmp_path: Path
) -> None:
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=12)
    output = tmp_path / "out.avi"
    seen: list[tuple[int, int | None]] = []
    result = runtime.swap_video(
        grace, target, output, progress=lambda done, total: seen.append((done, total))
    )
    assert result.frames == 12 and result.swapped_frames == 12
    assert seen[-1] == (12, 12) and len(seen) == 12
    capture = cv2.VideoCapture(str(output))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (256, 256, 3)
    assert sorted(os.listdir(tmp_path)) == ["out.avi", "pan.avi"], "no temp files left behind"


def test_video_without_faces_or_unreadable(runtime: Runtime, astronaut: np.ndarray, tmp_path: Path) -> None:
    grey = np.full((128, 128, 3), 128, dtype=np.uint8)
    target = pan_video(tmp_path / "grey.avi", grey, frames=4, size=128)
    with pytest.raises(NoFaceError, match="target video"):
        runtime.swap_video(astronaut, target, tmp_path / "out.avi")
    assert not (tmp_path / "out.avi").exists()
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError, match="cannot read video"):
        runtime.swap_video(astronaut, garbage, tmp_path / "out.avi")
    assert sorted(os.listdir(tmp_path)) == ["garbage.avi", "grey.avi"]


def test_video_workers_keep_frame_order_and_pixels(
    runtime: Runtime, astronaut: np.ndarray, grace: np.ndarray, tmp_path: Path
) -> None:
    """Several frames in work at once must write exactly what one worker writes."""
    target = pan_video(tmp_path / "pan.avi", astronaut, frames=10)
    one = runtime.swap_video(grace, target, tmp_path / "one.avi", workers=1)
    three = runtime.swap_video(grace, target, tmp_path / "three.avi", workers=3)
    assert one.frames == three.frames == 10
    first, second = read_frames(one.path), read_frames(three.path)
    assert len(first) == len(second) == 10
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        assert np.array_equal(a, b), f"frame {index} differs"
    assert not np.array_equal(first[0], first[-1]), "the pan moves, so order is observable"


def test_video_worker_error_stops_the_job_and_writes_nothing(
    astronaut: np.ndarray, tmp_path: Path
) -> None:
    from ffswap.video import process_video

    target = pan_video(tmp_path / "pan.avi", astronaut, frames=12)
    calls = itertools.count(1)  # next() on it is atomic under the GIL
    seen: list[int] = []

    def frame_fn(frame: np.ndarray) -> np.ndarray | None:
        seen.append(number := next(calls))
        if number == 5:
            raise RuntimeError("model exploded on frame 5")
        return frame

    with pytest.raises(RuntimeError, match="frame 5"):
        process_video(target, tmp_path / "out.avi", frame_fn, workers=3)
    assert sorted(os.listdir(tmp_path)) == ["pan.avi"], "no output, no temp file"
    assert len(seen) < 12, "work stopped instead of running to the end"


# --- media, providers, stand-ins, packaging --------------------------------------


def test_images_read_clearly_and_write_atomically(tmp_path: Path, grace: np.ndarray) -> None:
    with pytest.raises(MediaError, match="cannot read image"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG nonsense")
    with pytest.raises(MediaError, match="cannot decode image"):
        read_image(tmp_path / "broken.png")
    written = write_image(tmp_path / "out.png", grace)
    assert np.array_equal(read_image(written), grace)
    assert sorted(os.listdir(tmp_path)) == ["broken.png", "out.png"]


def test_providers_fall_back_quietly_and_refuse_explicit_gpu(model_dir: Path) -> None:
    data = (model_dir / "recognizer.onnx").read_bytes()
    assert make_session(data, "cpu")[1] == CPU
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert make_session(data, "auto")[1] == CPU
        with pytest.raises(ProviderUnavailableError):
            make_session(data, "cuda")
    with pytest.raises(ValueError, match="unknown execution provider"):
        make_session(data, "gpu")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_gpu_that_does_not_load_falls_back_for_auto_only(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate onnxruntime-gpu on a machine without CUDA: listed, but not loading."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    monkeypatch.setattr(sessions, "_failed", set())
    data = (model_dir / "recognizer.onnx").read_bytes()
    assert make_session(data, "auto")[1] == CPU
    with pytest.raises(ProviderUnavailableError, match="CUDAExecutionProvider"):
        make_session(data, "cuda")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_bad_model_is_not_blamed_on_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model onnxruntime refuses fails on CPU too: its error is raised, and the GPU
    stays in use for the next model (a long-running Runtime switching versions)."""
    from onnx import TensorProto, helper

    from ffswap.errors import ModelLoadError

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    monkeypatch.setattr(sessions, "_failed", set())
    graph = helper.make_graph(
        [helper.make_node("NoSuchOperator", ["x"], ["y"])], "odd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    for preference in ("auto", "cuda"):
        with pytest.raises(ModelLoadError, match="NoSuchOperator"):
            make_session(model.SerializeToString(), preference)  # type: ignore[arg-type]
    assert sessions._failed == set()


def test_a_gpu_provider_that_raises_is_skipped_for_the_next(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TensorRT raising must not send `auto` straight to CPU: CUDA is tried next."""
    tensorrt, cuda = "TensorrtExecutionProvider", "CUDAExecutionProvider"
    monkeypatch.setattr(ort, "get_available_providers", lambda: [tensorrt, cuda, CPU])
    monkeypatch.setattr(sessions, "_failed", set())
    real_create = sessions._create
    tried: list[list[str]] = []

    def create(model: object, names: list[str], threads: int | None) -> ort.InferenceSession:
        tried.append(names)
        if names[0] == tensorrt:
            raise sessions.ModelLoadError("onnxruntime cannot load the model: TensorRT says no")
        return real_create(model, [CPU], threads)  # type: ignore[arg-type]  # no CUDA here

    monkeypatch.setattr(sessions, "_create", create)
    data = (model_dir / "recognizer.onnx").read_bytes()
    assert make_session(data, "auto")[1] == CPU
    assert tried == [[tensorrt, cuda, CPU], [cuda, CPU]]
    assert sessions._failed == {tensorrt, cuda}
    with pytest.raises(ProviderUnavailableError):
        make_session(data, "tensorrt")


def test_standins_are_deterministic_and_padded_exactly() -> None:
    import onnx

    assert standins.face_swapper(variant=1) == standins.face_swapper(variant=1)
    assert standins.face_swapper(variant=1) != standins.face_swapper(variant=2)
    padded = standins.face_recognizer(size=1_000_000)
    assert len(padded) == 1_000_000
    assert onnx.load_from_string(padded).ir_version == 10


def test_package_root_is_import_light() -> None:
    code = (
        "import sys, ffswap; heavy = {'numpy', 'cv2', 'onnxruntime', 'onnx'} & set(sys.modules);"
        " assert not heavy, heavy;"
        " import ffswap.runtime; assert 'onnx' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
