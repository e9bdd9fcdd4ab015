"""The module kinds a pipeline has (FaceFusion's names), and the names of lock
entries. A toml or manifest naming another kind is almost always a typo, so it is
refused with the list of valid ones.

A module kind usually has one model, and its entry is named after the kind
(`face_swapper`). A kind may also list several models (FaceFusion runs 2dfan4 and
fan_68_5 side by side, a swapper with its embedding converter, several maskers); each
of those entries is named `KIND/MODEL` (`face_landmarker/2dfan4`)."""

from collections.abc import Iterable

from ffstore.errors import InputError

MODULE_KINDS = (
    "face_detector",
    "face_landmarker",
    "face_recognizer",
    "face_swapper",
    "face_enhancer",
    "face_masker",
    "face_classifier",
    "content_analyser",
    "voice_extractor",
    "frame_enhancer",
    "frame_colorizer",
    "lip_syncer",
    "age_modifier",
    "expression_restorer",
    "face_editor",
    "deep_swapper",
    "background_remover",
)

SEPARATOR = "/"


def check_module_kind(name: object, where: str) -> str:
    if name not in MODULE_KINDS:
        raise InputError(f"{where}: unknown module {name!r}; known modules: {', '.join(MODULE_KINDS)}")
    return str(name)


def entry_name(kind: str, model: str, several: bool) -> str:
    """The name of a lock entry: the kind alone, or `KIND/MODEL` for one of several."""
    return f"{kind}{SEPARATOR}{model}" if several else kind


def kind_of(name: str) -> str:
    """The module kind of an entry name."""
    return name.split(SEPARATOR, 1)[0]


def find_entry(names: Iterable[str], wanted: str, where: str) -> str:
    """The entry `wanted` names: an entry name, or a kind that has exactly one entry.
    Anything else is refused with what the user could have meant."""
    names = sorted(names)
    if wanted in names:
        return wanted
    of_kind = [name for name in names if kind_of(name) == wanted]
    if len(of_kind) == 1:
        return of_kind[0]
    if of_kind:
        raise InputError(f"{wanted} has {len(of_kind)} models in {where} ({', '.join(of_kind)}); "
                         f"name one, e.g. {of_kind[0]}")
    raise InputError(f"unknown module {wanted!r}; modules in {where}: {', '.join(names) or 'none'}")
