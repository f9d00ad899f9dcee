"""The only network code: HTTP POST of JSON-RPC bodies with timeouts, retries and failover.

Every failed attempt (timeout, connection error, HTTP 429/5xx, truncated or invalid JSON, a
retryable node error) is retried with exponential backoff and jitter, on the next endpoint when
several are configured, until `max_retries` or the caller's deadline. HTTP 429 `Retry-After` is
honoured per endpoint. Endpoint URLs appear only redacted in messages.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import msgspec

from liqmap import __version__
from liqmap import constants as C
from liqmap.collect.rpc.requests import body
from liqmap.config import redact_url, redact_urls
from liqmap.errors import RpcError
from liqmap.logs import register_secret_url

log = logging.getLogger(__name__)
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()


class Stopped(Exception):
    """Raised while waiting to retry when the caller asked to stop."""


@dataclass
class CallStats:
    """What one logical call cost: attempts, bytes received, wall time."""

    method: str
    attempts: int = 0
    response_bytes: int = 0
    latency_s: float = 0.0
    endpoint: str = ""

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)


@dataclass
class _Endpoint:
    url: str = field(repr=False)  # may hold an API key; `label` is the redacted form
    not_before: float = 0.0
    failures: int = 0
    requests: int = 0
    errors: int = 0
    retries: int = 0
    last_error: str = ""
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = redact_url(self.url)


@dataclass(frozen=True)
class EndpointReport:
    """Counters of one endpoint since the transport started (the URL redacted).

    `backoff_s` is how long the endpoint is still avoided (0: it gets the next request).
    """

    endpoint: str
    requests: int
    errors: int
    retries: int
    last_error: str
    backoff_s: float


class Transport:
    """JSON-RPC over HTTP to one or more endpoints."""

    def __init__(self, urls: tuple[str, ...] | list[str], *, timeout_s: float = C.DEFAULT_TIMEOUT_S,
                 max_retries: int = C.DEFAULT_MAX_RETRIES, backoff_s: float = C.DEFAULT_BACKOFF_S,
                 backoff_max_s: float = C.DEFAULT_BACKOFF_MAX_S,
                 stop: threading.Event | None = None) -> None:
        if not urls:
            raise RpcError("no RPC URL configured; pass --rpc-url or set LIQMAP_RPC_URL")
        for url in urls:
            register_secret_url(url)
        self.endpoints = [_Endpoint(u) for u in urls]
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.stop = stop or threading.Event()
        self._client = httpx.Client(headers={"content-type": "application/json",
                                             "user-agent": f"liqmap/{__version__}"},
                                    follow_redirects=False)
        self._request_id = 0

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: list[Any], parse: Callable[[bytes], T], *,
             timeout_s: float | None = None, deadline: float | None = None
             ) -> tuple[T, CallStats]:
        """POST `method(params)`, parse the body with `parse`, retrying as the module says.

        `deadline` is a `time.monotonic()` value after which no attempt starts.
        """
        self._request_id += 1
        payload = _ENCODER.encode(body(method, params, self._request_id))
        stats = CallStats(method)
        started = time.monotonic()
        last_error = "no attempt made"
        skip: set[int] = set()  # endpoints that refused this request for good
        while True:
            index = self._pick(skip)
            if index is None:
                raise RpcError(f"{method} failed on every endpoint: {last_error}",
                               method=method, retryable=False)
            ep = self.endpoints[index]
            self._wait_until(ep.not_before, deadline, method, last_error)
            ep.requests += 1
            ep.retries += stats.attempts > 0
            stats.attempts += 1
            stats.endpoint = ep.label
            try:
                result = self._attempt(ep, method, payload, parse, stats,
                                       self._attempt_timeout(timeout_s, deadline))
            except RpcError as exc:
                last_error = f"{exc} [{ep.label}]"
                self._record_failure(ep, exc)
                if not exc.retryable:
                    skip.add(index)
                if stats.attempts > self.max_retries:
                    raise RpcError(f"{method} failed after {stats.attempts} attempts: "
                                   f"{last_error}", method=method) from exc
                log.debug("retrying %s: %s", method, last_error)
                continue
            ep.failures = 0
            stats.latency_s = time.monotonic() - started
            return result, stats

    def _attempt(self, ep: _Endpoint, method: str, payload: bytes,
                 parse: Callable[[bytes], T], stats: CallStats, timeout_s: float) -> T:
        try:
            response = self._client.post(ep.url, content=payload,
                                         timeout=httpx.Timeout(timeout_s,
                                                               connect=min(10.0, timeout_s)))
        except httpx.TimeoutException as exc:
            raise RpcError(f"{method}: no response within {timeout_s:.0f}s", method=method) from exc
        except httpx.HTTPError as exc:
            raise RpcError(f"{method}: {type(exc).__name__}: {_scrub(str(exc), ep)}",
                           method=method) from exc
        stats.response_bytes += response.num_bytes_downloaded
        _check_status(response, method)
        return parse(response.content)

    def _attempt_timeout(self, timeout_s: float | None, deadline: float | None) -> float:
        timeout = timeout_s or self.timeout_s
        if deadline is not None:
            timeout = min(timeout, max(deadline - time.monotonic(), 0.5))
        return timeout

    def _pick(self, skip: set[int]) -> int | None:
        """The first endpoint in the order given whose back-off has ended, else the one whose
        back-off ends first: after a fault the primary gets requests again as soon as it may."""
        candidates = [i for i in range(len(self.endpoints)) if i not in skip]
        if not candidates:
            return None
        now = time.monotonic()
        ready = [i for i in candidates if self.endpoints[i].not_before <= now]
        if ready:
            return ready[0]
        return min(candidates, key=lambda i: (self.endpoints[i].not_before, i))

    def report(self) -> list[EndpointReport]:
        """Per-endpoint counters, in the order the endpoints were given."""
        now = time.monotonic()
        return [EndpointReport(ep.label, ep.requests, ep.errors, ep.retries, ep.last_error,
                               round(max(ep.not_before - now, 0.0), 3))
                for ep in self.endpoints]

    def _record_failure(self, ep: _Endpoint, exc: RpcError) -> None:
        ep.failures += 1
        ep.errors += 1
        ep.last_error = _scrub(str(exc), ep)[:300]
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (ep.failures - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter
        if exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        ep.not_before = time.monotonic() + delay

    def _wait_until(self, when: float, deadline: float | None, method: str,
                    last_error: str) -> None:
        delay = when - time.monotonic()
        if deadline is not None and time.monotonic() + max(delay, 0) >= deadline:
            raise RpcError(f"{method}: out of time for this cycle; last error: {last_error}",
                           method=method)
        if delay > 0 and self.stop.wait(delay):
            raise Stopped()


def _scrub(text: str, ep: _Endpoint) -> str:
    """The endpoint's URL by its label, and any other URL a message quotes (a redirect's
    target) redacted too: these texts reach the endpoint report on disk, not only the log."""
    return redact_urls(text.replace(ep.url, ep.label))


def _check_status(response: httpx.Response, method: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 429:
        raise RpcError(f"{method}: HTTP 429 rate limited", method=method,
                       retry_after_s=_retry_after(response.headers.get("retry-after")))
    if status >= 500 or status in (408, 425):
        raise RpcError(f"{method}: HTTP {status} from the node", method=method)
    raise RpcError(f"{method}: HTTP {status}; check the RPC URL and its API key",
                   method=method, retryable=False)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
