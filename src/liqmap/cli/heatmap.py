"""`liqmap heatmap` and `liqmap levels`: thin wrappers over `liqmap.heatmap`.

Every check that needs no data runs first; files are written only once everything is computed,
each atomically. The run ends with one summary line on stdout.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from liqmap.cli.options import (
    PRICE_USD,
    USD,
    Number,
    PathParam,
    data_dir_option,
    market_option,
    open_store_dir,
    window_options,
)
from liqmap.errors import InputError
from liqmap.heatmap.binning import AGGS, SIDES, UNITS
from liqmap.heatmap.build import Heatmap, HeatmapRequest, build_heatmap, build_levels
from liqmap.heatmap.defaults import bin_help
from liqmap.heatmap.files import OUTPUT_SUFFIXES, check_output_path, write_bytes, write_npz
from liqmap.heatmap.levels import LiqLevels
from liqmap.heatmap.sources import LegacyCsvSource, Source, StoreSource
from liqmap.heatmap.text import format_usd, summary_line
from liqmap.timeutil import parse_time


def _check_colors(log_color: bool, vmin: float | None, vmax: float | None) -> None:
    for name, value in (("--vmin", vmin), ("--vmax", vmax)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value}")
    if log_color and ((vmin is not None and vmin <= 0) or (vmax is not None and vmax <= 0)):
        raise InputError("--log-color needs --vmin and --vmax > 0; raise them or drop "
                         "--log-color")
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise InputError(f"--vmin ({vmin:g}) must be below --vmax ({vmax:g})")


def _source(ctx: click.Context, data_dir: str | None, market: str, folder: str | None,
            price_csv: str | None) -> Source:
    if folder is not None:
        if data_dir is not None:
            raise InputError("give either --folder (legacy CSV) or --data-dir (store), not both")
        return LegacyCsvSource(folder, price_csv, market)
    if price_csv is not None:
        raise InputError("--price-csv adds a price line to --folder data; the store has the "
                         "oracle price already: drop --price-csv or add --folder")
    return StoreSource(open_store_dir(ctx, data_dir), market)


def _render(heatmap: Heatmap, out: Path, log_color: bool, vmin: float | None,
            vmax: float | None) -> bytes:
    """The file for `out`: PNG or HTML by its suffix (renderers are imported only when used)."""
    if out.suffix.lower() == ".png":
        from liqmap.heatmap.render_png import heatmap_figure, png_bytes

        return png_bytes(heatmap_figure(heatmap, log_color=log_color, vmin=vmin, vmax=vmax))
    from liqmap.heatmap.render_html import heatmap_html_figure, html_bytes

    return html_bytes(heatmap_html_figure(heatmap, log_color=log_color, vmin=vmin, vmax=vmax))


def _default_out(heatmap: Heatmap) -> Path:
    return Path(f"heatmap_{heatmap.matrix.market}_{heatmap.t_start:%Y%m%dT%H%M}_"
                f"{heatmap.t_end:%Y%m%dT%H%M}.png")


@click.command("heatmap")
@data_dir_option
@market_option
@click.option("--folder", type=PathParam("dir", "read"), default=None, metavar="DIR",
              help="Read the old tool's DIR/sol_positions_log.csv directly instead of the store.")
@click.option("--price-csv", type=PathParam("file", "read"), default=None, metavar="FILE",
              help="Price line for --folder data: a CSV with a time and a price column "
                   "(e.g. timestamp,price or time,close).")
@window_options
@click.option("--bin", "bin_usd", type=USD, default=None, metavar="USD",
              help=bin_help() + "; bins are [edge, edge+bin) with edges on multiples of it.")
@click.option("--pmin", "pmin_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Lowest price shown (default: 20% below the window's lowest price).")
@click.option("--pmax", "pmax_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Highest price shown (default: 20% above the window's highest price).")
@click.option("--freq", "freq_min", type=Number(low=1, whole=True, unit="minutes"), default=1,
              show_default=True,
              metavar="MIN", help="Minutes per time column.")
@click.option("--agg", type=click.Choice(AGGS), default="mean", show_default=True,
              help="How the snapshots inside a coarser column combine.")
@click.option("--unit", type=click.Choice(UNITS), default="tokens", show_default=True,
              help="Amount unit: tokens of the asset, or USD (size × liquidation price).")
@click.option("--side", type=click.Choice(SIDES), default="both", show_default=True,
              help="Positions drawn; split draws longs (blue) and shorts (orange) apart.")
@click.option("--log-color", is_flag=True, help="Logarithmic colour scale.")
@click.option("--vmin", type=Number(), default=None, help="Colour scale minimum (amount unit).")
@click.option("--vmax", type=Number(), default=None, help="Colour scale maximum (amount unit).")
@click.option("--out", type=PathParam("file", "write"), default=None, metavar="FILE",
              help="Picture: .png, or .html for an interactive page (default: "
                   "heatmap_<market>_<start>_<end>.png unless only --npz-out is given).")
@click.option("--npz-out", type=PathParam("file", "write"), default=None, metavar="FILE",
              help="Also write the matrix (old tool's npz keys plus gap_mask).")
@click.pass_context
def heatmap_cmd(ctx: click.Context, data_dir: str | None, market: str, folder: str | None,
                price_csv: str | None, t_start: str | None, t_end: str | None,
                bin_usd: float | None,
                pmin_usd: float | None, pmax_usd: float | None, freq_min: int, agg: str,
                unit: str, side: str, log_color: bool, vmin: float | None, vmax: float | None,
                out: str | None, npz_out: str | None) -> None:
    """Liquidation heatmap (time × price) of a window of the store or of a legacy CSV.

    \b
    Example:
      liqmap heatmap --t-start 2025-08-22T12:00 --t-end 2025-08-22T15:00 \\
        --bin 0.1 --log-color --out heatmap.html
    """
    out_path = check_output_path(out, OUTPUT_SUFFIXES, "--out") if out else None
    npz_path = check_output_path(npz_out, (".npz",), "--npz-out") if npz_out else None
    _check_colors(log_color, vmin, vmax)
    request = HeatmapRequest(t_start=t_start, t_end=t_end, bin_usd=bin_usd, pmin_usd=pmin_usd,
                             pmax_usd=pmax_usd, freq_min=freq_min, agg=agg, unit=unit, side=side)
    request.validate()
    heatmap = build_heatmap(_source(ctx, data_dir, market, folder, price_csv), request,
                            progress=None)
    if out_path is None and npz_path is None:
        out_path = _default_out(heatmap)
    picture = _render(heatmap, out_path, log_color, vmin, vmax) if out_path else None
    written = []
    if npz_path is not None:
        write_npz(heatmap.matrix, npz_path)
        written.append(str(npz_path))
    if out_path is not None and picture is not None:
        write_bytes(out_path, picture)
        written.insert(0, str(out_path))
    click.echo(summary_line(heatmap, written))


def levels_summary(levels: LiqLevels, asked: str | None, out: Path) -> str:
    """One line: snapshot, price, positions per side, amounts in range, output."""
    unit = levels.market
    lo, hi = format_usd(levels.y_edges_usd[0]), format_usd(levels.y_edges_usd[-1])
    lines = [f"{levels.market} levels at {levels.ts:%Y-%m-%d %H:%M} UTC"
             + (f" (asked {parse_time(asked):%Y-%m-%d %H:%M})" if asked else ""),
             f"price {levels.price_usd:,.2f} USD"]
    for name, side in (("longs", levels.long), ("shorts", levels.short)):
        inside = float(side.tokens.sum())
        lines.append(f"{name} {side.n:,}: {inside:,.1f} {unit} ({float(side.usd.sum()):,.0f} "
                     f"USD) in {lo}–{hi} USD, {side.below_tokens + side.above_tokens:,.1f} "
                     f"{unit} outside")
    if levels.n_no_liq:
        lines.append(f"{levels.n_no_liq:,} without liq. price")
    lines.append(f"out {out}")
    return " | ".join(lines)


@click.command("levels")
@data_dir_option
@market_option
@click.option("--at", default=None, metavar="TIME",
              help="Moment shown, ISO 8601 (UTC unless an offset is given); the newest snapshot "
                   "at or before it is used (default: the newest snapshot).")
@click.option("--bin", "bin_usd", type=USD, default=None, metavar="USD",
              help=bin_help() + ".")
@click.option("--pmin", "pmin_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Lowest price shown (default: 20% below the price).")
@click.option("--pmax", "pmax_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Highest price shown (default: 20% above the price).")
@click.option("--out", type=PathParam("file", "write"), default=None, metavar="FILE",
              help="Picture: .png or .html (default: levels_<market>_<time>.png).")
@click.pass_context
def levels_cmd(ctx: click.Context, data_dir: str | None, market: str, at: str | None,
               bin_usd: float | None, pmin_usd: float | None, pmax_usd: float | None,
               out: str | None) -> None:
    """Liquidation map at one moment: long liquidations below the price, shorts above.

    \b
    Example:
      liqmap levels --at 2025-08-22T14:30 --bin 0.25 --out levels.html
    """
    out_path = check_output_path(out, OUTPUT_SUFFIXES, "--out") if out else None
    source = StoreSource(open_store_dir(ctx, data_dir), market)
    levels = build_levels(source, at, bin_usd=bin_usd, pmin_usd=pmin_usd, pmax_usd=pmax_usd)
    if out_path is None:
        out_path = Path(f"levels_{levels.market}_{levels.ts:%Y%m%dT%H%M}.png")
    if out_path.suffix.lower() == ".png":
        from liqmap.heatmap.render_png import levels_figure, png_bytes

        data = png_bytes(levels_figure(levels))
    else:
        from liqmap.heatmap.render_html import html_bytes, levels_html_figure

        data = html_bytes(levels_html_figure(levels))
    write_bytes(out_path, data)
    click.echo(levels_summary(levels, at, out_path))
