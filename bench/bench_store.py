"""Benchmark the local store: ingest hashing, `ff rollback`, and `ff sync` from a
local registry, each against a reference measured in the same run on the same files
(so the ratios, unlike absolute times, carry over between machines).

  hash      `BlobStore.ingest_file` and the whole `ff publish` command against
            `hashlib.file_digest` over the same page-cached file (target >= 0.9x),
            with `cp` and ingest-without-fsync as diagnostics of where time goes
  rollback  the whole `ff rollback MODULE` command with both versions' blobs cached,
            for a 1 MiB and a SIZE model (target < 0.3 s and within 10% of each
            other: a rollback rewrites the lock, it never touches model bytes),
            against `cp` / `shutil.copyfile` of the SIZE file
  sync      the whole `ff sync` into an empty store from a registry directory on the
            same filesystem, 4 files of SIZE/4 (target >= 1 GiB/s), against `cp`
            of the same files, with and without fsync

Usage: python bench/bench_store.py [--size-mib 1024] [--repeat 3] [--rollback-repeat 5]
Files go to a temporary directory under --dir (default: the system temp dir), which
is removed at the end.
"""

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ffstore.blobs import BlobStore
from ffstore.publish import publish
from ffstore.signing import SigningKey, generate_key

FF = [sys.executable, "-m", "ffstore"]
# Environment of every ff process. main() drops PYTHONDONTWRITEBYTECODE and points the
# bytecode cache into the work directory: an installed ff starts from cached bytecode,
# and compiling ff's modules at every start would add ~40 ms to each whole-command time.
FF_ENV: dict[str, str] = dict(os.environ)
MIB = 1 << 20
GIB = 1 << 30
MODULE = "face_detector"


# --- helpers ----------------------------------------------------------------------


