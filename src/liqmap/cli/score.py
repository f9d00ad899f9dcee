"""`liqmap score`: a thin wrapper over `liqmap.score`."""

from __future__ import annotations

from pathlib import Path

import click

from liqmap.cli.options import data_dir_option, market_option, settings_from, window_options


@click.command("score")
@data_dir_option
@market_option
@window_options
@click.option("--out-dir", default=None, metavar="DIR",
              help="Where score.json and score.png go (default: score_<market>).")
@click.pass_context
def score_cmd(ctx: click.Context, data_dir: str | None, market: str, t_start: str | None,
              t_end: str | None, out_dir: str | None) -> None:
    """Score the map against the liquidations that happened: precision and recall by position
    and by volume, calibration by distance to the price, lead time, misses.

    The window defaults to the last 24 stored hours. Writes a JSON summary and a PNG figure
    and prints the table.

    \b
    Example:
      liqmap score --market SOL --t-start 2026-11-23T00:00 --t-end 2026-11-23T23:59
      liqmap score --market ETH --t-start -6h --t-end -1h
    """
    from liqmap.score.report import score_store, table_text, write_outputs
    from liqmap.store import Store

    store = Store(settings_from(ctx, data_dir=data_dir).data_dir)
    score = score_store(store, market, t_start, t_end)
    json_path, png_path = write_outputs(score, Path(out_dir or f"score_{market}"))
    click.echo(table_text(score))
    click.echo(f"wrote {json_path} and {png_path}")
