"""`liqmap backtest`: flags in, `liqmap.backtest` / `liqmap.sweep` called, files and a table out."""

from __future__ import annotations

import math
import sys
from typing import Any

import click

from liqmap.backtest import params as P
from liqmap.cli.options import (
    POSITIVE_COUNT,
    USD,
    Number,
    PathParam,
    TimeZone,
    data_dir_option,
    market_option,
    open_store_dir,
    window_options,
)
from liqmap.errors import InputError

PROGRESS_MIN_SETS = 100

_EPILOG = """\b
Examples:
  liqmap backtest --data-dir demo-out/store
  liqmap backtest --heatmap liq_matrix_72h_1m.npz --hedge-log desk.csv --tz Asia/Hong_Kong
  liqmap backtest --heatmap m.npz --threshold 80000 --window 10 --release 3
  liqmap backtest --heatmap m.npz --sweep "threshold_quantile=0.8,0.9,0.95;window=0.25%,0.5%" \\
      --walk-forward 24h,6h --out-dir out/sweep
"""


def rule_options(f: Any) -> Any:
    """The rule's options, shared by `liqmap backtest` and `liqmap signal`."""
    for option in reversed(_RULE_OPTIONS):
        f = option(f)
    return f


_RULE_OPTIONS = [
    click.option("--window", "window_text", default=f"{P.DEFAULT_WINDOW_PCT:g}%",
              show_default=True, help="W above and below the price: a share of the price "
                                      "(0.5%) or USD (10)."),
    click.option("--threshold", "threshold_tokens", type=float, default=None,
              help="θ fixed: trigger when either window sum exceeds it (tokens). Default: the "
                   "trailing quantile below."),
    click.option("--threshold-quantile", type=Number(low=0, low_open=True, high=1), default=None,
              help=f"θ = this quantile (0-1] of the trailing max(above, below) [default "
                   f"{P.DEFAULT_THRESHOLD_QUANTILE:g}]."),
    click.option("--lookback", "lookback_min", type=POSITIVE_COUNT, default=P.DEFAULT_LOOKBACK_MIN,
              show_default=True, help="Minutes of history of the quantile threshold."),
    click.option("--confirm", type=POSITIVE_COUNT, default=P.DEFAULT_CONFIRM, show_default=True,
              help="Trigger minutes in a row to switch the boost on."),
    click.option("--release", type=POSITIVE_COUNT, default=P.DEFAULT_RELEASE, show_default=True,
              help="Quiet minutes in a row to switch it off."),
    click.option("--reversal/--no-reversal", default=False, show_default=True,
              help="While cooling down, an opposite trigger flips the direction."),
    click.option("--boost", type=float, default=P.DEFAULT_BOOST, show_default=True,
              help="Ratio added to the short (+1) or taken from it (−1) while on."),
    click.option("--fee-bps", type=Number(low=0), default=P.DEFAULT_FEE_BPS, show_default=True,
              help=f"Fee on each change of the boost, bps ({P.HEDGE_VENUE})."),
    click.option("--slippage-bps", type=Number(low=0), default=P.DEFAULT_SLIPPAGE_BPS,
                 show_default=True,
              help="Slippage on each change of the boost, bps."),
    click.option("--carry-apr", type=float, default=P.DEFAULT_CARRY_APR, show_default=True,
              help="Carrying cost of the short (funding/borrow), fraction per year of its "
                   "notional paid by the short; negative if it earns."),
]


@click.command("backtest", epilog=_EPILOG)
@click.option("--heatmap", "heatmap_path", type=PathParam("file", "read"),
              help="Liquidation matrix npz in the old tool's format (default: the store).")
@data_dir_option
@market_option
@window_options
@click.option("--bin", "bin_usd", type=USD, default=None,
              help="Price bin width (USD) of the matrix built from the store (default: SOL "
                   "0.1, ETH 2, BTC 50).")
@click.option("--hedge-log", "hedge_log_path", type=PathParam("file", "read"),
              help="Per-minute CSV: timestamp, price, position (the short, written negative "
                   "or positive), current_ratio, target_ratio (or the desk export's names).")
