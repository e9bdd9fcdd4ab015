"""Authentication to OCI registries (ffstore.registry.oci_auth): the challenge parser,
where credentials come from, and the whole flow against the real Distribution
registry behind a token service and behind htpasswd."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ffstore.errors import InputError
from ffstore.registry.base import SourceFailed
from ffstore.registry.oci_auth import (
    ANONYMOUS,
    Challenge,
    find_credentials,
    parse_challenges,
    registry_auth,
)
from tests.oci_registry import OciServer, TokenService, distribution, htpasswd_auth, token_service

HOST = "registry.example:5000"

# --- the challenge parser -------------------------------------------------------------


def test_bearer_challenge_with_several_scopes() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:team/model:push,pull repository:other:pull"')
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.params["service"] == "registry.example"
    assert challenge.scopes == {"repository:team/model:pull,push", "repository:other:pull"}


def test_several_challenges_quoted_commas_escapes_and_token68() -> None:
    header = (r'Basic realm="a, \"b\" \\ c", BEARER realm=https://x/t, error=insufficient_scope,'
              r' Negotiate YWJj==, Foo, Bar key = "v"')
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": r'a, "b" \ c'}),
        Challenge("bearer", {"realm": "https://x/t", "error": "insufficient_scope"}),
        Challenge("negotiate", token68="YWJj=="),
        Challenge("foo"),
        Challenge("bar", {"key": "v"}),
    ]


def test_garbled_headers_cost_only_what_they_garble() -> None:
    assert parse_challenges("") == []
    assert parse_challenges(' , ,"oops", Basic realm="x"') == [Challenge("basic", {"realm": "x"})]
    assert parse_challenges('Bearer realm="unterminated, still') == [
        Challenge("bearer", {"realm": "unterminated, still"})]


_TOKENS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.lists(st.tuples(_TOKENS, st.dictionaries(_TOKENS, st.text(), min_size=1, max_size=4)),
                max_size=4))
def test_challenges_read_back_as_written(challenges: list[tuple[str, dict[str, str]]]) -> None:
    header = ", ".join(f"{scheme} " + ", ".join(f"{name}={_quote(value)}" for name, value in params.items())
                       for scheme, params in challenges)
    assert parse_challenges(header) == [Challenge(scheme, params) for scheme, params in challenges]


@given(st.text())
def test_any_header_parses_without_raising(header: str) -> None:
    parse_challenges(header)


# --- where credentials come from ------------------------------------------------------


def test_ff_registry_auth_entries() -> None:
    environ = {"FF_REGISTRY_AUTH": f"other.example=x:y\n  {HOST}=ann:se:cr=et  ghcr.io=<token>:refresh"}
    found = find_credentials(HOST, environ)
    assert (found.source, found.username, found.password) == ("FF_REGISTRY_AUTH", "ann", "se:cr=et")
    assert found.identity_token is None
    token = find_credentials("GHCR.io", environ)
    assert (token.username, token.identity_token) == (None, "refresh")
    assert find_credentials("nowhere.example", environ) is ANONYMOUS
    assert "se:cr=et" not in repr(found)


@pytest.mark.parametrize("entry", ["s3cr3t", "=user:s3cr3t", "host=s3cr3t", "host=:s3cr3t"])
def test_ff_registry_auth_malformed(entry: str) -> None:
    with pytest.raises(InputError) as refused:
        find_credentials(HOST, {"FF_REGISTRY_AUTH": f"{HOST}=ann:fine {entry}"})
    message = str(refused.value)
    assert "entry 2 of 2" in message and "HOST[:PORT]=USERNAME:SECRET" in message
    assert "s3cr3t" not in message


def _config(folder: Path, config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


def test_docker_config_auths(tmp_path: Path) -> None:
    path = _config(tmp_path / ".docker", {"auths": {
        f"https://{HOST}/v1/": {"auth": _basic("ann", "pass:word")},
        "http://plain.example": {"username": "bo", "password": "pw"},
        "tokens.example": {"auth": _basic("ann", ""), "identitytoken": "idtok"},
        "https://index.docker.io/v1/": {"auth": _basic("hub", "hubpw")},
        "empty.example": {},
    }})
    environ = {"HOME": str(tmp_path)}
    found = find_credentials(HOST, environ)
    assert (found.source, found.username, found.password) == (str(path), "ann", "pass:word")
    assert find_credentials("plain.example", environ).password == "pw"
    assert find_credentials("tokens.example", environ).identity_token == "idtok"
    assert find_credentials("registry-1.docker.io", environ).username == "hub"
    assert find_credentials("empty.example", environ) is ANONYMOUS
    # FF_REGISTRY_AUTH comes first
    assert find_credentials(HOST, {**environ, "FF_REGISTRY_AUTH": f"{HOST}=env:pw"}).username == "env"


def test_docker_config_folder_comes_before_home(tmp_path: Path) -> None:
    _config(tmp_path / "home" / ".docker", {"auths": {HOST: {"auth": _basic("home", "x")}}})
    _config(tmp_path / "elsewhere", {"auths": {HOST: {"auth": _basic("elsewhere", "y")}}})
    environ = {"HOME": str(tmp_path / "home"), "DOCKER_CONFIG": str(tmp_path / "elsewhere")}
    assert find_credentials(HOST, environ).username == "elsewhere"


def test_docker_config_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"auths": {')
    with pytest.raises(InputError, match=r"config\.json is not valid JSON"):
        find_credentials(HOST, {"DOCKER_CONFIG": str(tmp_path)})


def test_docker_config_auth_that_is_not_base64(tmp_path: Path) -> None:
    _config(tmp_path, {"auths": {HOST: {"auth": "not base64!"}}})
    with pytest.raises(InputError, match=f"the `auth` of {HOST}"):
        find_credentials(HOST, {"DOCKER_CONFIG": str(tmp_path)})


HELPER = """#!/bin/sh
[ "$1" = get ] || exit 3
read -r server
case "$server" in
  {host}) echo '{{"ServerURL": "'"$server"'", "Username": "{username}", "Secret": "{secret}"}}' ;;
  broken.example) echo "the keychain is locked" >&2; exit 1 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"""


def _helper(folder: Path, name: str, host: str, username: str, secret: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"docker-credential-{name}"
    script.write_text(HELPER.format(host=host, username=username, secret=secret))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_credential_helpers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _helper(bin_dir, "fftest", HOST, "helped", "helper-secret")
    _helper(bin_dir, "ffstore", "stored.example", "<token>", "stored-refresh")
    _config(tmp_path, {"credHelpers": {HOST: "fftest", "broken.example": "fftest"},
                       "credsStore": "ffstore",
                       "auths": {"fallback.example": {"auth": _basic("file", "pw")}}})
    environ = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{bin_dir}:/usr/bin:/bin"}
    found = find_credentials(HOST, environ)
    assert (found.source, found.username, found.password) == (
        "docker-credential-fftest", "helped", "helper-secret")
    stored = find_credentials("stored.example", environ)
    assert (stored.source, stored.identity_token) == ("docker-credential-ffstore", "stored-refresh")
    # helpers that know nothing of a host leave it to `auths`
    assert find_credentials("fallback.example", environ).username == "file"
    with pytest.raises(SourceFailed, match=r"docker-credential-fftest failed for broken\.example: "
                                           r"the keychain is locked$"):
        find_credentials("broken.example", environ)
    with pytest.raises(SourceFailed, match=r"helper docker-credential-fftest for .*, which is not on PATH"):
        find_credentials(HOST, {**environ, "PATH": "/nonexistent"})


# --- against the registry -------------------------------------------------------------

USERS = {"writer": "w-secret-1", "reader": "r-secret-2"}
GRANTS = {"writer": {"pull", "push"}, "reader": {"pull"}}
REFRESH = {"refresh-secret-3": "writer"}


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    with token_service(tmp_path_factory.mktemp("tokens"), USERS, GRANTS, REFRESH) as service:
        yield service


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, tokens: TokenService) -> Iterator[OciServer]:
    with distribution(tmp_path_factory.mktemp("token-registry"), auth=tokens.auth) as server:
        yield server


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciServer]:
    root = tmp_path_factory.mktemp("basic-registry")
    with distribution(root, auth=htpasswd_auth(root, {"carol": "c-secret-4"})) as server:
        yield server


class Client:
    """An httpx client as the OCI backend builds it, recording the status of every
    response (the auth flow's 401s too), so tests can count round-trips."""

    def __init__(self, server: OciServer, environ: dict[str, str]) -> None:
        self.statuses: list[tuple[str, int]] = []
        self.base = f"http://{server.host}"
        self.http = httpx.Client(auth=registry_auth(server.host, environ),
                                 event_hooks={"response": [self._record]})

    def _record(self, response: httpx.Response) -> None:
        self.statuses.append((response.request.method, response.status_code))

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self.http.post(f"{self.base}/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(self.base).join(started.headers["Location"])
        # a streamed body, as the backend sends a file: it cannot be sent twice
        done = self.http.put(location.copy_merge_params({"digest": digest}), content=iter([data]),
                             headers={"Content-Length": str(len(data))})
        assert done.status_code == 201, done.text
        return digest

    def push_image(self, repository: str, tag: str, layer: bytes) -> None:
        config = self.push_blob(repository, b"{}")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config, "size": 2},
                    "layers": [{"mediaType": "application/octet-stream",
                                "digest": self.push_blob(repository, layer), "size": len(layer)}]}
        put = self.http.put(f"{self.base}/v2/{repository}/manifests/{tag}", json=manifest,
                            headers={"Content-Type": manifest["mediaType"]})
        assert put.status_code == 201, put.text


