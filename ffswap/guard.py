"""Guarded runs (`ff swap --guard`): every swapped face is checked as it is made,
and a swapper version that keeps failing is switched back to the previous
generation's version between frames, with the frames it spoiled redone.

This module is the policy: which checks run on which frames, what counts as a bad
frame, when a version trips. The Runtime (ffswap.runtime) does the switching and,
through ffswap.video's Review, the holding back and redoing; the CLI records the
rollback in facefusion.lock. Checks, in order of cost:

- every face of every frame, nearly free: the swapper's raw crop, before paste-back
  clips it to pixels (non-finite values; a crop mostly clipped to black or white);
- on sampled frames, the costly ones, each measured against the previous version on
  the very same frame and faces (a reference session of that version, loaded once):
  does the crop still have that version's structure, does the detector still find
  the face, how far did its landmarks move, and how much does it look like the
  source (the recogniser's identity)?

A frame is bad when any of its faces is. The version trips when TRIP_AT of the last
WINDOW judged frames are bad (one bad image trips at once): a single odd frame is
not a regression, a run of them is.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ffswap.face import Face
from ffswap.metrics import correlation, identity, rematch
from ffswap.pipeline import FaceSwapper

SATURATED_SHARE = 0.5
"""A crop with at least this share of its values clipped to black (<= 0) or white
(>= 255) is saturated. A black or white face is what a broken normalisation or a
dead output layer gives; the stand-in releases clip at most 0.7 % of a crop on
the test videos, a real face has highlights and shadows but not half of it."""

CROP_CORRELATION = 0.6
"""The lowest correlation (ffswap.metrics.correlation) a swapped crop may have with
the previous version's crop of the same face. Two versions of a swapper render the
same face in the same pose and light, so their crops move together even when one
tints or sharpens more: the good stand-in releases, whose tints differ, correlate
at 1.000 on every test image, video and the 720p clip; a face rolled 32 px in its
crop at 0.29 at most, a transposed one at 0.42 at most. Not calibrated on real
releases: 0.6 leaves room for a retrained model's different detail."""

LANDMARK_EXCESS = 0.2
"""How much farther, in face sizes (the box diagonal), the detector may find a
face's five landmarks from where they were than it finds them after the previous
version's swap: a backstop for a face the swap bends out of shape, which the crop
correlation may miss. Loose, because landmarks found on a swapped face are noisy:
the stand-in releases 1.0.0 and 1.1.0 (tint strength 0.6 and 0.8) differ by up to
0.06 on the test images and videos and by up to 0.16 on a close-up where the
stronger tint all but hides the face; a face rolled 32 px in its crop moves them
by 0.13 to 0.29."""

IDENTITY_DROP = 0.3
"""How far the swapped face's identity to the source (cosine of the recogniser's
embeddings) may fall below the previous version's on the same face. The good
stand-in releases fell by at most 0.08 on the test images and videos; NaN output
(pasted as black) by 0.67 or more. The stand-in recogniser sees mostly colour, so a
tint alone moves it: 1.0.0 measured against 1.1.0 (the pair the other way round)
falls by 0.4 to 0.54 with Grace Hopper as the source and would trip, which is why
the good stand-in releases under test keep their predecessor's tint. Real
recognisers measure identity, not colour; the bound is not calibrated on them."""

SAMPLE_EVERY = 20
"""Every this-many-th frame gets the costly checks (a reference swap, enhancer
included, a detection, the identities: over half a frame's work with the stand-in
models), besides the first frame with faces and every frame while the window holds
a bad one. One in ten cost 12-18 % of the run on the 720p clip; one in twenty keeps
it under 10 % (bench/bench_guard.py, target at most 15 %), and a version that goes
wrong on some faces only is still looked at within a second of video."""

WINDOW = 5
TRIP_AT = 3
"""The version trips when TRIP_AT of the last WINDOW judged frames are bad: a run
of bad frames, not one odd frame (a face half out of the picture, a motion blur)."""

GuardReport = Callable[["Trip"], None]


@dataclass(frozen=True)
class Guard:
    """What a guarded run watches: the swapper's lock entry (``module``), the version
    it falls back to when its current one trips (``fallback``, what `ff rollback`
    would pick), and who is told, once the run is done (``on_trip``)."""

    module: str
    fallback: str
    on_trip: GuardReport


@dataclass(frozen=True)
class Trip:
    """A guard trip: ``module`` went from ``from_version`` to ``to_version`` for
    ``reason``; the frames from ``first_bad`` on were made again (``redone`` frames
    processed again, counting those in work when it tripped). An image is frame 0."""

    module: str
    from_version: str
    to_version: str
    reason: str
    first_bad: int
    redone: int


def crop_fault(crop: np.ndarray) -> str | None:
    """What is wrong with one face's raw swapped crop (pixel units), if anything."""
    if not np.isfinite(crop.sum(dtype=np.float64)):  # one pass; inf and NaN both survive it
        return "non-finite output"
    clipped = np.count_nonzero((crop <= 0.0) | (crop >= 255.0)) / crop.size
    if clipped >= SATURATED_SHARE:
        return f"saturated output ({clipped:.0%} black or white)"
    return None


