"""OCI registries against the real Distribution registry on 127.0.0.1 (see
tests/oci_registry.py): publish, lock, sync and rollback through it, mirrors, a
replayed index, a tampered layer, an interrupted pull, and `oras` (an independent
OCI client) reading what ff pushed. Authentication: tests/test_oci_auth.py."""

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import oras.client
import pytest

from ffstore.errors import FFError, InputError
from ffstore.registry import oci_push
from ffstore.registry.base import SourceFailed, TransferOptions
from ffstore.registry.oci import OciRegistry, oci_client
from ffstore.registry.oci_auth import registry_auth
from ffstore.registry.oci_format import FF_MANIFEST, MODEL_ARTIFACT, MODEL_CONFIG, MODEL_WEIGHT
from ffstore.registry.oci_names import parse_oci, version_tag
from tests.conftest import ULFD, YUNET, Workspace
from tests.oci_registry import (
    OciServer,
    RegistryProxy,
    distribution,
    htpasswd_auth,
    token_service,
)

SLIM, RFB = ULFD["slim-320"], ULFD["RFB-320"]


USERS = {"writer": "w-secret-1", "reader": "r-secret-2"}


@pytest.fixture(scope="module", params=["anonymous", "token"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciServer]:
    """The registry every test here runs against twice: open, and behind a token
    service as Docker Hub, GHCR or Harbor run it (`writer` may push, `reader` only
    pull), the tests acting as `writer` through FF_REGISTRY_AUTH."""
    if request.param == "anonymous":
        with distribution(tmp_path_factory.mktemp("oci")) as server:
            yield server
        return
    grants = {"writer": {"pull", "push"}, "reader": {"pull"}}
    with token_service(tmp_path_factory.mktemp("tokens"), USERS, grants) as tokens, \
            distribution(tmp_path_factory.mktemp("oci"), auth=tokens.auth) as server:
        yield replace(server, login=("writer", USERS["writer"]))


@pytest.fixture
def registry(server: OciServer, monkeypatch: pytest.MonkeyPatch) -> OciServer:
    """The registry, with ff finding the test's credentials where a user keeps them,
    and no others."""
    monkeypatch.setenv("DOCKER_CONFIG", str(server.storage.parent / "no-docker-config"))
    monkeypatch.delenv("FF_REGISTRY_AUTH", raising=False)
    for name, value in server.environ.items():
        monkeypatch.setenv(name, value)
    return server


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    """A repository of its own per test, so tests can share one registry."""
    return "ff/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")


def _oras(server: OciServer) -> oras.client.OrasClient:
    """An ORAS client, logged in as the tests. One per repository: oras-py keeps the
    token of the first repository it reads and does not fetch another."""
    client = oras.client.OrasClient(hostname=server.host, insecure=True)
    if server.login is not None:
        client.login(*server.login, hostname=server.host)
    return client


def _publish(workspace: Workspace, location: str, path: Path, version: str,
             model: str = "ulfd", expect: int = 0) -> str:
    return workspace.run("publish", str(path), "--registry", location, "--model", model,
                         "--version", version, "--module", "face_detector", "--key", "alice",
                         expect=expect).out


def _client(server: OciServer) -> httpx.Client:
    """A client of the registry's API as any OCI client is, logged in as the tests."""
    return httpx.Client(base_url=f"http://{server.host}/v2/", timeout=10,
                        auth=registry_auth(server.host, server.environ),
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})


def _api(server: OciServer, path: str) -> httpx.Response:
    with _client(server) as client:
        return client.get(path)


def _blob_file(server: OciServer, digest: str) -> Path:
    hexd = digest.split(":")[1]
    return server.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def _digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _project(workspace: Workspace, location: str, extra: str = "") -> None:
    workspace.write_toml({"face_detector": ("ulfd", ">=1.0")}, registry=location, extra=extra)


