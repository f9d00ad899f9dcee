"""Draw a built heatmap as a PNG for a trader's second screen (matplotlib, no pyplot state).

Dark theme; cells with nothing to liquidate are drawn in the EMPTY colour, outside every colour
scale (so the empty zone around the price shows, and the smallest amount never looks empty),
gap columns are hatched grey, the oracle price is a white line, the colour bar names the unit
and bin.
`--side split` draws longs in a blue ramp and shorts in an orange ramp added into one image:
at any minute longs sit below the price and shorts above it, so the two never hide each other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.colors import Colormap, LinearSegmentedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

from liqmap.heatmap.build import Heatmap
from liqmap.heatmap.files import write_bytes
from liqmap.heatmap.levels import LiqLevels
from liqmap.heatmap.markers import MARKER_FACE, marker_areas
from liqmap.heatmap.text import colorbar_label, format_usd, gap_runs, title_lines, unit_name
from liqmap.matrix import LiqMatrix

BACKGROUND = "#0d1117"
PANEL = "#161b22"
GAP_FACE = "#2b313b"
GAP_HATCH = "#6e7681"
TEXT = "#e6edf3"
MUTED = "#8b949e"
PRICE_LINE = "#ffffff"
CMAP = "viridis"
LONG_COLOR = "#2f9bff"
SHORT_COLOR = "#ff8a1f"
#: A cell with nothing to liquidate: near-black, darker than the first colour of every scale.
EMPTY = "#05070b"
#: Split colour ramps, from a visible dark colour to bright, that stay blue and orange.
LONG_RAMP = ("#0f2f6e", "#1565c8", "#2f9bff", "#9fe3ff")
SHORT_RAMP = ("#5a2200", "#a84300", "#ff8a1f", "#ffe08a")
FIGSIZE_IN = (14, 6)
DPI = 150
#: Default colour range: up to this percentile of the non-zero cells (the rest saturates).
VMAX_PERCENTILE = 98.0
#: Default lower end of a log colour scale: this percentile of the non-zero cells.
LOG_VMIN_PERCENTILE = 2.0


class NotebookFigure(Figure):
    """A Figure that Jupyter shows inline by itself (`_repr_png_`), with no pyplot state."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


@dataclass(frozen=True)
class ColorScale:
    """Colour range of the cells, in the matrix unit."""

    vmin: float
    vmax: float
    log: bool

    def norm(self) -> Normalize:
        return LogNorm(self.vmin, self.vmax) if self.log else Normalize(self.vmin, self.vmax)


def color_scale(z: np.ndarray, gap_mask: np.ndarray, *, log_color: bool = False,
                vmin: float | None = None, vmax: float | None = None) -> ColorScale:
    """The colour range: given bounds, else vmax = 98th percentile of the non-zero cells and
    vmin = 0 (linear) or their 2nd percentile (log)."""
    cells = z[:, ~gap_mask]
    positive = cells[cells > 0]
    if vmax is None:
        vmax = float(np.percentile(positive, VMAX_PERCENTILE)) if positive.size else 1.0
    if vmin is None:
        vmin = (float(np.percentile(positive, LOG_VMIN_PERCENTILE)) if positive.size
                else vmax / 100) if log_color else 0.0
    if log_color and vmin <= 0:
        vmin = vmax / 1e4
    if vmin >= vmax:
        vmax = vmin * 10 if vmin > 0 else 1.0
    return ColorScale(vmin, vmax, log_color)


def _x_edges(matrix: LiqMatrix) -> np.ndarray:
    """Column edges in matplotlib date units (days since the epoch)."""
    return mdates.date2num(matrix.t_edges_ns.astype("datetime64[ns]"))


def _style_axes(ax: Axes) -> None:
    ax.set_facecolor(GAP_FACE)
    for spine in ax.spines.values():
        spine.set_color(MUTED)
    ax.tick_params(colors=TEXT, labelsize=9)
    ax.grid(False)


def _draw_gaps(ax: Axes, matrix: LiqMatrix, x_edges: np.ndarray) -> None:
    """Gap runs as hatched full-height spans, all in one collection (one draw call: a span
    each cost ~3 ms of hatching on a 72 h window with 150 gap runs)."""
    runs = gap_runs(matrix.gap_mask)
    if not runs:
        return
    spans = [Rectangle((x_edges[first], 0.0), x_edges[last + 1] - x_edges[first], 1.0)
             for first, last in runs]
    ax.add_collection(PatchCollection(spans, facecolor=GAP_FACE, edgecolor=GAP_HATCH,
                                      hatch="////", linewidth=0, zorder=0,
                                      transform=ax.get_xaxis_transform()),
                      autolim=False)


