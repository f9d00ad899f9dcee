"""StreamFeed without a node: notifications handed in directly, as the WebSocket thread does."""

from __future__ import annotations

import threading
import time

from liqmap.collect.cycle import MarketAddresses
from liqmap.collect.rpc import RpcClient, Transport
from liqmap.collect.rpc.ws import Notification
from liqmap.collect.stream import StreamFeed

SLOT_SUB = 5


def _feed() -> StreamFeed:
    client = RpcClient(Transport(["http://127.0.0.1:9"], max_retries=0))
    feed = StreamFeed({m: MarketAddresses.default(m) for m in ("SOL", "ETH")}, client,
                      ("ws://127.0.0.1:9",))
    feed._subs[SLOT_SUB] = ("slot", "")
    feed.ready.set()
    return feed


def test_catch_up_waits_for_the_slot_notification_without_polling(monkeypatch) -> None:
    feed = _feed()
    feed._on_notification(Notification("slot", SLOT_SUB, 100), 60)
    naps: list[float] = []
    sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (naps.append(s), sleep(s)))
    later = threading.Timer(0.3, feed._on_notification, (Notification("slot", SLOT_SUB, 101), 60))
    later.start()
    started = time.monotonic()
    assert feed.catch_up(100, 10.0)  # woken by the notification of slot 101
    assert time.monotonic() - started < 5.0
    assert naps == []  # no polling loop: a snapshot's wait costs no CPU
    assert not feed.catch_up(101, 0.1)  # nothing newer: gives up after its timeout
    feed.ready.clear()
    assert not feed.catch_up(101, 10.0)  # a book out of sync never waits
    later.join()


def test_slot_notifications_keep_the_newest_slot_and_split_their_bytes() -> None:
    feed = _feed()
    feed._on_notification(Notification("slot", SLOT_SUB, 100), 61)
    feed._on_notification(Notification("slot", SLOT_SUB, 99), 60)  # late: slot kept
    assert feed.last_slot == 100
    assert [b.counters.rpc_bytes for b in feed.books.values()] == [61, 60]


def test_a_chain_clock_is_read_when_the_stream_slots_jump_not_four_times_a_second(tmp_path
                                                                                  ) -> None:
    """A stream collector on `--clock chain` waits for the stream's slots to skip ahead (a
    simulator's time travel moves slot and clock together) before it reads the Clock again;
    slots ticking one by one do not wake it."""
    from liqmap.collect.stream import StreamCollector
    from liqmap.config import Settings
    from liqmap.store import Store

    collector = StreamCollector(Settings(rpc_urls=("http://127.0.0.1:9",), clock="chain",
                                         markets=("SOL",)), Store(str(tmp_path)))
    feed = collector.feed
    feed._subs[SLOT_SUB] = ("slot", "")
    feed.ready.set()
    for slot in (100, 101):
        feed._on_notification(Notification("slot", SLOT_SUB, slot), 60)
    feed.slot_jumped.clear()
    ticks = threading.Timer(0.2, feed._on_notification, (Notification("slot", SLOT_SUB, 102), 60))
    jump = threading.Timer(0.45, feed._on_notification,
                           (Notification("slot", SLOT_SUB, 60_000), 60))
    ticks.start()
    jump.start()
    started = time.monotonic()
    collector._wait_for_chain_clock()
    waited = time.monotonic() - started
    assert 0.35 < waited < 0.9  # slept through the tick, woken by the jump
    assert not feed.slot_jumped.is_set()  # taken: the next wait waits again
    started = time.monotonic()
    collector._wait_for_chain_clock()  # no jump: the Clock is still read every second
    assert 0.9 < time.monotonic() - started < 3.0
    feed.ready.clear()  # out of sync: the short poll
    started = time.monotonic()
    collector._wait_for_chain_clock()
    assert time.monotonic() - started < 0.6
    collector.feed.client.transport.close()
    collector.client.transport.close()
