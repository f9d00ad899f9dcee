"""The liquidation matrix shared by the heatmap and the backtest, and its npz file format.

The npz keys are the old tool's (`Z`, `t_edges`, `y_edges`, `spot_grid`, `spot_index`, `meta`)
plus `gap_mask`, `info` (a JSON string: market, unit, agg, side, window, source) and, for a
split matrix, `Z_long` and `Z_short`, so files written by either tool load in the other.

Only numpy is imported here; pandas, xarray and the renderers load when a method needs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liqmap.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    import xarray as xr
    from matplotlib.figure import Figure

    from liqmap.heatmap.binning import BinStats

#: Layers a matrix may hold: `total` is `z`; `long` and `short` exist for `side="split"`.
LAYERS = ("total", "long", "short")


@dataclass(frozen=True)
class BuildInfo:
    """How a matrix was built; titles and summaries use it.

    Attributes:
        t_start, t_end: first and last minute asked (UTC Timestamps, both included).
        source: where the rows came from, e.g. "store ./data".
        agg: how snapshots combine in a coarser column ("mean", "last", "max").
        side: "both", "long", "short" or "split".
        price_label: name of the price line ("Oracle price").
        stats: what the binning saw (`liqmap.heatmap.BinStats`), None for a matrix read from npz.
        markers: realized liquidations in the window (`liqmap.heatmap.markers`: ts, price_usd,
            size_usd, side, ...), drawn on the pictures; None when there are none (or from npz).
    """

    t_start: pd.Timestamp
    t_end: pd.Timestamp
    source: str
    agg: str = "mean"
    side: str = "both"
    price_label: str = "Oracle price"
    stats: BinStats | None = None
    markers: pd.DataFrame | None = None


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
        freq_min: minutes per column.
        extra: more layers of the same shape as `z` (`Z_long`, `Z_short` for a split matrix).
        info: how it was built (window asked, source, agg, side, binning stats); None when
            unknown.
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
    info: BuildInfo | None = None

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

    def __repr__(self) -> str:
        n_bins, n_cols = self.z.shape
        first = np.datetime64(int(self.t_edges_ns[0]), "ns").astype("datetime64[m]")
        last = np.datetime64(int(self.t_edges_ns[-1]), "ns").astype("datetime64[m]")
        return (f"<LiqMatrix {self.market} {first}Z..{last}Z: {n_cols:,} columns of "
                f"{self.freq_min} min × {n_bins:,} bins of {self.bin_width_usd:g} USD "
                f"({self.y_edges_usd[0]:g}–{self.y_edges_usd[-1]:g}), {self.unit_label} per cell, "
                f"side {self.side}, {int(self.gap_mask.sum()):,} gap column(s)>")

    @property
    def n_columns(self) -> int:
        return int(self.z.shape[1])

    @property
    def bin_width_usd(self) -> float:
        return round(float(self.y_edges_usd[1] - self.y_edges_usd[0]), 12)

    @property
    def unit_label(self) -> str:
        """The amount unit as a word: the market's token ("SOL") or "USD"."""
        return "USD" if self.unit == "usd" else self.market

    @property
    def side(self) -> str:
        """Positions counted: from `info`, else "split" when long/short layers exist."""
        if self.info is not None:
            return self.info.side
        return "split" if "Z_long" in self.extra else "both"

    # ------------------------------------------------------------------ pandas / xarray
    def layer(self, name: str = "total") -> np.ndarray:
        """The [n_price_bins, n_columns] amounts of one layer: "total", or "long"/"short" of a
        split matrix."""
        if name == "total":
            return self.z
        if name in ("long", "short") and f"Z_{name}" in self.extra:
            return self.extra[f"Z_{name}"]
        have = ", ".join(["total", *(k.removeprefix("Z_") for k in self.extra
                                     if k in ("Z_long", "Z_short"))])
        raise InputError(f"this matrix has no {name!r} layer (it has {have}); build it with "
                         "side='split' for the long and short layers")

    def times(self) -> pd.DatetimeIndex:
        """Start of each column, UTC."""
        import pandas as pd

        return pd.DatetimeIndex(pd.to_datetime(self.t_edges_ns[:-1], utc=True), name="time")

    def spot(self) -> pd.Series:
        """The oracle price per column, USD (NaN where unknown), indexed by column start."""
        import pandas as pd

        return pd.Series(self.spot_usd, index=self.times(), name="oracle_price_usd")

    def to_frame(self, layer: str = "total") -> pd.DataFrame:
        """The matrix as a DataFrame: one row per time column, one column per price bin.

        Index: column start times (UTC DatetimeIndex named "time"). Columns: the lower edge of
        each price bin in USD (index named "liq_price_usd"; bin i is `[edge_i, edge_i+1)`).
        Values: amount to be liquidated in `attrs["unit"]` (e.g. "SOL" or "USD"); rows of gap
        columns (no snapshot) are NaN. `attrs` also holds market, bin_usd, freq_min, layer.
        """
        import pandas as pd

        values = np.where(self.gap_mask[:, None], np.nan, self.layer(layer).T)
        columns = pd.Index(self.y_edges_usd[:-1], name="liq_price_usd")
        frame = pd.DataFrame(values, index=self.times(), columns=columns)
        frame.attrs.update(self._attrs(layer))
        return frame

    def to_xarray(self, layer: str = "total") -> xr.DataArray:
        """The matrix as an `xarray.DataArray` with dims ("time", "liq_price_usd").

        Coordinates: column start times (UTC, stored timezone-naive as xarray requires), lower
        bin edges in USD, and along time `oracle_price_usd` and `gap`. Gap columns are NaN.
        Needs xarray (`pip install xarray`).
        """
        try:
            import xarray as xr
        except ImportError as exc:
            raise InputError("to_xarray needs xarray; install it with `pip install xarray`, or "
                             "use to_frame()") from exc
        values = np.where(self.gap_mask[None, :], np.nan, self.layer(layer)).T
        times = self.t_edges_ns[:-1].astype("datetime64[ns]")
        return xr.DataArray(
            values, dims=("time", "liq_price_usd"), name=f"amount_{self.unit}",
            coords={"time": times, "liq_price_usd": self.y_edges_usd[:-1],
                    "oracle_price_usd": ("time", self.spot_usd), "gap": ("time", self.gap_mask)},
            attrs={**self._attrs(layer), "timezone": "UTC"})

    def _attrs(self, layer: str) -> dict[str, Any]:
        return {"market": self.market, "unit": self.unit_label, "bin_usd": self.bin_width_usd,
                "freq_min": self.freq_min, "layer": layer, "side": self.side,
                "price_bins": "lower edge of [edge, edge + bin_usd) in USD"}

    # ------------------------------------------------------------------ pictures and files
    def plot(self, interactive: bool = False, *, log_color: bool = False,
             vmin: float | None = None, vmax: float | None = None) -> Any:
        """The heatmap as a matplotlib Figure (shown inline in a notebook), or with
        `interactive=True` a plotly Figure; the pictures `liqmap heatmap` writes.

        log_color: logarithmic colour scale; vmin, vmax: colour range in the amount unit.
        """
        from liqmap.heatmap.binning import check_colors
        from liqmap.heatmap.build import Heatmap

        check_colors(log_color, vmin, vmax)
        heatmap = Heatmap.from_matrix(self)
        if interactive:
            from liqmap.heatmap.render_html import heatmap_html_figure

            return heatmap_html_figure(heatmap, log_color=log_color, vmin=vmin, vmax=vmax)
        from liqmap.heatmap.render_png import heatmap_figure

        return heatmap_figure(heatmap, log_color=log_color, vmin=vmin, vmax=vmax)

    def save_png(self, path: str | Path, *, log_color: bool = False, vmin: float | None = None,
                 vmax: float | None = None) -> Path:
        """Write the PNG `liqmap heatmap --out X.png` writes (atomically); returns the path."""
        from liqmap.heatmap.files import check_output_path, write_bytes
        from liqmap.heatmap.render_png import png_bytes

        target = check_output_path(path, (".png",), "png path")
        fig: Figure = self.plot(log_color=log_color, vmin=vmin, vmax=vmax)
        write_bytes(target, png_bytes(fig))
        return target

    def save_html(self, path: str | Path, *, log_color: bool = False,
                  vmin: float | None = None, vmax: float | None = None) -> Path:
        """Write the offline interactive page `liqmap heatmap --out X.html` writes."""
        from liqmap.heatmap.files import check_output_path, write_bytes
        from liqmap.heatmap.render_html import html_bytes

        target = check_output_path(path, (".html", ".htm"), "html path")
        fig: go.Figure = self.plot(True, log_color=log_color, vmin=vmin, vmax=vmax)
        write_bytes(target, html_bytes(fig))
        return target

    def save_npz(self, path: str | Path) -> Path:
        """Write the npz `liqmap heatmap --npz-out` writes (atomically); `read_npz` reads it."""
        from liqmap.heatmap.files import check_output_path, write_npz

        target = check_output_path(path, (".npz",), "npz path")
        write_npz(self, target)
        return target


