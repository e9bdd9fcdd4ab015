"""The Preview page: the swap of a chosen source face onto a chosen target with the
versions the session's Runtime is running, a version picker per module that
switches live and renders again, and for a video a frame scrubber and a run that
writes the whole clip in the background with its progress.

The picture is made while the page is composed (not when the browser fetches it),
so a failure is the page's one `error:` line, worded as `ff swap` words it, and the
versions it names are those that made it: rendering and switching take the
session's action lock in turn. (routes() also mounts the Compare page.)"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ffstore.errors import FFError
from ffstore.progress import format_size
from ffswap.errors import MediaError, NoFaceError
from ffswap.media import read_image
from ffswap.ui import compare_page
from ffswap.ui.layout import page
from ffswap.ui.media_store import Medium, frame_count, read_frame
from ffswap.ui.session import UiSession
from ffswap.ui.shown import (
    FAILURES,
    STYLE,
    Pictures,
    error_text,
    made_with,
    media,
    select,
    version_select,
    versions_of,
)

MAX_UPLOAD = 512 << 20
"""Bytes an upload may have: it is read into memory to be checked."""

WRITABLE = frozenset({".avi", ".mp4", ".m4v", ".mov", ".mkv"})
"""Video types ffswap.video writes; a run of another (.webm) is written as .mp4."""

SCRIPT = """<script>
const result = document.getElementById('result');
const say = (text) => {
  const box = document.getElementById('js-error');
  box.textContent = text ? 'error: ' + text : ''; box.hidden = !text;
};
const scrub = document.getElementById('frame');
if (scrub) {
  const label = document.getElementById('frame-label');
  scrub.addEventListener('input', () => { label.textContent = scrub.value; });
  scrub.addEventListener('change', async () => {
    const query = new URLSearchParams({source: result.dataset.source,
                                       target: result.dataset.target, frame: scrub.value});
    const answer = await (await fetch('/preview/render?' + query)).json();
    if (answer.error) { say(answer.error); return; }
    say('');
    const picture = document.getElementById('preview');
    picture.src = answer.picture; picture.dataset.frame = answer.frame;
    label.textContent = answer.frame;
    document.getElementById('made').textContent = answer.made;
    document.querySelectorAll('input[name=frame]').forEach((field) => {
      field.value = answer.frame; });
  });
}
const run = document.getElementById('run');
if (run) {
  const show = (state) => {
    const bar = document.getElementById('run-progress');
    bar.max = state.total || Math.max(state.done, 1); bar.value = state.done;
    document.getElementById('run-state').textContent = state.message;
    document.getElementById('run-state').dataset.state = state.state;
    say(state.error);
    const link = document.getElementById('run-output');
    link.hidden = !state.output; if (state.output) link.href = state.output;
    if (state.state === 'running') setTimeout(poll, 300);
  };
  const poll = async () => show(await (await fetch('/preview/run')).json());
  run.addEventListener('click', async () => {
    const form = new FormData();
    form.set('source', result.dataset.source); form.set('target', result.dataset.target);
    show(await (await fetch('/preview/run', {method: 'POST', body: form})).json());
  });
  poll();
}
</script>"""


@dataclass(frozen=True)
class Render:
    """A preview made: where its PNG is served, the models that made it, and which
    frame of how many (an image: frame 0 of 1)."""

    picture: str
    made: str
    frame: int
    frames: int


class VideoRun:
    """The one video run a session has at a time: `ff swap` on the whole clip in a
    background thread, watched by the page through `state()`. The output is written
    atomically into the session's temp folder and offered as a download, so a failed
    or interrupted run leaves nothing behind."""

    def __init__(self, session: UiSession) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle", "done": 0, "total": None,
                                       "message": "", "error": "", "output": None}
        self._written: Path | None = None

    def state(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def output(self) -> Path | None:
        """The last run's video, once it is complete."""
        with self._lock:
            return self._written

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._state.update(changes)

    def start(self, face: np.ndarray, target: Medium, workers: int) -> None:
        with self._lock:
            if self._state["state"] == "running":
                total = self._state["total"]
                raise FFError(f"a run is already going (frame {self._state['done']}"
                              f"{f'/{total}' if total else ''}); wait for it to end")
            self._state.update(state="running", done=0, total=None, error="", output=None,
                               message=f"swapping {target.label}...")
            self._written = None
        threading.Thread(target=self._work, args=(face, target, workers), name="ff-ui-run",
                         daemon=True).start()

    def _work(self, face: np.ndarray, target: Medium, workers: int) -> None:
        suffix = target.path.suffix.lower() if target.path.suffix.lower() in WRITABLE else ".mp4"
        try:
            with self._session.acting():
                runtime = self._session.runtime()
            began = made_with(runtime.active.values())
            folder = self._session.scratch() / "runs"
            folder.mkdir(exist_ok=True)
            output = folder / f"{target.path.stem}-swapped{suffix}"
            result = runtime.swap_video(face, target.path, output, workers=workers,
                                        progress=lambda done, total: self._set(done=done,
                                                                               total=total))
        except FAILURES as exc:
            self._set(state="failed", message="", error=error_text(exc))
            return
        except Exception as exc:  # a bug: the page must not wait forever; the log has it
            self._set(state="failed", message="", error=f"{type(exc).__name__}: {exc}")
            raise
        audio = ", audio kept" if result.audio == "kept" else ""
        ended = made_with(runtime.active.values())
        ran = began if ended == began else f"{began}, switched during the run to {ended}"
        with self._lock:
            self._written = output
            self._state.update(
                state="done", done=result.frames, total=result.frames, output="/preview/run/output",
                message=f"wrote {output.name} ({result.frames} frames, {result.swapped_frames} "
                        f"with faces{audio}); ran {ran}")


