"""Video processing: decode thread → frame workers → encode thread.

Decoding and encoding run in their own threads with small bounded queues, so the
frame workers never wait on I/O and memory stays flat however long the video is.
With more than one worker, frames are processed concurrently and written in order:
while one frame is inside a model, another's alignment, warps and paste-back use
the cores (or feed the GPU) that would otherwise idle, as FaceFusion's execution
threads do. The output is written to a temp file next to the target and renamed
into place only when complete (the Runtime adds the sound, ffswap.audio).
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from ffstore.fsutil import atomic_path
from ffswap.errors import MediaError, NoFaceError, OutputError

FrameFn = Callable[[np.ndarray], np.ndarray | None]
"""Per-frame work: the processed frame, or None when the frame has no face (it is
then written unchanged)."""

ProgressFn = Callable[[int, int | None], None]
"""Called after each frame with (frames done, total frames or None if unknown)."""


@dataclass(frozen=True)
class Review:
    """Frame work whose results are judged, in order, before they are written, and
    redone when a judgement recalls them (a guarded run, ffswap.guard).

    ``process(index, frame)`` is the frame work; it must leave ``frame`` unchanged,
    since a recalled frame is processed again from it. ``settle(index)`` is called
    in frame order once frame ``index`` is processed: ``None`` lets it through, the
    index of this or an earlier frame recalls every frame from that one on, each then
    processed again by ``process`` (by then on whatever models the recall put in
    place). ``hold`` processed frames are kept back from the encoder, so a recall can
    reach that far back; recalling a frame already written is an error.
    """

    process: Callable[[int, np.ndarray], np.ndarray | None]
    settle: Callable[[int], int | None]
    hold: int


_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}
_END = object()
_POLL_S = 0.1


@dataclass(frozen=True)
class VideoResult:
    """What was written: frame counts, frame rate, frame size (width, height) and
    what became of the target's sound (see ffswap.audio)."""

    path: Path
    frames: int
    swapped_frames: int
    fps: float
    size: tuple[int, int]
    audio: str = "not asked for"
    redone: int = 0
    """Frames processed again after a review recalled them."""


