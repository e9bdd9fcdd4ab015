"""`ff compare` as a library: two versions of one module run on the same frames in one
Runtime, measured against each other and against the source and target faces.

Version A (``from``) runs over every frame first; the runtime then switches once to B
(``to``), which runs over the same frames, decoded again. One switch rather than one
per frame keeps each version's sessions warm, so a frame's time is its version's own.
What B's pass needs of A's (its face crops, metrics.face_crops) waits in a temporary
file, so a long video never sits in memory. The judges, the detector and recogniser the
metrics use, are the ones the runtime starts with (the locked ones), whatever module
is compared: both versions are measured with one ruler.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from ffstore.manifest import same_version
from ffstore.modules import kind_of
from ffswap import metrics, zoo
from ffswap.errors import MediaError, NoFaceError
from ffswap.face import Face
from ffswap.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image
from ffswap.model_source import FACE_DETECTOR, FACE_RECOGNIZER, ModelSource
from ffswap.pipeline import Detector, FaceSwapper, Recognizer
from ffswap.runtime import Runtime
from ffswap.sessions import Preference
from ffswap.thresholds import MAX_FRAMES, Failure, Thresholds
from ffswap.video import ProgressFn, open_capture


@dataclass(frozen=True)
class Side:
    """One version's output of one frame, as the judges see it. Identities and the
    displacement are means over the frame's faces (None: no face to measure)."""

    ms: float
    identity_source: float | None
    identity_target: float | None
    found: int
    displacement: float | None


@dataclass(frozen=True)
class FrameResult:
    """One frame of one input: how many faces the judge saw in the original, how alike
    the two outputs' faces are (SSIM: mean over faces, PSNR: pooled; None without
    faces; PSNR inf: identical), and each version's side."""

    input: int
    index: int
    faces: int
    ssim: float | None
    psnr: float | None
    a: Side
    b: Side


@dataclass(frozen=True)
class SideSummary:
    """One version over many frames. ``found`` is the share of the originals' faces
    found again; time is the median per frame, which one slow frame (a page fault, a
    neighbour's burst on a shared machine) does not move."""

    identity_source: float | None
    identity_target: float | None
    found: float | None
    displacement: float | None
    ms_per_frame: float

    @classmethod
    def of(cls, sides: list[Side], faces: int) -> SideSummary:
        def mean(values: Iterable[float | None]) -> float | None:
            present = [value for value in values if value is not None]
            return statistics.fmean(present) if present else None

        return cls(mean(side.identity_source for side in sides),
                   mean(side.identity_target for side in sides),
                   sum(side.found for side in sides) / faces if faces else None,
                   mean(side.displacement for side in sides),
                   statistics.median(side.ms for side in sides))


@dataclass(frozen=True)
class Summary:
    """Frames taken together (one input, or all): SSIM mean and worst over frames with
    faces, PSNR pooled over them (inf: identical), and each version's summary."""

    frames: int
    faces: int
    ssim: float | None
    ssim_min: float | None
    psnr: float | None
    a: SideSummary
    b: SideSummary

    @property
    def slowdown(self) -> float:
        """B's time per frame over A's."""
        return self.b.ms_per_frame / max(self.a.ms_per_frame, 1e-9)

    @classmethod
    def of(cls, frames: list[FrameResult]) -> Summary:
        ssims = [frame.ssim for frame in frames if frame.ssim is not None]
        psnrs = [frame.psnr for frame in frames if frame.psnr is not None]
        faces = sum(frame.faces for frame in frames)
        return cls(len(frames), faces,
                   statistics.fmean(ssims) if ssims else None, min(ssims, default=None),
                   metrics.pooled_psnr(psnrs) if psnrs else None,
                   SideSummary.of([frame.a for frame in frames], faces),
                   SideSummary.of([frame.b for frame in frames], faces))


@dataclass(frozen=True)
class Sample:
    """An input's most changed frame (lowest SSIM), as crops of its most changed face
    in the original and both outputs: what the report shows side by side."""

    index: int
    ssim: float
    original: np.ndarray
    a: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class InputResult:
    path: Path
    kind: str
    """``image`` or ``video``."""
    frames: list[FrameResult]
    summary: Summary
    sample: Sample | None


@dataclass(frozen=True)
class Version:
    """A compared model as the runtime loaded it."""

    model: str
    version: str
    provider: str


