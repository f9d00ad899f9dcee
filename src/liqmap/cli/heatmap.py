"""`liqmap heatmap` and `liqmap levels`: thin wrappers over the notebook API (liqmap.api).

Every check that needs no data runs first; files are written only once everything is computed,
each atomically. The run ends with one summary line on stdout.
"""

from __future__ import annotations

from pathlib import Path

import click

from liqmap.api import LegacyLog, LiqStore, open_legacy, open_store
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
from liqmap.heatmap.binning import AGGS, SIDES, UNITS, check_colors
from liqmap.heatmap.build import Heatmap
from liqmap.heatmap.defaults import bin_help, margin_help
from liqmap.heatmap.files import OUTPUT_SUFFIXES, check_output_path
from liqmap.heatmap.levels import LiqLevels
from liqmap.heatmap.sources import DATA_SOURCES
from liqmap.heatmap.text import format_usd, summary_line
from liqmap.matrix import LiqMatrix
from liqmap.timeutil import is_relative, parse_time


def _reader(ctx: click.Context, data_dir: str | None, folder: str | None,
            price_csv: str | None) -> LiqStore | LegacyLog:
    if folder is not None:
        if data_dir is not None:
            raise InputError("give either --folder (legacy CSV) or --data-dir (store), not both")
        return open_legacy(folder, price_csv)
    if price_csv is not None:
        raise InputError("--price-csv adds a price line to --folder data; the store has the "
                         "oracle price already: drop --price-csv or add --folder")
    return open_store(open_store_dir(ctx, data_dir))


def _default_out(matrix: LiqMatrix) -> Path:
    assert matrix.info is not None  # built here
    return Path(f"heatmap_{matrix.market}_{matrix.info.t_start:%Y%m%dT%H%M}_"
                f"{matrix.info.t_end:%Y%m%dT%H%M}.png")


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
              help="Lowest price shown (" + margin_help("below the window's lowest price") + ").")
@click.option("--pmax", "pmax_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Highest price shown (" + margin_help("above the window's highest price") + ").")
@click.option("--freq", "freq_min", type=Number(low=1, whole=True, unit="minutes"), default=1,
              show_default=True,
              metavar="MIN", help="Minutes per time column.")
@click.option("--agg", type=click.Choice(AGGS), default="mean", show_default=True,
              help="How the snapshots inside a coarser column combine.")
@click.option("--unit", type=click.Choice(UNITS), default="tokens", show_default=True,
              help="Amount unit: tokens of the asset, or USD (size × liquidation price).")
@click.option("--side", type=click.Choice(SIDES), default="both", show_default=True,
              help="Positions drawn; split draws longs (blue) and shorts (orange) apart.")
@click.option("--source", "data_source", type=click.Choice(DATA_SOURCES), default="auto",
              show_default=True, help="Store rows to draw: collected snapshots, rows imported "
              "with import-legacy, or auto (legacy rows at the minutes without a snapshot).")
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
                bin_usd: float | None, pmin_usd: float | None, pmax_usd: float | None,
                freq_min: int, agg: str, unit: str, side: str, data_source: str,
                log_color: bool, vmin: float | None, vmax: float | None,
                out: str | None, npz_out: str | None) -> None:
    """Liquidation heatmap (time × price) of a window of the store or of a legacy CSV.

    \b
    Example:
      liqmap heatmap --t-start 2025-08-22T12:00 --t-end 2025-08-22T15:00 \\
        --bin 0.1 --log-color --out heatmap.html
    """
    out_path = check_output_path(out, OUTPUT_SUFFIXES, "--out") if out else None
    npz_path = check_output_path(npz_out, (".npz",), "--npz-out") if npz_out else None
    check_colors(log_color, vmin, vmax)
    matrix = _reader(ctx, data_dir, folder, price_csv).heatmap(
        market, t_start, t_end, bin=bin_usd, freq=freq_min, side=side, unit=unit, agg=agg,
        pmin=pmin_usd, pmax=pmax_usd, progress=None, source=data_source)
    if out_path is None and npz_path is None:
        out_path = _default_out(matrix)
    written = []
    if out_path is not None:
        save = matrix.save_png if out_path.suffix.lower() == ".png" else matrix.save_html
        written.append(str(save(out_path, log_color=log_color, vmin=vmin, vmax=vmax)))
    if npz_path is not None:
        written.append(str(matrix.save_npz(npz_path)))
    click.echo(summary_line(Heatmap.from_matrix(matrix), written))


def _asked(at: str) -> str:
    """`--at` as asked: a time, or a relative one as typed."""
    if is_relative(at):
        return f"{at.strip()} before the newest snapshot"
    return f"{parse_time(at):%Y-%m-%d %H:%M}"


def levels_summary(levels: LiqLevels, asked: str | None, out: Path) -> str:
    """One line: snapshot, price, positions per side, amounts in range, output."""
    unit = levels.market
    lo, hi = format_usd(levels.y_edges_usd[0]), format_usd(levels.y_edges_usd[-1])
    lines = [f"{levels.market} levels at {levels.ts:%Y-%m-%d %H:%M} UTC"
             + (f" (asked {_asked(asked)})" if asked else ""),
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
              help="Moment shown, ISO 8601 (UTC unless an offset is given), or relative to "
                   "the newest snapshot (-30min: half an hour before it); the newest snapshot "
                   "at or before it is used (default: the newest snapshot).")
@click.option("--bin", "bin_usd", type=USD, default=None, metavar="USD",
              help=bin_help() + ".")
@click.option("--pmin", "pmin_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Lowest price shown (" + margin_help("below the price") + ").")
@click.option("--pmax", "pmax_usd", type=PRICE_USD, default=None, metavar="USD",
              help="Highest price shown (" + margin_help("above the price") + ").")
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
      liqmap levels --at -30min     # half an hour before the newest snapshot
    """
    out_path = check_output_path(out, OUTPUT_SUFFIXES, "--out") if out else None
    store = open_store(open_store_dir(ctx, data_dir))
    levels = store.levels(market, at, bin=bin_usd, pmin=pmin_usd, pmax=pmax_usd)
    if out_path is None:
        out_path = Path(f"levels_{levels.market}_{levels.ts:%Y%m%dT%H%M}.png")
    if out_path.suffix.lower() == ".png":
        levels.save_png(out_path)
    else:
        levels.save_html(out_path)
    click.echo(levels_summary(levels, at, out_path))
