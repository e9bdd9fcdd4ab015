"""A registry read over HTTP(S): the local registry's layout under a base URL, so any
static server (ff serve, nginx, S3, a CDN) can host a directory `ff publish` wrote.

Nothing a server says is trusted: the index is signed, manifests are checked
against their digests, and a blob is hashed while it arrives and becomes visible
in the store only if digest and size match. That is also why mirrors, which need
not be trusted at all, may serve blobs. A server cannot make the client take more
bytes than the manifest names, and an interrupted download waits in the store's
`partial/` directory (outside the blob namespace) to be resumed with a Range
request, so no byte crosses the network twice. Connection errors, timeouts and 5xx
answers are retried with backoff; everything else fails at once, saying why.

Proxies and CA bundles come from the environment (HTTPS_PROXY, NO_PROXY,
SSL_CERT_FILE, ...), as httpx reads them."""

import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ffstore import __version__, fsutil, layout
from ffstore.blobs import BlobStore, Reader
from ffstore.digests import hex_part
from ffstore.errors import VerificationError
from ffstore.registry.base import (
    Document,
    Progress,
    Registry,
    SourceFailed,
    TransferOptions,
    Transient,
)
from ffstore.registry.transport import ON_RECEIVE, READINTO, direct_transport

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 5.0  # a server that does not accept a connection by then is down
MAX_REDIRECTS = 5
MIN_RATE = 16 << 10  # bytes per second, on average, below which a transfer is given up
WRITEBACK = 32 << 20  # bytes received between background flushes of a partial file

class _Pace:
    """Gives up on a transfer whose average rate falls under MIN_RATE once its first
    http_timeout seconds are over: a server trickling a byte a second never trips the
    timeout between bytes, and would otherwise hold ff for days."""

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._start = time.monotonic()
        self._received = 0

    def received(self, count: int) -> None:
        self._received += count
        elapsed = time.monotonic() - self._start
        if elapsed > self._grace + self._received / MIN_RATE:
            raise SourceFailed(f"too slow: {self._received} bytes in {elapsed:.0f} s, under "
                                f"{MIN_RATE >> 10} KiB/s (what arrived is kept for a retry)")


def _base(url: str) -> str:
    return url.rstrip("/") + "/"


def classify(exc: httpx.RequestError, timeout: float) -> "Transient | SourceFailed":
    """A dropped connection or a server that stops sending is worth retrying. A
    server that refuses or never accepts the connection, a redirect loop, a body that
    does not decode and a certificate that does not verify are not: the user needs
    to hear at once what is wrong."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return SourceFailed(f"no connection within {min(CONNECT_TIMEOUT, timeout):g} s; is the "
                             "server up and the address right?")
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"timed out: no data for {timeout:g} s (setting http_timeout)")
    if isinstance(exc, httpx.TooManyRedirects):
        return SourceFailed(f"redirected more than {MAX_REDIRECTS} times (a redirect loop)")
    if isinstance(exc, httpx.DecodingError):
        return SourceFailed(f"the server sent a body that does not decode ({exc})")
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return SourceFailed(f"{reason}; if a proxy or private CA signs this server, set "
                             "SSL_CERT_FILE to its CA bundle")
    if isinstance(exc, httpx.ConnectError) and "refused" in reason.lower():
        return SourceFailed(f"{reason}: is the server up and the address right?")
    return Transient(reason)


def status_failure(response: httpx.Response, detail: str = "") -> "Transient | SourceFailed":
    """What an unwanted answer means: a 408, 425, 429 or 5xx is worth retrying, the
    rest is not. `detail`: what the server said of it, if anything."""
    code = response.status_code
    reason = f"HTTP {code} {response.reason_phrase}".rstrip() + (f" ({detail})" if detail else "")
    if code in RETRY_STATUS:
        return Transient(reason)
    if code in (401, 403):
        reason += " (the server wants credentials, or others than it was sent)"
    return SourceFailed(reason)


def _check_status(response: httpx.Response) -> None:
    if response.status_code >= 300:
        raise status_failure(response)


def new_client(options: TransferOptions, check_request: Callable[[httpx.Request], None],
               auth: httpx.Auth | None = None) -> httpx.Client:
    """The client every HTTP registry reads through. `check_request` sees each
    request, redirects included, and may refuse one by raising SourceFailed.
    httpx is the client; without a proxy, the bytes travel by http.client, which
    receives a body for a fraction of the CPU time of httpx's own transport."""
    timeout = httpx.Timeout(options.timeout, connect=min(CONNECT_TIMEOUT, options.timeout))
    return httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                        transport=direct_transport(), auth=auth,
                        event_hooks={"request": [check_request]},
                        headers={"User-Agent": f"ff/{__version__}"})


