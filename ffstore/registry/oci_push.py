"""Writing to an OCI registry through the distribution API: blob existence checks,
cross-repository mounts, chunked uploads, manifests under tags. What to push is
decided in ffstore/publish_oci.py; this module only speaks the protocol.

No byte is sent twice: a blob the repository has is skipped (HEAD), one the registry
holds in another repository is mounted (ff remembers, per host, which repositories
it pushed each blob to, as Docker's blob cache does), and only the rest is uploaded,
in chunks. After a dropped connection an upload goes on from what the registry says
it holds, or, where the registry gives the session up, starts again."""

import functools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from ffstore import fsutil
from ffstore.canonical import canonical_bytes, load_json
from ffstore.errors import FFError
from ffstore.registry.base import Document, SourceFailed
from ffstore.registry.http import classify, status_failure
from ffstore.registry.oci import ACCEPT, OciRegistry
from ffstore.registry.oci_format import IMAGE_MANIFEST, Blob
from ffstore.registry.oci_names import INDEX_TAG

CHUNK = 32 << 20  # bytes per PATCH: large enough to be few, small enough to resume cheaply
MAX_REMEMBERED = 8  # repositories remembered per blob
OCTETS = "application/octet-stream"


def _registry_errors(response: httpx.Response) -> str:
    """The registry's reason, from the distribution spec's error body when it sent
    one (`{"errors": [{"code", "message"}]}`)."""
    try:
        errors = load_json(response.read(), "error").get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors
                         if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""


def _expect(response: httpx.Response, *codes: int) -> httpx.Response:
    if response.status_code in codes:
        return response
    raise status_failure(response, _registry_errors(response))


