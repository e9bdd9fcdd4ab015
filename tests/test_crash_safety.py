"""Crash safety of `ff sync` and `ff publish` under SIGKILL.

The store's promise (ffstore/blobs.py, ffstore/fsutil.py) is that a process killed
at any instant leaves either the old state or the new one: a blob becomes visible
under its digest only after it was fully written, hashed, fsynced and renamed, and a
registry's index is written last, so it never lists a version whose files are not
all there. Unit tests cannot show that, because the failure mode is a process dying
between two system calls; so these tests start real `python -m ffstore` processes,
SIGKILL them after random delays (seeded, so a failure reproduces), and after every
kill check the on-disk invariants, then check that the next run completes and that
`ff verify` passes.

The models are random `.bin` files of 8-32 MiB, so a kill often lands while a blob
is being copied and hashed (every other kill waits until a temp file shows up in
`tmp/` to make sure of that). `.ff-tmp-` files may stay behind after a kill; they
are the only thing a killed process is allowed to leave.
"""

import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ffstore.fsutil import TEMP_PREFIX
from ffstore.index import parse_index
from ffstore.lockfile import parse_lock
from ffstore.manifest import Manifest, parse_manifest, parse_signatures
from ffstore.publish import publish as publish_library
from ffstore.signing import generate_key, load_key
from ffstore.trust import check_index, manifest_signers
from tests.conftest import YUNET, Result, make_runner, run_ff_process

SEED = 0xFF5AFE
SIZES_MIB = (8, 16, 32)  # big enough that a copy takes a good share of a run
SYNC_KILLS = 20
PUBLISH_KILLS = 20
CONSUME_EVERY = 4  # lock+sync+verify a recovered registry this often (it is slow)
MODEL = "big"
VERSION = "1.0.0"
# A module ff swap does not run: the parts are not one ONNX model, and `ff lock` refuses
# what ff swap cannot run in the modules it does run.
MODULE = "frame_enhancer"
HEX_NAME = re.compile(r"[0-9a-f]{64}")

Runner = Callable[..., Result]


@dataclass(frozen=True)
class Models:
    """The random model files, what they must hash to, and a key to sign them."""

    files: tuple[Path, ...]
    digests: dict[str, tuple[str, int]]  # manifest path -> (digest, size)
    key_path: Path
    key_id: str
    startup_s: float  # an interpreter start plus ff's imports, to place kills after it


@dataclass
class Tally:
    """What the kills hit, so the test can show it exercised the window it claims to."""

    finished: int = 0
    killed: int = 0
    in_flight: int = 0  # killed while a temp file was in tmp/ (a blob mid-copy or mid-hash)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.killed} killed ({self.in_flight} mid-transfer), {self.finished} finished first"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return f"sha256:{hashlib.file_digest(handle, 'sha256').hexdigest()}"


def _startup_seconds() -> float:
    """Best of two `ff --version` runs: the part of every run before any file I/O."""
    best = float("inf")
    for _ in range(2):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ffstore", "--version"], check=True,
                       capture_output=True)
        best = min(best, time.perf_counter() - began)
    return best


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    directory = tmp_path_factory.mktemp("crash-models")
    rng = random.Random(SEED)
    files = []
    for index, size in enumerate(SIZES_MIB):
        path = directory / "files" / f"part{index}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(rng.randbytes(size << 20))
        files.append(path)
    digests = {path.name: (sha256_file(path), path.stat().st_size) for path in files}
    key = generate_key(directory / "keys", "alice")
    return Models(tuple(files), digests, directory / "keys" / "alice.key", key.key_id,
                  _startup_seconds())


def write_project(project: Path, registry: Path, key_id: str) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "{registry}"\n\n[trust]\nkeys = ["{key_id}"]\n\n'
        f'[modules]\n{MODULE} = {{ model = "{MODEL}", version = ">=1" }}\n')