def get_document(client: httpx.Client, url: str, limit: int, timeout: float,
                 headers: Mapping[str, str] | None = None) -> bytes | None:
    """The body at `url`, None when the server answers 404. Stops receiving past
    `limit`. No-cache: a CDN must revalidate, or it could serve an old index forever."""
    pace = _Pace(timeout)
    try:
        with client.stream("GET", url, headers={"Cache-Control": "no-cache", **(headers or {})},
                           extensions={ON_RECEIVE: pace.received}) as response:
            if response.status_code == 404:
                return None
            _check_status(response)
            body = bytearray()
            for chunk in response.iter_bytes():
                if READINTO not in response.extensions:  # httpx's transport: count here
                    pace.received(len(chunk))
                body += chunk
                if len(body) > limit:
                    break
            return bytes(body)
    except httpx.RequestError as exc:
        raise classify(exc, timeout) from None


@dataclass(frozen=True)
class BlobSource:
    """Somewhere a blob can be downloaded from: a registry or a mirror."""

    name: str  # how the user is told of it
    client: httpx.Client
    url: Callable[[str, str], str]  # (digest, model) -> the blob's URL


class DownloadingRegistry(Registry):
    """A registry whose blobs are downloaded from `blob_sources`, in order."""

    blob_sources: tuple[BlobSource, ...]

    def _fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress,
                    model: str) -> None:
        """Download into `<partial_dir>/<hex>.part`, resuming what an earlier run left,
        from each source in turn until one delivers the right bytes. The partial file
        is locked, so two processes wanting one blob download it once."""
        partial_dir = self.options.partial_dir
        part = partial_dir / f"{hex_part(digest)}.part"
        with fsutil.file_lock(part):
            if store.has(digest, size):  # another process finished it while we waited
                part.unlink(missing_ok=True)
                progress.advance(size)
                return
            download = _Download(self.options.timeout, part, digest, size, store, progress,
                                 _Pace(self.options.timeout))
            failures = []
            for source in self.blob_sources:
                try:
                    self.retrying(functools.partial(download.attempt, source.client,
                                                    source.url(digest, model)))
                    return
                except SourceFailed as exc:
                    failures.append(f"from {source.name}: {exc}")
            raise SourceFailed("; ".join(failures))


class HttpRegistry(DownloadingRegistry):
    advice = "check the registry URL in facefusion.toml and that its server is up"

    def __init__(self, location: str, mirrors: tuple[str, ...], options: TransferOptions,
                 allow_redirects: bool = False) -> None:
        super().__init__(location, options)
        self._base = _base(location)
        bases = (*(_base(m) for m in mirrors), self._base)
        self._hosts = {httpx.URL(base).host for base in bases}
        self._allow_redirects = allow_redirects
        self._client = new_client(options, self._check_host)
        # Mirrors are listed because they are nearer or cheaper, so blobs are asked of
        # them first; the registry itself is the last resort.
        self.blob_sources = tuple(
            BlobSource(base, self._client, functools.partial(_layout_blob_url, base))
            for base in bases)

    def _check_host(self, request: httpx.Request) -> None:
        """Refuse a redirect to a host that is neither the registry nor a mirror, unless
        the registry's entry allows it (`allow_redirects = true`): what the registry's
        address promises is who answers."""
        if request.url.host not in self._hosts and not self._allow_redirects:
            raise SourceFailed(f"redirected to {request.url.host}, another host; if that is "
                                "meant, set allow_redirects = true in the registry's entry")

    # --- documents: index, manifests, signatures ----------------------------------

    def address(self, document: Document) -> str:
        return self._base + document.relative

    def _read(self, document: Document, limit: int) -> bytes | None:
        return get_document(self._client, self._base + document.relative, limit,
                            self.options.timeout)

def _layout_blob_url(base: str, digest: str, _model: str) -> str:
    return base + layout.blob(digest)


