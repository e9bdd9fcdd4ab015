"""Benchmark `ff export facefusion`: the first export of a locked set (every blob read
once, SHA-256 and CRC-32 on two threads), a later one (stamps say the blobs were
checked: no reading), and the copy path, each against a reference measured in the
same run on the same page-cached files (so the ratios carry over between machines).

  first  the first export of SIZE (4 ONNX models of SIZE/4) into a fresh folder right
         after `ff sync` (its stamps vouch for the SHA-256; the CRC-32 must be
         computed): its rate against zlib.crc32 over the same bytes (target >= 0.9x);
         ff's CRC-32 routine alone against zlib.crc32; and, with no stamps at all,
         the export that checks SHA-256 too, against hashlib.sha256 (its bound)
  again  the whole `ff export facefusion NEW` with stamps present, for SIZE and for
         SIZE/4 (4 models each: the same files, a quarter of the bytes), target <=
         0.3 s and within 10% of each other (O(1) in size), against `ff --version`
  copy   the first export with links refused (os.link raising EXDEV, as across
         filesystems), against shutil.copyfile + zlib.crc32 of the same files; and
         into tmpfs, a real other filesystem, where no disk write competes

Usage: python bench/bench_export.py [--size-mib 1024] [--repeat 3] [--again-repeat 11]
Files go to a temporary directory under --dir (default: the system temp dir; the
store and the export folders share its filesystem, so links work), removed at the end.
"""

import argparse
import contextlib
import errno
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from bench_store import FF, MIB, Table, measure, rate, run, spread, work_directory

from ffstore.blobs import CHUNK
from ffstore.context import open_context
from ffstore.export import Crc32Reader, ExportReport, export_facefusion
from ffstore.progress import Transfer
from ffstore.publish import publish
from ffstore.signing import SigningKey, generate_key

# Run as a script, Python puts bench/ on the path, not the repo: the stand-in models
# are built by tests/standins.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = 4


# --- setup ------------------------------------------------------------------------