def test_publish_lock_sync_rollback_and_oras_reads_it(workspace: Workspace, registry: OciServer,
                                                      repository: str, tmp_path: Path) -> None:
    location = registry.location(repository)
    _project(workspace, location)
    _publish(workspace, location, SLIM, "1.0.0")
    _publish(workspace, location, RFB, "1.1.0")
    workspace.run("lock")
    assert "ulfd" in workspace.lock_text and "1.1.0" in workspace.lock_text
    assert "fetched 1 files" in workspace.run("sync").out
    assert "1.1.0 -> 1.0.0" in workspace.run("rollback", "face_detector").out
    workspace.run("lock")  # the hold survives a new lock
    assert 'version = "1.0.0"' in workspace.lock_text
    path = Path(workspace.run("path", "face_detector").out.strip())
    assert _digest(path) == _digest(SLIM)

    # What another OCI tool sees: the version tags, ModelPack media types, the files.
    client = _oras(registry)
    model = f"{registry.host}/{repository}/ulfd"
    tags = client.get_tags(model)
    assert {"1.0.0", "1.1.0"} <= set(tags)
    assert sum(tag.endswith(".sig") for tag in tags) == 2
    manifest = _api(registry, f"{repository}/ulfd/manifests/1.0.0").json()
    assert manifest["artifactType"] == MODEL_ARTIFACT
    assert manifest["config"]["mediaType"] == MODEL_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [MODEL_WEIGHT, FF_MANIFEST]
    assert manifest["layers"][0]["annotations"]["org.cncf.model.filepath"] == SLIM.name
    pulled = client.pull(target=f"{model}:1.0.0", outdir=str(tmp_path / "pulled"))
    by_name = {Path(p).name: Path(p) for p in pulled}
    assert _digest(by_name[SLIM.name]) == _digest(SLIM)
    ff_manifest = json.loads(by_name["ff-manifest.json"].read_bytes())
    assert ff_manifest["files"][0]["digest"] == _digest(SLIM)
    signature_tag = "sha256-" + _digest(by_name["ff-manifest.json"]).split(":")[1] + ".sig"
    signatures = _oras(registry).pull(target=f"{model}:{signature_tag}",
                                      outdir=str(tmp_path / "signatures"))
    assert workspace.key_id in Path(signatures[0]).read_text()
    index = _oras(registry).pull(target=f"{registry.host}/{repository}:ff-index",
                                 outdir=str(tmp_path / "index"))
    assert json.loads(Path(index[0]).read_bytes())["signed"]["models"]["ulfd"].keys() == {
        "1.0.0", "1.1.0"}


