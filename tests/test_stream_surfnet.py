"""Stream mode against a real Solana node (surfnet): the live book follows account writes over
WebSocket, and a minute's stream snapshot equals the poll snapshot of the same chain state."""

from __future__ import annotations

import base64
import json
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

from tcp_proxy import TcpProxy
from test_collector_surfnet import BOOK, SOL, USDC, Chain

#: market_state columns that describe how a snapshot was collected, not the chain
HOW = ["slot", "positions_slot", "latency_ms", "response_bytes", "retries", "mode", "rpc_bytes",
       "stream_updates", "book_age_ms", "missed_updates"]


@pytest.fixture
def fx(mainnet_accounts_path: Path) -> dict[str, bytes]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: base64.b64decode(v["data_b64"]) for k, v in data.items()}


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


# ------------------------------------------------------------------------- faults
def chain_open_keys(node) -> set[str]:
    """Open SOL positions on the node (a full scan, as poll mode reads them)."""
    from liqmap.collect.rpc import RpcClient, Transport
    from liqmap.collect.rpc.requests import position_filters
    from liqmap.jupiter.decode import decode_positions

    with Transport([node.rpc_url]) as transport:
        gpa, _ = RpcClient(transport).get_program_accounts(C.PERPS_PROGRAM_ID,
                                                           position_filters(SOL))
    return set(decode_positions(gpa.pubkeys, gpa.blobs).pubkeys)


def fast(**extra: object) -> dict[str, object]:
    return {"backoff_s": 0.05, "backoff_max_s": 0.5, **extra}


