"""`ff compare`: two versions of one module on the same frames, judged against each
other (a CI gate: exit 1 when `--to` is worse than `--from` beyond the thresholds).
Plugged into the ff CLI through the `ff.commands` entry point, like `ff swap`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from ffstore.cli import CliState, pass_state
from ffstore.errors import FFError, InputError
from ffswap.thresholds import MAX_FRAMES, Thresholds

if TYPE_CHECKING:
    from ffstore.context import Context

FC = TypeVar("FC", bound=Callable[..., object])


def planned(context: Context, module: str, from_version: str | None, to_version: str | None,
            no_enhance: bool = False) -> tuple[str, list[str], str, str]:
    """What `ff compare MODULE` runs, refused as the CLI words it: the entry's name,
    the entries ff swap loads, and the versions from and to (defaults: what `ff
    rollback` would pick, and the locked one). `ff ui`'s Compare page asks the same."""
    from ffstore.lock_changes import previous_version
    from ffstore.manifest import normalize_version, same_version
    from ffswap.cli import runtime_entries

    lock = context.require_lock()
    entry = lock.module(module)
    used, _ = runtime_entries(lock, no_enhance)
    if entry.name not in used:
        raise InputError(f"ff swap does not run {entry.name} ({entry.model}); nothing to compare")
    to = normalize_version(to_version, "--to") if to_version else entry.version
    start = (normalize_version(from_version, "--from") if from_version
             else previous_version(context, entry.name).version)
    if same_version(start, to):
        raise InputError(f"--from and --to are both {entry.name} {to}: nothing to compare")
    return entry.name, used, start, to


def _limit(name: str, help_text: str, minimum: float = 0.0) -> Callable[[FC], FC]:
    return click.option(f"--{name.replace('_', '-')}", name, type=click.FloatRange(min=minimum),
                        default=getattr(Thresholds, name), show_default=True, help=help_text)


@click.command()
@click.argument("module")
@click.argument("more_inputs", nargs=-1, type=click.Path(), metavar="")
@click.option("--from", "from_version", default=None,
              help="Version to compare against (default: what `ff rollback MODULE` would pick).")
@click.option("--to", "to_version", default=None, help="Version under test (default: the locked one).")
@click.option("--source", required=True, type=click.Path(dir_okay=False),
              help="Image with the face to put in.")
@click.option("--inputs", multiple=True, type=click.Path(),
              help="Images, folders (their images and videos) or videos; several may follow.")
@click.option("--max-frames", type=click.IntRange(min=1), default=MAX_FRAMES, show_default=True,
              help="Frames taken from each video, spread evenly over it.")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="Write the HTML report here (self-contained).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON summary here (docs/FORMATS.md).")
@_limit("max_ssim_drop", "Fail when 1 - SSIM of the two outputs, around the faces, exceeds this "
        "(off unless given: it measures change, not regression).")
@_limit("max_identity_drop", "Fail when identity to the source face falls by more than this.")
@_limit("max_found_drop", "Fail when the share of faces found again falls by more than this.")
@_limit("max_landmark_shift", "Fail when landmark displacement (in face sizes) rises by more.")
@_limit("max_slowdown", "Fail when the time per frame grows by more than this factor.", 1.0)
@click.option("--execution-provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
              default=None, help="onnxruntime provider (setting execution_provider).")
@click.option("--no-enhance", is_flag=True, help="Skip the face_enhancer even if locked.")
@click.option("--offline", is_flag=True, default=None,
              help="Use only models already in the store (setting offline).")
@pass_state
def compare(state: CliState, module: str, more_inputs: tuple[str, ...], from_version: str | None,
            to_version: str | None, source: str, inputs: tuple[str, ...], max_frames: int,
            report: str | None, json_path: str | None, execution_provider: str | None,
            no_enhance: bool, offline: bool | None, **limits: float) -> None:
    """Run MODULE at --from, then at --to, over the same frames of --inputs, and
    compare the outputs: exit 1 when --to is worse beyond the thresholds."""
    from pathlib import Path

    from ffstore.progress import for_terminal, format_size
    from ffswap.cli import FrameProgress, as_ff_error
    from ffswap.compare import compare as run_compare
    from ffswap.errors import SwapError
    from ffswap.locked import LockedModels
    from ffswap.media import read_image
    from ffswap.report import summary_line, write_html, write_json

    paths = [*inputs, *more_inputs]
    if not paths:
        raise InputError("no inputs: give --inputs PATH... (images, folders or videos)")
    context = state.context(execution_provider=execution_provider, offline=offline or None)
    name, used, start, to = planned(context, module, from_version, to_version, no_enhance)
    try:
        with for_terminal(state.quiet, format_size) as fetching:
            models = LockedModels(context, offline=context.setting("offline"), progress=fetching)
            models.fetch(used)
        progress = FrameProgress(sys.stderr) if not state.quiet and sys.stderr.isatty() else None
        try:
            result = run_compare(models, name, start, to, read_image(source), paths,
                                 entries=[other for other in used if other != name],
                                 thresholds=Thresholds(**limits), max_frames=max_frames,
                                 execution_provider=context.setting("execution_provider"),
                                 progress=progress)
        finally:
            if progress is not None:
                progress.end()
        for path, write in ((json_path, write_json), (report, write_html)):
            if path is not None:
                write(result, Path(path))
    except SwapError as exc:
        raise as_ff_error(exc) from None
    a, b, total = result.a, result.b, result.total
    state.say(f"compared {name} {a.model} {a.version} -> {b.version} on "
              f"{len(result.inputs)} input(s), {total.frames} frame(s) ({b.provider})")
    for label, summary in [*((r.path.name, r.summary) for r in result.inputs), ("total", total)]:
        state.say(f"  {label}: {summary_line(summary)}")
    written = [path for path in (report, json_path) if path is not None]
    if written:
        state.say(f"wrote {', '.join(written)}")
    for failure in result.failures:
        click.echo(f"worse: {failure.message}", err=True)
    if result.worse:
        raise FFError(f"{name} {b.version} is worse than {a.version} beyond "
                      f"{len(result.failures)} threshold(s): "
                      + ", ".join(failure.metric for failure in result.failures))

