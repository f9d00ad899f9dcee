"""Build a heatmap from a source: resolve the window and the price range, bin, assemble.

No rendering and no file writing here: `build_heatmap` returns a finished `Heatmap` that the
renderers and `save_npz` take as it is.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from liqmap.errors import DataGapError, InputError
from liqmap.heatmap.binning import (
    AGGS,
    DEFAULT_MAX_MATRIX_BYTES,
    SIDES,
    UNITS,
    BinStats,
    MatrixBinner,
    TimeGrid,
    aggregate_spot,
    check_bin,
    check_choice,
    check_matrix_size,
    check_price_range,
    make_price_edges,
    matrix_bytes,
    price_edge_range,
    warm_up_binning,
)
from liqmap.heatmap.defaults import default_bin_usd, default_price_margin, default_start
from liqmap.heatmap.levels import LiqLevels, compute_levels
from liqmap.heatmap.sources import Source, StoreSource, minute_of, newest_time
from liqmap.matrix import BuildInfo, LiqMatrix
from liqmap.timeutil import parse_time, parse_window

TimeArg = str | pd.Timestamp | None


@dataclass(frozen=True)
class HeatmapRequest:
    """What to build. Times: ISO strings or Timestamps (naive = UTC), both minutes included;
    None = default window. Prices in USD; None = default range around the price; `bin_usd`
    None = the market's default (`default_bin_usd`, about 0.05 % of the price)."""

    t_start: TimeArg = None
    t_end: TimeArg = None
    bin_usd: float | None = None
    pmin_usd: float | None = None
    pmax_usd: float | None = None
    freq_min: int = 1
    agg: str = "mean"
    unit: str = "tokens"
    side: str = "both"
    max_matrix_bytes: int | None = None

    def validate(self) -> None:
        """Raise `InputError` for a bad choice before anything is read."""
        check_choice("--agg", self.agg, AGGS)
        check_choice("--unit", self.unit, UNITS)
        check_choice("--side", self.side, SIDES)
        if not isinstance(self.freq_min, int) or self.freq_min < 1:
            raise InputError(f"--freq must be a whole number of minutes >= 1, got {self.freq_min}")
        if self.bin_usd is not None:
            check_bin(self.bin_usd)
        for name, price in (("--pmin", self.pmin_usd), ("--pmax", self.pmax_usd)):
            if price is not None and not (math.isfinite(price) and price >= 0):
                raise InputError(f"{name} must be a price >= 0 USD, got {price:g}")
        if self.pmin_usd is not None and self.pmax_usd is not None:
            check_price_range(self.pmin_usd, self.pmax_usd, self.bin_usd)


@dataclass(frozen=True)
class Heatmap:
    """A built heatmap: the matrix, what binning saw, and where it came from.

    `t_start`/`t_end` are the first and last minute asked (both included).
    """

    matrix: LiqMatrix
    stats: BinStats
    t_start: pd.Timestamp
    t_end: pd.Timestamp
    source: str
    agg: str
    side: str
    price_label: str = "Oracle price"
    #: realized liquidations in the window (`heatmap.markers`), drawn as markers; None: none
    markers: pd.DataFrame | None = None

    @property
    def n_gaps(self) -> int:
        return int(self.matrix.gap_mask.sum())

    @classmethod
    def from_matrix(cls, matrix: LiqMatrix) -> Heatmap:
        """The heatmap a matrix was built as (its `info`); for a matrix without one (the old
        tool's npz), the window is the matrix's columns and the stats are empty."""
        info = matrix.info
        if info is None:
            edges = pd.to_datetime(matrix.t_edges_ns[[0, -1]], utc=True)
            info = BuildInfo(t_start=edges[0], t_end=edges[1] - pd.Timedelta(minutes=1),
                             source="npz", side=matrix.side)
        return cls(matrix=matrix, stats=info.stats or BinStats(), t_start=info.t_start,
                   t_end=info.t_end, source=info.source, agg=info.agg, side=info.side,
                   price_label=info.price_label, markers=info.markers)


