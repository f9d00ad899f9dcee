"""Write a built heatmap as one interactive HTML page (plotly, works offline).

plotly.js is embedded in the page (no CDN). Cell values travel as float32 typed arrays; above
1,440 time columns (a day of minutes) or 600 price bins the page shows a coarser view (columns
averaged, bins summed) while the npz keeps the full matrix. Hover shows time, price bin, the
amount in tokens and in USD (the other unit approximated at the bin centre, marked "≈").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from liqmap.heatmap.build import Heatmap
from liqmap.heatmap.files import write_bytes
from liqmap.heatmap.levels import LiqLevels
from liqmap.heatmap.markers import MARKER_FACE, marker_areas
from liqmap.heatmap.render_png import (
    BACKGROUND,
    EMPTY,
    GAP_FACE,
    LONG_COLOR,
    LONG_RAMP,
    MUTED,
    PANEL,
    PRICE_LINE,
    SHORT_COLOR,
    SHORT_RAMP,
    TEXT,
    ColorScale,
    color_scale,
)
from liqmap.heatmap.text import colorbar_label, format_usd, gap_runs, title_lines, unit_name
from liqmap.matrix import LiqMatrix

MAX_HTML_COLUMNS = 1440
MAX_HTML_BINS = 600


@dataclass(frozen=True)
class DisplayGrid:
    """The view drawn in the page.

    Attributes:
        layers: name -> float32 [n_bins_shown, n_cols_shown], NaN in gap columns.
        x_edges_ns: int64 [n_cols_shown + 1] column edges.
        y_edges_usd: float64 [n_bins_shown + 1] price edges.
        spot_usd: float64 [n_cols_shown] price per shown column (NaN unknown).
        gap_mask: bool [n_cols_shown].
        col_group, bin_group: matrix columns per shown column, bins per shown bin.
    """

    layers: dict[str, np.ndarray]
    x_edges_ns: np.ndarray
    y_edges_usd: np.ndarray
    spot_usd: np.ndarray
    gap_mask: np.ndarray
    col_group: int
    bin_group: int


def _group_columns(z: np.ndarray, gap: np.ndarray, group: int) -> np.ndarray:
    """Mean over the non-gap columns of each group of `group` columns (NaN if all are gaps)."""
    n_bins, n_cols = z.shape
    pad = -n_cols % group
    data = np.pad(np.where(gap, 0.0, z), ((0, 0), (0, pad)))
    present = np.pad(~gap, (0, pad)).reshape(-1, group).sum(axis=1)
    sums = data.reshape(n_bins, -1, group).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present > 0, sums / present, np.nan)


def _group_bins(z: np.ndarray, group: int) -> np.ndarray:
    """Sum of each group of `group` price bins (wider bins hold more)."""
    pad = -z.shape[0] % group
    data = np.pad(z, ((0, pad), (0, 0)))
    return data.reshape(-1, group, z.shape[1]).sum(axis=1)


def display_grid(matrix: LiqMatrix, max_cols: int = MAX_HTML_COLUMNS,
                 max_bins: int = MAX_HTML_BINS) -> DisplayGrid:
    """Coarsen `matrix` to at most `max_cols` × `max_bins` cells for display."""
    col_group = -(-matrix.n_columns // max_cols)
    bin_group = -(-matrix.z.shape[0] // max_bins)
    names = {"total": matrix.z, **{k.removeprefix("Z_"): v for k, v in matrix.extra.items()
                                   if k in ("Z_long", "Z_short")}}
    layers = {}
    for name, z in names.items():
        grouped = _group_columns(_group_bins(z, bin_group), matrix.gap_mask, col_group)
        layers[name] = grouped.astype(np.float32)
    n_cols = next(iter(layers.values())).shape[1]
    step_ns = int(matrix.t_edges_ns[1] - matrix.t_edges_ns[0]) * col_group
    x_edges = matrix.t_edges_ns[0] + step_ns * np.arange(n_cols + 1, dtype=np.int64)
    width = matrix.bin_width_usd * bin_group
    n_bins = next(iter(layers.values())).shape[0]
    y_edges = np.round(matrix.y_edges_usd[0] + width * np.arange(n_bins + 1), 10)
    spot = _group_columns(matrix.spot_usd[None, :], ~np.isfinite(matrix.spot_usd), col_group)[0]
    gap = np.asarray(np.isnan(next(iter(layers.values()))).all(axis=0), dtype=bool)
    return DisplayGrid(layers, x_edges, y_edges, spot, gap, col_group, bin_group)


def _colour_values(z: np.ndarray, scale: ColorScale) -> np.ndarray:
    """What the colour scale maps: the amount, or its log10 (zeros at the bottom)."""
    if not scale.log:
        return z
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(z, scale.vmin * 0.5)).astype(np.float32)


def _colorbar(scale: ColorScale, title: str, x: float = 1.0) -> dict:
    bar: dict = {"title": {"text": title, "side": "right", "font": {"color": TEXT}},
                 "tickfont": {"color": TEXT}, "x": x, "len": 0.9 if x == 1.0 else 0.45}
    if scale.log:
        lo, hi = np.floor(np.log10(scale.vmin)), np.ceil(np.log10(scale.vmax))
        ticks = np.arange(lo, hi + 1)
        bar.update(tickvals=ticks.tolist(), ticktext=[f"{10 ** t:,.6g}" for t in ticks])
    return bar


def _hover(matrix: LiqMatrix, grid: DisplayGrid, who: str, log: bool) -> str:
    """Hover text. customdata holds [amount, other unit] on a log scale (z is log10 there),
    else only the other unit (z is the amount)."""
    unit, other = unit_name(matrix), ("USD" if matrix.unit == "tokens" else matrix.market)
    amount, approx = ("%{customdata[0]:,.2f}", "%{customdata[1]:,.0f}") if log else (
        "%{z:,.2f}", "%{customdata:,.0f}")
    half = format_usd(matrix.bin_width_usd * grid.bin_group / 2)
    span = matrix.freq_min * grid.col_group
    when = "%{x|%Y-%m-%d %H:%M} UTC" + (f" (±{span / 2:g} min)" if span > 1 else "")
    return (f"<b>{who}</b><br>{when}<br>price %{{y:,.2f}} ± {half} USD<br>"
            f"{amount} {unit} · ≈ {approx} {other}<extra></extra>")


def _heatmap_trace(matrix: LiqMatrix, grid: DisplayGrid, name: str, scale: ColorScale,
                   colorscale: object, bar: dict, transparent_zero: bool) -> go.Heatmap:
    z = grid.layers[name]
    centres = ((grid.y_edges_usd[:-1] + grid.y_edges_usd[1:]) / 2)[:, None]
    other = z * centres if matrix.unit == "tokens" else z / centres
    colour = _colour_values(z, scale)
    if transparent_zero:
        colour = np.where(z > 0, colour, np.nan).astype(np.float32)
    x_mid = ((grid.x_edges_ns[:-1] + grid.x_edges_ns[1:]) // 2).astype("datetime64[ns]")
    zmin, zmax = ((np.log10(scale.vmin), np.log10(scale.vmax)) if scale.log
                  else (scale.vmin, scale.vmax))
    who = {"total": "liquidations", "long": "long liquidations",
           "short": "short liquidations"}[name]
    custom = np.stack([z, other], axis=-1) if scale.log else other
    return go.Heatmap(
        x=x_mid, y=centres[:, 0], z=colour, zmin=zmin, zmax=zmax, colorscale=colorscale,
        customdata=custom.astype(np.float32), hoverongaps=False,
        hovertemplate=_hover(matrix, grid, who, scale.log), colorbar=bar, name=who)


def heatmap_html_figure(heatmap: Heatmap, *, log_color: bool = False,
                        vmin: float | None = None, vmax: float | None = None) -> go.Figure:
    """The interactive figure; nothing is written."""
    m = heatmap.matrix
    grid = display_grid(m)
    split = heatmap.side == "split"
    layers = [m.extra["Z_long"], m.extra["Z_short"]] if split else [m.z]
    scale = color_scale(np.concatenate(layers, axis=0), m.gap_mask, log_color=log_color,
                        vmin=vmin, vmax=vmax)
    label = colorbar_label(m, heatmap.agg).replace("\n", "<br>")
    fig = go.Figure()
    if split:
        for name, colours, x in (("long", LONG_RAMP, 1.0), ("short", SHORT_RAMP, 1.09)):
            ramp = [[i / (len(colours) - 1), c] for i, c in enumerate(colours)]
            title = f"{name}s: {label}" if name == "long" else f"{name}s"
            fig.add_trace(_heatmap_trace(m, grid, name, scale, ramp,
                                         _colorbar(scale, title, x), transparent_zero=True))
    else:
        fig.add_trace(_heatmap_trace(m, grid, "total", scale, "Viridis", _colorbar(scale, label),
                                     transparent_zero=False))
    _add_price(fig, grid, heatmap.price_label)
    _add_markers(fig, heatmap)
    _layout(fig, heatmap, grid)
    return fig


def _add_markers(fig: go.Figure, heatmap: Heatmap) -> None:
    """Realized liquidations: circles at (time, price), area ∝ USD, details on hover."""
    markers = heatmap.markers
    if markers is None or not len(markers):
        return
    x = pd.to_datetime(markers["ts"]).dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S")
    custom = np.stack([markers["size_usd"].to_numpy(float), markers["side"].to_numpy(object),
                       np.where(markers["confirmed"], "confirmed on chain", "detected"),
                       markers["pubkey"].to_numpy(object)], axis=1)
    fig.add_trace(go.Scatter(
        x=x, y=markers["price_usd"], mode="markers", name="Realized liquidations (area ∝ USD)",
        marker={"size": np.sqrt(marker_areas(markers["size_usd"])) * 1.3, "sizemode": "diameter",
                "color": MARKER_FACE, "line": {"color": "#000000", "width": 1}, "opacity": 0.85},
        customdata=custom,
        hovertemplate=("liquidated %{customdata[1]} $%{customdata[0]:,.0f} at %{y:,.2f} USD"
                       "<br>%{x|%Y-%m-%d %H:%M:%S} UTC · %{customdata[2]}"
                       "<br>%{customdata[3]}<extra></extra>")))


def _add_price(fig: go.Figure, grid: DisplayGrid, label: str) -> None:
    if not np.isfinite(grid.spot_usd).any():
        return
    x_mid = ((grid.x_edges_ns[:-1] + grid.x_edges_ns[1:]) // 2).astype("datetime64[ns]")
    fig.add_trace(go.Scatter(
        x=x_mid, y=grid.spot_usd, mode="lines", name=label,
        line={"color": PRICE_LINE, "width": 1.6},
        hovertemplate=f"{label} %{{y:,.2f}} USD<br>%{{x|%Y-%m-%d %H:%M}} UTC<extra></extra>"))


def _layout(fig: go.Figure, heatmap: Heatmap, grid: DisplayGrid) -> None:
    title, subtitle = title_lines(heatmap, gap_style="grey")
    if grid.col_group > 1 or grid.bin_group > 1:
        subtitle += (f" · page shows {grid.col_group}-column means × {grid.bin_group}-bin sums"
                     " (npz keeps every cell)")
    for first, last in gap_runs(grid.gap_mask):
        # ISO strings: plotly.js reads bare numbers on a date axis as milliseconds
        fig.add_vrect(x0=str(grid.x_edges_ns[first].astype("datetime64[ns]")),
                      x1=str(grid.x_edges_ns[last + 1].astype("datetime64[ns]")),
                      fillcolor=GAP_FACE, line_width=0, layer="below")
    m = heatmap.matrix
    fig.update_layout(
        template="plotly_dark", paper_bgcolor=BACKGROUND, plot_bgcolor=EMPTY,
        font={"color": TEXT, "size": 13}, height=720, hovermode="closest",
        hoverlabel={"bgcolor": PANEL, "font": {"color": TEXT}},
        title={"text": f"{title}<br><span style='font-size:12px;color:{MUTED}'>{subtitle}</span>"},
        xaxis={"title": "Time (UTC)", "showgrid": False, "type": "date"},
        yaxis={"title": "Liquidation price (USD)", "showgrid": False,
               "range": [float(m.y_edges_usd[0]), float(m.y_edges_usd[-1])]},
        legend={"x": 0.01, "y": 0.99, "bgcolor": PANEL},
        margin={"l": 70, "r": 40, "t": 90, "b": 60})


def html_bytes(fig: go.Figure) -> bytes:
    """A self-contained page of `fig`: plotly.js inline (works offline, no CDN)."""
    page = fig.to_html(include_plotlyjs=True, full_html=True,
                       config={"displaylogo": False, "scrollZoom": True, "responsive": True})
    style = f"<style>html, body {{ margin: 0; background: {BACKGROUND}; }}</style>"
    return page.replace("<head>", "<head>" + style, 1).encode("utf-8")


def render_heatmap_html(heatmap: Heatmap, path: str | Path, *, log_color: bool = False,
                        vmin: float | None = None, vmax: float | None = None) -> None:
    """Write the interactive page to `path` atomically."""
    fig = heatmap_html_figure(heatmap, log_color=log_color, vmin=vmin, vmax=vmax)
    write_bytes(path, html_bytes(fig))


def _levels_traces(fig: go.Figure, levels: LiqLevels, row: int, unit: str) -> None:
    edges = levels.y_edges_usd
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    market = levels.market
    for side, colour, name in ((levels.long, LONG_COLOR, "Longs"),
                               (levels.short, SHORT_COLOR, "Shorts")):
        bars, other = (side.tokens, side.usd) if unit == "tokens" else (side.usd, side.tokens)
        cum = side.cum_tokens if unit == "tokens" else side.cum_usd
        units = (market, "USD") if unit == "tokens" else ("USD", market)
        fig.add_trace(go.Bar(
            x=centres, y=bars, width=width * 0.92, marker_color=colour, name=name,
            legendgroup=name, showlegend=row == 1,
            customdata=np.stack([edges[:-1], edges[1:], other], axis=-1),
            hovertemplate=(f"<b>{name.lower()} liquidated</b><br>"
                           "price %{customdata[0]:,.2f}–%{customdata[1]:,.2f} USD<br>"
                           f"%{{y:,.2f}} {units[0]} · %{{customdata[2]:,.2f}} {units[1]}"
                           "<extra></extra>")),
            row=row, col=1, secondary_y=False)
        fig.add_trace(go.Scatter(
            x=centres, y=cum, mode="lines", line={"color": colour, "width": 2.5, "shape": "hvh"},
            name=f"{name}: cumulative from price", legendgroup=name, showlegend=row == 1,
            hovertemplate=(f"a move to %{{x:,.2f}} USD liquidates %{{y:,.2f}} {units[0]} "
                           f"of {name.lower()}<extra></extra>")),
            row=row, col=1, secondary_y=True)


def levels_html_figure(levels: LiqLevels) -> go.Figure:
    """The liquidation map of one snapshot: tokens on top, USD below; nothing is written."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        specs=[[{"secondary_y": True}], [{"secondary_y": True}]])
    width = format_usd(float(levels.y_edges_usd[1] - levels.y_edges_usd[0]))
    for row, unit, label in ((1, "tokens", f"{levels.market} per {width} USD bin"),
                             (2, "usd", f"USD per {width} USD bin")):
        _levels_traces(fig, levels, row, unit)
        fig.update_yaxes(title_text=label, row=row, col=1, secondary_y=False, showgrid=False)
        fig.update_yaxes(title_text="cumulative", row=row, col=1, secondary_y=True,
                         showgrid=False, rangemode="tozero")
    fig.add_vline(x=levels.price_usd, line={"color": PRICE_LINE, "dash": "dash", "width": 1.5})
    fig.update_xaxes(title_text="Liquidation price (USD)", row=2, col=1,
                     range=[float(levels.y_edges_usd[0]), float(levels.y_edges_usd[-1])])
    fig.update_layout(
        template="plotly_dark", paper_bgcolor=BACKGROUND, plot_bgcolor=PANEL, height=760,
        font={"color": TEXT, "size": 13}, barmode="overlay", hovermode="closest",
        title={"text": f"{levels.market} liquidation levels · {levels.ts:%Y-%m-%d %H:%M} UTC · "
                       f"price {levels.price_usd:,.2f} USD (dashed)"},
        legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": 1.06},
        margin={"l": 70, "r": 70, "t": 110, "b": 60})
    return fig


def render_levels_html(levels: LiqLevels, path: str | Path) -> None:
    """Write the interactive levels page to `path` atomically."""
    write_bytes(path, html_bytes(levels_html_figure(levels)))
