"""`ff swap`: the face-swap command, plugged into the ff CLI through the
`ff.commands` entry point so store verbs never import the inference stack."""

import sys
from collections.abc import Callable
from pathlib import Path

import click

from ffstore.errors import FFError, InputError, VerificationError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _as_ff_error(exc: Exception) -> FFError:
    from ffswap.errors import ContractError, MediaError

    message = " ".join(str(exc).split())  # one line, even for multi-line contract reports
    if isinstance(exc, MediaError):
        return InputError(message)
    if isinstance(exc, ContractError):
        return VerificationError(message)
    return FFError(message)


def _progress(enabled: bool) -> Callable[[int, int | None], None] | None:
    def show(done: int, total: int | None) -> None:
        of = f"/{total}" if total else ""
        sys.stderr.write(f"\rframes {done}{of}")
        sys.stderr.flush()

    return show if enabled else None


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
@click.pass_context
def swap(ctx: click.Context, source: str, target: str, output: str,
         execution_provider: str | None, execution_threads: int | None, no_enhance: bool) -> None:
    """Swap the face in SOURCE onto every face in TARGET, with the locked models."""
    from ffstore.cli import _context
    from ffswap.errors import SwapError
    from ffswap.locked import LockedModels
    from ffswap.media import read_image, write_image
    from ffswap.runtime import Runtime

    context = _context(ctx, execution_provider=execution_provider,
                       execution_threads=execution_threads)
    lock = context.require_lock()
    versions = {m: None for m in ("face_detector", "face_recognizer", "face_swapper")}
    if "face_enhancer" in lock.modules and not no_enhance:
        versions["face_enhancer"] = None
    quiet = ctx.find_root().params.get("quiet")
    try:
        with Runtime(LockedModels(context), versions,
                     execution_provider=context.setting("execution_provider")) as runtime:
            face = read_image(source)
            if Path(target).suffix.lower() in VIDEO_SUFFIXES:
                result = runtime.swap_video(face, target, output,
                                            progress=_progress(not quiet and sys.stderr.isatty()),
                                            workers=context.setting("execution_threads"))
                summary = f"{result.frames} frames, {result.swapped_frames} with faces"
            else:
                write_image(output, runtime.swap_image(face, read_image(target)))
                summary = "1 image"
            if not quiet:
                click.echo(f"wrote {output} ({summary}; {runtime.provider})")
    except SwapError as exc:
        raise _as_ff_error(exc) from None
