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
facefusion.lock and the history as they were. When models are loaded, a lock change
first loads what the new lock will name for them (worked out by the calls the action
makes: `previous_version`, `resolve`), so a model that does not load refuses the
action before the lock is written, and switches to them once it is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ffstore.errors import FFError, InputError, describe_os_error
from ffstore.progress import format_size
from ffswap.ui.memory import Memory
from ffswap.ui.pages import modules_page
from ffswap.ui.session import Switched, UiSession

if TYPE_CHECKING:
    from ffstore.context import Context
    from ffstore.lockfile import Lock
    from ffswap.runtime import ActiveModel


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


def _prepared(session: UiSession, context: Context,
              plan: Callable[[], Lock]) -> dict[str, ActiveModel]:
    """The models the lock an action is about to write needs, loaded before it writes
    (`UiSession.prepare`); `plan` is that lock, worked out by what the action calls.
    Nothing to do while no models are loaded: the action is then the CLI's alone."""
    return session.prepare(context, plan()) if session.loaded() else {}


def _followed(session: UiSession, lock: Lock, prepared: dict[str, ActiveModel]) -> str:
    """Make the running models follow the lock just written; what now runs. What
    the lock names was loaded before it was written, so this fails only when the
    lock moved meanwhile (the CLI, say) to a version that does not load."""
    try:
        now = session.follow(lock, prepared)
    except Exception as exc:
        error = cli_error(exc)
        if error is None:
            raise
        raise type(error)(f"facefusion.lock was written, but the running models stay as they "
                          f"were: {error}") from None
    return "".join(f"; now running {model.name} {model.version}" for model in now)


def _switch(session: UiSession, form: Mapping[str, str]) -> str:
    done: Switched = session.switch(_field(form, "module"), _field(form, "version"))
    return (f"switched {done.after.name} live: {done.before.model} {done.before.version} -> "
            f"{done.after.model} {done.after.version} ({done.after.provider}; facefusion.lock "
            f"unchanged); {memory_change(done.memory_before, done.memory_after)}")


def _rollback(session: UiSession, form: Mapping[str, str]) -> str:
    from ffstore.lock_changes import previous_version, rollback

    module = _field(form, "module")
    with session.acting() as context:
        prepared = _prepared(session, context, lambda: context.require_lock().with_module(
            previous_version(context, module)))
        result = rollback(context, module)
        changes = ", ".join(f"{c.module} {c.model} {c.from_version or '(none)'} -> "
                            f"{c.to_version} (held)" for c in result.changes)
        return (f"ff rollback: {changes}; facefusion.lock rewritten"
                + _followed(session, result.lock, prepared))


def _upgrade(session: UiSession, form: Mapping[str, str]) -> str:
    from ffstore.lock_changes import lock
    from ffstore.resolver import resolve

    module = _field(form, "module")
    upgrade = frozenset({module})
    with session.acting() as context:
        prepared = _prepared(session, context, lambda: resolve(
            context.project, context.catalog, context.read_lock(), False, upgrade))
        result = lock(context, upgrade=upgrade)
        before = result.previous
        moved = [f"upgraded {name} {entry.model} {before.modules[name].version} -> {entry.version}"
                 for name, entry in sorted(result.lock.modules.items())
                 if before and name in before.modules and before.modules[name].version
                 != entry.version]
        lifted = [f"hold on {name} lifted" for name in (before.holds if before else {})
                  if name not in result.lock.holds]
        outcome = "facefusion.lock updated" if result.changed else "facefusion.lock unchanged"
        return (f"ff lock --upgrade-module {module}: " + "; ".join([*moved, *lifted, outcome])
                + _followed(session, result.lock, prepared))


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
