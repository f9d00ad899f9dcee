"""The simulator's I/O: accounts into a local surfnet, and its clock moved minute by minute.

Protocol per simulated minute m (what a collector with `--clock chain` relies on): write every
account that changed in minute m (feeds stamped with minute m's chain time), THEN time-travel
the Clock sysvar into minute m, then wait until the minute has taken `speed_s` seconds of wall
time. A collector polling the clock sees each minute once, with all of its accounts in place;
its reads must finish before the next minute's writes start (`speed_s` >= 1 leaves ample
margin: a 3-market snapshot of ~10,000 accounts reads in ~0.3 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from liqmap.config import redact_url
from liqmap.errors import LiqmapError
from liqmap.sim import params as SP
from liqmap.sim.market import AccountWrite, MarketSim, MinuteReport
from liqmap.sim.surfnet import Surfnet


def connect(rpc_url: str) -> Surfnet:
    """A handle on an already running surfnet at `rpc_url` (not started or stopped by us);
    a one-line LiqmapError when nothing answers there."""
    node = Surfnet()
    node.rpc_url = rpc_url
    try:
        node.chain_time()
    except (httpx.HTTPError, LiqmapError, KeyError, TypeError) as exc:
        node.stop()
        raise LiqmapError(f"no surfnet answers at {redact_url(rpc_url)} ({type(exc).__name__}); "
                          "start one with `liqmap simulate` without --rpc-url, or fix the URL"
                          ) from exc
    return node


def start_time_s(node: Surfnet) -> int:
    """Chain time (unix s) of simulated minute 0: just after the next minute boundary of the
    node's clock (surfnet's clock only moves forward)."""
    clock = node.chain_time()
    boundary = (clock // SP.SECONDS_PER_MINUTE + 1) * SP.SECONDS_PER_MINUTE
    return boundary + SP.CLOCK_OFFSET_S


class ChainWriter:
    """Writes `AccountWrite`s into `node` and moves its clock."""

    def __init__(self, node: Surfnet) -> None:
        self.node = node
        self.accounts_written = 0

    def write(self, writes: Iterable[AccountWrite],
              progress: Callable[[int], object] | None = None) -> int:
        """Create or overwrite each account; returns how many. surfnet takes ~1 ms a write
        at first, more the more accounts it holds (~10 ms at 50,000)."""
        count = 0
        for w in writes:
            self.node.set_account(w.pubkey, w.data, w.owner)
            count += 1
            if progress is not None and count % 100 == 0:
                progress(100)
        if progress is not None:
            progress(count % 100)
        self.accounts_written += count
        return count

    def set_time(self, unix_s: int) -> None:
        """Move the chain clock to `unix_s` (forward only)."""
        self.node.time_travel(unix_s * 1000)


@dataclass
class RunSummary:
    """What a paced run did."""

    minutes: int
    liquidations: int
    accounts_written: int
    ended_by: str  # "minutes", "stop", "price series ended"


def publish_initial(sim: MarketSim, writer: ChainWriter,
                    progress: Callable[[int], object] | None = None) -> int:
    """Write every account of minute 0 and move the clock to it; returns accounts written."""
    count = writer.write(sim.initial_writes(), progress)
    writer.set_time(sim.chain_time(0))
    return count


def publish_minute(sim: MarketSim, writer: ChainWriter) -> MinuteReport | None:
    """Simulate the next minute, write what changed, then move the clock into that minute."""
    report = sim.step()
    if report is None:
        return None
    writer.write(sim.changed_writes())
    writer.set_time(report.chain_time_s)
    return report


def run_paced(sim: MarketSim, writer: ChainWriter, *, speed_s: float,
              minutes: int | None = None, stop: threading.Event | None = None,
              on_minute: Callable[[MinuteReport], object] | None = None) -> RunSummary:
    """Publish minutes 1, 2, ... each taking `speed_s` seconds of wall time, until `minutes`
    ran, `stop` is set or a replayed price series ends. Minute 0 must be published first."""
    stop = stop or threading.Event()
    started = time.monotonic()
    done = liquidations = 0
    ended_by = "stop"
    stop.wait(speed_s)
    while not stop.is_set():
        if minutes is not None and done >= minutes:
            ended_by = "minutes"
            break
        report = publish_minute(sim, writer)
        if report is None:
            ended_by = "price series ended"
            break
        done += 1
        liquidations += len(report.liquidations)
        if on_minute is not None:
            on_minute(report)
        if minutes is not None and done >= minutes:
            ended_by = "minutes"
            break
        stop.wait(max(started + (done + 1) * speed_s - time.monotonic(), 0.0))
    return RunSummary(done, liquidations, writer.accounts_written, ended_by)


@contextmanager
def node_at(rpc_url: str | None) -> Iterator[Surfnet]:
    """A surfnet to write into: the running one at `rpc_url`, else a fresh child process
    (stopped, and its process ended, when the block exits, also on Ctrl-C)."""
    if rpc_url:
        node = connect(rpc_url)
        try:
            yield node
        finally:
            node.stop()
        return
    with Surfnet() as node:
        yield node
