"""`ff export facefusion DIR`: lay the locked models out as FaceFusion's
`.assets/models`, each beside the `.hash` file FaceFusion checks at every start, so
an unmodified FaceFusion runs on exactly the locked, verified files.

Every file is a read-only hard link to its store blob (a copy where links fail), so
an export costs no disk, and no reading either once a blob's stamp says ff checked
it and it has not changed since. What ff put in a folder is listed in the folder's
record, `.ff-export.json`: ff replaces or removes only files that are still what it
put there, adopts a file whose bytes are exactly the ones it would put, and refuses
to touch anything else unless forced. Every check that can refuse runs before the
first visible change: files are staged under temp names in the folder, renamed into
place, and the record is written last, so a crash leaves a folder FaceFusion can use
and that the next export completes."""

import contextlib
import errno
import functools
import hashlib
import os
import stat as stat_mode
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from ffstore import fsutil, layout
from ffstore.blobs import HashingWriter
from ffstore.canonical import canonical_bytes, load_json, parse_json_object
from ffstore.context import Context
from ffstore.digests import check_digest, digest_file
from ffstore.errors import FFError, InputError, VerificationError
from ffstore.facefusion import DEEP_SWAPPER_SUFFIX, MODELS_DIR, crc32_handle, hash_name
from ffstore.history import History
from ffstore.lockfile import LockedModule
from ffstore.manifest import FileEntry, check_relative_path
from ffstore.progress import Transfer
from ffstore.store import Store
from ffstore.sync import sync_modules, verified_manifest

RECORD_NAME = ".ff-export.json"
RECORD_TYPE = "ff-export"
RECORD_SPEC = 1
EXPORTS_NAME = "exports.json"
HASHED_SUFFIXES = (".onnx", DEEP_SWAPPER_SUFFIX)
"""The files FaceFusion checks against a `.hash` beside them."""
READ_ONLY = 0o444
LINK_REFUSALS = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP,
                           errno.EOPNOTSUPP})
"""Link failures that mean "copy instead": another filesystem, or one without links."""
HASH_FILE_LIMIT = 4096  # a larger `.hash` is not one ff wrote: compared without reading

Record = dict[str, dict[str, Any]]
"""A record's files: relative path -> {"digest", "size", "ino", "mtime_ns"} for a
model file, {"text", "size"} for a hash file."""


@dataclass(frozen=True)
class ExportedFile:
    path: str
    """Relative to the models folder: FaceFusion's name, e.g. `inswapper_128.onnx`."""
    state: str
    """`linked`, `copied`, `unchanged` or `adopted` (a foreign file with exactly these
    bytes, replaced by ff's)."""
    hash_path: str | None


@dataclass(frozen=True)
class ExportedEntry:
    name: str
    model: str
    version: str
    files: tuple[ExportedFile, ...]


@dataclass(frozen=True)
class ExportReport:
    folder: Path
    entries: tuple[ExportedEntry, ...]
    hashed: int
    """Blobs read and checked in this export (0 when every stamp held)."""
    removed: tuple[str, ...]
    """Model files the lock no longer names, removed with their `.hash` files."""
    left: tuple[str, ...]
    """Files the lock no longer names that changed since ff put them there: left alone."""
    overwritten: tuple[str, ...]
    """Files that were not ff's, replaced because the export was forced."""

    @property
    def files(self) -> list[ExportedFile]:
        return [file for entry in self.entries for file in entry.files]

    def count(self, state: str) -> int:
        return sum(file.state == state for file in self.files)


@dataclass
class _Item:
    """One model file to place, and what the export found at its path and did."""

    entry: LockedModule
    file: FileEntry
    hash_path: str | None
    existing: str = "absent"
    crc32: str = ""
    state: str = ""


