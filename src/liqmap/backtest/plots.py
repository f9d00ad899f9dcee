"""Pictures of a backtest (matplotlib, no pyplot state): ratios, P&L, sweep objective."""

from __future__ import annotations

from datetime import UTC
from typing import Final

import matplotlib.dates as mdates
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from liqmap.backtest.engine import BacktestResult, Ledger
from liqmap.backtest.params import OBJECTIVES, BacktestParams
from liqmap.backtest.rule import EVENT_OFF, EVENT_ON, EVENT_REVERSE

FIGSIZE: Final = (13.0, 7.5)
DPI: Final = 110
UP_COLOR: Final = "tab:blue"
DOWN_COLOR: Final = "tab:orange"
MAX_LABELLED_CELLS: Final = 150
THOUSANDS: Final = mticker.FuncFormatter(lambda v, _: f"{v:,.10g}")
MARKERS: Final = {  # event -> (marker, colour, label)
    EVENT_ON: ("^", "tab:green", "boost on"),
    EVENT_OFF: ("v", "tab:red", "boost off"),
    EVENT_REVERSE: ("D", "tab:purple", "reversal"),
}


def describe_params(params: BacktestParams) -> str:
    """One line of the key parameters, for titles."""
    if params.threshold_tokens is None and params.threshold_quantile is not None:
        theta = f"θ=q{params.threshold_quantile:g} of {params.lookback_min} min"
    else:
        unit = "tokens/USD" if params.legacy_formulas else "tokens"
        theta = f"θ={params.threshold_tokens:g} {unit}"
    parts = [f"W={params.window_label()}", theta, f"confirm {params.confirm}",
             f"release {params.release}", f"boost {params.boost:g}",
             f"reversal {'on' if params.reversal else 'off'}"]
    if params.cost_bps:
        parts.append(f"costs {params.cost_bps:g} bps")
    if params.carry_apr:
        parts.append(f"carry {100 * params.carry_apr:g} %/yr")
    if params.legacy_formulas:
        parts.append("legacy formulas")
    return ", ".join(parts)