def routes(session: UiSession) -> list[Route]:
    pictures = Pictures()
    runs = VideoRun(session)

    def render(source_key: str, target_key: str, frame: int) -> Render:
        store = media(session, session.context())
        source = store.get(source_key, "source", ("image",))
        target = store.get(target_key, "target")
        frames = frame_count(target.path, target.label) if target.kind == "video" else 1
        frame = min(max(frame, 0), frames - 1)
        face, picture = read_image(source.path), read_frame(target, frame)
        with session.acting():
            runtime = session.runtime()
            made = made_with(runtime.active.values())
            try:
                swapped = runtime.swap_image(face, picture)
            except NoFaceError as exc:
                if target.kind != "video" or exc.where != "target image":
                    raise
                swapped = picture
                made += "; no face in this frame: left as it is, as ff swap leaves it"
        return Render(pictures.add(swapped), made, frame, frames)

    def unchanged(module: str) -> str:
        """What a failed switch left running (the Runtime keeps the old model)."""
        try:
            name = session.context().require_lock().module(module).name
            running = session.runtime().active[name]
        except (*FAILURES, KeyError):
            return ""
        return f"nothing changed: {name} still runs {running.model} {running.version}"

    def versions_table(keep: str) -> str:
        """The running model per module, each with a switch to its other versions
        (`keep`: the hidden fields that keep the page's choices)."""
        with session.acting() as context:
            active = session.runtime().active
        lock = context.require_lock()
        rows = []
        for name, model in active.items():
            try:
                offered, unlisted = versions_of(context, name), ""
            except FFError as exc:
                offered, unlisted = [model.version], f" (registry: {escape(error_text(exc))})"
            locked = lock.modules[name].version if name in lock.modules else "-"
            rows.append(
                f"<tr id='switch-{escape(name)}'><td>{escape(name)}</td><td>{escape(model.model)}"
                f"</td><td class=running>{escape(model.version)}</td><td>{escape(locked)}</td>"
                "<td><form method=post action=/preview/switch class=switch>"
                f"<input type=hidden name=module value='{escape(name)}'>{keep}"
                f"{version_select('version', offered, model.version)} <button>Switch</button>"
                f"</form>{unlisted}</td></tr>")
        return ("<h2 style=margin-top:0>Versions</h2><p class=muted>A switch changes what this "
                "page runs, not facefusion.lock.</p><table><tr><th>module</th><th>model</th>"
                "<th>running</th>"
                f"<th>locked</th><th>switch to</th></tr>{''.join(rows)}</table>")

    def compose(source: str, target: str, frame: int, *, message: str = "",
                error: str = "", note: str = "") -> str:
        """The whole page; a failure to render is its error unless one is given."""
        context = session.context()
        listing = list(media(session, context).listing().values())
        shown = ""
        if source and target:
            try:
                made = render(source, target, frame)
                frame = made.frame
                shown = _result(made, source, target)
            except FAILURES as exc:
                error = error or error_text(exc)
        else:
            shown = "<p class=muted>Choose a source face and a target, or upload them.</p>"
        keep = (f"<input type=hidden name=source value='{escape(source)}'>"
                f"<input type=hidden name=target value='{escape(target)}'>"
                f"<input type=hidden name=frame value='{frame}'>")
        try:
            versions = versions_table(keep)
        except FAILURES as exc:
            error, versions = error or error_text(exc), ""
        images = [m for m in listing if m.kind == "image"]
        body = (STYLE + (f"<p class=muted id=kept>{escape(note)}</p>" if note else "")
                + "<form method=get action=/preview class=pick id=choose>"
                f"<label>source face {select('source', images, [source], blank='(choose)')}</label>"
                f"<label>target {select('target', listing, [target], blank='(choose)')}</label>"
                "<button id=show>Show</button></form>"
                "<form method=post action=/preview/upload enctype=multipart/form-data class=pick>"
                "<label>upload <input type=file name=file id=file></label>"
                "<label>as <select name=role id=role><option>target</option><option>source</option>"
                f"</select></label>{keep}<button id=upload>Upload</button></form>"
                "<div class=error id=js-error hidden></div>"
                f"<div class=pair><div>{shown}</div><div>{versions}</div></div>{SCRIPT}")
        return page("Preview", body, here="/preview", message=message, error=error)

    async def respond(source: str, target: str, frame: int, status: int = 200,
                      **said: str) -> HTMLResponse:
        html = await run_in_threadpool(compose, source, target, frame, **said)
        return HTMLResponse(html, status_code=status)

    async def show(request: Request) -> HTMLResponse:
        query = request.query_params
        return await respond(query.get("source", ""), query.get("target", ""),
                             _frame(query.get("frame")))

    async def rerender(request: Request) -> JSONResponse:
        query = request.query_params
        try:
            made = await run_in_threadpool(render, query.get("source", ""),
                                           query.get("target", ""), _frame(query.get("frame")))
        except FAILURES as exc:
            return JSONResponse({"error": error_text(exc)}, status_code=400)
        return JSONResponse({"picture": made.picture, "made": made.made, "frame": made.frame,
                             "error": ""})

    async def switch(request: Request) -> HTMLResponse:
        form = await request.form()
        module, version = str(form.get("module", "")), str(form.get("version", ""))
        kept = (str(form.get("source", "")), str(form.get("target", "")),
                _frame(str(form.get("frame", ""))))
        try:
            switched = await run_in_threadpool(session.switch, module, version or None)
        except FAILURES as exc:
            return await respond(*kept, status=400, error=error_text(exc),
                                 note=await run_in_threadpool(unchanged, module))
        before, after = switched.before, switched.after
        was, now = switched.memory_before, switched.memory_after
        memory = f"RSS {format_size(was.rss)} -> {format_size(now.rss)}"
        if was.gpu is not None and now.gpu is not None:
            memory += f", GPU {format_size(was.gpu)} -> {format_size(now.gpu)}"
        return await respond(*kept, message=f"switched {after.name} {before.model} "
                             f"{before.version} -> {after.model} {after.version} ({memory})")

    async def upload(request: Request) -> HTMLResponse:
        form = await request.form()
        role = "source" if form.get("role") == "source" else "target"
        chosen = {"source": str(form.get("source", "")), "target": str(form.get("target", ""))}
        frame = _frame(str(form.get("frame", "")))
        sent = form.get("file")
        try:
            name, data = ((sent.filename or "", await sent.read(MAX_UPLOAD + 1))
                          if isinstance(sent, UploadFile) else ("", b""))
            if len(data) > MAX_UPLOAD:
                raise MediaError(f"cannot use {name}: over {format_size(MAX_UPLOAD)} (the preview "
                                 "is for short clips; ff swap takes any length)")
            store = media(session, session.context())
            kinds = ("image",) if role == "source" else ("image", "video")
            kept = await run_in_threadpool(store.upload, name, data, role, kinds)
        except FAILURES as exc:
            return await respond(chosen["source"], chosen["target"], frame, status=400,
                                 error=error_text(exc))
        chosen[role] = kept.key
        return await respond(chosen["source"], chosen["target"], 0 if role == "target" else frame,
                             message=f"uploaded {kept.label.removesuffix(' (uploaded)')} as the {role}")

    async def run(request: Request) -> JSONResponse:
        form = await request.form()

        def begin() -> None:
            context = session.context()
            store = media(session, context)
            source = store.get(str(form.get("source", "")), "source", ("image",))
            target = store.get(str(form.get("target", "")), "target", ("video",))
            runs.start(read_image(source.path), target, context.setting("execution_threads"))

        try:
            await run_in_threadpool(begin)
        except FAILURES as exc:
            return JSONResponse({**runs.state(), "error": error_text(exc)}, status_code=400)
        return JSONResponse(runs.state())

    async def run_state(request: Request) -> JSONResponse:
        del request
        return JSONResponse(runs.state())

    async def run_output(request: Request) -> Response:
        del request
        written = runs.output()
        if written is None:
            return Response("no finished run", status_code=404, media_type="text/plain")
        return FileResponse(written, filename=written.name)

    return [Route("/preview", show), Route("/preview/render", rerender),
            Route("/preview/switch", switch, methods=["POST"]),
            Route("/preview/upload", upload, methods=["POST"]),
            Route("/preview/run", run_state), Route("/preview/run", run, methods=["POST"]),
            Route("/preview/run/output", run_output),
            Route("/preview/picture/{name}.png", pictures.serve),
            *compare_page.routes(session, pictures)]


def _frame(given: str | None) -> int:
    try:
        return max(0, int(given or 0))
    except ValueError:
        return 0


def _result(made: Render, source: str, target: str) -> str:
    """The picture, what made it, and for a video the scrubber and the run."""
    video = ""
    if made.frames > 1:
        video = (f"<p><label>frame <input type=range id=frame min=0 max={made.frames - 1} "
                 f"value={made.frame}> <output id=frame-label>{made.frame}</output> of "
                 f"{made.frames}</label></p><p><button id=run type=button>Run</button> the whole "
                 "clip <progress id=run-progress value=0 max=1></progress> <span id=run-state>"
                 "</span> <a id=run-output hidden download>download</a></p>")
    return (f"<section id=result data-source='{escape(source)}' data-target='{escape(target)}'>"
            f"<figure class=shown><img id=preview alt=preview src='{made.picture}' "
            f"data-frame={made.frame}><figcaption>made with <span id=made>{escape(made.made)}"
            f"</span></figcaption></figure>{video}<p><a id=compare-these href='/compare?"
            f"{escape(urlencode({'source': source, 'inputs': target}))}'>compare two versions on "
            "these</a></p></section>")

