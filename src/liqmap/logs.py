"""Logging setup. Every handler scrubs registered secrets (RPC URLs) from every record."""

from __future__ import annotations

import logging
import sys
import threading

from liqmap.config import redact_url, redact_urls

_secrets: dict[str, str] = {}
_lock = threading.Lock()


def register_secret_url(url: str) -> None:
    """From now on, log output shows `url` only in its redacted form."""
    redacted = redact_url(url)
    if redacted != url:
        with _lock:
            _secrets[url] = redacted


def scrub(text: str) -> str:
    """Replace every registered secret URL in `text` by its redacted form, then any other URL
    with a path or query (`redact_urls`: a redirect's target, a URL a library derived)."""
    with _lock:
        items = sorted(_secrets.items(), key=lambda kv: -len(kv[0]))
    for secret, redacted in items:
        if secret in text:
            text = text.replace(secret, redacted)
    return redact_urls(text)


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


def _log_thread_error(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread (the collector `serve --collect` runs, the confirmer)
    goes to liqmap's log, scrubbed; Python's own hook would print the raw traceback, which may
    quote an RPC URL. A hook set before ours (a test runner's) is still called."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    error = args.exc_value if args.exc_value is not None else args.exc_type()
    logging.getLogger("liqmap").error("thread %s stopped on an error", name,
                                      exc_info=(args.exc_type, error, args.exc_traceback))
    previous = getattr(_log_thread_error, "previous", threading.__excepthook__)
    if previous is not threading.__excepthook__:
        previous(args)


def setup_logging(level: str | None = None) -> None:
    """Log to stderr as `2026-11-24T08:00:00Z INFO liqmap.collect: ...` (UTC); errors that
    end a thread are logged the same way (`_log_thread_error`)."""
    if threading.excepthook is not _log_thread_error:
        _log_thread_error.previous = threading.excepthook  # type: ignore[attr-defined]
        threading.excepthook = _log_thread_error
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
