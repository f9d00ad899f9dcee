"""Liquidation heatmaps (time × price) and one-moment liquidation levels.

Layers: `binning` (pure: rows -> matrices), `sources` (reading the store, a legacy CSV, a
price CSV), `build` (window, price range, binning), `levels` (pure: one snapshot by side),
`render_png` / `render_html` (drawing; imported on demand, they pull matplotlib/plotly).
"""

from __future__ import annotations

import pandas as pd

from liqmap.heatmap.binning import (
    AGGS,
    SIDES,
    UNITS,
    BinStats,
    MatrixBinner,
    TimeGrid,
    aggregate_spot,
    make_price_edges,
    price_bin_index,
)
from liqmap.heatmap.build import (
    Heatmap,
    HeatmapRequest,
    build_heatmap,
    build_levels,
    resolve_window,
)
from liqmap.heatmap.levels import LiqLevels, SideLevels, compute_levels
from liqmap.heatmap.sources import (
    LegacyCsvSource,
    RowBatch,
    StoreSource,
    read_legacy_csv,
    read_price_csv,
)
from liqmap.matrix import LiqMatrix

__all__ = [
    "AGGS",
    "SIDES",
    "UNITS",
    "BinStats",
    "Heatmap",
    "HeatmapRequest",
    "LegacyCsvSource",
    "LiqLevels",
    "MatrixBinner",
    "RowBatch",
    "SideLevels",
    "StoreSource",
    "TimeGrid",
    "aggregate_spot",
    "build_heatmap",
    "build_levels",
    "build_matrix_from_store",
    "compute_levels",
    "make_price_edges",
    "price_bin_index",
    "read_legacy_csv",
    "read_price_csv",
    "resolve_window",
]


def build_matrix_from_store(data_dir: str, market: str, t_start: str | pd.Timestamp | None,
                            t_end: str | pd.Timestamp | None, bin_usd: float,
                            unit: str = "tokens", *, pmin: float | None = None,
                            pmax: float | None = None, freq_min: int = 1, agg: str = "mean",
                            side: str = "both") -> LiqMatrix:
    """The liquidation matrix of `market` in the store at `data_dir`: the same as
    `liqmap.open_store(data_dir).heatmap(...)`, with the backtest's argument names.

    Args:
        data_dir: store root (directory or URI).
        market: "SOL", "ETH" or "BTC".
        t_start, t_end: first and last minute included (ISO string or Timestamp, naive = UTC);
            None = the last 24 h of data.
        bin_usd: price bin width in USD; bins are `[k*bin, (k+1)*bin)`.
        unit: "tokens" (size_tokens) or "usd" (size_tokens × liq_price).
        pmin, pmax: price range in USD; None = 20 % around the window's oracle price range.
        freq_min: minutes per column; agg: "mean", "last" or "max" of the snapshots inside one.
        side: "both", "long", "short" or "split" (`extra` gets `Z_long`, `Z_short`).

    Returns:
        `LiqMatrix` with z float64 [n_bins, n_cols]; gap columns are 0 and flagged in gap_mask.
    """
    from liqmap.api import open_store

    return open_store(data_dir).heatmap(market, t_start, t_end, bin=bin_usd, freq=freq_min,
                                        side=side, unit=unit, agg=agg, pmin=pmin, pmax=pmax)
