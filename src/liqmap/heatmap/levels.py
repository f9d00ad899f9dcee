"""The liquidation map at one moment (pure): long and short amounts per price bin of a snapshot.

Long positions are liquidated when the price falls to their liquidation price, shorts when it
rises to theirs. The cumulative curves start at the price and run outward: at a level below
the price, `cum_long` is every long amount that a fall to that level liquidates (including
longs already past their level and those beyond the range); above the price, `cum_short`
likewise for a rise. Amounts: tokens (size_tokens) and USD (size_tokens × liq_price).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liqmap.heatmap.binning import price_bin_index


@dataclass(frozen=True)
class SideLevels:
    """One side's amounts per price bin, float64 [n_bins] each; `cum_*` NaN where not drawn.

    `below`/`above` hold the amount outside the price range, `n` the positions counted.
    """

    tokens: np.ndarray
    usd: np.ndarray
    cum_tokens: np.ndarray
    cum_usd: np.ndarray
    below_tokens: float
    above_tokens: float
    n: int


@dataclass(frozen=True)
class LiqLevels:
    """Liquidation levels of one snapshot.

    Attributes:
        market: asset symbol.
        ts: the snapshot's minute (UTC).
        price_usd: oracle price of the snapshot.
        y_edges_usd: float64 [n_bins + 1] price bin edges.
        long, short: per-side amounts.
        n_no_liq: positions without a liquidation price (liq_price 0 or missing).
    """

    market: str
    ts: pd.Timestamp
    price_usd: float
    y_edges_usd: np.ndarray
    long: SideLevels
    short: SideLevels
    n_no_liq: int = 0

    @property
    def price_bin(self) -> int:
        """Index of the bin holding the price (-1 below the range, n_bins above)."""
        return int(price_bin_index(np.array([self.price_usd]), self.y_edges_usd)[0])

    def __repr__(self) -> str:
        lo, hi = float(self.y_edges_usd[0]), float(self.y_edges_usd[-1])
        return (f"<LiqLevels {self.market} {self.ts:%Y-%m-%d %H:%M}Z price {self.price_usd:,.2f} "
                f"USD: {self.long.n:,} longs, {self.short.n:,} shorts, "
                f"{len(self.y_edges_usd) - 1:,} bins {lo:g}–{hi:g} USD>")

    def to_frame(self) -> pd.DataFrame:
        """One row per price bin (index: lower edge in USD, "liq_price_usd"), columns
        `long_tokens`, `short_tokens`, `long_usd`, `short_usd` (amount liquidated in the bin)
        and `cum_long_tokens`, `cum_short_tokens`, `cum_long_usd`, `cum_short_usd` (liquidated
        by a move from the price to the bin; NaN on the other side of the price). Tokens are
        of `market` (e.g. SOL); `attrs` holds market, ts, price_usd."""
        columns: dict[str, np.ndarray] = {}
        for name, side in (("long", self.long), ("short", self.short)):
            columns[f"{name}_tokens"] = side.tokens
            columns[f"{name}_usd"] = side.usd
            columns[f"cum_{name}_tokens"] = side.cum_tokens
            columns[f"cum_{name}_usd"] = side.cum_usd
        order = ["long_tokens", "short_tokens", "long_usd", "short_usd", "cum_long_tokens",
                 "cum_short_tokens", "cum_long_usd", "cum_short_usd"]
        frame = pd.DataFrame({k: columns[k] for k in order},
                             index=pd.Index(self.y_edges_usd[:-1], name="liq_price_usd"))
        frame.attrs = {"market": self.market, "ts": self.ts, "price_usd": self.price_usd,
                       "bin_usd": round(float(self.y_edges_usd[1] - self.y_edges_usd[0]), 12)}
        return frame

    def plot(self, interactive: bool = False) -> Any:
        """The picture `liqmap levels` writes: a matplotlib Figure (inline in a notebook), or
        with `interactive=True` a plotly Figure."""
        if interactive:
            from liqmap.heatmap.render_html import levels_html_figure

            return levels_html_figure(self)
        from liqmap.heatmap.render_png import levels_figure

        return levels_figure(self)

    def save_png(self, path: str | Path) -> Path:
        """Write the PNG `liqmap levels --out X.png` writes (atomically); returns the path."""
        from liqmap.heatmap.files import check_output_path
        from liqmap.heatmap.render_png import render_levels_png

        target = check_output_path(path, (".png",), "png path")
        render_levels_png(self, target)
        return target

    def save_html(self, path: str | Path) -> Path:
        """Write the interactive page `liqmap levels --out X.html` writes (atomically)."""
        from liqmap.heatmap.files import check_output_path
        from liqmap.heatmap.render_html import render_levels_html

        target = check_output_path(path, (".html", ".htm"), "html path")
        render_levels_html(self, target)
        return target


def _side(bins: np.ndarray, tokens: np.ndarray, usd: np.ndarray, n_bins: int,
          price_bin: int, outward_down: bool) -> SideLevels:
    inside = (bins >= 0) & (bins < n_bins)
    per_bin = [np.bincount(bins[inside], weights=w[inside], minlength=n_bins).astype(np.float64)
               for w in (tokens, usd)]
    below, above = bins < 0, bins >= n_bins
    cums = []
    for w, hist in zip((tokens, usd), per_bin, strict=True):
        if outward_down:  # a fall to bin i liquidates every long at or above bin i
            cum = np.cumsum(hist[::-1])[::-1] + w[above].sum()
            cum[np.arange(n_bins) > price_bin] = np.nan
        else:  # a rise to bin i liquidates every short at or below bin i
            cum = np.cumsum(hist) + w[below].sum()
            cum[np.arange(n_bins) < price_bin] = np.nan
        cums.append(cum)
    return SideLevels(per_bin[0], per_bin[1], cums[0], cums[1], float(tokens[below].sum()),
                      float(tokens[above].sum()), int(bins.size))


def compute_levels(liq_price_usd: np.ndarray, size_tokens: np.ndarray, is_long: np.ndarray,
                   price_usd: float, y_edges_usd: np.ndarray, *, market: str = "SOL",
                   ts: pd.Timestamp | None = None) -> LiqLevels:
    """Bin one snapshot's positions by liquidation price, per side.

    Args:
        liq_price_usd: float64 [n] liquidation price of each position (0/NaN: none).
        size_tokens: float64 [n] position size in tokens of the asset.
        is_long: bool [n] side of each position.
        price_usd: the snapshot's price (start of the cumulative curves).
        y_edges_usd: float64 [n_bins + 1] price bin edges (see `make_price_edges`).
    """
    price = np.asarray(liq_price_usd, dtype=np.float64)
    tokens = np.asarray(size_tokens, dtype=np.float64)
    longs = np.asarray(is_long, dtype=bool)
    ok = np.isfinite(price) & (price > 0)
    price, tokens, longs = price[ok], tokens[ok], longs[ok]
    usd = tokens * price
    bins = price_bin_index(price, y_edges_usd)
    n_bins = len(y_edges_usd) - 1
    price_bin = int(price_bin_index(np.array([price_usd], dtype=np.float64), y_edges_usd)[0])
    return LiqLevels(
        market=market, ts=ts if ts is not None else pd.Timestamp(0, tz="UTC"),
        price_usd=float(price_usd), y_edges_usd=y_edges_usd,
        long=_side(bins[longs], tokens[longs], usd[longs], n_bins, price_bin, True),
        short=_side(bins[~longs], tokens[~longs], usd[~longs], n_bins, price_bin, False),
        n_no_liq=int((~ok).sum()))
