"""The FaceFusion zoo stand-ins keep FaceFusion's contracts and behave visibly.

The expectations below are written from docs/facefusion/*.md, not read back from
tests/facefusion_zoo.py, and the detector checks decode outputs the way FaceFusion's
face_detector.py does, so a stand-in that drifts from the contract fails here.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tests import facefusion_zoo as zoo
from tests.swap_fixtures import ASTRONAUT, YUNET, read_test_image

ort.set_default_logger_severity(3)

KINDS = {
    "face_detector", "face_landmarker", "face_recognizer", "face_swapper", "face_enhancer", "face_masker",
    "face_classifier", "content_analyser", "voice_extractor", "frame_enhancer", "frame_colorizer",
    "lip_syncer", "age_modifier", "expression_restorer", "face_editor", "deep_swapper", "background_remover",
}  # fmt: skip

F32, F64 = "tensor(float)", "tensor(double)"
SWAP_256 = [1, 3, 256, 256]
EMBEDDING = [1, 512]

# stem -> (inputs {name: (dtype, shape)}, output shapes for inputs of those shapes).
# Detector outputs are for a 640x640 input.
CONTRACTS: dict[str, tuple[dict[str, tuple[str, list[int | str]]], list[tuple[int, ...]]]] = {
    "yoloface_8n": ({"input": (F32, [1, 3, 640, 640])}, [(1, 20, 8400)]),
    "yunet_2023_mar": (
        {"input": (F32, [1, 3, 640, 640])},
        [(1, n, c) for c in (1, 1, 4, 10) for n in (6400, 1600, 400)],
    ),
    "2dfan4": ({"input": (F32, [1, 3, 256, 256])}, [(1, 68, 3), (1, 68, 64, 64)]),
    "peppa_wutz": ({"input": (F32, [1, 3, 256, 256])}, [(1, 68, 3)]),
    "fan_68_5": ({"input": (F32, [1, 5, 2])}, [(1, 68, 2)]),
    "arcface_w600k_r50": ({"input": (F32, [1, 3, 112, 112])}, [(1, 512)]),
    **{
        stem: ({"source": (F32, EMBEDDING), "target": (F32, [1, 3, 128, 128])}, [(1, 3, 128, 128)])
        for stem in ("inswapper_128", "inswapper_128_fp16")
    },
    **{
        f"hyperswap_1{x}_256": (
            {"source": (F32, EMBEDDING), "target": (F32, SWAP_256)}, [(1, 3, 256, 256), (1, 1, 256, 256)]
        )
        for x in "abc"
    },
    **{
        stem: ({"source": (F32, EMBEDDING), "target": (F32, SWAP_256)}, [(1, 3, 256, 256)])
        for stem in ("simswap_256", "ghost_1_256", "ghost_2_256", "ghost_3_256", "hififace_unofficial_256")
    },
    "simswap_unofficial_512": (
        {"source": (F32, EMBEDDING), "target": (F32, [1, 3, 512, 512])}, [(1, 3, 512, 512)]
    ),
    "blendswap_256": ({"source": (F32, [1, 3, 112, 112]), "target": (F32, SWAP_256)}, [(1, 3, 256, 256)]),
    "uniface_256": ({"source": (F32, SWAP_256), "target": (F32, SWAP_256)}, [(1, 3, 256, 256)]),
    **{
        stem: ({"input": (F32, EMBEDDING)}, [(1, 512)])
        for stem in ("crossface_ghost", "crossface_simswap", "crossface_hififace")
    },
    **{
        stem: ({"input": (F32, [1, 3, size, size])}, [(1, 3, size, size)])
        for stem, size in (
            ("gfpgan_1.2", 512), ("gfpgan_1.3", 512), ("gfpgan_1.4", 512), ("gpen_bfr_256", 256),
            ("gpen_bfr_512", 512), ("gpen_bfr_1024", 1024), ("gpen_bfr_2048", 2048),
            ("restoreformer_plus_plus", 512),
        )
    },
    "codeformer": ({"input": (F32, [1, 3, 512, 512]), "weight": (F64, [1])}, [(1, 3, 512, 512)]),
}  # fmt: skip
ANCHOR_DETECTORS = ("retinaface_10g", "scrfd_2.5g")
ANCHOR_OUTPUTS = [(n, c) for c in (1, 4, 10) for n in (12800, 3200, 800)]
NOT_RUN = {"gpen_bfr_2048"}  # shapes checked as declared: running it costs a second for nothing


def session(stem: str) -> ort.InferenceSession:
    return ort.InferenceSession(zoo.build(stem), providers=["CPUExecutionProvider"])


def random_feed(sess: ort.InferenceSession, size: int = 640) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for value in sess.get_inputs():
        shape = [dim if isinstance(dim, int) else size for dim in value.shape]
        dtype = np.float64 if value.type == F64 else np.float32
        feeds[value.name] = rng.random(shape).astype(dtype)
    return feeds


# ---------------------------------------------------------------------------- catalogue


def test_files_cover_the_zoo_with_ff_kinds() -> None:
    assert set(zoo.FILES.values()) == KINDS
    assert set(zoo.RUNTIME) <= set(zoo.FILES)
    assert len(set(zoo.RUNTIME)) == len(zoo.RUNTIME) == 33
    renamed = [
        "face_landmarker_68_5",
        "ghost_256_unet_1",
        "simswap_512_unofficial",
        "arcface_converter_ghost",
        "arcface_converter_hififace",
        "arcface_converter_w600k_r50_simswap",
        "open_nsfw",
        "lsdir_x4",
    ]
    assert all(stem in zoo.FILES for stem in renamed)
    assert zoo.FILES["crossface_ghost"] == zoo.FILES["arcface_converter_simswap"] == "face_swapper"
    assert zoo.FILES["live_portrait_generator"] == "expression_restorer"
    assert zoo.FILES["live_portrait_stitcher"] == "face_editor"
    assert zoo.FILES["iperov/elon_musk_224"] == "deep_swapper"
    with pytest.raises(KeyError):
        zoo.build("inswapper_256")
    assert zoo.build("fan_68_5") is zoo.build("fan_68_5")


def test_every_file_is_valid_distinct_and_small() -> None:
    seen: dict[int, str] = {}
    for stem in zoo.FILES:
        data = zoo.build(stem)
        onnx.checker.check_model(onnx.load_from_string(data))
        assert len(data) < 1_100_000, stem  # inswapper_128's float32 emap alone is 1 MiB
        assert seen.setdefault(zlib.crc32(data), stem) == stem, (
            f"{stem} has the bytes of {seen[zlib.crc32(data)]}"
        )


# ------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("stem", zoo.RUNTIME)
def test_runtime_model_has_the_documented_io(stem: str) -> None:
    sess = session(stem)
    inputs = {value.name: (value.type, value.shape) for value in sess.get_inputs()}
    if stem in ANCHOR_DETECTORS:
        assert list(inputs) == ["input"]
        dtype, shape = inputs["input"]
        assert dtype == F32 and shape[:2] == [1, 3] and all(isinstance(dim, str) for dim in shape[2:])
        expected = ANCHOR_OUTPUTS
    else:
        expected_inputs, expected = CONTRACTS[stem]
        assert inputs == expected_inputs
    declared = [tuple(value.shape) for value in sess.get_outputs()]
    assert len(declared) == len(expected)
    if stem in NOT_RUN:
        assert declared == expected
        return
    outputs = sess.run(None, random_feed(sess))
    assert [output.shape for output in outputs] == expected
    assert all(output.dtype == np.float32 for output in outputs)


def test_anchor_detectors_follow_the_input_size() -> None:
    for stem in ANCHOR_DETECTORS:
        sess = session(stem)
        shapes = [output.shape for output in sess.run(None, random_feed(sess, 320))]
        assert shapes == [(n, c) for c in (1, 4, 10) for n in (3200, 800, 200)]


@pytest.mark.parametrize("stem", ["inswapper_128", "inswapper_128_fp16"])
def test_inswapper_emap_is_the_last_initializer(stem: str) -> None:
    graph = onnx.load_from_string(zoo.build(stem)).graph
    emap = numpy_helper.to_array(graph.initializer[-1])
    assert emap.shape == (512, 512)
    assert emap.dtype == (np.float16 if stem.endswith("fp16") else np.float32)
    assert {value.type.tensor_type.elem_type for value in [*graph.input, *graph.output]} == {
        onnx.TensorProto.FLOAT
    }


def test_other_processor_contracts() -> None:
    """A few constraints FaceFusion's code depends on, beyond a valid graph."""
    motion = session("live_portrait_motion_extractor")
    assert len(motion.get_outputs()) == 7
    voice = session("kim_vocal_2").get_inputs()[0]
    assert voice.shape[3] == 256
    dfm = session("iperov/elon_musk_224")
    assert {value.name: value.shape for value in dfm.get_inputs()} == {
        "in_face:0": [1, 224, 224, 3],
        "morph_value:0": [1],
    }
    assert [value.shape for value in dfm.get_outputs()] == [
        [1, 224, 224, 1],
        [1, 224, 224, 3],
        [1, 224, 224, 1],
    ]
    enhancer = session("real_esrgan_x8_fp16")
    assert enhancer.get_inputs()[0].shape == [1, 3, 256, 256]
    assert enhancer.get_outputs()[0].shape == [1, 3, 2048, 2048]
    edtalk = {value.name: value.type for value in session("edtalk_256").get_inputs()}
    assert edtalk == {"source": F32, "target": F32, "weight": F32}
    age = {value.name: value.shape for value in session("styleganex_age").get_inputs()}
    assert age["direction"] == []