class _Download:
    """One blob into its partial file, across attempts and sources."""

    def __init__(self, timeout: float, part: Path, digest: str, size: int, store: BlobStore,
                 progress: Progress, pace: _Pace) -> None:
        self._pace = pace
        self._timeout = timeout
        self._part, self._digest, self._size = part, digest, size
        self._store = store
        self._progress = progress
        self._counted = 0  # bytes of the partial file reported to `progress`
        self._restarted = False

    def _received(self, count: int) -> None:
        """Every receive: the pace is kept, and a cancelled sync (Ctrl-C) stops here,
        within a receive, not when a whole buffer is full."""
        self._pace.received(count)
        self._progress.advance(0)

    def _advance(self, count: int) -> None:
        self._counted += count
        self._progress.advance(count)

    def _discard(self) -> None:
        """Empty the partial file (truncate, not unlink: the lock is on its inode)."""
        os.truncate(self._part, 0)
        self._progress.advance(-self._counted)
        self._counted = 0

    def attempt(self, client: httpx.Client, url: str) -> None:
        offset = self._part.stat().st_size
        if offset > self._size:
            self._discard()
            offset = 0
        if offset > self._counted:  # left by an earlier run: count it once, as resumed
            self._progress.skip(offset - self._counted)
            self._counted = offset
        try:
            if offset == self._size:  # complete, but not yet verified when that run ended
                self._store.ingest_resumed(self._part, _nothing, self._digest, self._size)
            else:
                self._receive(client, url, offset)
        except VerificationError as exc:
            self._discard()
            if offset and not self._restarted:
                self._restarted = True  # the wrong bytes may be an old prefix: once more, whole
                raise Transient(str(exc), progressed=True) from None
            raise SourceFailed(f"{exc} (the server sent wrong bytes)") from None

    def _receive(self, client: httpx.Client, url: str, offset: int) -> None:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        before = self._counted
        try:
            with client.stream("GET", url, headers=headers,
                               extensions={ON_RECEIVE: self._received}) as response, \
                    _Writeback(self._part) as writeback:
                if response.status_code == 416:
                    self._discard()
                    raise SourceFailed("HTTP 416: the server's file is shorter than the "
                                        f"manifest's {self._size} bytes")
                _check_status(response)
                if offset and response.status_code != 206:  # Range ignored: start again
                    self._discard()
                    offset = 0
                self._check_length(response, offset)
                self._store.ingest_resumed(self._part, self._reader(response, writeback),
                                           self._digest, self._size)
        except httpx.RequestError as exc:
            failure = classify(exc, self._timeout)
            if isinstance(failure, Transient):
                failure.progressed = self._counted > before
            raise failure from None

    def _check_length(self, response: httpx.Response, offset: int) -> None:
        """Refuse, before reading a byte, a body that announces the wrong extent."""
        expected = self._size - offset
        if response.status_code == 206:
            wanted = f"bytes {offset}-{self._size - 1}/"
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(wanted) or content_range[len(wanted):] not in (
                    str(self._size), "*"):
                raise SourceFailed(f"asked for bytes {offset}-, got Content-Range "
                                    f"{content_range or '(none)'}")
        length = response.headers.get("Content-Length")
        if length is not None and length != str(expected):
            raise SourceFailed(f"announces {length} bytes where {expected} are due (the manifest "
                                f"says the blob has {self._size})")

    def _reader(self, response: httpx.Response, writeback: "_Writeback") -> Reader:
        """The body as a Reader, counting what arrives. Through the stdlib transport
        the bytes land straight in the store's buffers; through httpx's own (behind a
        proxy) its chunks are copied in."""
        read = response.extensions.get(READINTO)
        paced = read is not None  # ff's transport reports each receive to the pace itself
        read = read or _chunk_reader(response.iter_raw())

        def counted(buffer: memoryview) -> int:
            count = read(buffer)
            if not paced:
                self._pace.received(count)
            self._advance(count)
            writeback.received(count)
            return count

        return counted


def _nothing(_buffer: memoryview) -> int:
    return 0


def _chunk_reader(chunks: Iterator[bytes]) -> Reader:
    pending = memoryview(b"")

    def read(buffer: memoryview) -> int:
        nonlocal pending
        while not pending:
            chunk = next(chunks, None)
            if chunk is None:
                return 0
            pending = memoryview(chunk)
        count = min(len(buffer), len(pending))
        buffer[:count] = pending[:count]
        pending = pending[count:]
        return count

    return read


class _Writeback:
    """Flushes a partial file to disk in the background every WRITEBACK bytes, so the
    disk works while bytes still arrive and the fsync that publishes the blob finds
    little left to write (on a slow disk that fsync otherwise doubles a download).
    It flushes through its own descriptor: Linux reports a write error once per open
    file, so the publishing fsync still sees any error that a flush met."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._unflushed = 0
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "_Writeback":
        self._fd = os.open(self._path, os.O_RDONLY)
        return self

    def received(self, count: int) -> None:
        self._unflushed += count
        if self._unflushed >= WRITEBACK and not (self._thread and self._thread.is_alive()):
            self._unflushed = 0
            self._thread = threading.Thread(target=self._flush, daemon=True)
            self._thread.start()

    def _flush(self) -> None:
        with contextlib.suppress(OSError):  # the publishing fsync reports it
            os.fdatasync(self._fd)

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self._thread.join()
        os.close(self._fd)
