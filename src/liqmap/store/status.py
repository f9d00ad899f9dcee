"""What a store holds for a market and window: snapshots, gaps (with reasons), sizes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from liqmap.errors import DataGapError, StorageError
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store import schema as S


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
                    end: pd.Timestamp | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    if start is not None and end is not None:
        return start, end
    bounds = _bounds(store, market)
    if bounds is None:
        raise DataGapError(f"no {market} snapshots in {store.root}; run `liqmap collect` first "
                           "or point --data-dir at your store")
    end = end if end is not None else bounds[1]
    start = start if start is not None else max(bounds[0], end - pd.Timedelta(hours=24))
    return start, end


def market_status(store: Store, market: str, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, interval_s: float = 60.0) -> MarketStatus:
    """Snapshots present and missing for `market` in [start, end] (default: last 24 h)."""
    damaged = damaged_files(store, market, start, end)
    try:
        start, end = _default_window(store, market, start, end)
        state = store.read_market_state(market, start, end,
                                        ["ts", "n_positions", *COLLECTION_COLUMNS]).to_pandas()
        misses = store.read_misses(market, start, end).to_pandas()
    except StorageError as exc:
        if not damaged:
            raise
        raise StorageError(f"{format_damaged(damaged)}; run `liqmap recover --quarantine` to "
                           "move them aside (nothing is deleted)") from exc
    if start > end:
        raise DataGapError(f"--t-start {start} is after --t-end {end}")
    step = pd.Timedelta(seconds=interval_s)
    first = start.ceil(step)
    expected = pd.date_range(first, end, freq=step) if first <= end else pd.DatetimeIndex([])
    present = pd.DatetimeIndex(state["ts"])
    missing = expected.difference(present)
    reasons = dict(zip(misses["ts"], misses["reason"], strict=True))
    counts = state["n_positions"].to_numpy()
    return MarketStatus(
        market=market, start=start, end=end, expected=len(expected),
        present=int(present.isin(expected).sum()), gaps=_group_gaps(missing, step, reasons),
        positions_min=int(counts.min()) if len(counts) else 0,
        positions_median=float(np.median(counts)) if len(counts) else 0.0,
        positions_max=int(counts.max()) if len(counts) else 0,
        bytes_by_dataset=store.size_bytes(market), damaged=damaged,
        collection=collection_stats(state),
    )


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


def _group_gaps(missing: pd.DatetimeIndex, step: pd.Timedelta,
                reasons: dict[pd.Timestamp, str]) -> list[Gap]:
    gaps: list[Gap] = []
    run: list[pd.Timestamp] = []
    for ts in missing:
        if run and ts - run[-1] != step:
            gaps.append(_gap(run, reasons))
            run = []
        run.append(ts)
    if run:
        gaps.append(_gap(run, reasons))
    return gaps


def _gap(run: list[pd.Timestamp], reasons: dict[pd.Timestamp, str]) -> Gap:
    """Every recorded reason of the run, most frequent first, with its minutes."""
    recorded = [reasons[t] for t in run if t in reasons]
    counts = Counter(recorded)
    parts = [why if len(counts) == 1 and len(recorded) == len(run) else f"{why} ({n} min)"
             for why, n in counts.most_common()]
    if len(recorded) < len(run):
        parts.append(f"no record: collector not running ({len(run) - len(recorded)} min)"
                     if parts else "no record: collector not running")
    return Gap(run[0], run[-1], len(run), "; ".join(parts))


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
    share = 100.0 * status.present / status.expected if status.expected else 100.0
    sizes = ", ".join(f"{k} {_mb(v)}" for k, v in status.bytes_by_dataset.items() if v)
    lines = [
        f"{status.market}  {status.start.strftime(fmt)} .. {status.end.strftime(fmt)}  "
        f"snapshots {status.present}/{status.expected} ({share:.1f}%)  "
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
    lines = [f"rpc endpoints (collector, as of {report.get('updated', '?')}):"]
    for ep in endpoints:
        backoff = f"  backing off {ep['backoff_s']:.1f}s" if ep.get("backoff_s") else ""
        last = f"  last error: {ep['last_error']}" if ep.get("last_error") else ""
        lines.append(f"  {ep['endpoint']}  requests {ep['requests']}  errors {ep['errors']}  "
                     f"retries {ep['retries']}{backoff}{last}")
    return "\n".join(lines)