def _environ(server: OciServer, login: str) -> dict[str, str]:
    return {"FF_REGISTRY_AUTH": f"{server.host}={login}"}


def test_anonymous_gets_the_registry_401(token_registry: OciServer, tokens: TokenService) -> None:
    client = Client(token_registry, {})
    response = client.http.get(f"{client.base}/v2/team/model/tags/list")
    assert response.status_code == 401
    assert ("GET", None) in tokens.requests


def test_push_and_pull_with_a_token_cached_per_repository(token_registry: OciServer,
                                                         tokens: TokenService) -> None:
    client = Client(token_registry, _environ(token_registry, f"writer:{USERS['writer']}"))
    before = len(tokens.requests)
    client.push_image("team/model", "1.0", b"weights")
    # one token, earned by the first POST, serves every later request of the push
    assert len(tokens.requests) == before + 1
    assert client.statuses.count(("POST", 401)) == 1 and ("PUT", 401) not in client.statuses
    layer = "sha256:" + hashlib.sha256(b"weights").hexdigest()
    assert client.http.get(f"{client.base}/v2/team/model/blobs/{layer}").content == b"weights"
    tags = client.http.get(f"{client.base}/v2/team/model/tags/list")
    assert tags.json() == {"name": "team/model", "tags": ["1.0"]}
    assert len(tokens.requests) == before + 1
    assert [status for _, status in client.statuses].count(401) == 1


