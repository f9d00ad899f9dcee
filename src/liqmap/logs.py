"""Logging setup. Every handler scrubs registered secrets (RPC URLs) from every record."""

from __future__ import annotations

import logging
import sys
import threading

from liqmap.config import redact_url

_secrets: dict[str, str] = {}
_lock = threading.Lock()


def register_secret_url(url: str) -> None:
    """From now on, log output shows `url` only in its redacted form."""
    redacted = redact_url(url)
    if redacted != url:
        with _lock:
            _secrets[url] = redacted


def scrub(text: str) -> str:
    """Replace every registered secret URL in `text` by its redacted form."""
    with _lock:
        items = sorted(_secrets.items(), key=lambda kv: -len(kv[0]))
    for secret, redacted in items:
        if secret in text:
            text = text.replace(secret, redacted)
    return text


class ScrubFilter(logging.Filter):
    """Rewrites the formatted message so no registered secret reaches any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(level: str | None = None) -> None:
    """Log to stderr as `2026-11-24T08:00:00Z INFO liqmap.collect: ...` (UTC)."""
    root = logging.getLogger("liqmap")
    if level:
        root.setLevel(level)
    elif root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    if any(getattr(h, "_liqmap", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s",
                                  datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    handler.addFilter(ScrubFilter())
    handler._liqmap = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
