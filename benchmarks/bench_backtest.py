"""Speed of the backtest on the real 72-hour matrix, against a plain per-minute Python loop.

    .venv/bin/python benchmarks/bench_backtest.py [--baseline-sets 20] [--repeat 20]

Targets (issue "Speed"): one run under 0.2 s; a 1,000-set sweep under 5 s and at least 50x
faster than the plain loop. The loop is timed on a sample of the sweep's sets and scaled to
all of them; its results are checked against the library's on the same sets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from liqmap.backtest import report
from liqmap.backtest.align import Coverage, MinuteInputs, align_hedge_log
from liqmap.backtest.engine import run_backtest
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.backtest.params import BacktestParams
from liqmap.backtest.stats import compute_stats
from liqmap.backtest.sweep import grid_params, parse_sweep, run_sweep
from liqmap.matrix import LiqMatrix, load_npz

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIQMAP_SHARED", ROOT.parent / "shared"))
MATRIX = SHARED / "data" / "liq_matrix_72h_1m.npz"
SWEEP = ("threshold=40000:130000:10000;window=5,10,15,20,25;release=1,2,3,5,8;confirm=1,2;"
         "boost=0.25,0.5")
BASE = BacktestParams(threshold_tokens=80_000.0, window_usd=10.0, reversal=True, fee_bps=2.0,
                      slippage_bps=3.0)
SIGNAL_TARGET_S = 0.05
WEEK_MIN = 7 * 24 * 60
RUN_TARGET_S = 0.2
SWEEP_TARGET_S = 5.0
SWEEP_TARGET_RATIO = 50.0


def drifting_hedge(matrix: LiqMatrix) -> MinuteInputs:
    """One minute per matrix column: its price, a drifting exposure and ratios."""
    i = np.arange(matrix.n_columns)
    target = 0.9 + 0.1 * np.sin(i / 400)
    current = target + 0.05 * np.sin(i / 37)
    return MinuteInputs(
        ts_ns=matrix.t_edges_ns[:-1].copy(), column=i, price_usd=matrix.spot_usd.copy(),
        position_tokens=(50_000 + 5_000 * np.sin(i / 700)) * current, current_ratio=current,
        target_ratio=target, gap=matrix.gap_mask.copy(),
        coverage=Coverage("", "", matrix.n_columns, int(matrix.gap_mask.sum())))


def plain_loop(matrix: LiqMatrix, m: MinuteInputs, p: BacktestParams) -> tuple[list[int], float]:
    """The rule and accounting written minute by minute, window sums by masks (no prefix sums,
    no numba). Returns the directions and the final cumulative net boosted − raw P&L."""
    lower_edges = matrix.y_edges_usd[:-1]
    window_usd, threshold_tokens = p.window_usd, p.threshold_tokens
    assert window_usd is not None and threshold_tokens is not None, "a resolved rule"
    on, direction, confirm, release = False, 0, 0, 0
    directions: list[int] = []
    net_minus_raw, prev_overlay = 0.0, 0.0
    for t in range(m.n):
        price, col = float(m.price_usd[t]), int(m.column[t])
        if not m.gap[t]:
            column = matrix.z[:, col]
            above = float(column[(lower_edges > price) & (lower_edges <= price + window_usd)].sum())
            below = float(column[(lower_edges >= price - window_usd) & (lower_edges < price)].sum())
            trigger = above > threshold_tokens or below > threshold_tokens
            new = 1 if below > above else -1
            cooling = release > 0
            if trigger:
                confirm, release = confirm + 1, 0
                if p.reversal and on and cooling and new != direction:
                    direction, confirm = new, 1
            else:
                confirm, release = 0, release + 1
            if not on and confirm >= p.confirm:
                on, direction = True, new
            elif on and release >= p.release:
                on, direction = False, 0
        directions.append(direction)
        overlay = float(m.position_tokens[t] / m.current_ratio[t]) * direction * p.boost
        if t > 0:
            net_minus_raw += prev_overlay * (price - float(m.price_usd[t - 1]))
        net_minus_raw -= abs(overlay - prev_overlay) * price * p.cost_bps / 10_000
        prev_overlay = overlay
    return directions, net_minus_raw


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `repeat` calls, seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def bench_run(matrix: LiqMatrix, minutes: MinuteInputs, repeat: int) -> None:
    start = time.perf_counter()
    result = run_backtest(matrix, minutes, BASE)
    first = time.perf_counter() - start
    lib = timed(lambda: run_backtest(matrix, minutes, BASE), repeat)
    loop = timed(lambda: plain_loop(matrix, minutes, BASE), max(1, repeat // 10))
    directions, net_minus_raw = plain_loop(matrix, minutes, BASE)
    assert directions == result.ledger.direction.tolist()
    stats = compute_stats(result.ledger)
    assert np.isclose(net_minus_raw, stats["net_improvement_usd"], rtol=1e-9, atol=1e-6)
    print(f"one run ({minutes.n:,} minutes): library {lib * 1e3:.1f} ms (first call incl. "
          f"numba cache load {first * 1e3:.0f} ms) | plain loop {loop * 1e3:.0f} ms | "
          f"{loop / lib:.0f}x | target < {RUN_TARGET_S} s: {verdict(lib < RUN_TARGET_S)}")


def bench_run_with_io(minutes: MinuteInputs, repeat: int) -> None:
    """npz load, hedge-log CSV parse and matching, the run, and the CSV/JSON outputs built."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "hedge.csv"
        pd.DataFrame({"timestamp": minutes.timestamps().strftime("%Y-%m-%d %H:%M:%S"),
                      "price": minutes.price_usd, "position": minutes.position_tokens,
                      "current_ratio": minutes.current_ratio,
                      "target_ratio": minutes.target_ratio}).to_csv(csv, index=False)

        def once() -> None:
            matrix = load_npz(MATRIX)
            aligned = align_hedge_log(matrix, read_hedge_log(csv))
            result = run_backtest(matrix, aligned, BASE)
            summary = report.build_summary(result, market="SOL", source=str(MATRIX))
            report.render_outputs(result, summary, plots=False)

        total = timed(once, max(1, repeat // 4))
    print(f"one run with I/O (npz load, CSV parse, CSV/JSON outputs, no PNGs): "
          f"{total * 1e3:.0f} ms")


def bench_sweep(matrix: LiqMatrix, minutes: MinuteInputs, baseline_sets: int) -> None:
    grid = parse_sweep(SWEEP)
    sets = grid_params(BASE, grid)
    start = time.perf_counter()
    result = run_sweep(matrix, minutes, BASE, grid)
    lib = time.perf_counter() - start
    rng = np.random.default_rng(0)
    sample = rng.choice(len(sets), size=min(baseline_sets, len(sets)), replace=False)
    start = time.perf_counter()
    loops = [plain_loop(matrix, minutes, sets[i]) for i in sample]
    loop = (time.perf_counter() - start) / len(sample) * len(sets)
    table = result.table.set_index(list(grid)).sort_index()
    for i, (_, net_minus_raw) in zip(sample, loops, strict=True):
        key = tuple(float(getattr(sets[i], f)) for f in (
            "threshold_tokens", "window_usd", "release", "confirm", "boost"))
        expected = float(np.asarray(table.loc[key, "net_improvement_usd"]))
        assert np.isclose(net_minus_raw, expected, rtol=1e-9, atol=1e-6), (key, expected)
    ratio = loop / lib
    print(f"sweep of {len(sets):,} sets: library {lib:.2f} s | plain loop {loop:.0f} s "
          f"({len(sample)} sets timed, scaled) | {ratio:.0f}x | target < {SWEEP_TARGET_S} s: "
          f"{verdict(lib < SWEEP_TARGET_S)}, >= {SWEEP_TARGET_RATIO:.0f}x: "
          f"{verdict(ratio >= SWEEP_TARGET_RATIO)}")


def bench_signal(matrix: LiqMatrix, repeat: int) -> None:
    """The live signal's evaluation of one new minute with a 7-day quantile lookback: window
    sums, θ from the 10,080 previous values, one step of the rule kernel (the same code as
    the backtest), against a backtest re-run over the whole week for every minute."""
    from liqmap.backtest.live import LiveRule, SignalConfig

    params = replace(BacktestParams(), lookback_min=WEEK_MIN)
    config = SignalConfig(market="SOL", params=params, bin_usd=matrix.bin_width_usd)
    live = LiveRule(config)
    rng = np.random.default_rng(0)
    live.history = rng.uniform(1e3, 1e5, WEEK_MIN)
    col = int(np.flatnonzero(~matrix.gap_mask)[100])
    minute = replace(matrix, z=matrix.z[:, col:col + 1], t_edges_ns=matrix.t_edges_ns[col:col + 2],
                     spot_usd=matrix.spot_usd[col:col + 1], gap_mask=matrix.gap_mask[col:col + 1],
                     extra={})
    live.advance(minute)  # compile / warm

    def step() -> None:
        live.last_ns = None
        live.advance(minute)

    lib = timed(step, repeat)
    week = np.concatenate([live.history, live.history[:1]])
    frozen = np.zeros(week.size, bool)
    from liqmap.backtest.rule import trailing_quantile

    rerun = timed(lambda: trailing_quantile(week, frozen, 0.9, WEEK_MIN - 1), max(1, repeat // 4))
    print(f"live signal, one minute with a 7-day lookback: {lib * 1e3:.1f} ms | quantile "
          f"re-run over the week alone {rerun * 1e3:.1f} ms | {rerun / lib:.1f}x | target < "
          f"{SIGNAL_TARGET_S * 1e3:.0f} ms: {verdict(lib < SIGNAL_TARGET_S)}")


def bench_signal_poll(repeat: int) -> None:
    """`liqmap signal`'s work per new minute on a store of 3,000 positions a minute: find the
    new snapshot, bin it, window sums, θ over a 7-day history, the rule step, print."""
    import sys

    from liqmap.backtest.api import rule_params
    from liqmap.backtest.live import SignalConfig, SignalRunner
    from liqmap.store import Store

    sys.path.insert(0, str(ROOT))
    from tests.factories import positions_table, state_table

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        t0 = pd.Timestamp("2026-01-05 00:00", tz="UTC")

        def write(i: int) -> None:
            ts, price = t0 + pd.Timedelta(minutes=i), 150 + np.sin(i / 9)
            store.write_snapshot("SOL", positions_table(ts, 3_000, seed=i, price_usd=price),
                                 state_table(ts, 3_000, price_usd=price))

        for i in range(30):
            write(i)
        config = SignalConfig("SOL", rule_params(lookback=WEEK_MIN), 0.1)
        runner = SignalRunner(tmp, config, [], echo=lambda line: None)
        runner.start()
        runner.rule.history = np.random.default_rng(0).uniform(1e3, 1e5, WEEK_MIN)
        times = []
        for i in range(30, 30 + repeat):
            write(i)
            start = time.perf_counter()
            assert len(runner.poll()) == 1
            times.append(time.perf_counter() - start)
    lib = statistics.median(times)
    print(f"live signal per new stored minute (3,000 positions, store read + bin + rule, 7-day "
          f"lookback): {lib * 1e3:.1f} ms | target < {SIGNAL_TARGET_S * 1e3:.0f} ms: "
          f"{verdict(lib < SIGNAL_TARGET_S)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-sets", type=int, default=20,
                        help="sweep sets the plain loop runs (scaled to all)")
    parser.add_argument("--repeat", type=int, default=20, help="timed single runs")
    args = parser.parse_args()
    matrix = load_npz(MATRIX)
    minutes = drifting_hedge(matrix)
    print(f"real matrix {matrix.z.shape[0]} bins x {matrix.n_columns:,} minutes, "
          f"{os.cpu_count()} CPUs")
    bench_run(matrix, minutes, args.repeat)
    bench_run_with_io(minutes, args.repeat)
    bench_sweep(matrix, replace(minutes), args.baseline_sets)
    bench_signal(matrix, args.repeat)
    bench_signal_poll(args.repeat)


if __name__ == "__main__":
    main()