def test_docker_config_login_and_a_fresh_body_after_a_refused_stream(
        tmp_path: Path, token_registry: OciServer, tokens: TokenService) -> None:
    _config(tmp_path, {"auths": {f"https://{token_registry.host}": {
        "auth": _basic("writer", USERS["writer"])}}})
    client = Client(token_registry, {"DOCKER_CONFIG": str(tmp_path)})
    started = client.http.post(f"{client.base}/v2/docker/model/blobs/uploads/")
    assert started.status_code == 202
    # a stream to a repository with no token yet is not sent twice: the 401 comes back,
    # and the token it earned goes with the next try
    data = b"streamed"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"{client.base}/v2/docker/other/blobs/uploads/?digest={digest}"
    headers = {"Content-Length": str(len(data))}
    assert client.http.post(url, content=iter([data]), headers=headers).status_code == 401
    assert client.http.post(url, content=iter([data]), headers=headers).status_code == 202


def test_an_expiring_token_is_not_sent_ahead(token_registry: OciServer, tokens: TokenService) -> None:
    client = Client(token_registry, _environ(token_registry, f"writer:{USERS['writer']}"))
    before = len(tokens.requests)
    tokens.lifetime = 3  # within the margin ff keeps before a token's expiry
    try:
        for _ in range(2):
            client.http.get(f"{client.base}/v2/team/model/tags/list")
    finally:
        tokens.lifetime = 300
    assert len(tokens.requests) == before + 2
    assert [status for _, status in client.statuses].count(401) == 2


