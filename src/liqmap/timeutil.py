"""Time parsing and minute arithmetic (UTC everywhere).

Relative times: `-6h`, `-90min`, `-2d` (also `-1w`) mean that long BEFORE the newest snapshot of
the data read (the market's newest stored minute, or the last column of a matrix); the sign is
always minus, so `-6h` is earlier than the newest snapshot and `-0h` is the newest snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from liqmap import constants as C
from liqmap.errors import InputError

#: Minutes per unit: minutes (`min`, `m`), hours (`h`), days (`d`) or weeks (`w`).
_MINUTES = {"min": 1, "m": 1, "h": 60, "d": 1440, "w": 10080}
#: A number (group 1) and a unit of `_MINUTES` (group 2): the three forms below share them.
_NUMBER, _UNIT = r"(\d+(?:\.\d+)?)", r"(min|m|h|d|w)"
#: A relative time: `-<number><unit>`.
_RELATIVE = re.compile(rf"^\s*-\s*{_NUMBER}\s*{_UNIT}\s*$")
#: The same without the minus (pandas would read `6h` as 06:00 today): refused.
_UNSIGNED = re.compile(rf"^\s*\+?\s*{_NUMBER}\s*{_UNIT}\s*$")
#: A duration: a number of minutes, or a number with a unit.
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*{_UNIT}?\s*$")


def duration_minutes(text: str) -> float | None:
    """Minutes in a duration (`90`, `90min`, `6h`, `2d`, `1w`; a bare number is minutes), or
    None if `text` is not one (the units of a relative time such as `-6h`).

    >>> [duration_minutes(t) for t in ("90", "6h", "1.5d", "1w", "6 hours")]
    [90.0, 360.0, 2160.0, 10080.0, None]
    """
    match = _DURATION.match(text.lower())
    if match is None:
        return None
    return float(match.group(1)) * _MINUTES.get(match.group(2) or "min", 1)


#: The newest snapshot a relative time counts back from: a time, a function giving it (read
#: only when a relative time is used), or None (no data to count from).
Anchor = pd.Timestamp | Callable[[], pd.Timestamp | None] | None


def relative_offset(value: object) -> pd.Timedelta | None:
    """How long before the newest snapshot a relative time (`-6h`) lies, or None if `value` is
    not a relative time.

    >>> relative_offset("-90min")
    Timedelta('0 days 01:30:00')
    >>> relative_offset("2025-08-22") is None
    True
    """
    if not isinstance(value, str):
        return None
    match = _RELATIVE.match(value)
    if match is None:
        return None
    return pd.Timedelta(minutes=float(match.group(1)) * _MINUTES[match.group(2)])


def is_relative(value: object) -> bool:
    """True for a relative time such as `-6h`."""
    return relative_offset(value) is not None


def parse_time(value: str | pd.Timestamp, *, what: str = "time", tz: str = "UTC",
               anchor: Anchor = None) -> pd.Timestamp:
    """Parse ISO 8601 (or a Timestamp) to a tz-aware UTC Timestamp; naive means `tz`. A
    relative time (`-6h`) is that long before `anchor`, the newest snapshot.

    >>> parse_time("2025-08-22T12:00:00")
    Timestamp('2025-08-22 12:00:00+0000', tz='UTC')
    >>> parse_time("2025-08-22T20:00:00+08:00")
    Timestamp('2025-08-22 12:00:00+0000', tz='UTC')
    >>> parse_time("-6h", anchor=pd.Timestamp("2025-08-22T12:00Z"))
    Timestamp('2025-08-22 06:00:00+0000', tz='UTC')
    """
    offset = relative_offset(value)
    if offset is not None:
        return _newest(value, what, anchor) - offset
    if isinstance(value, str) and (bare := _UNSIGNED.match(value)):
        raise InputError(f"{what} {value.strip()!r} is ambiguous; a time before the newest "
                         f"snapshot takes a minus: -{bare.group(1)}{bare.group(2)}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot parse {what} {value!r}; use ISO 8601 such as "
                         "2025-08-22T12:00:00 (UTC) or 2025-08-22T20:00:00+08:00, or a time "
                         "before the newest snapshot such as -6h") from exc
    if ts is pd.NaT:
        raise InputError(f"{what} is empty; use ISO 8601 such as 2025-08-22T12:00:00")
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.tz_convert("UTC")


def _newest(value: object, what: str, anchor: Anchor) -> pd.Timestamp:
    newest = anchor() if callable(anchor) else anchor
    if newest is None:
        raise InputError(f"{what} {value} counts back from the newest snapshot, but there is "
                         "no snapshot to count from; point --data-dir at a store holding "
                         "snapshots, or give an ISO 8601 time such as 2025-08-22T12:00")
    ts = pd.Timestamp(newest)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def parse_window(t_start: str | pd.Timestamp | None, t_end: str | pd.Timestamp | None, *,
                 anchor: Anchor = None
                 ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """(`--t-start`, `--t-end`) parsed (None stays None), the anchor read at most once;
    InputError when the start is after the end."""
    cached: list[pd.Timestamp | None] = []

    def once() -> pd.Timestamp | None:
        if not cached:
            cached.append(anchor() if callable(anchor) else anchor)
        return cached[0]

    start = parse_time(t_start, what="--t-start", anchor=once) if t_start is not None else None
    end = parse_time(t_end, what="--t-end", anchor=once) if t_end is not None else None
    check_order(start, end)
    return start, end


def check_order(start: pd.Timestamp | None, end: pd.Timestamp | None) -> None:
    """InputError (one line) when both ends are given and `start` is after `end`."""
    if start is not None and end is not None and start > end:
        raise InputError(f"--t-start {start:%Y-%m-%dT%H:%M}Z is after --t-end "
                         f"{end:%Y-%m-%dT%H:%M}Z; swap them")


def iso_utc(ts: pd.Timestamp | str | int) -> str:
    """`ts` to the second in UTC (`C.ISO_SECONDS_UTC`), e.g. `2025-08-22T04:37:00Z`; an int is
    unix seconds, a time without a zone is read as UTC.

    >>> iso_utc(pd.Timestamp("2025-08-22 06:37:00.5+02:00"))
    '2025-08-22T04:37:00Z'
    >>> iso_utc(1755837420)
    '2025-08-22T04:37:00Z'
    """
    t = pd.Timestamp(ts, unit="s") if isinstance(ts, int) else pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
    return t.strftime(C.ISO_SECONDS_UTC)


def default_window(market: str) -> pd.Timedelta:
    """How far back from the newest snapshot a default window reaches (the heatmap, `status`,
    `score`, the page's 24h view): `constants.DEFAULT_WINDOW_HOURS_BY_MARKET`."""
    hours = C.DEFAULT_WINDOW_HOURS_BY_MARKET
    return pd.Timedelta(hours=hours.get(market, hours["SOL"]))


def default_start(end: pd.Timestamp, market: str) -> pd.Timestamp:
    """The first minute of the default window ending at minute `end`, both included: it spans
    `default_window` minutes (24 h: 1,440, as the page's 24h view).

    >>> default_start(pd.Timestamp("2025-08-22T12:00Z"), "SOL")
    Timestamp('2025-08-21 12:01:00+0000', tz='UTC')
    """
    return end - default_window(market) + pd.Timedelta(minutes=1)


def column_micros(column: Any) -> np.ndarray:
    """Microseconds since the epoch (int64) of an Arrow timestamp column, whatever its unit.

    >>> import pyarrow as pa
    >>> column_micros(pa.array([1, 2], pa.timestamp("s", tz="UTC"))).tolist()
    [1000000, 2000000]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    cast = pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(cast, dtype=np.int64)
