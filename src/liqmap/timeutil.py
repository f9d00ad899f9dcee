"""Time parsing and minute arithmetic (UTC everywhere)."""

from __future__ import annotations

import pandas as pd

from liqmap.errors import InputError


def parse_time(value: str | pd.Timestamp, *, what: str = "time", tz: str = "UTC") -> pd.Timestamp:
    """Parse ISO 8601 (or a Timestamp) to a tz-aware UTC Timestamp; naive means `tz`.

    >>> parse_time("2025-08-22T12:00:00")
    Timestamp('2025-08-22 12:00:00+0000', tz='UTC')
    >>> parse_time("2025-08-22T20:00:00+08:00")
    Timestamp('2025-08-22 12:00:00+0000', tz='UTC')
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot parse {what} {value!r}; use ISO 8601 such as "
                         "2025-08-22T12:00:00 (UTC) or 2025-08-22T20:00:00+08:00") from exc
    if ts is pd.NaT:
        raise InputError(f"{what} is empty; use ISO 8601 such as 2025-08-22T12:00:00")
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.tz_convert("UTC")
