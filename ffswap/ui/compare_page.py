"""The Compare page: `ff compare` from the browser. Two versions of one module on the
same chosen inputs, run by ffswap.compare in a Runtime of its own (the preview's
running versions are not disturbed), with the same defaults and refusals as the CLI
(ffswap.compare_cli.planned), the report's verdict and metrics table
(ffswap.report), and each input's most changed face from both versions, side by side
and under a slider that wipes from one to the other."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ffstore.errors import FFError, InputError
from ffswap.ui.layout import page
from ffswap.ui.session import UiSession
from ffswap.ui.shown import FAILURES, STYLE, Pictures, error_text, media, select, version_select, versions_of

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffswap.compare import Comparison

SCRIPT = """<script>
document.querySelectorAll('input.reveal').forEach((range) => range.addEventListener('input',
  () => { range.parentElement.querySelector('.over').style.clipPath =
            'inset(0 ' + (100 - range.value) + '% 0 0)'; }));
const module = document.getElementById('module');
module.addEventListener('change', () => {
  const query = new URLSearchParams(new FormData(module.form));
  query.delete('from'); query.delete('to');
  location = '/compare?' + query;
});
</script>"""


def routes(session: UiSession, pictures: Pictures) -> list[Route]:
    last: dict[str, str] = {}  # the latest comparison's HTML report, for /compare/report
    guard = threading.Lock()

    def run(module: str, from_version: str, to_version: str, source_key: str,
            input_keys: Sequence[str]) -> Comparison:
        from ffswap.compare import compare
        from ffswap.compare_cli import planned
        from ffswap.locked import LockedModels
        from ffswap.media import read_image
        from ffswap.report import render_html

        with session.acting() as context:
            name, used, start, to = planned(context, module, from_version or None,
                                            to_version or None)
            store = media(session, context)
            source = store.get(source_key, "source", ("image",))
            if not input_keys:
                raise InputError("no inputs: choose the images or videos to compare on")
            inputs = [store.get(key, "input").path for key in input_keys]
            models = LockedModels(context, offline=context.setting("offline"))
            models.fetch(used)
            result = compare(models, name, start, to, read_image(source.path), inputs,
                             entries=[other for other in used if other != name],
                             execution_provider=context.setting("execution_provider"))
        with guard:
            last["report"] = render_html(result)
        return result

    def compose(module: str, from_version: str, to_version: str, source: str,
                inputs: Sequence[str], result: Comparison | None = None, error: str = "") -> str:
        context = session.context()
        try:
            form = _form(context, session, module, from_version, to_version, source, inputs)
        except FAILURES as exc:
            form, error = "", error or error_text(exc)
        shown = _shown(result, pictures) if result is not None else ""
        return page("Compare", STYLE + form + shown + SCRIPT, here="/compare", error=error)

    async def show(request: Request) -> HTMLResponse:
        query = request.query_params
        return HTMLResponse(await run_in_threadpool(
            compose, query.get("module", ""), query.get("from", ""), query.get("to", ""),
            query.get("source", ""), query.getlist("inputs")))

    async def act(request: Request) -> HTMLResponse:
        form = await request.form()
        asked = (str(form.get("module", "")), str(form.get("from", "")), str(form.get("to", "")),
                 str(form.get("source", "")), [str(key) for key in form.getlist("inputs")])
        try:
            result = await run_in_threadpool(run, *asked)
        except FAILURES as exc:
            return HTMLResponse(await run_in_threadpool(compose, *asked, error=error_text(exc)),
                                status_code=400)
        return HTMLResponse(await run_in_threadpool(compose, *asked, result))

    async def report(request: Request) -> Response:
        del request
        with guard:
            text = last.get("report")
        if text is None:
            return Response("no comparison yet", status_code=404, media_type="text/plain")
        return HTMLResponse(text)

    return [Route("/compare", show), Route("/compare", act, methods=["POST"]),
            Route("/compare/report", report)]


def _form(context: Context, session: UiSession, module: str, from_version: str,
          to_version: str, source: str, inputs: Sequence[str]) -> str:
    """The comparison asked for, defaults filled in as `ff compare` fills them: the
    swapper, what `ff rollback` would pick, the locked version."""
    from ffstore.lock_changes import previous_version
    from ffswap.cli import runtime_entries

    lock = context.require_lock()
    used, _ = runtime_entries(lock, no_enhance=False)
    name = lock.module(module).name if module else next(
        (entry for entry in used if lock.modules[entry].module == "face_swapper"), used[0])
    to_version = to_version or lock.modules[name].version
    note = ""
    if not from_version:
        try:
            from_version = previous_version(context, name).version
        except FFError as exc:
            note = f"<p class=muted>no default from version: {escape(error_text(exc))}</p>"
    try:
        offered = versions_of(context, name)
    except FFError as exc:  # the registry out of reach: the versions known here still compare
        offered = sorted({from_version, to_version} - {""})
        note += f"<p class=muted>registry: {escape(error_text(exc))}</p>"
    listing = list(media(session, context).listing().values())
    modules = "".join(f"<option{' selected' if entry == name else ''}>{escape(entry)}</option>"
                      for entry in used)
    return ("<form method=post action=/compare class=pick id=ask>"
            f"<label>module <select name=module id=module>{modules}</select></label>"
            f"<label>from {version_select('from', ['', *offered], from_version)}</label>"
            f"<label>to {version_select('to', offered, to_version)}</label>"
            "<label>source face "
            f"{select('source', [m for m in listing if m.kind == 'image'], [source], blank='(choose)')}"
            f"</label><label>inputs {select('inputs', listing, inputs, multiple=True)}</label>"
            f"<button id=compare>Compare</button></form>{note}")


def _shown(result: Comparison, pictures: Pictures) -> str:
    """The verdict, the metrics, and per input its most changed face from both sides."""
    from ffswap.report import metrics_table, verdict

    a, b = result.a, result.b
    samples = []
    for entry in result.inputs:
        sample = entry.sample
        if sample is None:
            continue
        before, after, original = (pictures.add(image) for image in (sample.a, sample.b,
                                                                      sample.original))
        figures = "".join(f"<figure><img src='{src}' alt='{escape(label)}' width=192>"
                          f"<figcaption>{escape(label)}</figcaption></figure>"
                          for label, src in (("original", original), (f"from {a.version}", before),
                                             (f"to {b.version}", after)))
        samples.append(
            f"<h3>{escape(entry.path.name)}: frame {sample.index} (SSIM {sample.ssim:.3f}, its "
            f"most changed)</h3><div class=pair>{figures}<div><div class=slider><img src='{after}' "
            f"alt='to {escape(b.version)}'><img class=over src='{before}' "
            f"alt='from {escape(a.version)}'></div><br><input type=range class=reveal min=0 "
            f"max=100 value=50 aria-label='from {escape(a.version)} to {escape(b.version)}'>"
            f"<br><span class=muted>left: from {escape(a.version)}, right: to "
            f"{escape(b.version)}</span></div></div>")
    total = result.total
    return (f"<h2 id=compared>{escape(result.module)} {escape(a.model)} {escape(a.version)} → "
            f"{escape(b.model)} {escape(b.version)} on {len(result.inputs)} input(s), "
            f"{total.frames} frame(s) ({escape(b.provider)})</h2>{verdict(result)}"
            f"<div id=metrics>{metrics_table(result)}</div>"
            "<p><a href=/compare/report target=_blank>the full report</a> (as "
            f"<code>ff compare --report</code> writes it)</p>{''.join(samples)}")