class _Staging:
    """Temp files waiting to be renamed into place and the directories made for them:
    what a refusal takes back, so that it changes nothing."""

    def __init__(self) -> None:
        self.moves: list[tuple[Path, Path]] = []
        self.written: list[Path] = []  # temps ff wrote (not links): fsynced at commit
        self.made: list[Path] = []

    def directory(self, path: Path) -> None:
        missing = []
        while not path.exists():
            missing.append(path)
            path = path.parent
        for directory in reversed(missing):
            directory.mkdir(exist_ok=True)
            self.made.append(directory)

    def undo(self) -> None:
        for temp in {*self.written, *(temp for temp, _final in self.moves)}:
            temp.unlink(missing_ok=True)
        for directory in reversed(self.made):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def commit(self) -> None:
        """Make the written temps durable, then rename each model file before its
        `.hash`, as staged; then the directories. The fsyncs wait until now so that
        the kernel writes one copy back while the next is being made."""
        for temp in self.written:
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for temp, final in self.moves:
            os.replace(temp, final)
        for directory in sorted({final.parent for _temp, final in self.moves}):
            fsutil.fsync_dir(directory)


class _Onward(Transfer):
    """Hands sync's counts on to the export's progress without restarting it: the
    export began it with the fetching and the hashing together."""

    def __init__(self, target: Transfer) -> None:
        super().__init__()
        self._target = target

    def begin(self, files: int, total: int) -> None:
        """Already counted by the export."""

    def advance(self, count: int) -> None:
        self._target.advance(count)

    def skip(self, count: int) -> None:
        self._target.skip(count)

    def start_file(self, name: str) -> None:
        self._target.start_file(name)

    def cancel(self) -> None:
        self._target.cancel()

    def file_done(self) -> None:
        self._target.file_done()


# --- the export ---------------------------------------------------------------------


def export_folder(directory: Path) -> Path:
    """FaceFusion's models folder for DIR: DIR itself when it is one (it ends with
    `.assets/models`), else DIR/.assets/models."""
    if directory.resolve().parts[-len(MODELS_DIR.parts):] == MODELS_DIR.parts:
        return directory
    return directory / MODELS_DIR


def export_facefusion(context: Context, directory: Path, force: bool = False,
                      rehash: bool = False, progress: Transfer | None = None) -> ExportReport:
    """Make DIR/.assets/models hold exactly the lock's files (fetching missing blobs
    first), each verified before it is placed, with FaceFusion's `.hash` beside every
    model; `force` replaces files that are not ff's, `rehash` re-reads every blob
    whatever its stamp says."""
    folder = export_folder(directory)
    store = context.store
    lock = context.require_lock()
    progress = progress or Transfer()
    with store.using(), fsutil.file_lock(_folder_lock(store, folder)):
        items = _plan(context, [lock.modules[name] for name in sorted(lock.modules)])
        record = read_record(folder) or {}
        overwritten = _check_models(store, folder, items, record, force)
        _fetch(context, items, rehash, progress)
        staging = _Staging()
        try:
            hashed = _stage_models(store, folder, items, rehash, progress, staging)
            overwritten += _stage_hashes(folder, items, record, force, staging)
        except BaseException:
            staging.undo()
            raise
        _register(context.history, folder)
        staging.commit()
        removed, left = _remove_stale(store, folder, record, items)
        _write_record(folder, items, context.project.root)
        _sweep_temps(folder, items)
    return ExportReport(folder, _entries(items), hashed, tuple(removed), tuple(left),
                        tuple(overwritten))


def _plan(context: Context, entries: list[LockedModule]) -> list[_Item]:
    """Every file of every locked model, at its manifest path, with its `.hash` path;
    two entries claiming one path is an error (FaceFusion has one file per name)."""
    items, claimed = [], {}
    for entry in entries:
        for file in verified_manifest(context, entry).files:
            hashed = PurePosixPath(file.path).suffix in HASHED_SUFFIXES
            item = _Item(entry, file, hash_name(file.path) if hashed else None)
            for path in filter(None, (file.path, item.hash_path)):
                other = claimed.setdefault(path, entry)
                if other is not entry:
                    raise InputError(
                        f"{other.name} ({other.model} {other.version}) and {entry.name} "
                        f"({entry.model} {entry.version}) both export {path}; FaceFusion has one "
                        "file of that name: lock only one of them")
            items.append(item)
    return items


