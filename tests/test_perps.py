"""Jupiter formulas: hand-computed cases from the spec, a scalar transcription, exact math."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap.jupiter import perps
from liqmap.jupiter.accounts import Custody
from liqmap.jupiter.decode import decode_custody
from liqmap.jupiter.encode import empty_positions

U64_MAX = 2**64 - 1


@pytest.fixture(scope="module")
def custodies(mainnet_accounts_path: Path) -> dict[str, Custody]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: decode_custody(base64.b64decode(data[f"custody_{k}"]["data_b64"]))
            for k in ("sol", "usdc")}


def test_borrow_rates_match_the_spec(custodies: dict[str, Custody]) -> None:
    sol, usdc = custodies["sol"], custodies["usdc"]
    assert perps.utilization(sol) == 118_553_071  # 11.86 %
    assert perps.hourly_borrow_rate(sol) == 15_650  # spec §6.3: 15,650 per hour
    assert perps.borrow_rate_apr(sol) == pytest.approx(0.1371, abs=1e-4)
    assert perps.utilization(usdc) == pytest.approx(0.597e9, rel=1e-3)  # debt included
    assert perps.borrow_rate_apr(usdc) == pytest.approx(0.0564, abs=1e-4)


def test_accrual_rounds_up_per_elapsed_second(custodies: dict[str, Custody]) -> None:
    sol = custodies["sol"]
    t0 = sol.funding_last_update
    assert perps.accrue_cumulative_interest(sol, t0) == sol.cumulative_interest_rate
    assert perps.accrue_cumulative_interest(sol, t0 - 100) == sol.cumulative_interest_rate
    assert perps.accrue_cumulative_interest(sol, t0 + 3600) == sol.cumulative_interest_rate + 15_650
    assert perps.accrue_cumulative_interest(sol, t0 + 1) == sol.cumulative_interest_rate + 5  # ceil


def test_jump_rate_above_target_utilization(custodies: dict[str, Custody]) -> None:
    full = replace(custodies["sol"], locked=custodies["sol"].owned)  # 100 % utilization
    assert perps.borrow_rate_apr(full) == pytest.approx(1.50, abs=1e-4)  # maxRateBps 15000
    legacy = replace(custodies["sol"], hourly_funding_dbps=10)
    assert perps.hourly_borrow_rate(legacy) > 0


def test_jlp_delta_matches_the_spec(custodies: dict[str, Custody]) -> None:
    assert perps.jlp_net_delta_tokens(custodies["sol"]) == pytest.approx(3_581_154, abs=1)


def _position(side: int, leverage: float, *, entry_usd: float = 150.0, size_usd: float = 10_000,
              snapshot: int = 0) -> np.ndarray:
    rec = empty_positions(1)
    rec["side"] = side
    rec["price"] = round(entry_usd * 1e6)
    rec["size_usd"] = round(size_usd * 1e6)
    rec["collateral_usd"] = round(size_usd / leverage * 1e6)
    rec["cumulative_interest_snapshot"] = snapshot
    return rec


# spec §6.4: entry $150, size $10k, SOL impact scalar, FX borrow rates (SOL 15,650/h, USDC 6,438/h)
SPEC_TABLE = [
    ("long", 5, 0, 120.405),
    ("long", 20, 7, 143.299),
    ("long", 50, 7, 147.799),
    ("long", 100, 7, 149.299),
    ("long", 50, 30, 149.095),
    ("short", 50, 30, 151.900),
]


@pytest.mark.parametrize(("side", "leverage", "days", "expected"), SPEC_TABLE)
def test_spec_worked_numbers(custodies: dict[str, Custody], side: str, leverage: int,
                             days: int, expected: float) -> None:
    sol = custodies["sol"]
    collateral = sol if side == "long" else custodies["usdc"]
    now = collateral.funding_last_update + days * 86_400
    cum_now = perps.accrue_cumulative_interest(collateral, now)
    rec = _position(1 if side == "long" else 2, leverage,
                    snapshot=collateral.cumulative_interest_rate)
    out = perps.liquidation_prices(rec, sol, np.array([cum_now], dtype=np.uint64))
    assert out.liq_price_usd6[0] / 1e6 == pytest.approx(expected, abs=0.0015)
    assert out.close_fee_usd6[0] == 7_000_000  # 6 bps + a 1 bp price-impact ceiling
    assert out.maint_margin_usd6[0] == 20_000_000  # size / 500


def _reference(side: int, entry: int, size: int, coll: int, snap: int, cum_now: int,
               custody: Custody) -> int:
    """Direct transcription of spec §6.2 in Python integers (the test's oracle); intermediate
    amounts beyond perps.USD6_CAP are capped, as the product does for impossible accounts."""
    cap = perps.USD6_CAP
    impact = -(-size * 10_000 // custody.trade_impact_fee_scalar) \
        if custody.trade_impact_fee_scalar else 0
    close_fee = min(size * (custody.decrease_position_bps + impact) // 10_000, cap)
    borrow_fee = min(-(-max(cum_now - snap, 0) * size // 1_000_000_000), cap)
    max_loss = size * 10_000 // custody.max_leverage_bps + close_fee + borrow_fee
    gap = min(abs(max_loss - coll) * entry // size, cap)
    down = (side == 1) == (coll >= max_loss)
    return max(entry - gap if down else entry + gap, 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(1, 10**11),
                          st.integers(1, 10**13), st.integers(0, 10**13),
                          st.integers(0, 10**10), st.integers(0, 10**9)),
                min_size=1, max_size=40))
def test_vectorised_equals_scalar_transcription(rows: list[tuple[int, ...]]) -> None:
    custody = Custody(trade_impact_fee_scalar=3_750_000_000_000_000, decrease_position_bps=6,
                      max_leverage_bps=5_000_000)
    rec = empty_positions(len(rows))
    cum = np.zeros(len(rows), dtype=np.uint64)
    for i, (side, entry, size, coll, snap, accrued) in enumerate(rows):
        rec[i]["side"], rec[i]["price"], rec[i]["size_usd"] = side, entry, size
        rec[i]["collateral_usd"], rec[i]["cumulative_interest_snapshot"] = coll, snap
        cum[i] = snap + accrued
    out = perps.liquidation_prices(rec, custody, cum)
    expected = [_reference(s, e, z, c, sn, int(cum[i]), custody)
                for i, (s, e, z, c, sn, _) in enumerate(rows)]
    assert out.liq_price_usd6.tolist() == expected


def test_leverage_moves_the_long_liquidation_towards_entry(custodies: dict[str, Custody]) -> None:
    sol = custodies["sol"]
    levs = [2, 5, 10, 25, 50, 100, 250]
    rec = np.concatenate([_position(1, lev) for lev in levs])
    out = perps.liquidation_prices(rec, sol, np.zeros(len(levs), dtype=np.uint64))
    liq = out.liq_price_usd6
    assert (np.diff(liq) > 0).all() and (liq < 150_000_000).all()
    assert out.size_tokens.tolist() == pytest.approx([10_000 / 150] * len(levs))
    assert out.leverage.tolist() == pytest.approx(levs)


def test_long_below_one_x_cannot_be_liquidated(custodies: dict[str, Custody]) -> None:
    out = perps.liquidation_prices(_position(1, 0.5), custodies["sol"], np.zeros(1, np.uint64))
    assert out.liq_price_usd6[0] == 0


def test_absurd_accounts_are_capped_not_fatal(custodies: dict[str, Custody]) -> None:
    rec = np.concatenate([_position(2, 1e-9, size_usd=0.000001),
                          _position(1, 10, snapshot=0)])
    cum = np.array([0, 2**63], dtype=np.uint64)  # a garbage interest counter
    out = perps.liquidation_prices(rec, custodies["sol"], cum)
    assert out.liq_price_usd6[0] == 150_000_000 + perps.USD6_CAP  # a short that never liquidates
    assert out.borrow_fee_usd6[1] == perps.USD6_CAP
