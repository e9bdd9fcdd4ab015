"""Benchmark the swap runtime through the real store (publish → lock → sync →
verified load), each figure against a reference measured in the same run.

  load     verified load of two >= 100 MiB models, a padded stand-in swapper (one big
           tensor) and a stack of 3x3 convolutions (many float32 weights, as a real
           network lays them out, which onnxruntime's optimiser then rewrites):
           `LockedModels.load(deferred_check=True)` + `sessions.make_checked_session`
           (the Runtime's path: sha256 runs while the session is built, the session is
           released only if it passes) against a plain `onnxruntime.InferenceSession(path)`
           on the same store file with the same SessionOptions (target <= 1.15x), plus
           the check-then-build sequence and the parts: read, sha256, session build
  pipeline frames per second of `Runtime.swap_video` on a generated 720p MJPG clip with
           two faces per frame, on CPU, and the share of wall time in which no
           `InferenceSession.run` is in progress on any frame worker (target < 20 %),
           with and without the enhancer; `--workers N` sets the frame workers
           (default: the Runtime's), `--profile` adds a cProfile of the frame loop
  switch   RSS across 50 hot switches of a padded swapper between two locked
           versions: baseline, peak (kernel high-water mark) and final

Each part runs in a fresh interpreter so one part's allocations do not colour
another's RSS or timings. Usage:

  python bench/bench_runtime.py [--load-mib 100] [--switch-mib 64] [--frames 60]
                                [--switches 50] [--repeat 7] [--profile] [--dir DIR]
                                [--workers N] [--parts load pipeline switch]
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ on the path, not the repo: the stand-in models
# are built by tests/standins.py.
sys.path.insert(0, str(REPO))
DATA = REPO / "tests" / "data"
YUNET = DATA / "models" / "yunet" / "face_detection_yunet_2026may.onnx"
ASTRONAUT = DATA / "images" / "astronaut.png"
GRACE_HOPPER = DATA / "images" / "grace_hopper.jpg"
MIB = 1 << 20
SWAPPER_SPEC = ("standin_inswapper", ">=1,<2")
BIG_SPEC = ("standin_inswapper_big", ">=1")
CONV_SPEC = ("standin_convnet", ">=1")
CONV_CHANNELS = 256


# --- helpers ---------------------------------------------------------------------------


def ff(home: Path, project: Path, *args: str) -> str:
    """Run `ff` in-process (no interpreter start-up in the figures); a failure ends the
    benchmark, since its numbers would be meaningless."""
    from ffstore.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--home", str(home), "--project", str(project), *args])
    if code != 0:
        sys.exit(f"ff {' '.join(args)} failed ({code}):\n{out.getvalue()}{err.getvalue()}")
    return out.getvalue()


def write_toml(project: Path, registry: Path, key_id: str, modules: dict[str, tuple[str, str]]) -> None:
    project.mkdir(parents=True, exist_ok=True)
    lines = ["[registries]", f'default = "{registry}"', "", "[trust]", f'keys = ["{key_id}"]', "",
             "[modules]"]
    lines += [f'{name} = {{ model = "{model}", version = "{spec}" }}'
              for name, (model, spec) in modules.items()]
    (project / "facefusion.toml").write_text("\n".join(lines) + "\n")


def rss() -> int:
    return _proc_status("VmRSS")


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) so it covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Collect and hand freed heap back to the OS, so runs start from the same state."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def mib(count: float) -> str:
    return f"{count / MIB:.1f} MiB"


def median_times(action: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        trim()
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
        del result
    return times


def fmt_times(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:7.1f} ms  (min {min(times) * 1000:.1f}, " \
           f"max {max(times) * 1000:.1f}, n={len(times)})"


def context(project: Path, home: Path) -> Any:
    from ffstore.context import open_context

    return open_context(project, {"home": str(home)}, environ={})


@dataclass
class RunTimes:
    """`InferenceSession.run` calls: time and count per model, and every call's
    interval, so concurrent runs (frame workers) are not counted twice."""

    per_model: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0.0, 0]))
    intervals: list[tuple[float, float]] = field(default_factory=list)

    def total(self) -> float:
        return sum(seconds for seconds, _ in self.per_model.values())

    def covered(self) -> float:
        """Wall time during which at least one session.run was in progress."""
        covered = 0.0
        reach = float("-inf")
        for start, end in sorted(self.intervals):
            if end > reach:
                covered += end - max(start, reach)
                reach = end
        return covered


@contextmanager
def timed_runs() -> Iterator[RunTimes]:
    """Wrap `InferenceSession.run` to time it per model, keyed by the session's
    first input name (detector: input, swapper: target, ...)."""
    import onnxruntime as ort

    times = RunTimes()
    original = ort.InferenceSession.run
    lock = threading.Lock()

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            end = time.perf_counter()
            with lock:
                entry = times.per_model[self._bench_name]
                entry[0] += end - start
                entry[1] += 1
                times.intervals.append((start, end))

    ort.InferenceSession.run = run  # type: ignore[method-assign]
    try:
        yield times
    finally:
        ort.InferenceSession.run = original  # type: ignore[method-assign]


@contextmanager
def timed_frames() -> Iterator[list[float]]:
    """Accumulate the time spent in the Runtime's per-frame function, summed over the
    frame workers."""
    import ffswap.runtime

    spent = [0.0]
    lock = threading.Lock()
    original = ffswap.runtime.process_video

    def process_video(target: Any, output: Any, frame_fn: Callable[..., Any], **kwargs: Any) -> Any:
        def timed(frame: Any) -> Any:
            start = time.perf_counter()
            try:
                return frame_fn(frame)
            finally:
                with lock:
                    spent[0] += time.perf_counter() - start

        return original(target, output, timed, **kwargs)

    ffswap.runtime.process_video = process_video  # type: ignore[assignment]
    try:
        yield spent
    finally:
        ffswap.runtime.process_video = original


@contextmanager
def timed_function(module: Any, name: str) -> Iterator[list[float]]:
    """Accumulate the wall time of calls to ``module.name`` (a module-level function)."""
    spent = [0.0]
    original = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    setattr(module, name, timed)
    try:
        yield spent
    finally:
        setattr(module, name, original)


def name_sessions(runtime: Any) -> None:
    for module, active in runtime.active.items():
        active.adapter._session._bench_name = module


# --- setup -----------------------------------------------------------------------------


def setup(workdir: Path, load_mib: int, switch_mib: int) -> dict[str, str]:
    """Publish the model set into a registry, lock two projects and sync one store."""
    from tests import standins

    home, registry = workdir / "home", workdir / "registry"
    files = workdir / "files"
    key_id = ff(home, workdir, "key", "generate", "bench").strip()
    releases: list[tuple[str, str, str, str, Callable[[], bytes]]] = [
        ("yunet", "2026.5.0", "face_detector", YUNET.name, YUNET.read_bytes),
        ("standin_arcface", "1.0.0", "face_recognizer", "arcface.onnx", standins.face_recognizer),
        ("standin_inswapper", "1.0.0", "face_swapper", "inswapper_128.onnx",
         lambda: standins.face_swapper(0, 0.6, size=switch_mib * MIB)),
        ("standin_inswapper", "1.1.0", "face_swapper", "inswapper_128.onnx",
         lambda: standins.face_swapper(1, 0.8, size=switch_mib * MIB)),
        ("standin_inswapper_big", "1.0.0", "face_swapper", "inswapper_128.onnx",
         lambda: standins.face_swapper(0, 0.6, size=load_mib * MIB)),
        ("standin_gfpgan", "1.4.0", "face_enhancer", "gfpgan.onnx", standins.face_enhancer),
        ("standin_convnet", "1.0.0", "face_swapper", "convnet.onnx", lambda: conv_model(load_mib * MIB)),
    ]
    for model, version, module, name, make in releases:
        path = files / model / version / name
        path.parent.mkdir(parents=True)
        path.write_bytes(make())
        ff(home, workdir, "publish", str(path), "--registry", str(registry), "--model", model,
           "--version", version, "--module", module, "--key", "bench")
        path.unlink()
    main_modules = {
        "face_detector": ("yunet", ">=2026"),
        "face_recognizer": ("standin_arcface", ">=1"),
        "face_swapper": SWAPPER_SPEC,
        "face_enhancer": ("standin_gfpgan", ">=1"),
    }
    projects = {"main": main_modules, "big": {"face_swapper": BIG_SPEC},
                "conv": {"face_swapper": CONV_SPEC}}
    for name, modules in projects.items():
        write_toml(workdir / name, registry, key_id, modules)
        ff(home, workdir / name, "lock")
        ff(home, workdir / name, "sync")
    return {"home": str(home), **{name: str(workdir / name) for name in projects}}


def conv_model(size: int) -> bytes:
    """A chain of 3x3 convolutions with at least ``size`` bytes of float32 weights."""
    import math

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = CONV_CHANNELS * CONV_CHANNELS * 9 * 4
    rng = np.random.default_rng(0)
    nodes, initializers, current = [], [], "input"
    for layer in range(math.ceil(size / weights)):
        weight = rng.standard_normal((CONV_CHANNELS, CONV_CHANNELS, 3, 3), dtype=np.float32) * 0.01
        initializers += [numpy_helper.from_array(weight, f"conv{layer}.weight"),
                         numpy_helper.from_array(np.zeros(CONV_CHANNELS, np.float32), f"conv{layer}.bias")]
        nodes.append(helper.make_node("Conv", [current, f"conv{layer}.weight", f"conv{layer}.bias"],
                                      [f"conv{layer}"], pads=[1, 1, 1, 1]))
        current = f"conv{layer}"
    nodes.append(helper.make_node("Identity", [current], ["output"]))
    shape = [1, CONV_CHANNELS, 16, 16]
    graph = helper.make_graph(nodes, "convnet",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    return model.SerializeToString()


def make_clip(path: Path, frames: int) -> Path:
    """A 1280x720 MJPG clip: both portraits on a grey canvas, drifting sideways."""
    import cv2
    import numpy as np

    astronaut = cv2.imread(str(ASTRONAUT))
    grace = cv2.resize(cv2.imread(str(GRACE_HOPPER)), (400, 469), interpolation=cv2.INTER_AREA)
    astronaut = cv2.resize(astronaut, (469, 469), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (1280, 720))
    if not writer.isOpened():
        sys.exit("cannot write the 720p MJPG clip (OpenCV without a video backend?)")
    for index in range(frames):
        canvas = np.full((720, 1280, 3), 96, dtype=np.uint8)
        shift = round(60 * index / max(1, frames - 1))
        canvas[120:589, 40 + shift:509 + shift] = astronaut
        canvas[130:599, 760 - shift:1160 - shift] = grace
        writer.write(canvas)
    writer.release()
    return path


# --- parts (each in its own interpreter) -----------------------------------------------


def part_load(env: dict[str, str], repeat: int) -> None:
    for project in ("big", "conv"):
        load_one(env, project, repeat)


def load_one(env: dict[str, str], project: str, repeat: int) -> None:
    import onnxruntime as ort

    from ffswap.locked import LockedModels
    from ffswap.sessions import CPU, make_checked_session, make_session, session_options

    ctx = context(Path(env[project]), Path(env["home"]))
    models = LockedModels(ctx)
    lock = ctx.require_lock().module("face_swapper")
    digest, size = lock.files[0].digest, lock.files[0].size
    path = ctx.store.blobs.path(digest)
    print(f"model: {lock.model} {lock.version}, {mib(size)}, store file {path.name[:12]}...")

    def plain() -> object:
        return ort.InferenceSession(str(path), sess_options=session_options(), providers=[CPU])

    def verified() -> object:
        loaded = models.load("face_swapper", deferred_check=True)
        return make_checked_session(loaded, "cpu")[0]

    def check_then_build() -> object:
        loaded = models.load("face_swapper")
        return make_session(loaded.data, "cpu")[0]

    for action in (plain, verified, check_then_build):  # warm the page cache and onnxruntime
        action()
    plain_times, verified_times, sequential_times = [], [], []
    for _ in range(repeat):  # interleaved, so drift hits all equally
        plain_times += median_times(plain, 1)
        verified_times += median_times(verified, 1)
        sequential_times += median_times(check_then_build, 1)
    ratio = statistics.median(verified_times) / statistics.median(plain_times)
    verdict = "PASS" if ratio <= 1.15 else "MISS"
    print(f"  plain InferenceSession(path)          {fmt_times(plain_times)}")
    print(f"  verified load (the Runtime's path)    {fmt_times(verified_times)}")
    print(f"  ratio verified/plain: {ratio:.2f}x  (target <= 1.15x: {verdict})")
    print(f"  check, then build (diagnostic)        {fmt_times(sequential_times)}  = "
          f"{statistics.median(sequential_times) / statistics.median(plain_times):.2f}x")

    blobs = ctx.store.blobs
    data = blobs.read_unchecked(digest)
    parts = {
        "read (the store's private mapping)": lambda: blobs.read_unchecked(digest),
        "read_bytes (a fresh bytes, diagnostic)": lambda: path.read_bytes(),
        "sha256 of the bytes": lambda: hashlib.sha256(data).digest(),
        "make_session (graph + weight views)": lambda: make_session(data, "cpu")[0],
    }
    results = {label: statistics.median(median_times(action, repeat))
               for label, action in parts.items()}
    load_only = statistics.median(median_times(lambda: models.load("face_swapper"), repeat))
    results["manifest checks (load minus blob read)"] = max(
        0.0, load_only - results["read (the store's private mapping)"] - results["sha256 of the bytes"])
    print("  parts (medians):")
    for label, seconds in results.items():
        print(f"    {label:40s} {seconds * 1000:7.1f} ms")
    print(f"    {'LockedModels.load total':40s} {load_only * 1000:7.1f} ms")
    gbps = size / results["sha256 of the bytes"] / 1e9
    print(f"  sha256 runs at {gbps:.2f} GB/s; the verified path costs at least the read plus "
          "the longer of hashing and building")


def part_pipeline(env: dict[str, str], frames: int, profile: bool, workers: int | None) -> None:
    import cv2

    import ffstore.fsutil
    from ffswap.locked import LockedModels
    from ffswap.runtime import FRAME_WORKERS, Runtime

    workdir = Path(env["home"]).parent
    clip = make_clip(workdir / "clip720.avi", frames)
    source = cv2.imread(str(GRACE_HOPPER))
    ctx = context(Path(env["main"]), Path(env["home"]))
    workers = workers or FRAME_WORKERS
    threads = os.cpu_count()
    print(f"clip: {frames} frames 1280x720 MJPG, 2 faces per frame; CPU, {threads} cores")
    for label, versions in (("detector+recogniser+swapper", {}),
                            ("  + enhancer (as `ff swap` runs)", {"face_enhancer": None})):
        with Runtime(LockedModels(ctx), versions, execution_provider="cpu") as runtime:
            name_sessions(runtime)
            output = workdir / "clip-out.avi"
            runtime.swap_video(source, clip, output, workers=workers)  # warm-up
            with timed_runs() as spent, timed_frames() as in_frames, \
                    timed_function(ffstore.fsutil, "commit") as fsync:
                start = time.perf_counter()
                result = runtime.swap_video(source, clip, output, workers=workers)
                wall = time.perf_counter() - start
            assert result.frames == frames, result
            inside = spent.covered()
            outside = 1 - inside / wall
            verdict = "PASS" if outside < 0.20 else "MISS"
            print(f"  {label:34s} {frames / wall:6.1f} fps  ({wall * 1000 / frames:.1f} ms/frame, "
                  f"{result.swapped_frames} frames swapped, {workers} frame workers)")
            print(f"    a session.run in progress {inside / wall:5.1%} of wall; none "
                  f"{outside:5.1%} (target < 20%: {verdict})")
            glue = in_frames[0] - spent.total()
            print(f"      thread time per frame: in models {spent.total() * 1000 / frames:.1f} ms, "
                  f"pre/post-processing {glue * 1000 / frames:.1f} ms; outside the frame function "
                  f"(wall): committing the output {fsync[0] / wall:5.1%}, the rest is the source "
                  "face, open/close and waiting on decode/encode")
            for module, (seconds, calls) in sorted(spent.per_model.items()):
                print(f"      {module:16s} {seconds * 1000 / calls:6.2f} ms/run  x{calls}")
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                runtime.swap_video(source, clip, output, workers=workers)
                profiler.disable()
                stream = io.StringIO()
                stats = pstats.Stats(profiler, stream=stream)
                stats.sort_stats("tottime").print_stats(14)
                print("    cProfile (inference thread; decode/encode threads are not profiled), "
                      "by own time:")
                for line in stream.getvalue().splitlines():
                    if line.strip() and not line.startswith(("   Ordered", "         ")):
                        print(f"      {line.rstrip()[:150]}")


def part_switch(env: dict[str, str], switches: int) -> None:
    import cv2

    from ffswap.locked import LockedModels
    from ffswap.runtime import Runtime

    ctx = context(Path(env["main"]), Path(env["home"]))
    size = ctx.require_lock().module("face_swapper").files[0].size
    source = cv2.resize(cv2.imread(str(ASTRONAUT)), (256, 256), interpolation=cv2.INTER_AREA)
    target = cv2.resize(cv2.imread(str(GRACE_HOPPER)), (256, 300), interpolation=cv2.INTER_AREA)
    print(f"swapper: {mib(size)} per version, {switches} switches between 1.1.0 and 1.0.0 "
          "(one frame after each)")
    start_rss = rss()
    with Runtime(LockedModels(ctx), execution_provider="cpu") as runtime:
        runtime.swap_image(source, target)
        runtime.switch("face_swapper", "1.0.0")  # both versions' first-use costs paid
        runtime.switch("face_swapper", "1.1.0")
        runtime.swap_image(source, target)
        trim()
        baseline = rss()
        hwm_reset = reset_peak_rss()
        sampled_peak = baseline
        times = []
        for index in range(switches):
            begin = time.perf_counter()
            runtime.switch("face_swapper", ("1.0.0", "1.1.0")[index % 2])
            times.append(time.perf_counter() - begin)
            runtime.swap_image(source, target)
            sampled_peak = max(sampled_peak, rss())
        peak = _proc_status("VmHWM") if hwm_reset else sampled_peak
        final = rss()
        trim()
        final_trimmed = rss()
    growth = final - baseline
    verdict = "PASS" if growth < size else "MISS"
    print(f"  before the runtime   {mib(start_rss)}")
    print(f"  baseline             {mib(baseline)}  (runtime with one {mib(size)} swapper loaded)")
    print(f"  peak                 {mib(peak)}  (+{mib(peak - baseline)}; "
          f"{'kernel high-water mark' if hwm_reset else 'sampled after each switch'})")
    print(f"  final                {mib(final)}  ({growth / MIB:+.1f} MiB; after gc+trim "
          f"{mib(final_trimmed)}) -> no growth over {switches} switches: {verdict}")
    print(f"  switch time          {fmt_times(times)}")


# --- driver ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load-mib", type=int, default=100)
    parser.add_argument("--switch-mib", type=int, default=64)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--workers", type=int, default=None,
                        help="frame workers for the pipeline (default: the Runtime's)")
    parser.add_argument("--switches", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile the frame loop too")
    parser.add_argument("--parts", nargs="+", choices=["load", "pipeline", "switch"],
                        default=["load", "pipeline", "switch"], help="which parts to run")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    parser.add_argument("--part", choices=["load", "pipeline", "switch"], help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    if args.part is not None:  # a child: one part, in a fresh interpreter
        env = json.loads(args.env)
        {"load": lambda: part_load(env, args.repeat),
         "pipeline": lambda: part_pipeline(env, args.frames, args.profile, args.workers),
         "switch": lambda: part_switch(env, args.switches)}[args.part]()
        return

    import cv2
    import numpy

    print(f"bench_runtime: python {platform.python_version()}, onnxruntime {ort.__version__}, "
          f"opencv {cv2.__version__}, numpy {numpy.__version__}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
          f"load average {os.getloadavg()[0]:.1f} (other work on the machine skews timings)")
    workdir = Path(tempfile.mkdtemp(prefix="ff-bench-runtime-", dir=args.dir))
    try:
        start = time.perf_counter()
        env = setup(workdir, args.load_mib, args.switch_mib)
        print(f"setup (generate, publish, lock, sync): {time.perf_counter() - start:.1f} s\n")
        titles = {"load": f"(a) verified load, {args.load_mib} MiB models",
                  "pipeline": "(b) pipeline on a 720p clip",
                  "switch": f"(c) memory across {args.switches} hot switches"}
        for part, title in titles.items():
            if part not in args.parts:
                continue
            print(title)
            sys.stdout.flush()
            command = [sys.executable, __file__, "--part", part, "--env", json.dumps(env),
                       "--repeat", str(args.repeat), "--frames", str(args.frames),
                       "--switches", str(args.switches), *(["--profile"] if args.profile else []),
                       *(["--workers", str(args.workers)] if args.workers else [])]
            subprocess.run(command, check=True)
            print()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
