"""Summary statistics of a liquidation matrix, to compare a simulated heatmap with a real one.

Pure functions of a matrix `z` [price bins x minutes] (amount per cell, e.g. tokens), the
price bin edges and the price per minute. All-zero columns (collection gaps) are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from liqmap.jupiter import perps
from liqmap.sim.market import MarketSim

#: A bin counts as "holding liquidations" for the empty zone when it has this share of its column.
EMPTY_ZONE_BIN_SHARE = 0.01
PERSISTENCE_LAG_MIN = 60


@dataclass(frozen=True)
class MatrixStats:
    """Medians over the matrix's columns.

    Attributes:
        share_2pct, share_5pct, share_10pct: share of the column's amount whose liquidation
            price is within ±2 / ±5 / ±10 % of the price.
        below_share: share of the amount below the price (longs).
        persistence_corr: correlation of consecutive columns (bands persist minute to minute).
        persistence_overlap: sum(min) / sum(max) of consecutive columns.
        lag60_corr: correlation of columns 60 minutes apart.
        empty_zone_pct: distance (% of price) from the price to the nearest bin holding 1 %
            of the column's amount.
        n_columns: columns used.
    """

    share_2pct: float
    share_5pct: float
    share_10pct: float
    below_share: float
    persistence_corr: float
    persistence_overlap: float
    lag60_corr: float
    empty_zone_pct: float
    n_columns: int

    def as_dict(self) -> dict[str, float]:
        """Statistic name -> value."""
        return asdict(self)


def matrix_stats(z: np.ndarray, y_edges_usd: np.ndarray, spot_usd: np.ndarray) -> MatrixStats:
    """The `MatrixStats` of `z` [bins x columns] with bin edges and price per column (USD)."""
    centers = (y_edges_usd[:-1] + y_edges_usd[1:]) / 2
    cols = np.flatnonzero(z.sum(axis=0) > 0)
    rel = centers[:, None] / spot_usd[None, cols] - 1.0
    zc = z[:, cols]
    total = zc.sum(axis=0)
    shares = {k: np.median((zc * (np.abs(rel) <= k / 100)).sum(axis=0) / total)
              for k in (2, 5, 10)}
    below = np.median((zc * (rel < 0)).sum(axis=0) / total)
    holding = zc >= EMPTY_ZONE_BIN_SHARE * total
    distance = np.where(holding, np.abs(rel), np.inf).min(axis=0)
    return MatrixStats(
        share_2pct=float(shares[2]), share_5pct=float(shares[5]), share_10pct=float(shares[10]),
        below_share=float(below), persistence_corr=_lag_median(z, 1, _corr),
        persistence_overlap=_lag_median(z, 1, _overlap),
        lag60_corr=_lag_median(z, PERSISTENCE_LAG_MIN, _corr),
        empty_zone_pct=float(np.median(distance) * 100), n_columns=len(cols))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def _lag_median(z: np.ndarray, lag: int, fn: object) -> float:
    present = z.sum(axis=0) > 0
    pairs = np.flatnonzero(present[:-lag] & present[lag:])
    if len(pairs) == 0:
        return float("nan")
    return float(np.median([fn(z[:, j], z[:, j + lag]) for j in pairs]))  # type: ignore[operator]


def simulated_column(sim: MarketSim, market: str, y_edges_usd: np.ndarray) -> np.ndarray:
    """Tokens to be liquidated per price bin for `market`'s open positions now, with the
    collector's exact liquidation prices at the current chain time."""
    book = sim.books[market]
    rows = book.open_rows()
    if len(rows) == 0:
        return np.zeros(len(y_edges_usd) - 1)
    liq = perps.liquidation_prices(book.view()[rows], sim.custody(market),
                                   sim.cum_now(market)[rows])
    price_usd = liq.liq_price_usd6 / 1e6
    return np.histogram(price_usd, bins=y_edges_usd, weights=liq.size_tokens)[0]
