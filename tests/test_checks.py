"""The pure checks that refuse a wrong snapshot (liqmap.collect.checks)."""

from __future__ import annotations

import numpy as np
import pytest

from liqmap import constants as C
from liqmap.collect.checks import check_open_interest, check_slots, check_snapshot
from liqmap.jupiter.accounts import Custody
from liqmap.jupiter.encode import empty_positions

USD6 = 10**6


def book(longs: list[tuple[float, float]], shorts: list[float]) -> np.ndarray:
    """Open positions: longs as (size USD, collateral USD), shorts as size USD."""
    rec = empty_positions(len(longs) + len(shorts))
    for i, (size, coll) in enumerate(longs):
        rec[i]["side"], rec[i]["size_usd"] = C.SIDE_LONG, round(size * USD6)
        rec[i]["collateral_usd"], rec[i]["locked_amount"] = round(coll * USD6), 10**9
    for j, size in enumerate(shorts, start=len(longs)):
        rec[j]["side"], rec[j]["size_usd"] = C.SIDE_SHORT, round(size * USD6)
        rec[j]["collateral_usd"] = round(size / 10 * USD6)
    return rec


def custody_of(rec: np.ndarray, **change: int) -> Custody:
    """The custody whose totals are what the program keeps for `rec` (spec §8, DOCS-CUST)."""
    longs = rec[rec["side"] == C.SIDE_LONG]
    totals = {
        "guaranteed_usd6": int(longs["size_usd"].sum()) - int(longs["collateral_usd"].sum()),
        "global_short_sizes_usd6": int(rec[rec["side"] == C.SIDE_SHORT]["size_usd"].sum()),
        "locked": int(longs["locked_amount"].sum()), "decimals": 9,
    }
    return Custody(**{**totals, **change})


BOOK = book([(100_000, 10_000), (50_000, 5_000), (2_000_000, 100_000)], [300_000, 80_000])


def test_a_book_that_adds_up_passes() -> None:
    assert check_open_interest(custody_of(BOOK), BOOK) is None


def test_an_empty_answer_while_the_custody_has_open_interest_is_refused() -> None:
    reason = check_open_interest(custody_of(BOOK), BOOK[:0])
    assert reason and "guaranteedUsd" in reason and "0 long(s)" in reason


def test_a_truncated_answer_is_refused() -> None:
    assert "globalShortSizes" in (check_open_interest(custody_of(BOOK), BOOK[:-1]) or "")
    assert "guaranteedUsd" in (check_open_interest(custody_of(BOOK), BOOK[[0, 1, 3, 4]]) or "")


def test_a_market_without_shorts_or_without_anything_is_legitimate() -> None:
    longs_only = book([(100_000, 10_000)], [])
    assert check_open_interest(custody_of(longs_only), longs_only) is None
    nothing = book([], [])
    assert check_open_interest(custody_of(nothing), nothing) is None


def test_small_drift_between_two_reads_is_tolerated() -> None:
    """Trades between the custody read and the positions read move the sums a little."""
    custody = custody_of(BOOK)
    drifted = Custody(guaranteed_usd6=int(custody.guaranteed_usd6 * 1.03),
                      global_short_sizes_usd6=custody.global_short_sizes_usd6 + 900 * USD6,
                      locked=custody.locked, decimals=9)
    assert check_open_interest(drifted, BOOK) is None


def test_longs_locking_more_than_the_custody_holds_are_refused() -> None:
    custody = custody_of(BOOK, locked=10**9)  # positions lock 3e9
    assert "lock" in (check_open_interest(custody, BOOK) or "")
    assert check_open_interest(custody_of(BOOK, locked=10**15), BOOK) is None  # reserve: fine


@pytest.mark.parametrize(("accounts", "positions", "previous", "refused"), [
    (1000, 1000, None, False),
    (1000, 1010, 990, False),
    (1000, 1000 - C.MAX_POSITIONS_SLOT_LAG, None, False),
    (1000, 999 - C.MAX_POSITIONS_SLOT_LAG, None, True),  # positions far behind the state
    (400_000, 100, None, True),  # hundreds of thousands of slots behind
    (1000, 1000, 1200, True),  # older than the previous snapshot: a node that fell behind
    (1000, 0, None, True),  # no context slot at all
])
def test_slots(accounts: int, positions: int, previous: int | None, refused: bool) -> None:
    assert (check_slots(accounts, positions, previous) is not None) == refused


def test_check_snapshot_gives_the_first_reason() -> None:
    assert "stale" in (check_snapshot(custody_of(BOOK), BOOK[:0], 1000, 10) or "")
    assert "custody" in (check_snapshot(custody_of(BOOK), BOOK[:0], 1000, 1000) or "")
    assert check_snapshot(custody_of(BOOK), BOOK, 1000, 1001, 999) is None