def publish_args(models: Models, registry: Path) -> list[str]:
    return ["publish", *map(str, models.files), "--registry", str(registry), "--model", MODEL,
            "--version", VERSION, "--module", MODULE, "--key", str(models.key_path)]


# --- invariants -------------------------------------------------------------------


def temp_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [entry for entry in directory.iterdir() if entry.name.startswith(TEMP_PREFIX)]


def check_blob_store(root: Path, rehash: bool = True) -> set[str]:
    """Every name in `blobs/sha256/` is a digest, its file is read-only and hashes to
    that name, and `tmp/` holds only temp files. Returns the digests present. Without
    `rehash` the content is left to a later `ff sync`/`ff verify` (which hash it)."""
    present = set()
    blob_dir = root / "blobs" / "sha256"
    if blob_dir.is_dir():
        for entry in blob_dir.iterdir():
            assert HEX_NAME.fullmatch(entry.name), f"stray file {entry} in the blob directory"
            mode = entry.lstat().st_mode
            assert stat.S_ISREG(mode), f"{entry} is not a regular file"
            assert not mode & 0o222, f"blob {entry} is writable (mode {stat.filemode(mode)})"
            digest = f"sha256:{entry.name}"
            if rehash:
                actual = sha256_file(entry)
                assert actual == digest, f"blob {entry} is partial or wrong: it hashes to {actual}"
            present.add(digest)
    temp_dir = root / "tmp"
    if temp_dir.is_dir():
        strays = [p.name for p in temp_dir.iterdir() if not p.name.startswith(TEMP_PREFIX)]
        assert not strays, f"non-temp files in {temp_dir}: {strays}"
    return present


def check_manifests(root: Path) -> dict[str, Manifest]:
    """Every manifest file is whole: its bytes hash to its name and parse."""
    manifests = {}
    for path in sorted((root / "manifests" / "sha256").glob("*.json")):
        digest = f"sha256:{path.stem}"
        manifests[digest] = parse_manifest(path.read_bytes(), digest)
    return manifests


def check_store(home: Path, rehash: bool = True) -> None:
    """The local store after any kill: whole blobs and manifests, model views that
    are links to stored blobs, and history and state files that parse."""
    blobs = check_blob_store(home, rehash)
    manifests = check_manifests(home)
    for view in (home / "views" / "sha256").glob("*"):
        manifest = manifests.get(f"sha256:{view.name}")
        assert manifest is not None, f"view {view} exists without its manifest"
        for entry in manifest.files:
            target = view / entry.path
            if target.exists():
                assert entry.digest in blobs, f"view file {target} points at a missing blob"
                blob = home / "blobs" / "sha256" / entry.digest.split(":")[1]
                assert os.path.samefile(target, blob), f"view file {target} is not its blob"
    for path in (home / "projects").glob("*/generations/*.json"):
        doc = json.loads(path.read_text())
        parse_lock(doc["lock"].encode(), str(path))
    state = home / "state" / "registries.json"
    if state.exists():
        assert isinstance(json.loads(state.read_text()), dict)


def check_registry(root: Path, key_id: str, rehash: bool = True) -> dict[tuple[str, str], Manifest]:
    """A registry after any kill: whole, read-only blobs; an index that parses and
    carries a valid signature; and every version it lists complete (manifest, a valid
    signature of it, every blob at its size). Returns the listed versions."""
    blobs = check_blob_store(root, rehash)
    index = parse_index((root / "index.json").read_bytes(), str(root / "index.json"))
    check_index(index, frozenset({key_id}), str(root / "index.json"))
    listed = {}
    for model, versions in index.models.items():
        for version, entry in versions.items():
            relative = entry.manifest.split(":")[1] + ".json"
            manifest = parse_manifest((root / "manifests" / "sha256" / relative).read_bytes(),
                                      entry.manifest)
            signatures = parse_signatures(
                (root / "signatures" / "sha256" / relative).read_bytes(), relative)
            assert key_id in manifest_signers(entry.manifest, signatures)
            for file in manifest.files:
                assert file.digest in blobs, f"{model} {version} is listed but lacks {file.path}"
                blob = root / "blobs" / "sha256" / file.digest.split(":")[1]
                assert blob.stat().st_size == file.size
            listed[(model, version)] = manifest
    return listed