def test_a_second_publish_to_another_repository_sends_no_blob_bytes(
        workspace: Workspace, registry: OciServer, repository: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = _publish(workspace, registry.location(repository + "/a"), SLIM, "1.0.0")
    assert "1.1 MiB added" in first
    localhost = registry.location(repository + "/c").replace("127.0.0.1", "localhost")
    if registry.login is not None:  # credentials are looked up by the host as written
        monkeypatch.setenv("FF_REGISTRY_AUTH", " ".join(
            f"{host}={':'.join(registry.login)}"
            for host in (registry.host, registry.host.replace("127.0.0.1", "localhost"))))
    again = _publish(workspace, localhost, SLIM, "1.0.0")  # another spelling of the host
    assert "published" in again and "0 B added" in again
    assert _api(registry, f"{repository}/c/ulfd/blobs/{_digest(SLIM)}").content == SLIM.read_bytes()
    # Publishing the same release into the same registry again changes nothing.
    tags = _api(registry, f"{repository}/c/ulfd/tags/list").json()["tags"]
    again = _publish(workspace, registry.location(repository + "/c"), SLIM, "1.0.0")
    assert "already published, nothing new" in again and "0 B added" in again
    assert _api(registry, f"{repository}/c/ulfd/tags/list").json()["tags"] == tags
    # What ff remembers of mounts is a cache: damaged, it costs an upload, nothing else.
    (workspace.home / "state" / "oci-blobs.json").write_text('{"x": [1], "y": {"z": 2}}')
    assert "1.1 MiB added" in _publish(workspace, registry.location(repository + "/d"), SLIM,
                                       "1.0.0")


def test_a_refused_publish_pushes_nothing(workspace: Workspace, registry: OciServer,
                                          repository: str) -> None:
    location = registry.location(repository)
    _publish(workspace, location, SLIM, "1.0.0")
    before = _api(registry, f"{repository}/ulfd/tags/list").json()
    index = _api(registry, f"{repository}/manifests/ff-index").headers["Docker-Content-Digest"]
    result = workspace.run("publish", str(RFB), "--registry", location, "--model", "ulfd",
                           "--version", "1.0.0", "--module", "face_detector", "--key", "alice",
                           expect=1)
    assert "already published with other content" in result.err
    result = workspace.run("publish", str(RFB), "--registry", location, "--model", "Upper",
                           "--version", "1.0.0", "--module", "face_detector", "--key", "alice",
                           expect=2)
    assert "cannot be an OCI repository name" in result.err
    assert _api(registry, f"{repository}/ulfd/tags/list").json() == before
    assert _api(registry, f"{repository}/manifests/ff-index").headers[
        "Docker-Content-Digest"] == index
    assert _api(registry, f"{repository}/ulfd/blobs/{_digest(RFB)}").status_code == 404


def test_a_replayed_index_is_refused(workspace: Workspace, registry: OciServer,
                                     repository: str) -> None:
    location = registry.location(repository)
    _project(workspace, location)
    _publish(workspace, location, SLIM, "1.0.0")
    old = _api(registry, f"{repository}/manifests/ff-index").content
    _publish(workspace, location, RFB, "1.1.0")
    workspace.run("lock")
    # The registry (or someone who controls it) serves the old, validly signed index.
    with _client(registry) as client:
        assert client.put(f"{repository}/manifests/ff-index", content=old, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status_code == 201
    result = workspace.run("lock", "--upgrade", expect=1)
    assert "rollback attack" in result.err, result.err


def test_a_tampered_layer_is_refused_and_nothing_is_stored(workspace: Workspace,
                                                           registry: OciServer,
                                                           repository: str) -> None:
    location = registry.location(repository)
    _project(workspace, location)
    data = bytearray(SLIM.read_bytes())
    data[1000] ^= 0xFF
    copy = workspace.root / "tampered" / SLIM.name
    copy.parent.mkdir()
    copy.write_bytes(bytes(data))  # a blob ff never stored before, tampered in the registry
    _publish(workspace, location, copy, "1.0.0")
    workspace.run("lock")
    stored = _blob_file(registry, _digest(copy))
    stored.write_bytes(SLIM.read_bytes())  # same size, other bytes
    result = workspace.run("sync", expect=1)
    assert "nothing was stored" in result.err
    assert not list((workspace.home / "blobs").rglob(_digest(copy).split(":")[1]))


def test_an_interrupted_pull_is_resumed_with_a_range_request(
        workspace: Workspace, registry: OciServer, repository: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(workspace, registry.location(repository), RFB, "1.0.0")
    proxy = RegistryProxy(registry.host, upload=False)
    try:
        if registry.login is not None:  # the same account, at the proxy's address
            monkeypatch.setenv("FF_REGISTRY_AUTH", f"{proxy.host}={':'.join(registry.login)}")
        _project(workspace, f"oci://{proxy.host}/{repository}")
        workspace.run("lock")
        proxy.take()
        proxy.cut_after = RFB.stat().st_size // 2
        assert "fetched 1 files" in workspace.run("sync").out
        assert proxy.cuts == 1
        # Each byte of the blob crossed once (plus headers and the manifest).
        assert proxy.sent < RFB.stat().st_size + 64 * 1024
    finally:
        proxy.close()
    path = Path(workspace.run("path", "face_detector").out.strip())
    assert _digest(path) == _digest(RFB)


def test_an_interrupted_push_is_sent_again_and_lands_whole(
        workspace: Workspace, registry: OciServer, repository: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATCH cut off midway: where the registry keeps the session, ff asks what it
    holds and sends the rest; Distribution gives the session up, so ff sends the blob
    again in a new one (what docker push does). Either way, the blob lands whole."""
    monkeypatch.setattr(oci_push, "CHUNK", 128 << 10)
    size = RFB.stat().st_size
    proxy = RegistryProxy(registry.host, upload=True, cut_after=size // 2)
    try:
        if registry.login is not None:
            monkeypatch.setenv("FF_REGISTRY_AUTH", f"{proxy.host}={':'.join(registry.login)}")
        assert "published" in _publish(workspace, f"oci://{proxy.host}/{repository}", RFB,
                                       "1.0.0")
        assert proxy.cuts == 1
        assert proxy.sent < 2 * size  # what went before the cut, and the blob once
    finally:
        proxy.close()
    assert _api(registry, f"{repository}/ulfd/blobs/{_digest(RFB)}").content == RFB.read_bytes()


def test_a_mirror_serves_blobs_and_the_registry_backs_a_bad_one(
        workspace: Workspace, registry: OciServer, repository: str, tmp_path: Path) -> None:
    location = registry.location(repository)
    with distribution(tmp_path / "mirror") as mirror:
        mirror_location = mirror.location(repository)
        _publish(workspace, location, RFB, "1.0.0")
        _publish(workspace, mirror_location, RFB, "1.0.0")  # a replica
        _project(workspace, "x")
        (workspace.project / "facefusion.toml").write_text(
            (workspace.project / "facefusion.toml").read_text().replace(
                'default = "x"', f'default = {{ url = "{location}", mirrors = ["{mirror_location}"] }}'))
        workspace.run("lock")
        _blob_file(registry, _digest(RFB)).unlink()  # only the mirror can serve it now
        assert "fetched 1 files" in workspace.run("sync").out
        shutil.rmtree(workspace.home / "blobs")
        shutil.rmtree(workspace.home / "views", ignore_errors=True)
        _blob_file(registry, _digest(RFB)).parent.mkdir(parents=True, exist_ok=True)
        _blob_file(registry, _digest(RFB)).write_bytes(RFB.read_bytes())
        data = bytearray(RFB.read_bytes())
        data[5] ^= 1
        _blob_file(mirror, _digest(RFB)).write_bytes(bytes(data))  # the mirror lies
        assert "fetched 1 files" in workspace.run("sync").out


def test_warm_sync_and_rollback_never_open_the_registry(workspace: Workspace,
                                                        repository: str, tmp_path: Path) -> None:
    with distribution(tmp_path / "gone") as doomed:
        location = doomed.location(repository)
        _publish(workspace, location, SLIM, "1.0.0")
        _publish(workspace, location, RFB, "1.1.0")
        workspace.write_toml({"face_detector": ("ulfd", "==1.0.0")}, registry=location)
        workspace.run("lock")
        workspace.run("sync")
        _project(workspace, location)
        workspace.run("lock", "--upgrade")
        workspace.run("sync")
    # The registry is gone: what the store holds is enough.
    assert "1.1.0 -> 1.0.0" in workspace.run("rollback", "face_detector").out
    assert "fetched 0 files" in workspace.run("sync").out


def test_locations_are_checked_and_plain_http_is_only_for_this_machine(
        workspace: Workspace) -> None:
    assert parse_oci("oci://Registry.Example:5000/team/models", "x").host == \
        "registry.example:5000"
    for bad in ("oci://host", "oci://host/Upper", "oci:///repo", "oci://host/a//b"):
        with pytest.raises(InputError):
            parse_oci(bad, "x")
    away = parse_oci("oci://10.1.2.3:5000/ff", "x")
    assert away.base_url(insecure=False).startswith("https://")
    assert away.base_url(insecure=True).startswith("http://")
    assert parse_oci("oci://127.0.0.1:5000/ff", "x").base_url(False).startswith("http://")
    # Plain HTTP away from this machine is refused before a connection is made, be it
    # the registry's address or where a redirect leads.
    options = TransferOptions(5, 1, workspace.root / "partial")
    with oci_client(away, options, insecure=False) as client, \
            pytest.raises(SourceFailed, match="plain HTTP, which ff refuses"):
        client.get("http://10.1.2.3:5000/v2/")
    assert OciRegistry("oci://10.1.2.3:5000/ff", (), options).base == "https://10.1.2.3:5000/v2/"
    assert parse_oci("oci://localhost:5000/ff", "x").canonical == \
        parse_oci("oci://127.0.0.1:5000/ff/", "x").canonical
    assert version_tag("1.0.0+local.2") == "1.0.0_local.2"
    with pytest.raises(InputError):
        version_tag("1!2.0")
    workspace.write_toml({"face_detector": ("ulfd", ">=1.0")}, registry="oci://host/Bad")
    assert "not a valid OCI name" in workspace.run("lock", expect=2).err
    (workspace.project / "facefusion.toml").write_text(
        '[registries]\ndefault = { url = "oci://host/ff", mirrors = ["https://m.example/ff"] }\n')
    assert "must be oci:// locations" in workspace.run("lock", expect=2).err
    (workspace.project / "facefusion.toml").write_text(
        '[registries]\ndefault = { url = "oci://host/ff", insecure = "yes" }\n')
    assert "insecure must be true or false" in workspace.run("lock", expect=2).err
    (workspace.project / "facefusion.toml").unlink()
    result = workspace.run("publish", str(SLIM), "--registry", "https://host/ff", "--model",
                           "ulfd", "--version", "1.0.0", "--module", "face_detector", "--key",
                           "alice", expect=2)
    assert "not over HTTP" in result.err


def test_a_key_rotation_over_oci_is_followed(workspace: Workspace, registry: OciServer,
                                             repository: str) -> None:
    location = registry.location(repository)
    _project(workspace, location)  # trusts alice only
    _publish(workspace, location, SLIM, "1.0.0")
    workspace.run("key", "generate", "bob")
    assert "now signs" in workspace.run("key", "rotate", "alice", "bob", "--registry",
                                        location).out
    workspace.run("publish", str(RFB), "--registry", location, "--model", "ulfd", "--version",
                  "1.1.0", "--module", "face_detector", "--key", "bob")
    workspace.run("lock")
    assert 'version = "1.1.0"' in workspace.lock_text


def test_a_publish_racing_another_is_told_to_run_again(workspace: Workspace,
                                                       registry: OciServer,
                                                       repository: str) -> None:
    from ffstore.publish import OciTarget, index_slot, sign_next
    from ffstore.registry.base import TransferOptions
    from ffstore.signing import load_key

    location = registry.location(repository)
    _publish(workspace, location, SLIM, "1.0.0")
    target = OciTarget(location, TransferOptions(5, 2, workspace.root / "partial"),
                       workspace.root / "oci-blobs.json")
    with index_slot(target) as slot:
        index = slot.read()
        assert index is not None and index.version == 1
        _publish(workspace, location, RFB, "1.1.0")  # someone else, meanwhile
        with pytest.raises(FFError, match="another publish changed the index"):
            slot.write(sign_next(index, load_key(workspace.home / "keys", "alice"), 30))
    assert "1.1.0" in _api(registry, f"{repository}/ulfd/tags/list").json()["tags"]


# --- behind authentication --------------------------------------------------------------

def _login(monkeypatch: pytest.MonkeyPatch, server: OciServer, user: str | None) -> None:
    if user is None:
        monkeypatch.delenv("FF_REGISTRY_AUTH", raising=False)
    else:
        monkeypatch.setenv("FF_REGISTRY_AUTH", f"{server.host}={user}:{USERS[user]}")


def test_who_may_pull_and_push_behind_a_token_service(workspace: Workspace,
                                                     registry: OciServer, repository: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if registry.login is None:
        pytest.skip("the open registry lets anyone push")
    location = registry.location(repository)
    _project(workspace, location)
    _login(monkeypatch, registry, None)
    result = workspace.run("publish", str(SLIM), "--registry", location, "--model", "ulfd",
                           "--version", "1.0.0", "--module", "face_detector", "--key", "alice",
                           expect=1)
    assert result.err.startswith("error: cannot") and "401" in result.err
    assert "FF_REGISTRY_AUTH" in result.err and "Traceback" not in result.err
    assert "credentials" in workspace.run("lock", expect=1).err

    _login(monkeypatch, registry, "writer")
    assert "1.1 MiB added" in _publish(workspace, location, SLIM, "1.0.0")
    assert "0 B added" in _publish(workspace, registry.location(repository + "/copy"),
                                   SLIM, "1.0.0")  # mounted, with a token for both repositories

    _login(monkeypatch, registry, "reader")
    workspace.run("lock")
    assert "fetched 1 files" in workspace.run("sync").out
    result = workspace.run("publish", str(RFB), "--registry", location, "--model", "ulfd",
                           "--version", "1.1.0", "--module", "face_detector", "--key", "alice",
                           expect=1)
    assert "refused" in result.err and USERS["reader"] not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_publish_and_sync_with_basic_auth(workspace: Workspace, repository: str,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "basic"
    root.mkdir()
    with distribution(root, auth=htpasswd_auth(root, {"writer": USERS["writer"]})) as server:
        location = server.location(repository)
        _project(workspace, location)
        _login(monkeypatch, server, "writer")
        _publish(workspace, location, SLIM, "1.0.0")
        workspace.run("lock")
        assert "fetched 1 files" in workspace.run("sync").out


def test_import_a_facefusion_folder_into_oci_and_init_a_project(workspace: Workspace,
                                                                registry: OciServer,
                                                                repository: str) -> None:
    models = workspace.root / "facefusion" / ".assets" / "models"
    models.mkdir(parents=True)
    (models / "yunet_2023mar.onnx").write_bytes(YUNET.read_bytes())
    location = registry.location(repository)
    result = workspace.run("import", str(workspace.root / "facefusion"), "--registry", location,
                           "--key", "alice", "--init")
    assert "yunet_2023mar 1.0.0 (face_detector)" in result.out
    assert f'default = "{location}"' in (workspace.project / "facefusion.toml").read_text()
    workspace.write_toml({"face_detector": ("yunet_2023mar", "==1.0.0")}, registry=location)
    workspace.run("lock")
    assert "fetched 1 files" in workspace.run("sync").out


def _push_raw(server: OciServer, repository: str, tag: str, layers: list[tuple[str, bytes]]
              ) -> None:
    """Push an image manifest of `layers` (media type, bytes) under `tag`, as anyone
    with push rights could: what ff must not take at its word."""
    from ffstore.registry.oci_format import EMPTY_CONFIG, Blob, image_manifest

    with _client(server) as client:
        descriptors = []
        for media_type, data in [(EMPTY_CONFIG.media_type, EMPTY_CONFIG.data), *layers]:
            blob = Blob(media_type, data)
            started = client.post(f"{repository}/blobs/uploads/")
            session = started.url.join(started.headers["Location"])
            assert client.put(session.copy_merge_params({"digest": blob.digest}),
                              content=data).status_code == 201
            descriptors.append(blob.descriptor())
        document = image_manifest("application/vnd.ff.index.v1+json", descriptors[0],
                                   descriptors[1:])
        assert client.put(f"{repository}/manifests/{tag}", content=document, headers={
            "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status_code == 201


@pytest.mark.parametrize(("layers", "message"), [
    ([("application/vnd.ff.index.v1+json", b"x" * (9 << 20))], "more than the 8192 KiB"),
    ([("application/octet-stream", b"{}")], "it was not pushed by ff"),
    ([("application/vnd.ff.index.v1+json", b"[]")], "not a JSON object"),
])
def test_a_registry_index_that_is_not_ffs_is_refused_in_one_line(
        workspace: Workspace, registry: OciServer, repository: str,
        layers: list[tuple[str, bytes]], message: str) -> None:
    _push_raw(registry, repository, "ff-index", layers)
    _project(workspace, registry.location(repository))
    result = workspace.run("lock", expect=1)
    assert message in result.err and len(result.err.strip().splitlines()) == 1, result.err
