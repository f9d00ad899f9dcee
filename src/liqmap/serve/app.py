"""The ASGI app of `liqmap serve`: the page, API v1, the live stream.

Heavy work (reading the store, binning, encoding, gzip) runs on a small thread pool with a
bounded queue and a time limit; identical requests in flight share one computation, and
answers are cached (keyed by the newest snapshot, so new data is never hidden by the cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from liqmap import __version__
from liqmap import constants as C
from liqmap.errors import DataGapError, InputError, LiqmapError
from liqmap.heatmap.build import build_heatmap, build_levels, resolve_window
from liqmap.heatmap.markers import liquidation_markers, markers_json
from liqmap.heatmap.sources import StoreSource
from liqmap.serve import data as D
from liqmap.serve.guard import Guard, error_body, is_loopback
from liqmap.serve.openapi import openapi_spec
from liqmap.serve.params import (
    HEATMAP_PARAMS,
    LEVELS_PARAMS,
    LIQUIDATIONS_PARAMS,
    SIGNAL_PARAMS,
    STREAM_PARAMS,
    ApiError,
    parse_query,
)
from liqmap.serve.watch import MarketView, StoreWatcher
from liqmap.store import Store
from liqmap.timeutil import default_start, iso_utc

log = logging.getLogger("liqmap.serve")

FORMATS = {"json": "application/json", "arrow": "application/vnd.apache.arrow.stream",
           "f32": "application/x-liqmap-f32"}
ENCODERS = {"json": D.heatmap_json, "arrow": D.heatmap_arrow, "f32": D.heatmap_f32}
#: CLI option names in library messages, as the API's parameter names.
OPTION_NAMES = {"run `liqmap collect` or point --data-dir/--folder at collected data":
                "the collector has stored none yet", "--data-dir/--folder": "the store",
                "--t-start": "start", "--t-end": "end", "--bin": "bin", "--freq": "freq",
                "--pmin": "pmin", "--pmax": "pmax", "--side": "side", "--unit": "unit",
                "--agg": "agg", "--at": "at", "--data-dir": "the server's store"}
STATIC_FILES = ("app.js", "app.css", "docs.js", "icon.svg")


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs. `token` None: no authentication (loopback binds only)."""

    data_dir: str
    host: str = C.SERVE_DEFAULT_HOST
    port: int = C.SERVE_DEFAULT_PORT
    token: str | None = field(default=None, repr=False)  # a secret: never in a repr
    cors_origin: str | None = None
    stale_after_s: float = C.SERVE_STALE_AFTER_S
    poll_s: float = C.SERVE_POLL_S
    request_timeout_s: float = C.SERVE_REQUEST_TIMEOUT_S
    max_builds: int = C.SERVE_MAX_BUILDS
    max_queued_builds: int = C.SERVE_MAX_QUEUED_BUILDS
    cache_bytes: int = C.SERVE_CACHE_BYTES
    limits: D.Limits = field(default_factory=D.Limits)

    def check(self) -> None:
        """Raise `InputError` for a configuration that must not start (one line)."""
        if not is_loopback(self.host) and not self.token:
            raise InputError(f"--host {self.host} exposes the store beyond this machine; add "
                             "--token TOKEN (or LIQMAP_SERVE_TOKEN) or bind 127.0.0.1")
        if self.token is not None and len(self.token) < 16:
            raise InputError("--token must be at least 16 characters; generate one with "
                             "`python -c 'import secrets; print(secrets.token_urlsafe())'`")


