"""`liqmap serve`: the live liquidation page and API v1 over a store.

Layers: `params` (validation, pure), `data` (the answers, from the same library functions as
the CLI), `watch` (new snapshots in the store), `guard` (the front door: methods, limits,
Host, token, headers), `app` (routes, cache, worker pool, stream), `static/` (the page: plain
JavaScript drawing on a canvas, no build step, nothing from a CDN).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from liqmap.errors import InputError
from liqmap.serve.app import ServeConfig, close_streams, create_app

__all__ = ["ServeConfig", "bind", "create_app", "run_server"]

log = logging.getLogger("liqmap.serve")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one. One-line InputError when
    the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: headers and body leave at once (no 40 ms Nagle wait)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another "
                         "--port (0 = any free one) or --host") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def run_server(config: ServeConfig, *, sock: socket.socket | None = None,
               on_ready: Callable[[str], object] | None = None) -> None:
    """Serve `config` until SIGINT/SIGTERM (or the process ends); `on_ready(url)` is called
    once the socket listens. Open streams get 2 s to close on shutdown."""
    import uvicorn

    app = create_app(config)
    sock = sock or bind(config.host, config.port)

    class Uvicorn(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            close_streams(app)  # open pages end their streams first
            await super().shutdown(sockets)

    server = Uvicorn(uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
        limit_concurrency=512, timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024,
        lifespan="on"))
    with _signals_swallowed(server):
        if on_ready is not None:
            on_ready(url_of(sock))
        server.run(sockets=[sock])


@contextmanager
def _signals_swallowed(server: Any) -> Iterator[None]:
    """uvicorn re-raises the SIGINT/SIGTERM that stopped it once it is done; a stopped server
    is the expected end, so those are absorbed here (outside the main thread: nothing to do).
    A signal before uvicorn's own handlers are in place (Ctrl-C as soon as the URL is shown,
    while it starts) stops the server too, instead of being lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(*_: object) -> None:
        server.should_exit = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
