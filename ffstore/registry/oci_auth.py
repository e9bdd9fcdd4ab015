"""Authentication to OCI registries as container tools do it (Docker, podman, ORAS):
the token flow a registry's `WWW-Authenticate` challenge asks for, with credentials
from the Docker config file or FF_REGISTRY_AUTH, as an `httpx.Auth` so every request
of the OCI backend goes through it.

Doing it the way `docker login` users already know means one login serves every tool,
and the credential helpers (keychains, pass, cloud CLIs) keep working unchanged.
Tokens are cached and sent ahead of the registry asking, per repository: an upload's
body is a file stream that cannot be sent twice, so it must carry a working token the
first time (the backend starts each upload with a bodiless POST that earns it)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ffstore import __version__
from ffstore.errors import InputError, describe_os_error
from ffstore.registry.base import SourceFailed

ENV_AUTH = "FF_REGISTRY_AUTH"
AUTH_FORMAT = ("whitespace-separated HOST[:PORT]=USERNAME:SECRET entries (USERNAME <token>: "
               "SECRET is an identity token)")
IDENTITY_TOKEN_USER = "<token>"  # Docker's marker: the secret is a refresh token
CLIENT_ID = "ff"  # who asks, in the OAuth2 refresh-token grant
TOKEN_TIMEOUT = 30.0  # seconds for one token request; a token service is small and near
HELPER_TIMEOUT = 120.0  # seconds; a credential helper may wait for a keychain prompt
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, the token spec's default for `expires_in`
EXPIRY_MARGIN = 5.0  # seconds; a token this close to expiring is not sent ahead
DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the key docker login writes for it

# RFC 9110 §11: challenges are `scheme token68` or `scheme param=value, ...`, and one
# header may hold several challenges, separated by the same commas as the params.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"\s*({_TOKEN})")
_TOKEN68 = re.compile(r"\s+([A-Za-z0-9._~+/-]+=*)(?=\s*(?:,|$))")
# A quoted value's closing quote is optional: an unterminated one runs to the end.
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^\s,"]*))')
_SEPARATOR = re.compile(r"\s*,")
_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` header: its scheme in lower case (schemes
    are case-insensitive), its params by lower-case name, or its token68."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes asked for: a registry puts several in one param, space-separated.
        Each one's actions are sorted: Distribution lists them in Go's map order, which
        changes from one challenge to the next, and the cache must see one scope."""
        return frozenset(_sorted_actions(scope) for scope in self.params.get("scope", "").split())


def _sorted_actions(scope: str) -> str:
    resource, colon, actions = scope.rpartition(":")
    return f"{resource}:{','.join(sorted(actions.split(',')))}" if colon else scope


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in `header`. Never raises: a registry's odd header should cost
    at most the challenge it garbles, so what cannot be read is skipped to the next
    comma."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        separator = _SEPARATOR.match(header, position)
        if separator:
            position = separator.end()
            continue
        scheme = _SCHEME.match(header, position)
        if scheme is None:
            comma = header.find(",", position + 1)
            position = len(header) if comma < 0 else comma
            continue
        position = scheme.end()
        params: dict[str, str] = {}
        token68 = _TOKEN68.match(header, position)
        if token68:
            position = token68.end()
        else:
            # A param's name followed by `=` continues this challenge; a bare token
            # after a comma is the next challenge's scheme.
            while param := _PARAM.match(header, position):
                quoted, bare = param.group(2), param.group(3)
                value = bare if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
                params.setdefault(param.group(1).lower(), value)
                position = param.end()
                separator = _SEPARATOR.match(header, position)
                if separator is None:
                    break
                position = separator.end()
        challenges.append(Challenge(scheme.group(1).lower(), params,
                                    token68.group(1) if token68 else None))
    return challenges


# --- credentials ----------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    """What to log in with, and where it came from, so a refusal can say which login
    to fix. Secrets stay out of repr: a traceback or a log line must not carry them."""

    source: str  # "FF_REGISTRY_AUTH", the config file, "docker-credential-NAME", "no credentials"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)

    @property
    def present(self) -> bool:
        return bool(self.password is not None or self.identity_token)


ANONYMOUS = Credentials("no credentials")


def normalize_host(address: str) -> str:
    """HOST[:PORT] of a Docker config key (`https://host/v1/`, `http://host`, `host`),
    in lower case, with Docker Hub's names made one."""
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", address.strip()).split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def _from_secret(source: str, username: str, secret: str) -> Credentials:
    if username == IDENTITY_TOKEN_USER:
        return Credentials(source, identity_token=secret)
    return Credentials(source, username, secret)


