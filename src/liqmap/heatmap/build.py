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
)
from liqmap.heatmap.levels import LiqLevels, compute_levels
from liqmap.heatmap.sources import Source, StoreSource, minute_of
from liqmap.matrix import BuildInfo, LiqMatrix
from liqmap.timeutil import parse_time

#: Price bin width when none is given, USD.
DEFAULT_BIN_USD = 0.5
#: Window used when --t-start or --t-end is missing.
DEFAULT_WINDOW = pd.Timedelta(hours=24)
#: Default price range: this fraction below the lowest and above the highest price of the window.
PRICE_MARGIN = 0.20

TimeArg = str | pd.Timestamp | None


@dataclass(frozen=True)
class HeatmapRequest:
    """What to build. Times: ISO strings or Timestamps (naive = UTC), both minutes included;
    None = default window. Prices in USD; None = default range around the price."""

    t_start: TimeArg = None
    t_end: TimeArg = None
    bin_usd: float = DEFAULT_BIN_USD
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
    snapshot when neither was given.
    """
    start = parse_time(t_start, what="--t-start").floor("min") if t_start is not None else None
    end = parse_time(t_end, what="--t-end").floor("min") if t_end is not None else None
    if start is not None and end is not None:
        if start > end:
            raise InputError(f"--t-start {start:%Y-%m-%dT%H:%M}Z is after --t-end "
                             f"{end:%Y-%m-%dT%H:%M}Z; swap them")
        return start, end
    bounds = source.time_bounds()
    if bounds is None:
        raise DataGapError(f"no {source.market} snapshots in {source.description}; run "
                           "`liqmap collect` or point --data-dir/--folder at collected data")
    first, last = (b.floor("min") for b in bounds)
    if end is None:
        end = last
    if start is None:
        start = end - DEFAULT_WINDOW + pd.Timedelta(minutes=1)
        if t_end is None:
            start = max(start, first)
    if start > end:
        raise DataGapError(f"--t-start {start:%Y-%m-%dT%H:%M}Z is after the newest snapshot "
                           f"({last:%Y-%m-%dT%H:%M}Z); pick an earlier --t-start")
    return start, end


def default_price_range(spot_usd: np.ndarray, source: Source, start: pd.Timestamp,
                        end: pd.Timestamp) -> tuple[float, float]:
    """From 20 % below the lowest to 20 % above the highest price of the window; without any
    price, the range holding the central 99 % of the amount (legacy CSV)."""
    if np.isfinite(spot_usd).any():
        return (float(np.nanmin(spot_usd)) * (1 - PRICE_MARGIN),
                float(np.nanmax(spot_usd)) * (1 + PRICE_MARGIN))
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


def _check_size(request: HeatmapRequest, pmin: float, pmax: float, grid: TimeGrid,
                n_snapshots: int) -> None:
    """Refuse before allocating: accumulator slots plus output columns, per layer (split has
    long, short and their total)."""
    k_lo, k_hi = price_edge_range(pmin, pmax, request.bin_usd)
    per_snapshot = request.agg == "max" and grid.freq_min > 1
    slots = (n_snapshots if per_snapshot else grid.n_cols) + grid.n_cols
    n_layers = 3 if request.side == "split" else 1
    check_matrix_size(k_hi - k_lo, grid.n_cols, matrix_bytes(k_hi - k_lo, slots, n_layers),
                      matrix_limit_bytes(request.max_matrix_bytes))


def build_heatmap(source: Source, request: HeatmapRequest, *,
                  progress: bool | None = False) -> Heatmap:
    """Read the window from `source` and bin it into a `Heatmap`.

    Raises `InputError` for bad parameters (checked before reading), `DataGapError` when the
    window holds no snapshot.
    """
    request.validate()
    if request.side != "both" and not source.has_side:
        raise InputError(f"--side {request.side} needs the position side, which the "
                         f"{source.description} lacks; use --side both")
    start, end = resolve_window(request.t_start, request.t_end, source)
    grid = TimeGrid.from_window(minute_of(start), minute_of(end), request.freq_min)
    snaps = source.snapshots(start, end)
    if not snaps.minute.size:
        raise DataGapError(_empty_window_message(source, start, end))
    spot = aggregate_spot(snaps.price_minute, snaps.price_usd, grid,
                          "last" if request.agg == "last" else "mean")
    pmin, pmax = _price_range(request, spot, source, start, end)
    _check_size(request, pmin, pmax, grid, snaps.minute.size)
    binner = MatrixBinner(grid, make_price_edges(pmin, pmax, request.bin_usd), snaps.minute,
                          agg=request.agg, side=request.side, unit=request.unit)
    for batch in source.batches(start, end, progress, with_side=request.side != "both"):
        binner.add(batch.time_us, batch.liq_price_usd, batch.size_tokens, batch.is_long)
    return _assemble(binner, spot, request, source, start, end)


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


def build_levels(source: StoreSource, at: TimeArg = None, *, bin_usd: float = 0.5,
                 pmin_usd: float | None = None, pmax_usd: float | None = None) -> LiqLevels:
    """The liquidation levels of the newest snapshot at or before `at` (None: the newest).

    The default price range runs from 20 % below to 20 % above the snapshot's price.
    """
    check_bin(bin_usd)
    asked = parse_time(at, what="--at") if at is not None else None
    if pmin_usd is not None and pmax_usd is not None:
        check_price_range(pmin_usd, pmax_usd, bin_usd)
    ts, price, rows = source.snapshot_at(asked)
    if not math.isfinite(price) and (pmin_usd is None or pmax_usd is None):
        raise InputError(f"the {ts:%Y-%m-%dT%H:%M}Z snapshot has no oracle price to centre the "
                         "range on; pass --pmin and --pmax")
    pmin = price * (1 - PRICE_MARGIN) if pmin_usd is None else pmin_usd
    pmax = price * (1 + PRICE_MARGIN) if pmax_usd is None else pmax_usd
    check_price_range(pmin, pmax, bin_usd)
    edges = make_price_edges(pmin, pmax, bin_usd)
    assert rows.is_long is not None  # the store always has the side
    return compute_levels(rows.liq_price_usd, rows.size_tokens, rows.is_long, price, edges,
                          market=source.market, ts=ts)