def _fetch(context: Context, items: list[_Item], rehash: bool, progress: Transfer) -> None:
    """Fetch the blobs the store lacks (export works right after `ff lock`); the
    progress counts the fetching and the hashing that follows as one job."""
    store = context.store
    missing = {i.file.digest: i.file.size for i in items
               if not store.blobs.has(i.file.digest, i.file.size)}
    unchecked = {i.file.digest: i.file.size for i in items
                 if rehash or store.stamped_crc32(i.file.digest, i.file.size) is None}
    progress.begin(len(missing) + len(unchecked), sum(missing.values()) + sum(unchecked.values()))
    entries = {i.entry.name: i.entry for i in items if i.file.digest in missing}
    if entries:
        sync_modules(context, entries.values(), _Onward(progress))


def _sweep_temps(folder: Path, items: list[_Item]) -> None:
    """Remove temp files a killed export left (no other export runs: the folder lock;
    this one's are all renamed by now)."""
    for directory in {folder, *((folder / item.file.path).parent for item in items)}:
        if directory.is_dir():
            for temp in directory.glob(f"{fsutil.TEMP_PREFIX}*"):
                if temp.is_file() and not temp.is_symlink():
                    temp.unlink(missing_ok=True)


# --- what is there now --------------------------------------------------------------


def _check_models(store: Store, folder: Path, items: list[_Item], record: Record,
                  force: bool) -> list[str]:
    """Classify what sits at each model file's path; refuse (before anything changes,
    before any fetch) files that are not ff's and differ, unless `force`. Returns
    the files `force` will overwrite."""
    conflicts = []
    for item in items:
        path = folder / item.file.path
        _check_inside(folder, path)
        item.existing = _classify(store, path, item.file, _recorded(record, item.file.path,
                                                                    "digest"))
        if item.existing in ("foreign", "modified"):
            conflicts.append(_conflict(path, item, item.existing))
    return _refuse_or_overwrite(conflicts, force)


def _recorded(record: Record, path: str, key: str) -> dict[str, Any] | None:
    """The record's entry for `path` if it is of the kind (`digest`: a model file,
    `text`: a hash file) ff now wants there."""
    entry = record.get(path)
    return entry if entry is not None and key in entry else None


def _check_inside(folder: Path, path: Path) -> None:
    """Refuse a path that a symlinked folder inside DIR would carry elsewhere."""
    if not path.parent.resolve().is_relative_to(folder.resolve()):
        raise InputError(f"{path.parent} leads out of {folder} (a symlink); ff exports only "
                         "into the models folder itself: replace the link by a folder")


def _classify(store: Store, path: Path, file: FileEntry, recorded: dict[str, Any] | None) -> str:
    """`absent`; `unchanged` (the blob itself, or ff's copy of it as recorded);
    `replace` (what ff put there, another version); `adopt` (not ff's, or ff's
    changed, but exactly these bytes); `modified` (ff's, changed since) or `foreign`
    (not ff's, other bytes). Reads the file only when its stat cannot tell."""
    now = _existing(path)
    if now is None:
        return "absent"
    if _same_inode(now, store.blobs.path(file.digest)):
        return "unchanged"
    if not stat_mode.S_ISREG(now.st_mode):
        return "modified" if recorded else "foreign"
    if recorded is not None and _as_recorded(store, now, recorded):
        return "unchanged" if recorded["digest"] == file.digest else "replace"
    sizes = {file.size, *([recorded["size"]] if recorded else [])}
    actual = _file_digest(path) if now.st_size in sizes else None
    if actual == file.digest:
        return "adopt"
    if recorded is None:
        return "foreign"
    return "replace" if actual == recorded["digest"] else "modified"


def _existing(path: Path) -> os.stat_result | None:
    """What is at a path ff exports a file to (not following a link), or None; a
    directory there is refused."""
    try:
        now = path.lstat()
    except FileNotFoundError:
        return None
    if stat_mode.S_ISDIR(now.st_mode):
        raise InputError(f"{path} is a directory, where ff exports a file; move it away")
    return now


