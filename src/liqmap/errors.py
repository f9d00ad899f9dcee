"""One exception tree. The CLI turns any `LiqmapError` into a one-line `Error: ...` and exit 1."""

from __future__ import annotations


class LiqmapError(Exception):
    """Base class: a problem the user can act on. The message names the problem and the fix."""


class ConfigError(LiqmapError):
    """Bad option, environment variable or liqmap.toml value."""


class RpcError(LiqmapError):
    """A JSON-RPC call failed after all retries and endpoints, or returned an error object.

    `retryable` tells the transport whether another attempt may succeed.
    """

    def __init__(self, message: str, *, method: str = "", retryable: bool = True,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class DecodeError(LiqmapError):
    """Account bytes that do not match the expected layout."""


class StorageError(LiqmapError):
    """The store cannot be read or written as asked."""


class DataGapError(LiqmapError):
    """The asked window holds no usable data."""


class InputError(LiqmapError):
    """A user-supplied file (legacy CSV, hedge log, npz) is malformed."""


class RefusedSnapshot(LiqmapError):
    """A chain answer that would make a wrong snapshot (empty, stale, or not adding up)."""
