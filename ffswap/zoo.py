"""FaceFusion's model zoo as ff swap runs it: per model, its role in the pipeline,
the adapter that runs it, the I/O contract FaceFusion's own code relies on and the
options (template, crop size, normalisation) FaceFusion's model set gives it.

A model is known by its FaceFusion name: the ff model name, or else the stem of
its main file (a team may publish its own hyperswap fine-tune as `team_swapper`
with the file `hyperswap_1a_256.onnx`, which is what FaceFusion would load). A
model outside FaceFusion's names is run when its I/O fits one of the generic
contracts (OpenCV's YuNet, ULFD, ArcFace, inswapper, GFPGAN), as before.

Import-light on purpose (no NumPy, OpenCV or onnxruntime): `ff lock` and `ff import`
call :func:`check_models` (the `ff.model_checks` entry point) to refuse a model ff
swap cannot run when it is locked, not when a swap starts. The contracts and their
sources are written down in docs/facefusion/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ffswap.contracts import Contract, TensorContract, check_contract

if TYPE_CHECKING:
    from ffstore.consumers import ModelInfo

DETECTOR = "detector"
LANDMARKER = "landmarker"  # 68 points from the image
LANDMARK_ESTIMATOR = "landmark_estimator"  # 68 points from the detector's 5 (fan_68_5)
RECOGNIZER = "recognizer"
CONVERTER = "embedding_converter"
SWAPPER = "swapper"
ENHANCER = "enhancer"

ROLE_MODULES = {
    DETECTOR: "face_detector",
    LANDMARKER: "face_landmarker",
    LANDMARK_ESTIMATOR: "face_landmarker",
    RECOGNIZER: "face_recognizer",
    CONVERTER: "face_swapper",
    SWAPPER: "face_swapper",
    ENHANCER: "face_enhancer",
}
RUNTIME_MODULES = ("face_detector", "face_landmarker", "face_recognizer", "face_swapper",
                   "face_enhancer")
"""The module kinds ff swap runs; models of other kinds are locked for FaceFusion."""


@dataclass(frozen=True)
class Profile:
    """How ff swap runs one model: its role, adapter, contract and options."""

    role: str
    adapter: str
    contract: Contract
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return ROLE_MODULES[self.role]


def _image(name: str, size: int | None, channels: int = 3, dtype: str = "float32") -> TensorContract:
    return TensorContract(name, (1, channels, size, size), dtype)


def _positional(name: str, inputs: tuple[TensorContract, ...], outputs: tuple[TensorContract, ...],
                max_outputs: int | None = None) -> Contract:
    return Contract(name, inputs, outputs, outputs_by_position=True, max_outputs=max_outputs)


_STRIDES = (8, 16, 32)

# --- detectors -------------------------------------------------------------------

_ANCHOR_DETECTOR = _positional(
    "retinaface/scrfd", (_image("input", None),),
    tuple(TensorContract(f"{head}_{stride}", (None, width))
          for head, width in (("scores", 1), ("boxes", 4), ("landmarks", 10)) for stride in _STRIDES))
_YOLO_FACE = _positional("yolo_face", (_image("input", 640),),
                         (TensorContract("detections", (1, 20, 8400)),), max_outputs=1)
_YUNET_HEADS = tuple(TensorContract(f"{head}_{stride}", (1, None, width))
                     for head, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))
                     for stride in _STRIDES)
"""YuNet's outputs: OpenCV's FaceDetectorYN reads them by these names, FaceFusion in
this order."""
_FACEFUSION_YUNET = _positional("yunet (FaceFusion)", (_image("input", None),), _YUNET_HEADS)
YUNET_CONTRACT = Contract("yunet", (_image("input", None),), _YUNET_HEADS)
ULFD_CONTRACT = Contract("ulfd", (_image("input", None),),
                         (TensorContract("scores", (1, None, 2)), TensorContract("boxes", (1, None, 4))))

# FaceFusion's face_detector_size is 640x640 by default, its score 0.5 and, for one
# angle, its NMS threshold 0.4 (docs/facefusion/analysers.md, section 2).
_FACEFUSION_DETECTION = {"size": 640, "score": 0.5, "nms": 0.4}

# --- landmarkers -----------------------------------------------------------------

_2DFAN4 = _positional("2dfan4", (_image("input", 256),),
                      (TensorContract("landmarks", (1, 68, None)),
                       TensorContract("heatmaps", (1, 68, 64, 64))),
                      max_outputs=2)
_PEPPA_WUTZ = _positional("peppa_wutz", (_image("input", 256),), (TensorContract("landmarks", None),))
_FAN_68_5 = _positional("fan_68_5", (TensorContract("input", (1, 5, 2)),),
                        (TensorContract("landmarks", (1, 68, 2)),))

# --- recogniser, converters ------------------------------------------------------

ARCFACE_CONTRACT = _positional("arcface", (TensorContract("input", (None, 3, 112, 112)),),
                               (TensorContract("embedding", (None, 512)),))
_CONVERTER = _positional("embedding converter", (TensorContract("input", (1, 512)),),
                         (TensorContract("embedding", (1, 512)),))

# --- swappers --------------------------------------------------------------------

INSWAPPER_CONTRACT = Contract(
    "inswapper", (TensorContract("target", (1, 3, 128, 128)), TensorContract("source", (1, 512))),
    (TensorContract("output", (1, 3, 128, 128)),))


def _swapper(kind: str, template: str, size: int, mean: tuple[float, float, float],
             std: tuple[float, float, float], source: TensorContract | None = None,
             converter: str | None = None, source_crop: tuple[str, int] | None = None) -> Profile:
    """A FaceFusion swapper: its model-set entry (type, template, size, mean and
    standard deviation), the embedding converter its type needs and, for the
    swappers that take a face image as `source`, that crop's template and size."""
    contract = _positional(kind, (source or TensorContract("source", (1, 512)), _image("target", size)),
                           (TensorContract("output", (1, 3, size, size)),))
    options = {"type": kind, "template": template, "size": size, "mean": mean, "std": std,
               "converter": converter, "source_crop": source_crop}
    return Profile(SWAPPER, "swapper", contract, options)