def render_ratio(result: BacktestResult, market: str = "SOL") -> Figure:
    """Price with toggle markers, the window sums against θ, and the three hedge ratios."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    price_ax, liq_ax, ratio_ax = fig.subplots(3, 1, sharex=True, height_ratios=[1.2, 0.8, 1])
    times = result.minutes.timestamps()
    book, led = result.ledger.book, result.ledger
    price_ax.plot(times, book.price_usd, color="0.25", lw=0.9, label=f"{market} price")
    _shade_gaps(price_ax, times, result.minutes.gap)
    for code, (marker, color, label) in MARKERS.items():
        at = led.event == code
        price_ax.scatter(times[at], book.price_usd[at], marker=marker, s=22, color=color,
                         edgecolors="none", alpha=0.85, zorder=3,
                         label=f"{label} ({int(at.sum())})")
    price_ax.set_ylabel(f"{market} price (USD)")
    _plot_pressure(liq_ax, times, result)
    ratio_ax.step(times, led.boosted_ratio, where="post", color=UP_COLOR, lw=0.9,
                  label="boosted")
    ratio_ax.plot(times, book.current_ratio, color="black", lw=0.9, label="actual")
    ratio_ax.plot(times, book.target_ratio, color="0.45", lw=1.2, ls="--", label="target")
    _shade_direction(ratio_ax, times, led.direction)
    ratio_ax.set_ylabel("hedge ratio")
    for ax in (price_ax, liq_ax, ratio_ax):
        _legend_right(ax)
    _time_axis(ratio_ax)
    fig.suptitle(f"{market} hedge ratio with liquidation boost, {_span(times)}\n"
                 f"{describe_params(result.params)}", fontsize="medium")
    return fig


def _plot_pressure(ax: Axes, times: pd.DatetimeIndex, result: BacktestResult) -> None:
    rule, params = result.rule, result.params
    unit = "tokens / USD" if params.legacy_formulas else "tokens"
    shown = ~result.minutes.gap | params.legacy_formulas
    ax.plot(times, np.where(shown, rule.above, np.nan), color=DOWN_COLOR, lw=0.7,
            label=f"above: (p, p+{params.window_label()}]")
    ax.plot(times, np.where(shown, rule.below, np.nan), color=UP_COLOR, lw=0.7,
            label=f"below: [p−{params.window_label()}, p)")
    ax.plot(times, rule.threshold, color="tab:red", lw=1.0, ls="--", label="threshold θ")
    ax.set_ylabel(f"liquidations\nin window ({unit})")
    ax.yaxis.set_major_formatter(THOUSANDS)


def _legend_right(ax: Axes) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize="small", frameon=False)


def render_pnl(result: BacktestResult, stats: dict[str, float], market: str = "SOL",
               always_on: Ledger | None = None) -> Figure:
    """Cumulative P&L raw vs boosted gross and net (top; with the boost-always-on baseline
    when given) and boosted net − raw (bottom). Net means after costs and carry."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.4, 1])
    frame = result.minutes_frame()
    times = result.minutes.timestamps()
    top.plot(times, frame["cum_pnl_raw_net"], color="0.35", lw=1.2,
             label="plain hedge (boost never on)")
    top.plot(times, frame["cum_pnl_boosted"], color=UP_COLOR, lw=1.0, ls="--",
             label="boosted, gross")
    top.plot(times, frame["cum_pnl_boosted_net"], color=UP_COLOR, lw=1.4,
             label="boosted, net of costs and carry")
    if always_on is not None:
        net = np.cumsum(always_on.pnl_boosted_usd - always_on.cost_usd
                        - always_on.carry_boosted_usd)
        top.plot(times, net, color="tab:purple", lw=0.9, ls=":", label="boost always on, net")
    top.axhline(0, color="0.6", lw=0.6)
    top.set_ylabel("cumulative P&L (USD)")
    top.yaxis.set_major_formatter(THOUSANDS)
    _legend_right(top)
    diff = (frame["cum_pnl_boosted_net"] - frame["cum_pnl_raw_net"]).to_numpy()
    bottom.fill_between(times, diff, 0, where=diff >= 0, color="tab:green", alpha=0.35, lw=0,
                        interpolate=True, label="boost ahead")
    bottom.fill_between(times, diff, 0, where=diff < 0, color="tab:red", alpha=0.35, lw=0,
                        interpolate=True, label="boost behind")
    bottom.plot(times, diff, color="0.2", lw=0.8)
    bottom.axhline(0, color="0.6", lw=0.6)
    bottom.set_ylabel("boosted net − raw (USD)")
    bottom.yaxis.set_major_formatter(THOUSANDS)
    _legend_right(bottom)
    _time_axis(bottom)
    fig.suptitle(
        f"{market} cumulative P&L, raw vs boosted, {_span(times)}\n"
        f"{describe_params(result.params)} | net improvement "
        f"{stats['net_improvement_usd']:,.2f} USD, max drawdown "
        f"{stats['max_drawdown_usd']:,.2f} USD", fontsize="medium")
    return fig


