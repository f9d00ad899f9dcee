"""The offline demo: a simulated market on a local Solana node, collected, drawn and backtested.

`run_demo` starts surfnet, simulates a few hours of a Jupiter Perps market minute by minute and,
in lockstep, runs the real collector against the node's JSON-RPC (the same code path as on
mainnet) into a fresh store; then it renders the heatmap (PNG and HTML), the liquidation levels
and a default backtest through the `liqmap` commands. No network is needed.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from liqmap import constants as C
from liqmap.collect.loop import Collector
from liqmap.config import Settings
from liqmap.errors import LiqmapError
from liqmap.sim import params as SP
from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.session import progress_bar
from liqmap.sim.surfnet import Surfnet, unavailable_reason
from liqmap.sim.truth import TruthLog
from liqmap.sim.writer import ChainWriter, publish_initial, publish_minute, start_time_s
from liqmap.store import Store

DEFAULT_HOURS = 3.0
#: The demo's default seed: any seed works; this one's 3 hours hold a sell-off through long
#: clusters (liquidation cascades) after a quiet start.
DEMO_SEED = 22
DEMO_MARKET = "SOL"
BACKTEST_BIN_USD = 0.5
#: While the demo serves its store, the market goes on: one simulated minute this often (s).
LIVE_SPEED_S = 3.0
#: the simulator's ground truth (its liquidations and trader closes), in the output directory
TRUTH_FILE = "ground_truth.csv"
Echo = Callable[[str], object]


@dataclass(frozen=True)
class DemoOutputs:
    """Where the demo wrote each output."""

    out_dir: Path
    store_dir: Path
    heatmap_png: Path
    heatmap_html: Path
    levels_png: Path
    backtest_dir: Path
    minutes: int
    liquidations: int
    seconds: float

    def lines(self) -> list[str]:
        """One line per output, for the terminal."""
        return [f"store (Parquet):     {self.store_dir}",
                f"heatmap PNG:         {self.heatmap_png}",
                f"heatmap HTML:        {self.heatmap_html}",
                f"liquidation levels:  {self.levels_png}",
                f"backtest:            {self.backtest_dir}",
                f"score:               {self.out_dir / 'score'}",
                f"ground truth (sim):  {self.out_dir / TRUTH_FILE}"]


def prepare_out_dir(out_dir: str | Path | None) -> Path:
    """A fresh temporary directory, or `out_dir` if it is new or empty (never overwritten)."""
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="liqmap-demo-"))
    path = check_out_dir(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_out_dir(out_dir: str | Path) -> Path:
    """`out_dir` as a Path, or a one-line LiqmapError if it exists and is not empty."""
    path = Path(out_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise LiqmapError(f"--out-dir {path} is not an empty directory; choose a new one or "
                          "remove it (the demo never overwrites)")
    return path


def check_node() -> None:
    """A one-line LiqmapError when the local Solana node cannot start here."""
    reason = unavailable_reason()
    if reason:
        raise LiqmapError(f"the demo needs the local Solana node: {reason}; run `npm ci` in the "
                          "liqmap project root")


def run_demo(out_dir: str | Path | None = None, *, hours: float = DEFAULT_HOURS,
             seed: int = DEMO_SEED, positions: dict[str, int] | None = None,
             markets: tuple[str, ...] = C.MARKETS, echo: Echo = print,
             progress: bool = True, serve: Callable[[DemoOutputs], object] | None = None,
             live_speed_s: float = LIVE_SPEED_S) -> DemoOutputs:
    """Simulate and collect `hours` of a market, then render and backtest it (see module doc).

    Args:
        out_dir: new or empty directory for every output (default: a fresh temp directory).
        hours: simulated hours collected (one snapshot per simulated minute).
        seed: the simulation's seed.
        positions: open positions per market (default `params.DEFAULT_POSITIONS`).
        markets: markets simulated and collected; the pictures are of SOL.
        echo: where step lines go; progress bars go to stderr.
        serve: called with the outputs once they are written (e.g. a web server that runs until
            Ctrl-C); meanwhile the simulated market goes on, one minute per `live_speed_s`
            seconds, collected into the same store. The node ends when `serve` returns.
    """
    if hours <= 0:
        raise LiqmapError(f"--hours must be > 0, got {hours:g}")
    if DEMO_MARKET not in markets:
        raise LiqmapError(f"the demo draws {DEMO_MARKET}; include it in the markets")
    check_node()
    started = time.monotonic()
    out = prepare_out_dir(out_dir)
    store_dir = out / "store"
    echo(f"liqmap demo: {hours:g} simulated hours of {', '.join(markets)} into {out}")
    with Surfnet() as node:
        echo(f"local Solana node (surfnet) at {node.rpc_url}")
        config = SimConfig(markets=markets, seed=seed, positions=positions)
        sim = MarketSim(config, start_time_s(node))
        settings = Settings(rpc_urls=(node.rpc_url,), data_dir=str(store_dir),
                            markets=config.markets, clock="chain", max_retries=2)
        collector = Collector(settings, Store(str(store_dir)))
        try:
            writer = ChainWriter(node)
            minutes, liquidations = _simulate_and_collect(
                sim, writer, collector, store_dir, round(hours * 60), echo, progress,
                truth_path=out / TRUTH_FILE)
            outputs = DemoOutputs(out, store_dir, *_render(out, store_dir, echo),
                                  minutes=minutes, liquidations=liquidations,
                                  seconds=time.monotonic() - started)
            if serve is not None:
                _serve_live(sim, writer, collector, outputs, serve, live_speed_s)
        finally:
            collector.client.transport.close()
    return outputs


def _serve_live(sim: MarketSim, writer: ChainWriter, collector: Collector,
                outputs: DemoOutputs, serve: Callable[[DemoOutputs], object],
                speed_s: float) -> None:
    """`serve(outputs)` while a thread goes on simulating and collecting, one minute per
    `speed_s` seconds; the thread is stopped when `serve` returns or raises."""
    stop = threading.Event()

    def live() -> None:
        with _quiet_collector():
            while not stop.wait(speed_s):
                report = publish_minute(sim, writer)
                if report is None:
                    return
                try:
                    _collect(collector, report.chain_time_s)
                except LiqmapError as exc:  # the page shows the data as stale
                    logging.getLogger("liqmap.demo").warning("live demo stopped: %s", exc)
                    return

    thread = threading.Thread(target=live, name="liqmap-demo-market", daemon=True)
    thread.start()
    try:
        serve(outputs)
    finally:
        stop.set()
        thread.join(timeout=30)


def _simulate_and_collect(sim: MarketSim, writer: ChainWriter, collector: Collector,
                          store_dir: Path, n_minutes: int, echo: Echo, progress: bool,
                          truth_path: Path | None = None) -> tuple[int, int]:
    """Warm up, write minute 0, then per minute: simulate, write, move the clock, collect.
    The simulator's liquidations and closes go to `truth_path` (CSV, `sim.truth`)."""
    config = sim.config
    truth = TruthLog(truth_path, sim) if truth_path is not None else None
    with progress_bar(config.warmup_min, "warm-up (simulated history)", "min", progress) as bar:
        sim.warm_up(bar.update)
    total = sum(b.n for b in sim.books.values()) + 2 * len(SP.POOL_ASSETS) + 1
    with progress_bar(total, "writing accounts to the node", "acct", progress) as bar:
        publish_initial(sim, writer, bar.update)
    bar = progress_bar(n_minutes + 1, "simulate + collect", "min", progress)
    with _quiet_collector(), bar:
        liquidations = _lockstep(sim, writer, collector, n_minutes, bar, truth)
    echo(f"collected {bar.n} minutes ({liquidations} liquidations) into {store_dir}")
    return bar.n, liquidations


