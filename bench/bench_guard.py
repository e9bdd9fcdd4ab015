"""Benchmark what a guarded run costs: `Runtime.swap_video` on the 720p clip of
bench_runtime.py (two faces per frame, CPU) with a guard (ffswap.guard) against the
same run without one, through the real store (publish -> lock -> sync -> verified
load). The guarded run includes loading the previous version's reference session.
Runs are interleaved so drift on a shared machine hits both alike; the figure is the
ratio of the medians (target <= 1.15x). The release is a good one: a trip here would
be a false one, and fails the benchmark.

  python bench/bench_guard.py [--frames 60] [--repeat 5] [--workers N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_runtime import GRACE_HOPPER, YUNET, context, ff, make_clip, write_toml


def setup(workdir: Path) -> tuple[Path, Path]:
    """A store and a project locked at standin_inswapper 1.1.0, with 1.0.0 before it."""
    from tests import standins

    home, registry, project = workdir / "home", workdir / "registry", workdir / "project"
    key_id = ff(home, workdir, "key", "generate", "bench").strip()
    for model, version, module, make in (
        ("yunet", "2026.5.0", "face_detector", YUNET.read_bytes),
        ("standin_arcface", "1.0.0", "face_recognizer", standins.face_recognizer),
        ("standin_inswapper", "1.0.0", "face_swapper", lambda: standins.face_swapper(0, 0.6)),
        ("standin_inswapper", "1.1.0", "face_swapper", lambda: standins.face_swapper(1, 0.8)),
        ("standin_gfpgan", "1.4.0", "face_enhancer", standins.face_enhancer),
    ):
        path = workdir / "files" / model / version / "model.onnx"
        path.parent.mkdir(parents=True)
        path.write_bytes(make())
        ff(home, workdir, "publish", str(path), "--registry", str(registry), "--model", model,
           "--version", version, "--module", module, "--key", "bench")
    write_toml(project, registry, key_id, {
        "face_detector": ("yunet", ">=2026"), "face_recognizer": ("standin_arcface", ">=1"),
        "face_swapper": ("standin_inswapper", ">=1,<2"), "face_enhancer": ("standin_gfpgan", ">=1"),
    })
    ff(home, project, "lock")
    ff(home, project, "sync")
    return home, project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="frame workers (default: the Runtime's)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    args = parser.parse_args()

    import cv2
    import onnxruntime as ort

    from ffstore.lock_changes import previous_version
    from ffswap.guard import SAMPLE_EVERY, Guard, Trip
    from ffswap.locked import LockedModels
    from ffswap.runtime import FRAME_WORKERS, Runtime

    ort.set_default_logger_severity(3)
    workers = args.workers or FRAME_WORKERS
    print(f"bench_guard: python {platform.python_version()}, onnxruntime {ort.__version__}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    workdir = Path(tempfile.mkdtemp(prefix="ff-bench-guard-", dir=args.dir))
    try:
        home, project = setup(workdir)
        ctx = context(project, home)
        fallback = previous_version(ctx, "face_swapper").version
        clip = make_clip(workdir / "clip720.avi", args.frames)
        source = cv2.imread(str(GRACE_HOPPER))
        print(f"clip: {args.frames} frames 1280x720 MJPG, 2 faces per frame; CPU, {workers} frame "
              f"workers; guard: face_swapper 1.1.0 against {fallback}, costly checks on every "
              f"{SAMPLE_EVERY}th frame (and the first ones)")
        trips: list[Trip] = []
        failed = False

        def run(runtime: Runtime, guarded: bool) -> float:
            guard = Guard("face_swapper", fallback, trips.append) if guarded else None
            start = time.perf_counter()
            runtime.swap_video(source, clip, workdir / "out.avi", workers=workers, guard=guard)
            return time.perf_counter() - start

        for label, versions in (("detector+recogniser+swapper", {}),
                                ("  + enhancer (as `ff swap` runs)", {"face_enhancer": None})):
            with Runtime(LockedModels(ctx), versions, execution_provider="cpu") as runtime:
                run(runtime, False), run(runtime, True)  # warm-up: first-run costs paid by both
                plain, guarded = [], []
                for _ in range(args.repeat):
                    plain.append(run(runtime, False))
                    guarded.append(run(runtime, True))
            ratio = statistics.median(guarded) / statistics.median(plain)
            verdict = "PASS" if ratio <= 1.15 and not trips else "MISS"
            failed = failed or verdict == "MISS"
            print(f"  {label:34s} unguarded {statistics.median(plain) * 1000 / args.frames:6.1f} "
                  f"ms/frame, guarded {statistics.median(guarded) * 1000 / args.frames:6.1f} "
                  f"ms/frame: {ratio:.3f}x (target <= 1.15x: {verdict}); runs (s): unguarded "
                  f"{' '.join(f'{t:.2f}' for t in plain)}, guarded "
                  f"{' '.join(f'{t:.2f}' for t in guarded)}")
        if trips:
            print(f"  false trips: {trips}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