def _from_environment(host: str, value: str) -> Credentials | None:
    """The FF_REGISTRY_AUTH entry for `host`. Every entry is checked, so a typo in one
    shows up on the first use, not on the day that registry is needed."""
    found: Credentials | None = None
    entries = value.split()
    for number, entry in enumerate(entries, 1):
        server, _, login = entry.partition("=")
        username, colon, secret = login.partition(":")
        if not server or not username or not colon:
            # The entry itself is not echoed: it may hold a secret.
            raise InputError(f"{ENV_AUTH}: entry {number} of {len(entries)} is malformed; "
                             f"the format is {AUTH_FORMAT}")
        if found is None and normalize_host(server) == host:
            found = _from_secret(ENV_AUTH, username, secret)
    return found


def _docker_config_path(environ: Mapping[str, str]) -> Path | None:
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    if environ.get("HOME"):
        return Path(environ["HOME"]) / ".docker" / "config.json"
    return None


def _read_docker_config(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read the Docker config: {describe_os_error(exc)}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: fix it (`docker login` rewrites it), "
                         "or point DOCKER_CONFIG at another folder") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON (line {exc.lineno}): fix it (`docker login` "
                         "rewrites it), or point DOCKER_CONFIG at another folder") from None
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a JSON object: fix it, or point DOCKER_CONFIG at "
                         "another folder")
    return config


def _matching(table: object, host: str) -> Any:
    """The value of `table` (a config object) under a key that names `host`."""
    if isinstance(table, dict):
        for key, value in table.items():
            if isinstance(key, str) and normalize_host(key) == host:
                return value
    return None


