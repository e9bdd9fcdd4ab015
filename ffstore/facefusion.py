"""FaceFusion's side of the contract: how its `.assets/models` folder names models
(file stem -> module kind, from every `create_static_model_set` of FaceFusion 3.x;
docs/facefusion/), and its `.hash` files (the CRC-32 of the whole file, 8 lowercase
hex digits), which FaceFusion checks at every start and deletes a model over.

A file ff does not know is never guessed at: `ff import` refuses it unless the user
names its module. Families (a known prefix such as `gfpgan_`) cover new variants of
a known model; exact names come first so that `arcface_converter_ghost` is a face
swapper's converter, not a recogniser."""

import mmap
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ffstore.errors import InputError, VerificationError
from ffstore.modules import check_module_kind

MODELS_DIR = Path(".assets") / "models"
DEEP_SWAPPER_SUFFIX = ".dfm"  # DeepFaceLive's models, ONNX inside


def _kinds(kind: str, *stems: str) -> dict[str, str]:
    return dict.fromkeys(stems, kind)


FILES: dict[str, str] = {
    **_kinds("face_detector", "retinaface_10g", "scrfd_2.5g", "yoloface_8n", "yunet_2023_mar"),
    **_kinds("face_landmarker", "2dfan4", "peppa_wutz", "fan_68_5", "face_landmarker_68_5"),
    **_kinds("face_recognizer", "arcface_w600k_r50"),
    **_kinds("face_classifier", "fairface"),
    **_kinds("face_masker", "xseg_1", "xseg_2", "xseg_3", "bisenet_resnet_18", "bisenet_resnet_34"),
    **_kinds("content_analyser", "open_nsfw", "nsfw_1", "nsfw_2", "nsfw_3"),
    **_kinds("voice_extractor", "kim_vocal_1", "kim_vocal_2", "uvr_mdxnet"),
    **_kinds("face_swapper", "blendswap_256", "ghost_1_256", "ghost_2_256", "ghost_3_256",
             "ghost_256_unet_1", "ghost_256_unet_2", "ghost_256_unet_3", "hififace_unofficial_256",
             "hyperswap_1a_256", "hyperswap_1b_256", "hyperswap_1c_256", "inswapper_128",
             "inswapper_128_fp16", "simswap_256", "simswap_unofficial_512", "simswap_512_unofficial",
             "uniface_256", "crossface_ghost", "crossface_simswap", "crossface_hififace",
             "arcface_converter_ghost", "arcface_converter_simswap", "arcface_converter_hififace",
             "arcface_converter_w600k_r50_ghost", "arcface_converter_w600k_r50_simswap"),
    **_kinds("face_enhancer", "codeformer", "gfpgan_1.2", "gfpgan_1.3", "gfpgan_1.4", "gpen_bfr_256",
             "gpen_bfr_512", "gpen_bfr_1024", "gpen_bfr_2048", "restoreformer_plus_plus"),
    **_kinds("frame_enhancer", "clear_reality_x4", "lsdir_x4", "nomos8k_sc_x4", "real_esrgan_x2",
             "real_esrgan_x2_fp16", "real_esrgan_x4", "real_esrgan_x4_fp16", "real_esrgan_x8",
             "real_esrgan_x8_fp16", "real_hatgan_x4", "span_kendata_x4", "ultra_sharp_x4",
             "real_web_photo_x4", "realistic_rescaler_x4", "remacri_x4", "siax_x4", "swin2_sr_x4",
             "ultra_sharp_2_x4", "face_dat_x4", "tghq_face_x8"),
    **_kinds("frame_colorizer", "ddcolor", "ddcolor_artistic", "deoldify", "deoldify_artistic",
             "deoldify_stable"),
    **_kinds("lip_syncer", "wav2lip_96", "wav2lip_gan_96", "wav2lip", "wav2lip_gan", "edtalk_256"),
    **_kinds("age_modifier", "styleganex_age"),
    # The three LivePortrait parts both processors use are filed with the expression
    # restorer; the three only the face editor uses, with it.
    **_kinds("expression_restorer", "live_portrait_feature_extractor",
             "live_portrait_motion_extractor", "live_portrait_generator"),
    **_kinds("face_editor", "live_portrait_eye_retargeter", "live_portrait_lip_retargeter",
             "live_portrait_stitcher"),
    **_kinds("background_remover", "ben_2", "birefnet_general", "birefnet_portrait", "isnet_general",
             "modnet", "rmbg_1.4", "rmbg_2.0", "silueta", "u2net_cloth", "u2net_general",
             "u2net_human", "u2net_portable"),
}
"""Every model file of FaceFusion 3.0-3.6 by stem (renamed ones under both names)."""