def _same_inode(now: os.stat_result, other: Path) -> bool:
    try:
        then = other.stat()
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino)


def _identity(value: os.stat_result) -> tuple[int, int, int]:
    return value.st_size, value.st_ino, value.st_mtime_ns


def _as_recorded(store: Store, now: os.stat_result, recorded: dict[str, Any]) -> bool:
    """Whether a file is still what ff put there, from its stat alone: the stat the
    record took, or the very blob the record names."""
    return _identity(now) == (recorded["size"], recorded["ino"], recorded["mtime_ns"]) or (
        _same_inode(now, store.blobs.path(recorded["digest"])))


def _file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return digest_file(handle)


def _conflict(path: Path, item: _Item, existing: str, what: str = "") -> tuple[Path, str]:
    """A file ff will not replace unforced, and why, e.g. `x.onnx is not ff's (it
    differs from inswapper_128 1.0.0)`."""
    entry = item.entry
    found = "is not ff's" if existing == "foreign" else "changed since ff exported it"
    return path, f"{path} {found} (it differs from {what}{entry.model} {entry.version})"


def _refuse_or_overwrite(conflicts: list[tuple[Path, str]], force: bool) -> list[str]:
    """The paths `force` overwrites; without it, one refusal naming the first (and,
    with -v, every one)."""
    if conflicts and not force:
        more = f" (and {len(conflicts) - 1} more files; -v lists them)" if len(
            conflicts) > 1 else ""
        raise FFError(f"{conflicts[0][1]}{more}; move it away or pass --force",
                      details=[reason for _path, reason in conflicts])
    return [str(path) for path, _reason in conflicts]


# --- staging ------------------------------------------------------------------------


def _stage_models(store: Store, folder: Path, items: list[_Item], rehash: bool,
                  progress: Transfer, staging: _Staging) -> int:
    """Verify every blob (its stamp, or a read) and stage each file that needs
    placing. Returns how many blob reads it took."""
    checked: dict[str, str] = {}
    reads = 0
    for item in items:
        digest, target = item.file.digest, folder / item.file.path
        known = checked.get(digest) or (None if rehash else store.stamped_crc32(digest,
                                                                                item.file.size))
        if item.existing == "unchanged":
            item.state = "unchanged"
            item.crc32 = known or _verify(store, item.file, progress)
            reads += known is None
        else:
            item.crc32, copied = _stage_file(store, item.file, target, known, progress, staging)
            item.state = "adopted" if item.existing == "adopt" else (
                "copied" if copied else "linked")
            reads += known is None or copied
        checked[digest] = item.crc32
    return reads


def _stage_file(store: Store, file: FileEntry, target: Path, known: str | None,
                progress: Transfer, staging: _Staging) -> tuple[str, bool]:
    """Stage the blob under a temp name beside `target`: a hard link (the blob
    verified unless its CRC-32 is `known`), or where links fail a copy checked as
    it is written. Returns (CRC-32, whether it copied)."""
    staging.directory(target.parent)
    temp = _link_temp(store.blobs.path(file.digest), target)
    if temp is None:
        temp, crc = _copy_temp(store, file, target, known, progress, staging)
        staging.moves.append((temp, target))
        return crc, True
    staging.moves.append((temp, target))  # taken back if the check below fails
    return known or _verify(store, file, progress), False


def _link_temp(blob: Path, target: Path) -> Path | None:
    """A hard link to the blob under a temp name beside `target`; None where the
    filesystem refuses (another filesystem, no links), so the caller copies. A blob
    someone made writable is copied too: a link shares its inode, and what ff
    exports is read-only."""
    if blob.stat().st_mode & 0o222:
        return None
    temp = target.parent / f"{fsutil.TEMP_PREFIX}{os.getpid()}-{target.name}"
    temp.unlink(missing_ok=True)
    try:
        os.link(blob, temp)
    except OSError as exc:
        if exc.errno in LINK_REFUSALS:
            return None
        raise
    return temp


