"""Long-running runtime: one session per module, hot-switchable between frames.

A server or a long video job keeps one :class:`Runtime`; ``switch`` replaces one
module's model (say, roll the swapper back a version) without stopping work: the
new session is built outside the lock, swapped in under it, and frames already
running finish on the old one, which is then released.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import weakref
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from ffswap.adapters.registry import select_adapter
from ffswap.adapters.swapper import InswapperSwapper
from ffswap.contracts import check_contract, session_io
from ffswap.errors import ContractError, SwapError
from ffswap.model_source import (
    FACE_DETECTOR,
    FACE_ENHANCER,
    FACE_RECOGNIZER,
    FACE_SWAPPER,
    MODULES,
    REQUIRED_MODULES,
    ModelProvider,
)
from ffswap.pipeline import FaceSwapper
from ffswap.providers import Preference, make_checked_session
from ffswap.video import ProgressFn, VideoResult, process_video


@dataclass(frozen=True)
class ActiveModel:
    """A module's current model: which one, where it runs, and its adapter."""

    module: str
    model: str
    version: str
    provider: str
    adapter: Any = field(repr=False, compare=False)


FRAME_WORKERS = 3
"""Video frames in work at once by default (FaceFusion's execution threads). One
frame's alignment, warps and paste-back then run while another's is inside a model,
so a GPU (or idle cores) need not wait for them: on 2 busy CPU cores the wall time
with no model running fell from about a third to an eighth, at about the same frame
rate (bench/RESULTS.md); more workers only contend for the same cores."""


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS.

    A released session frees its weights, but glibc keeps large freed arenas mapped,
    so RSS would only ever grow across switches; ``malloc_trim`` returns them.
    """
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Runtime:
    """Holds one inference session per module and runs swaps with the current ones.

    ``versions`` maps modules to versions (``None``: the provider's locked/default
    version); the detector, recogniser and swapper are always loaded, the enhancer
    only when listed. Every model is checked against its adapter's contract before a
    session is made.
    """

    def __init__(
        self,
        models: ModelProvider,
        versions: Mapping[str, str | None] | None = None,
        *,
        execution_provider: Preference = "auto",
        threads: int | None = None,
    ) -> None:
        wanted = dict.fromkeys(REQUIRED_MODULES) | dict(versions or {})
        unknown = sorted(set(wanted) - set(MODULES))
        if unknown:
            raise ValueError(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
        self._models = models
        self._preference: Preference = execution_provider
        self._threads = threads
        self._lock = threading.Lock()
        self._active: dict[str, ActiveModel] = {}
        self._generation: dict[str, int] = dict.fromkeys(MODULES, 0)
        for module in MODULES:
            if module in wanted:
                self._active[module] = self._load(module, wanted[module])

    def _load(self, module: str, version: str | None) -> ActiveModel:
        loaded = self._models.load(module, version, deferred_check=True)
        if loaded.module != module:
            raise ContractError(module, [f"provider returned a {loaded.module!r} model"])
        # Refuse on the manifest's I/O first: cheap, and no session for a wrong model.
        adapter_class = select_adapter(module, loaded.inputs, loaded.outputs)
        session, used = make_checked_session(loaded, self._preference, self._threads)
        # The manifest is the publisher's claim; the session is the truth. They must agree.
        differences = check_contract(adapter_class.CONTRACT, *session_io(session))
        if differences:
            raise ContractError(module, ["the model's I/O differs from its manifest:", *differences])
        # The swapper reads inswapper's emap from the same verified bytes the session ran on.
        if adapter_class is InswapperSwapper:
            adapter = InswapperSwapper(session, model=loaded.data)
        else:
            adapter = adapter_class(session)
        return ActiveModel(module, loaded.model, loaded.version, used, adapter)

    def switch(self, module: str, version: str | None) -> ActiveModel:
        """Load ``module`` at ``version`` and make it current for the next frame.

        On any error the current model stays in place. The old session is dropped
        once frames using it finish, and its memory handed back.
        """
        if module not in MODULES:
            raise ValueError(f"unknown module {module!r}; known: {', '.join(MODULES)}")
        new = self._load(module, version)
        with self._lock:
            old = self._active.get(module)
            self._active[module] = new
            self._generation[module] += 1
        if old is not None:
            released = weakref.ref(old.adapter)
            del old
            # Plain refcounting frees it unless a frame still runs on it or a cycle
            # holds it; only the latter needs the (slow, full) collector.
            if released() is not None:
                gc.collect()
        _return_freed_memory()
        return new

    @property
    def active(self) -> dict[str, ActiveModel]:
        """The current model per loaded module."""
        with self._lock:
            return dict(self._active)

    @property
    def provider(self) -> str:
        """The execution provider(s) actually running the sessions, e.g.
        ``"CPUExecutionProvider"``; comma-separated if modules ended up on different ones."""
        return ", ".join(sorted({model.provider for model in self.active.values()}))

    def _snapshot(self) -> tuple[FaceSwapper, int]:
        """A pipeline over the current adapters plus the recogniser's generation.

        Taken once per frame: the frame runs to the end on these adapters even if a
        switch happens meanwhile.
        """
        with self._lock:
            if FACE_DETECTOR not in self._active:
                raise SwapError("the runtime is closed")
            enhancer = self._active.get(FACE_ENHANCER)
            pipeline = FaceSwapper(
                detector=self._active[FACE_DETECTOR].adapter,
                recognizer=self._active[FACE_RECOGNIZER].adapter,
                swapper=self._active[FACE_SWAPPER].adapter,
                enhancer=None if enhancer is None else enhancer.adapter,
            )
            return pipeline, self._generation[FACE_RECOGNIZER]

    def swap_image(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Swap the source's identity onto every face of the target (BGR uint8)."""
        pipeline, _ = self._snapshot()
        return pipeline.swap_image(source, target)

    def swap_video(
        self,
        source: np.ndarray,
        target: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        progress: ProgressFn | None = None,
        workers: int | None = None,
    ) -> VideoResult:
        """Swap the source's identity onto every face of every frame of a video.

        The source embedding is computed once up front (so a face-less source fails
        before any decoding) and again only if the recogniser is switched mid-video.
        Frames without faces are written unchanged. ``workers`` frames are processed
        at once (default FRAME_WORKERS); each runs to the end on the models that
        were current when it started.
        """
        pipeline, generation = self._snapshot()
        cached = {generation: pipeline.source_embedding(source)}
        embedding_lock = threading.Lock()

        def embedding(current: FaceSwapper, current_generation: int) -> np.ndarray:
            with embedding_lock:
                if current_generation not in cached:
                    cached.clear()
                    cached[current_generation] = current.source_embedding(source)
                return cached[current_generation]

        def frame_fn(frame: np.ndarray) -> np.ndarray | None:
            current, current_generation = self._snapshot()
            source_embedding = embedding(current, current_generation)
            faces = current.detector.detect(frame)
            if not faces:
                return None
            # The decoded frame is ours and not needed afterwards: paste into it.
            return current.swap_faces(frame, faces, source_embedding, in_place=True)

        return process_video(target, output, frame_fn, progress=progress,
                             workers=workers or FRAME_WORKERS)

    def close(self) -> None:
        """Release every session now rather than whenever the object is collected."""
        with self._lock:
            self._active.clear()
        gc.collect()
        _return_freed_memory()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