def _put(target: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    """Put with periodic checks of ``stop`` so a failed peer never deadlocks us."""
    while not stop.is_set():
        try:
            target.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _get(source: queue.Queue[Any], stop: threading.Event) -> object:
    while True:
        try:
            return source.get(timeout=_POLL_S)
        except queue.Empty:
            if stop.is_set():
                return _END


def _read_frames(capture: cv2.VideoCapture, frames: queue.Queue[Any], stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            ok, frame = capture.read()
            if not ok:
                break
            if not _put(frames, frame, stop):
                return
    except Exception as error:  # handed to the inference thread, which re-raises it
        _put(frames, error, stop)
        return
    _put(frames, _END, stop)


def _write_frames(
    writer: cv2.VideoWriter,
    frames: queue.Queue[Any],
    stop: threading.Event,
    errors: list[BaseException],
) -> None:
    try:
        while True:
            frame = _get(frames, stop)
            if frame is _END:
                return
            writer.write(frame)
    except Exception as error:  # reported by the inference thread after join
        errors.append(error)
        stop.set()


def open_capture(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise MediaError(f"cannot read video {path}: no such file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise MediaError(f"cannot read video {path}: not a video format OpenCV decodes")
    return capture


def process_video(
    target: str | os.PathLike[str],
    output: str | os.PathLike[str],
    frame_fn: FrameFn | Review,
    *,
    progress: ProgressFn | None = None,
    queue_size: int = 8,
    workers: int = 1,
) -> VideoResult:
    """Run ``frame_fn`` over every frame of ``target`` and write ``output`` atomically.

    ``workers`` frames are processed at once (``frame_fn`` must then be thread-safe);
    the output order is the input order whatever the count. A :class:`Review`
    instead of a plain frame function judges frames before they are written.

    Raises :class:`MediaError` when the target cannot be read or has no frames, and
    :class:`NoFaceError` when no frame has a face (nothing would have been swapped,
    which is almost certainly not what the caller wants written).
    """
    source, destination = Path(target), Path(output)
    fourcc = _FOURCC.get(destination.suffix.lower())
    if fourcc is None:
        raise MediaError(
            f"unsupported video output type {destination.suffix!r}; use one of {sorted(_FOURCC)}"
        )
    capture = open_capture(source)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        with atomic_path(destination) as temp:
            writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
            if not writer.isOpened():
                raise OutputError(f"cannot write video {destination} with codec {fourcc}")
            try:
                review = frame_fn if isinstance(frame_fn, Review) else _unreviewed(frame_fn)
                frames, swapped, redone = _pump(capture, writer, review, progress, total,
                                                queue_size, workers)
            finally:
                writer.release()
            if frames == 0:
                raise MediaError(f"cannot read video {source}: no decodable frames")
            if swapped == 0:
                raise NoFaceError("target video", f"none of its {frames} frames has a face")
    finally:
        capture.release()
    return VideoResult(destination, frames, swapped, float(fps), (width, height), redone=redone)


def _unreviewed(frame_fn: FrameFn) -> Review:
    """Plain frame work: nothing held back, nothing recalled, so ``frame_fn`` may
    paste into the decoded frame."""
    return Review(lambda _, frame: frame_fn(frame), lambda _: None, 0)


def _pump(
    capture: cv2.VideoCapture,
    writer: cv2.VideoWriter,
    review: Review,
    progress: ProgressFn | None,
    total: int | None,
    queue_size: int,
    workers: int,
) -> tuple[int, int, int]:
    """Feed decoded frames to the workers and their results, in order, through the
    review to the writer; (frames, swapped, redone). At most ``workers`` frames are
    in work and one more is queued, and ``review.hold`` judged ones wait for the
    writer, so a slow writer holds the workers back and memory stays bounded."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    stop = threading.Event()
    decoded: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    encoded: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    write_errors: list[BaseException] = []
    reader = threading.Thread(
        target=_read_frames, args=(capture, decoded, stop), name="ffswap-decode", daemon=True
    )
    writer_thread = threading.Thread(
        target=_write_frames,
        args=(writer, encoded, stop, write_errors),
        name="ffswap-encode",
        daemon=True,
    )
    reader.start()
    writer_thread.start()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ffswap-frame")
    in_work: deque[tuple[int, np.ndarray, Future[np.ndarray | None]]] = deque()
    held: deque[tuple[int, np.ndarray, np.ndarray | None]] = deque()
    frames = swapped = redone = decoded_count = 0

    def submit(index: int, frame: np.ndarray) -> None:
        in_work.append((index, frame, pool.submit(review.process, index, frame)))

    def write(frame: np.ndarray, result: np.ndarray | None) -> bool:
        """Hand a frame to the writer; False if the writer failed."""
        nonlocal frames, swapped
        if result is not None:
            swapped += 1
        if not _put(encoded, frame if result is None else result, stop):
            return False
        frames += 1
        if progress is not None:
            progress(frames, total)
        return True

    def settle() -> bool:
        """Judge the oldest frame in work, then write what the hold lets go; False
        if the writer failed."""
        nonlocal redone
        index, frame, future = in_work.popleft()
        result = future.result()  # a frame_fn error is raised here, in order
        recall = review.settle(index)
        if recall is not None:
            if recall < frames:
                raise RuntimeError(f"frame {recall} was recalled after it was written")
            again = [(i, f) for i, f, _ in held if i >= recall] + [(index, frame)]
            for _, _, stale in in_work:
                stale.cancel()  # a frame already running finishes on the old models, unused
            again += [(i, f) for i, f, _ in in_work]
            while held and held[-1][0] >= recall:
                held.pop()
            in_work.clear()
            redone += len(again)
            for i, f in again:
                submit(i, f)
            return True
        held.append((index, frame, result))
        while len(held) > review.hold:
            _, kept, done = held.popleft()
            if not write(kept, done):
                return False
        return True

    finished = False
    try:
        while True:
            item = _get(decoded, stop)
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise MediaError(f"video decoding failed: {item}") from item
            submit(decoded_count, cast(np.ndarray, item))
            decoded_count += 1
            if len(in_work) > workers and not settle():
                break  # the writer failed; its error is raised below
        while in_work and settle():
            pass
        while held and write(*held.popleft()[1:]):
            pass
        _put(encoded, _END, stop)
        finished = True
    finally:
        if not finished:
            stop.set()  # unblock both threads so the error propagates promptly
        pool.shutdown(cancel_futures=True)
        reader.join()
        writer_thread.join()
    if write_errors:
        raise OutputError(f"video encoding failed: {write_errors[0]}") from write_errors[0]
    return frames, swapped, redone
