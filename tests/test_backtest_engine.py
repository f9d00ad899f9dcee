"""Accounting and metrics on four hand-computed minutes."""

from __future__ import annotations

import numpy as np
import pytest

from liqmap.backtest.align import Coverage, MinuteInputs
from liqmap.backtest.engine import Ledger, open_book, settle
from liqmap.backtest.params import BacktestParams
from liqmap.backtest.rule import EVENT_ON, EVENT_REVERSE, RuleOutput
from liqmap.backtest.stats import compute_stats, max_drawdown

# k = position / current = 20 tokens all along; target_pos = 12, 12, 12, 10
PRICE = [100.0, 102.0, 101.0, 105.0]
POSITION = [10.0, 10.0, 12.0, 12.0]
CURRENT = [0.5, 0.5, 0.6, 0.6]
TARGET = [0.6, 0.6, 0.6, 0.5]
DIRECTION = [0, 1, 1, -1]
EVENTS = [0, EVENT_ON, 0, EVENT_REVERSE]


def ledger(**changes: object) -> Ledger:
    n = len(PRICE)
    minutes = MinuteInputs(
        ts_ns=np.arange(n, dtype=np.int64) * 60_000_000_000, column=np.arange(n),
        price_usd=np.array(PRICE), position_tokens=np.array(POSITION),
        current_ratio=np.array(CURRENT), target_ratio=np.array(TARGET),
        gap=np.zeros(n, dtype=bool), coverage=Coverage("", "", n, 0))
    rule = RuleOutput(above=np.zeros(n), below=np.zeros(n), threshold=np.zeros(n),
                      trigger=np.zeros(n, dtype=bool), direction=np.array(DIRECTION, np.int8),
                      event=np.array(EVENTS, np.int8))
    params = BacktestParams(**{"boost": 0.5, "fee_bps": 12.0, "slippage_bps": 8.0, **changes})
    return settle(open_book(minutes), rule, params)


def test_raw_and_boosted_pnl_and_costs_by_hand() -> None:
    led = ledger()
    assert led.book.pnl_raw_usd.tolist() == [0.0, -4.0, 2.0, 0.0]  # (10-12)*2, (10-12)*-1
    assert led.overlay_tokens.tolist() == [0.0, 10.0, 10.0, -10.0]
    assert led.boosted_ratio.tolist() == [0.5, 1.0, 1.1, 0.09999999999999998]
    # held_boosted(t-1) = 10, 20, 22 against target 12, 12, 12
    assert led.pnl_boosted_usd.tolist() == [0.0, -4.0, -8.0, 40.0]
    # |Δ overlay| × p × 20 bps: 10 × 102 and 20 × 105
    assert led.cost_usd == pytest.approx([0.0, 2.04, 0.0, 4.2], rel=1e-12)


def test_legacy_boosted_loss_by_hand() -> None:
    led = ledger(legacy_formulas=True)
    # (position - position / boosted_ratio × target)(t-1) × Δp
    expected = [0.0, (10 - 10 / 0.5 * 0.6) * 2, (10 - 10 / 1.0 * 0.6) * -1,
                (12 - 12 / 1.1 * 0.6) * 4]
    assert led.pnl_boosted_usd == pytest.approx(expected, rel=1e-12)
    assert led.book.pnl_raw_usd.tolist() == [0.0, -4.0, 2.0, 0.0]


def test_metrics_by_hand() -> None:
    s = compute_stats(ledger())
    assert s["cum_pnl_raw_usd"] == -2.0
    assert s["cum_pnl_boosted_usd"] == 28.0
    assert s["cost_usd"] == pytest.approx(6.24)
    assert s["net_improvement_usd"] == pytest.approx(28.0 - 6.24 + 2.0)
    assert s["improvement_usd"] == 30.0
    assert (s["boosted_minutes"], s["n_on"], s["n_off"], s["n_reverse"]) == (3, 1, 0, 1)
    assert s["hit_rate"] == 0.5  # minute 1 held +10 into a -1 move, minute 2 into +4
    assert s["turnover_tokens"] == 30.0
    assert s["turnover_usd"] == 10 * 102 + 20 * 105
    # net − raw per minute: 0, -2.04, -10, 35.8 -> cumulative low -12.04 under the 0 peak
    assert s["max_drawdown_usd"] == pytest.approx(12.04)


def test_metrics_of_a_slice_start_from_zero() -> None:
    s = compute_stats(ledger(), 2, 4)
    assert s["n_minutes"] == 2
    assert s["cum_pnl_raw_usd"] == 2.0
    assert s["cum_pnl_boosted_usd"] == 32.0
    assert s["hit_rate"] == 1.0
    assert s["max_drawdown_usd"] == pytest.approx(10.0)


def test_without_boosted_minutes_hit_rate_is_undefined() -> None:
    s = compute_stats(ledger(boost=0.0))
    assert np.isnan(s["hit_rate"])
    assert s["cum_pnl_boosted_usd"] == s["cum_pnl_raw_usd"]
    assert max_drawdown(np.array([])) == 0.0