class Watch:
    """One guarded run's judge. Workers call :meth:`swap` for frames made by the
    guarded version, in any order; the video pipeline calls :meth:`settle` in frame
    order. ``reference`` is the same pipeline with the previous version's swapper
    and ``reference_source`` that swapper's source input; ``source_embedding`` is the
    source face's identity, ``fallback`` the previous version's name (for reasons).

    Once a frame is bad, every later frame is judged: those a worker had already
    started unsampled are checked when they settle, so the first bad frame in the
    window is never more than ``window - 1`` frames before the trip (``hold``)."""

    def __init__(self, reference: FaceSwapper, reference_source: np.ndarray,
                 source_embedding: np.ndarray, fallback: str, *, window: int = WINDOW,
                 trip_at: int = TRIP_AT) -> None:
        self._reference = reference
        self._reference_source = reference_source
        self._embedding = source_embedding
        self._fallback = fallback
        self._trip_at = trip_at
        self.hold = window
        self._lock = threading.Lock()
        self._verdicts: dict[int, str | None] = {}  # judged, not settled: index -> fault
        self._unjudged: dict[int, tuple[np.ndarray, list[Face], np.ndarray, list[np.ndarray]]] = {}
        self._window: deque[tuple[int, str | None]] = deque(maxlen=window)
        self._lowest = math.inf  # the lowest frame index with faces seen so far
        self._alert = False
        self.tripped: tuple[int, str] | None = None
        """(first bad frame, reason) once the version has tripped."""

    def swap(self, index: int, frame: np.ndarray, faces: list[Face], pipeline: FaceSwapper,
             source: np.ndarray) -> np.ndarray:
        """Swap ``faces`` of ``frame`` (left unchanged) with the guarded ``pipeline``
        and judge the result: every face's crop, and on sampled frames the costly
        checks. The verdict waits for :meth:`settle`."""
        due = self._due(index)
        faults: list[str] = []
        crops: list[np.ndarray] = []  # in the order of faces: swap_faces goes through them so

        def inspect(_: Face, crop: np.ndarray) -> None:
            fault = crop_fault(crop)
            if fault is not None:
                faults.append(fault)
            crops.append(crop)

        result = pipeline.swap_faces(frame, faces, source, inspect=inspect)
        if faults:
            self._record(index, faults[0])
        elif due:
            self._record(index, self._compare(frame, faces, result, crops))
        else:
            with self._lock:  # the pipeline holds these frames anyway until they settle
                self._unjudged[index] = (frame, faces, result, crops)
        return result

    def _due(self, index: int) -> bool:
        """Costly checks for this frame? The first frame with faces (the lowest index
        to ask, whichever worker asks first), every SAMPLE_EVERY-th, and all while a
        bad frame is about."""
        with self._lock:
            first = index < self._lowest
            self._lowest = min(self._lowest, index)
            return self._alert or first or index % SAMPLE_EVERY == 0

    def _record(self, index: int, fault: str | None) -> None:
        with self._lock:
            self._verdicts[index] = fault
            self._alert = self._alert or fault is not None

    def _compare(self, frame: np.ndarray, faces: list[Face], result: np.ndarray,
                 crops: list[np.ndarray]) -> str | None:
        """The costly checks of one frame against the previous version's swap of it;
        ``crops`` are the guarded version's raw crops of ``faces``."""
        crops_before: list[np.ndarray] = []
        reference = self._reference.swap_faces(frame, faces, self._reference_source,
                                               inspect=lambda _, crop: crops_before.append(crop))
        detector, recognizer = self._reference.detector, self._reference.recognizer
        found = detector.detect(result)
        found_before: list[Face] | None = None
        for face, crop, crop_before in zip(faces, crops, crops_before, strict=True):
            alike = correlation(crop, crop_before)
            if alike < CROP_CORRELATION:
                return f"face unlike {self._fallback}'s (correlation {alike:.2f})"
            now = rematch(found, face)
            # Only a face lost or moved past the bound can be worse than the previous
            # version's: its detection (a frame's costliest step) is run only then.
            if not now.found or now.displacement > LANDMARK_EXCESS:
                if found_before is None:
                    found_before = detector.detect(reference)
                before = rematch(found_before, face)
                if before.found and not now.found:
                    return "face no longer detected"
                if now.found and before.found and \
                        now.displacement - before.displacement > LANDMARK_EXCESS:
                    return (f"landmarks moved {now.displacement:.2f} face sizes "
                            f"({self._fallback}: {before.displacement:.2f})")
            ours = identity(recognizer, result, face, self._embedding)
            theirs = identity(recognizer, reference, face, self._embedding)
            if theirs - ours > IDENTITY_DROP:
                return f"identity to the source {ours:.2f} ({self._fallback}: {theirs:.2f})"
        return None

    def settle(self, index: int) -> int | None:
        """Take frame ``index``'s verdict into the window (frames in order), judging
        it now if it went unsampled while a bad frame is about; the first bad frame
        to redo from when the version trips on it, else None."""
        with self._lock:
            unjudged = self._unjudged.pop(index, None)
            if self.tripped is not None:
                return None
            alert = self._alert
        if unjudged is not None and alert:
            self._record(index, self._compare(*unjudged))
        with self._lock:
            if index not in self._verdicts:
                return None
            self._window.append((index, self._verdicts.pop(index)))
            bad = [(frame, fault) for frame, fault in self._window if fault is not None]
            self._alert = bool(bad) or any(fault is not None for fault in self._verdicts.values())
            if len(bad) < self._trip_at:
                return None
            first, fault = bad[0]
            if self._window.maxlen == 1:
                self.tripped = (first, fault or "")
            else:
                self.tripped = (first, f"{fault} on {len(bad)} of {len(self._window)} checked "
                                       f"frames from frame {first}")
            self._unjudged.clear()
            return first
