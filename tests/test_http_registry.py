"""HTTP registries against real servers on 127.0.0.1: `ff serve`, `python -m
http.server`, and variants of ff's own handler that misbehave on purpose (drop the
connection, send wrong or endless bytes, lie about the length, fail, hang). No
transport is mocked: every byte crosses a socket."""

import datetime
import hashlib
import io
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ffstore.index import parse_index
from ffstore.progress import Bar, for_terminal
from ffstore.publish import write_index
from ffstore.registry.transport import READ_SIZE, StdlibTransport, direct_transport
from ffstore.serve import RegistryHandler, RegistryServer, byte_range, make_server
from ffstore.signing import load_key
from tests.conftest import ULFD, Workspace

MODEL = ULFD["slim-320"]
SIZE = MODEL.stat().st_size
DIGEST = "sha256:" + hashlib.sha256(MODEL.read_bytes()).hexdigest()


class TrickHandler(RegistryHandler):
    """ff serve's handler, except that blob requests do what `server.modes` says."""

    server: "TrickServer"

    def do_GET(self) -> None:
        if "/blobs/" not in self.path:
            super().do_GET()
            return
        mode = self.server.next_mode(self.headers.get("Range"))
        path = self._file()
        assert path is not None
        data = path.read_bytes()
        if mode == "normal":
            start = (byte_range(self.headers.get("Range"), len(data)) or (0, 0))[0]
            self.server.sent += len(data) - start
            super().do_GET()
        elif mode in ("404", "500"):
            self.send_error(int(mode))
        elif mode == "hang":
            self.server.release.wait(10)
            self.close_connection = True
        elif mode == "crawl":  # the whole blob at crawl_rate bytes a second, until released
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            piece = self.server.crawl_rate // 20
            for start in range(0, len(data), piece):
                if self.server.release.wait(0.05):
                    return
                self.wfile.write(data[start:start + piece])
        elif mode == "slow":  # the whole blob, in pieces, slowly: concurrent clients overlap
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for start in range(0, len(data), len(data) // 8 + 1):
                time.sleep(0.1)
                self.wfile.write(data[start:start + len(data) // 8 + 1])
            self.server.sent += len(data)
        else:
            self._send_bad(mode, data)

    def _send_bad(self, mode: str, data: bytes) -> None:
        self.close_connection = True
        self.send_response(200)
        if mode != "endless":
            length = len(data) + 7 if mode == "bad_length" else len(data)
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if mode == "drop":
            body = data[:len(data) // 2]
        elif mode == "wrong":
            body = bytes(len(data))
        elif mode == "bad_length":
            body = data
        else:  # endless: stream until the client hangs up (or 64 MiB, for safety)
            body = b""
            for _ in range(1024):
                self.wfile.write(bytes(1 << 16))
                self.server.sent += 1 << 16
        self.wfile.write(body)
        self.server.sent += len(body)


class TrickServer(RegistryServer):
    def __init__(self, root: Path, modes: list[str]) -> None:
        super().__init__(root.resolve(), "127.0.0.1", 0, quiet=True, handler=TrickHandler)
        self.modes = modes  # one per blob request; the last one sticks
        self.ranges: list[str | None] = []
        self.sent = 0
        self.crawl_rate = 1 << 20
        self.release = threading.Event()
        self._lock = threading.Lock()

    def next_mode(self, range_header: str | None) -> str:
        with self._lock:
            self.ranges.append(range_header)
            return self.modes.pop(0) if len(self.modes) > 1 else self.modes[0]

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients hang up on purpose here (endless bytes, hangs)."""


@contextmanager
def running(server: RegistryServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        if isinstance(server, TrickServer):
            server.release.set()
        server.shutdown()
        server.server_close()


@dataclass
class Served:
    ws: Workspace
    server: TrickServer
    url: str

    @property
    def blob(self) -> Path:
        return self.ws.home / "blobs" / "sha256" / DIGEST.split(":")[1]

    @property
    def part(self) -> Path:
        return self.ws.home / "partial" / f"{DIGEST.split(':')[1]}.part"


@pytest.fixture
def served(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """ULFD slim published, served over HTTP, locked; blobs served normally until a
    test sets `server.modes`."""
    monkeypatch.setenv("FF_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("FF_HTTP_RETRIES", "2")
    workspace.publish(MODEL, "ulfd", "1.0.0")
    server = TrickServer(workspace.registry, ["normal"])
    with running(server) as url:
        workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
        workspace.run("lock")
        yield Served(workspace, server, url)


def test_lock_and_sync_from_ff_serve_and_python_http_server(workspace: Workspace) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    servers = {
        "ff serve": [sys.executable, "-m", "ffstore", "serve", str(workspace.registry), "--port",
                     "0"],
        "http.server": [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                        "--directory", str(workspace.registry)],
    }
    for name, command in servers.items():
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line[line.index("http://"):].split()[0].rstrip(")")
            workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
            workspace.run("lock")
            home = workspace.root / f"home-{name}"
            # A partial download to resume: ff serve answers the Range request, http.server
            # ignores it and sends the whole blob, which must then replace the prefix.
            (home / "partial").mkdir(parents=True)
            (home / "partial" / f"{DIGEST.split(':')[1]}.part").write_bytes(MODEL.read_bytes()[:1000])
            assert "fetched 1 files" in workspace.run("--home", str(home), "sync").out
            assert "fetched 0 files" in workspace.run("--home", str(home), "sync").out
            blob = home / "blobs" / "sha256" / DIGEST.split(":")[1]
            assert blob.read_bytes() == MODEL.read_bytes(), name
        finally:
            process.terminate()
            process.wait(10)


def test_serve_answers_ranges_and_refuses_what_it_must(workspace: Workspace,
                                                       tmp_path: Path) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    blob = f"blobs/sha256/{DIGEST.split(':')[1]}"
    (tmp_path / "secret").write_text("outside")
    (workspace.registry / "escape").symlink_to(tmp_path / "secret")
    with running(make_server(workspace.registry, quiet=True)) as url, httpx.Client() as client:
        whole = client.get(url + blob)
        assert whole.status_code == 200 and whole.content == MODEL.read_bytes()
        part = client.get(url + blob, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == MODEL.read_bytes()[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{SIZE}"
        tail = client.get(url + blob, headers={"Range": "bytes=-10"})
        assert tail.content == MODEL.read_bytes()[-10:]
        assert client.get(url + blob, headers={"Range": f"bytes={SIZE}-"}).status_code == 416
        head = client.head(url + blob)
        assert head.status_code == 200 and head.headers["Content-Length"] == str(SIZE)
        assert head.content == b""
        for refused in ("escape", ".ff-publish.lock", "blobs/sha256/", "%2e%2e/secret",
                        "blobs/../../secret"):
            assert client.get(url + refused).status_code == 404, refused
        assert client.put(url + "index.json", content=b"{}").status_code == 405
    assert byte_range("bytes=5-", 10) == (5, 10)
    assert byte_range("bytes=2-4", 10) == (2, 5)
    assert byte_range("bytes=0-1,4-5", 10) is None  # several ranges: the whole file
    with pytest.raises(ValueError):
        byte_range("bytes=10-", 10)


def test_serve_needs_a_registry(workspace: Workspace, tmp_path: Path) -> None:
    result = workspace.run("serve", str(tmp_path), "--port", "0", expect=2)
    assert "has no index.json" in result.err


def test_dropped_connection_resumes_and_fetches_each_byte_once(served: Served) -> None:
    served.server.modes = ["drop", "normal"]
    served.ws.run("sync")
    assert served.blob.read_bytes() == MODEL.read_bytes()
    assert served.server.ranges == [None, f"bytes={SIZE // 2}-"]
    assert served.server.sent == SIZE
    assert not served.part.exists()


def test_httpx_own_transport_resumes_and_verifies_too(served: Served,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a proxy httpx's own transport carries the bytes (its chunks copied into
    the store's buffers): the same resume, once-only transfer and verification."""
    monkeypatch.setattr("ffstore.registry.http.direct_transport", lambda: None)
    served.server.modes = ["drop", "normal"]
    served.ws.run("sync")
    assert served.blob.read_bytes() == MODEL.read_bytes()
    assert served.server.ranges == [None, f"bytes={SIZE // 2}-"]
    assert served.server.sent == SIZE
    shutil.rmtree(served.ws.home / "blobs")
    served.server.modes = ["wrong"]
    result = served.ws.run("sync", expect=1)
    assert "the server sent wrong bytes" in result.err
    assert not served.blob.exists()


def test_leftover_partial_files_are_verified_not_trusted(served: Served) -> None:
    served.part.parent.mkdir(parents=True)
    served.part.write_bytes(bytes(1000))  # a wrong prefix: found at the end, fetched afresh
    served.ws.run("sync")
    assert served.server.ranges == ["bytes=1000-", None]
    assert served.blob.read_bytes() == MODEL.read_bytes()
    served.blob.chmod(0o644)
    served.blob.unlink()
    served.part.write_bytes(MODEL.read_bytes())  # complete before a crash: no request at all
    served.server.modes = ["404"]
    served.ws.run("sync")
    assert served.blob.read_bytes() == MODEL.read_bytes() and len(served.server.ranges) == 2


def test_concurrent_syncs_download_a_blob_once(served: Served) -> None:
    served.server.modes = ["slow"]
    env = {**os.environ, "FF_HOME": str(served.ws.home)}
    syncs = [subprocess.Popen([sys.executable, "-m", "ffstore", "sync"], cwd=served.ws.project,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for process in syncs:
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert served.server.sent == SIZE
    assert served.blob.read_bytes() == MODEL.read_bytes()


def test_interrupted_sync_resumes_in_the_next_run(served: Served) -> None:
    served.server.modes = ["drop", "500"]
    result = served.ws.run("sync", expect=1)
    assert "HTTP 500" in result.err and "gave up after 2 attempts" in result.err
    assert not served.blob.exists() and served.part.stat().st_size == SIZE // 2
    served.server.modes = ["normal"]
    served.ws.run("sync")
    assert served.blob.read_bytes() == MODEL.read_bytes()
    assert served.server.sent == SIZE  # the first half was not fetched again


@pytest.mark.parametrize(("mode", "message"), [
    ("wrong", "the server sent wrong bytes"),
    ("endless", "received more than the expected"),
    ("bad_length", f"announces {SIZE + 7} bytes"),
    ("404", "HTTP 404"),
    ("500", "HTTP 500"),
    ("hang", "timed out"),
])
def test_misbehaving_server_is_refused_and_nothing_enters_the_store(
        served: Served, mode: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FF_HTTP_TIMEOUT", "0.4")  # for the hang
    served.server.modes = [mode]
    result = served.ws.run("sync", expect=1)
    assert result.err.startswith("error: cannot download blob") and message in result.err
    assert result.err.count("\n") == 1
    assert not served.blob.exists()
    assert not served.part.exists() or served.part.stat().st_size == 0
    assert served.server.sent < 16 << 20  # endless data was cut off (at most socket buffers)
    retried = mode in ("500", "hang")
    assert len(served.server.ranges) == (2 if retried else 1)


def test_untrusted_mirror_is_safe_and_a_good_one_is_used(served: Served) -> None:
    bad = TrickServer(served.ws.registry, ["wrong"])
    good = TrickServer(served.ws.registry, ["normal"])
    toml = served.ws.project / "facefusion.toml"
    with running(bad) as bad_url, running(good) as good_url:
        text = toml.read_text()
        toml.write_text(text.replace(f'default = "{served.url}"',
                                     f'default = {{ url = "{served.url}", mirrors = '
                                     f'["{bad_url}"] }}'))
        served.ws.run("lock")
        served.ws.run("sync")  # the mirror's bytes are refused, the registry's taken
        assert bad.ranges and served.server.ranges
        assert served.blob.read_bytes() == MODEL.read_bytes()
        served.server.modes = ["404"]
        toml.write_text(toml.read_text().replace(bad_url, good_url))
        served.ws.run("lock")
        served.ws.run("--home", str(served.ws.root / "home2"), "sync")
        assert good.sent == SIZE


def test_replayed_old_index_is_a_rollback_attack_but_ff_rollback_works(served: Served) -> None:
    ws = served.ws
    ws.run("sync")
    old_index = (ws.registry / "index.json").read_bytes()
    ws.publish(ULFD["RFB-320"], "ulfd", "2.0.0")
    assert "(was 1.0.0)" in ws.run("lock", "--upgrade").out
    new_index = (ws.registry / "index.json").read_bytes()
    (ws.registry / "index.json").write_bytes(old_index)
    result = ws.run("lock", "--upgrade", expect=1)
    assert "rollback attack" in result.err and "version 1, older than version 2" in result.err
    (ws.registry / "index.json").write_bytes(new_index)
    ws.run("sync")
    assert "2.0.0 -> 1.0.0" in ws.run("rollback", "face_detector").out
    ws.run("sync")


def test_expired_index_is_refused(served: Served) -> None:
    ws = served.ws
    index = parse_index((ws.registry / "index.json").read_bytes(), "index")
    write_index(ws.registry, index, load_key(ws.home / "keys", "alice"), expiry_days=-1)
    result = ws.run("lock", "--upgrade", expect=1)
    assert "expired at" in result.err and "freeze attack" in result.err


def test_rotated_key_is_accepted(served: Served) -> None:
    ws = served.ws
    ws.run("key", "generate", "bob")
    assert "now signs" in ws.run("key", "rotate", "alice", "bob", "--registry",
                                 str(ws.registry)).out
    assert "already listed" in ws.run("key", "rotate", "alice", "bob", "--registry",
                                      str(ws.registry)).out
    ws.publish(ULFD["RFB-320"], "ulfd", "2.0.0", key="bob")  # index and manifest signed by bob
    assert "ulfd 2.0.0" in ws.run("lock", "--upgrade").out  # trust still names alice only
    ws.run("sync")


def test_unreachable_registry_says_so(workspace: Workspace, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    monkeypatch.setenv("FF_HTTP_RETRIES", "2")
    monkeypatch.setenv("FF_HTTP_TIMEOUT", "1")
    with socket.socket() as probe:  # a free port, which nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
    started = time.monotonic()
    result = workspace.run("lock", expect=1)
    assert f"cannot read {url}index.json: ConnectError" in result.err
    assert "is the server up" in result.err and "check the registry URL" in result.err
    # A refused connection is not retried: nothing listens, waiting will not change it.
    assert "gave up" not in result.err and time.monotonic() - started < 1


def test_a_host_that_never_accepts_fails_at_the_connect_timeout(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener whose accept queue is full drops new connections' SYNs, as a
    firewalled or dead host does: ff fails at the short connect timeout, once, not
    after http_timeout times the retries."""
    from ffstore.registry.http import CONNECT_TIMEOUT

    monkeypatch.setenv("FF_HTTP_TIMEOUT", "30")
    monkeypatch.setenv("FF_HTTP_RETRIES", "4")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        for _ in range(4):  # fill the accept queue (Linux keeps backlog + 1)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        time.sleep(0.2)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
        started = time.monotonic()
        result = workspace.run("lock", expect=1)
        elapsed = time.monotonic() - started
        for filler in fillers:
            filler.close()
    assert f"no connection within {CONNECT_TIMEOUT:g} s" in result.err, result.err
    assert "gave up" not in result.err and len(result.err.strip().splitlines()) == 1
    assert elapsed < CONNECT_TIMEOUT * 2


def test_a_server_that_accepts_but_never_answers_is_retried_aloud_then_refused(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hung server is worth a retry (it may come back), and someone watching is told
    what ff waits for at each retry; then one bounded error."""
    monkeypatch.setenv("FF_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("FF_HTTP_RETRIES", "3")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    held: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        stop = threading.Event()

        def accept_and_hold() -> None:
            listener.settimeout(0.1)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept_and_hold, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
        started = time.monotonic()
        result = workspace.run("lock", expect=1)
        elapsed = time.monotonic() - started
        stop.set()
        thread.join()
    for connection in held:
        connection.close()
    lines = result.err.strip().splitlines()
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 2 and all("timed out: no data for 0.5 s (setting http_timeout); retrying in" in n
                                   for n in notes), result.err
    assert "(attempt 2 of 3)" in notes[0] and "(attempt 3 of 3)" in notes[1]
    assert lines[-1].startswith(f"error: cannot read {url}index.json: timed out")
    assert "gave up after 3 attempts" in lines[-1] and elapsed < 10


def test_local_registry_commands_never_import_httpx(workspace: Workspace) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    program = ("import sys; from ffstore.cli import main; "
               "codes = [main(['lock']), main(['sync']), main(['status'])]; "
               "print(codes, 'httpx' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", program], cwd=workspace.project,
                            env={**os.environ, "FF_HOME": str(workspace.home)},
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("[0, 0, 0] False"), result.stdout + result.stderr


def test_warm_sync_from_an_http_registry_never_opens_it(served: Served) -> None:
    """Everything cached: the registry is not contacted, and httpx not even imported."""
    served.ws.run("sync")
    requests = len(served.server.ranges)
    program = ("import sys; from ffstore.cli import main; "
               "codes = [main(['sync']), main(['rollback', '--help'])]; "
               "print(codes, 'httpx' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", program], cwd=served.ws.project,
                            env={**os.environ, "FF_HOME": str(served.ws.home)},
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("[0, 0] False"), result.stdout + result.stderr
    assert len(served.server.ranges) == requests


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal_and_not_when_quiet() -> None:
    assert type(for_terminal(False, str, io.StringIO())) is not Bar
    assert type(for_terminal(True, str, Terminal())) is not Bar
    screen = Terminal()
    with for_terminal(False, lambda n: f"{n} B", screen) as bar:
        bar.begin(2, 300)
        bar.advance(100)
        time.sleep(0.01)
        bar.advance(200)
        bar.file_done()
        bar.file_done()
    last = screen.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert "[########################] 2/2 files  300 B / 300 B" in last
    assert screen.getvalue().endswith("\n")


def test_registry_flag_and_env_point_the_default_registry_at_a_url(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """facefusion.toml names a directory that does not exist here; the flag (or
    FF_REGISTRY) says where this machine gets the models from."""
    served.ws.write_toml({"face_detector": ("ulfd", ">=1")}, registry="no/such/dir")
    result = served.ws.run("sync", expect=1)
    assert "does not exist" in result.err
    served.ws.run("sync", "--registry", served.url)
    assert served.blob.read_bytes() == MODEL.read_bytes()
    monkeypatch.setenv("FF_REGISTRY", served.url)
    assert f"{served.url}" in served.ws.run("config").out
    served.ws.run("lock")


class CountingServer(TrickServer):
    """Counts the connections it accepts and says when it has closed one."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, ["normal"])
        self.connections = 0
        self.closed = threading.Event()

    def get_request(self) -> tuple[socket.socket, object]:
        self.connections += 1
        return super().get_request()

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)
        self.closed.set()


def test_transport_keeps_connections_alive_reads_large_pieces_and_reports_short_bodies(
        workspace: Workspace) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    blob = f"blobs/sha256/{DIGEST.split(':')[1]}"
    server = CountingServer(workspace.registry)
    with running(server) as url, httpx.Client(transport=StdlibTransport(), timeout=5) as client:
        with client.stream("GET", url + blob) as response:
            pieces = [len(piece) for piece in response.iter_raw()]
        assert pieces == [READ_SIZE] * (SIZE // READ_SIZE) + [SIZE % READ_SIZE]
        assert client.get(url + "index.json").status_code == 200
        assert server.connections == 1
        # The server closes this one after answering, unannounced: the idle connection
        # is found closed and replaced, not used to fail the next request.
        client.get(url + "index.json", headers={"Connection": "close"})
        assert server.closed.wait(5)
        assert client.get(url + blob).content == MODEL.read_bytes()
        assert server.connections == 2
        server.modes = ["drop"]
        with pytest.raises(httpx.RemoteProtocolError, match="unsent"):
            client.get(url + blob)


def test_a_proxy_in_the_environment_leaves_requests_to_httpx(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    assert isinstance(direct_transport(), StdlibTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert direct_transport() is None


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_registry_is_trusted_through_ssl_cert_file(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    cert_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server = TrickServer(workspace.registry, ["normal"])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    with running(server) as url:
        workspace.write_toml({"face_detector": ("ulfd", ">=1")},
                             registry=url.replace("http://", "https://"))
        result = workspace.run("lock", expect=1)
        assert "CERTIFICATE_VERIFY_FAILED" in result.err and "set SSL_CERT_FILE" in result.err
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        workspace.run("lock")
        workspace.run("sync")
    assert (workspace.home / "blobs" / "sha256" / DIGEST.split(":")[1]).read_bytes() == \
        MODEL.read_bytes()


# --- servers that hang, trickle, redirect elsewhere or send broken bodies -------------


class LyingHandler(RegistryHandler):
    """ff serve's handler, except for what `server.trick` says about documents."""

    server: "LyingServer"

    def do_GET(self) -> None:
        trick = self.server.trick
        if self.path.startswith("/other/"):  # where "elsewhere" sends the client
            self.path = self.path.removeprefix("/other")
            super().do_GET()
        elif trick == "trickle" and self.path.endswith("index.json"):
            data = (self.server.root / "index.json").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for byte in data:
                if self.server.release.wait(0.05):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        elif trick == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif trick == "elsewhere":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/other"
                             + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif trick == "gzip":
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"not gzip at all"[:12])
        else:
            super().do_GET()


class LyingServer(RegistryServer):
    def __init__(self, root: Path, trick: str) -> None:
        super().__init__(root.resolve(), "127.0.0.1", 0, quiet=True, handler=LyingHandler)
        self.trick = trick
        self.release = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        """The client hangs up on a trickle on purpose."""


@pytest.mark.parametrize(("trick", "message"), [
    ("trickle", "too slow"),
    ("loop", "redirect loop"),
    ("elsewhere", "redirected to localhost, another host"),
    ("gzip", "does not decode"),
])
def test_a_server_that_lies_fails_soon_and_clearly(workspace: Workspace, trick: str, message: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FF_HTTP_TIMEOUT", "0.5")
    monkeypatch.setenv("FF_HTTP_RETRIES", "2")
    workspace.publish(MODEL, "ulfd", "1.0.0")
    server = LyingServer(workspace.registry, trick)
    with running(server) as url:
        server.release.clear()
        workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=url)
        started = time.monotonic()
        result = workspace.run("lock", expect=1)
        server.release.set()
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read") and message in lines[0]
    assert "Traceback" not in result.err
    assert time.monotonic() - started < 10, "bounded, whatever the server does"
    assert not (workspace.project / "facefusion.lock").exists()


def test_a_redirect_to_another_host_is_followed_when_the_entry_allows_it(
        workspace: Workspace) -> None:
    workspace.publish(MODEL, "ulfd", "1.0.0")
    server = LyingServer(workspace.registry, "elsewhere")
    with running(server) as url:
        (workspace.project / "facefusion.toml").write_text(
            f'[registries]\ndefault = {{ url = "{url}", allow_redirects = true }}\n'
            f'[trust]\nkeys = ["{workspace.key_id}"]\n'
            '[modules]\nface_detector = { model = "ulfd", version = ">=1" }\n')
        workspace.run("lock")
        workspace.run("sync")


# --- registry identity: freshness by identity, rotations bound to one registry --------


def test_a_replayed_index_is_refused_whatever_the_url_spelling(served: Served) -> None:
    ws = served.ws
    old_index = (ws.registry / "index.json").read_bytes()
    ws.publish(ULFD["RFB-320"], "ulfd", "2.0.0")
    ws.run("lock", "--upgrade")
    (ws.registry / "index.json").write_bytes(old_index)
    port = served.url.rsplit(":", 1)[1].strip("/")
    for spelling in (f"http://localhost:{port}", f"HTTP://LOCALHOST:{port}//",
                     f"http://[::1]:{port}/"):
        result = ws.run("lock", "--upgrade", "--registry", spelling, expect=1)
        if "rollback attack" not in result.err:  # ::1 is refused where nothing listens on it
            assert "[::1]" in spelling and "cannot read" in result.err, result.err


def test_another_registry_at_the_same_location_is_refused(served: Served, tmp_path: Path) -> None:
    ws = served.ws
    other = tmp_path / "other"
    ws.run("publish", str(MODEL), "--registry", str(other), "--model", "ulfd", "--version", "1.0.0",
           "--module", "face_detector", "--key", "alice")
    shutil.rmtree(ws.registry)
    shutil.copytree(other, ws.registry)  # same URL, same key, another registry's index
    result = ws.run("lock", "--upgrade", expect=1)
    assert "served registry" in result.err and "before" in result.err


def _publish_to(ws: Workspace, registry: Path, version: str, key: str) -> None:
    ws.run("publish", str(MODEL), "--registry", str(registry), "--model", "ulfd", "--version",
           version, "--module", "face_detector", "--key", key)


def test_a_rotation_made_for_one_registry_means_nothing_in_another(workspace: Workspace,
                                                                  tmp_path: Path) -> None:
    import json

    workspace.run("key", "generate", "bob")
    first, second = tmp_path / "first", tmp_path / "second"
    _publish_to(workspace, first, "1.0.0", "alice")
    _publish_to(workspace, second, "1.0.0", "alice")
    workspace.run("key", "rotate", "alice", "bob", "--registry", str(first))
    # Copy first's rotation record into second, then sign second's index with bob: an
    # index bob could sign only if alice had vouched for bob for *this* registry.
    record = json.loads((first / "index.json").read_text())["signed"]["rotations"][0]
    index = parse_index((second / "index.json").read_bytes(), "index")
    index.rotations.append(record)
    write_index(second, index, load_key(workspace.home / "keys", "bob"), expiry_days=30)
    workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=str(second))
    result = workspace.run("lock", expect=1)
    assert "which is not trusted" in result.err
    workspace.write_toml({"face_detector": ("ulfd", ">=1")}, registry=str(first))
    workspace.run("lock")  # where it was made, the rotation holds


def test_a_completed_handover_retires_the_old_key(workspace: Workspace) -> None:
    workspace.run("key", "generate", "bob")
    _publish_to(workspace, workspace.registry, "1.0.0", "alice")
    workspace.write_toml({"face_detector": ("ulfd", ">=1")})
    workspace.run("lock")
    # bob's private key is at hand, so he co-signs: the handover completes at once.
    workspace.run("key", "rotate", "alice", "bob", "--registry", str(workspace.registry))
    workspace.run("lock")  # seen: signed by bob, who took over from alice
    refused = workspace.run("publish", str(ULFD["RFB-320"]), "--registry", str(workspace.registry),
                            "--model", "ulfd", "--version", "2.0.0", "--module", "face_detector",
                            "--key", "alice", expect=2)
    assert "rotated out" in refused.err
    # Someone who kept (or stole) alice's key signs a newer index alone: refused.
    index = parse_index((workspace.registry / "index.json").read_bytes(), "index")
    write_index(workspace.registry, index, load_key(workspace.home / "keys", "alice"), 30)
    result = workspace.run("lock", "--upgrade", expect=1)
    assert "rotated away from" in result.err
    _publish_to(workspace, workspace.registry, "2.0.0", "bob")
    assert "ulfd 2.0.0" in workspace.run("lock", "--upgrade").out


def test_ctrl_c_stops_a_download_at_once_and_keeps_it_for_a_resume(
        workspace: Workspace, tmp_path: Path) -> None:
    """The first Ctrl-C ends a transfer within a second (not when it is done), says
    so in one line, and what arrived waits in partial/ for the next sync."""
    import signal

    from tests import standins

    big = tmp_path / "big" / "inswapper_128.onnx"
    big.parent.mkdir()
    big.write_bytes(standins.face_swapper(size=24 << 20))
    workspace.publish(big, "big", "1.0.0", module="frame_enhancer")
    server = TrickServer(workspace.registry, ["crawl"])
    server.crawl_rate = 2 << 20  # 2 MiB/s: 12 s for the whole blob
    with running(server) as url:
        workspace.write_toml({"frame_enhancer": ("big", ">=1")}, registry=url)
        workspace.run("lock")
        # As a terminal's foreground job gets it: a job a shell starts in the
        # background inherits SIGINT ignored, and Python then never raises on it.
        process = subprocess.Popen([sys.executable, "-m", "ffstore", "sync"],
                                   cwd=workspace.project, env={**os.environ,
                                                               "FF_HOME": str(workspace.home)},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        partial = workspace.home / "partial"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                p.stat().st_size > 1 << 20 for p in partial.glob("*.part")):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _out, err = process.communicate(timeout=10)
        assert time.monotonic() - interrupted < 1.5
        server.release.set()
    assert process.returncode == 130
    assert err.strip().startswith("error: interrupted") and "\n" not in err.strip()
    (part,) = partial.glob("*.part")
    assert 1 << 20 < part.stat().st_size < 24 << 20


def test_a_resumed_transfer_shows_this_runs_rate_an_eta_and_the_file() -> None:
    bar = Bar(Terminal(), lambda n: f"{n} B")
    bar.begin(1, 1000)
    bar.started -= 10  # ten seconds into this run
    bar.skip(600)  # what an earlier run left: not received now
    bar.start_file("inswapper_128.onnx")
    bar.advance(100)
    line = bar.line(time.monotonic())
    assert "700 B / 1000 B  10 B/s" in line  # 100 B in 10 s, not 700 B
    assert "ETA 0:30" in line and line.endswith("inswapper_128.onnx")
