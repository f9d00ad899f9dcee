"""A scripted JSON-RPC server on 127.0.0.1 for the fault paths surfnet does not emulate.

Each request consumes the next step of the script: an HTTP status + body, a delay before
answering, or a connection dropped mid-response. When the script runs out, the last step repeats.
A `ChainScript` answers by method instead: `getSignaturesForAddress` and `getTransaction`
built from Jupiter's event layouts (`liqmap.jupiter.events`), as a node that serves
transactions would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    truncate: bool = False  # announce the full length, send half, close


def ok(result: Any) -> Step:
    return Step(body=json.dumps({"jsonrpc": "2.0", "id": 1, "result": result}).encode())


def rpc_error(code: int, message: str) -> Step:
    return Step(body=json.dumps({"jsonrpc": "2.0", "id": 1,
                                 "error": {"code": code, "message": message}}).encode())


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _Loopback:
    """An HTTP server on a free 127.0.0.1 port; JSON-RPC bodies it received in `requests`."""

    requests: list[dict[str, Any]]

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def methods(self) -> list[str]:
        return [r["method"] for r in self.requests]


@contextmanager
def _running(server: Any) -> Iterator[Any]:
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


class ScriptedServer(_Loopback):
    def __init__(self, steps: list[Step], router: Any = None) -> None:
        self.steps = list(steps)
        self.router = router  # callable(method, params) -> Step, instead of the steps
        self.times: list[float] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    if server.router is not None:
                        step = server.router(body["method"], body.get("params", []))
                    else:
                        step = server.steps.pop(0) if len(server.steps) > 1 else server.steps[0]
                if step.delay_s:
                    time.sleep(step.delay_s)
                self.send_response(step.status)
                for k, v in step.headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(step.body)))
                self.end_headers()
                if step.truncate:
                    self.wfile.write(step.body[: len(step.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(step.body)

        self._listen(Handler)


@contextmanager
def scripted(steps: list[Step], router: Any = None) -> Iterator[ScriptedServer]:
    with _running(ScriptedServer(steps, router)) as server:
        yield server


# ---------------------------------------------------------------- transactions of a position
PERPS = "PERPHjGBqRHArX4DySjwM6UJHiR3sWAatqfdBS2qQJu"
KEEPER = "Keeper1111111111111111111111111111111111111"


def transaction(inner_data: list[bytes], *, err: Any = None, block_time: int = 0,
                outer: list[tuple[bytes, list[str]]] | None = None,
                version: Any = 0) -> dict[str, Any]:
    """A `getTransaction` result (json encoding, v0 message) whose inner instructions are
    self-invocations of the Perps program carrying `inner_data`; `outer` adds top-level Perps
    instructions (data, account keys). The Perps program sits in the loaded addresses, so
    account indexes span the message keys and the address-table keys, as in v0 transactions."""
    from liqmap.jupiter.events import b58encode

    keys = [KEEPER]
    for _, accounts in outer or []:
        keys += [a for a in accounts if a not in keys]
    perps_index = len(keys)  # first loaded (readonly) address
    outer_ix = [{"programIdIndex": perps_index, "data": b58encode(data),
                 "accounts": [keys.index(a) for a in accounts], "stackHeight": None}
                for data, accounts in outer or []]
    inner = [{"index": 0, "instructions": [
        {"programIdIndex": perps_index, "accounts": [], "data": b58encode(d), "stackHeight": 2}
        for d in inner_data]}]
    return {"slot": 1, "blockTime": block_time, "version": version,
            "transaction": {"signatures": ["x"], "message": {
                "accountKeys": keys, "instructions": outer_ix,
                "recentBlockhash": "11111111111111111111111111111111"}},
            "meta": {"err": err, "status": {"Err": err} if err else {"Ok": None},
                     "innerInstructions": inner,
                     "loadedAddresses": {"writable": [], "readonly": [PERPS]},
                     "logMessages": []}}


class ChainScript:
    """Answers `getSignaturesForAddress`/`getTransaction` for scripted position histories.

    `add(position, signature, tx, block_time)` records a transaction touching `position`;
    signatures are listed newest first, as nodes do. `refuse` answers every call with a
    JSON-RPC "method not found" error (a node that serves no transactions).
    """

    def __init__(self, refuse: bool = False) -> None:
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.txs: dict[str, dict[str, Any]] = {}
        self.refuse = refuse

    def add(self, position: str, signature: str, tx: dict[str, Any], block_time: int) -> None:
        tx = {**tx, "blockTime": block_time}
        self.txs[signature] = tx
        self.history.setdefault(position, []).append(
            {"signature": signature, "slot": len(self.txs), "err": tx["meta"]["err"],
             "blockTime": block_time, "memo": None, "confirmationStatus": "confirmed"})

    def __call__(self, method: str, params: list[Any]) -> Step:
        if self.refuse:
            return rpc_error(-32601, "Method not found")
        if method == "getSignaturesForAddress":
            limit = (params[1] if len(params) > 1 else {}).get("limit", 1000)
            rows = sorted(self.history.get(params[0], []), key=lambda r: -r["blockTime"])
            return ok(rows[:limit])
        if method == "getTransaction":
            opts = params[1] if len(params) > 1 else {}
            tx = self.txs.get(params[0])
            if tx is not None and tx.get("version") == 0 and \
                    opts.get("maxSupportedTransactionVersion") is None:
                return rpc_error(-32015, "Transaction version (0) is not supported by the "
                                 "requesting client")
            return ok(tx)
        return rpc_error(-32601, f"Method not found: {method}")


class ProxyServer(_Loopback):
    """A JSON-RPC proxy on 127.0.0.1 in front of a real node (surfnet) that can misbehave:
    `rewrite(method, response_dict)` edits answers (a node that is behind, an empty answer),
    `down` makes it answer HTTP 503 (an outage). Requests are kept in `requests`."""

    def __init__(self, upstream: str) -> None:
        import httpx

        self.upstream = upstream
        self.rewrite: Any = None
        self.down = False
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        client = httpx.Client(timeout=60)
        server = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                with server.lock:
                    server.requests.append(body)
                if server.down:
                    out, status = b"service unavailable", 503
                else:
                    answer = client.post(server.upstream, content=raw,
                                         headers={"content-type": "application/json"})
                    out, status = answer.content, answer.status_code
                    if server.rewrite is not None and status == 200:
                        data = server.rewrite(body.get("method"), json.loads(out))
                        out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self._listen(Handler)


@contextmanager
def proxy(upstream: str) -> Iterator[ProxyServer]:
    with _running(ProxyServer(upstream)) as server:
        yield server