# ------------------------------------------------------------------------ hash layout


def test_write_models_lays_out_facefusion_assets(tmp_path: Path) -> None:
    paths = zoo.write_models(tmp_path)
    assert len(paths) == len(zoo.FILES)
    assert tmp_path / "iperov" / "elon_musk_224.dfm" in paths
    assert tmp_path / "scrfd_2.5g.onnx" in paths
    for path in paths:
        hash_path = path.parent / (path.name.rsplit(".", 1)[0] + ".hash")  # FaceFusion's get_hash_path
        assert hash_path.read_text().strip() == format(zlib.crc32(path.read_bytes()), "08x")
    some = zoo.write_models(tmp_path / "some", ["2dfan4", "gfpgan_1.4"])
    assert sorted(p.name for p in (tmp_path / "some").iterdir()) == [
        "2dfan4.hash",
        "2dfan4.onnx",
        "gfpgan_1.4.hash",
        "gfpgan_1.4.onnx",
    ]
    assert some == [tmp_path / "some" / "2dfan4.onnx", tmp_path / "some" / "gfpgan_1.4.onnx"]


# -------------------------------------------------------------------------- detectors


def detect_frame(frame: np.ndarray, normalise: str) -> np.ndarray:
    """FaceFusion's restrict_frame + prepare_detect_frame + normalize_detect_frame at
    640x640: shrink keeping aspect, paste top-left on zeros, BGR, CHW."""
    height, width = frame.shape[:2]
    if height > 640 or width > 640:
        scale = min(640 / height, 640 / width)
        frame = cv2.resize(frame, (int(width * scale), int(height * scale)))
    canvas = np.zeros((640, 640, 3))
    canvas[: frame.shape[0], : frame.shape[1]] = frame
    canvas = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    return {"signed": (canvas - 127.5) / 128.0, "unit": canvas / 255.0, "raw": canvas}[normalise]