def assert_is_the_model(manifest: Manifest, models: Models) -> None:
    assert {f.path: (f.digest, f.size) for f in manifest.files} == models.digests


# --- killing ----------------------------------------------------------------------


def run_and_kill(args: list[str], cwd: Path, home: Path, watch: Path, delay: float,
                 wait_for_transfer: bool, tally: Tally) -> bool:
    """Start `ff ARGS` and SIGKILL it `delay` seconds after it starts, or, with
    `wait_for_transfer`, `delay` seconds after a temp file appears in `watch` (so the
    kill lands while a blob is in flight). A run that finishes first must succeed.
    Returns whether the kill landed."""
    env = {**os.environ, "FF_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "ffstore", *args], cwd=cwd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if wait_for_transfer:
            limit = time.monotonic() + 30
            while process.poll() is None and not temp_files(watch) and time.monotonic() < limit:
                time.sleep(0.001)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode == -signal.SIGKILL:
        tally.killed += 1
        tally.in_flight += bool(temp_files(watch))
        return True
    assert process.returncode == 0, f"ff {' '.join(args)} failed unkilled:\n{stderr.decode()}"
    tally.finished += 1
    return False


RETRIES = 6


def kill_once(reset: Callable[[], None], args: list[str], cwd: Path, home: Path, watch: Path,
              delay: float, wait_for_transfer: bool, tally: Tally) -> None:
    """One iteration's kill, made sure of however fast the machine is: a run that
    finished before its kill is reset and run again with half the delay, so what the
    test proves (state after a kill) does not depend on the load."""
    for attempt in range(RETRIES):
        reset()
        if run_and_kill(args, cwd, home, watch, delay / 2 ** attempt, wait_for_transfer, tally):
            return


def kill_plan(rng: random.Random, iteration: int, startup: float, full: float) -> tuple[float, bool]:
    """Even iterations: anywhere from shortly before ff's first file I/O to a little
    past the end of a full run. Odd ones: a short random time into a blob transfer."""
    if iteration % 2 == 0:
        return rng.uniform(0.8 * startup, 1.05 * full), False
    return rng.uniform(0, max(0.02, 0.5 * (full - startup))), True


def timed(action: Callable[[], None]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


@pytest.fixture
def runner(capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path, Path], Runner]]:
    """In-process `ff` for the recovery runs (no interpreter start, so the many
    iterations stay fast; the killed runs are the real processes)."""
    yield lambda cwd, home: make_runner(capsys, cwd, home, monkeypatch)


# --- sync -------------------------------------------------------------------------


