"""Benchmark `ff compare` against what it replaces: two separate `ff swap` runs, one
per version, on the same clip (a 1280x720 MJPG clip with two faces per frame, stand-in
swapper 1.0.0 against 1.1.0, with the enhancer), each a real `ff` process as a user or
CI would start it. Rounds are interleaved so drift on a shared machine hits both alike.

Reported per round and as medians: wall time of `ff compare` (both versions, all
metrics, the JSON summary), of the two `ff swap` runs together, both as frames per
second over the 2 x N frames swapped, and their ratio; once with `ff swap`'s default
frame workers and once with `--execution-threads 1`, which is how compare runs
frames (one at a time, so each frame's time is its own); and the share of compare's
wall time inside the timed swaps (from its JSON), the rest being the metrics, the
second decode and start-up; and the fixed cost of each (a 1-frame clip: interpreter
start, imports, model loads), with the cost per frame beyond it.

  python bench/bench_compare.py [--frames 60] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import GRACE_HOPPER, YUNET, ff, make_clip, write_toml


def setup(workdir: Path) -> tuple[Path, Path, Path]:
    """One registry and store; project `old` locks the swapper at 1.0.0, `new` at 1.1.0."""
    from tests import standins

    home, registry = workdir / "home", workdir / "registry"
    key_id = ff(home, workdir, "key", "generate", "bench").strip()
    releases = [
        ("yunet", "2026.5.0", "face_detector", YUNET.read_bytes()),
        ("standin_arcface", "1.0.0", "face_recognizer", standins.face_recognizer(0)),
        ("standin_inswapper", "1.0.0", "face_swapper", standins.face_swapper(0, 0.6)),
        ("standin_inswapper", "1.1.0", "face_swapper", standins.face_swapper(0, 0.65)),
        ("standin_gfpgan", "1.4.0", "face_enhancer", standins.face_enhancer(0)),
    ]
    for model, version, module, data in releases:
        path = workdir / "files" / model / version / f"{model}.onnx"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        ff(home, workdir, "publish", str(path), "--registry", str(registry), "--model", model,
           "--version", version, "--module", module, "--key", "bench")
    for name, swapper in (("old", ">=1,<1.1"), ("new", ">=1,<2")):
        write_toml(workdir / name, registry, key_id, {
            "face_detector": ("yunet", ">=2026"), "face_recognizer": ("standin_arcface", ">=1"),
            "face_swapper": ("standin_inswapper", swapper),
            "face_enhancer": ("standin_gfpgan", ">=1")})
        ff(home, workdir / name, "lock")
        ff(home, workdir / name, "sync")
    return home, workdir / "old", workdir / "new"


def run_ff(home: Path, project: Path, *args: str, ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of one `ff` process (interpreter start-up included, as a user pays it)."""
    env = {**os.environ, "FF_HOME": str(home), "ORT_LOG_SEVERITY_LEVEL": "3"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ffstore", "-q", *args], cwd=project, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in ok:
        sys.exit(f"ff {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary directory")
    args = parser.parse_args()

    import onnxruntime as ort

    print(f"bench_compare: python {platform.python_version()}, onnxruntime {ort.__version__}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    workdir = Path(tempfile.mkdtemp(prefix="ff-bench-compare-", dir=args.dir))
    try:
        home, old, new = setup(workdir)
        clip = make_clip(workdir / "clip.avi", args.frames)
        one = make_clip(workdir / "one.avi", 1)
        summary = workdir / "compare.json"

        def compare(target: Path) -> float:
            return run_ff(home, new, "compare", "face_swapper", "--from", "1.0.0", "--to", "1.1.0",
                          "--source", str(GRACE_HOPPER), "--inputs", str(target), "--max-frames",
                          str(args.frames), "--json", str(summary), ok=(0, 1))

        def swaps(target: Path, *extra: str) -> float:
            return sum(run_ff(home, project, "swap", "--source", str(GRACE_HOPPER), "--target",
                              str(target), "--output", str(workdir / f"out-{project.name}.avi"),
                              *extra) for project in (old, new))

        rows: dict[str, list[float]] = {"compare": [], "swap x2": [], "swap x2, 1 worker": []}
        fixed: dict[str, list[float]] = {"compare": [], "swap x2": []}
        inside: list[float] = []
        for round_ in range(args.rounds):
            rows["compare"].append(compare(clip))
            frames = [frame for entry in json.loads(summary.read_text())["inputs"]
                      for frame in entry["per_frame"]]
            swapping = sum(f[side]["ms_per_frame"] for f in frames for side in ("from", "to"))
            inside.append(swapping / 1000 / rows["compare"][-1])
            rows["swap x2"].append(swaps(clip))
            rows["swap x2, 1 worker"].append(swaps(clip, "--execution-threads", "1"))
            fixed["compare"].append(compare(one))
            fixed["swap x2"].append(swaps(one))
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items())
                  + "; one frame: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in fixed.items()))
        swapped = 2 * args.frames
        medians = {label: statistics.median(times) for label, times in rows.items()}
        print(f"\n{args.frames} frames of 1280x720, 2 faces each, with the enhancer; "
              f"medians of {args.rounds} rounds:")
        for label, wall in medians.items():
            print(f"  {label:18s} {wall:6.2f} s  {swapped / wall:5.1f} frames/s")
        for label in ("swap x2", "swap x2, 1 worker"):
            print(f"  compare / {label}: {medians['compare'] / medians[label]:.2f}x the time "
                  f"({medians[label] / medians['compare']:.2f}x the throughput)")
        once = {label: statistics.median(times) for label, times in fixed.items()}
        print(f"  fixed cost (a 1-frame clip): compare {once['compare']:.2f} s, "
              f"swap x2 {once['swap x2']:.2f} s; per frame beyond it: "
              f"compare {(medians['compare'] - once['compare']) / (args.frames - 1) * 1000:.0f} ms, "
              f"swap x2 {(medians['swap x2'] - once['swap x2']) / (args.frames - 1) * 1000:.0f} ms")
        print(f"  share of compare's wall time in the timed swaps: {statistics.median(inside):.0%}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