def anchors(stride: int, count: int) -> np.ndarray:
    """create_static_anchors: row-major cells, ``count`` consecutive copies each."""
    n = 640 // stride
    rows, cols = np.divmod(np.arange(n * n), n)
    return np.repeat(np.stack([cols, rows], 1) * stride, count, axis=0).astype(np.float32)


def decode_anchor(outputs: list[np.ndarray], count: int, yunet: bool) -> tuple[np.ndarray, ...]:
    """FaceFusion's retinaface/scrfd (count 2) or yunet (count 1) decoding: boxes,
    scores and 5-point landmarks of the anchors at or above the 0.5 threshold."""
    boxes, scores, points = [], [], []
    for index, stride in enumerate((8, 16, 32)):
        score = (outputs[index] * outputs[index + 3]).reshape(-1) if yunet else outputs[index][:, 0]
        keep = np.where(score >= 0.5)[0]
        if not np.any(keep):
            continue
        anchor = anchors(stride, count)[keep]
        if yunet:
            bbox = outputs[index + 6][0][keep]
            centre, size = bbox[:, :2] * stride + anchor, np.exp(bbox[:, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], 1))
        else:
            distance = outputs[index + 3][keep] * stride
            boxes.append(np.concatenate([anchor - distance[:, :2], anchor + distance[:, 2:]], 1))
        kps = outputs[index + 9 if yunet else index + 6]
        kps = (kps[0] if yunet else kps)[keep] * stride
        points.append(kps.reshape(-1, 5, 2) + anchor[:, None])
        scores.append(score[keep])
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)