def _staged_file(directory: Path, write: Callable[[BinaryIO], str],
                 staging: _Staging) -> tuple[Path, str]:
    """A read-only temp file in `directory`, written by `write` (what it returns
    comes back), to be fsynced and renamed into place at commit."""
    with fsutil.temp_file(directory) as (handle, temp):
        result = write(handle)
        os.chmod(temp, READ_ONLY)
    staging.written.append(temp)
    return temp, result


def _copy_temp(store: Store, file: FileEntry, target: Path, known: str | None,
               progress: Transfer, staging: _Staging) -> tuple[Path, str]:
    """Copy a blob beside `target`, checking the bytes copied against the digest; the
    same pass verifies the blob (and computes its CRC-32) when no stamp did."""
    counted = progress if known is None else Transfer()  # a stamped blob was not planned
    return _staged_file(target.parent,
                        functools.partial(_read_blob, store, file, known=known, progress=counted),
                        staging)


def _verify(store: Store, file: FileEntry, progress: Transfer) -> str:
    """Read a blob to check it and learn its CRC-32 (and stamp it). A blob sync
    stamped on receipt (checked, unchanged since) only needs its CRC-32."""
    if store.stamp(file.digest, file.size) is not None:
        return _crc_of_checked(store, file, progress)
    with open(os.devnull, "wb") as sink:
        return _read_blob(store, file, sink, None, progress)


def _crc_of_checked(store: Store, file: FileEntry, progress: Transfer) -> str:
    """The CRC-32 of a blob whose SHA-256 its stamp vouches for, read through a
    mapping in large chunks (zlib's own rate), then added to the stamp."""
    with open(store.blobs.path(file.digest), "rb") as source:
        before = os.fstat(source.fileno())
        crc = crc32_handle(source, progress.advance)
        after = os.fstat(source.fileno())
    if _identity(before) != _identity(after):
        raise FFError(f"stored blob {file.digest} changed while ff read it; run `ff verify`")
    progress.file_done()
    store.write_stamp(file.digest, before, crc)
    return crc


class Crc32Reader:
    """Reads a file into the caller's buffers (HashingWriter's ring), computing the
    CRC-32 of every chunk as it arrives when `compute`, and counting progress. On
    the caller's thread: zlib releases the GIL on large buffers, so this overlaps
    the SHA-256 that HashingWriter's thread computes over the same chunks."""

    def __init__(self, source: BinaryIO, compute: bool, progress: Transfer) -> None:
        self._source = source
        self._compute = compute
        self._progress = progress
        self._crc = 0

    def __call__(self, buffer: memoryview) -> int:
        count = self._source.readinto(buffer) or 0
        if self._compute:
            self._crc = zlib.crc32(buffer[:count], self._crc)
        self._progress.advance(count)
        return count

    @property
    def value(self) -> str:
        """FaceFusion's form: 8 lowercase hex digits."""
        return format(self._crc, "08x")


def _read_blob(store: Store, file: FileEntry, sink: BinaryIO, known: str | None,
               progress: Transfer) -> str:
    """Read a blob once, in large chunks, into `sink`, with SHA-256 and (unless it
    is `known`) CRC-32 computed in the same pass on two threads. A wrong digest
    refuses the blob; a right one stamps it with its CRC-32, so the next export need
    not read it. Returns the CRC-32."""
    path = store.blobs.path(file.digest)
    if not path.is_file():  # nothing removes it meanwhile: gc and verify wait for the store lock
        raise FFError(f"blob {file.digest} is not in the store at {store.root}; run `ff sync`")
    with open(path, "rb", buffering=0) as source:
        before = os.fstat(source.fileno())
        reader = Crc32Reader(source, known is None, progress)
        try:
            actual = HashingWriter(sink, file.size).consume(reader)
        except VerificationError:  # longer than the lock says
            actual = "more bytes than expected"
        after = os.fstat(source.fileno())
    if actual != file.digest or after.st_size != file.size:
        found = f"{after.st_size} bytes" if after.st_size != file.size else f"hashes to {actual}"
        raise VerificationError(f"stored blob {file.digest} is corrupt ({found}); run `ff verify` "
                                "then `ff sync`")
    if _identity(before) != _identity(after):
        raise FFError(f"stored blob {file.digest} changed while ff read it; run `ff verify`")
    progress.file_done()
    if known is not None:
        return known
    store.write_stamp(file.digest, before, reader.value)
    return reader.value


