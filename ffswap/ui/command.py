"""`ff ui`: serve the switcher on this machine and print the URL to open, plugged
into the ff CLI through the `ff.commands` entry point like `ff swap`."""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import sys

import click

from ffstore.cli import CliState, pass_state
from ffstore.errors import FFError, InputError

DEFAULT_PORT = 8780


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen first, so a busy port is one error line, port 0's pick is known
    and a browser opening the URL at once is queued, not refused."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)  # the printed URL answers at once (uvicorn accepts later)
    except OSError as exc:
        raise FFError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port "
                      "(0: any free one)") from None
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback exposes the switcher on purpose.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port (0: any free one).")
@click.option("--execution-provider", type=click.Choice(["auto", "cpu", "cuda", "tensorrt"]),
              default=None, help="onnxruntime provider (setting execution_provider).")
@pass_state
def ui(state: CliState, host: str, port: int, execution_provider: str | None) -> None:
    """Open the version switcher in a browser: modules, versions, history, live
    switching, preview and comparison, for this project."""
    import uvicorn

    from ffswap.ui.app import create_app
    from ffswap.ui.session import UiSession

    context = state.context(execution_provider=execution_provider)
    context.require_lock()
    if not _loopback(host):
        state.note(f"ff ui listens on {host}: anyone who can reach it and has the URL's token "
                   "can switch and roll back this project's models")
    sock = _listen(host, port)
    token = secrets.token_urlsafe(24)
    session = UiSession(lambda: state.context(execution_provider=execution_provider),
                        context.setting("execution_provider"))
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"ff ui: http://{shown}:{sock.getsockname()[1]}/?token={token}")
    click.echo("Press Ctrl-C to stop.")
    server = uvicorn.Server(uvicorn.Config(create_app(session, token), log_level="warning",
                                           lifespan="on"))
    # uvicorn shuts down on SIGTERM, then raises it again; by default that ends the
    # process before the `finally` below, leaving the session's models and temp folder
    # (uploads) behind. As SystemExit it runs the `finally` and still exits 143.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C it caught again
        state.say("stopped")
    finally:
        session.close()
    if not server.started:
        raise InputError("ff ui could not start; see the messages above")