_HALF = (0.5, 0.5, 0.5)
_ZERO, _ONE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# --- enhancers -------------------------------------------------------------------


def _enhancer(template: str, size: int, weight: bool = False) -> Profile:
    """A FaceFusion face enhancer. CodeFormer has a fidelity `weight` input,
    float64 [1]; FaceFusion 3.5+ feeds face_enhancer_weight 0.5 (1.0 before 3.5)."""
    inputs = (_image("input", size), *((TensorContract("weight", (1,), "float64"),) if weight else ()))
    contract = _positional("face enhancer", inputs, (TensorContract("output", (1, 3, size, size)),))
    return Profile(ENHANCER, "enhancer", contract,
                   {"template": template, "size": size, "weight": 0.5 if weight else None})


GFPGAN_CONTRACT = Contract("gfpgan", (_image("input", 512),), (TensorContract("output", (1, 3, 512, 512)),))

ZOO: dict[str, Profile] = {
    "retinaface_10g": Profile(DETECTOR, "anchor_detector", _ANCHOR_DETECTOR, _FACEFUSION_DETECTION),
    "scrfd_2.5g": Profile(DETECTOR, "anchor_detector", _ANCHOR_DETECTOR, _FACEFUSION_DETECTION),
    "yoloface_8n": Profile(DETECTOR, "yolo_face", _YOLO_FACE, _FACEFUSION_DETECTION),
    "yunet_2023_mar": Profile(DETECTOR, "facefusion_yunet", _FACEFUSION_YUNET, _FACEFUSION_DETECTION),
    "2dfan4": Profile(LANDMARKER, "2dfan4", _2DFAN4),
    "peppa_wutz": Profile(LANDMARKER, "peppa_wutz", _PEPPA_WUTZ),
    "fan_68_5": Profile(LANDMARK_ESTIMATOR, "fan_68_5", _FAN_68_5),
    "arcface_w600k_r50": Profile(RECOGNIZER, "arcface", ARCFACE_CONTRACT),
    "inswapper_128": _swapper("inswapper", "arcface_128", 128, _ZERO, _ONE),
    "inswapper_128_fp16": _swapper("inswapper", "arcface_128", 128, _ZERO, _ONE),
    **{f"hyperswap_1{letter}_256": _swapper("hyperswap", "arcface_128", 256, _HALF, _HALF)
       for letter in "abc"},
    "simswap_256": _swapper("simswap", "arcface_112_v1", 256, _IMAGENET_MEAN, _IMAGENET_STD,
                            converter="simswap"),
    "simswap_unofficial_512": _swapper("simswap", "arcface_112_v1", 512, _ZERO, _ONE,
                                       converter="simswap"),
    **{f"ghost_{n}_256": _swapper("ghost", "arcface_112_v1", 256, _HALF, _HALF, converter="ghost")
       for n in (1, 2, 3)},
    "hififace_unofficial_256": _swapper("hififace", "mtcnn_512", 256, _HALF, _HALF,
                                        converter="hififace"),
    "blendswap_256": _swapper("blendswap", "ffhq_512", 256, _ZERO, _ONE,
                              source=_image("source", 112), source_crop=("arcface_112_v2", 112)),
    "uniface_256": _swapper("uniface", "ffhq_512", 256, _HALF, _HALF,
                            source=_image("source", 256), source_crop=("ffhq_512", 256)),
    **{f"{prefix}_{kind}": Profile(CONVERTER, "embedding_converter", _CONVERTER, {"serves": kind})
       for prefix in ("crossface", "arcface_converter") for kind in ("ghost", "simswap", "hififace")},
    **{f"arcface_converter_w600k_r50_{kind}": Profile(CONVERTER, "embedding_converter", _CONVERTER,
                                                      {"serves": kind})
       for kind in ("ghost", "simswap")},
    "codeformer": _enhancer("ffhq_512", 512, weight=True),
    **{f"gfpgan_{version}": _enhancer("ffhq_512", 512) for version in ("1.2", "1.3", "1.4")},
    "gpen_bfr_256": _enhancer("arcface_128", 256),
    **{f"gpen_bfr_{size}": _enhancer("ffhq_512", size) for size in (512, 1024, 2048)},
    "restoreformer_plus_plus": _enhancer("ffhq_512", 512),
}
"""Every FaceFusion 3.x model of the modules ff swap runs, by FaceFusion's name."""