@click.option("--tz", type=TimeZone(), default="UTC", show_default=True,
              help="Zone of naive hedge-log timestamps, e.g. Asia/Hong_Kong.")
@click.option("--target", "target_ratio", type=float, default=P.DEFAULT_TARGET_RATIO,
              show_default=True, help="Without a hedge log: share of the exposure shorted.")
@click.option("--exposure", "exposure_tokens", type=float, default=P.DEFAULT_EXPOSURE_TOKENS,
              show_default=True, help="Without a hedge log: tokens of the asset held long and "
                                      "hedged by a short (1 = results per token).")
@click.option("--jlp-amount", type=float, default=None, metavar="JLP",
              help="Without a hedge log: JLP tokens held; exposure = JLP / JLP supply × the "
                   "pool's net delta at each minute, from the store.")
@rule_options
@click.option("--carry-csv", type=PathParam("file", "read"),
              help="Per-hour carry: timestamp and carry_apr, or funding_rate (per hour, "
                   "positive when longs pay); replaces --carry-apr.")
@click.option("--legacy-formulas", is_flag=True,
              help="The old script's numbers: window sums / price, its boosted loss, no gap "
                   "freeze.")
@click.option("--sweep", "sweep_spec", metavar="SPEC",
              help='Grid, e.g. "threshold_quantile=0.8,0.9;window=0.25%,0.5%;boost=0.25,0.5".')
@click.option("--objective", type=click.Choice(list(P.OBJECTIVES)), default=P.DEFAULT_OBJECTIVE,
              show_default=True, metavar="METRIC",
              help=f"Sweep ranking metric: {', '.join(P.OBJECTIVES)}.")
@click.option("--sweep-axes", metavar="A,B",
              help="Swept parameters on the axes of sweep.png (default: the first two varied).")
@click.option("--train-frac", type=Number(low=0, high=1, low_open=True, high_open=True),
              default=None,
              help="Rank sweep sets on this first fraction of the time; report the rest.")
@click.option("--walk-forward", metavar="TRAIN,TEST",
              help="Rolling out-of-sample test of the sweep: train and test windows, e.g. "
                   "24h,6h (or minutes: 1440,360).")
@click.option("--out-dir", type=PathParam("dir", "write"), default=P.DEFAULT_OUT_DIR,
              show_default=True, help="Directory for minutes.csv, toggles.csv, summary.json, "
                                      "PNGs (created).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG pictures.")
@click.option("--source", "data_source", type=click.Choice(["auto", "collected", "legacy"]),
              default="auto", show_default=True,
              help="With --data-dir: collected snapshots, rows imported with import-legacy, or "
              "auto (legacy rows at the minutes without a snapshot).")
@click.pass_context
def backtest_cmd(ctx: click.Context, **opts: Any) -> None:
    """Backtest the liquidation-pressure boost of a short hedge against the plain hedge.

    The hedge is a short of the exposure. When liquidations within --window of the price
    exceed θ, the short is increased (cluster below) or reduced (above) by --boost for a
    while; P&L after fees, slippage and carry is compared with the plain hedge and with the
    boost always on.
    """
    from liqmap.backtest import api, report

    rule = _rule_keywords(opts)
    grid_given = opts["sweep_spec"] is not None
    if not grid_given and (opts["train_frac"] is not None or opts["sweep_axes"]
                           or opts["walk_forward"]):
        raise InputError("--train-frac, --walk-forward and --sweep-axes work with --sweep; add "
                         "a --sweep spec")
    api.rule_params(**rule)  # bad values fail before any data is read
    grid = api.parse_sweep(opts["sweep_spec"]) if grid_given else None
    axes = report.check_sweep_axes(opts["sweep_axes"], grid) if grid else None
    walk = parse_walk_forward(opts["walk_forward"]) if opts["walk_forward"] else None
    inputs = api.load_inputs(**_input_keywords(ctx, opts))
    table = None
    if grid is not None:
        with _progress(math.prod(len(v) for v in grid.values())) as bar:
            table = api.sweep(inputs, grid=opts["sweep_spec"], objective=opts["objective"],
                              train_frac=opts["train_frac"], walk_forward=walk,
                              progress=bar.update, **rule)
        rule = {**table.attrs["best_params"]}
    bt = api.backtest(inputs, **rule)
    summary = bt.summary_dict
    if table is not None:
        summary = _with_sweep(bt, table, inputs)
    files = report.render_outputs(bt.result, summary, plots=not opts["no_plots"],
                                  sweep=_sweep_result(bt, table), sweep_axes=axes,
                                  baselines=bt.baselines)
    report.write_outputs(opts["out_dir"], files)
    click.echo(report.format_summary(summary))
    click.echo(f"\nwrote {', '.join(files)} to {opts['out_dir']}")


