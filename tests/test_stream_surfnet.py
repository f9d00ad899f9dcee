"""Stream mode against a real Solana node (surfnet): the live book follows account writes over
WebSocket, and a minute's stream snapshot equals the poll snapshot of the same chain state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from liqmap import constants as C
from liqmap.collect.book import PositionClosed
from liqmap.collect.loop import Collector
from liqmap.collect.stream import StreamCollector
from liqmap.config import load_settings
from liqmap.store import Store

from test_collector_surfnet import BOOK, SOL, USDC, Chain, fx  # noqa: F401 (fixture)

#: market_state columns that describe how a snapshot was collected, not the chain
HOW = ["slot", "positions_slot", "latency_ms", "response_bytes", "retries", "mode", "rpc_bytes",
       "stream_updates", "book_age_ms", "missed_updates"]


def settings(node, tmp: Path, **extra: object):
    return load_settings({"rpc_urls": node.rpc_url, "ws_urls": node.ws_url, "markets": "SOL",
                          "data_dir": str(tmp), **extra}, environ={})


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    end = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@contextmanager
def streaming(node, tmp: Path, **feed_options: object) -> Iterator[StreamCollector]:
    closed: list[PositionClosed] = []
    col = StreamCollector(settings(node, tmp / "stream"), Store(str(tmp / "stream")),
                          on_close=closed.append, **feed_options)
    col.closed = closed  # type: ignore[attr-defined]
    col._start()
    try:
        assert col.feed.ready.wait(30), "stream never got in sync"
        yield col
    finally:
        col._finish()


def open_keys(col: StreamCollector) -> set[str]:
    with col.feed.lock:
        return set(col.feed.books["SOL"].positions)


def chain_rows(store: Store) -> tuple[pa.Table, list[dict]]:
    positions = store.read_positions("SOL").sort_by([("ts", "ascending"),
                                                     ("pubkey", "ascending")])
    state = store.read_market_state("SOL").drop_columns(HOW).to_pylist()
    return positions.drop_columns(["slot"]), state


def test_stream_snapshot_equals_poll_snapshot_of_the_same_chain(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    poll = Collector(settings(surfnet, tmp_path / "poll"), Store(str(tmp_path / "poll")))
    t0 = pd.Timestamp("2026-11-24T08:00:00Z")
    with streaming(surfnet, tmp_path) as col:
        assert open_keys(col) == set(keys)
        # writes after the load reach the book over the WebSocket
        chain.position(3, SOL, 1, 149.0, 0.0, 1)  # closed: stays on chain with size 0
        new_key, _ = chain.position(12, USDC, 2, 151.0, 7_777, 4)
        chain.set_price(140.0)
        wait_for(lambda: open_keys(col) == set(keys) - {keys[2]} | {new_key})
        wait_for(lambda: col.feed.books["SOL"].counters.updates >= 3)
        time.sleep(0.3)  # the price feed's notification
        for ts in (t0, t0 + pd.Timedelta(minutes=1)):
            [stream_result] = col.collect_once(ts)
            [poll_result] = poll.collect_once(ts)
            assert stream_result.stored and poll_result.stored, (stream_result, poll_result)
        assert [c.pubkey for c in col.closed] == [keys[2]]  # type: ignore[attr-defined]
        assert col.closed[0].reason == "closed"  # type: ignore[attr-defined]
    stream_pos, stream_state = chain_rows(col.store)
    poll_pos, poll_state = chain_rows(poll.store)
    assert stream_pos.num_rows == 2 * len(BOOK)
    assert stream_pos.equals(poll_pos)
    assert stream_state == poll_state
    state = col.store.read_market_state("SOL").to_pylist()
    assert [s["mode"] for s in state] == ["stream", "stream"]
    assert state[0]["stream_updates"] >= 3 and state[0]["rpc_bytes"] > 0
    assert state[0]["oracle_price"] == pytest.approx(140.0)
    assert state[0]["missed_updates"] == 0 and state[0]["book_age_ms"] >= 0
    polled = poll.store.read_market_state("SOL").to_pylist()
    assert polled[0]["mode"] == "poll" and polled[0]["rpc_bytes"] == polled[0]["response_bytes"]