ALIASES = {
    # FaceFusion 3.0's names for models it renamed in 3.1.
    "face_landmarker_68_5": "fan_68_5",
    "simswap_512_unofficial": "simswap_unofficial_512",
    **{f"ghost_256_unet_{n}": f"ghost_{n}_256" for n in (1, 2, 3)},
}

GENERIC: dict[str, tuple[Profile, ...]] = {
    "face_detector": (Profile(DETECTOR, "yunet", YUNET_CONTRACT), Profile(DETECTOR, "ulfd", ULFD_CONTRACT)),
    "face_recognizer": (Profile(RECOGNIZER, "arcface", ARCFACE_CONTRACT),),
    "face_swapper": (Profile(SWAPPER, "swapper", INSWAPPER_CONTRACT,
                             ZOO["inswapper_128"].options),),
    "face_enhancer": (Profile(ENHANCER, "enhancer", GFPGAN_CONTRACT,
                              {"template": "ffhq_512", "size": 512, "weight": None}),),
}
"""Models outside FaceFusion's names run when their I/O fits one of these, tried in
order (YuNet before ULFD: both take `input`, only their outputs differ)."""


class UnsupportedModel(Exception):
    """ff swap cannot run this model. `details` lists why, adapter by adapter."""

    def __init__(self, module: str, model: str, message: str, details: list[str]) -> None:
        super().__init__(message)
        self.module = module
        self.model = model
        self.details = details


def facefusion_name(model: str, file: str | None) -> str | None:
    """The FaceFusion name a release goes by: its model name, else its file's stem."""
    for name in (model, PurePosixPath(file).stem if file else None):
        if name is not None:
            name = ALIASES.get(name, name)
            if name in ZOO:
                return name
    return None


