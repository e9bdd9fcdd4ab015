"""What the preview and compare pages can swap: the images and videos in the project
directory, and what the browser uploaded into the session's own temp folder.

A page names a file by a key (`project/faces/me.png`, `upload/3f2a...-me.png`), never
by a path: a key is looked up among the files listed here, so a request cannot
reach anything else on the machine. An upload is checked (decoded) before it is
kept, so a file that is not an image or a video is refused and leaves nothing behind."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ffstore.fsutil import atomic_path, atomic_write
from ffswap.errors import MediaError
from ffswap.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image
from ffswap.video import open_capture

PROJECT, UPLOAD = "project", "upload"
DEPTH = 4  # the project folder and three levels below it: a repo's tests/data/images
MOST = 500  # listed files at most, so a huge tree cannot stall the page


@dataclass(frozen=True)
class Medium:
    """One choosable file: its key, what the page calls it, and whether it is an
    ``image`` or a ``video``."""

    key: str
    label: str
    path: Path
    kind: str


def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


class MediaStore:
    def __init__(self, project: Path, uploads: Path) -> None:
        self._project = project
        self._uploads = uploads

    def listing(self) -> dict[str, Medium]:
        """Every choosable file by key: uploads first (newest first), then the
        project's, by name. Hidden files and folders (.venv, .git, temp files) are
        not looked into."""
        found: dict[str, Medium] = {}
        uploads = sorted((p for p in self._uploads.glob("*") if p.is_file()),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for path in uploads:
            kind = kind_of(path)
            if kind is not None:
                label = path.name.split("-", 1)[-1]
                found[f"{UPLOAD}/{path.name}"] = Medium(f"{UPLOAD}/{path.name}",
                                                        f"{label} (uploaded)", path, kind)
        for path, kind in self._walk(self._project, DEPTH)[:MOST]:
            relative = path.relative_to(self._project).as_posix()
            found[f"{PROJECT}/{relative}"] = Medium(f"{PROJECT}/{relative}", relative, path, kind)
        return found

    def _walk(self, folder: Path, depth: int) -> list[tuple[Path, str]]:
        try:
            children = sorted(folder.iterdir())
        except OSError:
            return []
        files = [(child, kind) for child in children if not child.name.startswith(".")
                 and child.is_file() and (kind := kind_of(child)) is not None]
        if depth > 1:
            for child in children:
                if child.is_dir() and not child.name.startswith(".") and not child.is_symlink():
                    files += self._walk(child, depth - 1)
                    if len(files) >= MOST:
                        break
        return files

    def get(self, key: str, what: str, kinds: tuple[str, ...] = ("image", "video")) -> Medium:
        """The file `key` names, as a MediaError in `ff swap`'s words when it is not
        (or no longer) there or is not of the kinds asked for."""
        if not key:
            raise MediaError(f"no {what} chosen: pick one or upload it")
        medium = self.listing().get(key)
        if medium is None:
            raise MediaError(f"cannot read {what} {key.split('/', 1)[-1]}: no such file")
        if medium.kind not in kinds:
            raise MediaError(f"the {what} must be an image, not the video {medium.label}")
        return medium

    def upload(self, filename: str, data: bytes, what: str,
               kinds: tuple[str, ...] = ("image", "video")) -> Medium:
        """Keep an uploaded file, the `what` (source, target), if it is of the kinds
        asked for and decodes as an image, or opens with a frame as a video; its name
        carries its digest, so uploading it again changes nothing."""
        if not filename:
            raise MediaError(f"no file chosen: pick the {what} to upload")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name)[-80:]
        kind = kind_of(Path(name))
        if kind is None:
            raise MediaError(f"cannot use {name}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))})"
                             f" or a video ({', '.join(sorted(VIDEO_SUFFIXES))})")
        if kind not in kinds:
            raise MediaError(f"the {what} must be an image, not the video {name}")
        destination = self._uploads / f"{hashlib.sha256(data).hexdigest()[:16]}-{name}"
        if kind == "image":
            if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
                raise MediaError(f"cannot decode image {name}: not an image format OpenCV reads")
            atomic_write(destination, data)
        else:
            with atomic_path(destination) as temp:
                temp.write_bytes(data)
                frame_count(temp, name)
        key = f"{UPLOAD}/{destination.name}"
        return self.listing()[key]


def frame_count(path: Path, name: str | None = None) -> int:
    """How many frames a video has (counted by decoding when the container does not
    say); a MediaError when it has none."""
    capture = open_capture(path)
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            while capture.grab():
                total += 1
        elif not capture.grab():
            total = 0
    finally:
        capture.release()
    if total <= 0:
        raise MediaError(f"cannot read video {name or path}: no decodable frames")
    return total


def read_frame(medium: Medium, index: int) -> np.ndarray:
    """Frame `index` of a video (decoded in order up to it: exact for every codec),
    or the image itself."""
    if medium.kind == "image":
        return read_image(medium.path)
    capture = open_capture(medium.path)
    try:
        for _ in range(index):
            if not capture.grab():
                break
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok:
        raise MediaError(f"cannot read frame {index} of video {medium.label}")
    return frame
