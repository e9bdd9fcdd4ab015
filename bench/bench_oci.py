"""Benchmark `ff sync` from an OCI registry against curl and a durable write, and the
second `ff publish` of the same bytes to another repository (issue #13).

Generates a model set as bench_http_sync.py does (default 1 GiB: 512 MiB + 2 x 256
MiB of random bytes, three models in three modules), starts the Distribution
registry (docker-registry) on 127.0.0.1 with its storage in the work directory,
and times, as whole commands:

  publish      the set to oci://HOST/bencha, then the same files to oci://HOST/benchb
               with the same FF_HOME, both through a TCP proxy on 127.0.0.1 that counts
               the bytes ff sends: the second must send no blob (the registry mounts
               each blob from bencha), only headers and small documents
  curl         the blob URLs (/v2/bencha/<model>/blobs/<digest>), fetched in parallel
               into the filesystem of ff's store
  durable write  the same bytes written to files in that filesystem and fsynced: by
               `cp` (copy_file_range), and by `dd bs=4M conv=fsync` per file in
               parallel (read and write, as ff writes); the faster one counts
  curl | tee | sha256  the same, each through OpenSSL's SHA-256 on the way: what
               verifying the bytes (which ff does and curl does not) costs any client
  cold sync    `ff sync` from oci://HOST/bencha into an empty store, the same lock
               every round (target: <= 1.3 x the limit, max(curl, durable write))
  warm sync    `ff sync` with everything present (target: < 0.3 s)

The proxy stands for the registry in both publishes, not only the second: ff
remembers per registry host (HOST:PORT) which repository holds each blob, as
Docker's blob cache does, and a proxy on its own port is another host to it.

Usage: python bench/bench_oci.py [--size-mib 1024] [--runs 3] [--ff-python PATH]
                                 [--workdir DIR]

--workdir puts everything (the registry's storage, the store, curl's and cp's
output) there: a tmpfs such as /dev/shm measures the software, the default temp
dir (on disk) includes the disk's durable-write rate.
"""

import argparse
import os
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.oci_registry
from bench_http_sync import (
    FF,
    MODULES,
    Timing,
    command_line,
    describe,
    hex_digest,
    model_set,
    publish_command,
    run,
    timed,
)

from tests.oci_registry import RegistryProxy, distribution


def in_parallel(commands: list[str]) -> str:
    """A shell script running `commands` at once; it fails if any of them fails."""
    started = " ".join(f"{command} & p{index}=$!;" for index, command in enumerate(commands))
    return started + " && ".join(f" wait $p{index}" for index in range(len(commands)))


