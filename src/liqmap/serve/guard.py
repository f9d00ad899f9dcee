"""The server's front door (pure ASGI middleware): GET only, no bodies, short query strings,
Host checked on loopback binds (DNS rebinding), the bearer token when one is set, security
headers on every answer, CORS only for an origin named by the operator."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
TOKEN_COOKIE = "liqmap_token"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
]


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def tokens_equal(given: str, expected: str) -> bool:
    """Constant-time comparison (no early exit on the first differing byte)."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def error_body(status: int, message: str) -> bytes:
    """The one error envelope of the API."""
    return json.dumps({"ok": False, "error": message, "status": status}).encode()


class Guard:
    """Wraps the app; see the module docstring. `check_host` is on for loopback binds."""

    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool,
                 max_query_chars: int, cors_origin: str | None = None) -> None:
        self.app = app
        self.token = token
        self.check_host = check_host
        self.max_query_chars = max_query_chars
        self.cors_origin = cors_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if self.token is not None and not self._authorized(headers):
            if scope["path"] == "/" and self._query_token_ok(scope):
                # Secure over HTTPS (a TLS proxy in front sets the scheme it was reached by)
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                await _answer(send, 303, b"", [
                    (b"location", b"/"),
                    (b"set-cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; "
                                    f"Path=/{secure}".encode())])
                return
            await _answer(send, 401, error_body(401, "missing or wrong token; send "
                                                     "`Authorization: Bearer TOKEN` or open "
                                                     "/?token=TOKEN once"),
                          [(b"www-authenticate", b"Bearer")])
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if self.cors_origin:
                    extra.append((b"access-control-allow-origin", self.cors_origin.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, bytes] | None:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, error_body(405, f"method {scope['method'][:10]} not allowed; this "
                                        "server is read-only (GET)")
        if len(scope.get("query_string", b"")) > self.max_query_chars:
            return 414, error_body(414, f"query string longer than {self.max_query_chars} "
                                        "characters; shorten it")
        if headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers:
            return 413, error_body(413, "request bodies are not accepted; send a GET without "
                                        "a body")
        if self.check_host and not is_loopback(_hostname(headers.get("host", ""))):
            return 400, error_body(400, "Host header is not a loopback name; open the page "
                                        "at http://127.0.0.1:PORT/")
        return None

    def _authorized(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and tokens_equal(auth[7:].strip(), self.token):
            return True
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE and tokens_equal(value, self.token):
                return True
        return False

    def _query_token_ok(self, scope: Scope) -> bool:
        assert self.token is not None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(tokens_equal(v, self.token) for v in query.get("token", []))


def _hostname(host: str) -> str:
    """The host of a Host header, without the port ("[::1]:8050" -> "::1")."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _answer(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS, *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