def _lockstep(sim: MarketSim, writer: ChainWriter, collector: Collector, n_minutes: int,
              bar: tqdm, truth: TruthLog | None = None) -> int:
    """Collect minute 0, then simulate and collect `n_minutes` more; returns liquidations."""
    _collect(collector, sim.chain_time(0))
    bar.update(1)
    liquidations = 0
    for _ in range(n_minutes):
        report = publish_minute(sim, writer)
        if report is None:
            break
        if truth is not None:
            truth.add(report)
        _collect(collector, report.chain_time_s)
        liquidations += len(report.liquidations)
        bar.set_postfix_str(_postfix(report.prices_usd6, liquidations), refresh=False)
        bar.update(1)
    return liquidations


def _collect(collector: Collector, chain_time_s: int) -> None:
    results = collector.collect_once(collector.boundary(chain_time_s))
    failed = [r for r in results if r.error]
    if failed:
        raise LiqmapError("the collector failed on the simulated chain: "
                          + "; ".join(f"{r.market}: {r.error}" for r in failed))


def _postfix(prices_usd6: dict[str, int], liquidations: int) -> str:
    price = prices_usd6.get(DEMO_MARKET, 0) / C.USD_PRECISION
    return f"{DEMO_MARKET} ${price:,.2f}, {liquidations} liquidations"


def _render(out: Path, store_dir: Path, echo: Echo) -> tuple[Path, Path, Path, Path]:
    """Heatmap PNG + HTML, levels PNG at the last minute and a default backtest, through the
    `liqmap` commands (the same code a user runs)."""
    last = Store(str(store_dir)).snapshot_times(DEMO_MARKET)[-1]
    png, html = out / "heatmap_SOL.png", out / "heatmap_SOL.html"
    levels, backtest = out / "levels_SOL.png", out / "backtest"
    data = ["--data-dir", str(store_dir), "--market", DEMO_MARKET]
    steps = [
        ("heatmap PNG", ["heatmap", *data, "--out", str(png)]),
        ("heatmap HTML", ["heatmap", *data, "--out", str(html)]),
        ("liquidation levels", ["levels", *data, "--at", _iso(last), "--out", str(levels)]),
        ("backtest", ["backtest", *data, "--bin", str(BACKTEST_BIN_USD),
                      "--out-dir", str(backtest)]),
        ("score against the realized liquidations",
         ["score", *data, "--out-dir", str(out / "score")]),
    ]
    for label, args in steps:
        echo(f"--- {label}: liqmap {' '.join(args)}")
        _run_command(args)
    return png, html, levels, backtest


def _run_command(args: list[str]) -> None:
    from liqmap.cli import cli

    cli.main(args=args, prog_name="liqmap", standalone_mode=False)


def _iso(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@contextmanager
def _quiet_collector() -> Iterator[None]:
    """The collector logs a line per market-minute; the demo shows a progress bar instead."""
    logger = logging.getLogger("liqmap.collect")
    level = logger.level
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


