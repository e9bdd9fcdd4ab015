"""Benchmark `ff ui`'s live switch: does memory stay put across many switches made
from the page?

Publishes a model set with two versions of a padded stand-in swapper (`--switch-mib`
each, so a leaked session would show), locks and syncs a project, starts the real
`ff ui --port 0` as its own process, and drives it over HTTP as the browser does:
the token URL once (for the cookie), then per switch a POST of the Switch live form
and a GET of the page it redirects to. Two warm-up switches build the Runtime and pay
each version's first use; the server's RSS (/proc/PID/status) is taken after them and
after `--switches` more, alternating 1.0.0 and 1.1.0. Target: the end within 10 % of
the start. Usage:

  python bench/bench_ui.py [--switch-mib 64] [--switches 50] [--execution-provider cpu]
                           [--dir DIR]
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_runtime import MIB, YUNET, ff, fmt_times, mib, write_toml

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ("1.0.0", "1.1.0")


def setup(workdir: Path, switch_mib: int) -> tuple[Path, Path]:
    """A synced project over a registry with both swapper versions: (home, project)."""
    from tests import standins

    home, registry, project = workdir / "home", workdir / "registry", workdir / "project"
    key_id = ff(home, workdir, "key", "generate", "bench").strip()
    releases = [("yunet", "2026.5.0", "face_detector", YUNET.name, YUNET.read_bytes()),
                ("standin_arcface", "1.0.0", "face_recognizer", "arcface.onnx",
                 standins.face_recognizer()),
                *(("standin_inswapper", version, "face_swapper", "inswapper_128.onnx",
                   standins.face_swapper(variant, 0.7, size=switch_mib * MIB))
                  for variant, version in enumerate(VERSIONS)),
                ("standin_gfpgan", "1.4.0", "face_enhancer", "gfpgan.onnx", standins.face_enhancer())]
    for model, version, module, name, data in releases:
        path = workdir / "files" / model / version / name
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        ff(home, workdir, "publish", str(path), "--registry", str(registry), "--model", model,
           "--version", version, "--module", module, "--key", "bench")
        path.unlink()
    write_toml(project, registry, key_id, {"face_detector": ("yunet", ">=2026"),
                                           "face_recognizer": ("standin_arcface", ">=1"),
                                           "face_swapper": ("standin_inswapper", ">=1,<2"),
                                           "face_enhancer": ("standin_gfpgan", ">=1")})
    ff(home, project, "lock")
    ff(home, project, "sync")
    return home, project


def server_rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def run(home: Path, project: Path, switches: int, switch_mib: int, provider: str) -> bool:
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "ffstore", "--home", str(home), "--project", str(project), "ui",
         "--port", "0", "--execution-provider", provider], stdout=subprocess.PIPE, text=True,
        cwd=REPO)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().removeprefix("ff ui: ")
        base = url.split("/?", 1)[0]
        with httpx.Client(base_url=base, timeout=60) as client:
            client.get(url)  # the token for the cookie

            def switch(version: str) -> str:
                answer = client.post("/switch", data={"module": "face_swapper",
                                                      "version": version})
                if answer.status_code != 303:
                    sys.exit(f"switch to {version} refused ({answer.status_code}): "
                             f"{re.findall(r'error: [^<]*', answer.text)}")
                page = client.get(answer.headers["location"])  # as the browser follows it
                return html.unescape(re.search(r'class="ok">([^<]*)', page.text)[1])  # type: ignore[index]

            before_models = server_rss(server.pid)
            for version in VERSIONS:  # the Runtime built, each version's first use paid
                switch(version)
            start = server_rss(server.pid)
            times, said = [], ""
            for index in range(switches):
                begin = time.perf_counter()
                said = switch(VERSIONS[index % 2])
                times.append(time.perf_counter() - begin)
            end = server_rss(server.pid)
            peak = server_rss(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    ratio = end / start
    ok = ratio <= 1.10
    print(f"swapper: {switch_mib} MiB per version, {switches} switches "
          f"between {' and '.join(VERSIONS)} from the page (POST + the page it redirects to)")
    print(f"  server before models {mib(before_models)}")
    print(f"  start                {mib(start)}  (after 2 warm-up switches)")
    print(f"  end                  {mib(end)}  ({(end - start) / MIB:+.1f} MiB)")
    print(f"  peak (VmHWM)         {mib(peak)}")
    print(f"  end / start          {ratio:.3f}  (target <= 1.10): {'PASS' if ok else 'MISS'}")
    print(f"  switch + page        {fmt_times(times)}")
    print(f"  last page said       {said}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--switch-mib", type=int, default=64)
    parser.add_argument("--switches", type=int, default=50)
    parser.add_argument("--execution-provider", default="cpu", choices=["cpu", "cuda", "auto"],
                        help="on CUDA the page also reports GPU memory (last line)")
    parser.add_argument("--dir", type=Path, default=None, help="work here (kept) instead of a temp dir")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="ff-bench-ui-"))
    try:
        home, project = setup(workdir, args.switch_mib)
        ok = run(home, project, args.switches, args.switch_mib, args.execution_provider)
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
