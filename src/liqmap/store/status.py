"""What a store holds for a market and window: snapshots, gaps (with reasons), sizes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liqmap.constants import US_PER_MINUTE
from liqmap.errors import DataGapError, StorageError
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store import schema as S
from liqmap.timeutil import check_order, column_micros, default_start, iso_utc


@dataclass(frozen=True)
class Gap:
    """Consecutive missing boundaries [first, last] and what the collector recorded."""

    first: pd.Timestamp
    last: pd.Timestamp
    minutes: int
    reason: str


@dataclass(frozen=True)
class CollectionStats:
    """How the window's snapshots were collected (market_state mode columns; snapshots from
    stores written before those columns count as mode 'unknown')."""

    modes: dict[str, int]
    rpc_bytes_median: float | None  # bytes received per snapshot
    stream_updates_median: float | None
    book_age_ms_median: float | None
    book_age_ms_max: float | None
    missed_updates: int


COLLECTION_COLUMNS = ["mode", "rpc_bytes", "stream_updates", "book_age_ms", "missed_updates"]


def collection_stats(state: pd.DataFrame) -> CollectionStats | None:
    """Summary of the mode columns of market_state rows (None when there are no rows)."""
    if state.empty:
        return None
    modes = state["mode"].fillna("unknown").value_counts().to_dict()

    def median(col: str) -> float | None:
        values = state[col].dropna()
        return float(values.median()) if len(values) else None

    ages = state["book_age_ms"].dropna()
    return CollectionStats(
        modes={str(k): int(v) for k, v in modes.items()},
        rpc_bytes_median=median("rpc_bytes"), stream_updates_median=median("stream_updates"),
        book_age_ms_median=median("book_age_ms"),
        book_age_ms_max=float(ages.max()) if len(ages) else None,
        missed_updates=int(state["missed_updates"].fillna(0).sum()))


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
    legacy: int = 0  # minutes present only through rows imported from the old tool
    collection: CollectionStats | None = None
    damaged: list[Damaged] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return self.expected - self.present


def _bounds(store: Store, market: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last minute holding a snapshot or a recorded miss."""
    found = [b for b in (store.time_bounds(market), store.time_bounds(market, "misses")) if b]
    if not found:
        return None
    return min(b[0] for b in found), max(b[1] for b in found)


def _default_window(store: Store, market: str, start: pd.Timestamp | None,
                    end: pd.Timestamp | None, source: str = "collected"
                    ) -> tuple[pd.Timestamp, pd.Timestamp]:
    if start is not None and end is not None:
        return start, end
    if source == "legacy":
        bounds = store.time_bounds(market, "legacy")
    else:
        found = [b for b in (_bounds(store, market),
                             store.time_bounds(market, "legacy") if source == "auto" else None)
                 if b]
        bounds = (min(b[0] for b in found), max(b[1] for b in found)) if found else None
    if bounds is None:
        raise DataGapError(f"no {market} snapshots in {store.root}; run `liqmap collect` first "
                           "or point --data-dir at your store")
    end = end if end is not None else bounds[1]
    start = start if start is not None else max(bounds[0], default_start(end, market))
    return start, end


