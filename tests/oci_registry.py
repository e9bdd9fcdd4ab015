"""A real OCI registry for the tests: the Distribution registry (`docker-registry`,
the Debian package; .ci/run installs it), started on 127.0.0.1 with its storage in a
temp folder and stopped afterwards. `auth` is the config's `auth` section as a
dict (none: anonymous pushes and pulls), so tests can run it behind htpasswd or a
token service of their own."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REGISTRY = shutil.which("docker-registry")


@dataclass(frozen=True)
class OciServer:
    host: str  # 127.0.0.1:PORT
    storage: Path

    def location(self, repository: str) -> str:
        """The registry location ff takes for `repository` there."""
        return f"oci://{self.host}/{repository}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def distribution(root: Path, auth: dict[str, Any] | None = None) -> Iterator[OciServer]:
    if REGISTRY is None:
        pytest.fail("the OCI tests need the Distribution registry (apt-get install "
                    "docker-registry; .ci/run installs it)")
    root.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{_free_port()}"
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")},
                    "delete": {"enabled": True}},
        "http": {"addr": host},
    }
    if auth is not None:
        config["auth"] = auth
    (root / "config.yml").write_text(json.dumps(config))  # YAML reads JSON
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")], stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://{host}/v2/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the registry did not start: "
                                       + (root / "registry.log").read_text()[-2000:]) from None
                time.sleep(0.05)
        yield OciServer(host, root / "storage")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
