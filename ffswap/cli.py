"""`ff swap`: the face-swap command, plugged into the ff CLI through the
`ff.commands` entry point so store verbs never import the inference stack."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from ffstore.cli import CliState, pass_state
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.lockfile import Lock

if TYPE_CHECKING:  # the inference stack loads only when a swap runs
    from ffstore.context import Context
    from ffswap.guard import Guard, GuardReport, Trip
    from ffswap.runtime import ActiveModel, Runtime

def as_ff_error(exc: Exception) -> FFError:
    from ffswap.errors import ContractError, MediaError

    message = " ".join(str(exc).split())  # one line, even for multi-line contract reports
    if isinstance(exc, MediaError):
        return InputError(message)
    if isinstance(exc, ContractError):
        return VerificationError(message)
    return FFError(message)


class FrameProgress:
    """`frames 120/300  24.1 fps  ETA 0:07` on one terminal line, redrawn at most
    ten times a second, ended with a newline so what follows starts clean."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic()
        self._drawn = 0.0
        self._shown = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1 and done != total:
            return
        self._drawn = now
        rate = done / max(now - self._started, 1e-6)
        line = f"frames {done}" + (f"/{total}" if total else "") + f"  {rate:.1f} fps"
        if total and rate > 0:
            left = max(0, round((total - done) / rate))
            line += f"  ETA {left // 60}:{left % 60:02d}"
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._shown = True

    def end(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


def runtime_entries(lock: Lock, no_enhance: bool) -> tuple[list[str], list[str]]:
    """The lock entries ff swap loads, and those it leaves to FaceFusion."""
    from ffswap.zoo import RUNTIME_MODULES

    used, unused = [], []
    for name, entry in sorted(lock.modules.items()):
        if entry.module not in RUNTIME_MODULES:
            unused.append(f"{name} ({entry.model})")
        elif not (no_enhance and entry.module == "face_enhancer"):
            used.append(name)
    return used, unused


def _ran(model: ActiveModel, lock: Lock, versions: dict[str, str | None]) -> str:
    """One model as the run ended; one that `--use` kept off the locked version says
    so (a guard's switch is told by its own line)."""
    text = f"{model.name} {model.model} {model.version}"
    locked = lock.modules.get(model.name)
    if versions.get(model.name) is not None and locked is not None and (
            locked.version != model.version):
        text += f" (--use; facefusion.lock has {locked.version})"
    return text


def _versions(lock: Lock, used: list[str], use: dict[str, str]) -> dict[str, str | None]:
    """The version to run per used entry: the locked one (None), or the one `--use`
    names for this run."""
    versions: dict[str, str | None] = dict.fromkeys(used)
    for module, version in use.items():
        name = lock.module(module).name
        if name not in versions:
            raise InputError(f"--use {module}={version}: ff swap does not run {name} in this run "
                             "(--no-enhance, or a module it leaves to FaceFusion)")
        versions[name] = version
    return versions


@click.command()
@click.option("--source", required=True, type=click.Path(dir_okay=False),
              help="Image with the face to put in.")
@click.option("--target", required=True, type=click.Path(dir_okay=False),
              help="Image or video to put it into.")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the result (written atomically).")
@click.option("--execution-provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
              default=None, help="onnxruntime provider (setting execution_provider).")
@click.option("--execution-threads", type=click.IntRange(min=1), default=None,
              help="Video frames processed at once (setting execution_threads).")
@click.option("--no-enhance", is_flag=True, help="Skip the face_enhancer even if locked.")
@click.option("--offline", is_flag=True, default=None,
              help="Use only models already in the store (setting offline).")
@click.option("--use", "use", multiple=True, metavar="MODULE=VERSION",
              help="Run MODULE at VERSION this time, if it is signed by a trusted key and "
                   "compatible; facefusion.lock is not touched. Repeatable (setting use).")
@click.option("--guard/--no-guard", default=None,
              help="Check each swapped face against the previous swapper version and roll "
                   "back a version that fails (setting guard).")
@pass_state
def swap(state: CliState, source: str, target: str, output: str,
         execution_provider: str | None, execution_threads: int | None, no_enhance: bool,
         offline: bool | None, use: tuple[str, ...], guard: bool | None) -> None:
    """Swap the face in SOURCE onto every face in TARGET, with the locked models."""
    from ffstore.progress import for_terminal, format_size
    from ffswap.errors import SwapError
    from ffswap.locked import LockedModels
    from ffswap.media import VIDEO_SUFFIXES, read_image, write_image
    from ffswap.runtime import Runtime

    context = state.context(execution_provider=execution_provider,
                            execution_threads=execution_threads, offline=offline or None,
                            use=",".join(use) or None, guard=guard)
    lock = context.require_lock()
    used, unused = runtime_entries(lock, no_enhance)
    versions = _versions(lock, used, context.setting("use"))
    if unused:
        state.note(f"ff swap does not use {', '.join(unused)} (locked for FaceFusion: ff export)")
    quiet = state.quiet
    try:
        with for_terminal(quiet, format_size) as fetching:
            models = LockedModels(context, offline=context.setting("offline"), progress=fetching)
            models.fetch(name for name, version in versions.items() if version is None)
        trips: list[Trip] = []
        with Runtime(models, versions,
                     execution_provider=context.setting("execution_provider")) as runtime:
            watching = _guard(context, runtime, trips.append) if context.setting("guard") else None
            face = read_image(source)
            if Path(target).suffix.lower() in VIDEO_SUFFIXES:
                progress = FrameProgress(sys.stderr) if not quiet and sys.stderr.isatty() else None
                try:
                    result = runtime.swap_video(face, target, output, progress=progress,
                                                workers=context.setting("execution_threads"),
                                                guard=watching)
                finally:
                    if progress is not None:
                        progress.end()
                summary = f"{result.frames} frames, {result.swapped_frames} with faces"
                if result.audio.startswith("not kept"):
                    state.note("ffmpeg is not installed: the output has no sound (install "
                               "ffmpeg to keep the target's audio)")
                elif result.audio == "kept":
                    summary += ", audio kept"
            else:
                write_image(output, runtime.swap_image(face, read_image(target), guard=watching))
                summary = "1 image"
            if not quiet:
                click.echo(f"wrote {output} ({summary}; {runtime.provider})")
                click.echo("ran " + ", ".join(_ran(model, lock, versions)
                                              for model in runtime.active.values()))
    except SwapError as exc:
        raise as_ff_error(exc) from None
    for trip in trips:
        state.say(_record_trip(context, trip))


def _guard(context: Context, runtime: Runtime, report: GuardReport) -> Guard:
    """The guard over the running swapper. It falls back to the locked version when
    this run tries another (`--use`), else to the version `ff rollback` would pick;
    an FFError, before anything is written, when there is none."""
    from ffstore.lock_changes import previous_version
    from ffswap.guard import Guard
    from ffswap.zoo import SWAPPER

    swapper = next(model for model in runtime.active.values() if model.role == SWAPPER)
    locked = context.require_lock().module(swapper.name)
    fallback = (locked.version if locked.version != swapper.version
                else previous_version(context, swapper.name).version)
    return Guard(swapper.name, fallback, report)


def _record_trip(context: Context, trip: Trip) -> str:
    """Roll the lock back when the version that tripped is the locked one (the hold
    keeps `ff lock --upgrade` from bringing it back); the line that says so."""
    from ffstore.lock_changes import rollback

    said = f"{trip.module} {trip.from_version} -> {trip.to_version} ({trip.reason}); " \
           f"{trip.redone} frame{'s' if trip.redone != 1 else ''} redone"
    if context.require_lock().module(trip.module).version != trip.from_version:
        return f"guard switched {said}; facefusion.lock is unchanged (not the locked version)"
    rollback(context, trip.module, by="guard", reason=trip.reason)
    return f"guard rollback {said}"