def decode_yolo(outputs: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    detection = np.squeeze(outputs).T
    raw_box, score, raw_points = np.split(detection, [4, 5], axis=1)
    keep = np.where(score[:, 0] > 0.5)[0]
    cx, cy, w, h = raw_box[keep].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return boxes, score[keep, 0], raw_points[keep].reshape(-1, 5, 3)[:, :, :2]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_test_image(ASTRONAUT)


@pytest.fixture(scope="module")
def yunet_face(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The real YuNet's best box and points on the astronaut, decoded as yunet."""
    sess = ort.InferenceSession(str(YUNET), providers=["CPUExecutionProvider"])
    boxes, scores, points = decode_anchor(sess.run(None, {"input": detect_frame(astronaut, "raw")}), 1, True)
    best = int(np.argmax(scores))
    return boxes[best], points[best]


@pytest.mark.parametrize(
    ("stem", "normalise"),
    [
        ("retinaface_10g", "signed"),
        ("scrfd_2.5g", "signed"),
        ("yoloface_8n", "unit"),
        ("yunet_2023_mar", "raw"),
    ],
)
def test_detector_finds_the_yunet_face(
    stem: str, normalise: str, astronaut: np.ndarray, yunet_face: tuple[np.ndarray, np.ndarray]
) -> None:
    outputs = session(stem).run(None, {"input": detect_frame(astronaut, normalise)})
    if stem == "yoloface_8n":
        boxes, scores, points = decode_yolo(outputs)
    else:
        boxes, scores, points = decode_anchor(
            outputs, 1 if stem.startswith("yunet") else 2, stem.startswith("yunet")
        )
    best = int(np.argmax(scores))
    assert 0.5 < scores[best] <= 1.0
    reference_box, reference_points = yunet_face
    assert iou(boxes[best], reference_box) > 0.95
    assert np.abs(points[best] - reference_points).max() < 1.0


# ------------------------------------------------------------------------ landmarkers


def test_mean_face_reduces_to_the_ffhq_template() -> None:
    face = zoo.MEAN_FACE_68
    five = np.array([face[36:42].mean(0), face[42:48].mean(0), face[30], face[48], face[54]])
    np.testing.assert_allclose(five, zoo.FFHQ_512, atol=1e-9)
    assert face[0, 1] == pytest.approx(face[16, 1])  # estimate_face_angle reads 0


def test_fan_68_5_maps_the_template_to_the_mean_face() -> None:
    sess = session("fan_68_5")
    out = sess.run(None, {"input": zoo.FFHQ_512[None].astype(np.float32)})[0]
    np.testing.assert_allclose(out[0], zoo.MEAN_FACE_68, atol=1e-4)
    # Affine-equivariant: the 68 points follow a similarity of the five.
    matrix = np.array([[0.9, -0.2], [0.2, 0.9]])
    moved = zoo.FFHQ_512 @ matrix.T + [0.05, -0.03]
    out = sess.run(None, {"input": moved[None].astype(np.float32)})[0]
    np.testing.assert_allclose(out[0], zoo.MEAN_FACE_68 @ matrix.T + [0.05, -0.03], atol=1e-4)


def test_2dfan4_lands_on_the_detected_face(
    astronaut: np.ndarray, yunet_face: tuple[np.ndarray, np.ndarray]
) -> None:
    """FaceFusion's detect_face_landmark flow: 195/max(w, h) crop, 2dfan4, back to the
    frame; the 68 points' five must sit near YuNet's, with a passing score."""
    box, reference_points = yunet_face
    scale = 195 / max(box[2] - box[0], box[3] - box[1])
    tx, ty = (256 - np.array([box[0] + box[2], box[1] + box[3]]) * scale) * 0.5
    matrix = np.array([[scale, 0, tx], [0, scale, ty]])
    crop = cv2.warpAffine(astronaut, matrix, (256, 256)).transpose(2, 0, 1).astype(np.float32) / 255
    landmarks, heatmaps = session("2dfan4").run(None, {"input": crop[None]})
    score = np.interp(heatmaps.max(axis=(2, 3)).mean(), [0, 0.9], [0, 1])
    assert score > 0.9
    points = cv2.transform(landmarks[:, :, :2] / 64 * 256, cv2.invertAffineTransform(matrix))[0]
    five = np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])
    assert np.abs(five - reference_points).max() < 0.1 * (box[3] - box[1])
    brighter = session("2dfan4").run(None, {"input": np.clip(crop[None] + 0.2, 0, 1)})[0]
    assert not np.allclose(brighter, landmarks)
    peppa = session("peppa_wutz").run(None, {"input": crop[None]})[0].reshape(-1, 3)
    assert np.interp(peppa[:, 2].mean(), [0, 0.95], [0, 1]) > 0.9


