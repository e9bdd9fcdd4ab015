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
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx

from ffstore import __version__, fsutil
from ffstore.blobs import BlobStore, Reader
from ffstore.digests import hex_part
from ffstore.errors import FFError, VerificationError
from ffstore.registry import layout
from ffstore.registry.base import Progress, TransferOptions
from ffstore.registry.transport import READINTO, direct_transport

BACKOFF_FRACTION = 0.05  # first pause between attempts, as a fraction of the timeout
MAX_FREE_ATTEMPTS = 16  # resumed attempts after partial progress; a drip-feeding server ends
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
WRITEBACK = 32 << 20  # bytes received between background flushes of a partial file

T = TypeVar("T")


class _Transient(Exception):
    """A failure another attempt may fix: connection trouble, a timeout, a 5xx.
    `progressed` says the attempt received bytes before failing."""

    def __init__(self, reason: str, progressed: bool = False) -> None:
        super().__init__(reason)
        self.progressed = progressed


class _SourceFailed(Exception):
    """A failure another attempt at the same URL will not fix (404, wrong bytes, or
    retries used up); the next mirror may still serve the blob."""


def _base(url: str) -> str:
    return url.rstrip("/") + "/"


def _classify(exc: httpx.TransportError, timeout: float) -> "_Transient | _SourceFailed":
    """Connection trouble and timeouts are worth retrying; a certificate that does not
    verify is not, and the user needs to hear how to fix it."""
    if isinstance(exc, httpx.TimeoutException):
        return _Transient(f"timed out: no data for {timeout:g} s (setting http_timeout)")
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return _SourceFailed(f"{reason}; if a proxy or private CA signs this server, set "
                             "SSL_CERT_FILE to its CA bundle")
    return _Transient(reason)


def _check_status(response: httpx.Response) -> None:
    code = response.status_code
    if code < 300:
        return
    reason = f"HTTP {code} {response.reason_phrase}".rstrip()
    if code in RETRY_STATUS:
        raise _Transient(reason)
    raise _SourceFailed(reason)


class HttpRegistry:
    def __init__(self, location: str, mirrors: tuple[str, ...], options: TransferOptions) -> None:
        self.location = location
        self._base = _base(location)
        # Mirrors are listed because they are nearer or cheaper, so blobs are asked of
        # them first; the registry itself is the last resort.
        self._blob_sources = (*(_base(m) for m in mirrors), self._base)
        self._options = options
        # httpx is the client; without a proxy, the bytes travel by http.client, which
        # receives a body for a fraction of the CPU time of httpx's own transport.
        self._client = httpx.Client(timeout=options.timeout, follow_redirects=True,
                                    transport=direct_transport(),
                                    headers={"User-Agent": f"ff/{__version__}"})

    # --- retries ----------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt` until it succeeds, pausing with jittered exponential backoff
        after transient failures. The pause scales with http_timeout: a registry slow
        enough to need a long timeout deserves longer pauses, and tests stay quick.
        An attempt that made progress before failing is free and resumes at once, up to
        MAX_FREE_ATTEMPTS times, so a server that drip-feeds bytes cannot keep it going."""
        failures = free = 0
        while True:
            try:
                return attempt()
            except _Transient as exc:
                if exc.progressed and free < MAX_FREE_ATTEMPTS:
                    free += 1
                    continue
                failures += 1
                if failures >= self._options.retries:
                    raise _SourceFailed(f"{exc}; gave up after {failures} attempts (setting "
                                        "http_retries)") from None
                pause = min(self._options.timeout,
                            BACKOFF_FRACTION * self._options.timeout * 2 ** (failures - 1))
                time.sleep(pause * random.uniform(0.5, 1.0))

    # --- documents: index, manifests, signatures ----------------------------------

    def _document(self, relative: str, limit: int) -> bytes | None:
        """The document's bytes (at most `limit`), or None when the server answers 404."""
        url = self._base + relative

        def attempt() -> bytes | None:
            try:
                # no-cache: a CDN must revalidate, or it could serve an old index forever
                with self._client.stream("GET", url, headers={"Cache-Control": "no-cache"}
                                         ) as response:
                    if response.status_code == 404:
                        return None
                    _check_status(response)
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise _SourceFailed(f"more than {limit >> 10} KiB, which no such ff "
                                                "document is")
                    return bytes(body)
            except httpx.TransportError as exc:
                raise _classify(exc, self._options.timeout) from None

        try:
            return self._retrying(attempt)
        except _SourceFailed as exc:
            raise FFError(f"cannot read {url}: {exc}; check the registry URL in "
                          "facefusion.toml and that its server is up") from None

    def _required(self, relative: str, what: str, limit: int) -> bytes:
        data = self._document(relative, limit)
        if data is None:
            raise FFError(f"{what} not found in registry {self.location} (HTTP 404); check the "
                          "registry URL in facefusion.toml")
        return data

    def read_index(self) -> bytes:
        return self._required(layout.INDEX, layout.INDEX, layout.MAX_INDEX)

    def read_manifest(self, digest: str) -> bytes:
        return self._required(layout.manifest(digest), f"manifest {digest}", layout.MAX_MANIFEST)

    def read_signatures(self, digest: str) -> bytes | None:
        return self._document(layout.signatures(digest), layout.MAX_SIGNATURES)

    # --- blobs --------------------------------------------------------------------

    def fetch_blob(self, digest: str, size: int, store: BlobStore, progress: Progress) -> None:
        """Download into `<partial_dir>/<hex>.part`, resuming what an earlier run left,
        from each source in turn until one delivers the right bytes. The partial file
        is locked, so two processes wanting one blob download it once."""
        partial_dir = self._options.partial_dir
        part = partial_dir / f"{hex_part(digest)}.part"
        with fsutil.file_lock(part):
            if store.has(digest, size):  # another process finished it while we waited
                part.unlink(missing_ok=True)
                progress(size)
                return
            download = _Download(self._client, self._options.timeout, part, digest, size, store,
                                 progress)
            failures = []
            for base in self._blob_sources:
                try:
                    self._retrying(functools.partial(download.attempt, base + layout.blob(digest)))
                    return
                except _SourceFailed as exc:
                    failures.append(f"from {base}: {exc}")
            raise FFError(f"cannot download blob {digest} ({size} bytes) {'; '.join(failures)}; "
                          "nothing was stored; check the registry (and its mirrors) or retry later")


