"""The simulator's I/O against a real surfnet: accounts land with their owners, the clock moves
one simulated minute per step, pacing holds `speed_s`, a stop event ends the run."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from liqmap import constants as C
from liqmap.jupiter.decode import decode_custody
from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.writer import ChainWriter, publish_initial, run_paced, start_time_s

pytestmark = pytest.mark.surfnet
SMALL = {"SOL": 60, "ETH": 30, "BTC": 30}


def _sim(node) -> MarketSim:
    return MarketSim(SimConfig(seed=2, positions=SMALL, warmup_min=30), start_time_s(node))


def _account(node, key: str) -> dict:
    return node.call("getAccountInfo", [key, {"encoding": "base64"}])["value"]


def test_minute_zero_is_written_then_the_clock_moves_to_it(surfnet) -> None:
    before = surfnet.chain_time()
    sim = _sim(surfnet)
    assert sim.chain_time(0) % 60 == 1 and before < sim.chain_time(0) <= before + 61
    writer = ChainWriter(surfnet)
    count = publish_initial(sim, writer)
    # the books, the 11 accounts written every minute, and the JLP mint (written once)
    assert count == writer.accounts_written == sum(b.n for b in sim.books.values()) + 12
    assert surfnet.chain_time() == sim.chain_time(0)
    custody = _account(surfnet, C.CUSTODY_BY_ASSET["SOL"])
    assert custody["owner"] == C.PERPS_PROGRAM_ID
    assert decode_custody(base64.b64decode(custody["data"][0])) == sim.custody("SOL")
    position = _account(surfnet, sim.books["BTC"].pubkeys[0])
    assert position["owner"] == C.PERPS_PROGRAM_ID and position["space"] == 216


def test_paced_minutes_take_speed_seconds_and_move_the_clock(surfnet) -> None:
    sim = _sim(surfnet)
    writer = ChainWriter(surfnet)
    publish_initial(sim, writer)
    seen: list[int] = []
    started = time.monotonic()
    summary = run_paced(sim, writer, speed_s=0.25, minutes=4,
                        on_minute=lambda r: seen.append(surfnet.chain_time()))
    elapsed = time.monotonic() - started
    assert summary.minutes == 4 and summary.ended_by == "minutes"
    assert seen == [sim.chain_time(m) for m in range(1, 5)]
    assert elapsed >= 1.0  # minute 0 and minutes 1-3 each held 0.25 s


def test_stop_event_ends_an_unbounded_run(surfnet) -> None:
    sim = _sim(surfnet)
    writer = ChainWriter(surfnet)
    publish_initial(sim, writer)
    stop = threading.Event()
    reports: list[object] = []

    def third_stops(report: object) -> None:
        reports.append(report)
        if len(reports) == 3:
            stop.set()

    summary = run_paced(sim, writer, speed_s=0.05, stop=stop, on_minute=third_stops)
    assert summary.ended_by == "stop" and summary.minutes == 3
    assert surfnet.chain_time() == sim.chain_time(summary.minutes)


def test_stop_event_interrupts_the_wait_between_minutes(surfnet) -> None:
    """A stop from another thread ends a run paced at 60 s a minute well before its minute."""
    sim = _sim(surfnet)
    writer = ChainWriter(surfnet)
    publish_initial(sim, writer)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    summary = run_paced(sim, writer, speed_s=60.0, stop=stop)
    assert summary.ended_by == "stop" and summary.minutes == 0
    assert time.monotonic() - started < 30.0
