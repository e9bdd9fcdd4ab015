"""The ASGI app: the pages' routes behind a token gate.

The token works as Jupyter's does: `ff ui` prints a URL carrying it, the first
request trades it for a cookie (HttpOnly, SameSite=Strict) and is redirected to the
same URL without it, so it leaves the address bar and the history. Anything else
without the cookie is refused. Actions are POSTs, which must also come from the
page's own origin: another site cannot drive the switcher through the user's
browser."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ffswap.ui import actions, pages, preview
from ffswap.ui.layout import page
from ffswap.ui.session import UiSession

COOKIE = "ff_ui_token"


class TokenGate:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        offered = request.query_params.get("token")
        if offered is not None and secrets.compare_digest(offered, self._token):
            query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items()
                             if k != "token")
            response: Response = RedirectResponse(
                request.url.path + (f"?{query}" if query else ""), status_code=303)
            response.set_cookie(COOKIE, self._token, httponly=True, samesite="strict")
        elif not secrets.compare_digest(request.cookies.get(COOKIE, ""), self._token):
            response = HTMLResponse(page("Not allowed", "<p>Open the URL that <code>ff ui</code> "
                                         "printed (it carries the access token).</p>"),
                                    status_code=403)
        elif request.method == "POST" and not _same_origin(request):
            response = HTMLResponse(page("Not allowed", "<p>Actions come from ff ui's own "
                                         "pages only.</p>"), status_code=403)
        else:
            await self._app(scope, receive, send)
            return
        await response(scope, receive, send)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def create_app(session: UiSession, token: str) -> ASGIApp:
    """The app over `session`; whoever serves it closes the session afterwards."""
    return TokenGate(Starlette(routes=[*pages.routes(session), *actions.routes(session),
                                     *preview.routes(session)]), token)