def market_status(store: Store, market: str, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, interval_s: float = 60.0, *,
                  source: str = "auto") -> MarketStatus:
    """Snapshots present and missing for `market` in [start, end] (default: last 24 h).

    `source` "auto" counts a minute holding only imported legacy rows as present (counted in
    `legacy`), "collected" only snapshots, "legacy" only legacy rows. Work grows with the
    snapshots and misses stored, not with the window: a window of a century over a day of
    data is as quick as the day.
    """
    damaged = damaged_files(store, market, start, end)
    try:
        start, end = _default_window(store, market, start, end, source)
        state = store.read_market_state(market, start, end,
                                        ["ts", "n_positions", *COLLECTION_COLUMNS])
        misses = store.read_misses(market, start, end)
    except StorageError as exc:
        if not damaged:
            raise
        raise StorageError(f"{format_damaged(damaged)}; run `liqmap recover --quarantine` to "
                           "move them aside (nothing is deleted)") from exc
    check_order(start, end)
    step_us = round(interval_s * 1e6)
    if step_us <= 0:
        raise DataGapError(f"the interval must be > 0 seconds, got {interval_s:g}")
    first, last = -(-_micros(start) // step_us), _micros(end) // step_us  # grid indices
    expected = max(0, last - first + 1)
    if source == "legacy":
        state = state.slice(0, 0)
    collected = _grid_indices(column_micros(state.column("ts")), step_us, first, last)
    legacy = np.zeros(0, np.int64)
    if source != "collected":
        legacy = np.setdiff1d(_grid_indices(_legacy_micros(store, market, start, end), step_us,
                                            first, last), collected)
    present = np.union1d(collected, legacy)
    miss_us = column_micros(misses.column("ts"))
    reasons = misses.column("reason").to_pylist()
    counts = state.column("n_positions").to_numpy(zero_copy_only=False)
    return MarketStatus(
        market=market, start=start, end=end, expected=expected, present=int(present.size),
        gaps=_find_gaps(present, first, last, step_us, miss_us, reasons),
        positions_min=int(counts.min()) if len(counts) else 0,
        positions_median=float(np.median(counts)) if len(counts) else 0.0,
        positions_max=int(counts.max()) if len(counts) else 0,
        bytes_by_dataset=store.size_bytes(market), damaged=damaged,
        legacy=int(legacy.size),
        collection=collection_stats(state.select(COLLECTION_COLUMNS).to_pandas()),
    )


def _legacy_micros(store: Store, market: str, start: pd.Timestamp,
                   end: pd.Timestamp) -> np.ndarray:
    """The minutes (µs since the epoch) of the legacy rows in [start, end]."""
    t_us = column_micros(store.read_legacy(market, start, end, ["t_bin"]).column("t_bin"))
    return np.unique(t_us // US_PER_MINUTE * US_PER_MINUTE)


def _grid_indices(ts_us: np.ndarray, step_us: int, first: int, last: int) -> np.ndarray:
    """Distinct grid indices in [first, last] of the times `ts_us` that fall on the grid."""
    on_grid = ts_us[ts_us % step_us == 0] // step_us
    return np.unique(on_grid[(on_grid >= first) & (on_grid <= last)])


def _micros(ts: pd.Timestamp) -> int:
    return int(ts.value // 1000)


def _find_gaps(present: np.ndarray, first: int, last: int, step_us: int, miss_us: np.ndarray,
               reasons: list[str]) -> list[Gap]:
    """Runs of grid indices in [first, last] without a snapshot (`present` sorted, unique),
    each with the reasons recorded for its minutes (one per minute)."""
    bounds = np.concatenate([[first - 1], present, [last + 1]])
    where = np.flatnonzero(np.diff(bounds) > 1)
    on_grid = np.flatnonzero(miss_us % step_us == 0)
    miss_k, pick = np.unique(miss_us[on_grid] // step_us, return_index=True)
    miss_reason = [reasons[int(on_grid[j])] for j in pick]
    gaps = []
    for i in where:
        lo, hi = int(bounds[i]) + 1, int(bounds[i + 1]) - 1
        a, b = np.searchsorted(miss_k, [lo, hi + 1])
        gaps.append(_gap(lo, hi, step_us, miss_reason[a:b]))
    return gaps


def _gap(lo: int, hi: int, step_us: int, recorded: list[str]) -> Gap:
    """Every recorded reason of the run [lo, hi] (grid indices), most frequent first, with its
    minutes."""
    n = hi - lo + 1
    counts = Counter(recorded)
    parts = [why if len(counts) == 1 and len(recorded) == n else f"{why} ({k} min)"
             for why, k in counts.most_common()]
    if len(recorded) < n:
        parts.append(f"no record: collector not running ({n - len(recorded)} min)"
                     if parts else "no record: collector not running")
    return Gap(pd.Timestamp(lo * step_us * 1000, tz="UTC"),
               pd.Timestamp(hi * step_us * 1000, tz="UTC"), n, "; ".join(parts))


@dataclass(frozen=True)
class Damaged:
    """A data file no Parquet reader can open (truncated, overwritten, not Parquet)."""

    path: str  # relative to the store root
    error: str


def damaged_files(store: Store, market: str | None = None, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None) -> list[Damaged]:
    """Data files (of `market`, in partitions of [start, end]; None = all) whose Parquet
    footer cannot be read."""
    out = []
    for dataset in S.SCHEMAS:
        for m in [market] if market else store.markets(dataset):
            for day, pdir in store.partitions(dataset, m):
                if (start is not None and day < start.date()) or (end is not None
                                                                  and day > end.date()):
                    continue
                for name in sorted(store.fs.listdir(pdir)):
                    if L.parse_file(name) is not None:
                        error = store.fs.parquet_error(f"{pdir}/{name}")
                        if error:
                            out.append(Damaged(f"{pdir}/{name}", error))
    return out


def format_damaged(damaged: list[Damaged]) -> str:
    return (f"{len(damaged)} damaged file(s): "
            + "; ".join(f"{d.path} ({d.error})" for d in damaged))


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _format_collection(c: CollectionStats) -> str:
    modes = ", ".join(f"{m} {n}" for m, n in sorted(c.modes.items()))
    return (f"  collection: mode {modes}; per snapshot median rpc_bytes "
            f"{_num(c.rpc_bytes_median, ',.0f')}, stream_updates "
            f"{_num(c.stream_updates_median, 'g')}, book_age_ms "
            f"{_num(c.book_age_ms_median, '.0f')} (max {_num(c.book_age_ms_max, '.0f')}); "
            f"missed_updates {c.missed_updates}")


def format_status(status: MarketStatus, *, max_gaps: int = 20) -> str:
    """Human-readable report, one block per market."""
    fmt = "%Y-%m-%dT%H:%MZ"
    share = f"{100.0 * status.present / status.expected:.1f}%" if status.expected else "n/a"
    sizes = ", ".join(f"{k} {_mb(v)}" for k, v in status.bytes_by_dataset.items() if v)
    lines = [
        f"{status.market}  {status.start.strftime(fmt)} .. {status.end.strftime(fmt)}  "
        f"snapshots {status.present}/{status.expected} ({share}"
        + (f", {status.legacy} from legacy rows" if status.legacy else "") + ")  "
        f"positions/snapshot min {status.positions_min} median {status.positions_median:g} "
        f"max {status.positions_max}",
        f"  store size: {sizes or 'empty'}",
    ]
    if status.collection is not None:
        lines.append(_format_collection(status.collection))
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
    for d in status.damaged:
        lines.append(f"  DAMAGED FILE {d.path}: {d.error}; run `liqmap recover --quarantine` "
                     "to move it aside")
    return "\n".join(lines)


def format_endpoints(report: dict[str, object] | None) -> str:
    """The collector's per-RPC-endpoint counters, one line each ('' when none saved)."""
    endpoints = report.get("endpoints") if report else None
    if not report or not isinstance(endpoints, list):
        return ""
    updated = report.get("updated")
    try:
        when = iso_utc(str(updated))
    except ValueError:
        when = "?"
    lines = [f"rpc endpoints (collector, as of {when}):"]
    for ep in endpoints:
        backoff = f"  backing off {ep['backoff_s']:.1f}s" if ep.get("backoff_s") else ""
        last = f"  last error: {ep['last_error']}" if ep.get("last_error") else ""
        lines.append(f"  {ep['endpoint']}  requests {ep['requests']}  errors {ep['errors']}  "
                     f"retries {ep['retries']}{backoff}{last}")
    return "\n".join(lines)