FAMILIES: tuple[tuple[str, str], ...] = (
    ("arcface_converter", "face_swapper"), ("crossface", "face_swapper"),
    ("arcface", "face_recognizer"),
    *((prefix, "face_detector") for prefix in ("retinaface", "scrfd", "yoloface", "yunet")),
    *((prefix, "face_landmarker") for prefix in ("2dfan", "peppa_wutz", "fan_68")),
    *((prefix, "face_swapper") for prefix in ("inswapper", "hyperswap", "simswap", "ghost",
                                              "blendswap", "uniface", "hififace")),
    *((prefix, "face_enhancer") for prefix in ("gfpgan", "gpen_bfr", "codeformer", "restoreformer")),
    ("xseg", "face_masker"), ("bisenet", "face_masker"), ("fairface", "face_classifier"),
    ("nsfw", "content_analyser"), ("open_nsfw", "content_analyser"),
    ("kim_vocal", "voice_extractor"), ("uvr_mdxnet", "voice_extractor"),
    *((prefix, "frame_enhancer") for prefix in (
        "real_esrgan", "real_hatgan", "real_web_photo", "span_kendata", "ultra_sharp", "lsdir",
        "nomos8k", "clear_reality", "realistic_rescaler", "remacri", "siax", "swin2_sr",
        "face_dat", "tghq_face")),
    ("ddcolor", "frame_colorizer"), ("deoldify", "frame_colorizer"),
    ("wav2lip", "lip_syncer"), ("edtalk", "lip_syncer"), ("styleganex", "age_modifier"),
    *((prefix, "background_remover") for prefix in ("rmbg", "birefnet", "u2net", "isnet", "modnet",
                                                    "silueta", "ben")),
)
"""Prefixes of FaceFusion's model families, for variants it may add. A prefix
matches a whole word of the stem (`gfpgan_1.5`, not `gfpganx`)."""


def module_for(stem: str) -> str | None:
    """The module kind of a FaceFusion model file stem, or None if ff does not know it."""
    if stem in FILES:
        return FILES[stem]
    for prefix, kind in FAMILIES:
        rest = stem[len(prefix):]
        if stem.startswith(prefix) and (not rest or rest[0] in "_-." or rest[0].isdigit()):
            return kind
    return None


def hash_name(relative: str) -> str:
    """FaceFusion's get_hash_path: the model's path without its last extension, plus
    `.hash` (`scrfd_2.5g.onnx` -> `scrfd_2.5g.hash`)."""
    stem, dot, _suffix = relative.rpartition(".")
    return f"{stem if dot else relative}.hash"


CRC_CHUNK = 64 << 20  # zlib.crc32 releases the GIL on large buffers; 64 MiB keeps it busy


def crc32_file(path: Path) -> str:
    """CRC-32 of a whole file as FaceFusion writes it."""
    with open(path, "rb") as handle:
        return crc32_handle(handle)


def crc32_handle(handle: BinaryIO, advance: Callable[[int], None] | None = None) -> str:
    """CRC-32 of an open file, read through a mapping (no copy) in large chunks, at
    zlib's own rate; `advance` is told each chunk's size (progress)."""
    size = os.fstat(handle.fileno()).st_size
    value = 0
    if size:
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as memory, \
                memoryview(memory) as view:
            for start in range(0, size, CRC_CHUNK):
                with view[start:start + CRC_CHUNK] as chunk:
                    value = zlib.crc32(chunk, value)
                    if advance is not None:
                        advance(len(chunk))
    return format(value, "08x")


def read_hash(path: Path) -> str:
    """A `.hash` file's CRC as FaceFusion reads it (surrounding whitespace ignored)."""
    return path.read_text(encoding="utf-8", errors="replace").strip()


@dataclass(frozen=True)
class FoundModel:
    """One model of a FaceFusion models folder: its files, at FaceFusion's paths
    under the folder (those paths become the manifest's, so `ff export` puts them
    back where FaceFusion looks), and what it is."""

    paths: tuple[str, ...]  # e.g. `inswapper_128.onnx`, `iperov/elon_musk_224.dfm`
    model: str  # the ff model name: the stem, `scope.name` for a deep swapper
    module: str
    files: tuple[Path, ...]  # the model file first, then its external data files
    hash_file: Path | None