def run(command: list[str], cwd: Path, home: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; a failure ends the benchmark (its figures would lie)."""
    env = {**(FF_ENV if env is None else env), "FF_HOME": str(home)}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def measure(action: Callable[[], object], repeat: int, prepare: Callable[[], None] | None = None,
            cleanup: Callable[[], None] | None = None) -> list[float]:
    """Wall times of `action`, after one untimed warm-up run; `prepare` and `cleanup`
    run around every run, outside the timed part."""
    times = []
    for index in range(repeat + 1):
        if prepare:
            prepare()
        began = time.perf_counter()
        action()
        elapsed = time.perf_counter() - began
        if cleanup:
            cleanup()
        if index:
            times.append(elapsed)
    return times


def write_random(path: Path, size: int, salt: int) -> Path:
    """Incompressible content, unique per (salt, block), fsynced and left in the page
    cache: every benchmark below reads warm files, so only ff's own work differs."""
    block = os.urandom(16 * MIB)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for offset in range(0, size, len(block)):
            stamp = salt.to_bytes(8, "little") + offset.to_bytes(8, "little")
            handle.write(stamp + block[len(stamp):min(len(block), size - offset)])
        handle.flush()
        os.fsync(handle.fileno())
    return path


def warm(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as handle:
            while handle.read(16 * MIB):
                pass


def copy_with_fsync(sources: list[Path], destination: Path) -> None:
    """What `cp` costs when the copy must be durable, as ff's blobs are."""
    subprocess.run(["cp", *map(str, sources), str(destination)], check=True)
    for source in sources:
        fd = os.open(destination / source.name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def reset_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


@contextlib.contextmanager
def fsync_disabled() -> Iterator[None]:
    """Diagnostic only: shows how much of a store write is the durability cost."""
    real = os.fsync
    os.fsync = lambda _fd: None
    try:
        yield
    finally:
        os.fsync = real


def write_project(project: Path, registry: Path, key: SigningKey, model: str) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{registry}"\n\n[trust]\nkeys = ["{key.key_id}"]\n\n'
        f'[modules]\n{MODULE} = {{ model = "{model}", version = ">=1" }}\n')


class Table:
    """One line per figure: value, ratio to the section's reference, target verdict."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    @staticmethod
    def heading(title: str) -> None:
        print(f"\n== {title}")

    def row(self, label: str, value: str, ratio: str = "", target: str = "",
            ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        if ok is False:
            self.failures.append(f"{label}: {value} {ratio} ({target})")
        print(f"  {label:<44} {value:>14}  {ratio:>9}  {target:<22} {verdict}")


def rate(size: int, seconds: float) -> str:
    return f"{size / GIB / seconds:6.2f} GiB/s"


def spread(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


# --- sections ---------------------------------------------------------------------


def bench_hash(work: Path, source: Path, key_path: Path, repeat: int, table: Table) -> None:
    size = source.stat().st_size
    table.heading(f"hash: ingest of a {size // MIB} MiB page-cached file vs hashlib alone")

    def reference() -> None:
        with open(source, "rb") as handle:
            hashlib.file_digest(handle, "sha256")

    ref = statistics.median(measure(reference, repeat))
    table.row("hashlib.file_digest sha256 (reference)", rate(size, ref), "1.00x")
    buffer = os.urandom(64 * MIB)
    in_memory = statistics.median(measure(lambda: hashlib.sha256(buffer).digest(), repeat))
    table.row("hashlib.sha256 over bytes in memory", rate(len(buffer), in_memory),
              f"{ref / (in_memory * size / len(buffer)):.2f}x")

    root = work / "ingest"
    ingest = measure(lambda: BlobStore(root).ingest_file(source), repeat,
                     cleanup=lambda: shutil.rmtree(root))
    median = statistics.median(ingest)
    table.row("BlobStore.ingest_file (copy+hash+fsync), disk store", rate(size, median),
              f"{ref / median:.2f}x")
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * size:
        # The same ingest where writes cost no disk time: what the one-pass pipeline
        # itself achieves, separated from how fast this machine's disk can fsync.
        os.sync()  # let the disk runs' writeback finish: it competes for the CPU
        memory_root = Path(tempfile.mkdtemp(prefix="ff-bench-ingest-", dir=shm))
        try:
            in_ram = statistics.median(measure(lambda: BlobStore(memory_root).ingest_file(source),
                                               repeat, cleanup=lambda: shutil.rmtree(
                                                   memory_root / "blobs")))
        finally:
            shutil.rmtree(memory_root, ignore_errors=True)
        table.row("BlobStore.ingest_file, store on tmpfs", rate(size, in_ram),
                  f"{ref / in_ram:.2f}x", ">= 0.90x reference", ref / in_ram >= 0.9)
    with fsync_disabled():
        no_sync = statistics.median(measure(lambda: BlobStore(root).ingest_file(source), repeat,
                                            cleanup=lambda: shutil.rmtree(root)))
    table.row("  same, os.fsync disabled (diagnostic)", rate(size, no_sync), f"{ref / no_sync:.2f}x")

    copies = work / "copies"
    cp = statistics.median(measure(lambda: subprocess.run(["cp", str(source), str(copies)],
                                                          check=True), repeat,
                                   prepare=lambda: reset_dir(copies)))
    table.row("  cp (no fsync, diagnostic)", rate(size, cp), f"{ref / cp:.2f}x")
    cp_sync = statistics.median(measure(lambda: copy_with_fsync([source], copies), repeat,
                                        prepare=lambda: reset_dir(copies)))
    table.row("  cp + fsync (diagnostic)", rate(size, cp_sync), f"{ref / cp_sync:.2f}x")
    shutil.rmtree(copies)
    print(f"  ingest runs: {spread(ingest)} s")

    def publish_into(base: Path) -> list[float]:
        registry, home = base / "publish-registry", work / "publish-home"
        command = [*FF, "publish", str(source), "--registry", str(registry), "--model", "m",
                   "--version", "1.0.0", "--module", MODULE, "--key", str(key_path)]
        return measure(lambda: run(command, work, home), repeat,
                       cleanup=lambda: shutil.rmtree(registry))

    whole = publish_into(work)
    median = statistics.median(whole)
    table.row("ff publish (whole command), disk registry", rate(size, median),
              f"{ref / median:.2f}x", f"disk-bound: {cp_sync / median:.2f}x of cp + fsync")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * size:
        os.sync()
        memory_base = Path(tempfile.mkdtemp(prefix="ff-bench-publish-", dir=shm))
        try:
            in_ram = statistics.median(publish_into(memory_base))
        finally:
            shutil.rmtree(memory_base, ignore_errors=True)
        table.row("ff publish (whole command), registry on tmpfs", rate(size, in_ram),
                  f"{ref / in_ram:.2f}x", ">= 0.90x reference", ref / in_ram >= 0.9)
    print(f"  publish runs: {spread(whole)} s")


def rollback_setup(work: Path, name: str, size: int, key: SigningKey,
                   first: Path | None) -> tuple[Path, Path, Path]:
    """Publish 1.0.0, lock and sync it, publish 1.1.0, `lock --upgrade` and sync: the
    store then holds both versions and history knows 1.0.0 came first."""
    base = work / name
    registry, project, home = base / "registry", base / "project", base / "home"
    v1 = first or write_random(base / "src" / "v1" / "model.bin", size, salt=1)
    v2 = write_random(base / "src" / "v2" / "model.bin", size, salt=2)
    publish(registry, [v1], "m", "1.0.0", MODULE, key)
    write_project(project, registry, key, "m")
    run([*FF, "lock"], project, home)
    run([*FF, "sync"], project, home)
    publish(registry, [v2], "m", "1.1.0", MODULE, key)
    run([*FF, "lock", "--upgrade"], project, home)
    run([*FF, "sync"], project, home)
    return project, home, v1


def time_rollbacks(setups: dict[str, tuple[Path, Path]], repeat: int) -> dict[str, list[float]]:
    """Rollback wall times per setup, the setups taking turns so that both see the
    same background (page-cache writeback from the setup, other load), which would
    otherwise bias whichever ran first."""
    times: dict[str, list[float]] = {name: [] for name in setups}
    for index in range(repeat + 1):  # the first round warms up
        for name, (project, home) in setups.items():
            lock = project / "facefusion.lock"
            began = time.perf_counter()
            run([*FF, "rollback", MODULE], project, home)
            elapsed = time.perf_counter() - began
            assert 'version = "1.0.0"' in lock.read_text(), "rollback did not reach 1.0.0"
            # untimed: back to 1.1.0 with the hold lifted, ready for the next rollback
            run([*FF, "lock", "--upgrade-module", MODULE], project, home)
            assert 'version = "1.1.0"' in lock.read_text(), "lock --upgrade-module did not move on"
            if index:
                times[name].append(elapsed)
    return times


def bench_rollback(work: Path, source: Path, key: SigningKey, repeat: int, table: Table) -> None:
    size = source.stat().st_size
    table.heading(f"rollback: `ff rollback {MODULE}`, blobs cached, 1 MiB vs {size // MIB} MiB")
    startup = statistics.median(measure(lambda: run([*FF, "--version"], work, work), repeat))
    table.row("ff --version (interpreter + CLI import)", f"{startup:.3f} s")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):  # as the calling shell would run ff
        shell = dict(os.environ)
        compiling = statistics.median(measure(lambda: run([*FF, "--version"], work, work, shell),
                                              repeat))
        table.row("  same, PYTHONDONTWRITEBYTECODE=1 (diagnostic)", f"{compiling:.3f} s")
    small_project, small_home, _ = rollback_setup(work, "rb-small", MIB, key, None)
    big_project, big_home, big_source = rollback_setup(work, "rb-big", size, key, source)
    os.sync()
    times = time_rollbacks({"small": (small_project, small_home), "big": (big_project, big_home)},
                           repeat)
    small, big = times["small"], times["big"]
    small_median, big_median = statistics.median(small), statistics.median(big)
    table.row("ff rollback, 1 MiB model", f"{small_median:.3f} s", "1.00x", "< 0.300 s",
              small_median < 0.3)
    table.row(f"ff rollback, {size // MIB} MiB model", f"{big_median:.3f} s",
              f"{big_median / small_median:.2f}x", "< 0.300 s, within 10%",
              big_median < 0.3 and abs(big_median / small_median - 1) <= 0.1)
    print(f"  runs 1 MiB: {spread(small)} s; runs {size // MIB} MiB: {spread(big)} s")

    copies = work / "copies"
    cp = statistics.median(measure(lambda: subprocess.run(["cp", str(big_source), str(copies)],
                                                          check=True), repeat,
                                   prepare=lambda: reset_dir(copies)))
    table.row(f"cp of the {size // MIB} MiB file", f"{cp:.3f} s",
              f"{big_median / cp:.2f}x", "(rollback / cp)")
    target = copies / "copy.bin"
    copyfile = statistics.median(measure(lambda: shutil.copyfile(big_source, target), repeat,
                                         prepare=lambda: reset_dir(copies)))
    table.row(f"shutil.copyfile of the {size // MIB} MiB file", f"{copyfile:.3f} s",
              f"{big_median / copyfile:.2f}x", "(rollback / copyfile)")
    shutil.rmtree(copies)
    for name in ("rb-small", "rb-big"):
        shutil.rmtree(work / name)


def bench_sync(work: Path, size: int, key: SigningKey, repeat: int, table: Table) -> None:
    part = size // 4
    table.heading(f"sync: cold `ff sync` of 4 x {part // MIB} MiB from a registry directory "
                  "on the same filesystem")
    base = work / "sync"
    sources = [write_random(base / "src" / f"part{i}.bin", part, salt=10 + i) for i in range(4)]
    registry, project, home = base / "registry", base / "project", base / "home"
    publish(registry, sources, "multi", "1.0.0", MODULE, key)
    blobs = sorted((registry / "blobs" / "sha256").iterdir())
    shutil.rmtree(base / "src")  # the registry's copies are what sync and cp read
    warm(blobs)
    write_project(project, registry, key, "multi")
    run([*FF, "lock"], project, home)
    total = sum(blob.stat().st_size for blob in blobs)

    copies = base / "copies"
    cp = statistics.median(measure(lambda: subprocess.run(["cp", *map(str, blobs), str(copies)],
                                                          check=True), repeat,
                                   prepare=lambda: reset_dir(copies)))
    table.row("cp of the registry's blob files (reference)", rate(total, cp), "1.00x")
    cp_sync = statistics.median(measure(lambda: copy_with_fsync(blobs, copies), repeat,
                                        prepare=lambda: reset_dir(copies)))
    table.row("cp + fsync", rate(total, cp_sync), f"{cp / cp_sync:.2f}x")
    shutil.rmtree(copies)

    syncs = measure(lambda: run([*FF, "sync"], project, home), repeat,
                    prepare=lambda: shutil.rmtree(home, ignore_errors=True))
    median = statistics.median(syncs)
    table.row("ff sync, cold store (whole command)", rate(total, median), f"{cp / median:.2f}x",
              ">= 1.00 GiB/s", total / GIB / median >= 1.0)
    warm_sync = statistics.median(measure(lambda: run([*FF, "sync"], project, home), repeat))
    table.row("ff sync, everything present", f"{warm_sync:.3f} s")
    print(f"  cold sync runs: {spread(syncs)} s")
    shutil.rmtree(base)


def work_directory(parent: Path, prefix: str, needed: int) -> Path:
    """A fresh temporary work directory under `parent` (exiting when the disk lacks
    `needed` bytes), with ff's byte-code cache inside it, so runs start alike."""
    free = shutil.disk_usage(parent).free
    if free < needed:
        sys.exit(f"{parent} has {free / GIB:.1f} GiB free; this needs about {needed / GIB:.1f}")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    FF_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    FF_ENV["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return work


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the big model")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each bulk figure")
    parser.add_argument("--rollback-repeat", type=int, default=11, help="timed rollbacks per size")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temporary work directory goes")
    parser.add_argument("--sections", nargs="+", default=["rollback", "hash", "sync"],
                        choices=["rollback", "hash", "sync"], help="which figures to measure")
    args = parser.parse_args()
    size = args.size_mib * MIB
    work = work_directory(args.dir, "ff-bench-store-", 8 * size)
    filesystem = subprocess.run(["stat", "-f", "-c", "%T", str(work)], capture_output=True,
                                text=True).stdout.strip()
    print(f"ff store benchmark: big model {args.size_mib} MiB, median of {args.repeat} "
          f"(rollback: {args.rollback_repeat}) after a warm-up run; {work} on {filesystem}, "
          f"{shutil.disk_usage(work).free / GIB:.0f} GiB free; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    table = Table()
    try:
        key = generate_key(work / "keys", "bench")
        key_path = work / "keys" / "bench.key"
        source = write_random(work / "model" / "model.bin", size, salt=0)
        if "rollback" in args.sections:
            bench_rollback(work, source, key, args.rollback_repeat, table)
        if "hash" in args.sections:
            bench_hash(work, source, key_path, args.repeat, table)
        if "sync" in args.sections:
            bench_sync(work, size, key, args.repeat, table)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntargets missed: {len(table.failures)}")
    for failure in table.failures:
        print(f"  {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
