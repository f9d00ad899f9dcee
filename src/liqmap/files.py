"""Atomic output files for every command: written to a temporary name in the target folder
(hidden, so no reader takes it for data), then renamed over the target."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path, tmp_suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path`, else delete it.

    An OSError (a full disk) names `path`, not the temporary file, and leaves no partial file.
    """
    target = Path(path)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}{tmp_suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.filename is None or str(exc.filename).endswith(tmp.name) or \
                Path(exc.filename) == tmp:
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    finally:
        with contextlib.suppress(OSError):  # a read-only disk must not hide the first error
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