def _run_helper(name: str, host: str, environ: Mapping[str, str]) -> Credentials | None:
    """Ask `docker-credential-NAME`, as docker does: `get`, the server on stdin, JSON
    back. Its own PATH is environ's, so a caller's environment decides which runs."""
    program = f"docker-credential-{name}"
    executable = shutil.which(program, path=environ.get("PATH", os.defpath))
    if executable is None:
        raise SourceFailed(f"the Docker config names the credential helper {program} for {host}, "
                           "which is not on PATH: install it, or remove it from the config")
    server = DOCKER_HUB_SERVER if host == DOCKER_HUB else host
    try:
        done = subprocess.run([executable, "get"], input=server, capture_output=True, text=True,
                              env=dict(environ), timeout=HELPER_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceFailed(f"{program} failed for {host}: {exc}") from None
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()
        if "credentials not found" in said.lower():
            return None
        first_line = said.splitlines()[0][:200] if said else f"exit status {done.returncode}"
        raise SourceFailed(f"{program} failed for {host}: {first_line}")
    try:
        answer = json.loads(done.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (json.JSONDecodeError, KeyError, TypeError):
        answer = None
    if answer is None or not isinstance(username, str) or not isinstance(secret, str):
        raise SourceFailed(f"{program} answered something other than its JSON for {host}")
    return _from_secret(program, username, secret)


def _from_auths_entry(path: Path, host: str, entry: object) -> Credentials | None:
    """An `auths` entry: `auth` (base64 of user:password), `username`/`password`,
    `identitytoken`. An empty entry (what a credsStore leaves) is none."""
    if not isinstance(entry, dict):
        return None
    username, password = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, colon, password = decoded.partition(":")
        if not colon:
            raise InputError(f"{path}: the `auth` of {host} is not base64 of USERNAME:PASSWORD; "
                             f"run `docker login {host}` again")
    source = str(path)
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        return Credentials(source, username if isinstance(username, str) else None,
                           identity_token=entry["identitytoken"])
    if isinstance(username, str) and isinstance(password, str) and username:
        return Credentials(source, username, password)
    return None


def _from_docker_config(host: str, environ: Mapping[str, str]) -> Credentials | None:
    path = _docker_config_path(environ)
    config = None if path is None else _read_docker_config(path)
    if path is None or config is None:
        return None
    for helper in (_matching(config.get("credHelpers"), host), config.get("credsStore")):
        if isinstance(helper, str) and helper:
            found = _run_helper(helper, host, environ)
            if found is not None:
                return found
    return _from_auths_entry(path, host, _matching(config.get("auths"), host))


def find_credentials(host: str, environ: Mapping[str, str] | None = None) -> Credentials:
    """The credentials for `host` (HOST[:PORT]): FF_REGISTRY_AUTH, then the Docker
    config (the host's credential helper, the credsStore, `auths`), else none."""
    environ = os.environ if environ is None else environ
    host = normalize_host(host)
    found = None
    if environ.get(ENV_AUTH, "").strip():
        found = _from_environment(host, environ[ENV_AUTH])
    return found or _from_docker_config(host, environ) or ANONYMOUS


# --- the flow -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires: float  # time.time() seconds

    @property
    def fresh(self) -> bool:
        return time.time() < self.expires - EXPIRY_MARGIN


_TokenKey = tuple[str, str, frozenset[str]]  # realm, service, scopes


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _replayable(request: httpx.Request) -> bool:
    """Whether the body can be sent again: bytes can, a file stream has been read."""
    return isinstance(request.stream, httpx.ByteStream)


def _expiry(answer: Mapping[str, Any]) -> float:
    """When the token stops working, as docker reckons it: `issued_at` (the server's
    clock) plus `expires_in`, each defaulted when absent or unreadable."""
    lifetime = answer.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    now = time.time()
    try:
        issued = datetime.fromisoformat(answer["issued_at"])
    except (KeyError, TypeError, ValueError):
        return now + lifetime
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=UTC)  # the spec's RFC 3339 times are UTC
    # A server clock ahead of ours must not stretch the lifetime past its own.
    return min(now, issued.timestamp()) + lifetime


class RegistryAuth(httpx.Auth):
    """The challenge flow for one registry host, shared by every thread of one client:
    credentials resolve once, on the first challenge; tokens are cached by what they
    grant, and each repository remembers the last one it was served with."""

    def __init__(self, host: str, environ: Mapping[str, str] | None = None) -> None:
        self.host = host
        self._environ = dict(os.environ if environ is None else environ)
        self._credentials: Credentials | None = None
        self._credentials_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the three below
        self._tokens: dict[_TokenKey, _Token] = {}
        self._by_repository: dict[str, _TokenKey] = {}
        self._basic = False  # the host asked for Basic: send it from now on
        self._fetching: dict[_TokenKey, threading.Lock] = {}  # one fetch per key at a time

    @property
    def credentials(self) -> Credentials:
        with self._credentials_lock:
            if self._credentials is None:
                self._credentials = find_credentials(self.host, self._environ)
            return self._credentials

    def _advice(self) -> str:
        return f"run `docker login {self.host}`, or set {ENV_AUTH}={self.host}=USERNAME:SECRET"

    def _check_transport(self, url: httpx.URL) -> None:
        """Credentials cross plain http only to this machine, where nobody can listen."""
        if url.scheme != "https" and not _loopback(url.host):
            raise SourceFailed(f"{self.host} asks for credentials over plain {url.scheme} at "
                               f"{url.host}; ff sends them only over https (or to this machine)")

    def _basic_header(self, url: httpx.URL) -> str:
        credentials = self.credentials
        self._check_transport(url)
        pair = f"{credentials.username or ''}:{credentials.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _ahead(self, request: httpx.Request, repository: str | None) -> str | None:
        """The Authorization to send before any challenge, if one is known to work."""
        with self._lock:
            if self._basic:
                return self._basic_header(request.url)
            key = self._by_repository.get(repository) if repository else None
            token = self._tokens.get(key) if key else None
        return f"Bearer {token.value}" if token and token.fresh else None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send what is known to work; on a 401, answer the challenge and send again if
        the body allows. With credentials, a second refusal is the account's, not a
        missing login, so it is an error that says which login was used."""
        repository = match.group(1) if (match := _REPOSITORY.match(request.url.path)) else None
        sent = self._ahead(request, repository)
        if sent:
            request.headers["Authorization"] = sent
        response = yield request
        if response.status_code != 401:
            return
        challenges = parse_challenges(", ".join(response.headers.get_list("WWW-Authenticate")))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            answer = self._bearer(bearer, repository, sent)
            asked = f" (it asked for {' '.join(sorted(bearer.scopes))})" if bearer.scopes else ""
        elif any(c.scheme == "basic" for c in challenges) and self.credentials.present:
            answer, asked = self._basic_header(request.url), ""
            with self._lock:
                self._basic = True
        else:
            return
        if answer is None:
            return
        if answer != sent:
            if not _replayable(request):
                return  # the caller starts again with a fresh body; the token is cached
            request.headers["Authorization"] = answer
            response = yield request
            if response.status_code != 401:
                return
        if self.credentials.present:
            what = f"repository {repository}" if repository else request.url.path
            raise SourceFailed(f"{self.host} refused {request.method} on {what} with the credentials "
                               f"from {self.credentials.source}{asked}: check that account's access "
                               f"there, or log in as one that has it ({self._advice()})")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Reached only from httpx.AsyncClient (sync_auth_flow serves httpx.Client):
        ff's clients are synchronous, and the locks here would block an event loop."""
        raise RuntimeError("RegistryAuth works with httpx.Client only")

    def _bearer(self, challenge: Challenge, repository: str | None, sent: str | None) -> str | None:
        """The Bearer header for `challenge`: a cached token other than the one just
        refused, else a new one. None: no credentials and the token service refused,
        so the registry's own 401 is the answer."""
        realm = challenge.params.get("realm", "")
        key: _TokenKey = (realm, challenge.params.get("service", ""), challenge.scopes)
        with self._lock:
            fetching = self._fetching.setdefault(key, threading.Lock())
        with fetching:  # threads refused at once wait for one fetch and share its token
            with self._lock:
                token = self._tokens.get(key)
            if token is None or not token.fresh or f"Bearer {token.value}" == sent:
                token = self._fetch(challenge, realm)
                if token is None:
                    return None
            with self._lock:
                self._tokens[key] = token
                if repository:
                    self._by_repository[repository] = key
        return f"Bearer {token.value}"

    def _fetch(self, challenge: Challenge, realm: str) -> _Token | None:
        """A token from the realm, as the Distribution token spec says: GET with Basic
        credentials, or the OAuth2 refresh-token POST for an identity token."""
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise SourceFailed(f"{self.host} names no usable token service in its challenge "
                               f"(realm {realm[:200]!r})")
        credentials = self.credentials
        service = challenge.params.get("service")
        scopes = sorted(challenge.scopes)
        if credentials.present:
            self._check_transport(url)
        try:
            with httpx.Client(timeout=TOKEN_TIMEOUT, follow_redirects=True,
                              headers={"User-Agent": f"ff/{__version__}"}) as client:
                if credentials.identity_token:
                    form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                            "client_id": CLIENT_ID, "scope": " ".join(scopes),
                            **({"service": service} if service else {})}
                    response = client.post(url, data=form)
                else:
                    params = [("service", service)] if service else []
                    params += [("scope", scope) for scope in scopes]
                    auth = (credentials.username or "", credentials.password or "") \
                        if credentials.present else None
                    response = client.get(url, params=params, auth=auth)
        except httpx.HTTPError as exc:
            raise SourceFailed(f"the token service of {self.host} ({url.host}) failed: "
                               f"{str(exc) or type(exc).__name__}") from None
        if response.status_code in (401, 403):
            if not credentials.present:
                return None
            raise SourceFailed(f"the token service of {self.host} refused the credentials from "
                               f"{credentials.source}: {self._advice()}")
        if response.status_code >= 300:
            raise SourceFailed(f"the token service of {self.host} ({url.host}) answered HTTP "
                               f"{response.status_code} {response.reason_phrase}".rstrip())
        try:
            answer = response.json()
        except ValueError:
            answer = None
        value = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value:
            raise SourceFailed(f"the token service of {self.host} ({url.host}) answered no token")
        return _Token(value, _expiry(answer))


def registry_auth(host: str, environ: Mapping[str, str] | None = None) -> httpx.Auth:
    """How to authenticate to `host` (HOST[:PORT]): always an Auth, since a registry
    may want a token even from anonymous users; `environ` defaults to os.environ."""
    return RegistryAuth(host, environ)