def test_sync_survives_sigkill(models: Models, tmp_path: Path,
                               runner: Callable[[Path, Path], Runner]) -> None:
    """Kill `ff sync` into a cold store from a local registry. The local registry
    copies each blob through a temp file in tmp/ (HashingWriter, fsync, rename), or on
    a filesystem with reflinks clones it there and hashes it; either way a kill must
    leave no partial blob, and the next sync must make the store complete."""
    registry = tmp_path / "registry"
    publish_library(registry, list(models.files), MODEL, VERSION, MODULE,
                    load_key(tmp_path, str(models.key_path)))
    project = tmp_path / "project"
    write_project(project, registry, models.key_id)
    runner(project, tmp_path / "lock-home")("lock")

    def cold_sync() -> None:
        done = run_ff_process(["sync"], project, tmp_path / "calibrate", timeout=60)
        assert done.returncode == 0, done.stderr

    full = timed(cold_sync)
    shutil.rmtree(tmp_path / "calibrate")
    rng = random.Random(f"{SEED}-sync")
    tally = Tally()
    for iteration in range(SYNC_KILLS):
        home = tmp_path / f"home{iteration}"
        delay, wait = kill_plan(rng, iteration, models.startup_s, full)
        kill_once(functools.partial(shutil.rmtree, home, ignore_errors=True), ["sync"], project,
                  home, home / "tmp", delay, wait, tally)
        check_store(home)

        run = runner(project, home)
        run("sync")
        check_store(home, rehash=False)  # `ff verify` re-hashes every blob next
        manifests = check_manifests(home)
        assert len(manifests) == 1
        (manifest,) = manifests.values()
        assert_is_the_model(manifest, models)
        assert all((home / "views" / "sha256" / manifest.digest.split(":")[1] / name).is_file()
                   for name in models.digests)
        run("verify")
        shutil.rmtree(home)

    check_registry(registry, models.key_id)  # a kill on the reading side harms no source
    print(f"sync: full run {full:.2f}s; {tally.summary()}")
    assert tally.killed == SYNC_KILLS, tally.summary()
    assert tally.in_flight >= 1, f"no kill landed mid-transfer: {tally.summary()}"


# --- publish ----------------------------------------------------------------------


@pytest.fixture
def seeded_registry(models: Models, tmp_path: Path) -> Path:
    """A registry that already holds another model, which no kill may disturb."""
    template = tmp_path / "template"
    key = load_key(tmp_path, str(models.key_path))
    publish_library(template, [YUNET], "yunet", "1.0.0", MODULE, key)
    return template


def test_publish_survives_sigkill(models: Models, seeded_registry: Path, tmp_path: Path,
                                  runner: Callable[[Path, Path], Runner]) -> None:
    """Kill `ff publish` of a new model into a registry that already lists one. After
    the kill the index is the old one or the new one, never a version with missing
    files; the next publish completes with the right files; and (every few
    iterations) the recovered registry locks, syncs into a store and verifies."""
    registry = tmp_path / "registry"
    project = tmp_path / "project"
    write_project(project, registry, models.key_id)
    args = publish_args(models, registry)
    seed_listing = set(check_registry(seeded_registry, models.key_id))

    def fresh_registry() -> None:
        shutil.rmtree(registry, ignore_errors=True)
        shutil.copytree(seeded_registry, registry)  # copy2 keeps the blobs read-only

    def full_publish() -> None:
        done = run_ff_process(args, tmp_path, tmp_path / "home", timeout=60)
        assert done.returncode == 0, done.stderr

    fresh_registry()
    full = timed(full_publish)
    rng = random.Random(f"{SEED}-publish")
    tally = Tally()
    for iteration in range(PUBLISH_KILLS):
        delay, wait = kill_plan(rng, iteration, models.startup_s, full)
        kill_once(fresh_registry, args, tmp_path, tmp_path / "home", registry / "tmp", delay, wait,
                  tally)
        listed = check_registry(registry, models.key_id)
        assert seed_listing <= set(listed), "a killed publish lost an earlier version"
        if (MODEL, VERSION) in listed:
            assert_is_the_model(listed[(MODEL, VERSION)], models)

        home = tmp_path / f"home{iteration}"
        runner(tmp_path, home)(*args)
        listed = check_registry(registry, models.key_id)
        assert set(listed) == seed_listing | {(MODEL, VERSION)}
        assert_is_the_model(listed[(MODEL, VERSION)], models)
        if iteration % CONSUME_EVERY == 0 or iteration == PUBLISH_KILLS - 1:
            consume = runner(project, home)  # what a user of the registry would do
            consume("lock")
            consume("sync")
            consume("verify")
            shutil.rmtree(home)

    print(f"publish: full run {full:.2f}s; {tally.summary()}")
    assert tally.killed == PUBLISH_KILLS, tally.summary()
    assert tally.in_flight >= 1, f"no kill landed mid-copy: {tally.summary()}"

