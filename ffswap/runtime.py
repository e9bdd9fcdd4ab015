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
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ffstore.fsutil import atomic_path
from ffstore.modules import kind_of
from ffswap import audio, zoo
from ffswap.adapters.factory import make_adapter, profile_of
from ffswap.contracts import check_contract, session_io
from ffswap.errors import ContractError, SwapError
from ffswap.face import Face, SourceFace
from ffswap.guard import Guard, Trip, Watch
from ffswap.model_source import MODULES, REQUIRED_MODULES, ModelSource
from ffswap.pipeline import FaceSwapper
from ffswap.sessions import Preference, make_checked_session
from ffswap.video import FrameFn, ProgressFn, Review, VideoResult, process_video


@dataclass(frozen=True)
class ActiveModel:
    """An entry's current model: which one, its role, where it runs, its adapter.
    ``name`` is the entry's name (``face_swapper``, ``face_landmarker/2dfan4``)."""

    name: str
    module: str
    model: str
    version: str
    provider: str
    role: str
    adapter: Any = field(repr=False, compare=False)


_PIPELINE_ROLES = {zoo.DETECTOR: "detector", zoo.RECOGNIZER: "recognizer", zoo.SWAPPER: "swapper",
                   zoo.ENHANCER: "enhancer", zoo.LANDMARKER: "landmarker",
                   zoo.LANDMARK_ESTIMATOR: "landmark_estimator", zoo.CONVERTER: "converter"}
"""Which FaceSwapper field each role fills."""