def _stage_hashes(folder: Path, items: list[_Item], record: Record, force: bool,
                  staging: _Staging) -> list[str]:
    """Stage FaceFusion's `.hash` beside each model whose current one is not exactly
    the model's CRC-32; refuse one that is not ff's unless `force`."""
    conflicts, stage = [], []
    for item in items:
        if item.hash_path is None:
            continue
        path = folder / item.hash_path
        action = _hash_action(path, item.crc32, _recorded(record, item.hash_path, "text"))
        if action in ("foreign", "modified"):
            conflicts.append(_conflict(path, item, action, "the CRC-32 of "))
        if action != "keep":
            stage.append((item, path))
    overwritten = _refuse_or_overwrite(conflicts, force)
    for item, path in stage:
        temp, _text = _staged_file(path.parent, functools.partial(_write_text, text=item.crc32),
                                   staging)
        staging.moves.append((temp, path))
    return overwritten


def _write_text(handle: BinaryIO, text: str) -> str:
    handle.write(text.encode())
    return text


def _hash_action(path: Path, crc32: str, recorded: dict[str, Any] | None) -> str:
    """`keep` (exactly the CRC-32 already), `write` (absent, ff's old one, or the same
    CRC-32 in other whitespace), or `modified` / `foreign` (another text)."""
    now = _existing(path)
    if now is None:
        return "write"
    data = path.read_bytes() if stat_mode.S_ISREG(now.st_mode) and (
        now.st_size <= HASH_FILE_LIMIT) else None
    if data == crc32.encode():
        return "keep"
    if data is not None and (data.strip() == crc32.encode() or (
            recorded is not None and data == recorded["text"].encode())):
        return "write"
    return "modified" if recorded is not None else "foreign"


# --- after placing ------------------------------------------------------------------


def _remove_stale(store: Store, folder: Path, record: Record,
                  items: list[_Item]) -> tuple[list[str], list[str]]:
    """Remove what the record lists and the lock no longer names, where it is still
    what ff put there; leave (and name) the rest. Returns (removed model files, left)."""
    wanted = {path for item in items for path in (item.file.path, item.hash_path) if path}
    removed, left = [], []
    for relative, recorded in sorted(record.items()):
        path = folder / relative
        if relative in wanted or not (path.exists() or path.is_symlink()):
            continue
        if not (path.parent.resolve().is_relative_to(folder.resolve())
                and _still_ours(store, path, recorded)):
            left.append(relative)
            continue
        path.unlink()
        if "digest" in recorded:
            removed.append(relative)
        _remove_empty_parents(folder, path.parent)
    return removed, left


def _still_ours(store: Store, path: Path, recorded: dict[str, Any]) -> bool:
    now = path.lstat()
    if not stat_mode.S_ISREG(now.st_mode):
        return False
    if "text" in recorded:
        return now.st_size <= HASH_FILE_LIMIT and path.read_bytes() == recorded["text"].encode()
    return _as_recorded(store, now, recorded) or _file_digest(path) == recorded["digest"]


def _remove_empty_parents(folder: Path, directory: Path) -> None:
    """A deep swapper's scope folder (`iperov/`) goes when its last model does."""
    while directory != folder and folder in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _write_record(folder: Path, items: list[_Item], project_root: Path) -> None:
    """The record, written last (atomically), and only when it changed."""
    files: Record = {}
    for item in items:
        now = (folder / item.file.path).lstat()
        files[item.file.path] = {"digest": item.file.digest, "size": now.st_size,
                                 "ino": now.st_ino, "mtime_ns": now.st_mtime_ns}
        if item.hash_path is not None:
            files[item.hash_path] = {"text": item.crc32, "size": len(item.crc32)}
    data = canonical_bytes({"type": RECORD_TYPE, "spec": RECORD_SPEC,
                            "project": str(project_root), "files": files})
    path = folder / RECORD_NAME
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data:
            return
    fsutil.atomic_write(path, data)


