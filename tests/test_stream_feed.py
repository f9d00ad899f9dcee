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
