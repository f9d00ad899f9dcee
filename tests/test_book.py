"""The live book (pure): slot-ordered stream updates, resyncs that keep newer stream bytes and
delete what the chain no longer holds, close events, counters, bounded memory."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap import constants as C
from liqmap.collect.book import MarketBook, PositionClosed, is_open_position


def blob(size_usd: int, tag: int = 0) -> bytes:
    data = bytearray(C.POSITION_ACCOUNT_SIZE)
    data[0] = tag
    struct.pack_into("<Q", data, C.POSITION_SIZE_USD_OFFSET, size_usd)
    return bytes(data)


def test_size_zero_is_closed_and_short_accounts_stay_for_the_decoder() -> None:
    assert is_open_position(blob(1)) and not is_open_position(blob(0))
    assert is_open_position(b"\x00" * 100)


def test_stream_updates_apply_in_slot_order_and_closes_leave_the_book() -> None:
    events: list[PositionClosed] = []
    book = MarketBook("SOL", on_close=events.append)
    assert book.apply_position("A", 10, blob(5), now=1.0)
    assert not book.apply_position("A", 9, blob(6), now=1.1)  # older than what we hold
    assert book.apply_position("A", 10, blob(7), now=1.2)  # same slot: kept (surfnet)
    assert book.positions["A"].data == blob(7)
    assert book.apply_position("A", 11, blob(0), now=1.3)
    assert "A" not in book.positions
    assert [(e.pubkey, e.reason, e.slot) for e in events] == [("A", "closed", 11)]
    assert not book.apply_position("A", 10, blob(9), now=1.4)  # a late echo of before the close
    assert book.apply_position("B", 12, blob(3), now=1.5)
    assert book.apply_position("B", 13, None, now=1.6)  # deleted / owner changed
    assert events[-1].reason == "gone"
    counters = book.take_counters()
    assert counters.updates == 5 and book.take_counters().updates == 0
    assert book.last_change_s == 1.6 and book.slot == 13


def test_resync_keeps_stream_bytes_written_during_the_scan_and_counts_misses() -> None:
    book = MarketBook("SOL")
    seq = book.begin_resync()
    report = book.finish_resync(seq, 100, {"A": blob(1), "B": blob(2), "Z": blob(0)}, now=0.0)
    assert report.missed == 3 - 1 and book.counters.missed == 0  # the first load is no miss
    assert set(book.positions) == {"A", "B"}
    seq = book.begin_resync()
    book.apply_position("A", 101, blob(11), now=1.0)  # arrives while the scan runs
    book.apply_position("C", 101, blob(3), now=1.0)  # created after the scan's slot
    report = book.finish_resync(seq, 100, {"A": blob(1), "B": blob(22), "D": blob(4)}, now=2.0)
    assert book.positions["A"].data == blob(11) and "C" in book.positions
    assert book.positions["B"].data == blob(22) and "D" in book.positions
    assert (report.added, report.changed, report.removed) == (1, 1, 0)
    seq = book.begin_resync()
    report = book.finish_resync(seq, 120, {"A": blob(11), "C": blob(3)}, now=3.0)
    assert set(book.positions) == {"A", "C"} and report.removed == 2
    assert book.take_counters().missed == 2 + 2


def test_a_close_seen_during_the_scan_beats_the_scans_open_bytes() -> None:
    book = MarketBook("SOL")
    book.finish_resync(book.begin_resync(), 1, {"A": blob(1)}, now=0.0)
    seq = book.begin_resync()
    book.apply_position("A", 5, blob(0), now=1.0)
    book.finish_resync(seq, 4, {"A": blob(1)}, now=2.0)
    assert "A" not in book.positions


def test_delta_scans_only_upsert() -> None:
    book = MarketBook("SOL")
    book.finish_resync(book.begin_resync(), 1, {"A": blob(1), "B": blob(2)}, now=0.0)
    book.finish_resync(book.begin_resync(), 2, {"B": blob(0), "C": blob(3)}, now=1.0,
                       complete=False)
    assert set(book.positions) == {"A", "C"}


def test_complete_resync_forgets_slots_of_the_previous_connection() -> None:
    book = MarketBook("SOL")
    book.apply_position("A", 500, blob(1), now=0.0)
    book.apply_account("K", 500, b"x", now=0.0)
    seq = book.begin_resync()
    book.finish_resync(seq, 3, {"A": blob(1)}, now=1.0)  # a restarted node: slots from 0
    book.resync_accounts(seq, 3, {"K": b"x"}, now=1.0)
    assert book.apply_position("A", 4, blob(2), now=2.0)
    assert book.apply_account("K", 4, b"y", now=2.0)
    assert book.positions["A"].data == blob(2) and book.accounts["K"].data == b"y"


def test_accounts_resync_and_reading() -> None:
    book = MarketBook("SOL")
    seq = book.begin_resync()
    book.finish_resync(seq, 1, {}, now=0.0)
    assert book.resync_accounts(seq, 1, {"P": b"pool", "X": None}, now=0.0) == 0
    book.apply_account("P", 2, b"pool2", now=1.0)
    assert book.account_data(["P", "X"]) == {"P": b"pool2", "X": None}
    assert book.resync_accounts(book.begin_resync(), 3, {"P": b"pool3"}, now=2.0) == 1
    book.apply_account("P", 4, None, now=3.0)
    assert "P" not in book.accounts


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_memory_follows_the_open_book_over_long_churn(seed: int) -> None:
    """Hours of churn (positions opening and closing, each close a tombstone until the next
    resync): the book holds the open positions only, and resyncs clear the tombstones."""
    import random

    rng = random.Random(seed)
    book = MarketBook("SOL")
    chain: dict[str, bytes] = {}
    slot = 0
    for cycle in range(40):
        for _ in range(250):
            slot += 1
            key = f"P{rng.randrange(100_000)}"
            data = blob(rng.choice([0, 0, rng.randrange(1, 10**9)]), tag=cycle % 256)
            chain[key] = data
            book.apply_position(key, slot, data, now=float(slot))
        if cycle % 4 == 3:
            open_now = {k: v for k, v in chain.items() if is_open_position(v)}
            book.finish_resync(book.begin_resync(), slot, open_now, now=float(slot))
            assert len(book._closed_at) == 0
        assert len(book.positions) == sum(map(is_open_position, chain.values()))
        assert len(book._closed_at) <= 250 * 4
    assert {k: e.data for k, e in book.positions.items()} == {
        k: v for k, v in chain.items() if is_open_position(v)}
