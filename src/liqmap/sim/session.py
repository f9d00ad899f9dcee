"""`liqmap simulate` as a library call: node, warm-up, minute 0, then paced minutes."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from liqmap import constants as C
from liqmap.errors import LiqmapError
from liqmap.sim import params as SP
from liqmap.sim.market import MarketSim, MinuteReport, SimConfig
from liqmap.sim.surfnet import unavailable_reason
from liqmap.sim.truth import TruthLog
from liqmap.sim.writer import ChainWriter, RunSummary, node_at, publish_initial, run_paced
from liqmap.sim.writer import start_time_s as first_minute_time
from liqmap.timeutil import iso_utc

Echo = Callable[[str], object]


def run_simulation(config: SimConfig, *, rpc_url: str | None = None,
                   speed_s: float = SP.DEFAULT_SPEED_S, minutes: int | None = None,
                   stop: threading.Event | None = None, echo: Echo = print,
                   progress: bool = True, truth_path: Path | None = None) -> RunSummary:
    """Run the simulated market on a local surfnet until `minutes` ran or `stop` is set.

    Starts its own surfnet (its RPC URL is echoed first, for a collector) unless `rpc_url`
    names a running one. Echoes `ready: minute 0 ...` once every account of minute 0 is
    written and the clock is on it; then each simulated minute takes `speed_s` seconds.
    `truth_path`: a new CSV file for the simulator's ground truth (`sim.truth`).
    """
    if speed_s < 0:
        raise LiqmapError(f"--speed must be >= 0 seconds per simulated minute, got {speed_s:g}")
    if minutes is not None and minutes < 0:
        raise LiqmapError(f"--minutes must be >= 0, got {minutes}")
    if rpc_url is None and (reason := unavailable_reason()):
        raise LiqmapError(f"cannot start the local Solana node: {reason}; run `npm ci` in the "
                          "liqmap project root")
    stop = stop or threading.Event()
    with node_at(rpc_url) as node:
        echo(f"local Solana node: {node.rpc_url} (WebSocket {node.ws_url or 'unknown'})")
        echo(f"collect it with:   {collect_command(node.rpc_url, node.ws_url, config.markets)}")
        sim = MarketSim(config, first_minute_time(node))
        writer = ChainWriter(node)
        with progress_bar(config.warmup_min, "warm-up (simulated history)", "min",
                          progress) as bar:
            sim.warm_up(bar.update)
        if stop.is_set():
            return RunSummary(0, 0, 0, "stop")
        total = (sum(b.n for b in sim.books.values()) + 2 * len(SP.POOL_ASSETS) + 1
                 + config.closed_accounts)
        with progress_bar(total, "writing accounts", "acct", progress) as bar:
            try:
                count = publish_initial(sim, writer, until(stop, bar.update, _Stopped))
            except _Stopped:  # Ctrl-C while loading (100,000 closed accounts take minutes)
                echo("stopped (stop): while writing the accounts of minute 0")
                return RunSummary(0, 0, 0, "stop")
        echo(f"ready: minute 0 at chain time {iso_utc(sim.chain_time(0))}, {count} accounts "
             f"({_open_counts(sim)})")
        truth = TruthLog(truth_path, sim) if truth_path is not None else None
        with progress_bar(minutes, "simulating", "min", progress) as bar:
            summary = run_paced(sim, writer, speed_s=speed_s, minutes=minutes, stop=stop,
                                on_minute=_progress_callback(bar, truth))
    echo(f"stopped ({summary.ended_by}): {summary.minutes} simulated minutes, "
         f"{summary.liquidations} liquidations, {summary.accounts_written} account writes")
    return summary


class _Stopped(Exception):
    """`stop` was set while minute 0 was being written."""


def until(stop: threading.Event, progress: Callable[[int], object],
          raises: type[BaseException]) -> Callable[[int], object]:
    """`progress`, raising `raises` once `stop` is set: long loops stop between steps."""

    def update(n: int) -> object:
        if stop.is_set():
            raise raises
        return progress(n)

    return update


def collect_command(rpc_url: str, ws_url: str, markets: tuple[str, ...]) -> str:
    """The `liqmap collect` command for a simulated node: stream mode over its WebSocket
    (surfnet serves it on another port than HTTP), else poll mode."""
    source = f"--ws-url {ws_url}" if ws_url else "--mode poll"
    return (f"liqmap collect --rpc-url {rpc_url} {source} --clock chain "
            f"--markets {','.join(markets)} --data-dir DIR")


def _progress_callback(bar: tqdm, truth: TruthLog | None = None
                       ) -> Callable[[MinuteReport], None]:
    state = {"liquidations": 0}

    def update(report: MinuteReport) -> None:
        if truth is not None:
            truth.add(report)
        state["liquidations"] += len(report.liquidations)
        prices = ", ".join(f"{m} {p / C.USD_PRECISION:,.2f}"
                           for m, p in report.prices_usd6.items())
        bar.set_postfix_str(f"{iso_utc(report.chain_time_s)} {prices}; "
                            f"{state['liquidations']} liquidations", refresh=False)
        bar.update(1)

    return update


def _open_counts(sim: MarketSim) -> str:
    return ", ".join(f"{m} {len(b.open_rows())} open" for m, b in sim.books.items())



def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """A tqdm bar on stderr (None total: a counter)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled,
                dynamic_ncols=True)