class AnswerCache:
    """Encoded answers by key, least recently used dropped past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> bytes | None:
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes or key in self._items:
            return
        self._items[key] = body
        self.bytes += len(body)
        while self.bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= len(dropped)


class Server:
    """Shared state of one app: store, watcher, cache, worker pool, stream subscribers."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.watcher = StoreWatcher(self.store)
        self.cache = AnswerCache(config.cache_bytes)
        self.pool = ThreadPoolExecutor(config.max_builds, thread_name_prefix="liqmap-build")
        self.inflight: dict[Hashable, asyncio.Future[bytes]] = {}
        self.queued = 0
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.closing = False
        self.static = _load_static()

    async def compute(self, key: Hashable, work: Callable[[], bytes]) -> bytes:
        """The cached answer for `key`, else `work()` on the pool (shared by identical requests
        in flight), within the request time limit."""
        body = self.cache.get(key)
        if body is not None:
            return body
        future = self.inflight.get(key)
        if future is None:
            if self.queued >= self.config.max_builds + self.config.max_queued_builds:
                raise ApiError(503, "the server is busy computing other answers; retry in a "
                                    "few seconds")
            future = asyncio.ensure_future(self._run(key, work))
            self.inflight[key] = future
        try:
            return await asyncio.wait_for(asyncio.shield(future),
                                          self.config.request_timeout_s)
        except TimeoutError as exc:
            raise ApiError(503, f"the answer took longer than "
                                f"{self.config.request_timeout_s:g} s; ask for a shorter "
                                "window or coarser bins") from exc

    async def _run(self, key: Hashable, work: Callable[[], bytes]) -> bytes:
        self.queued += 1
        try:
            body = await asyncio.get_running_loop().run_in_executor(self.pool, work)
            self.cache.put(key, body)
            return body
        finally:
            self.queued -= 1
            self.inflight.pop(key, None)

    async def watch(self) -> None:
        """Poll the store forever; tell every stream subscriber about new snapshots."""
        while True:
            try:
                changed = await asyncio.to_thread(self.watcher.poll)
            except Exception:  # a listing that failed once must not end the watch
                log.exception("watching the store failed; retrying")
                changed = []
            for view in changed:
                self.broadcast("snapshot", view.event())
            await asyncio.sleep(self.config.poll_s)

    def warm_up(self) -> None:
        """Build the page's default view (the newest 24 h) of the first market with data once,
        in the background: the binning kernels load, and the process's first large Parquet
        read (Arrow's threads and memory, about twice a later read) is paid now, not by the
        first page view. Failures only mean no warm-up."""
        for view in self.watcher.views.values():
            if view.last is None:
                continue
            try:
                source = StoreSource(self.config.data_dir, view.market)
                values = {"start": default_start(view.last, view.market), "end": view.last,
                          "freq": None, "bin": None, "pmin": None, "pmax": None,
                          "agg": "mean", "unit": "tokens", "side": "split"}
                build_heatmap(source, D.plan_heatmap(source, values, self.config.limits).request)
            except LiqmapError as exc:
                log.debug("warm-up skipped: %s", exc)
            return

    def close_streams(self) -> None:
        """End every open event stream now (the server is stopping): an open page must not
        hold the shutdown until its graceful timeout runs out."""
        self.closing = True
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a full queue sees the flag soon
                queue.put_nowait("")

    def broadcast(self, event: str, payload: dict[str, Any]) -> None:
        message = f"event: {event}\ndata: {json.dumps(payload)}\n\n"
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a stuck client misses events
                queue.put_nowait(message)

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {
            "ok": True, "version": __version__,
            "now": time.strftime(C.ISO_SECONDS_UTC, time.gmtime(now)),
            "stale_after_s": self.config.stale_after_s,
            "markets": [v.as_json(now, self.config.stale_after_s)
                        for v in self.watcher.views.values()],
            "default_bin_usd": {m: D.default_bin_usd(m, v.price_usd)
                                for m, v in self.watcher.views.items()},
            "limits": {"max_columns": self.config.limits.max_columns,
                       "max_bins": self.config.limits.max_bins,
                       "max_cells": self.config.limits.max_cells,
                       "request_timeout_s": self.config.request_timeout_s},
            "features": {"signal": True, "liquidations": True},
        }