def _with_empty(rgba: np.ndarray, matrix: LiqMatrix, filled: np.ndarray) -> np.ndarray:
    """`rgba` (uint8 [n_bins, n_cols, 4]) with the EMPTY colour in every cell not `filled`
    of a column that has a snapshot (gap columns stay transparent over their hatching)."""
    empty = ~filled & ~matrix.gap_mask[None, :]
    rgba[empty] = np.round(np.array(mpl.colors.to_rgba(EMPTY)) * 255).astype(np.uint8)
    return rgba


def _draw_cells(ax: Axes, matrix: LiqMatrix, rgba: np.ndarray, x_edges: np.ndarray) -> None:
    """The cells as one RGBA image (colour-mapped here once: matplotlib would resample the
    float matrix and its mask, then map the colours, at every draw)."""
    ax.imshow(rgba, origin="lower", aspect="auto", interpolation="nearest", zorder=1,
              extent=(x_edges[0], x_edges[-1], matrix.y_edges_usd[0], matrix.y_edges_usd[-1]))


def _draw_single(fig: Figure, ax: Axes, heatmap: Heatmap, scale: ColorScale,
                 x_edges: np.ndarray) -> None:
    """One colour scale; empty cells and gaps are left out of it (masked)."""
    m = heatmap.matrix
    base: Colormap = mpl.colormaps[CMAP]
    cmap = base.with_extremes(under=base(0.0), bad=(0, 0, 0, 0))
    filled = m.z > 0
    cells = np.ma.masked_array(m.z, mask=~filled | np.broadcast_to(m.gap_mask, m.z.shape))
    mappable = mpl.cm.ScalarMappable(norm=scale.norm(), cmap=cmap)
    _draw_cells(ax, m, _with_empty(mappable.to_rgba(cells, bytes=True), m, filled), x_edges)
    bar = fig.colorbar(mappable, ax=ax, pad=0.015, fraction=0.04,
                       extend="both" if scale.log else "max")
    _style_colorbar(bar, colorbar_label(m, heatmap.agg))


def _ramp(colors: tuple[str, ...]) -> LinearSegmentedColormap:
    return LinearSegmentedColormap.from_list(f"ramp{colors[-1]}", list(colors), N=256)


def _draw_split(fig: Figure, ax: Axes, heatmap: Heatmap, scale: ColorScale,
                x_edges: np.ndarray, bar_axes: tuple[Axes, Axes]) -> None:
    """Longs and shorts as two colour ramps added into one RGB image (empty cells in the
    EMPTY colour); shorts' colour bar on top, longs' below, as they sit around the price,
    each labelled with its side and the short unit (the column aggregation is in the
    subtitle), so the labels fit beside half-height bars and nothing sticks out towards the
    price tag."""
    m = heatmap.matrix
    norm = scale.norm()
    rgb = np.zeros((*m.z.shape, 4))
    ramps = {"Z_long": _ramp(LONG_RAMP), "Z_short": _ramp(SHORT_RAMP)}
    for key, ramp in ramps.items():
        z = m.extra[key]
        level = np.clip(np.ma.filled(norm(np.where(z > 0, z, scale.vmax)), 0.0), 0, 1)
        rgb[..., :3] += np.where((z > 0)[..., None], ramp(level)[..., :3], 0.0)
    rgb[..., :3] = np.clip(rgb[..., :3], 0, 1)
    filled = (m.extra["Z_long"] > 0) | (m.extra["Z_short"] > 0)
    rgb[..., 3] = np.where(filled & ~m.gap_mask[None, :], 1.0, 0.0)
    rgba = mpl.cm.ScalarMappable().to_rgba(rgb, bytes=True)  # as imshow makes them bytes
    _draw_cells(ax, m, _with_empty(rgba, m, filled), x_edges)
    for cax, key, name in zip(bar_axes, ("Z_short", "Z_long"), ("Shorts", "Longs"),
                              strict=True):
        mappable = mpl.cm.ScalarMappable(norm=scale.norm(), cmap=ramps[key])
        bar = fig.colorbar(mappable, cax=cax, extend="both" if scale.log else "max")
        _style_colorbar(bar, f"{name} · {unit_name(m)} per {format_usd(m.bin_width_usd)} "
                             "USD bin")


def _style_colorbar(bar: mpl.colorbar.Colorbar, label: str) -> None:
    if not isinstance(bar.norm, LogNorm):
        bar.formatter = FuncFormatter(_compact)
    bar.set_label(label, color=TEXT, fontsize=10)
    bar.ax.tick_params(colors=TEXT, labelsize=9)
    bar.outline.set_edgecolor(MUTED)


