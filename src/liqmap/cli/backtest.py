"""`liqmap backtest`: flags in, one library call per step, files and a table out."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # pandas, numba and the matrix load only when the command runs
    import pandas as pd

    from liqmap.backtest.align import MinuteInputs
    from liqmap.matrix import LiqMatrix

#: Read this much market_state before the first minute, so a stored exposure is known there.
EXPOSURE_LEAD_MIN = 60
PROGRESS_MIN_SETS = 100

_EPILOG = """\b
Examples:
  liqmap backtest --heatmap liq_matrix_72h_1m.npz --hedge-log desk.csv --tz Asia/Hong_Kong
  liqmap backtest --heatmap m.npz --threshold 80000 --release 3 --fee-bps 2 --slippage-bps 3
  liqmap backtest --heatmap m.npz --sweep "threshold=40000:120000:10000;window=5,10,20" \\
      --train-frac 0.5 --out-dir out/sweep
"""


@click.command("backtest", epilog=_EPILOG)
@click.option("--heatmap", "heatmap_path", type=PathParam("file", "read"),
              help="Liquidation matrix npz in the old tool's format (default: the store).")
@data_dir_option
@market_option
@window_options
@click.option("--bin", "bin_usd", type=USD, default=P.DEFAULT_BIN_USD, show_default=True,
              help="Price bin width (USD) of the matrix built from the store.")
@click.option("--hedge-log", "hedge_log_path", type=PathParam("file", "read"),
              help="Per-minute CSV: timestamp, price, position, current_ratio, target_ratio "
                   "(or the desk export's column names).")
@click.option("--tz", type=TimeZone(), default="UTC", show_default=True,
              help="Zone of naive hedge-log timestamps, e.g. Asia/Hong_Kong.")
@click.option("--target", "target_ratio", type=Number(low=0), default=P.DEFAULT_TARGET_RATIO,
              show_default=True, help="Hedge ratio without a hedge log.")
@click.option("--exposure", "exposure_tokens", type=Number(), default=P.DEFAULT_EXPOSURE_TOKENS,
              show_default=True, help="Tokens hedged without a hedge log (1 = per token).")
@click.option("--jlp-amount", "stored_exposure", is_flag=True,
              help="Without a hedge log: take the exposure from the store's JLP net delta "
                   "(tokens) at each minute.")
@click.option("--window", "window_usd", type=USD, default=P.DEFAULT_WINDOW_USD,
              show_default=True, help="W: USD above and below the price summed.")
@click.option("--threshold", "threshold_tokens", type=Number(low=0),
              default=P.DEFAULT_THRESHOLD_TOKENS, show_default=True,
              help="θ: trigger when either window sum exceeds it (tokens).")
@click.option("--threshold-quantile", type=Number(low=0, low_open=True, high=1), default=None,
              help="Trigger on this quantile (0-1] of the trailing max(above, below) instead.")
@click.option("--lookback", "lookback_min", type=POSITIVE_COUNT, default=P.DEFAULT_LOOKBACK_MIN,
              show_default=True, help="Minutes of history for --threshold-quantile.")
@click.option("--confirm", type=POSITIVE_COUNT, default=P.DEFAULT_CONFIRM, show_default=True,
              help="Trigger minutes in a row to switch the boost on.")
@click.option("--release", type=POSITIVE_COUNT, default=P.DEFAULT_RELEASE, show_default=True,
              help="Quiet minutes in a row to switch it off.")
@click.option("--reversal/--no-reversal", default=False, show_default=True,
              help="While cooling down, an opposite trigger flips the direction.")
@click.option("--boost", type=Number(low=0), default=P.DEFAULT_BOOST, show_default=True,
              help="Ratio added (+1) or removed (−1) while the boost is on.")
@click.option("--fee-bps", type=Number(low=0), default=0.0, show_default=True,
              help="Fee on each change of the boost overlay, bps of its USD value.")
@click.option("--slippage-bps", type=Number(low=0), default=0.0, show_default=True,
              help="Slippage on each change of the boost overlay, bps.")
@click.option("--legacy-formulas", is_flag=True,
              help="The old script's numbers: window sums / price, its boosted loss, no gap "
                   "freeze.")
@click.option("--sweep", "sweep_spec", metavar="SPEC",
              help='Grid, e.g. "threshold=40000:120000:10000;window=5,10;boost=0.25,0.5".')
@click.option("--objective", type=click.Choice(list(P.OBJECTIVES)), default=P.DEFAULT_OBJECTIVE,
              show_default=True, metavar="METRIC",
              help=f"Sweep ranking metric: {', '.join(P.OBJECTIVES)}.")
@click.option("--sweep-axes", metavar="A,B",
              help="Swept parameters on the axes of sweep.png (default: the first two varied).")
@click.option("--train-frac", type=Number(low=0, high=1, low_open=True, high_open=True),
              default=None,
              help="Rank sweep sets on this first fraction of the time; report the rest.")
@click.option("--out-dir", type=PathParam("dir", "write"), default=P.DEFAULT_OUT_DIR,
              show_default=True, help="Directory for minutes.csv, toggles.csv, summary.json, "
                                      "PNGs (created).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG pictures.")
@click.pass_context
def backtest_cmd(ctx: click.Context, **opts: Any) -> None:
    """Backtest the liquidation-pressure hedge boost against the plain hedge, after costs.

    When liquidation volume within --window USD of the price exceeds --threshold, the hedge
    ratio leans by --boost toward the cluster for a while; the P&L of both hedges is compared.
    """
    from liqmap.backtest import report
    from liqmap.backtest.engine import run_backtest
    from liqmap.backtest.sweep import parse_sweep, run_sweep

    params = _params(opts)
    grid = parse_sweep(opts["sweep_spec"]) if opts["sweep_spec"] else None
    if grid is None and (opts["train_frac"] is not None or opts["sweep_axes"]):
        raise InputError("--train-frac and --sweep-axes work with --sweep; add a --sweep spec")
    axes = report.check_sweep_axes(opts["sweep_axes"], grid) if grid else None
    t_start, t_end = _window(opts)
    matrix, source = _matrix(ctx, opts, t_start, t_end)
    minutes = _minutes(ctx, opts, matrix, t_start, t_end)
    sweep = None
    if grid is not None:
        with _progress(math.prod(len(v) for v in grid.values())) as bar:
            sweep = run_sweep(matrix, minutes, params, grid, objective=opts["objective"],
                              train_frac=opts["train_frac"], progress=bar.update)
        result = sweep.best_result
    else:
        result = run_backtest(matrix, minutes, params)
    summary = report.build_summary(result, market=opts["market"], source=source, sweep=sweep)
    files = report.render_outputs(result, summary, plots=not opts["no_plots"], sweep=sweep,
                                  sweep_axes=axes)
    report.write_outputs(opts["out_dir"], files)
    click.echo(report.format_summary(summary))
    click.echo(f"\nwrote {', '.join(files)} to {opts['out_dir']}")


def _params(opts: dict[str, Any]) -> P.BacktestParams:
    return P.validate_params(P.BacktestParams(
        window_usd=opts["window_usd"], threshold_tokens=opts["threshold_tokens"],
        threshold_quantile=opts["threshold_quantile"], lookback_min=opts["lookback_min"],
        confirm=opts["confirm"], release=opts["release"], reversal=opts["reversal"],
        boost=opts["boost"], fee_bps=opts["fee_bps"], slippage_bps=opts["slippage_bps"],
        legacy_formulas=opts["legacy_formulas"]))


def _window(opts: dict[str, Any]) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    from liqmap.timeutil import parse_time

    start = parse_time(opts["t_start"], what="--t-start") if opts["t_start"] else None
    end = parse_time(opts["t_end"], what="--t-end") if opts["t_end"] else None
    if start is not None and end is not None and end < start:
        raise InputError(f"--t-end {end} is before --t-start {start}; swap them")
    return start, end


def _data_dir(ctx: click.Context, opts: dict[str, Any]) -> str:
    return open_store_dir(ctx, opts["data_dir"])


def _matrix(ctx: click.Context, opts: dict[str, Any], t_start: pd.Timestamp | None,
            t_end: pd.Timestamp | None) -> tuple[LiqMatrix, str]:
    """The matrix from --heatmap, else built from the store; and a label of its source."""
    from liqmap.matrix import load_npz

    if opts["heatmap_path"]:
        if opts["data_dir"] and not opts["stored_exposure"]:
            raise InputError("--data-dir is unused with --heatmap (the matrix comes from the "
                             "npz); drop one of them")
        return load_npz(opts["heatmap_path"], market=opts["market"]), str(opts["heatmap_path"])
    data_dir = _data_dir(ctx, opts)
    build_matrix_from_store = getattr(_optional_module("liqmap.heatmap"),
                                      "build_matrix_from_store", None)
    if build_matrix_from_store is None:
        raise InputError("this build cannot make a matrix from the store yet "
                         "(liqmap.heatmap.build_matrix_from_store is missing); pass "
                         "--heatmap FILE.npz")
    matrix = build_matrix_from_store(data_dir, opts["market"], t_start, t_end, opts["bin_usd"],
                                     unit="tokens")
    if matrix.unit != "tokens":
        raise InputError(f"the store matrix is in {matrix.unit}, the rule needs tokens")
    return matrix, f"store {data_dir}"


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _minutes(ctx: click.Context, opts: dict[str, Any], matrix: LiqMatrix,
             t_start: pd.Timestamp | None, t_end: pd.Timestamp | None) -> MinuteInputs:
    from liqmap.backtest.align import align_hedge_log, hedge_from_matrix
    from liqmap.backtest.hedgelog import read_hedge_log

    if opts["hedge_log_path"]:
        if opts["stored_exposure"]:
            raise InputError("--jlp-amount replaces the hedge log's exposure; drop "
                             "--jlp-amount or --hedge-log")
        log = read_hedge_log(Path(opts["hedge_log_path"]), tz=opts["tz"])
        return align_hedge_log(matrix, log, t_start=t_start, t_end=t_end)
    exposure: float | pd.Series = opts["exposure_tokens"]
    if opts["stored_exposure"]:
        exposure = _stored_exposure(_data_dir(ctx, opts), opts["market"], matrix, t_start, t_end)
    return hedge_from_matrix(matrix, target_ratio=opts["target_ratio"], exposure_tokens=exposure,
                             t_start=t_start, t_end=t_end)


def _stored_exposure(data_dir: str, market: str, matrix: LiqMatrix,
                     t_start: pd.Timestamp | None, t_end: pd.Timestamp | None) -> pd.Series:
    """The pool's stored JLP net delta (tokens) by time, read from market_state."""
    import pandas as pd

    from liqmap.store import Store

    first = pd.Timestamp(int(matrix.t_edges_ns[0]), tz="UTC")
    start = max(t_start, first) if t_start is not None else first
    lead = pd.Timedelta(minutes=EXPOSURE_LEAD_MIN)
    table = Store(data_dir).read_market_state(market, start - lead, t_end,
                                              columns=["ts", "jlp_net_delta_tokens"])
    if table.num_rows == 0:
        raise InputError(f"the store {data_dir} has no {market} market_state rows for the "
                         "window, so no JLP delta; pass --exposure or collect first")
    frame = table.to_pandas()
    return pd.Series(frame["jlp_net_delta_tokens"].to_numpy(dtype=float),
                     index=pd.DatetimeIndex(frame["ts"]))


def _progress(total: int) -> Any:
    """A tqdm bar on stderr (a context manager) for sweeps of PROGRESS_MIN_SETS sets or more."""
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="set", desc="sweep",
                disable=total < PROGRESS_MIN_SETS, leave=False)