@dataclass(frozen=True)
class Comparison:
    module: str
    a: Version
    b: Version
    thresholds: Thresholds
    inputs: list[InputResult]
    total: Summary
    failures: list[Failure]

    @property
    def worse(self) -> bool:
        """B is worse than A beyond a threshold: the CI gate fails."""
        return bool(self.failures)

    @property
    def frames(self) -> list[FrameResult]:
        return [frame for result in self.inputs for frame in result.frames]


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """Each input as (path, ``image`` or ``video``); a folder gives its images and
    videos in name order (not its subfolders: what was asked for stays visible)."""
    media: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = [(child, _kind(child)) for child in sorted(path.iterdir())
                     if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
            if not found:
                raise MediaError(f"folder {path} has no images or videos")
            media += found
        elif path.is_file():
            media.append((path, _kind(path)))
        else:
            raise MediaError(f"cannot read input {path}: no such file or folder")
    if not media:
        raise MediaError("no inputs to compare on")
    return media


def _kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def _video_frames(path: Path, limit: int) -> Iterator[tuple[int, np.ndarray]]:
    """Up to ``limit`` frames spread evenly over the video (every one when it is
    short), decoded in order; skipped frames are only grabbed, not decoded."""
    capture = open_capture(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        stride = max(1, math.ceil(total / limit)) if total > 0 else 1
        index = taken = 0
        while taken < limit:
            if index % stride:
                if not capture.grab():
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                yield index, frame
                taken += 1
            index += 1
    finally:
        capture.release()
    if taken == 0:
        raise MediaError(f"cannot read video {path}: no decodable frames")


def _frames(media: list[tuple[Path, str]], limit: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(input number, frame index, frame) for every frame compared."""
    for number, (path, kind) in enumerate(media):
        if kind == "image":
            yield number, 0, read_image(path)
        else:
            for index, frame in _video_frames(path, limit):
                yield number, index, frame


def _unspool(spool: BinaryIO, count: int) -> list[np.ndarray]:
    """The next ``count`` face crops of A's output, which the spool holds in order."""
    shape = (metrics.FACE_CROP, metrics.FACE_CROP, 3)
    return [np.frombuffer(spool.read(math.prod(shape)), np.uint8).reshape(shape)
            for _ in range(count)]


@dataclass(frozen=True)
class _Original:
    """What both passes need of a frame before the swap: the judge's faces and their
    embeddings (small: kept for the whole run)."""

    faces: list[Face]
    embeddings: list[np.ndarray]


@dataclass(frozen=True)
class _Judge:
    """The fixed ruler: the detector and recogniser the runtime started with, and
    the source face's embedding by them."""

    detector: Detector
    recognizer: Recognizer
    source: np.ndarray

    @classmethod
    def of(cls, runtime: Runtime, source: np.ndarray) -> _Judge:
        by_role = {model.role: model.adapter for model in runtime.active.values()}
        detector, recognizer = by_role[zoo.DETECTOR], by_role[zoo.RECOGNIZER]
        faces = detector.detect(source)
        if not faces:
            raise NoFaceError("source image")
        face = max(faces, key=lambda face: face.area)
        return cls(detector, recognizer, recognizer.embed(source, face))

    def original(self, frame: np.ndarray, pipeline: FaceSwapper,
                 detected: list[Face]) -> _Original:
        """The judge's faces of ``frame``: those the pipeline ``detected`` when it ran
        the judge's detector unrefined (no landmark model), saving a detection."""
        if not (pipeline.detector is self.detector and pipeline.landmarker is None
                and pipeline.landmark_estimator is None):
            detected = self.detector.detect(frame)
        return _Original(detected, [self.recognizer.embed(frame, face) for face in detected])

    def side(self, output: np.ndarray, original: _Original, ms: float) -> Side:
        if not original.faces:
            return Side(ms, None, None, 0, None)
        embedded = [self.recognizer.embed(output, face) for face in original.faces]
        refound = metrics.refind_all(self.detector, output, original.faces)
        moved = [found.displacement for found in refound if found.found]
        return Side(ms,
                    statistics.fmean(metrics.cosine(e, self.source) for e in embedded),
                    statistics.fmean(metrics.cosine(e, t)
                                     for e, t in zip(embedded, original.embeddings, strict=True)),
                    len(moved), statistics.fmean(moved) if moved else None)


def _swap_timed(pipeline: FaceSwapper, prepared: np.ndarray,
                frame: np.ndarray) -> tuple[np.ndarray, list[Face], float]:
    """A's or B's output, the faces it swapped and its time in ms: what `ff swap` does
    to a video frame (detect, swap, enhance, paste back), the source prepared once."""
    output = frame.copy()
    start = time.perf_counter()
    faces = pipeline.faces(output)
    if faces:
        pipeline.swap_faces(output, faces, prepared, in_place=True)
    return output, faces, (time.perf_counter() - start) * 1000.0


def _prepared(runtime: Runtime, source: np.ndarray,
              first: np.ndarray) -> tuple[FaceSwapper, np.ndarray]:
    """The current version's pipeline and source input, warmed up on the first frame
    so its first-run allocations are not counted as its time per frame."""
    pipeline = runtime.pipeline()
    prepared = pipeline.source_input(pipeline.source_face(source))
    _swap_timed(pipeline, prepared, first)
    return pipeline, prepared


def compare(
    models: ModelSource,
    module: str,
    from_version: str,
    to_version: str,
    source: np.ndarray,
    inputs: Iterable[str | os.PathLike[str]],
    *,
    entries: Iterable[str] = (),
    thresholds: Thresholds | None = None,
    max_frames: int = MAX_FRAMES,
    execution_provider: Preference = "auto",
    progress: ProgressFn | None = None,
) -> Comparison:
    """Run entry ``module`` at ``from_version`` (A), then at ``to_version`` (B), over
    the same frames of ``inputs`` (images, folders, videos: up to ``max_frames``
    each) with the ``source`` face, and judge B against A. ``entries``: the other
    entries to load (a kind's locked version each), as `ff swap` would;
    ``thresholds``: the gate's limits (default: :class:`Thresholds`' defaults)."""
    thresholds = thresholds or Thresholds()
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, not {max_frames}")
    media = expand_inputs(inputs)
    first = next(_frames(media[:1], 1))[2]
    # A compared judge (detector, recogniser) starts at the locked version, kept as the
    # ruler while the runtime switches away from it; anything else starts at A.
    judged = kind_of(module) in (FACE_DETECTOR, FACE_RECOGNIZER)
    versions = {**dict.fromkeys(entries), module: None if judged else from_version}
    with Runtime(models, versions, execution_provider=execution_provider) as runtime:
        judge = _Judge.of(runtime, source)
        if not same_version(runtime.active[module].version, from_version):
            runtime.switch(module, from_version)
        a = _version(runtime, module)
        originals: list[tuple[int, int, _Original, Side]] = []
        with tempfile.TemporaryFile(prefix="ff-compare-") as spool:
            pipeline, prepared = _prepared(runtime, source, first)
            for number, index, frame in _frames(media, max_frames):
                output, faces, ms = _swap_timed(pipeline, prepared, frame)
                original = judge.original(frame, pipeline, faces)
                originals.append((number, index, original, judge.side(output, original, ms)))
                for crop in metrics.face_crops(output, original.faces):
                    spool.write(crop.tobytes())
                if progress is not None:
                    progress(len(originals), None)
            if not any(original.faces for _, _, original, _ in originals):
                raise NoFaceError("inputs", f"none of their {len(originals)} frames has a face")
            runtime.switch(module, to_version)
            b = _version(runtime, module)
            spool.seek(0)
            pipeline, prepared = _prepared(runtime, source, first)
            frames, samples = _second_pass(media, max_frames, originals, spool, judge,
                                           pipeline, prepared, progress)
    per_input = []
    for number, (path, kind) in enumerate(media):
        mine = [frame for frame in frames if frame.input == number]
        per_input.append(InputResult(path, kind, mine, Summary.of(mine), samples.get(number)))
    total = Summary.of(frames)
    return Comparison(module, a, b, thresholds, per_input, total, thresholds.check(total))


def _version(runtime: Runtime, module: str) -> Version:
    active = runtime.active[module]
    return Version(active.model, active.version, active.provider)


def _second_pass(
    media: list[tuple[Path, str]],
    max_frames: int,
    originals: list[tuple[int, int, _Original, Side]],
    spool: BinaryIO,
    judge: _Judge,
    pipeline: FaceSwapper,
    prepared: np.ndarray,
    progress: ProgressFn | None,
) -> tuple[list[FrameResult], dict[int, Sample]]:
    """B over the frames A saw, each compared with A's output there; per input, the
    crops of its most changed frame yet (the only pixels kept)."""
    results: list[FrameResult] = []
    samples: dict[int, Sample] = {}
    frames = _frames(media, max_frames)
    for done, (number, index, original, side_a) in enumerate(originals, 1):
        try:
            _, _, frame = next(frames)
        except StopIteration:
            raise MediaError(f"{media[number][0]} decoded to fewer frames the second time") from None
        output, _, ms = _swap_timed(pipeline, prepared, frame)
        ssim = psnr = None
        if original.faces:
            before = _unspool(spool, len(original.faces))
            after = metrics.face_crops(output, original.faces)
            ssims = [metrics.ssim(x, y) for x, y in zip(before, after, strict=True)]
            ssim = statistics.fmean(ssims)
            psnr = metrics.pooled_psnr([metrics.psnr(x, y)
                                        for x, y in zip(before, after, strict=True)])
            if number not in samples or ssim < samples[number].ssim:
                face = ssims.index(min(ssims))
                samples[number] = Sample(index, ssim,
                                         metrics.face_crops(frame, [original.faces[face]])[0],
                                         before[face], after[face])
        results.append(FrameResult(number, index, len(original.faces), ssim, psnr, side_a,
                                   judge.side(output, original, ms)))
        if progress is not None:
            progress(len(originals) + done, 2 * len(originals))
    return results, samples
