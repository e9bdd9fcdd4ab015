"""When `ff compare` calls a version worse: the CI gate's limits, how much of a video
it looks at, and what crossing a limit looks like. Light on purpose (no numpy): the
command's options take their defaults from here, and `ff --help` loads every
command's options."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ffswap.compare import Summary

MAX_FRAMES = 100
"""Frames taken from each video by default, spread evenly over it: enough for a CI
gate to see a regression, few enough that two passes stay quick."""


@dataclass(frozen=True)
class Failure:
    """One threshold B crossed: the metric, A's and B's value, the change, the limit."""

    metric: str
    before: float
    after: float
    change: float
    limit: float

    @property
    def message(self) -> str:
        if self.metric == "slowdown":
            return (f"slowdown: {self.before:.1f} -> {self.after:.1f} ms per frame, "
                    f"{self.change:.2f}x > {self.limit:g}x")
        what = {"ssim": "SSIM of the outputs", "identity": "identity to the source",
                "found": "faces found again", "landmarks": "landmark displacement"}[self.metric]
        return (f"{self.metric}: {what} {self.before:.3f} -> {self.after:.3f}, "
                f"{'rise' if self.metric == 'landmarks' else 'drop'} {self.change:.3f} > {self.limit:g}")


@dataclass(frozen=True)
class Thresholds:
    """How much worse B may be than A before compare calls it a regression. Every
    limit is on the totals over all inputs; see docs/FORMATS.md (compare summary)."""

    max_ssim_drop: float | None = None
    """1 - SSIM of B's output against A's, around the faces. Off unless set: it says
    how much the output changed, not that it got worse, and a real upgrade changes
    faces (the demo's 1.1.0 stand-in: SSIM 0.81 against 1.0.0). A team that wants
    "no unexpected change" sets it; regressions are caught by the others."""
    max_identity_drop: float = 0.10
    """Fall in the output faces' cosine identity to the source face."""
    max_found_drop: float = 0.10
    """Fall in the share of faces the detector finds again in the output."""
    max_landmark_shift: float = 0.05
    """Rise in the found faces' landmark displacement, in face sizes (box diagonals)."""
    max_slowdown: float = 1.5
    """B's median time per frame over A's."""

    def check(self, total: Summary) -> list[Failure]:
        a, b = total.a, total.b
        failures = []

        def over(metric: str, before: float | None, after: float | None, change: float,
                 limit: float) -> None:
            if before is not None and after is not None and change > limit:
                failures.append(Failure(metric, before, after, change, limit))

        if total.ssim is not None and self.max_ssim_drop is not None:
            over("ssim", 1.0, total.ssim, 1.0 - total.ssim, self.max_ssim_drop)
        if a.identity_source is not None and b.identity_source is not None:
            over("identity", a.identity_source, b.identity_source,
                 a.identity_source - b.identity_source, self.max_identity_drop)
        if a.found is not None and b.found is not None:
            over("found", a.found, b.found, a.found - b.found, self.max_found_drop)
        if a.displacement is not None and b.displacement is not None:
            over("landmarks", a.displacement, b.displacement, b.displacement - a.displacement,
                 self.max_landmark_shift)
        over("slowdown", a.ms_per_frame, b.ms_per_frame, total.slowdown, self.max_slowdown)
        return failures

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in fields(cls)]