def _rule_keywords(opts: dict[str, Any]) -> dict[str, Any]:
    from liqmap.backtest.api import parse_window

    return {"threshold": opts["threshold_tokens"],
            "threshold_quantile": opts["threshold_quantile"], "lookback": opts["lookback_min"],
            "confirm": opts["confirm"], "release": opts["release"],
            "reversal": opts["reversal"], "boost": opts["boost"], "fee_bps": opts["fee_bps"],
            "slippage_bps": opts["slippage_bps"], "carry_apr": opts["carry_apr"],
            "legacy_formulas": opts["legacy_formulas"], **parse_window(opts["window_text"])}


def _input_keywords(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    if opts["heatmap_path"] and opts["data_dir"] and opts["jlp_amount"] is None:
        raise InputError("--data-dir is unused with --heatmap (the matrix comes from the npz); "
                         "drop one of them")
    needs_store = not opts["heatmap_path"] or opts["jlp_amount"] is not None
    data_dir = open_store_dir(ctx, opts["data_dir"], must_exist=needs_store)
    return {"data": opts["heatmap_path"] or data_dir, "hedge_log": opts["hedge_log_path"],
            "market": opts["market"], "t_start": opts["t_start"], "t_end": opts["t_end"],
            "bin_usd": opts["bin_usd"], "tz": opts["tz"], "target_ratio": opts["target_ratio"],
            "exposure": opts["exposure_tokens"], "jlp_amount": opts["jlp_amount"],
            "carry_csv": opts["carry_csv"], "data_dir": data_dir,
            "data_source": opts["data_source"]}


def parse_walk_forward(text: str) -> tuple[int, int]:
    """`--walk-forward TRAIN,TEST`, each a duration (`timeutil.duration_minutes`: minutes, or
    with min, h, d or w), e.g. "24h,6h".

    >>> parse_walk_forward("24h,6h"), parse_walk_forward("1440,360"), parse_walk_forward("1w,1d")
    ((1440, 360), (1440, 360), (10080, 1440))
    """
    from liqmap.timeutil import duration_minutes  # pandas: not for --help

    parts = [duration_minutes(p) for p in text.split(",")]
    if len(parts) != 2 or None in parts:
        raise InputError(f"--walk-forward {text!r} is not TRAIN,TEST such as 24h,6h or "
                         "1440,360 (minutes)")
    train, test = (int(p) for p in parts if p is not None)
    return train, test


def _with_sweep(bt: Any, table: Any, inputs: Any) -> dict[str, Any]:
    """The best run's summary with the sweep (and walk-forward) outcome added."""
    from liqmap.backtest.report import build_summary

    return build_summary(bt.result, market=inputs.market, source=inputs.source,
                         sweep=_sweep_result(bt, table), baselines=bt.baselines,
                         walk_forward=table.attrs.get("walk_forward"), notes=inputs.notes)


def _sweep_result(bt: Any, table: Any) -> Any:
    if table is None:
        return None
    from liqmap.backtest.sweep import SweepResult

    a = table.attrs
    return SweepResult(table=table, grid=a["grid"], objective=a["objective"], best=bt.params,
                       best_result=bt.result, split_index=a["split_index"],
                       in_sample=a["in_sample"], out_of_sample=a["out_of_sample"])


def _progress(total: int) -> Any:
    """A tqdm bar on stderr (a context manager) for sweeps of PROGRESS_MIN_SETS sets or more."""
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="set", desc="sweep",
                disable=total < PROGRESS_MIN_SETS, leave=False)