def _entries(items: list[_Item]) -> tuple[ExportedEntry, ...]:
    rows: dict[str, list[_Item]] = {}
    for item in items:
        rows.setdefault(item.entry.name, []).append(item)
    return tuple(ExportedEntry(name, group[0].entry.model, group[0].entry.version,
                               tuple(ExportedFile(i.file.path, i.state, i.hash_path) for i in group))
                 for name, group in rows.items())


# --- the record and the folders a project exported to --------------------------------


def read_record(folder: Path) -> Record | None:
    """The files ff put in `folder`, or None if it has no record (or is gone). A
    damaged record is refused: guessing could remove a file ff does not own."""
    path = folder / RECORD_NAME
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        doc = parse_json_object(data, str(path))
        if doc.get("type") != RECORD_TYPE or doc.get("spec") != RECORD_SPEC:
            raise ValueError(f"not a {RECORD_TYPE} record of spec {RECORD_SPEC}")
        files = doc["files"]
        if not isinstance(files, dict):
            raise ValueError("files is not an object")
        for relative, entry in files.items():
            check_relative_path(relative, str(path))
            _check_record_entry(relative, entry)
    except (ValueError, KeyError, FFError) as exc:
        raise FFError(f"{path} is damaged ({exc}); delete it and export again (files identical "
                      "to the locked ones are adopted)") from None
    return files


def _check_record_entry(relative: str, entry: Any) -> None:
    keys = ("digest", "ino", "mtime_ns", "size") if isinstance(entry, dict) and (
        "digest" in entry) else ("size", "text")
    if not isinstance(entry, dict) or sorted(entry) != list(keys):
        raise ValueError(f"{relative} is not described by {', '.join(keys)}")
    if any(not isinstance(entry[key], int) or isinstance(entry[key], bool)
           for key in keys if key not in ("digest", "text")):
        raise ValueError(f"{relative}: sizes and stats must be integers")
    if "digest" in entry:
        check_digest(entry["digest"], relative)
    elif not isinstance(entry["text"], str):
        raise ValueError(f"{relative}: text must be a string")


def registered_folders(history: History) -> list[Path]:
    """The folders this project exported to (kept in its history directory)."""
    path = history.directory / EXPORTS_NAME
    try:
        folders = load_json(path.read_bytes(), str(path))["folders"]
        if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
            raise TypeError
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        raise FFError(f"{path} is damaged; delete it and run `ff export` again for each folder "
                      "you exported to") from None
    return [Path(folder) for folder in folders]


def _register(history: History, folder: Path) -> None:
    """Remember the folder so `ff gc` keeps what its record lists."""
    resolved = folder.resolve()
    with fsutil.file_lock(history.directory / "exports.lock"):
        folders = registered_folders(history)
        if resolved not in folders:
            data = canonical_bytes({"folders": sorted(map(str, [*folders, resolved]))})
            fsutil.atomic_write(history.directory / EXPORTS_NAME, data)
    history.register()


def exported_digests(history: History) -> set[str]:
    """The blobs the records of this project's export folders list (folders or
    records that are gone count for nothing)."""
    return {entry["digest"] for folder in registered_folders(history)
            for entry in (read_record(folder) or {}).values() if "digest" in entry}


def _folder_lock(store: Store, folder: Path) -> Path:
    """One export per folder at a time; the lock lives in the store, not in DIR."""
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return store.root / layout.LOCKS / f"export-{key}.lock"


def describe(files: Iterable[ExportedFile]) -> str:
    """`inswapper_128.onnx (linked)`; with several files, the first and how many
    more, and every state among them."""
    files = list(files)
    states = ", ".join(dict.fromkeys(file.state for file in files))
    more = f" (+{len(files) - 1} files)" if len(files) > 1 else ""
    return f"{files[0].path}{more} ({states})"