def _load_static() -> dict[str, tuple[str, bytes]]:
    """The page's files, read once from the package: hashed name -> (media type, bytes); the
    index and docs pages refer to the hashed names."""
    root = resources.files("liqmap.serve") / "static"
    media = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
             ".svg": "image/svg+xml"}
    out: dict[str, tuple[str, bytes]] = {}
    names = {}
    for name in STATIC_FILES:
        body = (root / name).read_bytes()
        stem, ext = name.rsplit(".", 1)
        hashed = f"{stem}.{hashlib.sha256(body).hexdigest()[:10]}.{ext}"
        names[name] = hashed
        out[hashed] = (media["." + ext], body)
    for page in ("index.html", "docs.html"):
        text = (root / page).read_text()
        for name, hashed in names.items():
            text = text.replace(f"{{{{{name}}}}}", f"/static/{hashed}")
        out[page] = ("text/html; charset=utf-8", text.encode())
    return out


def _api_message(exc: LiqmapError, data_dir: str) -> str:
    """The library's message in the API's words, without the server's store location."""
    message = str(exc).replace(f"store {data_dir}", "store").replace(data_dir, "the store")
    for option, name in OPTION_NAMES.items():
        message = message.replace(option, name)
    return message


def json_response(body: bytes, status: int = 200, **headers: str) -> Response:
    return Response(body, status, media_type="application/json",
                    headers={"cache-control": "no-store", **headers})


def _error(status: int, message: str) -> Response:
    return json_response(error_body(status, message), status)


def _server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


def _values(request: Request, params: tuple[Any, ...]) -> dict[str, Any]:
    query = request.query_params
    multi = {k: len(query.getlist(k)) for k in query}
    return parse_query(dict(query), params, multi)


def _format(request: Request, asked: str | None) -> str:
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "")
    for name, media in FORMATS.items():
        if media in accept and name != "json":
            return name
    return "json"


def _ask(request: Request, route: str, params: Any
         ) -> tuple[Server, dict[str, Any], MarketView, tuple[Any, ...]]:
    """(server, validated parameters, the market's view, cache key) of a request for a
    computed answer. Answers are cached per route, the market's newest snapshot and the
    parameters (a `format` is resolved against the Accept header first)."""
    server = _server(request)
    values = _values(request, params)
    if "format" in values:
        values["format"] = _format(request, values["format"])
    view = server.watcher.views[values["market"]]
    return server, values, view, (route, view.last, tuple(sorted(values.items(),
                                                                 key=lambda kv: kv[0])))


async def heatmap(request: Request) -> Response:
    server, values, _, key = _ask(request, "heatmap", HEATMAP_PARAMS)
    fmt = values.pop("format")
    root, limits = server.config.data_dir, server.config.limits

    def work() -> bytes:
        source = StoreSource(root, values["market"])
        plan = D.plan_heatmap(source, values, limits)
        return ENCODERS[fmt](build_heatmap(source, plan.request), plan)

    body = await server.compute(key, work)
    headers = {"cache-control": "no-cache", "vary": "accept, accept-encoding"}
    if "gzip" in request.headers.get("accept-encoding", "") and len(body) > 1024:
        body = await server.compute((*key, "gzip"), lambda: gzip.compress(body, 6, mtime=0))
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=FORMATS[fmt], headers=headers)


async def levels(request: Request) -> Response:
    server, values, view, key = _ask(request, "levels", LEVELS_PARAMS)
    root = server.config.data_dir

    def work() -> bytes:
        source = StoreSource(root, values["market"])
        bin_usd = values["bin"] or D.default_bin_usd(values["market"], view.price_usd)
        return D.levels_json(build_levels(source, values["at"], bin_usd=bin_usd,
                                          pmin_usd=values["pmin"], pmax_usd=values["pmax"]))

    return json_response(await server.compute(key, work))


async def status(request: Request) -> Response:
    _values(request, ())
    return json_response(json.dumps(_server(request).status()).encode())