def render_sweep(table: pd.DataFrame, objective: str, axes: tuple[str, str | None],
                 title: str) -> Figure:
    """Objective over one or two swept parameters, best over the others.

    Args:
        table: the sweep table (`SweepResult.table`).
        axes: (x name, y name or None for a one-parameter chart).
    """
    better = OBJECTIVES[objective]
    x, y = axes
    fig = Figure(figsize=(10.0, 6.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    if y is None:
        best = _best_by(table, [x], objective, better)
        ax.plot(best[x], best[objective], marker="o", color=UP_COLOR)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel(_axis_label(x))
        ax.set_ylabel(objective)
        ax.xaxis.set_major_formatter(THOUSANDS)
        ax.yaxis.set_major_formatter(THOUSANDS)
        ax.grid(True, color="0.9", lw=0.6)
    else:
        _sweep_heatmap(fig, ax, _best_by(table, [y, x], objective, better), x, y, objective)
    swept = table.columns[1:table.columns.get_loc("n_minutes")]
    others = [c for c in swept if c not in axes and table[c].nunique() > 1]
    note = (f", {'highest' if better > 0 else 'lowest'} over {', '.join(others)}"
            if others else "")
    box = "" if y is None else "; black box: best set"
    ax.set_title(f"{title}\n{objective}{note}{box}", fontsize="medium")
    return fig


def _sweep_heatmap(fig: Figure, ax: Axes, best: pd.DataFrame, x: str, y: str,
                   objective: str) -> None:
    grid = best.pivot(index=y, columns=x, values=objective)
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    span = float(np.abs(finite).max()) if finite.size else 1.0
    cmap = "RdYlGn" if OBJECTIVES[objective] > 0 else "RdYlGn_r"
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap,
                      vmin=-span if finite.size and finite.min() < 0 else None,
                      vmax=span if finite.size and finite.min() < 0 else None)
    ax.set_xticks(range(grid.shape[1]), [f"{v:,.10g}" for v in grid.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [f"{v:,.10g}" for v in grid.index])
    ax.set_xlabel(_axis_label(x))
    ax.set_ylabel(_axis_label(y))
    fig.colorbar(image, ax=ax, label=objective, format=THOUSANDS)
    if values.size <= MAX_LABELLED_CELLS:
        _label_cells(ax, values, np.ma.filled(image.norm(values), 0.5))
    if finite.size:
        flat = np.where(np.isfinite(values), values * OBJECTIVES[objective], -np.inf)
        i, j = np.unravel_index(int(np.argmax(flat)), values.shape)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                  edgecolor="black", lw=2.0))


def _label_cells(ax: Axes, values: np.ndarray, shade: np.ndarray) -> None:
    """Write each cell's value, white on the dark ends of the colour map."""
    for (i, j), v in np.ndenumerate(values):
        dark = shade[i, j] < 0.15 or shade[i, j] > 0.85
        ax.text(j, i, f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}", ha="center", va="center",
                fontsize="x-small", color="white" if dark else "black")


def _best_by(table: pd.DataFrame, keys: list[str], objective: str, better: int) -> pd.DataFrame:
    score = table[objective] * better
    idx = score.where(np.isfinite(score)).groupby([table[k] for k in keys]).idxmax()
    return table.loc[idx.dropna().astype(int)] if idx.notna().any() else table.iloc[:0]


def _axis_label(name: str) -> str:
    units = {"threshold": "tokens", "window": "USD", "lookback": "minutes",
             "fee_bps": "bps", "slippage_bps": "bps"}
    return f"{name} ({units[name]})" if name in units else name


def default_sweep_axes(grid: dict[str, list[float]]) -> tuple[str, str | None] | None:
    """The first two swept names with more than one value (y None if only one has)."""
    varied = [n for n, v in grid.items() if len(v) > 1]
    if not varied:
        return None
    return varied[0], varied[1] if len(varied) > 1 else None


def _time_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel("time (UTC)")
    for axis in ax.figure.axes if ax.figure else [ax]:
        axis.grid(True, color="0.9", lw=0.6)


def _shade_direction(ax: Axes, times: pd.DatetimeIndex, direction: np.ndarray) -> None:
    for value, color, label in ((1, UP_COLOR, "boost +1 (short raised)"),
                                (-1, DOWN_COLOR, "boost −1 (short cut)")):
        ax.fill_between(times, 0, 1, where=direction == value, step="post", color=color,
                        alpha=0.12, lw=0, transform=ax.get_xaxis_transform(), label=label)


def _shade_gaps(ax: Axes, times: pd.DatetimeIndex, gap: np.ndarray) -> None:
    if gap.any():
        ax.fill_between(times, 0, 1, where=gap, step="post", color="0.5", alpha=0.15, lw=0,
                        transform=ax.get_xaxis_transform(),
                        label=f"no matrix data ({int(gap.sum())} min)")


def _span(times: pd.DatetimeIndex) -> str:
    return f"{times[0]:%Y-%m-%d %H:%M} to {times[-1]:%Y-%m-%d %H:%M} UTC"