def write_models(directory: Path, size: int, first: int) -> list[Path]:
    """MODELS distinct ONNX swapper stand-ins of exactly `size` bytes: one built by
    tests/standins.py (padded to the size), the others the same graph with their
    number stamped into the middle of the padding (a valid model with its own
    digest; building each afresh takes ~15 s at 256 MiB)."""
    from tests import standins

    data = bytearray(standins.face_swapper(0, size=size))
    paths = []
    for number in range(first, first + MODELS):
        data[size // 2:size // 2 + 8] = number.to_bytes(8, "little")
        path = directory / f"m{number}" / f"m{number}.onnx"
        path.parent.mkdir(parents=True)
        with open(path, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        paths.append(path)
    return paths


def make_project(work: Path, name: str, files: list[Path], key: SigningKey, home: Path) -> Path:
    """Publish, lock and sync `files` as MODELS face_swapper entries of one project."""
    registry, project = work / "registry", work / name
    for file in files:
        publish(registry, [file], file.stem, "1.0.0", "face_swapper", key)
    project.mkdir()
    entries = ", ".join(f'{{ model = "{file.stem}", version = ">=1" }}' for file in files)
    (project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{registry}"\n\n[trust]\nkeys = ["{key.key_id}"]\n\n'
        f"[modules]\nface_swapper = [{entries}]\n")
    run([*FF, "lock"], project, home)
    run([*FF, "sync"], project, home)
    return project


def blob_files(home: Path, files: list[Path]) -> list[Path]:
    return [home / "blobs" / "sha256" / hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


class Folders:
    """A fresh export folder per run, removed after it (outside the timed part)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def next(self) -> Path:
        self.count += 1
        return self.root / f"ff-{self.count}"

    @property
    def current(self) -> Path:
        return self.root / f"ff-{self.count}"

    def remove(self) -> None:
        shutil.rmtree(self.current, ignore_errors=True)


@contextlib.contextmanager
def links_refused() -> Iterator[None]:
    """Every os.link fails as it does across filesystems, so export copies."""
    real = os.link

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    os.link = refuse
    try:
        yield
    finally:
        os.link = real


def each_chunk(paths: list[Path], use: Callable[[memoryview], object]) -> None:
    """Read the files in CHUNK reads into one buffer, as ff's pass does, and `use` each."""
    buffer = memoryview(bytearray(CHUNK))
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                use(buffer[:count])


def crc_files(paths: list[Path]) -> None:
    crc = [0]
    each_chunk(paths, lambda chunk: crc.__setitem__(0, zlib.crc32(chunk, crc[0])))


def sha_files(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")


def ff_crc_alone(paths: list[Path]) -> None:
    buffer = memoryview(bytearray(CHUNK))
    for path in paths:
        with open(path, "rb", buffering=0) as handle:
            reader = Crc32Reader(handle, True, Transfer())
            while reader(buffer):
                pass


def copy_and_crc(paths: list[Path], target: Path, durable: bool) -> None:
    """The reference copy: shutil.copyfile (sendfile) then zlib.crc32 of the file."""
    target.mkdir(parents=True, exist_ok=True)
    for path in paths:
        copy = target / path.name
        shutil.copyfile(path, copy)
        if durable:
            fd = os.open(copy, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    crc_files(paths)


def drop_stamps(home: Path) -> None:
    shutil.rmtree(home / "stamps", ignore_errors=True)


def checked(report: ExportReport, state: str, hashed: int) -> ExportReport:
    """A run that did other work than intended would time the wrong thing."""
    if report.count(state) != MODELS or report.hashed != hashed:
        sys.exit(f"export did not do what was timed: {report}")
    return report


# --- sections ---------------------------------------------------------------------


def bench_first(project: Path, home: Path, blobs: list[Path], folders: Folders, repeat: int,
                table: Table) -> None:
    total = sum(blob.stat().st_size for blob in blobs)
    table.heading(f"first: export of {MODELS} x {total // MODELS // MIB} MiB that must hash: after "
                  "ff sync (CRC-32 only), and with no stamps (SHA-256 + CRC-32 on two threads)")
    crc = statistics.median(measure(lambda: crc_files(blobs), repeat))
    table.row("zlib.crc32, 4 MiB reads (reference)", rate(total, crc), "1.00x")
    alone = statistics.median(measure(lambda: ff_crc_alone(blobs), repeat))
    table.row("ff's CRC-32 routine alone (Crc32Reader)", rate(total, alone), f"{crc / alone:.2f}x",
              ">= 0.90x zlib.crc32", crc / alone >= 0.9)
    sha = statistics.median(measure(lambda: sha_files(blobs), repeat))
    table.row("hashlib.sha256 (bound of a checking pass)", rate(total, sha),
              f"{crc / sha:.2f}x")
    context = open_context(project, {"home": str(home)})
    digests = [f"sha256:{blob.name}" for blob in blobs]

    def after_sync() -> None:
        """The stamps `ff sync` leaves: SHA-256 checked on receipt, no CRC-32 yet."""
        drop_stamps(home)
        context.store.stamp_fetched(digests)
        folders.next()

    def unstamped() -> None:
        drop_stamps(home)
        folders.next()

    def first_export() -> ExportReport:
        return checked(export_facefusion(context, folders.current), "linked", MODELS)

    times = measure(first_export, repeat, prepare=after_sync, cleanup=folders.remove)
    first = statistics.median(times)
    table.row("ff export after ff sync: CRC-32 rate", rate(total, first), f"{crc / first:.2f}x",
              ">= 0.90x zlib.crc32", crc / first >= 0.9)
    print(f"  runs after sync: {spread(times)} s")
    times = measure(first_export, repeat, prepare=unstamped, cleanup=folders.remove)
    bare = statistics.median(times)
    table.row("ff export, no stamps at all (SHA-256 too)", rate(total, bare), f"{crc / bare:.2f}x",
              f"{sha / bare:.2f}x of hashlib.sha256: SHA-bound")
    print(f"  runs without stamps: {spread(times)} s")


def time_stamped_exports(projects: dict[str, Path], home: Path, folders: Folders,
                repeat: int) -> dict[str, list[float]]:
    """Whole-command wall times per set, the sets taking turns so that both see the
    same background (other load, writeback), which would bias whichever ran first."""
    times: dict[str, list[float]] = {name: [] for name in projects}
    for index in range(repeat + 1):  # the first round warms up (and stamps)
        for name, project in projects.items():
            target = folders.next()
            began = time.perf_counter()
            out = run([*FF, "export", "facefusion", str(target)], project, home)
            elapsed = time.perf_counter() - began
            if index and "; 0 hashed)" not in out:
                sys.exit(f"a stamped export read blobs:\n{out}")
            folders.remove()
            if index:
                times[name].append(elapsed)
    return times


def bench_again(projects: dict[str, Path], home: Path, folders: Folders, repeat: int,
                table: Table) -> None:
    big, small = projects
    table.heading(f"again: `ff export facefusion NEW` with stamps present, {big} vs {small}")
    startup = statistics.median(measure(lambda: run([*FF, "--version"], folders.root, home),
                                        repeat))
    table.row("ff --version (interpreter + CLI import)", f"{startup:.3f} s")
    times = time_stamped_exports(projects, home, folders, repeat)
    big_median, small_median = (statistics.median(times[name]) for name in (big, small))
    table.row(f"ff export, stamped, {small} set", f"{small_median:.3f} s", "1.00x", "<= 0.300 s",
              small_median <= 0.3)
    table.row(f"ff export, stamped, {big} set", f"{big_median:.3f} s",
              f"{big_median / small_median:.2f}x", "<= 0.300 s, within 10%",
              big_median <= 0.3 and abs(big_median / small_median - 1) <= 0.1)
    context = open_context(projects[big], {"home": str(home)})
    library = statistics.median(measure(
        lambda: checked(export_facefusion(context, folders.current), "linked", 0), repeat,
        prepare=folders.next, cleanup=folders.remove))
    table.row(f"  export_facefusion() alone, {big} set", f"{library:.3f} s")
    print(f"  runs {small}: {spread(times[small])} s; runs {big}: {spread(times[big])} s")


def bench_copy(project: Path, home: Path, blobs: list[Path], folders: Folders, repeat: int,
               table: Table) -> None:
    total = sum(blob.stat().st_size for blob in blobs)
    table.heading(f"copy: export of {MODELS} x {total // MODELS // MIB} MiB with links refused "
                  "(copy + SHA-256 + CRC-32 in one pass, fsynced)")
    reference = statistics.median(measure(lambda: copy_and_crc(blobs, folders.current, False),
                                          repeat, prepare=folders.next, cleanup=folders.remove))
    table.row("shutil.copyfile + zlib.crc32 (reference)", rate(total, reference), "1.00x")
    durable = statistics.median(measure(lambda: copy_and_crc(blobs, folders.current, True),
                                        repeat, prepare=folders.next, cleanup=folders.remove))
    table.row("  same + fsync of each copy", rate(total, durable),
              f"{reference / durable:.2f}x")
    context = open_context(project, {"home": str(home)})

    def prepare() -> None:
        drop_stamps(home)
        folders.next()

    with links_refused():
        first = statistics.median(measure(
            lambda: checked(export_facefusion(context, folders.current), "copied", MODELS),
            repeat, prepare=prepare, cleanup=folders.remove))
        stamped = statistics.median(measure(
            lambda: checked(export_facefusion(context, folders.current), "copied", MODELS),
            repeat, prepare=folders.next, cleanup=folders.remove))
    table.row("ff export, copies, no stamps", rate(total, first), f"{reference / first:.2f}x",
              f"disk-bound: {durable / first:.2f}x of +fsync")
    table.row("ff export, copies, stamped (SHA-256 only)", rate(total, stamped),
              f"{reference / stamped:.2f}x")
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * total:
        os.sync()  # the disk runs' writeback competes for the CPU
        memory = Folders(Path(tempfile.mkdtemp(prefix="ff-bench-export-", dir=shm)))
        try:
            in_ram_reference = statistics.median(measure(
                lambda: copy_and_crc(blobs, memory.current, False), repeat,
                prepare=memory.next, cleanup=memory.remove))
            in_ram = statistics.median(measure(
                lambda: checked(export_facefusion(context, memory.current), "copied", MODELS),
                repeat, prepare=lambda: (drop_stamps(home), memory.next()),
                cleanup=memory.remove))
        finally:
            shutil.rmtree(memory.root, ignore_errors=True)
        table.row("copyfile + zlib.crc32 into tmpfs", rate(total, in_ram_reference),
                  "1.00x")
        table.row("ff export into tmpfs (EXDEV), no stamps", rate(total, in_ram),
                  f"{in_ram_reference / in_ram:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the big set")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each bulk figure")
    parser.add_argument("--again-repeat", type=int, default=11,
                        help="timed stamped exports per set")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary work directory goes")
    parser.add_argument("--sections", nargs="+", default=["first", "again", "copy"],
                        choices=["first", "again", "copy"], help="which figures to measure")
    args = parser.parse_args()
    size = args.size_mib * MIB
    work = work_directory(args.dir, "ff-bench-export-", 5 * size)
    print(f"ff export benchmark: {args.size_mib} MiB set ({MODELS} models), median of "
          f"{args.repeat} (again: {args.again_repeat}) after a warm-up run; {work}; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    table = Table()
    try:
        began = time.perf_counter()
        key = generate_key(work / "keys", "bench")
        home = work / "home"
        big_files = write_models(work / "src", size // MODELS, 0)
        small_files = write_models(work / "src", size // MODELS // 4, MODELS)
        big = make_project(work, "big", big_files, key, home)
        small = make_project(work, "small", small_files, key, home)
        blobs = blob_files(home, big_files)
        for path in (*big_files, *small_files):
            path.unlink()  # the store's blobs are what export reads
        print(f"setup (build, publish, lock, sync): {time.perf_counter() - began:.1f} s")
        folders = Folders(work / "exports")
        folders.root.mkdir()
        if "first" in args.sections:
            bench_first(big, home, blobs, folders, args.repeat, table)
        if "again" in args.sections:
            sets = {f"{args.size_mib} MiB": big, f"{args.size_mib // 4} MiB": small}
            bench_again(sets, home, folders, args.again_repeat, table)
        if "copy" in args.sections:
            bench_copy(big, home, blobs, folders, args.repeat, table)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntargets missed: {len(table.failures)}")
    for failure in table.failures:
        print(f"  {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