def models_folder(source: Path) -> Path:
    """A FaceFusion install's `.assets/models`, or `source` itself if it is the
    models folder."""
    nested = source / MODELS_DIR
    return nested if nested.is_dir() else source


def find_models(folder: Path, modules: Mapping[str, str]) -> list[FoundModel]:
    """Every model in a FaceFusion models folder, with its module kind. `modules`
    names the kind of files ff does not know (by stem); any other unknown file is
    refused, all of them in one message."""
    for stem, kind in modules.items():
        check_module_kind(kind, f"--module {stem}=")
    candidates = sorted([*folder.glob("*.onnx"), *folder.glob(f"*/*{DEEP_SWAPPER_SUFFIX}")])
    if not candidates:
        raise InputError(f"no .onnx models in {folder}; point ff import at a FaceFusion directory "
                         "(with .assets/models) or at its models folder")
    found, unknown = [], []
    for path in candidates:
        relative = path.relative_to(folder).as_posix()
        deep = path.suffix == DEEP_SWAPPER_SUFFIX
        stem = path.stem
        kind = modules.get(stem) or ("deep_swapper" if deep else module_for(stem))
        if kind is None:
            unknown.append(path.name)
            continue
        model = f"{path.parent.name}.{stem}" if deep else stem
        companions = sorted(p for p in path.parent.glob(f"{path.name}.*") if p.is_file())
        paths = (relative, *(relative + p.name[len(path.name):] for p in companions))
        hash_file = path.parent / Path(hash_name(path.name)).name
        found.append(FoundModel(paths, model, kind, (path, *companions),
                                hash_file if hash_file.is_file() else None))
    stray = sorted(set(modules) - {item.files[0].stem for item in found})
    if stray:
        raise InputError(f"--module names {', '.join(stray)}, which is not in {folder}")
    if unknown:
        example = Path(unknown[0]).stem
        raise InputError(f"ff does not know the model family of {', '.join(unknown)}; say what it "
                         f"is, e.g. --module {example}=face_swapper, or move it out of {folder}")
    return found


def check_hashes(found: list[FoundModel]) -> None:
    """Refuse a model whose FaceFusion `.hash` does not match it: the file is damaged
    (FaceFusion would delete it at its next start). A model without one is accepted."""
    for item in found:
        if item.hash_file is None:
            continue
        recorded, actual = read_hash(item.hash_file), crc32_file(item.files[0])
        if recorded != actual:
            raise VerificationError(
                f"{item.files[0]} is damaged: its CRC-32 is {actual}, {item.hash_file.name} says "
                f"{recorded!r}; let FaceFusion download it again (delete both files), then import")


# What FaceFusion 3.3+ runs by default: per slot, the first of its models present
# (older names last). A module may have several slots: FaceFusion loads 2dfan4 with
# fan_68_5, its occluder with its parser, its three content analysers together.
_DEFAULTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("face_detector", ("yoloface_8n", "retinaface_10g", "scrfd_2.5g", "yunet_2023_mar")),
    ("face_landmarker", ("2dfan4", "peppa_wutz")),
    ("face_landmarker", ("fan_68_5", "face_landmarker_68_5")),
    ("face_recognizer", ("arcface_w600k_r50",)),
    ("face_swapper", ("hyperswap_1a_256", "inswapper_128_fp16", "inswapper_128")),
    ("face_classifier", ("fairface",)),
    ("face_masker", ("xseg_1",)),
    ("face_masker", ("bisenet_resnet_34",)),
    ("content_analyser", ("nsfw_1", "open_nsfw")),
    ("content_analyser", ("nsfw_2",)),
    ("content_analyser", ("nsfw_3",)),
    ("voice_extractor", ("kim_vocal_2", "kim_vocal_1", "uvr_mdxnet")),
)


def default_modules(models: list[str]) -> dict[str, list[str]]:
    """FaceFusion's default models among `models` (imported stems), per module kind:
    what a starter facefusion.toml pins so that `ff export` gives FaceFusion
    everything its default run loads."""
    present = set(models)
    chosen: dict[str, list[str]] = {}
    for kind, names in _DEFAULTS:
        found = next((name for name in names if name in present), None)
        if found is not None:
            chosen.setdefault(kind, []).append(found)
    return chosen
