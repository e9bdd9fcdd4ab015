"""What the Preview and Compare pages share: pictures served from memory, the files
to choose from, the versions a module can be switched to, and errors in the CLI's
words."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable
from html import escape
from typing import TYPE_CHECKING

import cv2
import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from ffstore.errors import FFError
from ffswap.errors import OutputError, SwapError
from ffswap.ui.media_store import MediaStore, Medium
from ffswap.ui.session import UiSession

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffswap.runtime import ActiveModel

FAILURES = (FFError, SwapError)
"""What a page reports as one `error:` line; anything else is a bug and surfaces."""

STYLE = """<style>
.pick{display:flex;gap:14px;flex-wrap:wrap;align-items:end;margin:8px 0}
.pick label{display:flex;flex-direction:column;gap:2px}
.shown img{max-width:520px;max-height:440px;border:1px solid #ccc;background:#fff}
.shown{margin:0}#result{max-width:540px}.worse{color:#b00020}
.slider{position:relative;display:inline-block;line-height:0}
.slider img{width:256px;image-rendering:pixelated;border:1px solid #ccc}
.slider .over{position:absolute;left:0;top:0;clip-path:inset(0 50% 0 0)}
.pair{display:flex;gap:14px;align-items:start;flex-wrap:wrap}.pair figure{margin:0}
</style>"""


def error_text(exc: Exception) -> str:
    """`exc` as `ff` would print it after `error: ` (ffswap.cli.as_ff_error's words
    for the runtime's failures)."""
    from ffswap.cli import as_ff_error

    return str(as_ff_error(exc) if isinstance(exc, SwapError) else exc)


class Pictures:
    """Rendered PNGs kept in memory, named by their digest: a picture's URL changes
    exactly when its pixels do, and the newest few are kept."""

    KEEP = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    def add(self, image: np.ndarray) -> str:
        """Keep `image` (BGR); the URL it is served at."""
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise OutputError("cannot encode the preview as PNG")
        data = encoded.tobytes()
        name = hashlib.sha256(data).hexdigest()[:20]
        with self._lock:
            self._kept[name] = data
            self._kept.move_to_end(name)
            while len(self._kept) > self.KEEP:
                self._kept.popitem(last=False)
        return f"/preview/picture/{name}.png"

    async def serve(self, request: Request) -> Response:
        with self._lock:
            data = self._kept.get(request.path_params["name"])
        if data is None:
            return Response("gone: render it again", status_code=404, media_type="text/plain")
        return Response(data, media_type="image/png",
                        headers={"cache-control": "private, max-age=3600, immutable"})


def media(session: UiSession, context: Context) -> MediaStore:
    """The project's files and this session's uploads."""
    uploads = session.scratch() / "uploads"
    uploads.mkdir(exist_ok=True)
    return MediaStore(context.project.root, uploads)


def select(name: str, choices: Iterable[Medium], chosen: Iterable[str], *, multiple: bool = False,
           blank: str = "") -> str:
    """A <select> of files; `blank` (when given) is the empty first choice."""
    picked = set(chosen)
    options = [f'<option value="">{escape(blank)}</option>'] if blank else []
    options += [f'<option value="{escape(m.key)}"{" selected" if m.key in picked else ""}>'
                f"{escape(m.label)}</option>" for m in choices]
    return (f'<select name="{name}" id="{name}"{" multiple size=5" if multiple else ""}>'
            + "".join(options) + "</select>")


def versions_of(context: Context, name: str) -> list[str]:
    """The versions a lock entry's model can be switched to: those its registry
    lists, oldest first, and the locked one (offline: that one alone)."""
    from packaging.version import InvalidVersion, Version

    lock = context.require_lock()
    entry = lock.module(name)
    found = {entry.version}
    if not context.setting("offline"):
        spec = context.project.modules.get(entry.name)
        if spec is not None and spec.model == entry.model:
            found |= set(context.catalog(spec.registry).index.models.get(entry.model, {}))

    def order(version: str) -> tuple[int, Version | str]:
        try:
            return 0, Version(version)
        except InvalidVersion:
            return 1, version

    return sorted(found, key=order)


def version_select(name: str, versions: Iterable[str], chosen: str) -> str:
    return (f'<select name="{name}">' + "".join(
        f'<option{" selected" if v == chosen else ""}>{escape(v)}</option>' for v in versions)
        + "</select>")


def made_with(active: Iterable[ActiveModel]) -> str:
    """The models a picture was made with, as `ff swap`'s `ran ...` line names them."""
    models = list(active)
    providers = ", ".join(sorted({model.provider for model in models}))
    return ", ".join(f"{m.name} {m.model} {m.version}" for m in models) + f" ({providers})"
