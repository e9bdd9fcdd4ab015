"""What can run a locked model. Programs that load models from the lock (ff swap,
from ffswap) register a check through the `ff.model_checks` entry point group, so
`ff lock`, `ff rollback` and `ff import` refuse a model nothing can run when it is
chosen, in one line, instead of when a swap starts. ffstore never imports them: it
calls whatever is installed.

A check is called as `check(models, complete)`. `models` are ModelInfo records;
`complete` is true when they are a whole lock (a pipeline: a swapper without the
embedding converter it needs is worth a note), false when they are unrelated
releases (an import). It returns notes (a locked frame enhancer is there for
FaceFusion, not for ff swap) and raises `ffstore.errors.InputError`, with the full
differences as `details`, for a model of a module it runs that it cannot run."""

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ffstore.manifest import Manifest

CHECK_GROUP = "ff.model_checks"


@dataclass(frozen=True)
class ModelInfo:
    """What a check may look at: the release and the I/O of its main file (the
    manifest's record: `{"inputs": [...], "outputs": [...]}`, None if not ONNX)."""

    module: str
    model: str
    version: str
    file: str
    onnx: Mapping[str, Any] | None

    @classmethod
    def of(cls, manifest: Manifest) -> "ModelInfo":
        main = manifest.main_file
        return cls(manifest.module, manifest.model, manifest.version, main.path, main.onnx)


ModelCheck = Callable[[Sequence[ModelInfo], bool], list[str]]


@functools.cache
def installed_checks() -> tuple[ModelCheck, ...]:
    from importlib.metadata import entry_points  # slow to import: only when needed

    return tuple(point.load() for point in sorted(entry_points(group=CHECK_GROUP),
                                                  key=lambda point: point.name))


def check_models(models: Sequence[ModelInfo], complete: bool) -> list[str]:
    """Run every installed check; the notes they return. The first refusal raises."""
    return [note for check in installed_checks() for note in check(models, complete)]
