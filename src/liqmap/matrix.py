"""The liquidation matrix shared by the heatmap and the backtest, and its npz file format.

The npz keys are the old tool's (`Z`, `t_edges`, `y_edges`, `spot_grid`, `spot_index`, `meta`)
plus `gap_mask`, so files written by either tool load in the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liqmap.errors import InputError

NS_PER_MINUTE = 60_000_000_000


@dataclass(frozen=True)
class LiqMatrix:
    """Amount to be liquidated per price bin and time column.

    Attributes:
        z: float64 [n_price_bins, n_columns], amount per cell in `unit` (tokens of the market's
            asset, e.g. SOL, or USD).
        t_edges_ns: int64 [n_columns + 1], column edges, ns since epoch, UTC.
        y_edges_usd: float64 [n_price_bins + 1], price bin edges in USD, bins `[e_i, e_i+1)`.
        spot_usd: float64 [n_columns], oracle price per column in USD (NaN where unknown).
        gap_mask: bool [n_columns], True where no snapshot backs the column (z is 0 there).
        unit: "tokens" or "usd".
        market: asset symbol, e.g. "SOL".
    """

    z: np.ndarray
    t_edges_ns: np.ndarray
    y_edges_usd: np.ndarray
    spot_usd: np.ndarray
    gap_mask: np.ndarray
    unit: str = "tokens"
    market: str = "SOL"
    freq_min: int = 1
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_bins, n_cols = self.z.shape
        if self.t_edges_ns.shape != (n_cols + 1,):
            raise InputError(f"`t_edges` must have {n_cols + 1} entries for {n_cols} columns, "
                             f"got {self.t_edges_ns.shape[0]}")
        if self.y_edges_usd.shape != (n_bins + 1,):
            raise InputError(f"`y_edges` must have {n_bins + 1} entries for {n_bins} price bins, "
                             f"got {self.y_edges_usd.shape[0]}")
        if self.spot_usd.shape != (n_cols,) or self.gap_mask.shape != (n_cols,):
            raise InputError(f"`spot_grid` and `gap_mask` must have {n_cols} entries")

    @property
    def n_columns(self) -> int:
        return int(self.z.shape[1])

    @property
    def bin_width_usd(self) -> float:
        return round(float(self.y_edges_usd[1] - self.y_edges_usd[0]), 12)


def save_npz(matrix: LiqMatrix, path: str | Path) -> None:
    """Write `matrix` with the old tool's keys plus `gap_mask` (compressed npz)."""
    meta = np.array([matrix.bin_width_usd, float(matrix.freq_min),
                     float(matrix.y_edges_usd[0]), float(matrix.y_edges_usd[-1])])
    arrays: dict[str, np.ndarray] = {
        "Z": matrix.z, "t_edges": matrix.t_edges_ns.astype(np.int64),
        "y_edges": matrix.y_edges_usd, "spot_grid": matrix.spot_usd,
        "spot_index": matrix.t_edges_ns[:-1].astype(np.int64), "meta": meta,
        "gap_mask": matrix.gap_mask, **matrix.extra,
    }
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def load_npz(path: str | Path, *, market: str = "SOL") -> LiqMatrix:
    """Read an npz in the old tool's format (`gap_mask` optional).

    Without `gap_mask`, an all-zero column is taken as a gap (the old collector wrote nothing
    for minutes it missed, and a market never has zero open positions in range for a minute).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            missing = {"Z", "t_edges", "y_edges"} - keys
            if missing:
                raise InputError(f"{path}: npz lacks key(s) {', '.join(sorted(missing))}; "
                                 "expected the old tool's keys Z, t_edges, y_edges, spot_grid")
            z = np.asarray(data["Z"], dtype=np.float64)
            t_edges = np.asarray(data["t_edges"], dtype=np.int64)
            y_edges = np.asarray(data["y_edges"], dtype=np.float64)
            n_cols = z.shape[1] if z.ndim == 2 else 0
            spot = (np.asarray(data["spot_grid"], dtype=np.float64) if "spot_grid" in keys
                    else np.full(n_cols, np.nan))
            gap = (np.asarray(data["gap_mask"], dtype=bool) if "gap_mask" in keys
                   else ~(z != 0).any(axis=0))
            freq_min = int(data["meta"][1]) if "meta" in keys and data["meta"].size >= 2 else 1
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read npz {path}: {exc}; pass a file written by "
                         "`liqmap heatmap --npz-out` or the old tool") from exc
    if z.ndim != 2:
        raise InputError(f"{path}: `Z` must be 2-D [price bins x columns], got shape {z.shape}")
    return LiqMatrix(z=z, t_edges_ns=t_edges, y_edges_usd=y_edges, spot_usd=spot,
                     gap_mask=gap, market=market, freq_min=max(freq_min, 1))
