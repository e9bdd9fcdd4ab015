"""`ff serve`: a read-only static file server for a registry directory.

A registry is a plain directory tree, so any static server can host one; this one
exists so a team or a test needs nothing else, and because http.server's own
handler cannot answer Range requests, which resumed downloads rely on. It serves
regular files inside the directory only: no listings, no dotfiles (publish's lock
and temp files), no symlinks leading out, no writes. Files are streamed with
sendfile, so a many-GiB blob costs the server almost no CPU."""

import os
import re
import socket
import sys
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ffstore import layout
from ffstore.errors import FFError, InputError

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (start, end exclusive) a single-range `Range` header asks for; None for a
    full response (no header, or a form this server ignores, as RFC 9110 allows).
    Raises ValueError for a range that lies outside the file (416)."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # a suffix: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise ValueError("unsatisfiable range")
    return start, end


class RegistryHandler(BaseHTTPRequestHandler):
    """GET and HEAD for files under `server.root`; every other method is refused."""

    server: "RegistryServer"
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many blobs
    # Headers and body leave in two writes; with Nagle's algorithm a small body (an
    # index, a manifest) would wait for the client's delayed ACK, a stall far longer
    # than sending it (bench/RESULTS.md, "Small documents and Nagle's algorithm").
    disable_nagle_algorithm = True
    server_version = "ff-serve"

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _refuse_write(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = do_DELETE = do_PATCH = _refuse_write

    def _file(self) -> Path | None:
        """The regular file the request names, or None when it names nothing servable."""
        parts = unquote(urlsplit(self.path).path).split("/")
        if any(p.startswith(".") or "\0" in p for p in parts if p):
            return None
        candidate = (self.server.root / "/".join(p for p in parts if p)).resolve()
        if not candidate.is_relative_to(self.server.root) or not candidate.is_file():
            return None
        return candidate

    def _serve(self, send_body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            size = stat.st_size
            try:
                wanted = byte_range(self.headers.get("Range"), size)
            except ValueError:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = wanted or (0, size)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK)
            if wanted:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.send_header("Content-Type", "application/json" if path.suffix == ".json"
                             else "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
            # The index changes on every publish; everything else is content-addressed.
            self.send_header("Cache-Control", "no-cache" if path.name == layout.INDEX
                             else "public, max-age=31536000, immutable")
            self.end_headers()
            if send_body and end > start:
                self.connection.sendfile(handle, start, end - start)

    def log_message(self, format: str, *args: object) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, root: Path, host: str, port: int, quiet: bool,
                 handler: type[RegistryHandler] = RegistryHandler) -> None:
        """`handler` lets a variant (a test's misbehaving server) reuse the rest."""
        self.root = root
        self.quiet = quiet
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-blob (a cancelled or resumed sync) is routine."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


def make_server(root: Path, host: str = "127.0.0.1", port: int = 0,
                quiet: bool = False) -> RegistryServer:
    """A bound server for registry directory `root` (port 0: any free port); call
    `serve_forever` on it, from a thread if the caller has other work."""
    root = root.resolve()
    if not (root / layout.INDEX).is_file():
        raise InputError(f"{root} has no {layout.INDEX}; serve a registry directory written by "
                         "`ff publish`")
    try:
        return RegistryServer(root, host, port, quiet)
    except OSError as exc:
        raise FFError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                      "--port or --host") from None