def test_cut_mid_stream_loses_nothing_after_the_resync(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    proxy = TcpProxy(surfnet.ws_url)
    node = _Via(surfnet, ws_url=proxy.url("ws"))
    try:
        with streaming(node, tmp_path, **fast()) as col:
            proxy.frozen.set()  # notifications of these writes die in the proxy
            chain.position(1, SOL, 1, 150.0, 0.0, 1)
            added = [chain.position(i, USDC, 2, 150.0 + i, 1_000 * i, 3)[0] for i in (12, 13)]
            time.sleep(0.3)
            proxy.cut()
            proxy.frozen.clear()
            wait_for(lambda: col.feed.counters.reconnects >= 1 and col.feed.ready.is_set())
            expected = set(keys) - {keys[0]} | set(added)
            assert open_keys(col) == expected == chain_open_keys(surfnet)
            assert col.feed.books["SOL"].counters.missed >= 3  # what the resync repaired
            [result] = col.collect_once(pd.Timestamp("2026-11-24T08:00:00Z"))
            assert result.stored
        state = col.store.read_market_state("SOL").to_pylist()[0]
        assert state["missed_updates"] >= 3 and state["n_positions"] == len(expected)
    finally:
        proxy.close()


def test_silent_stall_is_detected_and_resynced(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    proxy = TcpProxy(surfnet.ws_url)
    node = _Via(surfnet, ws_url=proxy.url("ws"))
    try:
        with streaming(node, tmp_path, slot_silence_s=1.0, **fast()) as col:
            proxy.frozen.set()  # the TCP connection stays open; nothing arrives
            chain.position(2, SOL, 1, 151.5, 0.0, 1)
            wait_for(lambda: col.feed.counters.stalls >= 1)
            assert not col.feed.ready.is_set()  # no snapshot from a stalled book
            proxy.frozen.clear()
            wait_for(lambda: col.feed.ready.is_set())
            assert open_keys(col) == set(keys) - {keys[1]}
    finally:
        proxy.close()


def test_node_restart_on_another_port(surfnet, fx, tmp_path) -> None:
    from liqmap.sim.surfnet import Surfnet

    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    ws, http = TcpProxy(surfnet.ws_url), TcpProxy(surfnet.rpc_url)
    node = _Via(surfnet, ws_url=ws.url("ws"), rpc_url=http.url("http"))
    try:
        with streaming(node, tmp_path, **fast()) as col, Surfnet() as restarted:
            chain2 = Chain(restarted, fx)  # the restarted node holds another state
            keys2 = [chain2.position(*row)[0] for row in BOOK[3:]]
            ws.set_upstream(restarted.ws_url)
            http.set_upstream(restarted.rpc_url)
            ws.cut()
            http.cut()
            wait_for(lambda: col.feed.counters.reconnects >= 1 and col.feed.ready.is_set())
            assert open_keys(col) == set(keys2)
            later = chain2.position(14, USDC, 2, 149.0, 2_000, 2)[0]  # slots restarted at 0
            wait_for(lambda: later in open_keys(col))
    finally:
        ws.close()
        http.close()


def test_owner_change_sends_nothing_and_the_resync_removes_it(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    with streaming(surfnet, tmp_path) as col:
        blob = col.feed.books["SOL"].positions[keys[4]].data
        surfnet.set_account(keys[4], blob, "11111111111111111111111111111111")
        time.sleep(0.5)
        assert keys[4] in open_keys(col)  # surfnet sends no program notification
        col.feed.resync(full=True)
        assert open_keys(col) == set(keys) - {keys[4]}
        assert col.feed.books["SOL"].counters.missed == 1
        assert [(c.pubkey, c.reason) for c in col.closed] == [(keys[4], "resync")]  # type: ignore[attr-defined]


def test_account_writes_interleaved_with_resyncs(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    done = threading.Event()

    def churn() -> None:
        i = 0
        while not done.is_set():
            owner = 1 + i % 14
            size = 0.0 if i % 3 == 0 else 500.0 + i
            chain.position(owner, SOL, 1, 150.0, size, 2)
            i += 1

    with streaming(surfnet, tmp_path) as col:
        writer = threading.Thread(target=churn)
        writer.start()
        try:
            for _ in range(6):
                col.feed.resync(full=True)
        finally:
            done.set()
            writer.join()
        wait_for(lambda: open_keys(col) == chain_open_keys(surfnet), timeout_s=5)
        book = col.feed.books["SOL"]
        with col.feed.lock:
            blobs = {k: e.data for k, e in book.positions.items()}
        from liqmap.collect.rpc import RpcClient, Transport

        with Transport([surfnet.rpc_url]) as transport:
            gma, _ = RpcClient(transport).get_multiple_accounts(sorted(blobs))
        assert gma.data == blobs  # byte for byte what the chain holds


class _Via:
    """A node seen through proxies: the same cheatcodes, other URLs for the collector."""

    def __init__(self, node, *, ws_url: str, rpc_url: str | None = None) -> None:
        self.ws_url = ws_url
        self.rpc_url = rpc_url or node.rpc_url


def test_stream_snapshots_pass_the_same_checks_as_poll(surfnet, fx, tmp_path) -> None:
    """A book whose positions disagree with the custody's open interest is refused (a miss
    with the reason), exactly as a poll answer would be."""
    import struct

    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    with streaming(surfnet, tmp_path) as col:
        blob = bytearray(col.feed.books["SOL"].positions[keys[1]].data)
        struct.pack_into("<Q", blob, C.POSITION_SIZE_USD_OFFSET, 10**13)  # 10M USD, unseen
        surfnet.set_account(keys[1], bytes(blob), C.PERPS_PROGRAM_ID)  # custody not updated
        wait_for(lambda: col.feed.books["SOL"].positions[keys[1]].data == bytes(blob))
        [result] = col.collect_once(pd.Timestamp("2026-11-24T08:00:00Z"))
    assert not result.stored and "disagree with the custody" in (result.error or "")
    misses = col.store.read_misses("SOL").to_pylist()
    assert len(misses) == 1 and "disagree with the custody" in misses[0]["reason"]


# ------------------------------------------------------------------------- realized liquidations
def book_price(col: StreamCollector) -> float | None:
    from liqmap.jupiter.decode import decode_ag_price_feed

    addr = col.addresses["SOL"]
    with col.feed.lock:
        data = col.feed.books["SOL"].account_data([addr.ag_oracle or ""])[addr.ag_oracle or ""]
    return None if data is None else decode_ag_price_feed(data).price_usd


def test_stream_records_a_close_within_seconds_and_once(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(*row)[0] for row in BOOK]
    with streaming(surfnet, tmp_path) as col:
        chain.set_price(149.0)  # keys[1] (long 10x at 151.5) is not past its level yet
        wait_for(lambda: book_price(col) == pytest.approx(149.0))
        ts0 = col.boundary(time.time())
        [first] = col.collect_once(ts0)
        assert first.stored
        stored = col.store.read_positions("SOL").to_pandas().set_index("pubkey")
        liq_price = stored["liq_price"]
        assert 130.0 < liq_price[keys[1]] < 149.0 < liq_price[keys[4]]
        # a position opened and closed within the minute: nothing was predicted for it
        brief, _ = chain.position(12, USDC, 2, 151.0, 7_777, 4)
        wait_for(lambda: brief in open_keys(col))
        chain.position(12, USDC, 2, 151.0, 0.0, 4)
        # the price update, then at once the closes (their notifications may come first)
        written_s = time.time()
        chain.set_price(130.0)  # past keys[1]'s level (long), far from keys[4]'s (short)
        chain.position(2, SOL, 1, 151.5, 0.0, 1)  # sizeUsd -> 0: liquidated
        chain.position(5, USDC, 2, 150.0, 0.0, 5)  # sizeUsd -> 0: closed by its trader
        wait_for(lambda: len(col.store.read_liquidations("SOL")) >= 2)
        seen = col.store.read_liquidations("SOL").set_index("pubkey")
        assert dict(seen["kind"]) == {keys[1]: "liquidated", keys[4]: "closed"}
        for ts in seen["ts"]:
            assert abs(ts.timestamp() - written_s) < 5  # the time of the close, not a minute
        assert list(seen["oracle_price_before"]) == pytest.approx([149.0, 149.0])
        assert list(seen["oracle_price_after"]) == pytest.approx([130.0, 130.0])
        assert seen.loc[keys[1], "predicted_liq_price"] == stored.loc[keys[1], "liq_price"]
        assert (seen["ts_before"] == ts0).all()
        [second] = col.collect_once(ts0 + pd.Timedelta(minutes=1))
        assert second.stored
        time.sleep(0.3)
        after = col.store.read_liquidations("SOL")  # the minute comparison added nothing
        assert sorted(after["pubkey"]) == sorted([keys[1], keys[4]])
        assert list(after.sort_values("pubkey")["ts"]) == list(seen.sort_index()["ts"])


# ------------------------------------------------------------------------- chain clock
@pytest.mark.parametrize("mode", ["stream", "poll"])
def test_a_late_cycle_on_the_chain_clock_is_a_miss_not_the_next_minute(surfnet, fx, tmp_path,
                                                                        mode) -> None:
    """The cycle of minute m that reads the chain when its clock is already in minute m+1
    (the collector ran late; a simulator has written minute m+1) must not store m+1's chain
    under m."""
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    minute_s = (surfnet.chain_time() // 60 + 2) * 60
    surfnet.time_travel((minute_s + 1) * 1000)  # a minute's start: ~59 s before the next
    now = pd.Timestamp(minute_s, unit="s", tz="UTC")
    store = Store(str(tmp_path / mode))
    options = settings(surfnet, tmp_path / mode, clock="chain", mode=mode)
    col = (StreamCollector if mode == "stream" else Collector)(options, store)
    col._start()
    try:
        if mode == "stream":
            assert col.feed.ready.wait(30), "stream never got in sync"
        [late] = col.collect_once(now - pd.Timedelta(minutes=1))
        [on_time] = col.collect_once(now)
    finally:
        col._finish()
    assert not late.stored and "the cycle ran late" in (late.error or ""), late
    assert on_time.stored, on_time
    assert store.snapshot_times("SOL").tolist() == [now]
    [miss] = store.read_misses("SOL").to_pylist()
    assert pd.Timestamp(miss["ts"]) == now - pd.Timedelta(minutes=1)