def supported(module: str) -> list[str]:
    """What ff swap runs for a module, for error messages (converters, which come
    with their swappers, summed up in one item)."""
    names = sorted(name for name, profile in ZOO.items()
                   if profile.module == module and profile.role != CONVERTER)
    if module == "face_swapper":
        names.append("their embedding converters (crossface_*)")
    generic = [profile.contract.name for profile in GENERIC.get(module, ())]
    return [*names, f"any model with {'/'.join(generic)}'s I/O"] if generic else names


def select_profile(module: str, model: str, file: str | None, inputs: Sequence[Mapping[str, Any]],
                   outputs: Sequence[Mapping[str, Any]]) -> Profile:
    """The profile ff swap runs this model with. Raises UnsupportedModel, with every
    difference as details, when the model is not one it can run."""
    name = facefusion_name(model, file)
    if name is not None:
        profile = ZOO[name]
        if profile.module != module:
            raise UnsupportedModel(module, model, f"{model} is FaceFusion's {name}, a "
                                   f"{profile.module} model, not a {module}", [])
        differences = check_contract(profile.contract, inputs, outputs)
        if not differences:
            return profile
        raise UnsupportedModel(module, model, f"ff swap cannot run {model} ({module}): its I/O is not "
                               f"FaceFusion's {name}'s", differences)
    details = []
    for profile in GENERIC.get(module, ()):
        differences = check_contract(profile.contract, inputs, outputs)
        if not differences:
            return profile
        details += [f"as {profile.contract.name}: {difference}" for difference in differences]
    raise UnsupportedModel(module, model, f"ff swap cannot run {model} ({module}); supported: "
                           f"{', '.join(supported(module))}", details)


def check_models(models: Sequence[ModelInfo], complete: bool) -> list[str]:
    """The `ff.model_checks` entry point (see ffstore.consumers): refuse a model of a
    module ff swap runs that it cannot run; note what it does not use and, for a
    whole lock, a swapper whose embedding converter is missing."""
    from ffstore.errors import InputError

    unused: list[ModelInfo] = []
    roles: dict[str, list[tuple[ModelInfo, Profile]]] = {}
    for info in models:
        if info.module not in RUNTIME_MODULES:
            unused.append(info)
            continue
        if info.onnx is None:
            raise InputError(f"ff swap cannot run {info.model} ({info.module}): its main file "
                             f"{info.file} is not an ONNX model")
        try:
            profile = select_profile(info.module, info.model, info.file, info.onnx["inputs"],
                                     info.onnx["outputs"])
        except UnsupportedModel as exc:
            hint = "; run with -v for the differences" if exc.details else ""
            raise InputError(f"{exc}{hint}", exc.details) from None
        roles.setdefault(profile.role, []).append((info, profile))
    notes = []
    if unused:
        notes.append(_unused_note(unused))
    if complete:
        notes += _pipeline_notes(roles)
    return notes


def _unused_note(unused: list[ModelInfo]) -> str:
    """Which models ff swap leaves to FaceFusion: each by name, or, for a whole
    FaceFusion folder, counted by module."""
    if len(unused) <= 6:
        listed = ", ".join(f"{info.model} ({info.module})" for info in unused)
    else:
        counts: dict[str, int] = {}
        for info in unused:
            counts[info.module] = counts.get(info.module, 0) + 1
        listed = f"{len(unused)} models: " + ", ".join(f"{count} {module}"
                                                       for module, count in sorted(counts.items()))
    return f"ff swap does not use {listed}; they are there for FaceFusion (ff export)"


def _pipeline_notes(roles: Mapping[str, list[tuple[ModelInfo, Profile]]]) -> list[str]:
    """What a whole lock lacks for ff swap to run its swapper. A note, not an error:
    a lock may be meant for FaceFusion only (ff export), which downloads what it
    misses."""
    notes = []
    converters = {profile.options["serves"] for _info, profile in roles.get(CONVERTER, [])}
    for info, profile in roles.get(SWAPPER, []):
        needed = profile.options.get("converter")
        if needed and needed not in converters:
            notes.append(f"ff swap runs {info.model} only with its embedding converter "
                         f"(crossface_{needed}): add it to modules.face_swapper")
    return notes
