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
    legacy: int = 0  # minutes present only through rows imported from the old tool

    @property
    def missing(self) -> int:
        return self.expected - self.present


def _default_window(store: Store, market: str, start: pd.Timestamp | None,
                    end: pd.Timestamp | None, source: str = "collected"
                    ) -> tuple[pd.Timestamp, pd.Timestamp]:
    if start is not None and end is not None:
        return start, end
    kinds = {"auto": ("market_state", "legacy"), "collected": ("market_state",),
             "legacy": ("legacy",)}[source]
    found = [b for b in (store.time_bounds(market, k) for k in kinds) if b]
    bounds = (min(b[0] for b in found), max(b[1] for b in found)) if found else None
    if bounds is None:
        raise DataGapError(f"no {market} snapshots in {store.root}; run `liqmap collect` first "
                           "or point --data-dir at your store")
    end = end if end is not None else bounds[1]
    start = start if start is not None else max(bounds[0], end - pd.Timedelta(hours=24))
    return start, end


def market_status(store: Store, market: str, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None, interval_s: float = 60.0, *,
                  source: str = "auto") -> MarketStatus:
    """Snapshots present and missing for `market` in [start, end] (default: last 24 h).

    `source` "auto" counts a minute holding only imported legacy rows as present (counted in
    `legacy`), "collected" only snapshots, "legacy" only legacy rows.
    """
    start, end = _default_window(store, market, start, end, source)
    if start > end:
        raise DataGapError(f"--t-start {start} is after --t-end {end}")
    step = pd.Timedelta(seconds=interval_s)
    first = start.ceil(step)
    expected = pd.date_range(first, end, freq=step) if first <= end else pd.DatetimeIndex([])
    state = store.read_market_state(market, start, end, ["ts", "n_positions"]).to_pandas()
    if source == "legacy":
        state = state.iloc[:0]
    collected = pd.DatetimeIndex(state["ts"])
    legacy = _legacy_minutes(store, market, start, end) if source != "collected" else \
        pd.DatetimeIndex([], tz="UTC")
    legacy = legacy.difference(collected)
    present = collected.union(legacy)
    missing = expected.difference(present)
    misses = store.read_misses(market, start, end).to_pandas()
    reasons = dict(zip(misses["ts"], misses["reason"], strict=True))
    counts = state["n_positions"].to_numpy()
    return MarketStatus(
        market=market, start=start, end=end, expected=len(expected),
        present=int(present.isin(expected).sum()), gaps=_group_gaps(missing, step, reasons),
        positions_min=int(counts.min()) if len(counts) else 0,
        positions_median=float(np.median(counts)) if len(counts) else 0.0,
        positions_max=int(counts.max()) if len(counts) else 0,
        bytes_by_dataset=store.size_bytes(market),
        legacy=int(legacy.isin(expected).sum()),
    )


def _legacy_minutes(store: Store, market: str, start: pd.Timestamp,
                    end: pd.Timestamp) -> pd.DatetimeIndex:
    """Distinct minutes of the legacy rows in [start, end]."""
    t_bin = store.read_legacy(market, start, end, ["t_bin"]).column("t_bin").to_pandas()
    return pd.DatetimeIndex(pd.to_datetime(t_bin, utc=True)).floor("min").unique()


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
    recorded = [reasons[t] for t in run if t in reasons]
    if recorded:
        reason = max(set(recorded), key=recorded.count)
        if len(recorded) < len(run):
            reason += f" ({len(run) - len(recorded)} min with no record: collector not running)"
    else:
        reason = "no record: collector not running"
    return Gap(run[0], run[-1], len(run), reason)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def format_status(status: MarketStatus, *, max_gaps: int = 20) -> str:
    """Human-readable report, one block per market."""
    fmt = "%Y-%m-%dT%H:%MZ"
    share = 100.0 * status.present / status.expected if status.expected else 100.0
    sizes = ", ".join(f"{k} {_mb(v)}" for k, v in status.bytes_by_dataset.items() if v)
    lines = [
        f"{status.market}  {status.start.strftime(fmt)} .. {status.end.strftime(fmt)}  "
        f"snapshots {status.present}/{status.expected} ({share:.1f}%"
        + (f", {status.legacy} from legacy rows" if status.legacy else "") + ")  "
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
