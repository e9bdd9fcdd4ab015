"""The switcher's pages: the locked modules with what the registry offers for each
and the actions on them (ffswap/ui/actions.py), and the history of generations.
Every view is read from a fresh Context (the lock as it is on disk now) and what
the session's Runtime runs; nothing here changes anything."""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ffstore.context import Context
from ffstore.errors import FFError
from ffstore.lockfile import Hold, Lock, LockedModule
from ffstore.progress import format_size
from ffswap.ui.layout import page
from ffswap.ui.offers import Offer, offers
from ffswap.ui.session import UiSession


def _key(key_id: str) -> str:
    """A key id short enough for a table cell, whole in its tooltip."""
    return f'<code title="{escape(key_id)}">{escape(key_id[:18])}…</code>'


def _details(lines: tuple[str, ...]) -> str:
    """What `ff -v` prints below an error, folded away."""
    if not lines:
        return ""
    return ("<details><summary>details</summary><pre>" + escape("\n".join(lines))
            + "</pre></details>")


def _hold(hold: Hold | None) -> str:
    if hold is None:
        return ""
    why = f"; {hold.reason}" if hold.reason else ""
    return escape(f"held at {hold.version} (rolled back from {hold.rolled_back_from}{why})")


def _form(action: str, label: str, fields: dict[str, str], *, disabled: bool = False,
          title: str = "") -> str:
    hidden = "".join(f'<input type=hidden name="{escape(k)}" value="{escape(v)}">'
                     for k, v in fields.items())
    return (f'<form method=post action="{action}" class="{action.strip("/")}" '
            f'style="display:inline">{hidden}<button type=submit style="white-space:nowrap"'
            f'{" disabled" if disabled else ""} title="{escape(title)}">{escape(label)}</button>'
            "</form>")


def _module_row(name: str, entry: LockedModule, lock: Lock, running: str) -> str:
    held = name in lock.holds
    actions = _form("/rollback", "Roll back", {"module": name},
                    title=f"ff rollback {name}") + " " + _form(
        "/upgrade", "Lift hold" if held else "Upgrade", {"module": name},
        title=f"ff lock --upgrade-module {name}")
    return (f'<tr id="module-{escape(name)}" data-module="{escape(name)}">'
            f"<td>{escape(name)}</td><td>{escape(entry.model)}</td>"
            f"<td class=version>{escape(entry.version)}</td>"
            f"<td class=running>{escape(running)}</td>"
            f"<td>{' '.join(_key(k) for k in entry.signers)}</td>"
            f"<td>{format_size(sum(f.size for f in entry.files))}</td>"
            f"<td class=hold>{_hold(lock.holds.get(name))}</td><td>{actions}</td></tr>")


def _offer_row(name: str, offer: Offer, locked: str, running: str | None, range_: str) -> str:
    if offer.refusal:
        state = f'<span class=refused>{escape(offer.refusal)}</span>' + _details(offer.details)
    else:
        state = f"signed by {' '.join(_key(k) for k in offer.signers)}, trusted, compatible"
    marks = [text for text, on in (("locked", offer.version == locked),
                                   ("running", offer.version == running)) if on]
    where = "" if offer.in_range else escape(f"outside '{range_}' in facefusion.toml "
                                             "(a live switch only)")
    button = _form("/switch", "Switch live", {"module": name, "version": offer.version},
                   disabled=bool(offer.refusal) or offer.version == running,
                   title=f"load {offer.version} into the running models; facefusion.lock "
                         "is not touched")
    return (f'<tr class=offer data-module="{escape(name)}" data-version="{escape(offer.version)}">'
            f"<td>{escape(offer.version)}</td><td class=marks>{escape(', '.join(marks))}</td>"
            f"<td class=state>{state}</td><td>{where}</td><td>{button}</td></tr>")


def _offers(context: Context, name: str, entry: LockedModule, running: str | None) -> str:
    offered = offers(context, entry)
    title = f"<h3>{escape(name)}: registry {escape(repr(offered.registry))}</h3>"
    if offered.error:
        return f'{title}<div class="error">error: {escape(offered.error)}</div>'
    range_ = context.project.module(name).version
    rows = "".join(_offer_row(name, offer, entry.version, running, range_)
                   for offer in offered.versions)
    return (f"{title}<table><tr><th>version</th><th></th><th>signature and compatibility</th>"
            f"<th>toml range</th><th></th></tr>{rows}</table>")


def modules_page(session: UiSession, *, message: str = "", error: str = "") -> str:
    """The Modules page; `error` is an action's refusal, shown above it."""
    try:
        context = session.context()
        lock = context.require_lock()
    except FFError as exc:
        return page("Modules", "", message=message, error=error or str(exc))
    loaded = session.loaded()
    running = {name: loaded[name].version if name in loaded else "" for name in lock.modules}
    rows = "".join(_module_row(name, entry, lock, running[name] or "not loaded")
                   for name, entry in sorted(lock.modules.items()))
    provider = ", ".join(sorted({model.provider for model in loaded.values()}))
    provider_note = (f"running on {provider}" if provider else "no models loaded yet: the first "
                     "switch or preview loads them from facefusion.lock")
    body = ("<table id=modules><tr><th>module</th><th>model</th><th>locked</th><th>running</th>"
            f"<th>signer</th><th>size</th><th>hold</th><th></th></tr>{rows}</table>"
            f"<p class=muted>{escape(provider_note)}. Roll back and Upgrade rewrite "
            "facefusion.lock as <code>ff rollback</code> and <code>ff lock --upgrade-module</code> "
            "do (commit it); a live switch changes only what runs.</p><h2>Versions offered</h2>"
            + "".join(_offers(context, name, entry, running[name] or None)
                      for name, entry in sorted(lock.modules.items())))
    return page("Modules", body, message=message, error=error)


def history_page(session: UiSession) -> str:
    """Every generation of the lock on this machine, newest first, with its reason."""
    try:
        generations = session.context().history.generations()
    except FFError as exc:
        return page("History", "", here="/history", error=str(exc))
    rows = "".join(
        f"<tr class=generation><td>{generation.number}</td><td>{escape(generation.time)}</td>"
        f"<td class=reason>{escape(generation.reason)}</td><td>"
        + escape(", ".join(f"{n}={e.version}" for n, e in sorted(generation.lock.modules.items())))
        + "</td></tr>" for generation in reversed(generations))
    body = (f"<table id=history><tr><th>#</th><th>time (UTC)</th><th>reason</th><th>modules</th>"
            f"</tr>{rows}</table>" if generations else
            "<p>No generations yet: the first <code>ff lock</code>, rollback or upgrade "
            "records one.</p>")
    return page("History", body, here="/history")


def routes(session: UiSession) -> list[Route]:
    async def modules(request: Request) -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(
            modules_page, session, message=request.query_params.get("message", "")))

    async def history(request: Request) -> HTMLResponse:
        return HTMLResponse(await run_in_threadpool(history_page, session))

    return [Route("/", modules), Route("/history", history)]
