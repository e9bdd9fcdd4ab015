"""An httpx transport on the standard library's `http.client`, for bulk downloads.

httpx's own transport hands a body up in 64 KiB pieces through h11, httpcore and
httpx, and that per-piece work costs several times the CPU of `http.client` reading
into large buffers (bench/RESULTS.md, "HTTP transport"). With SHA-256 already taking
a core, that overhead decided how fast `ff sync` was. This transport keeps httpx as
the client (redirects, timeouts, headers, errors, decoding stay its business) and only
moves the bytes: HTTP/1.1 over keep-alive connections, each body read with `readinto`
into buffers of READ_SIZE bytes.

It does no proxying: `direct_transport` offers it only when the environment names
no proxy, and otherwise leaves httpx's transport, which reads proxies from the
environment, in charge."""

import contextlib
import functools
import http.client
import select
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import BinaryIO

import httpx

# Large enough that per-chunk work (queues, progress, httpx's bookkeeping) vanishes
# next to hashing, small enough that progress still moves on a slow link.
READ_SIZE = 1 << 20
# The response extension holding the body's `readinto`, for callers that bring buffers.
READINTO = "ff.readinto"
# The request extension naming a callable told of every receive of the body's bytes.
ON_RECEIVE = "ff.on_receive"
DEFAULT_PORTS = {"http": 80, "https": 443}

_Key = tuple[str, str, int]  # scheme, host, port


def direct_transport() -> "StdlibTransport | None":
    """The fast transport, or None when the environment names a proxy: httpx then
    routes requests itself, reading HTTP(S)_PROXY, ALL_PROXY and NO_PROXY exactly as
    before (it, too, reads them with urllib's getproxies)."""
    proxies = urllib.request.getproxies()
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return StdlibTransport()


@contextlib.contextmanager
def _mapped(request: httpx.Request, timeout: type[httpx.TimeoutException],
            failure: type[httpx.TransportError]) -> Iterator[None]:
    """Raise what httpx's own transport would, so callers can tell a timeout, a
    server that broke the protocol and a failed connection apart."""
    try:
        yield
    except TimeoutError as exc:
        raise timeout(str(exc) or "timed out", request=request) from exc
    except http.client.HTTPException as exc:  # before OSError: RemoteDisconnected is both
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
    except OSError as exc:
        raise failure(str(exc) or type(exc).__name__, request=request) from exc


def _is_stale(connection: http.client.HTTPConnection) -> bool:
    """An idle connection with something to read has been closed by the server (or
    sent what nobody asked for): either way it cannot carry another request."""
    poller = select.poll()
    poller.register(connection.sock, select.POLLIN)
    return bool(poller.poll(0))


class StdlibTransport(httpx.BaseTransport):
    """Requests over `http.client` connections, kept alive and shared by threads:
    sync downloads several blobs at once, each thread taking an idle connection to
    the host or opening one."""

    def __init__(self) -> None:
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    @functools.cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """httpx's: certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR when set. Made on
        first use, as loading CAs takes a while and most registries are local."""
        context = httpx.create_ssl_context()
        context.set_alpn_protocols(["http/1.1"])  # what httpx's transport offers, too
        return context

    def _connection(self, key: _Key, connect_timeout: float | None
                    ) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                connection = idle.pop()
                if not _is_stale(connection):
                    return connection
                connection.close()
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=connect_timeout,
                                               context=self._ssl_context)
        return http.client.HTTPConnection(host, port, timeout=connect_timeout)

    def release(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        """Keep a connection whose last response was read to its end."""
        with self._lock:
            self._idle.setdefault(key, []).append(connection)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}",
                                            request=request)
        key = (url.scheme, url.host, url.port or DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        connection = self._connection(key, timeouts.get("connect"))
        try:
            if connection.sock is None:
                with _mapped(request, httpx.ConnectTimeout, httpx.ConnectError):
                    connection.connect()
            connection.sock.settimeout(timeouts.get("write"))
            with _mapped(request, httpx.WriteTimeout, httpx.WriteError):
                connection.putrequest(request.method, url.raw_path.decode("ascii"),
                                      skip_host=True, skip_accept_encoding=True)
                for name, value in request.headers.raw:
                    connection.putheader(name, value)
                connection.endheaders(request.read())
            connection.sock.settimeout(timeouts.get("read"))
            with _mapped(request, httpx.ReadTimeout, httpx.ReadError):
                response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        on_receive = request.extensions.get(ON_RECEIVE)
        if on_receive is not None and not response.chunked:
            response.fp = _Paced(response.fp, on_receive)  # type: ignore[assignment]
        # http.client decoded the header lines as Latin-1; encoding them back gives httpx
        # the bytes that arrived.
        return httpx.Response(
            response.status, headers=[(name.encode("latin-1"), value.encode("latin-1"))
                                      for name, value in response.getheaders()],
            stream=(body := _Body(self, key, connection, response, request)),
            extensions={READINTO: body.readinto,
                        "http_version": b"HTTP/1.0" if response.version == 10 else b"HTTP/1.1",
                        "reason_phrase": response.reason.encode("latin-1")})

    def close(self) -> None:
        with self._lock:
            idle = [connection for connections in self._idle.values()
                    for connection in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()


class _Paced:
    """A response's buffered socket file that fills each buffer one receive at a
    time and reports every receive to `on_receive` (which may raise to give up): a
    server that trickles bytes is then noticed while a buffer fills, instead of
    holding one read for as long as it likes. http.client clips each read to the
    body's length itself; chunked bodies, read in exact-size pieces, keep the plain
    file."""

    def __init__(self, file: BinaryIO, on_receive: Callable[[int], None]) -> None:
        self._file = file
        self._on_receive = on_receive

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer)
        filled = 0
        while filled < len(view):
            count = self._file.readinto1(view[filled:])  # type: ignore[attr-defined]
            if not count:
                break
            filled += count
            self._on_receive(count)
        return filled

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


class _Body(httpx.SyncByteStream):
    """A response body. Iterating gives READ_SIZE pieces, each a new buffer, as
    consumers may hold pieces; `readinto` (offered to callers as the response's
    READINTO extension) fills the caller's own buffer, sparing the store a copy and
    an allocation per piece."""

    def __init__(self, transport: StdlibTransport, key: _Key,
                 connection: http.client.HTTPConnection, response: http.client.HTTPResponse,
                 request: httpx.Request) -> None:
        self._transport, self._key = transport, key
        self._connection, self._response = connection, response
        self._request = request
        self._complete = False

    def readinto(self, buffer: memoryview | bytearray) -> int:
        with _mapped(self._request, httpx.ReadTimeout, httpx.ReadError):
            count = self._response.readinto(buffer)
        if not count and buffer:
            if self._response.length:  # http.client reports a short body as a plain end
                raise httpx.RemoteProtocolError(
                    f"peer closed connection with {self._response.length} bytes of the body "
                    "unsent", request=self._request)
            self._complete = True
        return count

    def __iter__(self) -> Iterator[bytes]:
        while count := self.readinto(buffer := bytearray(READ_SIZE)):
            del buffer[count:]
            yield buffer

    def close(self) -> None:
        """Return the connection for reuse only after a complete body: anything
        else leaves unread bytes (or a broken stream) on it."""
        self._response.close()
        if self._complete and not self._response.will_close:
            self._transport.release(self._key, self._connection)
        else:
            self._connection.close()
