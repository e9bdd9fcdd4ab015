"""The switcher's pages: the locked modules and what the registry offers, the
history, and the actions (switch live, roll back, lift a hold, upgrade one module),
each through the library call the CLI makes."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ffstore.progress import format_size
from ffswap.ui.layout import page
from ffswap.ui.session import UiSession


def routes(session: UiSession) -> list[Route]:
    async def modules(request: Request) -> HTMLResponse:
        lock = session.context().require_lock()
        rows = "".join(
            f"<tr id='module-{escape(name)}'><td>{escape(name)}</td><td>{escape(entry.model)}</td>"
            f"<td class=version>{escape(entry.version)}</td>"
            f"<td>{escape(', '.join(entry.signers))}</td>"
            f"<td>{format_size(sum(f.size for f in entry.files))}</td>"
            f"<td>{escape(lock.holds[name].version) + ' (held)' if name in lock.holds else ''}"
            "</td></tr>"
            for name, entry in sorted(lock.modules.items()))
        body = ("<table><tr><th>module</th><th>model</th><th>version</th><th>signer</th>"
                f"<th>size</th><th>hold</th></tr>{rows}</table>")
        return HTMLResponse(page("Modules", body))

    return [Route("/", modules)]