FRAME_WORKERS = 3
"""Video frames in work at once by default (FaceFusion's execution threads). One
frame's alignment, warps and paste-back then run while another's is inside a model,
so a GPU (or idle cores) need not wait for them: even on 2 busy CPU cores much less
of the wall time passes with no model running, at about the same frame rate
(bench/RESULTS.md, "Frame workers"); more workers only contend for the same cores."""


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the OS.

    A released session frees its weights, but glibc keeps large freed arenas mapped,
    so RSS would only ever grow across switches; ``malloc_trim`` returns them.
    """
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Runtime:
    """Holds one inference session per locked entry and runs swaps with the current ones.

    ``versions`` maps entries (a module kind, or an entry name such as
    ``face_landmarker/2dfan4``) to versions (``None``: the source's locked or
    default version). A detector, a recogniser and a swapper are always loaded (by
    their kind, unless an entry of that kind is listed); landmarkers, embedding
    converters and the enhancer only when listed. Every model is checked against its
    adapter's contract before a session is made, and each role (detector, swapper,
    ...) is filled at most once.
    """

    def __init__(
        self,
        models: ModelSource,
        versions: Mapping[str, str | None] | None = None,
        *,
        execution_provider: Preference = "auto",
        threads: int | None = None,
    ) -> None:
        given = dict(versions or {})
        unknown = sorted(name for name in given if kind_of(name) not in MODULES)
        if unknown:
            raise ValueError(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
        kinds = {kind_of(name) for name in given}
        wanted = {**{kind: None for kind in REQUIRED_MODULES if kind not in kinds}, **given}
        self._models = models
        self._preference: Preference = execution_provider
        self._threads = threads
        self._lock = threading.Lock()
        self._active: dict[str, ActiveModel] = {}
        self._generation = 0
        for name in sorted(wanted, key=lambda name: (MODULES.index(kind_of(name)), name)):
            loaded = self._load(name, wanted[name])
            taken = next((other for other in self._active.values() if other.role == loaded.role),
                         None)
            if taken is not None:
                raise SwapError(f"{taken.name} ({taken.model}) and {name} ({loaded.model}) are both a "
                                f"{loaded.role}; ff swap runs one: lock one of them")
            self._active[name] = loaded
        for role in (zoo.DETECTOR, zoo.RECOGNIZER, zoo.SWAPPER):
            if not any(model.role == role for model in self._active.values()):
                raise SwapError(f"no {role} is loaded: ff swap needs a {zoo.ROLE_MODULES[role]}")

    def _load(self, name: str, version: str | None) -> ActiveModel:
        module = kind_of(name)
        loaded = self._models.load(name, version, deferred_check=True)
        if loaded.module != module:
            raise ContractError(module, [f"the model source returned a {loaded.module!r} model"])
        # Refuse on the manifest's I/O first: cheap, and no session for a wrong model.
        profile = profile_of(module, loaded.model, loaded.file, loaded.inputs, loaded.outputs)
        session, used = make_checked_session(loaded, self._preference, self._threads)
        # The manifest is the publisher's claim; the session is the truth. They must agree.
        differences = check_contract(profile.contract, *session_io(session))
        if differences:
            raise ContractError(module, ["the model's I/O differs from its manifest:", *differences])
        # The swapper reads inswapper's emap from the same verified bytes the session ran on.
        adapter = make_adapter(profile, session, loaded.data)
        return ActiveModel(name, module, loaded.model, loaded.version, used, profile.role, adapter)

    def switch(self, module: str, version: str | None) -> ActiveModel:
        """Load entry ``module`` at ``version`` and make it current for the next frame.

        On any error the current model stays in place. The old session is dropped
        once frames using it finish, and its memory handed back.
        """
        return self.install(module, self.prepare(module, version))

    def prepare(self, module: str, version: str | None) -> ActiveModel:
        """Load entry ``module`` at ``version``, checked, without making it current:
        for a caller that must know the model runs before it commits to it (ff ui,
        before it rewrites the lock), and installs it afterwards."""
        if kind_of(module) not in MODULES:
            raise ValueError(f"unknown module {module!r}; known: {', '.join(MODULES)}")
        return self._load(module, version)

    def install(self, module: str, new: ActiveModel) -> ActiveModel:
        """Make a loaded model current (a switch; a guard's fallback or a model
        `prepare` loaded before)."""
        with self._lock:
            old = self._active.get(module)
            clash = next((other for other in self._active.values()
                          if other.role == new.role and other.name != module), None)
            if clash is not None:
                raise SwapError(f"{clash.name} is already the {new.role}; switch that one")
            self._active[module] = new
            self._generation += 1
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
        """The current model per loaded entry."""
        with self._lock:
            return dict(self._active)

    @property
    def provider(self) -> str:
        """The execution provider(s) actually running the sessions, e.g.
        ``"CPUExecutionProvider"``; comma-separated if modules ended up on different ones."""
        return ", ".join(sorted({model.provider for model in self.active.values()}))

    def _snapshot(self) -> tuple[FaceSwapper, int]:
        """A pipeline over the current adapters plus the generation of that set.

        Taken once per frame: the frame runs to the end on these adapters even if a
        switch happens meanwhile.
        """
        with self._lock:
            if not self._active:
                raise SwapError("the runtime is closed")
            parts = {_PIPELINE_ROLES[model.role]: model.adapter for model in self._active.values()}
            return FaceSwapper(**parts), self._generation

    def pipeline(self) -> FaceSwapper:
        """The current models as one pipeline, for callers that drive its stages
        themselves: ff compare times the swap alone, apart from what it measures."""
        return self._snapshot()[0]

    def swap_image(self, source: np.ndarray, target: np.ndarray, *,
                   guard: Guard | None = None) -> np.ndarray:
        """Swap the source's identity onto every face of the target (BGR uint8).

        With a ``guard`` the image is judged as a guarded video's frames are (every
        check, see ffswap.guard); if it fails, the guarded swapper is switched to the
        fallback, the image is swapped again with it and the trip reported."""
        pipeline, _ = self._snapshot()
        if guard is None:
            return pipeline.swap_image(source, target)
        face = pipeline.source_face(source)
        faces = pipeline.target_faces(target)
        watch, fallback = self._watch(guard, pipeline, face, window=1, trip_at=1)
        result = watch.swap(0, target, faces, pipeline, pipeline.source_input(face))
        if watch.settle(0) is None or watch.tripped is None:
            return result
        tripped = self._trip(guard, watch.tripped, fallback, redone=1)
        redo, _ = self._snapshot()
        result = redo.swap_faces(target, faces, redo.source_input(face))
        guard.on_trip(tripped)
        return result

    def _watch(self, guard: Guard, pipeline: FaceSwapper, face: SourceFace,
               **window: int) -> tuple[Watch, ActiveModel]:
        """A judge for one guarded run, over a reference pipeline that differs from
        ``pipeline`` only in its swapper (the fallback version, loaded here, once),
        and the fallback itself, to switch to if the run trips."""
        watched = self.active.get(guard.module)
        if watched is None or watched.role != zoo.SWAPPER:
            raise ValueError(f"the guard watches the swapper; {guard.module} is not it")
        fallback = self._load(guard.module, guard.fallback)
        reference = replace(pipeline, swapper=fallback.adapter)
        return Watch(reference, reference.source_input(face), face.embedding, fallback.version,
                     **window), fallback

    def _trip(self, guard: Guard, verdict: tuple[int, str], fallback: ActiveModel,
              redone: int) -> Trip:
        """Switch the guarded swapper back to ``fallback``; the report of the trip
        (``verdict``: the first bad frame and the reason)."""
        first_bad, reason = verdict
        tripped = self.active[guard.module].version
        self.install(guard.module, fallback)
        return Trip(guard.module, tripped, fallback.version, reason, first_bad, redone)

    def swap_video(
        self,
        source: np.ndarray,
        target: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        progress: ProgressFn | None = None,
        workers: int | None = None,
        keep_audio: bool = True,
        guard: Guard | None = None,
    ) -> VideoResult:
        """Swap the source's identity onto every face of every frame of a video.

        The swapper's source input is computed once up front (so a face-less source
        fails before any decoding) and again only if a model is switched mid-video.
        Frames without faces are written unchanged. ``workers`` frames are processed
        at once (default FRAME_WORKERS); each runs to the end on the models that
        were current when it started. With ``keep_audio`` the target's sound is
        muxed into the output when ffmpeg is installed (``VideoResult.audio`` says
        what happened).

        With a ``guard``, frames made by the guarded swapper are judged (ffswap.guard)
        and held back from the encoder until the judgement can no longer recall them;
        when the swapper trips, it is switched to the fallback, every frame from the
        first bad one on is made again with it, and the trip is reported once the
        output is written. A switch by anyone else ends the judging.
        """
        pipeline, generation = self._snapshot()
        face = pipeline.source_face(source)
        cached = {generation: pipeline.source_input(face)}
        source_lock = threading.Lock()

        def prepare(frame: np.ndarray) -> tuple[FaceSwapper, int, list[Face], np.ndarray]:
            current, current_generation = self._snapshot()
            with source_lock:
                if current_generation not in cached:
                    cached.clear()
                    cached[current_generation] = current.source_input(face)
                prepared = cached[current_generation]
            return current, current_generation, current.faces(frame), prepared

        def frame_fn(frame: np.ndarray) -> np.ndarray | None:
            current, _, faces, prepared = prepare(frame)
            # The decoded frame is ours and not needed afterwards: paste into it.
            return current.swap_faces(frame, faces, prepared, in_place=True) if faces else None

        work: FrameFn | Review = frame_fn
        trips: list[Trip] = []
        if guard is not None:
            watch, fallback = self._watch(guard, pipeline, face)

            def process(index: int, frame: np.ndarray) -> np.ndarray | None:
                current, current_generation, faces, prepared = prepare(frame)
                if not faces:
                    return None
                if current_generation != generation:  # the fallback (or a switch): not judged
                    return current.swap_faces(frame, faces, prepared)
                return watch.swap(index, frame, faces, current, prepared)

            def settle(index: int) -> int | None:
                recall = watch.settle(index)
                if recall is not None and watch.tripped is not None:
                    trips.append(self._trip(guard, watch.tripped, fallback, redone=0))
                return recall

            work = Review(process, settle, watch.hold)
        result = self._encode(work, target, output, progress, workers or FRAME_WORKERS,
                              keep_audio)
        if guard is not None and trips:
            guard.on_trip(replace(trips[0], redone=result.redone))
        return result

    def _encode(self, work: FrameFn | Review, target: str | os.PathLike[str],
                output: str | os.PathLike[str], progress: ProgressFn | None, workers: int,
                keep_audio: bool) -> VideoResult:
        """Run the frames through ``work`` into ``output``, with the target's sound."""
        run = {"progress": progress, "workers": workers}
        no_ffmpeg = keep_audio and audio.ffmpeg() is None
        if no_ffmpeg or not keep_audio or not audio.has_audio(Path(target)):
            result = process_video(target, output, work, **run)
            state = "not kept: ffmpeg not found" if no_ffmpeg else (
                "not asked for" if not keep_audio else "none in the target")
            return replace(result, audio=state)
        destination = Path(output)
        with atomic_path(destination) as muxed:
            silent = muxed.with_name(f"{muxed.stem}-video{muxed.suffix}")
            try:
                result = process_video(target, silent, work, **run)
                audio.mux(silent, Path(target), muxed)
            finally:
                silent.unlink(missing_ok=True)
        return replace(result, path=destination, audio="kept")

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