def _info_json(matrix: LiqMatrix) -> str:
    info: dict[str, Any] = {"market": matrix.market, "unit": matrix.unit, "side": matrix.side}
    if matrix.info is not None:
        info.update(agg=matrix.info.agg, source=matrix.info.source,
                    t_start=matrix.info.t_start.isoformat(), t_end=matrix.info.t_end.isoformat(),
                    price_label=matrix.info.price_label)
    return json.dumps(info)


def save_npz(matrix: LiqMatrix, path: str | Path) -> None:
    """Write `matrix` with the old tool's keys plus `gap_mask` and `info` (compressed npz)."""
    meta = np.array([matrix.bin_width_usd, float(matrix.freq_min),
                     float(matrix.y_edges_usd[0]), float(matrix.y_edges_usd[-1])])
    arrays: dict[str, np.ndarray] = {
        "Z": matrix.z, "t_edges": matrix.t_edges_ns.astype(np.int64),
        "y_edges": matrix.y_edges_usd, "spot_grid": matrix.spot_usd,
        "spot_index": matrix.t_edges_ns[:-1].astype(np.int64), "meta": meta,
        "gap_mask": matrix.gap_mask, "info": np.array(_info_json(matrix)), **matrix.extra,
    }
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def _read_info(data: Any, keys: set[str]) -> dict[str, Any]:
    if "info" not in keys:
        return {}
    try:
        info = json.loads(str(data["info"]))
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _build_info(info: dict[str, Any], side: str, t_edges_ns: np.ndarray,
                path: str | Path) -> BuildInfo | None:
    """The BuildInfo saved in an npz by liqmap (None for the old tool's files, which have no
    `info`); a missing window is the matrix's own."""
    if not info or t_edges_ns.size < 2:
        return None
    import pandas as pd

    first = pd.Timestamp(int(t_edges_ns[0]), unit="ns", tz="UTC")
    last = pd.Timestamp(int(t_edges_ns[-1]), unit="ns", tz="UTC") - pd.Timedelta(minutes=1)
    return BuildInfo(t_start=pd.Timestamp(info.get("t_start", first)),
                     t_end=pd.Timestamp(info.get("t_end", last)),
                     source=str(info.get("source", f"npz {path}")),
                     agg=str(info.get("agg", "mean")), side=side,
                     price_label=str(info.get("price_label", "Oracle price")))


