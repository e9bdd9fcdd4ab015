"""Benchmark `ff sync` over HTTP against curl (and DVC when installed).

Generates a model set of random files (default 1 GiB: 512 MiB + 2 x 256 MiB, three
models in three modules), publishes it into a temporary registry, serves that with
`ff serve` on loopback and times, as whole commands:

  curl        the same files fetched to disk, one after another, in parallel, and
              in parallel followed by fsync (ff makes every blob durable)
  cold sync   `ff sync` into an empty store (target: <= 1.3 x the faster curl)
  warm sync   `ff sync` with everything present (target: < 0.3 s at any size)
  dvc pull    the same files from a DVC HTTP remote on the same server, if dvc runs

Usage: python bench/bench_http_sync.py [--size-mib 1024] [--runs 3] [--dvc PATH]
                                       [--ff-python PATH]

--ff-python runs ff with another interpreter, such as a venv with ff installed as
users install it (`pip install .`): a development venv adds an editable-install
finder and test tools (pytest's pygments, which httpx then imports) to every start.
"""

import argparse
import hashlib
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

FF = [sys.executable, "-m", "ffstore"]
# Shares of the size, in module kinds ff swap leaves to FaceFusion: ff lock refuses
# random bytes as a face_swapper, face_enhancer or face_detector (they are not ONNX).
MODULES = (("frame_enhancer", 2), ("lip_syncer", 1), ("face_masker", 1))


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


class Timing(NamedTuple):
    wall: list[float]
    cpu: list[float]  # user + system seconds of the command: what a busy machine distorts least


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(timing: Timing, prepare: Callable[[], None], command: list[str], cwd: Path,
          env: dict[str, str]) -> None:
    """Add one run of `command` to `timing`, after `prepare` (not timed) and a pause
    that lets the kernel finish freeing what `prepare` deleted."""
    prepare()
    time.sleep(0.5)
    cpu, start = children_cpu(), time.perf_counter()
    run(command, cwd, env)
    timing.wall.append(time.perf_counter() - start)
    timing.cpu.append(children_cpu() - cpu)


def write_random(path: Path, size: int) -> None:
    block = os.urandom(16 << 20)
    with open(path, "wb") as handle:
        for offset in range(0, size, len(block)):
            # vary each block so no two blocks (or files) share content
            handle.write(offset.to_bytes(8, "little") + block[8:min(len(block), size - offset)])


