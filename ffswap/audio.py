"""Keeping a video's sound: OpenCV reads and writes frames only, so the swapped
video gets the target's audio streams muxed back in by ffmpeg (the system's; ff
does not ship one). Without ffmpeg the video is written silent and the caller says
so."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ffswap.errors import OutputError

# Audio codecs each container takes: mkv holds anything (the streams are copied);
# AVI's usual audio is PCM; the MP4 family gets AAC.
_AUDIO_CODECS = {".mkv": "copy", ".avi": "pcm_s16le", ".mp4": "aac", ".m4v": "aac", ".mov": "aac"}
_TIMEOUT_S = 600


def ffmpeg() -> str | None:
    """The ffmpeg executable on PATH, or None."""
    return shutil.which("ffmpeg")


def has_audio(video: Path) -> bool:
    """Whether ``video`` has an audio stream (asked of ffprobe, or of ffmpeg itself)."""
    probe = shutil.which("ffprobe")
    if probe is not None:
        found = subprocess.run([probe, "-v", "error", "-select_streams", "a", "-show_entries",
                                "stream=index", "-of", "csv=p=0", str(video)],
                               capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        return bool(found.stdout.strip())
    tool = ffmpeg()
    if tool is None:
        return False
    listed = subprocess.run([tool, "-hide_banner", "-i", str(video)], capture_output=True,
                            text=True, timeout=_TIMEOUT_S, check=False)
    return "Audio:" in listed.stderr


def mux(video: Path, audio_from: Path, output: Path) -> None:
    """Write ``output``: the video stream of ``video`` (copied, not re-encoded) with
    the audio streams of ``audio_from``, cut to the shorter of the two."""
    tool = ffmpeg()
    if tool is None:
        raise OutputError("ffmpeg is not installed")
    codec = _AUDIO_CODECS.get(output.suffix.lower(), "aac")
    done = subprocess.run([tool, "-hide_banner", "-v", "error", "-y", "-i", str(video), "-i",
                           str(audio_from), "-map", "0:v:0", "-map", "1:a", "-c:v", "copy",
                           "-c:a", codec, "-shortest", str(output)],
                          capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if done.returncode != 0:
        detail = " ".join(done.stderr.split())[-300:] or f"exit code {done.returncode}"
        raise OutputError(f"ffmpeg could not add the audio to {output.name}: {detail}")