def registry_cpu() -> float:
    """User + system seconds of the registry (this process's docker-registry child) so
    far: what serving each contender cost on the same two cores."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        fields = rest.split()
        if name.endswith("(docker-registry") and int(fields[1]) == os.getpid():
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def publish_all(files: list[Path], location: str, env: dict[str, str], work: Path
                ) -> tuple[float, list[str]]:
    """Publish the set to `location`: the wall time and what ff said it added."""
    start, said = time.perf_counter(), []
    for file, (module, _share) in zip(files, MODULES, strict=True):
        out = run(publish_command(file, module, location), work, env)
        said.append(out.strip().rpartition(", ")[2].removesuffix(" added"))
    return time.perf_counter() - start, said


def main() -> None:
    command_line(bench, "ff-bench-oci-")


def bench(work: Path, args: argparse.Namespace) -> None:
    total = args.size_mib << 20
    models = model_set(work, args.size_mib)
    base, publisher, key_id, files = models.base, models.publisher, models.key_id, models.files
    with distribution(work / "registry") as server:
        proxy = RegistryProxy(server.host, upload=True)
        try:
            pushes = []
            for repository in ("bencha", "benchb"):
                wall, said = publish_all(files, f"oci://{proxy.host}/{repository}", publisher,
                                         work)
                pushes.append((repository, wall, said, *proxy.take()))
        finally:
            proxy.close()
        results, serving = sync_rounds(work, args, server.host, files, key_id, base)
    report(results, serving, total, pushes)


def sync_rounds(work: Path, args: argparse.Namespace, host: str, files: list[Path],
                key_id: str, base: dict[str, str]
                ) -> tuple[dict[str, Timing], dict[str, list[float]]]:
    blob_urls = [f"http://{host}/v2/bencha/bench_{module}/blobs/sha256:{hex_digest(file)}"
                 for file, (module, _share) in zip(files, MODULES, strict=True)]
    downloads, copies = work / "curl", work / "cp"
    downloads.mkdir()
    copies.mkdir()

    def clearing(directory: Path) -> Callable[[], None]:
        def clear() -> None:
            for path in directory.iterdir():
                path.unlink()
        return clear

    curl_args = [arg for index, url in enumerate(blob_urls)
                 for arg in ("-o", str(downloads / f"{index}.bin"), url)]
    copied = [str(copies / file.name) for file in files]
    dd = in_parallel([shlex.join(["dd", f"if={file}", f"of={copy}", "bs=4M", "conv=fsync",
                                  "status=none"]) for file, copy in zip(files, copied, strict=True)])
    # What verifying costs any client: curl's bytes through tee into OpenSSL's SHA-256.
    hashed = in_parallel([f"curl -sSf {shlex.quote(url)} | tee {downloads / f'{index}.bin'} | "
                          "openssl dgst -sha256 >/dev/null" for index, url in enumerate(blob_urls)])
    project = work / "project"
    project.mkdir()
    (project / "facefusion.toml").write_text(
        f'[registries]\ndefault = "oci://{host}/bencha"\n\n[trust]\nkeys = ["{key_id}"]\n\n'
        "[modules]\n" + "".join(f'{module} = {{ model = "bench_{module}", version = ">=1" }}\n'
                                for module, _share in MODULES))
    client = {**base, "FF_HOME": str(work / "client")}
    run([*FF, "lock"], project, client)
    # One run of each per round, rounds interleaved, as bench_http_sync does.
    contenders: dict[str, tuple[Callable[[], None], list[str], Path, dict[str, str]]] = {
        "curl --parallel": (clearing(downloads), ["curl", "-sSfZ", *curl_args], work, base),
        "cp + fsync": (clearing(copies), ["sh", "-c", f"{shlex.join(['cp', *map(str, files), str(copies)])}"
                       f" && {shlex.join(['sync', *copied])}"], work, base),
        "dd + fsync, parallel": (clearing(copies), ["sh", "-c", dd], work, base),
        "curl | tee | sha256": (clearing(downloads), ["sh", "-c", hashed], work, base),
        # Cold: an empty store, as on a new machine (index, manifests and blobs fetched).
        "ff sync, cold": (lambda: shutil.rmtree(work / "client", True), [*FF, "-q", "sync"],
                          project, client),
    }
    results = {name: Timing([], []) for name in contenders}
    serving: dict[str, list[float]] = {name: [] for name in contenders}
    for _round in range(args.runs):
        for name, (prepare, command, cwd, env) in contenders.items():
            before = registry_cpu()
            timed(results[name], prepare, command, cwd, env)
            serving[name].append(registry_cpu() - before)
    results["ff sync, warm"] = Timing([], [])
    for _round in range(max(args.runs, 5)):
        timed(results["ff sync, warm"], lambda: None, [*FF, "-q", "sync"], project, client)
    return results, serving


def report(results: dict[str, Timing], serving: dict[str, list[float]], total: int,
           pushes: list[tuple[str, float, list[str], int, int]]) -> None:
    for repository, wall, said, sent, connections in pushes:
        print(f"publish to {repository:<7} {wall:6.2f} s wall; ff says added: {', '.join(said)}; "
              f"the registry received {sent:,} bytes over {connections} connections "
              f"({sent / total:.6f}x the model set)")
    for name, timing in results.items():
        rate = total / statistics.median(timing.wall) / (1 << 20)
        extra = "" if "warm" in name else f", {rate:.0f} MiB/s"
        print(f"{name:<22} {describe(timing)}{extra}")
    print("registry CPU per run (median): " + ", ".join(
        f"{name} {statistics.median(seconds):.2f} s" for name, seconds in serving.items()
        if "fsync" not in name))
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    # Medians of interleaved rounds, and best runs (noise on a shared VM only adds time).
    for label, pick in (("median", statistics.median), ("best", min)):
        cold = pick(results["ff sync, cold"].wall)
        curl = pick(results["curl --parallel"].wall)
        durable = min(pick(results["cp + fsync"].wall), pick(results["dd + fsync, parallel"].wall))
        ratio = cold / max(curl, durable)
        print(f"{label}: cold ff sync / limit max(curl {curl:.3f}, durable write {durable:.3f}): "
              f"{ratio:.2f}x wall (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}); "
              f"/ curl: {cold / curl:.2f}x; / curl | tee | sha256: "
              f"{cold / pick(results['curl | tee | sha256'].wall):.2f}x")
    warm = statistics.median(results["ff sync, warm"].wall)
    print(f"warm ff sync: {warm:.3f} s (target < 0.3 s: {'met' if warm < 0.3 else 'NOT met'})")
    sent = pushes[1][3]
    print(f"second publish: {sent:,} bytes sent for {total:,} bytes of models "
          f"(target: no blob bytes: {'met' if sent < (1 << 20) else 'NOT met'})")


if __name__ == "__main__":
    main()