def _draw_price(ax: Axes, matrix: LiqMatrix, x_edges: np.ndarray, label: str) -> None:
    spot = matrix.spot_usd
    if not np.isfinite(spot).any():
        return
    centres = (x_edges[:-1] + x_edges[1:]) / 2
    ax.plot(centres, spot, color=PRICE_LINE, linewidth=1.3, zorder=3, label=label,
            path_effects=[patheffects.withStroke(linewidth=3.2, foreground="#000000")])
    last = int(np.flatnonzero(np.isfinite(spot))[-1])
    _price_tag(ax, float(spot[last]), matrix.y_edges_usd)
    legend = ax.legend(loc="upper left", fontsize=9, facecolor=PANEL, edgecolor=MUTED)
    for text in legend.get_texts():
        text.set_color(TEXT)


def _price_tag(ax: Axes, price_usd: float, y_edges_usd: np.ndarray) -> None:
    """The last price as a tag on a right-hand price axis (as trading charts show it): an
    axis, not a free annotation, so the layout keeps the colour bars clear of it."""
    if not y_edges_usd[0] <= price_usd <= y_edges_usd[-1]:
        return
    tag = ax.secondary_yaxis("right")
    tag.set_yticks([price_usd], labels=[f"{price_usd:.2f}"])
    tag.tick_params(length=0, pad=2, labelsize=9, labelcolor="#000000")
    tag.spines["right"].set_visible(False)
    for text in tag.get_yticklabels():
        text.set_bbox({"boxstyle": "round,pad=0.25", "fc": PRICE_LINE, "ec": "none"})


def _draw_markers(ax: Axes, heatmap: Heatmap) -> None:
    """Realized liquidations: circles at (time, price), area ∝ USD (legend via _draw_price)."""
    markers = heatmap.markers
    if markers is None or not len(markers):
        return
    x = mdates.date2num(pd.to_datetime(markers["ts"]).dt.tz_convert("UTC").dt.tz_localize(None))
    total = float(markers["size_usd"].sum())
    ax.scatter(x, markers["price_usd"], s=marker_areas(markers["size_usd"]),
               facecolors=MARKER_FACE, edgecolors="#000000", linewidths=0.6, alpha=0.85,
               zorder=5, label=f"Realized liquidations ({len(markers)}, "
                               f"${total:,.0f}; area ∝ USD)")


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(tz="UTC", minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz="UTC"))
    ax.set_xlabel("Time (UTC)", color=TEXT, fontsize=10)


