"""Faults of the machine, not of the input: a full disk under `ff sync` and `ff
publish`, a read-only store, many ff processes writing one store and one registry at
once, and `ff gc` racing `ff sync`.

Everything is real: files on a real (if small) filesystem, fsync, Ed25519 keys, ff
run as `python -m ffstore` processes, an HTTP server on 127.0.0.1. A full or
read-only disk is a tmpfs of the test's own, mounted in a private mount namespace
(`unshare -rm`, or `unshare -m` for root without user namespaces) that a sleeping
process holds open: ff runs inside it through `nsenter`, and the test reads what ff
left through `/proc/<holder>/root`. Where namespaces are not allowed (a container
without CAP_SYS_ADMIN, no util-linux) those tests skip, saying why; set
FF_TEST_NEED_NAMESPACES=1 to make that a failure instead (CI as root).

What every test proves is independent of the machine's speed: a race is either
forced (a download held open until gc is seen waiting for the store lock) or run
for a fixed number of rounds whose every outcome must be correct.
"""

import functools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ffstore import layout
from ffstore.fsutil import TEMP_PREFIX
from ffstore.index import parse_index
from ffstore.serve import RegistryHandler, RegistryServer, make_server
from tests.conftest import Result, Workspace
from tests.test_concurrency import _spawn
from tests.test_crash_safety import check_registry, check_store, sha256_file
from tests.test_http_registry import running
from tests.test_refusals import _refused

SEED = 0xFA017
KIB = 1 << 10
# Modules ff swap does not run, so `ff lock` takes plain .bin files for them.
MODULES = ("frame_enhancer", "frame_colorizer", "lip_syncer", "age_modifier")


# --- a filesystem of the test's own ----------------------------------------------------


@dataclass(frozen=True)
class Namespaces:
    """How to make a private mount namespace here, and how to enter it."""

    unshare: tuple[str, ...]
    nsenter: tuple[str, ...]


WAYS = (Namespaces(("unshare", "-rm"), ("-U", "-m", "--preserve-credentials")),
        Namespaces(("unshare", "-m"), ("-m",)))  # root where user namespaces are off