def test_identity_token_uses_the_oauth_refresh_grant(token_registry: OciServer,
                                                     tokens: TokenService) -> None:
    client = Client(token_registry, _environ(token_registry, "<token>:refresh-secret-3"))
    client.push_blob("refreshed/model", b"via refresh token")
    assert tokens.requests[-1] == ("POST", "writer")


def test_threads_share_one_token(token_registry: OciServer, tokens: TokenService) -> None:
    writer = Client(token_registry, _environ(token_registry, f"writer:{USERS['writer']}"))
    digest = writer.push_blob("shared/model", b"shared")
    reader = Client(token_registry, _environ(token_registry, f"reader:{USERS['reader']}"))
    before = len(tokens.requests)
    bodies: list[bytes] = []

    def pull() -> None:
        bodies.append(reader.http.get(f"{reader.base}/v2/shared/model/blobs/{digest}").content)

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bodies == [b"shared"] * 8
    assert len(tokens.requests) == before + 1


def test_a_pull_only_account_is_refused_a_push(token_registry: OciServer) -> None:
    client = Client(token_registry, _environ(token_registry, f"reader:{USERS['reader']}"))
    with pytest.raises(SourceFailed) as refused:
        client.http.post(f"{client.base}/v2/team/model/blobs/uploads/")
    message = str(refused.value)
    assert message.startswith(f"{token_registry.host} refused POST on repository team/model with the "
                              "credentials from FF_REGISTRY_AUTH (it asked for "
                              "repository:team/model:pull,push)")
    assert f"docker login {token_registry.host}" in message and USERS["reader"] not in message


def test_a_wrong_password_is_refused_without_echoing_it(token_registry: OciServer) -> None:
    client = Client(token_registry, _environ(token_registry, "writer:wrong-secret-5"))
    with pytest.raises(SourceFailed) as refused:
        client.http.get(f"{client.base}/v2/team/model/tags/list")
    message = str(refused.value)
    assert message == (f"the token service of {token_registry.host} refused the credentials from "
                       f"FF_REGISTRY_AUTH: run `docker login {token_registry.host}`, or set "
                       f"FF_REGISTRY_AUTH={token_registry.host}=USERNAME:SECRET")


def test_credentials_never_cross_plain_http_to_another_host(tmp_path: Path,
                                                            tokens: TokenService) -> None:
    auth = {"token": {**tokens.auth["token"], "realm": "http://tokens.example/token"}}
    with distribution(tmp_path / "registry", auth=auth) as server:
        client = Client(server, _environ(server, "writer:plain-secret-6"))
        with pytest.raises(SourceFailed, match=r"over plain http at tokens\.example"):
            client.http.get(f"{client.base}/v2/team/model/tags/list")


def test_token_service_out_of_reach(tmp_path: Path, tokens: TokenService) -> None:
    auth = {"token": {**tokens.auth["token"], "realm": "http://127.0.0.1:9/token"}}
    with distribution(tmp_path / "registry", auth=auth) as server:
        client = Client(server, {})
        with pytest.raises(SourceFailed, match=f"the token service of {server.host} "
                                               r"\(127.0.0.1\) failed: "):
            client.http.get(f"{client.base}/v2/")


def test_basic_registry(basic_registry: OciServer) -> None:
    assert Client(basic_registry, {}).http.get(f"http://{basic_registry.host}/v2/").status_code == 401
    client = Client(basic_registry, _environ(basic_registry, "carol:c-secret-4"))
    client.push_blob("basic/model", b"basic")
    assert client.http.get(f"{client.base}/v2/basic/model/tags/list").status_code == 404  # no tags
    # Basic, once asked for, goes with every later request
    assert [status for _, status in client.statuses].count(401) == 1
    wrong = Client(basic_registry, _environ(basic_registry, "carol:wrong-secret-7"))
    with pytest.raises(SourceFailed) as refused:
        wrong.http.get(f"{wrong.base}/v2/")
    assert "wrong-secret-7" not in str(refused.value)
    assert str(refused.value).startswith(f"{basic_registry.host} refused GET on /v2/ with the "
                                         "credentials from FF_REGISTRY_AUTH")