# ------------------------------------------------------------------ swappers, enhancers

# stem -> (target range, output range, source kind)
SWAPPERS = {
    "inswapper_128": ("unit", "unit", "embedding"),
    "inswapper_128_fp16": ("unit", "unit", "embedding"),
    "hyperswap_1a_256": ("signed", "signed", "embedding"),
    "hyperswap_1b_256": ("signed", "signed", "embedding"),
    "hyperswap_1c_256": ("signed", "signed", "embedding"),
    "simswap_256": ("imagenet", "unit", "embedding"),
    "simswap_unofficial_512": ("unit", "unit", "embedding"),
    "ghost_1_256": ("signed", "signed", "raw"),
    "ghost_2_256": ("signed", "signed", "raw"),
    "ghost_3_256": ("signed", "signed", "raw"),
    "hififace_unofficial_256": ("signed", "signed", "embedding"),
    "blendswap_256": ("unit", "unit", "image"),
    "uniface_256": ("signed", "signed", "image"),
}
MEAN = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def sources(kind: str, shape: list[int]) -> list[np.ndarray]:
    """Two different sources as FaceFusion would feed them: unit embeddings, a raw
    converter output (norm ~10, ghost), or two face crops in RGB 0..1."""
    rng = np.random.default_rng(7)
    if kind == "image":
        return [np.clip(rng.normal(level, 0.1, shape), 0, 1).astype(np.float32) for level in (0.3, 0.7)]
    vectors = rng.standard_normal((2, 512))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    if kind == "raw":
        vectors *= 10.0
    return [vector[None].astype(np.float32) for vector in vectors]


@pytest.mark.parametrize("stem", list(SWAPPERS))
def test_swapper_changes_the_target_per_source(stem: str) -> None:
    target_range, output_range, source_kind = SWAPPERS[stem]
    sess = session(stem)
    shapes = {value.name: value.shape for value in sess.get_inputs()}
    unit = np.random.default_rng(3).random(shapes["target"])
    target = {"unit": unit, "signed": unit * 2 - 1, "imagenet": (unit - MEAN) / STD}[target_range]
    identity = unit if output_range == "unit" else unit * 2 - 1
    low, high = (0.0, 1.0) if output_range == "unit" else (-1.0, 1.0)
    results = []
    for source in sources(source_kind, shapes["source"]):
        output = sess.run(None, {"source": source, "target": target.astype(np.float32)})[0]
        assert low - 1e-3 <= output.min() and output.max() <= high + 1e-3
        assert np.abs(output - identity).mean() > 0.05
        results.append(output)
    assert np.abs(results[0] - results[1]).mean() > 0.01


def test_codeformer_weight_scales_the_enhancement() -> None:
    sess = session("codeformer")
    face = np.random.default_rng(5).uniform(-0.8, 0.8, (1, 3, 512, 512)).astype(np.float32)
    soft, strong = (
        sess.run(None, {"input": face, "weight": np.array([weight], dtype=np.float64)})[0]
        for weight in (0.2, 0.9)
    )
    assert np.abs(strong - face).mean() > np.abs(soft - face).mean() > 0.0
    assert soft.min() >= -1.0 and strong.max() <= 1.0


def test_enhancers_sharpen_differently() -> None:
    face = np.random.default_rng(6).uniform(-0.5, 0.5, (1, 3, 512, 512)).astype(np.float32)
    outputs = [session(stem).run(None, {"input": face})[0] for stem in ("gfpgan_1.4", "gpen_bfr_512")]
    assert all(np.abs(output - face).mean() > 0.01 for output in outputs)
    assert np.abs(outputs[0] - outputs[1]).mean() > 0.01
