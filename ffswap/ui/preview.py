"""Preview and comparison pages: the swap with the current versions on a chosen
source face and target, a frame scrubber and a run for short clips, and two versions
side by side with ff compare's metrics."""

from __future__ import annotations

from starlette.routing import Route

from ffswap.ui.session import UiSession


def routes(session: UiSession) -> list[Route]:
    del session
    return []
