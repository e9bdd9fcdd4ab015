"""A real OCI registry for the tests: the Distribution registry (`docker-registry`,
the Debian package; .ci/run installs it), started on 127.0.0.1 with its storage in a
temp folder and stopped afterwards. `auth` is the config's `auth` section as a
dict (none: anonymous pushes and pulls), so tests can run it behind htpasswd
(`htpasswd_auth`) or a token service (`token_service`, whose `auth` section it gives)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

REGISTRY = shutil.which("docker-registry")


@dataclass(frozen=True)
class OciServer:
    host: str  # 127.0.0.1:PORT
    storage: Path
    login: tuple[str, str] | None = None  # who the tests act as, behind authentication

    def location(self, repository: str) -> str:
        """The registry location ff takes for `repository` there."""
        return f"oci://{self.host}/{repository}"

    @property
    def environ(self) -> dict[str, str]:
        """FF_REGISTRY_AUTH for `login`, as a user would set it."""
        if self.login is None:
            return {}
        return {"FF_REGISTRY_AUTH": f"{self.host}={self.login[0]}:{self.login[1]}"}


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


def htpasswd_auth(root: Path, users: dict[str, str]) -> dict[str, Any]:
    """The registry's `auth` section for Basic logins of `users` (name: password),
    in an htpasswd file under `root`: Distribution reads only bcrypt hashes there."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "htpasswd"
    path.write_text("".join(f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n"
                            for name, password in users.items()))
    return {"htpasswd": {"realm": "ff-test", "path": str(path)}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenService:
    """A Distribution token service (https://distribution.github.io/distribution/spec/auth/token/):
    users log in with Basic credentials (GET) or a refresh token (the OAuth2 POST);
    each gets the actions of `grants` it asks for, in an ES256 JWT whose `x5c` header
    carries a self-signed certificate the registry trusts through `rootcertbundle`.
    `requests` records (method, user or None) of every request, so tests can count."""

    realm: str
    auth: dict[str, Any]  # the registry's `auth` section
    users: dict[str, str]
    grants: dict[str, set[str]]  # user: the actions granted (pull, push, ...)
    refresh_tokens: dict[str, str]  # refresh token: user
    key: ec.EllipticCurvePrivateKey
    certificate: bytes  # DER
    service: str
    lifetime: int = 300  # expires_in, seconds
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if a in self.grants.get(user, set())]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.certificate).decode("ascii")]}
        claims = {"iss": self.service + "-issuer", "sub": user, "aud": self.service,
                  "exp": now + self.lifetime, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        # JWS wants the raw r||s of ES256, not the DER cryptography returns
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def user_of(self, authorization: str | None) -> str | None:
        """The user the Basic credentials log in as; None: none or wrong ones."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        name, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return name if self.users.get(name) == password else None


class _TokenServer(ThreadingHTTPServer):
    service: TokenService


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests' output is theirs."""

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        service = self.server.service
        query = parse_qs(urlsplit(self.path).query)
        user = service.user_of(self.headers.get("Authorization"))
        service.requests.append(("GET", user))
        if user is None:
            self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        token = service.token(user, query.get("scope", []))
        issued = datetime.datetime.now(datetime.UTC).isoformat()
        self._answer(200, {"token": token, "expires_in": service.lifetime, "issued_at": issued})

    def do_POST(self) -> None:
        service = self.server.service
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        user = service.refresh_tokens.get(form.get("refresh_token", [""])[0])
        service.requests.append(("POST", user))
        if form.get("grant_type") != ["refresh_token"] or form.get("client_id") != ["ff"] or user is None:
            self._answer(401, {"error": "invalid_grant"})
            return
        # the OAuth2 answer: access_token, and the scopes space-separated in one param
        self._answer(200, {"access_token": service.token(user, form.get("scope", [""])[0].split()),
                           "expires_in": service.lifetime})


@contextmanager
def token_service(root: Path, users: dict[str, str], grants: dict[str, set[str]],
                  refresh_tokens: dict[str, str] | None = None) -> Iterator[TokenService]:
    """A token service on 127.0.0.1 in a thread, for as long as the context lasts."""
    root.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ff test token service")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    bundle = root / "token-cert.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    server = _TokenServer(("127.0.0.1", 0), _TokenHandler)
    realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    service_name = "ff-test-registry"
    server.service = TokenService(
        realm, {"token": {"realm": realm, "service": service_name, "issuer": service_name + "-issuer",
                          "rootcertbundle": str(bundle)}},
        users, grants, refresh_tokens or {}, key,
        certificate.public_bytes(serialization.Encoding.DER), service_name)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.service
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class RegistryProxy:
    """A TCP proxy on 127.0.0.1 to `target` (HOST:PORT) that counts the bytes going one
    way (`upload`: to the registry, else from it) and, while `cut_after` is set, drops
    the first connection that carries more than that many bytes that way: a push or a
    pull broken off mid-blob."""

    def __init__(self, target: str, upload: bool, cut_after: int | None = None) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self.upload = upload
        self.cut_after = cut_after
        self.sent = self.connections = self.cuts = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def take(self) -> tuple[int, int]:
        """Bytes counted and connections made since the last call."""
        with self._lock:
            counts, self.sent, self.connections = (self.sent, self.connections), 0, 0
        return counts

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for end in (client, upstream):
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, daemon=True,
                                 args=(source, sink, (source is client) == self.upload)).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        carried, cut = 0, False
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 20):
                if counted:
                    with self._lock:
                        if self.cut_after is not None and carried + len(data) > self.cut_after:
                            data, self.cut_after, cut = data[:self.cut_after - carried], None, True
                            self.cuts += 1
                        carried += len(data)
                        self.sent += len(data)
                sink.sendall(data)
                if cut:
                    break
        for end in (source, sink) if cut else (sink,):  # a drop, or the end passed on
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR if cut else socket.SHUT_WR)