def start_server(directory: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen([*FF, "-q", "serve", str(directory), "--port", "0"], env=env,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, line[line.index("http://"):].split()[0]


def describe(timing: Timing) -> str:
    runs = ", ".join(f"{t:.3f}" for t in timing.wall)
    return (f"median {statistics.median(timing.wall):.3f} s wall, "
            f"{statistics.median(timing.cpu):.2f} s CPU (wall runs: {runs})")


def dvc_pull(dvc: str, work: Path, files: list[Path], url: str, runs: int,
             env: dict[str, str]) -> Timing:
    """A DVC repo tracking the same files, pushed to a local remote inside the served
    directory, then pulled over HTTP from the same server into an empty cache."""
    repo = work / "dvc-repo"
    repo.mkdir()
    dvc_env = {**env, "DVC_NO_ANALYTICS": "1"}
    run(["git", "init", "-q"], repo, dvc_env)
    run([dvc, "init", "-q"], repo, dvc_env)
    for file in files:
        shutil.copy(file, repo / file.name)
    run([dvc, "add", "-q", *(file.name for file in files)], repo, dvc_env)
    run([dvc, "remote", "add", "local", str(work / "registry" / "dvcstore")], repo, dvc_env)
    run([dvc, "push", "-q", "-r", "local"], repo, dvc_env)
    run([dvc, "remote", "add", "-d", "http", url + "dvcstore"], repo, dvc_env)

    def clear() -> None:
        for file in files:
            (repo / file.name).unlink(missing_ok=True)
        shutil.rmtree(repo / ".dvc" / "cache", ignore_errors=True)

    timing = Timing([], [])
    for _round in range(runs):
        timed(timing, clear, [dvc, "pull", "-q", "-r", "http"], repo, dvc_env)
    return timing


def main() -> None:
    command_line(bench, "ff-bench-http-", lambda parser: parser.add_argument(
        "--dvc", default=shutil.which("dvc"), help="dvc executable, if any"))


def command_line(bench: Callable[[Path, argparse.Namespace], None], prefix: str,
                 more: Callable[[argparse.ArgumentParser], object] = lambda _parser: None
                 ) -> None:
    """The options every sync benchmark takes; runs `bench` in a work directory that
    is removed afterwards."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    more(parser)
    parser.add_argument("--ff-python", default=sys.executable,
                        help="interpreter that runs ff (default: this one)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where to put the data (default: a temp dir, removed afterwards)")
    args = parser.parse_args()
    FF[0] = args.ff_python
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=args.workdir))
    try:
        bench(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class ModelSet:
    base: dict[str, str]  # the environment ff runs in
    publisher: dict[str, str]  # ... as the publisher, with a key `bench`
    key_id: str
    files: list[Path]  # one per module of MODULES


def model_set(work: Path, size_mib: int) -> ModelSet:
    """Random model files of `size_mib` in all, in MODULES' shares, and a publisher."""
    total = size_mib << 20
    shares = sum(share for _m, share in MODULES)
    # An installed ff starts from cached bytecode (pip compiles it); a shell that sets
    # PYTHONDONTWRITEBYTECODE would add the compiling of ff's modules to every command.
    base = {name: value for name, value in os.environ.items()
            if name != "PYTHONDONTWRITEBYTECODE"}
    base["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    publisher = {**base, "FF_HOME": str(work / "publisher")}
    key_id = run([*FF, "key", "generate", "bench"], work, publisher).strip()
    files = []
    for module, share in MODULES:
        files.append(work / f"{module}.bin")
        write_random(files[-1], total * share // shares)
    sizes = ", ".join(f"{file.stat().st_size >> 20} MiB" for file in files)
    print(f"model set: {len(files)} files ({sizes}); {os.cpu_count()} CPUs; ff run by {FF[0]}")
    return ModelSet(base, publisher, key_id, files)


def publish_command(file: Path, module: str, registry: str) -> list[str]:
    return [*FF, "publish", str(file), "--registry", registry, "--model", f"bench_{module}",
            "--version", "1.0.0", "--module", module, "--key", "bench"]


def bench(work: Path, args: argparse.Namespace) -> None:
    models = model_set(work, args.size_mib)
    total = args.size_mib << 20
    base, publisher, key_id, files = models.base, models.publisher, models.key_id, models.files
    for file, (module, _share) in zip(files, MODULES, strict=True):
        run(publish_command(file, module, str(work / "registry")), work, publisher)
    server, url = start_server(work / "registry", publisher)
    try:
        blob_urls = [f"{url}blobs/sha256/{hex_digest(file)}" for file in files]
        downloads = work / "curl"
        downloads.mkdir()
        curl_args = [arg for index, blob in enumerate(blob_urls)
                     for arg in ("-o", str(downloads / f"{index}.bin"), blob)]

        def clear_downloads() -> None:
            for path in downloads.iterdir():
                path.unlink()

        project = work / "project"
        project.mkdir()
        (project / "facefusion.toml").write_text(
            f'[registries]\ndefault = "{url}"\n\n[trust]\nkeys = ["{key_id}"]\n\n[modules]\n'
            + "".join(f'{module} = {{ model = "bench_{module}", version = ">=1" }}\n'
                      for module, _share in MODULES))
        client = {**base, "FF_HOME": str(work / "client")}
        run([*FF, "lock"], project, client)
        # Every contender runs once per round, so drift on a shared VM (other tenants,
        # memory reclaim after the previous run's GiB was deleted) hits all alike.
        contenders: dict[str, tuple[Callable[[], None], list[str], Path, dict[str, str]]] = {}
        if shutil.which("curl"):
            contenders["curl (sequential)"] = (clear_downloads, ["curl", "-sSf", *curl_args],
                                               work, publisher)
            contenders["curl --parallel"] = (clear_downloads, ["curl", "-sSfZ", *curl_args],
                                             work, publisher)
            # like for like: ff makes each blob durable (fsync) before it counts as stored
            outputs = [str(downloads / f"{index}.bin") for index in range(len(blob_urls))]
            contenders["curl --parallel+fsync"] = (
                clear_downloads, ["sh", "-c", f"{shlex.join(['curl', '-sSfZ', *curl_args])} && "
                                              f"{shlex.join(['sync', *outputs])}"],
                work, publisher)
        # Cold: an empty store, as on a new machine (index, manifests and blobs fetched).
        contenders["ff sync, cold"] = (lambda: shutil.rmtree(work / "client", True),
                                       [*FF, "-q", "sync"], project, client)
        results = {name: Timing([], []) for name in contenders}
        for _round in range(args.runs):
            for name, (prepare, command, cwd, env) in contenders.items():
                timed(results[name], prepare, command, cwd, env)
        results["ff sync, warm"] = Timing([], [])
        for _round in range(max(args.runs, 5)):
            timed(results["ff sync, warm"], lambda: None, [*FF, "-q", "sync"], project, client)
        if args.dvc:
            results["dvc pull"] = dvc_pull(args.dvc, work, files, url, args.runs, publisher)
    finally:
        server.terminate()
        server.wait()
    report(results, total)


def hex_digest(file: Path) -> str:
    with open(file, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def report(results: dict[str, Timing], total: int) -> None:
    for name, timing in results.items():
        rate = total / statistics.median(timing.wall) / (1 << 20)
        extra = "" if "warm" in name else f", {rate:.0f} MiB/s"
        print(f"{name:<22} {describe(timing)}{extra}")
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    # Medians of interleaved rounds, and best runs: on a shared VM noise only ever adds
    # time, so the best run of each says what the software can do.
    for label, pick in (("median", statistics.median), ("best", min)):
        cold = pick(results["ff sync, cold"].wall)
        curls = {name: pick(t.wall) for name, t in results.items() if name.startswith("curl")}
        if curls:
            durable = curls.pop("curl --parallel+fsync")
            ratio = cold / min(curls.values())
            print(f"{label}: cold ff sync / fastest curl: {ratio:.2f}x wall (target <= 1.3x: "
                  f"{'met' if ratio <= 1.3 else 'NOT met'}); / curl+fsync: {cold / durable:.2f}x")
        else:
            print("curl: not installed")
        if "dvc pull" in results:
            print(f"{label}: cold ff sync / dvc pull: {cold / pick(results['dvc pull'].wall):.2f}x")
    if "dvc pull" not in results:
        print("dvc: not installed")
    warm = statistics.median(results["ff sync, warm"].wall)
    print(f"warm ff sync: {warm:.3f} s (target < 0.3 s: {'met' if warm < 0.3 else 'NOT met'})")


if __name__ == "__main__":
    main()