async def stream(request: Request) -> Response:
    server = _server(request)
    market = _values(request, STREAM_PARAMS)["market"]
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)

    async def events() -> AsyncIterator[str]:
        server.subscribers.add(queue)
        try:
            yield "retry: 2000\n\n"
            yield f"event: hello\ndata: {json.dumps(server.status())}\n\n"
            while not server.closing:
                try:
                    message = await asyncio.wait_for(queue.get(), C.SERVE_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if server.closing:
                    return
                if market is None or f'"market": "{market}"' in message:
                    yield message
        finally:
            server.subscribers.discard(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


async def liquidations(request: Request) -> Response:
    server, values, _, key = _ask(request, "liquidations", LIQUIDATIONS_PARAMS)
    root = server.config.data_dir

    def work() -> bytes:
        source = StoreSource(root, values["market"])
        start, end = resolve_window(values["start"], values["end"], source)
        rows = markers_json(liquidation_markers(source.store, values["market"], start,
                                                end + pd.Timedelta(seconds=59)))
        return json.dumps({"ok": True, "market": values["market"],
                           "start": iso_utc(start),
                           "end": iso_utc(end),
                           "liquidations": rows}).encode()

    return json_response(await server.compute(key, work))


async def signal(request: Request) -> Response:
    """The live hedge signal (the rule `liqmap signal` runs, default parameters): its state
    at the newest minute and its toggles, from the library function `signal_state`."""
    server = _server(request)
    market = _values(request, SIGNAL_PARAMS)["market"]
    view = server.watcher.views[market]
    root = server.config.data_dir

    def work() -> bytes:
        from liqmap.backtest.live import signal_state

        return json.dumps({"ok": True, **signal_state(root, market)}, default=str).encode()

    return json_response(await server.compute(("signal", view.last, market), work))


def _page(name: str) -> Callable[[Request], Any]:
    async def page(request: Request) -> Response:
        media, body = _server(request).static[name]
        return Response(body, media_type=media, headers={"cache-control": "no-cache"})

    return page


async def static(request: Request) -> Response:
    entry = _server(request).static.get(request.path_params["name"])
    if entry is None or request.path_params["name"].endswith(".html"):
        return _error(404, "no such static file; reload the page")
    return Response(entry[1], media_type=entry[0],
                    headers={"cache-control": "public, max-age=31536000, immutable"})


async def openapi(request: Request) -> Response:
    return json_response(json.dumps(openapi_spec()).encode())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message)


async def _library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LiqmapError)
    status = 404 if isinstance(exc, DataGapError) else 400 if isinstance(exc, InputError) else 500
    if status == 500:
        log.error("request %s failed: %s", request.url.path, exc)
    return _error(status, _api_message(exc, _server(request).config.data_dir))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "no such page; the API lives under /api/v1 (see /docs)",
               405: "method not allowed; this server is read-only (GET)"}
    return _error(exc.status_code, message.get(exc.status_code, str(exc.detail)))


def create_app(config: ServeConfig) -> Any:
    """The ASGI app (Starlette inside the `Guard` middleware) serving `config.data_dir`."""
    config.check()
    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(server.watcher.poll)
        task = asyncio.create_task(server.watch())
        asyncio.get_running_loop().run_in_executor(server.pool, server.warm_up)
        try:
            yield
        finally:
            task.cancel()
            server.pool.shutdown(wait=False, cancel_futures=True)

    routes = [
        Route("/", _page("index.html")), Route("/docs", _page("docs.html")),
        Route("/static/{name}", static), Route("/openapi.json", openapi),
        Route("/api/v1/heatmap", heatmap), Route("/api/v1/levels", levels),
        Route("/api/v1/status", status), Route("/api/v1/stream", stream),
        Route("/api/v1/signal", signal), Route("/api/v1/liquidations", liquidations),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        ApiError: _api_error, LiqmapError: _library_error, HTTPException: _http_error})
    app.state.server = server
    return Guard(app, token=config.token, check_host=is_loopback(config.host),
                 max_query_chars=C.SERVE_MAX_QUERY_CHARS, cors_origin=config.cors_origin)


def close_streams(app: Any) -> None:
    """End the open event streams of an app made by `create_app` (the server is stopping)."""
    app.app.state.server.close_streams()
