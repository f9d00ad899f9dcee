"""The offline demo: a simulated market on a local Solana node, collected, drawn and backtested.

`run_demo` starts surfnet, simulates a few hours of a Jupiter Perps market minute by minute and,
in lockstep, runs the real collector against the node's JSON-RPC (the same code path as on
mainnet) into a fresh store; then it renders the heatmap (PNG and HTML), the liquidation levels
and a default backtest through the `liqmap` commands. No network is needed.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from liqmap import constants as C
from liqmap.collect.loop import Collector
from liqmap.config import Settings
from liqmap.errors import LiqmapError
from liqmap.sim import params as SP
from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.session import progress_bar, until
from liqmap.sim.surfnet import Surfnet, unavailable_reason
from liqmap.sim.truth import TruthLog
from liqmap.sim.writer import ChainWriter, publish_initial, publish_minute, start_time_s
from liqmap.store import Store
from liqmap.timeutil import iso_utc

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
#: Written first into the output directory: a re-run may replace what a demo wrote there.
MARKER_FILE = ".liqmap-demo"
MARKER_TEXT = ("liqmap demo outputs: `liqmap demo --out-dir` on this directory replaces the "
               "files it wrote (and nothing else)\n")
#: The old tool's CSV log of the demo's SOL store, in the folder layout `--folder` reads.
LEGACY_DIR = "data-sol_snapshots"
#: The default heatmap as an npz matrix (`heatmap --npz-out`), for `backtest --heatmap`.
NPZ_FILE = "liq_matrix_SOL.npz"
#: A sample desk hedge log over the demo's minutes, for `backtest --hedge-log`.
DESK_FILE = "desk.csv"
#: The desk's time zone: its log has local wall-clock times (`backtest --tz`).
DESK_TZ = "Asia/Hong_Kong"
#: Everything the demo writes in its output directory (a re-run removes exactly these).
DEMO_OUTPUTS = ("store", "heatmap_SOL.png", "heatmap_SOL.html", "levels_SOL.png", "backtest",
                "score", TRUTH_FILE, LEGACY_DIR, NPZ_FILE, DESK_FILE)
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
                f"ground truth (sim):  {self.out_dir / TRUTH_FILE}",
                f"old tool's CSV log:  {self.out_dir / LEGACY_DIR / C.LEGACY_CSV_NAME}",
                f"heatmap npz:         {self.out_dir / NPZ_FILE}",
                f"desk hedge log:      {self.out_dir / DESK_FILE} ({DESK_TZ} times)"]


def prepare_out_dir(out_dir: str | Path | None) -> Path:
    """A fresh temporary directory, or `out_dir` if it is new, empty or a previous demo's
    (whose outputs, and only those, are removed). The marker file is written first."""
    if out_dir is None:
        path = Path(tempfile.mkdtemp(prefix="liqmap-demo-"))
    else:
        path = check_out_dir(out_dir)
        path.mkdir(parents=True, exist_ok=True)
        if (path / MARKER_FILE).is_file():
            _remove_previous(path)
    (path / MARKER_FILE).write_text(MARKER_TEXT)
    return path


def check_out_dir(out_dir: str | Path) -> Path:
    """`out_dir` as a Path, or a one-line LiqmapError if it exists, is not empty and holds no
    previous demo (no marker file)."""
    path = Path(out_dir)
    if path.exists() and (not path.is_dir() or (any(path.iterdir())
                                                and not (path / MARKER_FILE).is_file())):
        raise LiqmapError(f"--out-dir {path} is not an empty directory; choose a new one or "
                          "remove it (the demo never overwrites)")
    return path


def _remove_previous(path: Path) -> None:
    """Remove a previous demo's outputs from `path`: the names the demo writes, nothing else."""
    for name in DEMO_OUTPUTS:
        target = path / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)


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
             live_speed_s: float = LIVE_SPEED_S,
             interrupted: threading.Event | None = None) -> DemoOutputs:
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
        interrupted: once set (by a SIGTERM/Ctrl-C handler), the demo raises KeyboardInterrupt
            at its next step (a minute, 100 accounts, a rendered output). The handler's own
            KeyboardInterrupt can be lost: Python drops an exception raised while a finalizer
            runs, and the demo would then run to its end.
    """
    if hours <= 0:
        raise LiqmapError(f"--hours must be > 0, got {hours:g}")
    if DEMO_MARKET not in markets:
        raise LiqmapError(f"the demo draws {DEMO_MARKET}; include it in the markets")
    check_node()
    interrupted = interrupted or threading.Event()
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
                truth_path=out / TRUTH_FILE, interrupted=interrupted)
            outputs = DemoOutputs(out, store_dir, *_render(out, store_dir, echo, interrupted),
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
                          truth_path: Path | None = None,
                          interrupted: threading.Event | None = None) -> tuple[int, int]:
    """Warm up, write minute 0, then per minute: simulate, write, move the clock, collect.
    The simulator's liquidations and closes go to `truth_path` (CSV, `sim.truth`)."""
    config = sim.config
    interrupted = interrupted or threading.Event()
    truth = TruthLog(truth_path, sim) if truth_path is not None else None
    with progress_bar(config.warmup_min, "warm-up (simulated history)", "min", progress) as bar:
        sim.warm_up(until(interrupted, bar.update, KeyboardInterrupt))
    total = sum(b.n for b in sim.books.values()) + 2 * len(SP.POOL_ASSETS) + 1
    with progress_bar(total, "writing accounts to the node", "acct", progress) as bar:
        publish_initial(sim, writer, until(interrupted, bar.update, KeyboardInterrupt))
    bar = progress_bar(n_minutes + 1, "simulate + collect", "min", progress)
    with _quiet_collector(), bar:
        liquidations = _lockstep(sim, writer, collector, n_minutes,
                                 until(interrupted, bar.update, KeyboardInterrupt), bar, truth)
    echo(f"collected {bar.n} minutes ({liquidations} liquidations) into {store_dir}")
    return bar.n, liquidations


