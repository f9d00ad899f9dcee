"""A scripted JSON-RPC server on 127.0.0.1 for the fault paths surfnet does not emulate.

Each request consumes the next step of the script: an HTTP status + body, a delay before
answering, or a connection dropped mid-response. When the script runs out, the last step repeats.
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


class ScriptedServer:
    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append(body)
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

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def methods(self) -> list[str]:
        return [r["method"] for r in self.requests]


@contextmanager
def scripted(steps: list[Step]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(steps)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


class ProxyServer:
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

        class Handler(BaseHTTPRequestHandler):
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

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def methods(self) -> list[str]:
        return [r["method"] for r in self.requests]


@contextmanager
def proxy(upstream: str) -> Iterator[ProxyServer]:
    server = ProxyServer(upstream)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
