"""The switcher's actions, each a form POST that calls what the CLI calls:

  /switch    a live switch of one entry in the running Runtime (`UiSession.switch`);
             facefusion.lock is not touched
  /rollback  `ff rollback MODULE` (`lock_changes.rollback`)
  /upgrade   `ff lock --upgrade-module MODULE` (`lock_changes.lock`), which is also
             how a hold is lifted: ff has no other way, so neither has the page

Success is a 303 to the Modules page with what happened; a refusal renders the page
with the CLI's `error: ...` line (and the lines `ff -v` adds), status 400 where ff
exits 2 and 500 where it exits 1.
The library calls check everything before they write, so a refused action leaves
facefusion.lock and the history as they were. After a lock change the Runtime, if
loaded, switches to what the lock now names (`UiSession.follow`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ffstore.errors import FFError, InputError, describe_os_error
from ffstore.lockfile import Lock
from ffstore.progress import format_size
from ffswap.ui.memory import Memory
from ffswap.ui.pages import modules_page
from ffswap.ui.session import Switched, UiSession


def cli_error(exc: Exception) -> FFError | None:
    """`exc` as the CLI reports it (its words, its exit code), None for a bug."""
    from ffswap.errors import SwapError

    if isinstance(exc, FFError):
        return exc
    if isinstance(exc, SwapError):
        from ffswap.cli import as_ff_error

        return as_ff_error(exc)
    if isinstance(exc, OSError):
        return FFError(describe_os_error(exc))
    return None


def memory_change(before: Memory, after: Memory) -> str:
    """`RSS 412.3 MiB -> 415.0 MiB`, and the GPU's when it is measured."""
    text = f"RSS {format_size(before.rss)} -> {format_size(after.rss)}"
    if before.gpu is not None and after.gpu is not None:
        text += f", GPU {format_size(before.gpu)} -> {format_size(after.gpu)}"
    return text


def _field(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InputError(f"the form sent no {name}; reload the page")
    return value


def _followed(session: UiSession, lock: Lock) -> str:
    """Make the running models follow the lock just written; what now runs. The lock
    change already checked the new versions as `ff` does (signature, requires.ff,
    contract) and fetched them, so what is left to fail here is the session itself."""
    try:
        switched = session.follow(lock)
    except Exception as exc:
        error = cli_error(exc)
        if error is None:
            raise
        raise type(error)(f"facefusion.lock was written, but the running models stay as they "
                          f"were: {error}") from None
    return "".join(f"; now running {s.after.name} {s.after.version}" for s in switched)


def _switch(session: UiSession, form: Mapping[str, str]) -> str:
    done: Switched = session.switch(_field(form, "module"), _field(form, "version"))
    return (f"switched {done.after.name} live: {done.before.model} {done.before.version} -> "
            f"{done.after.model} {done.after.version} ({done.after.provider}; facefusion.lock "
            f"unchanged); {memory_change(done.memory_before, done.memory_after)}")


def _rollback(session: UiSession, form: Mapping[str, str]) -> str:
    from ffstore.lock_changes import rollback

    with session.acting() as context:
        result = rollback(context, _field(form, "module"))
        changes = ", ".join(f"{c.module} {c.model} {c.from_version or '(none)'} -> "
                            f"{c.to_version} (held)" for c in result.changes)
        return (f"ff rollback: {changes}; facefusion.lock rewritten"
                + _followed(session, result.lock))


def _upgrade(session: UiSession, form: Mapping[str, str]) -> str:
    from ffstore.lock_changes import lock

    module = _field(form, "module")
    with session.acting() as context:
        result = lock(context, upgrade=frozenset({module}))
        before = result.previous
        moved = [f"upgraded {name} {entry.model} {before.modules[name].version} -> {entry.version}"
                 for name, entry in sorted(result.lock.modules.items())
                 if before and name in before.modules and before.modules[name].version
                 != entry.version]
        lifted = [f"hold on {name} lifted" for name in (before.holds if before else {})
                  if name not in result.lock.holds]
        outcome = "facefusion.lock updated" if result.changed else "facefusion.lock unchanged"
        return (f"ff lock --upgrade-module {module}: " + "; ".join([*moved, *lifted, outcome])
                + _followed(session, result.lock))


def routes(session: UiSession) -> list[Route]:
    def action(do: Callable[[UiSession, Mapping[str, str]], str]) -> Callable[[Request], object]:
        async def endpoint(request: Request) -> Response:
            form = {key: str(value) for key, value in (await request.form()).items()}
            try:
                message = await run_in_threadpool(do, session, form)
            except Exception as exc:
                error = cli_error(exc)
                if error is None:
                    raise
                # As `ff -v` prints it: the one line, then what explains it further.
                said = "".join([str(error), *(f"\n  {line}" for line in error.details)])
                html = await run_in_threadpool(modules_page, session, error=said)
                return HTMLResponse(html, status_code=400 if error.exit_code == 2 else 500)
            return RedirectResponse("/?" + urlencode({"message": message}), status_code=303)

        return endpoint

    return [Route("/switch", action(_switch), methods=["POST"]),
            Route("/rollback", action(_rollback), methods=["POST"]),
            Route("/upgrade", action(_upgrade), methods=["POST"])]