class MountMemory:
    """Which repositories of a host ff pushed each blob to: where a later push to
    another repository can mount it from. A cache only: losing it costs an upload."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, list[str]]] = {}
        if path is not None:
            try:
                loaded = load_json(path.read_bytes(), str(path))
            except (OSError, ValueError):
                loaded = {}  # a missing or damaged cache is an empty one
            self._seen = {host: {digest: [r for r in repositories if isinstance(r, str)]
                                 for digest, repositories in digests.items()
                                 if isinstance(repositories, list)}
                          for host, digests in (loaded if isinstance(loaded, dict) else {}).items()
                          if isinstance(digests, dict)}

    def sources(self, host: str, digest: str) -> list[str]:
        with self._lock:
            return list(self._seen.get(host, {}).get(digest, []))

    def saw(self, host: str, digest: str, repository: str) -> None:
        with self._lock:
            repositories = self._seen.setdefault(host, {}).setdefault(digest, [])
            if repository in repositories:
                repositories.remove(repository)
            repositories.insert(0, repository)
            del repositories[MAX_REMEMBERED:]

    def save(self) -> None:
        if self._path is not None:
            with self._lock:
                data = canonical_bytes(self._seen)
            fsutil.atomic_write(self._path, data)


class OciPusher:
    """Pushes to the registry `reader` reads, with its client, credentials and retries."""

    def __init__(self, reader: OciRegistry, memory: MountMemory) -> None:
        self.reader = reader
        self._memory = memory
        self.bytes_sent = 0

    def _url(self, repository: str, path: str) -> str:
        return f"{self.reader.base}{repository}/{path}"

    def _send(self, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        try:
            return attempt()
        except httpx.RequestError as exc:
            raise classify(exc, self.reader.options.timeout) from None

    def _call(self, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        """`attempt`, retried as every registry request is; a failure is the push's."""
        try:
            return self.reader.retrying(lambda: self._send(attempt))
        except SourceFailed as exc:
            raise FFError(f"cannot push to {self.reader.location}: {exc}; "
                          f"{self.reader.advice}") from None

    # --- documents --------------------------------------------------------------------

    def find_index(self) -> tuple[bytes | None, str | None]:
        """The registry's index and the digest of the manifest its tag named, so a
        push can tell whether someone else pushed an index meanwhile. The digest is
        taken first: an index pushed in between then fails that check, never passes it."""
        seen = self.tag_digest(self.reader.where.repository, INDEX_TAG)
        return self.reader.find(Document("index")), seen

    def find_signatures(self, digest: str, model: str) -> bytes | None:
        return self.reader.find(Document("signatures", digest, model))

    def tag_digest(self, repository: str, tag: str) -> str | None:
        response = self._call(lambda: _expect(self.reader.client.head(
            self._url(repository, f"manifests/{tag}"), headers=ACCEPT), 200, 404))
        return response.headers.get("Docker-Content-Digest") if response.status_code == 200 \
            else None

    def put_manifest(self, repository: str, tag: str, document: bytes) -> None:
        self._call(lambda: _expect(self.reader.client.put(
            self._url(repository, f"manifests/{tag}"), content=document,
            headers={"Content-Type": IMAGE_MANIFEST}), 201, 200))

    # --- blobs ------------------------------------------------------------------------

    def _has(self, repository: str, digest: str) -> bool:
        response = self._call(lambda: _expect(self.reader.client.head(
            self._url(repository, f"blobs/{digest}")), 200, 404))
        return response.status_code == 200

    def _start(self, repository: str, digest: str, mount_from: Iterable[str]) -> str | None:
        """An upload session's URL, or None when a mount made the upload needless.
        A mount the registry declines (202) opens a session all the same; one the
        credentials may not make (no pull on the source) just costs the upload."""
        for source in mount_from:
            if source == repository:
                continue
            try:
                response = self.reader.retrying(lambda source=source: self._send(
                    lambda: _expect(self.reader.client.post(
                        self._url(repository, "blobs/uploads/"),
                        params={"mount": digest, "from": source}), 201, 202)))
            except SourceFailed:
                continue
            if response.status_code == 201:
                return None
            return str(response.url.join(response.headers["Location"]))
        return self._new_session(repository)

    def _new_session(self, repository: str) -> str:
        response = self._call(lambda: _expect(self.reader.client.post(
            self._url(repository, "blobs/uploads/")), 202))
        return str(response.url.join(response.headers["Location"]))

    def push_blob(self, repository: str, digest: str, size: int,
                  read: Callable[[int, int], bytes]) -> None:
        """Make `repository` hold the blob, sending it only if no repository of the
        registry that ff knows of has it. `read(offset, count)` gives its bytes."""
        host = self.reader.where.canonical_host  # 127.0.0.1 and localhost: one registry
        if not self._has(repository, digest):
            session = self._start(repository, digest, self._memory.sources(host, digest))
            if session is not None:
                try:
                    self._upload(session, digest, size, read)
                except _SessionLost:
                    # Distribution gives a session up once a PATCH broke off (its state
                    # no longer matches what it holds): send the blob again, in a new one.
                    try:
                        self._upload(self._new_session(repository), digest, size, read)
                    except _SessionLost as lost:
                        raise FFError(f"cannot push to {self.reader.location}: the registry "
                                      f"dropped the upload of {digest} twice ({lost}); run "
                                      "again") from None
        self._memory.saw(host, digest, repository)

    def push_bytes(self, repository: str, blob: Blob) -> None:
        data = blob.data
        self.push_blob(repository, blob.digest, len(data),
                       lambda offset, count: data[offset:offset + count])

    def _upload(self, session: str, digest: str, size: int,
                read: Callable[[int, int], bytes]) -> None:
        """PATCH the bytes chunk by chunk, then PUT the digest to close the session.
        A retry first asks the session's status (its Range), so after a dropped
        connection only what the registry lacks is sent again, where the registry
        keeps the session (raises _SessionLost where it does not)."""
        offset = 0
        while offset < size:
            session, offset = self._call(functools.partial(
                self._patch, session, offset, read(offset, min(CHUNK, size - offset)), [0]))
        final = httpx.URL(session).copy_merge_params({"digest": digest})
        self._call(lambda: _expect(self.reader.client.put(
            final, content=b"", headers={"Content-Type": OCTETS}), 201))

    def _patch(self, session: str, offset: int, chunk: bytes, tries: list[int]
               ) -> tuple[str, int]:
        """Send `chunk` (at `offset`); the session's next URL and offset."""
        tries[0] += 1
        if tries[0] > 1:
            session, received = self._status(session)
            if not offset <= received <= offset + len(chunk):
                raise SourceFailed(f"the upload session holds {received} bytes where {offset} "
                                   "were sent; run again")
            chunk, offset = chunk[received - offset:], received
            if not chunk:
                return session, offset
        response = _expect(self.reader.client.patch(session, content=chunk, headers={
            "Content-Type": OCTETS, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}), 202)
        self.bytes_sent += len(chunk)
        return str(response.url.join(response.headers["Location"])), offset + len(chunk)

    def _status(self, session: str) -> tuple[str, int]:
        """The session's URL and how many bytes it holds (`Range: 0-<last>`)."""
        response = self.reader.client.get(session)
        if 400 <= response.status_code < 500:
            raise _SessionLost(str(status_failure(response, _registry_errors(response))))
        _expect(response, 204)
        extent = response.headers.get("Range", "")
        last = extent.rpartition("-")[2]
        received = int(last) + 1 if last.isdigit() and extent != "0-0" else 0
        return str(response.url.join(response.headers.get("Location", session))), received


class _SessionLost(Exception):
    """The registry no longer knows the upload session."""


def file_reader(path: Path) -> Callable[[int, int], bytes]:
    def read(offset: int, count: int) -> bytes:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(count)

    return read