class SmallDisk:
    """A tmpfs of `size_kib` mounted at `mountpoint` for ff's eyes only: a private
    mount namespace, held by a process that waits on its stdin. Commands run in it
    with `sh`/`ff`; the test sees its files at `inside(path)`."""

    def __init__(self, mountpoint: Path, size_kib: int, way: Namespaces) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint
        self._way = way
        script = 'mount -t tmpfs -o size="$1"k,mode=0755 tmpfs "$0" && echo ready && exec cat'
        self._holder = subprocess.Popen([*way.unshare, "sh", "-c", script, str(mountpoint),
                                         str(size_kib)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._holder.stdout is not None
        if self._holder.stdout.readline() != "ready\n":
            self._holder.wait(10)
            assert self._holder.stderr is not None
            raise OSError(f"{' '.join(way.unshare)} + mount tmpfs failed: "
                          f"{self._holder.stderr.read().strip() or self._holder.returncode}")

    def inside(self, path: Path) -> Path:
        """`path` as it is in the namespace (the tmpfs, where it is under the mount)."""
        return Path(f"/proc/{self._holder.pid}/root") / path.relative_to("/")

    def _enter(self, command: list[str], cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
        # Entering a mount namespace resets the working directory to its root: cd again.
        return subprocess.run(["nsenter", "-t", str(self._holder.pid), *self._way.nsenter,
                               "sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *command],
                              env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=timeout)

    def sh(self, script: str) -> None:
        done = self._enter(["sh", "-c", script], Path("/"))
        assert done.returncode == 0, f"{script}: {done.stderr}"

    def ff(self, *args: str, cwd: Path, home: Path, expect: int | None = 0,
           env: dict[str, str] | None = None) -> Result:
        done = self._enter([sys.executable, "-m", "ffstore", *args], cwd,
                           {"FF_HOME": str(home), **(env or {})})
        result = Result(done.returncode, done.stdout, done.stderr)
        if expect is not None:
            assert result.code == expect, f"ff {' '.join(args)} -> {result.code}\n{result.err}"
        return result

    def resize(self, size_kib: int) -> None:
        self.sh(f'mount -o remount,size={size_kib}k "{self.mountpoint}"')

    def read_only(self, path: Path | None = None) -> None:
        """Make the tmpfs read-only, or (given `path` in it) only that directory, by a
        read-only bind mount: chmod does not stop root, a read-only mount does."""
        if path is None:
            self.sh(f'mount -o remount,ro "{self.mountpoint}"')
        else:
            self.sh(f'mount --bind "{path}" "{path}" && mount -o remount,bind,ro "{path}"')

    def writable(self) -> None:
        self.sh(f'mount -o remount,rw "{self.mountpoint}"')

    def free_bytes(self) -> int:
        stats = os.statvfs(self.inside(self.mountpoint))
        return stats.f_bavail * stats.f_frsize

    def close(self) -> None:
        assert self._holder.stdin is not None
        self._holder.stdin.close()  # the holder's `cat` ends, and the namespace with it
        try:
            self._holder.wait(10)
        except subprocess.TimeoutExpired:
            self._holder.kill()
            self._holder.wait()


@functools.cache
def _namespaces() -> Namespaces | str:
    """The first way that works here, or why none does."""
    reasons = []
    for way in WAYS:
        if shutil.which(way.unshare[0]) is None or shutil.which("nsenter") is None:
            return "needs unshare and nsenter (util-linux)"
        with tempfile.TemporaryDirectory() as directory:
            try:
                disk = SmallDisk(Path(directory) / "disk", 64, way)
            except OSError as exc:
                reasons.append(str(exc))
                continue
            try:
                disk.sh(f'touch "{disk.mountpoint}/probe"')
                assert disk.inside(disk.mountpoint / "probe").is_file()
                assert not (Path(directory) / "disk" / "probe").exists()
            except (AssertionError, OSError) as exc:
                reasons.append(f"{' '.join(way.unshare)}: {exc}")
                continue
            finally:
                disk.close()
        return way
    return ("cannot mount a private tmpfs (needs root or user namespaces, and mount "
            "namespaces): " + "; ".join(reasons))


@pytest.fixture
def small_disk() -> Iterator[Callable[[Path, int], SmallDisk]]:
    """Makes SmallDisks, and unmounts them after the test. Skips (or, with
    FF_TEST_NEED_NAMESPACES=1, fails) where this machine cannot make one."""
    way = _namespaces()
    if isinstance(way, str):
        if os.environ.get("FF_TEST_NEED_NAMESPACES") == "1":
            pytest.fail(way)
        pytest.skip(way)
    disks: list[SmallDisk] = []

    def make(mountpoint: Path, size_kib: int) -> SmallDisk:
        disks.append(SmallDisk(mountpoint, size_kib, way))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def test_without_namespaces_the_tests_skip_saying_why(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """Where util-linux is missing, or the kernel refuses a namespace (a container
    without CAP_SYS_ADMIN), the probe says so rather than failing."""
    _namespaces.cache_clear()
    try:
        monkeypatch.setenv("PATH", str(tmp_path))
        assert _namespaces() == "needs unshare and nsenter (util-linux)"
        _namespaces.cache_clear()
        for tool in ("unshare", "nsenter"):  # as util-linux answers where unshare(2) is denied
            (tmp_path / tool).write_text(
                f"#!/bin/sh\necho '{tool}: unshare failed: Operation not permitted' >&2\nexit 1\n")
            (tmp_path / tool).chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
        reason = _namespaces()
        assert isinstance(reason, str) and reason.startswith("cannot mount a private tmpfs")
        assert "unshare -rm + mount tmpfs failed: unshare: unshare failed: Operation not " \
               "permitted" in reason and "unshare -m + mount" in reason
    finally:
        _namespaces.cache_clear()


# --- models ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    name: str
    module: str
    files: tuple[Path, ...]

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    @property
    def digests(self) -> set[str]:
        return {sha256_file(path) for path in self.files}


def make_model(directory: Path, name: str, module: str, *sizes: int, seed: object = SEED) -> Model:
    """Random, incompressible parts (a tmpfs stores them as they are)."""
    rng = random.Random(f"{seed}-{name}")
    folder = directory / name
    folder.mkdir(parents=True)
    files = []
    for number, size in enumerate(sizes):
        path = folder / f"{name}.part{number}.bin"
        path.write_bytes(rng.randbytes(size))
        files.append(path)
    return Model(name, module, tuple(files))


def publish_args(model: Model, registry: Path, version: str = "1.0.0", key: str = "alice"
                 ) -> list[str]:
    return ["publish", *map(str, model.files), "--registry", str(registry), "--model", model.name,
            "--version", version, "--module", model.module, "--key", key]


def write_toml(workspace: Workspace, project: Path, models: list[Model], registry: str) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{registry}"\n\n[trust]\nkeys = ["{workspace.key_id}"]\n\n'
        "[modules]\n" + "".join(f'{m.module} = {{ model = "{m.name}", version = ">=1" }}\n'
                                for m in models))


def lock(workspace: Workspace, project: Path, models: list[Model], registry: str) -> None:
    """Write facefusion.toml and lock it (with the workspace's own store, so the store
    under test starts without the manifests)."""
    write_toml(workspace, project, models, registry)
    workspace.run("--project", str(project), "lock")


def view_file(home: Path, result: Result) -> Path:
    """What `ff path` printed, as the test sees it (a path in the store)."""
    path = Path(result.out.strip())
    assert path.is_relative_to(home), result.out
    return path


def assert_synced(disk: "SmallDisk | None", project: Path, home: Path, models: list[Model],
                  run: Callable[..., Result]) -> None:
    """Every model's `ff path` answers with its first file's exact bytes."""
    for model in models:
        path = view_file(home, run("path", model.module, cwd=project, home=home))
        seen = disk.inside(path) if disk else path
        assert seen.read_bytes() == model.files[0].read_bytes(), model.name


def no_temp_files(root: Path) -> None:
    left = [str(p) for p in root.rglob(f"{TEMP_PREFIX}*")] if root.is_dir() else []
    assert not left, f"a failed (not killed) command left temp files: {left}"


def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `root` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p.relative_to(root)).startswith(skip)}


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-models")


# --- 1. a full disk under ff sync ------------------------------------------------------


@pytest.mark.parametrize("source", ["directory", "http"])
def test_sync_on_a_full_disk_fails_cleanly_and_completes_once_there_is_room(
        workspace: Workspace, small_disk: Callable[[Path, int], SmallDisk], parts: Path,
        source: str) -> None:
    """The store on a 512 KiB tmpfs; a synced small model, then a lock that adds a
    768 KiB one. The sync fails in one line, exit 1; every blob in the store hashes
    to its name, no model view lacks a blob, no temp file is left (an HTTP download
    keeps what arrived in partial/, outside the digest namespace, to resume); the
    small model still works. Then room comes back (the tmpfs grows, or a filler file
    goes) and the next sync completes, and verifies."""
    small = make_model(parts, f"small-{source}", MODULES[0], 64 * KIB)
    big = make_model(parts, f"big-{source}", MODULES[1], 256 * KIB, 256 * KIB, 256 * KIB)
    for model in (small, big):
        workspace.run(*publish_args(model, workspace.registry))
    home, project = workspace.root / "disk-home", workspace.root / "disk-project"
    if source == "http":  # room runs out because of a filler file, not the disk's size
        disk = small_disk(home, 2048)
        filler = disk.inside(home) / "filler"
        filler.write_bytes(bytes(disk.free_bytes() - 512 * KIB))
    else:
        disk = small_disk(home, 512)
    with running(make_server(workspace.registry, quiet=True)) as url:
        registry = url if source == "http" else str(workspace.registry)
        lock(workspace, project, [small], registry)
        disk.ff("sync", cwd=project, home=home)
        lock(workspace, project, [small, big], registry)

        failed = disk.ff("sync", cwd=project, home=home, expect=None)
        _refused(failed, 1, "no space left on device", str(home), "ff gc")
        store = disk.inside(home)
        check_store(store)
        no_temp_files(store / "tmp")
        assert not big.digests <= {sha256_file(p) for p in (store / layout.BLOBS).iterdir()}
        # The big model's manifest may be stored (a verified document, as `ff lock`
        # stores it), but no model folder is laid out for it until all its blobs are.
        assert len(list((store / layout.VIEWS).iterdir())) == 1
        status = disk.ff("status", cwd=project, home=home).out
        assert "NOT SYNCED" in status.splitlines()[0] and big.name in status.splitlines()[0]
        _refused(disk.ff("path", big.module, cwd=project, home=home, expect=None), 1,
                 "not synced", "ff sync")
        assert_synced(disk, project, home, [small], disk.ff)
        assert "ok:" in disk.ff("verify", cwd=project, home=home).out

        if source == "http":
            filler.unlink()
        else:
            disk.resize(4096)
        done = disk.ff("sync", cwd=project, home=home)
        assert "fetched" in done.out
        check_store(store)
        assert big.digests | small.digests <= {sha256_file(p)
                                               for p in (store / layout.BLOBS).iterdir()}
        assert not any((store / layout.PARTIAL).glob("*.part"))
        assert_synced(disk, project, home, [small, big], disk.ff)
        assert "ok:" in disk.ff("verify", cwd=project, home=home).out


# --- 2. a full disk under ff publish ---------------------------------------------------

PAGE = 4 * KIB  # what a tmpfs charges per file, at least
# Where a publish of a new version runs out of room, by the room it is given beyond
# its new blobs: each of manifest, signature document and index takes one page.
PUBLISH_STAGES = {"blobs": -8 * PAGE, "manifest": 0, "signatures": PAGE, "index": 2 * PAGE}
WRITING = {"blobs": layout.TMP, "manifest": layout.MANIFESTS, "signatures": layout.SIGNATURES,
           "index": ""}  # the directory the failing write names


@pytest.mark.parametrize("stage", PUBLISH_STAGES)
def test_publish_on_a_full_disk_keeps_the_previous_index(
        workspace: Workspace, small_disk: Callable[[Path, int], SmallDisk], parts: Path,
        stage: str) -> None:
    """The registry on a tmpfs that one model already fills but for as much room as
    makes the next publish fail while it stores the blobs, the manifest, the
    signature document or the index. The publish fails in one line, exit 1, and the
    registry is byte for byte what it was: the previous signed index, no temp file,
    no half blob, nothing orphaned that no index lists (which would keep the disk
    full). Once room returns the same publish succeeds, and a fresh project locks
    and syncs it."""
    registry = workspace.root / "disk-registry"
    disk = small_disk(registry, 1024)
    seed = make_model(parts, f"seed-{stage}", MODULES[0], 64 * KIB)
    new = make_model(parts, f"new-{stage}", MODULES[1], 64 * KIB, 64 * KIB)
    home, project = workspace.home, workspace.root / "consumer"
    disk.ff(*publish_args(seed, registry), cwd=workspace.root, home=home)
    seen = disk.inside(registry)
    before = snapshot(seen, skip=(layout.PUBLISH_LOCK,))
    filler = seen / "filler"  # not a registry file: readers never ask for it
    filler.write_bytes(bytes(disk.free_bytes() - new.size - PUBLISH_STAGES[stage]))

    failed = disk.ff(*publish_args(new, registry), cwd=workspace.root, home=home, expect=None)
    _refused(failed, 1, "no space left on device", f"({registry / WRITING[stage]})")
    assert snapshot(seen, skip=(layout.PUBLISH_LOCK, "filler")) == before
    no_temp_files(seen)
    assert set(check_registry(seen, workspace.key_id)) == {(seed.name, "1.0.0")}

    filler.unlink()
    disk.ff(*publish_args(new, registry), cwd=workspace.root, home=home)
    assert set(check_registry(seen, workspace.key_id)) == {(seed.name, "1.0.0"),
                                                           (new.name, "1.0.0")}
    consumer = workspace.root / "consumer-home"
    write_toml(workspace, project, [seed, new], str(registry))
    disk.ff("lock", cwd=project, home=consumer)
    disk.ff("sync", cwd=project, home=consumer)
    assert_synced(disk, project, consumer, [seed, new], disk.ff)
    assert "ok:" in disk.ff("verify", cwd=project, home=consumer).out


# --- 3. a read-only store ----------------------------------------------------------------


@pytest.mark.parametrize("read_only", ["store", "blobs"])
def test_a_read_only_store_serves_what_it_holds_and_refuses_writes_in_one_line(
        workspace: Workspace, small_disk: Callable[[Path, int], SmallDisk], parts: Path,
        read_only: str) -> None:
    """FF_HOME (or only its blobs/ folder, by a read-only bind mount) mounted
    read-only, which root cannot write either. What needs no write works: a warm
    sync (everything cached), ff path, ff status, ff verify of an intact store.
    What must write fails in one `error:` line, exit 1, and changes nothing: a sync
    that has a model to fetch, a gc with blobs to free, a verify that finds a corrupt
    blob to move aside. Made writable again, the store repairs itself."""
    small = make_model(parts, f"ro-small-{read_only}", MODULES[0], 64 * KIB)
    big = make_model(parts, f"ro-big-{read_only}", MODULES[1], 128 * KIB)
    late = make_model(parts, f"ro-late-{read_only}", MODULES[2], 64 * KIB)
    for model in (small, big, late):
        workspace.run(*publish_args(model, workspace.registry))
    home, project = workspace.root / "ro-home", workspace.root / "ro-project"
    disk = small_disk(home, 4096)
    store = disk.inside(home)
    registry = str(workspace.registry)
    lock(workspace, project, [small, big], registry)
    disk.ff("sync", cwd=project, home=home)

    def run(*args: str, expect: int | None = 0) -> Result:
        return disk.ff(*args, cwd=project, home=home, expect=expect)

    def make_read_only() -> None:
        disk.read_only(None if read_only == "store" else home / "blobs")

    make_read_only()
    before = snapshot(store)
    assert "fetched 0 files" in run("sync").out
    assert_synced(disk, project, home, [small, big], disk.ff)
    assert "NOT SYNCED" not in run("status").out
    assert "ok: 2 blobs" in run("verify").out
    assert snapshot(store) == before

    lock(workspace, project, [small, big, late], registry)  # a model the store lacks
    _refused(run("sync", expect=None), 1, "read-only file system", str(home),
             "make it writable")
    lock(workspace, project, [small, big], registry)
    gone = project / "facefusion.lock"
    gone.rename(project / "elsewhere")  # the project is gone: gc would free every blob
    _refused(disk.ff("gc", cwd=workspace.root, home=home, expect=None), 1,
             "read-only file system", str(home))
    (project / "elsewhere").rename(gone)
    if read_only == "store":
        assert snapshot(store) == before
    else:  # only blobs/ is read-only: manifests, views and the like may change, blobs not
        assert {k: v for k, v in snapshot(store).items() if k.startswith("blobs")} == {
            k: v for k, v in before.items() if k.startswith("blobs")}
        check_store(store)

    disk.writable()  # (a bind mount stays read-only: the remount was of the tmpfs only)
    if read_only == "blobs":
        disk.sh(f'umount "{home / "blobs"}"')
    blob = store / layout.blob(next(iter(small.digests)))
    blob.chmod(0o644)
    with open(blob, "r+b") as handle:  # one flipped byte, the same size and inode
        handle.write(bytes([handle.read(1)[0] ^ 0xFF]))
    make_read_only()
    _refused(run("verify", expect=None), 1, "read-only file system", str(home))

    disk.writable()
    if read_only == "blobs":
        disk.sh(f'umount "{home / "blobs"}"')
    assert "was corrupt" in run("verify", expect=1).err
    run("sync")
    assert "ok:" in run("verify").out
    check_store(store)
    assert_synced(disk, project, home, [small, big], disk.ff)


# --- 4. many writers at once -------------------------------------------------------------


def finish(processes: dict[str, subprocess.Popen], timeout: float = 120) -> dict[str, str]:
    """Wait for every process; each must exit 0 without a traceback. Their stdout."""
    outputs, failures = {}, []
    for name, process in processes.items():
        out, err = process.communicate(timeout=timeout)
        outputs[name] = out
        if process.returncode != 0 or "Traceback" in err:
            failures.append(f"{name} -> {process.returncode}: {err.strip()}")
    assert not failures, "\n".join(failures)
    return outputs


def test_eight_syncs_and_four_publishes_at_once_lose_nothing(workspace: Workspace,
                                                             parts: Path) -> None:
    """Eight `ff sync` into one store (four of one project, four of others, some over
    HTTP, some from the directory) while four `ff publish` add versions and a model to
    the registry they read. All exit 0; the index is signed and lists every version
    (its counter grew by exactly four); every project's models are in the store, whole;
    every project was registered (gc would free nothing); `ff verify` is clean; and
    what was published locks and syncs."""
    registry = workspace.registry
    a, b, c = (make_model(parts, name, module, 48 * KIB, 16 * KIB)
               for name, module in (("conc-a", MODULES[0]), ("conc-b", MODULES[1]),
                                    ("conc-c", MODULES[2])))
    for model in (a, b, c):
        workspace.run(*publish_args(model, registry))
    releases = [(make_model(parts, f"conc-a-{v}", a.module, 48 * KIB), a.name, v)
                for v in ("1.1.0", "1.2.0")]
    releases += [(make_model(parts, "conc-b-1.1.0", b.module, 48 * KIB), b.name, "1.1.0"),
                 (make_model(parts, "conc-d", MODULES[3], 48 * KIB, 16 * KIB), "conc-d", "1.0.0")]
    home = workspace.root / "shared-home"
    with running(make_server(registry, quiet=True)) as url:
        wants = {"p1": ([a, b], str(registry)), "p2": ([a], url), "p3": ([b, c], url),
                 "p4": ([c], str(registry)), "p5": ([a, c], str(registry))}
        projects = {name: workspace.root / name for name in wants}
        for name, (models, where) in wants.items():
            lock(workspace, projects[name], models, where)
        syncs = [projects["p1"]] * 4 + [projects[name] for name in ("p2", "p3", "p4", "p5")]
        processes = {f"sync {i} {p.name}": _spawn(["sync"], p, home) for i, p in enumerate(syncs)}
        for files, model, version in releases:
            args = ["publish", *map(str, files.files), "--registry", str(registry), "--model",
                    model, "--version", version, "--module", files.module, "--key", "alice"]
            processes[f"publish {model} {version}"] = _spawn(args, workspace.root, workspace.home)
        finish(processes)

        listed = check_registry(registry, workspace.key_id)
        assert set(listed) == {(m.name, "1.0.0") for m in (a, b, c)} | {
            (model, version) for _f, model, version in releases}
        for files, model, version in releases:
            assert {f.digest for f in listed[(model, version)].files} == files.digests
        assert parse_index((registry / "index.json").read_bytes(), "index").version == 3 + 4

        def run(*args: str, project: Path, expect: int | None = 0) -> Result:
            return workspace.run("--home", str(home), "--project", str(project), *args,
                                 expect=expect)

        check_store(home)
        for name, (models, _where) in wants.items():
            assert_synced(None, projects[name], home, models,
                          lambda *args, cwd, home: run(*args, project=cwd))
            assert "fetched 0 files" in run("sync", project=projects[name]).out
        assert "0 blobs" in run("gc", "--dry-run", project=projects["p1"]).out
        assert "ok:" in run("verify", project=projects["p1"]).out

        fresh = workspace.root / "fresh"
        write_toml(workspace, fresh, [], url)
        (fresh / "facefusion.toml").write_text((fresh / "facefusion.toml").read_text() + "".join(
            f'{files.module} = {{ model = "{model}", version = ">={version}" }}\n'
            for files, model, version in releases[1:]))
        run("lock", project=fresh)
        run("sync", project=fresh)
        for files, _model, _version in releases[1:]:
            path = view_file(home, run("path", files.module, project=fresh))
            assert path.read_bytes() == files.files[0].read_bytes()
        assert "ok:" in run("verify", project=fresh).out


# --- 5. gc racing sync -------------------------------------------------------------------


class HeldHandler(RegistryHandler):
    """ff serve's handler, except that the held blob waits until the test lets it go."""

    server: "HeldServer"

    def do_GET(self) -> None:
        if self.server.held in self.path:
            self.server.asked.set()
            self.server.release.wait(60)
        super().do_GET()


class HeldServer(RegistryServer):
    def __init__(self, root: Path, held: str) -> None:
        super().__init__(root.resolve(), "127.0.0.1", 0, quiet=True, handler=HeldHandler)
        self.held = held.split(":")[1]
        self.asked = threading.Event()
        self.release = threading.Event()


def waits_for_a_lock(pid: int) -> bool:
    """Whether process `pid` is blocked in flock (a `->` waiter in /proc/locks)."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False


def wait_until(condition: Callable[[], bool], what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def test_gc_waits_for_a_sync_in_progress(workspace: Workspace, parts: Path) -> None:
    """A project's first sync (so no store knows the project yet: its blobs are
    garbage to gc until the sync records it) is held mid-download, one blob stored
    and the other one asked for and not answered. gc, started then, must wait on the
    store lock (seen in /proc/locks, so no timing is assumed) and leave the stored
    blob; released, the sync completes, gc then finds the project and frees nothing,
    and the store verifies."""
    model = make_model(parts, "held", MODULES[0], 64 * KIB, 64 * KIB)
    workspace.run(*publish_args(model, workspace.registry))
    first, held = (sha256_file(path) for path in model.files)
    server = HeldServer(workspace.registry, held)
    home, project = workspace.root / "race-home", workspace.root / "race-project"
    with running(server) as url:
        lock(workspace, project, [model], url)
        sync = _spawn(["sync"], project, home)
        try:
            stored = home / layout.blob(first)
            wait_until(lambda: (server.asked.is_set() and stored.exists())
                       or sync.poll() is not None,
                       "the sync has stored one blob and asked for the other")
            assert sync.poll() is None, sync.communicate()
            gc = _spawn(["gc", "--keep", "1"], workspace.root, home)
            wait_until(lambda: waits_for_a_lock(gc.pid) or gc.poll() is not None,
                       "gc waits for the store lock")
            assert gc.poll() is None, f"gc ran during a sync: {gc.communicate()}"
            assert stored.exists()
        finally:
            server.release.set()
        outputs = finish({"sync": sync, "gc": gc})
    assert "fetched 2 files" in outputs["sync"]
    assert "freed 0 B" in outputs["gc"] and "1 projects kept" in outputs["gc"]
    check_store(home)
    assert model.digests <= {sha256_file(p) for p in (home / layout.BLOBS).iterdir()}
    run = functools.partial(workspace.run, "--home", str(home), "--project", str(project))
    assert "ok: 2 blobs" in run("verify").out
    assert view_file(home, run("path", model.module)).read_bytes() == model.files[0].read_bytes()


GC_ROUNDS = 8


def test_gc_and_sync_started_together_round_after_round(workspace: Workspace,
                                                        parts: Path) -> None:
    """Each round a new checkout of a project (unknown to the store) syncs while gc
    runs, started in the same instant (alternately first), and the previous round's
    checkout is gone. The models alternate, so in every round, whichever wins the
    store lock, the sync fetches its model's two blobs (the round before freed them)
    and gc frees the two of the previous round's model, never one the sync needs: the
    sync ends complete and the store verifies."""
    models = [make_model(parts, f"round-{name}", MODULES[0], 64 * KIB, 32 * KIB)
              for name in "xy"]
    for model in models:
        workspace.run(*publish_args(model, workspace.registry))
    templates = [workspace.root / f"template-{model.name}" for model in models]
    for template, model in zip(templates, models, strict=True):
        lock(workspace, template, [model], str(workspace.registry))
    home = workspace.root / "rounds-home"
    previous: Path | None = None
    for number in range(GC_ROUNDS):
        model = models[number % 2]
        project = workspace.root / f"checkout-{number}"
        shutil.copytree(templates[number % 2], project)
        if previous is not None:
            shutil.rmtree(previous)  # gc now owes that checkout nothing
        starts = [("sync", ["sync"], project), ("gc", ["gc", "--keep", "1"], workspace.root)]
        if number % 2:
            starts.reverse()
        outputs = finish({name: _spawn(args, cwd, home) for name, args, cwd in starts})
        assert "fetched 2 files" in outputs["sync"], outputs
        assert f"{2 if number else 0} blobs" in outputs["gc"], outputs
        present = {sha256_file(p) for p in (home / layout.BLOBS).iterdir()}
        assert present == model.digests, f"round {number}: {outputs}"
        run = functools.partial(workspace.run, "--home", str(home), "--project", str(project))
        assert view_file(home, run("path", model.module)).read_bytes() == model.files[0].read_bytes()
        previous = project
    check_store(home)
    assert "ok: 2 blobs" in workspace.run("--home", str(home), "verify").out