def heatmap_figure(heatmap: Heatmap, *, log_color: bool = False, vmin: float | None = None,
                   vmax: float | None = None) -> Figure:
    """The heatmap as a matplotlib Figure (14 × 6 in); nothing is written."""
    m = heatmap.matrix
    fig = NotebookFigure(figsize=FIGSIZE_IN, dpi=DPI, facecolor=BACKGROUND,
                         layout="constrained")
    split = heatmap.side == "split"
    grid = fig.add_gridspec(2, 2, width_ratios=(60, 1)) if split else None
    ax = fig.add_subplot(grid[:, 0]) if grid is not None else fig.add_subplot()
    _style_axes(ax)
    x_edges = _x_edges(m)
    layers = [m.extra["Z_long"], m.extra["Z_short"]] if split else [m.z]
    scale = color_scale(np.concatenate(layers, axis=0), np.tile(m.gap_mask, 1),
                        log_color=log_color, vmin=vmin, vmax=vmax)
    _draw_gaps(ax, m, x_edges)
    if grid is not None:
        bar_axes = (fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1]))
        _draw_split(fig, ax, heatmap, scale, x_edges, bar_axes)
    else:
        _draw_single(fig, ax, heatmap, scale, x_edges)
    _draw_markers(ax, heatmap)
    _draw_price(ax, m, x_edges, heatmap.price_label)
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(m.y_edges_usd[0], m.y_edges_usd[-1])
    ax.set_ylabel("Liquidation price (USD)", color=TEXT, fontsize=10)
    _time_axis(ax)
    title, subtitle = title_lines(heatmap)
    fig.suptitle(title, color=TEXT, fontsize=13, fontweight="bold")
    ax.set_title(subtitle, color=MUTED, fontsize=10)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The PNG file of `fig` (at its dpi, on its face colour).

    The Agg canvas draws the figure once, its layout included; `savefig` would draw it twice
    when a layout engine is set (a first pass for the layout that still resamples every
    image: +0.5 s on a 72 h × 500-bin heatmap).
    """
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def render_heatmap_png(heatmap: Heatmap, path: str | Path, *, log_color: bool = False,
                       vmin: float | None = None, vmax: float | None = None) -> None:
    """Draw `heatmap` and write it to `path` (PNG, atomically)."""
    write_bytes(path, png_bytes(heatmap_figure(heatmap, log_color=log_color, vmin=vmin,
                                               vmax=vmax)))


def _levels_panel(ax: Axes, levels: LiqLevels, unit: str, label: str) -> Axes:
    """Bars per bin (longs, shorts) and, on a twin axis (returned), the cumulative curves from
    the price."""
    edges = levels.y_edges_usd
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    twin = ax.twinx()
    for side, colour, name in ((levels.long, LONG_COLOR, "Longs"),
                               (levels.short, SHORT_COLOR, "Shorts")):
        bars = side.tokens if unit == "tokens" else side.usd
        cum = side.cum_tokens if unit == "tokens" else side.cum_usd
        ax.add_collection(_bars(centres, bars, width * 0.92, colour,
                                f"{name} liquidated here"), autolim=True)
        twin.step(centres, cum, where="mid", color=colour, linewidth=2.0, zorder=3,
                  label=f"{name}: cumulative from price",
                  path_effects=[patheffects.withStroke(linewidth=3.5, foreground="#000000")])
    ax.autoscale_view()
    ax.set_ylim(bottom=0)
    ax.axvline(levels.price_usd, color=PRICE_LINE, linestyle="--", linewidth=1.3, zorder=4)
    ax.set_ylabel(label, color=TEXT, fontsize=10)
    twin.set_ylabel(f"cumulative {label.split(' per ')[0]}", color=TEXT, fontsize=10)
    twin.set_ylim(bottom=0)
    for y_axis in (ax.yaxis, twin.yaxis):
        y_axis.set_major_formatter(FuncFormatter(_compact))
    for axis in (ax, twin):
        _style_axes(axis)
        axis.set_facecolor("none")
    ax.set_facecolor(PANEL)
    ax.set_zorder(twin.get_zorder() - 1)
    ax.patch.set_visible(True)
    return twin


def _bars(centres: np.ndarray, heights: np.ndarray, width: float, colour: str,
          label: str) -> PolyCollection:
    """A side's bars, one rectangle per non-empty bin, as one artist (`ax.bar` made an artist
    per bin, zeros included: ~1 s of a levels PNG's drawing at 740 bins)."""
    drawn = np.flatnonzero(heights > 0)
    left, right, top = centres[drawn] - width / 2, centres[drawn] + width / 2, heights[drawn]
    zero = np.zeros(drawn.size)
    corners = np.stack([np.stack([left, zero], 1), np.stack([left, top], 1),
                        np.stack([right, top], 1), np.stack([right, zero], 1)], 1)
    return PolyCollection(list(corners), facecolors=colour, alpha=0.9, linewidths=0,
                          label=label, zorder=2)


def _compact(value: float, _pos: object = None) -> str:
    """Axis numbers without an offset: 1500 -> 1.5k, 2300000 -> 2.3M."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def levels_figure(levels: LiqLevels) -> Figure:
    """The liquidation map of one snapshot: tokens on top, USD below, price on the x axis."""
    fig = NotebookFigure(figsize=FIGSIZE_IN, dpi=DPI, facecolor=BACKGROUND,
                         layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    width = format_usd(float(levels.y_edges_usd[1] - levels.y_edges_usd[0]))
    top_twin = _levels_panel(top, levels, "tokens", f"{levels.market} per {width} USD bin")
    _levels_panel(bottom, levels, "usd", f"USD per {width} USD bin (size × liq. price)")
    bottom.set_xlim(levels.y_edges_usd[0], levels.y_edges_usd[-1])
    bottom.set_xlabel("Liquidation price (USD)", color=TEXT, fontsize=10)
    handles = [*top.get_legend_handles_labels()[0], *top_twin.get_legend_handles_labels()[0]]
    legend = fig.legend(handles, [str(h.get_label()) for h in handles], loc="outside lower center",
                        ncol=4, fontsize=9, facecolor=PANEL, edgecolor=MUTED)
    for text in legend.get_texts():
        text.set_color(TEXT)
    fig.suptitle(f"{levels.market} liquidation levels · {levels.ts:%Y-%m-%d %H:%M} UTC · "
                 f"price {levels.price_usd:,.2f} USD (dashed)", color=TEXT, fontsize=13,
                 fontweight="bold")
    return fig


def render_levels_png(levels: LiqLevels, path: str | Path) -> None:
    """Draw `levels` and write it to `path` (PNG, atomically)."""
    write_bytes(path, png_bytes(levels_figure(levels)))