def _lockstep(sim: MarketSim, writer: ChainWriter, collector: Collector, n_minutes: int,
              step: Callable[[int], object], bar: tqdm, truth: TruthLog | None = None) -> int:
    """Collect minute 0, then simulate and collect `n_minutes` more; returns liquidations.
    `step(1)` after each minute (the progress bar's update, which may stop the run)."""
    _collect(collector, sim.chain_time(0))
    step(1)
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
        step(1)
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


def _render(out: Path, store_dir: Path, echo: Echo, interrupted: threading.Event
            ) -> tuple[Path, Path, Path, Path]:
    """Heatmap PNG + HTML, levels PNG at the last minute and a default backtest, through the
    `liqmap` commands (the same code a user runs)."""
    last = Store(str(store_dir)).snapshot_times(DEMO_MARKET)[-1]
    png, html = out / "heatmap_SOL.png", out / "heatmap_SOL.html"
    levels, backtest = out / "levels_SOL.png", out / "backtest"
    data = ["--data-dir", str(store_dir), "--market", DEMO_MARKET]
    steps = [
        ("heatmap PNG and npz", ["heatmap", *data, "--out", str(png),
                                 "--npz-out", str(out / NPZ_FILE)]),
        ("heatmap HTML", ["heatmap", *data, "--out", str(html)]),
        ("liquidation levels", ["levels", *data, "--at", iso_utc(last), "--out", str(levels)]),
        ("backtest", ["backtest", *data, "--bin", str(BACKTEST_BIN_USD),
                      "--out-dir", str(backtest)]),
        ("score against the realized liquidations",
         ["score", *data, "--out-dir", str(out / "score")]),
    ]
    for label, args in steps:
        if interrupted.is_set():
            raise KeyboardInterrupt
        echo(f"--- {label}: liqmap {' '.join(args)}")
        _run_command(args)
    if interrupted.is_set():
        raise KeyboardInterrupt
    _write_old_tool_files(out, store_dir, echo)
    return png, html, levels, backtest


def _write_old_tool_files(out: Path, store_dir: Path, echo: Echo) -> None:
    """The files the old tool worked with, from the demo's store: its CSV log of SOL
    positions (`liqmap export --format legacy-csv`, in the folder `heatmap --folder` reads) and
    a desk hedge log over the collected minutes (`backtest --hedge-log`)."""
    from liqmap.api import open_store

    log = out / LEGACY_DIR / C.LEGACY_CSV_NAME
    log.parent.mkdir(exist_ok=True)
    echo(f"--- the old tool's CSV log: liqmap export --format legacy-csv --data-dir {store_dir} "
         f"--out {log}")
    open_store(str(store_dir)).export_legacy_csv(log, DEMO_MARKET)
    echo(f"--- a sample desk hedge log ({DESK_TZ} times): {out / DESK_FILE}")
    write_desk_log(Store(str(store_dir)), DEMO_MARKET, out / DESK_FILE)


def write_desk_log(store: Store, market: str, path: Path, *, tz: str = DESK_TZ,
                   exposure_tokens: float = 10_000.0) -> int:
    """Write a sample desk hedge log (the desk export's SOL column names, wall-clock times in
    `tz`, one row per stored minute of `market`): price = the stored oracle price (USD), a
    target ratio of 1, a current ratio drifting between 0.90 and 1.00, and the short of
    `exposure_tokens` x the current ratio written as negative tokens. Returns the rows."""
    from liqmap.files import write_bytes

    state = store.read_market_state(market, columns=["ts", "oracle_price"]).to_pandas()
    state = state.dropna().sort_values("ts")
    i = np.arange(len(state))
    current = np.round(0.95 + 0.05 * np.sin(i / 17.0), 4)
    wall = pd.DatetimeIndex(state["ts"]).tz_convert(tz).tz_localize(None)
    frame = pd.DataFrame({
        "@timestamp per minute": wall.strftime("%Y-%m-%d %H:%M:%S"),
        "SOL_HYPE_perpPrice": np.round(state["oracle_price"].to_numpy(float), 4),
        "SOLCurrentPos": np.round(-exposure_tokens * current, 2),
        "CurrentSOL_Pct": current, "TargetSOL_Pct": 1.0})
    write_bytes(path, frame.to_csv(index=False).encode())
    return len(frame)


def _run_command(args: list[str]) -> None:
    from liqmap.cli import cli

    cli.main(args=args, prog_name="liqmap", standalone_mode=False)



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