def load_npz(path: str | Path, *, market: str | None = None) -> LiqMatrix:
    """Read an npz in the old tool's format (`gap_mask`, `info`, `Z_long`/`Z_short` optional).

    Without `gap_mask`, an all-zero column is taken as a gap (the old collector wrote nothing
    for minutes it missed, and a market never has zero open positions in range for a minute).
    `market` overrides the one saved in the file (default: saved, else "SOL"); the unit is the
    saved one, else "tokens".
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
            extra = {k: np.asarray(data[k], dtype=np.float64) for k in ("Z_long", "Z_short")
                     if k in keys}
            info = _read_info(data, keys)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read npz {path}: {exc}; pass a file written by "
                         "`liqmap heatmap --npz-out` or the old tool") from exc
    if z.ndim != 2:
        raise InputError(f"{path}: `Z` must be 2-D [price bins x columns], got shape {z.shape}")
    if len(extra) == 1:
        extra = {}
    side = str(info.get("side", "split" if extra else "both"))
    unit = str(info.get("unit", "tokens"))
    return LiqMatrix(z=z, t_edges_ns=t_edges, y_edges_usd=y_edges, spot_usd=spot,
                     gap_mask=gap, unit=unit if unit in ("tokens", "usd") else "tokens",
                     market=market or str(info.get("market", "SOL")), freq_min=max(freq_min, 1),
                     extra=extra, info=_build_info(info, side, t_edges, path))
