"""What a store holds for a market and window: snapshots, gaps (with reasons), sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liqmap.errors import DataGapError
from liqmap.store import Store


@dataclass(frozen=True)
class Gap:
    """Consecutive missing boundaries [first, last] and what the collector recorded."""

    first: pd.Timestamp
    last: pd.Timestamp
    minutes: int
    reason: str


@dataclass(frozen=True)
class MarketStatus:
    market: str
    start: pd.Timestamp
    end: pd.Timestamp
    expected: int
    present: int
    gaps: list[Gap]
    positions_min: int
    positions_median: float
    positions_max: int
    bytes_by_dataset: dict[str, int] = field(default_factory=dict)

    @property
    def missing(self) -> int:
        return self.expected - self.present


def _default_window(store: Store, market: str, start: pd.Timestamp | None,
                    end: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    if start is not None and end is not None:
        return start, end
    bounds = store.time_bounds(market)
    if bounds is None:
        raise DataGapError(f"no {market} snapshots in {store.root}; run `liqmap collect` first "
                           "or point --data-dir at your store")
    end = end if end is not None else bounds[1]
    start = start if start is not None else max(bounds[0], end - pd.Timedelta(hours=24))
    return start, end


def market_status(store: Store, market: str, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, interval_s: float = 60.0) -> MarketStatus:
    """Snapshots present and missing for `market` in [start, end] (default: last 24 h).

    Work grows with the snapshots and misses stored, not with the window: a window of a
    century over a day of data is as quick as the day.
    """
    start, end = _default_window(store, market, start, end)
    if start > end:
        raise DataGapError(f"--t-start {start} is after --t-end {end}; swap them")
    step_us = round(interval_s * 1e6)
    if step_us <= 0:
        raise DataGapError(f"the interval must be > 0 seconds, got {interval_s:g}")
    first, last = -(-_micros(start) // step_us), _micros(end) // step_us  # grid indices
    expected = max(0, last - first + 1)
    state = store.read_market_state(market, start, end, ["ts", "n_positions"])
    ts_us = _column_micros(state.column("ts"))
    on_grid = ts_us[ts_us % step_us == 0] // step_us
    present = np.unique(on_grid[(on_grid >= first) & (on_grid <= last)])
    misses = store.read_misses(market, start, end)
    miss_k = _column_micros(misses.column("ts")) // step_us
    counts = state.column("n_positions").to_numpy(zero_copy_only=False)
    return MarketStatus(
        market=market, start=start, end=end, expected=expected, present=int(present.size),
        gaps=_find_gaps(present, first, last, step_us, miss_k,
                        misses.column("reason").to_pylist()),
        positions_min=int(counts.min()) if len(counts) else 0,
        positions_median=float(np.median(counts)) if len(counts) else 0.0,
        positions_max=int(counts.max()) if len(counts) else 0,
        bytes_by_dataset=store.size_bytes(market),
    )


def _micros(ts: pd.Timestamp) -> int:
    return int(ts.value // 1000)


def _column_micros(column: object) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    cast = pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.int64)


def _find_gaps(present: np.ndarray, first: int, last: int, step_us: int, miss_k: np.ndarray,
               reasons: list[str]) -> list[Gap]:
    """Runs of grid indices in [first, last] without a snapshot (`present` sorted, unique)."""
    bounds = np.concatenate([[first - 1], present, [last + 1]])
    where = np.flatnonzero(np.diff(bounds) > 1)
    order = np.argsort(miss_k, kind="stable")
    miss_k = miss_k[order]
    gaps = []
    for i in where:
        lo, hi = int(bounds[i]) + 1, int(bounds[i + 1]) - 1
        a, b = np.searchsorted(miss_k, [lo, hi + 1])
        recorded = [reasons[j] for j in order[a:b]]
        gaps.append(_gap(lo, hi, step_us, recorded))
    return gaps


def _gap(lo: int, hi: int, step_us: int, recorded: list[str]) -> Gap:
    n = hi - lo + 1
    if recorded:
        reason = max(set(recorded), key=recorded.count)
        if len(recorded) < n:
            reason += f" ({n - len(recorded)} min with no record: collector not running)"
    else:
        reason = "no record: collector not running"
    return Gap(pd.Timestamp(lo * step_us * 1000, tz="UTC"),
               pd.Timestamp(hi * step_us * 1000, tz="UTC"), n, reason)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def format_status(status: MarketStatus, *, max_gaps: int = 20) -> str:
    """Human-readable report, one block per market."""
    fmt = "%Y-%m-%dT%H:%MZ"
    share = f"{100.0 * status.present / status.expected:.1f}%" if status.expected else "n/a"
    sizes = ", ".join(f"{k} {_mb(v)}" for k, v in status.bytes_by_dataset.items() if v)
    lines = [
        f"{status.market}  {status.start.strftime(fmt)} .. {status.end.strftime(fmt)}  "
        f"snapshots {status.present}/{status.expected} ({share})  "
        f"positions/snapshot min {status.positions_min} median {status.positions_median:g} "
        f"max {status.positions_max}",
        f"  store size: {sizes or 'empty'}",
    ]
    if status.gaps:
        lines.append(f"  gaps: {status.missing} missing minute(s) in {len(status.gaps)} range(s)")
        for gap in status.gaps[:max_gaps]:
            span = (gap.first.strftime(fmt) if gap.minutes == 1
                    else f"{gap.first.strftime(fmt)} .. {gap.last.strftime(fmt)}")
            lines.append(f"    {span}  {gap.minutes} min  {gap.reason}")
        if len(status.gaps) > max_gaps:
            lines.append(f"    ... {len(status.gaps) - max_gaps} more range(s)")
    else:
        lines.append("  gaps: none")
    return "\n".join(lines)
