"""The module kinds a pipeline has (FaceFusion's names). A toml or manifest naming
another kind is almost always a typo, so it is refused with the list of valid ones."""

from ffstore.errors import InputError

MODULE_KINDS = (
    "face_detector",
    "face_landmarker",
    "face_recognizer",
    "face_swapper",
    "face_enhancer",
    "face_masker",
    "face_classifier",
    "frame_enhancer",
    "frame_colorizer",
    "lip_syncer",
    "age_modifier",
    "expression_restorer",
    "deep_swapper",
)


def check_module_kind(name: object, where: str) -> str:
    if name not in MODULE_KINDS:
        raise InputError(f"{where}: unknown module {name!r}; known modules: {', '.join(MODULE_KINDS)}")
    return str(name)
