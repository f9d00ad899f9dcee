"""The only WebSocket code: one connection at a time, with pings, reconnects and request ids.

`WsConnection.run()` connects to the first URL, calls `on_open(conn)` (which subscribes, its
requests answered through `request()`, matched by request id), then hands every notification
to `on_notification(note, n_bytes)` until the connection drops; then it waits and reconnects
(the next URL after a failure). The delay grows x2 per failure with jitter up to a cap, and a
connection that drops within `stable_after_s` of opening (a server that accepts then drops,
or rejects a subscription) counts as a failure, so it is never retried in a tight loop.
Permessage-deflate is off so message sizes are the bytes received on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from liqmap import constants as C
from liqmap.collect.rpc.ws import Notification, Reply, parse_message, request
from liqmap.config import redact_url, redact_urls
from liqmap.errors import LiqmapError, RpcError
from liqmap.logs import register_secret_url

log = logging.getLogger(__name__)

OnOpen = Callable[["WsConnection"], Awaitable[None]]
OnNotification = Callable[[Notification, int], None]


def frame_bytes(payload_len: int) -> int:
    """Bytes of an unmasked server frame carrying `payload_len` bytes (RFC 6455 §5.2)."""
    header = 2 if payload_len < 126 else 4 if payload_len < 65536 else 10
    return payload_len + header


def reconnect_delay(failures: int, base_s: float, max_s: float) -> float:
    """Seconds to wait before the next attempt after `failures` failures in a row (>= 0)."""
    return min(max_s, base_s * 2 ** failures) * random.uniform(0.5, 1.0)


class WsConnection:
    """A self-healing PubSub connection to `urls` (tried in turn after failures)."""

    def __init__(self, urls: list[str] | tuple[str, ...], on_open: OnOpen,
                 on_notification: OnNotification, *,
                 max_size: int = C.WS_MAX_MESSAGE_BYTES,
                 ping_interval_s: float = C.WS_PING_INTERVAL_S,
                 open_timeout_s: float = C.WS_OPEN_TIMEOUT_S,
                 backoff_s: float = C.WS_BACKOFF_S, backoff_max_s: float = C.WS_BACKOFF_MAX_S,
                 stable_after_s: float = C.WS_STABLE_AFTER_S,
                 request_timeout_s: float = C.DEFAULT_TIMEOUT_S) -> None:
        if not urls:
            raise RpcError("no WebSocket URL configured; pass --ws-url or set LIQMAP_WS_URL")
        for url in urls:
            register_secret_url(url)
        self.urls = list(urls)
        self.on_open = on_open
        self.on_notification = on_notification
        self.max_size = max_size
        self.ping_interval_s = ping_interval_s
        self.open_timeout_s = open_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.request_timeout_s = request_timeout_s
        self.connects = 0  # successful handshakes
        self.last_message_s = time.monotonic()
        self._ws: ClientConnection | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._stopping = asyncio.Event()

    @property
    def label(self) -> str:
        return redact_url(self.urls[0])

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def run(self) -> None:
        """Connect, serve, reconnect, until `stop()`."""
        failures = index = 0
        while not self._stopping.is_set():
            url = self.urls[index % len(self.urls)]
            opened = await self._serve(url)
            stable = opened is not None and time.monotonic() - opened >= self.stable_after_s
            failures = 0 if stable else failures + 1
            if not stable:
                index += 1
            if self._stopping.is_set():
                break
            delay = reconnect_delay(failures, self.backoff_s, self.backoff_max_s)
            log.info("WebSocket %s: reconnecting in %.1fs", redact_url(url), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _serve(self, url: str) -> float | None:
        """One connection's life; returns when it opened (None: it never did)."""
        opened: float | None = None
        try:
            async with websockets.connect(
                    url, max_size=self.max_size, ping_interval=self.ping_interval_s,
                    ping_timeout=self.ping_interval_s, open_timeout=self.open_timeout_s,
                    close_timeout=2, compression=None, proxy=None,
                    user_agent_header="liqmap") as ws:
                opened = time.monotonic()
                self.last_message_s = opened
                self._ws = ws
                self.connects += 1
                reader = asyncio.create_task(self._read(ws))
                try:
                    await self.on_open(self)
                    await reader
                finally:
                    reader.cancel()
        except (OSError, TimeoutError, websockets.WebSocketException, LiqmapError) as exc:
            log.warning("WebSocket %s: %s", redact_url(url), _describe(exc, url))
        finally:
            self._ws = None
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(RpcError("WebSocket closed before the reply",
                                               method="pubsub"))
            self._pending.clear()
        return opened

    async def _read(self, ws: ClientConnection) -> None:
        try:
            while True:
                raw = await ws.recv(decode=False)  # bytes: msgspec parses them as they are
                self.last_message_s = time.monotonic()
                self._dispatch(raw)
        except websockets.ConnectionClosed as exc:
            if self._stopping.is_set():
                return
            log.warning("WebSocket %s: connection closed (%s)", self.label,
                        exc.rcvd.code if exc.rcvd else "no close frame")

    def _dispatch(self, raw: bytes | str) -> None:
        n_bytes = frame_bytes(len(raw))
        try:
            msg = parse_message(raw)
        except RpcError as exc:
            log.warning("%s", exc)
            return
        if isinstance(msg, Reply):
            fut = self._pending.get(msg.request_id)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, Notification):
            self.on_notification(msg, n_bytes)

    async def request(self, method: str, params: list[Any]) -> Any:
        """Send one request on the open connection; its result (RpcError on an error reply,
        a timeout or a closed connection)."""
        ws = self._ws
        if ws is None:
            raise RpcError(f"{method}: WebSocket not connected", method=method)
        self._next_id += 1
        rid = self._next_id
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send(request(method, params, rid).decode())
            reply = await asyncio.wait_for(fut, self.request_timeout_s)
        except TimeoutError as exc:
            raise RpcError(f"{method}: no reply within {self.request_timeout_s:.0f}s",
                           method=method) from exc
        finally:
            self._pending.pop(rid, None)
        if reply.error is not None:
            raise RpcError(f"{method} rejected: {reply.error}", method=method, retryable=False)
        return reply.result

    async def drop(self, reason: str) -> None:
        """Close the current connection (it will reconnect), e.g. when it went silent."""
        ws = self._ws
        if ws is not None:
            log.warning("WebSocket %s: %s; reconnecting", self.label, reason)
            ws.transport.abort()  # a stalled peer would not answer a close handshake

    def stop(self) -> None:
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            ws.transport.abort()


def _describe(exc: BaseException, url: str) -> str:
    text = f"{type(exc).__name__}: {exc}".replace(url, redact_url(url))
    return redact_urls(text)[:300]  # a redirect names its target, which may hold a key