class _Download:
    """One blob into its partial file, across attempts and sources."""

    def __init__(self, client: httpx.Client, timeout: float, part: Path, digest: str, size: int,
                 store: BlobStore, progress: Progress) -> None:
        self._client = client
        self._timeout = timeout
        self._part, self._digest, self._size = part, digest, size
        self._store = store
        self._progress = progress
        self._counted = 0  # bytes of the partial file reported to `progress`
        self._restarted = False

    def _advance(self, count: int) -> None:
        self._counted += count
        self._progress(count)

    def _discard(self) -> None:
        """Empty the partial file (truncate, not unlink: the lock is on its inode)."""
        os.truncate(self._part, 0)
        self._progress(-self._counted)
        self._counted = 0

    def attempt(self, url: str) -> None:
        offset = self._part.stat().st_size
        if offset > self._size:
            self._discard()
            offset = 0
        if offset > self._counted:  # left by an earlier run: count it once
            self._advance(offset - self._counted)
        try:
            if offset == self._size:  # complete, but not yet verified when that run ended
                self._store.ingest_resumed(self._part, _nothing, self._digest, self._size)
            else:
                self._receive(url, offset)
        except VerificationError as exc:
            self._discard()
            if offset and not self._restarted:
                self._restarted = True  # the wrong bytes may be an old prefix: once more, whole
                raise _Transient(str(exc), progressed=True) from None
            raise _SourceFailed(f"{exc} (the server sent wrong bytes)") from None

    def _receive(self, url: str, offset: int) -> None:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        before = self._counted
        try:
            with self._client.stream("GET", url, headers=headers) as response, \
                    _Writeback(self._part) as writeback:
                if response.status_code == 416:
                    self._discard()
                    raise _SourceFailed("HTTP 416: the server's file is shorter than the "
                                        f"manifest's {self._size} bytes")
                _check_status(response)
                if offset and response.status_code != 206:  # Range ignored: start again
                    self._discard()
                    offset = 0
                self._check_length(response, offset)
                self._store.ingest_resumed(self._part, self._reader(response, writeback),
                                           self._digest, self._size)
        except httpx.TransportError as exc:
            failure = _classify(exc, self._timeout)
            if isinstance(failure, _Transient):
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
                raise _SourceFailed(f"asked for bytes {offset}-, got Content-Range "
                                    f"{content_range or '(none)'}")
        length = response.headers.get("Content-Length")
        if length is not None and length != str(expected):
            raise _SourceFailed(f"announces {length} bytes where {expected} are due (the manifest "
                                f"says the blob has {self._size})")

    def _reader(self, response: httpx.Response, writeback: "_Writeback") -> Reader:
        """The body as a Reader, counting what arrives. Through the stdlib transport
        the bytes land straight in the store's buffers; through httpx's own (behind a
        proxy) its chunks are copied in."""
        read = response.extensions.get(READINTO) or _chunk_reader(response.iter_raw())

        def counted(buffer: memoryview) -> int:
            count = read(buffer)
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