def resolve_window(t_start: TimeArg, t_end: TimeArg, source: Source
                   ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first, last) minute of the window, floored to whole minutes.

    Both given: used as they are (minutes without data become gaps). Otherwise the missing end
    is the newest snapshot and the missing start lies 24 h before the end, clipped to the oldest
    snapshot when neither was given (the window length is the market's `default_window`).
    A relative time (`-6h`, `timeutil`) counts back from the newest snapshot.
    """
    held: list[tuple[pd.Timestamp, pd.Timestamp] | None] = []

    def bounds() -> tuple[pd.Timestamp, pd.Timestamp] | None:
        if not held:
            found = source.time_bounds()
            held.append(None if found is None else (found[0].floor("min"),
                                                    found[1].floor("min")))
        return held[0]

    def newest() -> pd.Timestamp | None:
        found = bounds()
        return None if found is None else found[1]

    start, end = (t if t is None else t.floor("min")
                  for t in parse_window(t_start, t_end, anchor=newest))
    if start is not None and end is not None:
        return start, end
    found = bounds()
    if found is None:
        raise DataGapError(f"no {source.market} snapshots in {source.description}; run "
                           "`liqmap collect` or point --data-dir/--folder at collected data")
    first, last = found
    if end is None:
        end = last
    if start is None:
        start = default_start(end, source.market)
        if t_end is None:
            start = max(start, first)
    if start > end:
        raise DataGapError(f"--t-start {start:%Y-%m-%dT%H:%M}Z is after the newest snapshot "
                           f"({last:%Y-%m-%dT%H:%M}Z); pick an earlier --t-start")
    return start, end


def default_price_range(spot_usd: np.ndarray, source: Source, start: pd.Timestamp,
                        end: pd.Timestamp) -> tuple[float, float]:
    """From the market's margin (`default_price_margin`: SOL 20 %, ETH 15 %, BTC 10 %) below
    the lowest to as much above the highest price of the window; without any price, the range
    holding the central 99 % of the amount (legacy CSV)."""
    margin = default_price_margin(source.market)
    if np.isfinite(spot_usd).any():
        return (float(np.nanmin(spot_usd)) * (1 - margin),
                float(np.nanmax(spot_usd)) * (1 + margin))
    return source.liq_price_range(start, end)


def _price_range(request: HeatmapRequest, spot_usd: np.ndarray, source: Source,
                 start: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float]:
    pmin, pmax = request.pmin_usd, request.pmax_usd
    if pmin is None or pmax is None:
        lo, hi = default_price_range(spot_usd, source, start, end)
        pmin = lo if pmin is None else pmin
        pmax = hi if pmax is None else pmax
        if pmin >= pmax:
            raise InputError(f"the price range {pmin:g}–{pmax:g} USD is empty (one end came "
                             "from the default around the price); give both --pmin and --pmax")
    return pmin, pmax


def matrix_limit_bytes(requested: int | None = None) -> int:
    """The matrix size limit: `requested`, else 2 GiB or half the available memory if less."""
    if requested is not None:
        return requested
    available = _available_memory_bytes()
    if available is None:
        return DEFAULT_MAX_MATRIX_BYTES
    return int(min(DEFAULT_MAX_MATRIX_BYTES, available // 2))


def _available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux: free memory plus reclaimable cache), else the
    free physical memory from sysconf, else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_size(request: HeatmapRequest, bin_usd: float, pmin: float, pmax: float,
                grid: TimeGrid, n_snapshots: int) -> None:
    """Refuse before allocating: accumulator slots plus output columns, per layer (split has
    long, short and their total)."""
    k_lo, k_hi = price_edge_range(pmin, pmax, bin_usd)
    per_snapshot = request.agg == "max" and grid.freq_min > 1
    slots = (n_snapshots if per_snapshot else grid.n_cols) + grid.n_cols
    n_layers = 3 if request.side == "split" else 1
    check_matrix_size(k_hi - k_lo, grid.n_cols, matrix_bytes(k_hi - k_lo, slots, n_layers),
                      matrix_limit_bytes(request.max_matrix_bytes))


def _check_grid(request: HeatmapRequest, grid: TimeGrid) -> None:
    """Refuse a window too long for memory before reading it: per column the accumulator and
    the output for the bins asked (at least one) plus four per-column arrays (price, count,
    edges, gaps), and the per-minute slot table (8 bytes a minute)."""
    n_bins = 1
    if request.pmin_usd is not None and request.pmax_usd is not None and request.bin_usd:
        k_lo, k_hi = price_edge_range(request.pmin_usd, request.pmax_usd, request.bin_usd)
        n_bins = k_hi - k_lo
    n_layers = 3 if request.side == "split" else 1
    need = (matrix_bytes(n_bins, 2 * grid.n_cols, n_layers) + 32 * grid.n_cols
            + 8 * grid.n_minutes)
    check_matrix_size(n_bins, grid.n_cols, need, matrix_limit_bytes(request.max_matrix_bytes))


def build_heatmap(source: Source, request: HeatmapRequest, *,
                  progress: bool | None = False) -> Heatmap:
    """Read the window from `source` and bin it into a `Heatmap`.

    Raises `InputError` for bad parameters (checked before reading), `DataGapError` when the
    window holds no snapshot.
    """
    request.validate()
    if request.side != "both" and isinstance(source, StoreSource) and source.source == "auto":
        source = source.collected_only()  # legacy rows have no side
    if request.side != "both" and not source.has_side:
        raise InputError(f"--side {request.side} needs the position side, which the "
                         f"{source.description} lacks; use --side both")
    start, end = resolve_window(request.t_start, request.t_end, source)
    grid = TimeGrid.from_window(minute_of(start), minute_of(end), request.freq_min)
    _check_grid(request, grid)
    warm_up_binning()  # overlaps the read below
    snaps = source.snapshots(start, end)
    if not snaps.minute.size:
        raise DataGapError(_empty_window_message(source, start, end))
    spot = aggregate_spot(snaps.price_minute, snaps.price_usd, grid,
                          "last" if request.agg == "last" else "mean")
    bin_usd = _resolve_bin(request, spot, source.market)
    pmin, pmax = _price_range(request, spot, source, start, end)
    check_price_range(pmin, pmax, bin_usd)
    _check_size(request, bin_usd, pmin, pmax, grid, snaps.minute.size)
    binner = MatrixBinner(grid, make_price_edges(pmin, pmax, bin_usd), snaps.minute,
                          agg=request.agg, side=request.side, unit=request.unit)
    if isinstance(source, StoreSource):
        source.feed(binner, start, end, progress)
    else:
        for batch in source.batches(start, end, progress, with_side=request.side != "both"):
            binner.add(batch.time_us, batch.liq_price_usd, batch.size_tokens, batch.is_long)
    return _assemble(binner, spot, request, source, start, end)


def _resolve_bin(request: HeatmapRequest, spot_usd: np.ndarray, market: str) -> float:
    """The bin (USD): as asked, else the market's default at the window's median price (or the
    middle of --pmin/--pmax when there is no price line)."""
    if request.bin_usd is not None:
        return request.bin_usd
    price = None
    if np.isfinite(spot_usd).any():
        price = float(np.nanmedian(spot_usd))
    elif request.pmin_usd is not None and request.pmax_usd is not None:
        price = (request.pmin_usd + request.pmax_usd) / 2
    return default_bin_usd(market, price)


def _assemble(binner: MatrixBinner, spot: np.ndarray, request: HeatmapRequest, source: Source,
              start: pd.Timestamp, end: pd.Timestamp) -> Heatmap:
    layers, gap = binner.finish()
    extra = {}
    if request.side == "split":
        extra = {"Z_long": layers["long"], "Z_short": layers["short"]}
    info = BuildInfo(t_start=start, t_end=end, source=source.description, agg=request.agg,
                     side=request.side, price_label=source.price_label, stats=binner.stats,
                     markers=_markers(source, start, end))
    matrix = LiqMatrix(z=layers["total"], t_edges_ns=binner.grid.t_edges_ns(),
                       y_edges_usd=binner.y_edges_usd, spot_usd=spot, gap_mask=gap,
                       unit=request.unit, market=source.market, freq_min=request.freq_min,
                       extra=extra, info=info)
    return Heatmap(matrix=matrix, stats=binner.stats, t_start=start, t_end=end,
                   source=source.description, agg=request.agg, side=request.side,
                   price_label=source.price_label, markers=info.markers)


def _markers(source: Source, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame | None:
    """Realized liquidations of a store source in the window (legacy CSVs have none)."""
    store = getattr(source, "store", None)
    if store is None:
        return None
    from liqmap.heatmap.markers import liquidation_markers

    markers = liquidation_markers(store, source.market, start,
                                  end + pd.Timedelta(minutes=1) - pd.Timedelta(microseconds=1))
    return markers if len(markers) else None


def _empty_window_message(source: Source, start: pd.Timestamp, end: pd.Timestamp) -> str:
    bounds = source.time_bounds()
    held = ("it holds none" if bounds is None else
            f"it holds {bounds[0]:%Y-%m-%dT%H:%M}Z to {bounds[1]:%Y-%m-%dT%H:%M}Z")
    return (f"no {source.market} snapshots between {start:%Y-%m-%dT%H:%M}Z and "
            f"{end:%Y-%m-%dT%H:%M}Z in {source.description} ({held}); pick a window inside it")


def build_levels(source: StoreSource, at: TimeArg = None, *, bin_usd: float | None = None,
                 pmin_usd: float | None = None, pmax_usd: float | None = None) -> LiqLevels:
    """The liquidation levels of the newest snapshot at or before `at` (None: the newest).

    The default price range reaches the market's margin (`default_price_margin`) below and
    above the snapshot's price; the default bin is the market's (`default_bin_usd`).
    """
    if bin_usd is not None:
        check_bin(bin_usd)
    asked = (parse_time(at, what="--at", anchor=lambda: newest_time(source))
             if at is not None else None)
    if pmin_usd is not None and pmax_usd is not None:
        check_price_range(pmin_usd, pmax_usd, bin_usd)
    ts, price, rows = source.snapshot_at(asked)
    if bin_usd is None:
        bin_usd = default_bin_usd(source.market, price)
    if not math.isfinite(price) and (pmin_usd is None or pmax_usd is None):
        raise InputError(f"the {ts:%Y-%m-%dT%H:%M}Z snapshot has no oracle price to centre the "
                         "range on; pass --pmin and --pmax")
    margin = default_price_margin(source.market)
    pmin = price * (1 - margin) if pmin_usd is None else pmin_usd
    pmax = price * (1 + margin) if pmax_usd is None else pmax_usd
    check_price_range(pmin, pmax, bin_usd)
    edges = make_price_edges(pmin, pmax, bin_usd)
    assert rows.is_long is not None  # the store always has the side
    return compute_levels(rows.liq_price_usd, rows.size_tokens, rows.is_long, price, edges,
                          market=source.market, ts=ts)
