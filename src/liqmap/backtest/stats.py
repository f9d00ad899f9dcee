"""Summary metrics of a ledger, pure. Keys carry their units; params.OBJECTIVES lists those a
sweep can rank by."""

from __future__ import annotations

import numpy as np

from liqmap.backtest.engine import Ledger
from liqmap.backtest.rule import EVENT_OFF, EVENT_ON, EVENT_REVERSE


def compute_stats(ledger: Ledger, start: int = 0, stop: int | None = None) -> dict[str, float]:
    """Metrics of minutes [start, stop) of `ledger` (P&L from the minute's price move).

    Keys:
        n_minutes; cum_pnl_raw_usd; cum_pnl_boosted_usd (gross); cost_usd;
        carry_raw_usd, carry_boosted_usd (carrying cost of each hedge, paid > 0);
        cum_pnl_raw_net_usd (raw − its carry);
        cum_pnl_boosted_net_usd (gross − cost − carry); improvement_usd (gross − raw);
        net_improvement_usd (boosted net − raw net); boosted_minutes, boosted_share (of n_minutes);
        n_on, n_off, n_reverse, n_toggles (their sum); hit_rate: share of boosted minutes t
        (t + 1 < stop) whose next move p(t+1) − p(t) has the overlay's sign (k × direction; the
        direction's when k > 0), NaN without such minutes; turnover_tokens: Σ|Δ overlay|;
        turnover_usd: Σ|Δ overlay| × p; max_drawdown_usd: largest fall of the cumulative
        (net boosted − raw) P&L from its running peak (starting at 0), >= 0.
    """
    stop = ledger.direction.shape[0] if stop is None else stop
    sl = slice(start, stop)
    book = ledger.book
    raw = book.pnl_raw_usd[sl]
    gross = ledger.pnl_boosted_usd[sl]
    cost = ledger.cost_usd[sl]
    direction = ledger.direction[sl]
    event = ledger.event[sl]
    trade = ledger.trade_tokens[sl]
    carry_raw, carry_boosted = ledger.carry_raw_usd[sl], ledger.carry_boosted_usd[sl]
    cum_raw, cum_gross, cum_cost = float(raw.sum()), float(gross.sum()), float(cost.sum())
    cum_carry_raw, cum_carry_boosted = ((float(carry_raw.sum()), float(carry_boosted.sum()))
                                        if ledger.has_carry else (0.0, 0.0))
    cum_net = cum_gross - cum_cost - cum_carry_boosted
    cum_raw_net = cum_raw - cum_carry_raw
    boosted = int(np.count_nonzero(direction))
    n_on, n_off, n_reverse = (int(np.count_nonzero(event == e))
                              for e in (EVENT_ON, EVENT_OFF, EVENT_REVERSE))
    n = stop - start
    return {
        "n_minutes": n,
        "cum_pnl_raw_usd": cum_raw,
        "cum_pnl_boosted_usd": cum_gross,
        "cost_usd": cum_cost,
        "carry_raw_usd": cum_carry_raw,
        "carry_boosted_usd": cum_carry_boosted,
        "cum_pnl_raw_net_usd": cum_raw_net,
        "cum_pnl_boosted_net_usd": cum_net,
        "improvement_usd": cum_gross - cum_raw,
        "net_improvement_usd": cum_net - cum_raw_net,
        "boosted_minutes": boosted,
        "boosted_share": boosted / n if n else float("nan"),
        "n_on": n_on,
        "n_off": n_off,
        "n_reverse": n_reverse,
        "n_toggles": n_on + n_off + n_reverse,
        "hit_rate": hit_rate(ledger.overlay_tokens[sl], book.dp_usd[sl]),
        "turnover_tokens": float(trade.sum()),
        "turnover_usd": float((trade * book.price_usd[sl]).sum()),
        "max_drawdown_usd": max_drawdown(np.cumsum(
            gross - cost - raw + (carry_raw - carry_boosted if ledger.has_carry else 0.0))),
    }


def hit_rate(overlay_tokens: np.ndarray, dp_usd: np.ndarray) -> float:
    """Share of minutes t with overlay(t) != 0 and a next minute whose move has its sign.

    >>> hit_rate(np.array([1.0, 1.0, -2.0, 0.0]), np.array([0.0, 0.5, -0.1, 1.0]))
    0.3333333333333333
    """
    held = overlay_tokens[:-1]
    on = held != 0
    if not on.any():
        return float("nan")
    return float(np.count_nonzero(held[on] * dp_usd[1:][on] > 0) / np.count_nonzero(on))


def max_drawdown(cumulative_usd: np.ndarray) -> float:
    """Largest drop of `cumulative_usd` [n] below its running peak, the peak starting at 0.

    >>> max_drawdown(np.array([1.0, 3.0, -1.0, 2.0]))
    4.0
    """
    if cumulative_usd.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.maximum(cumulative_usd, 0.0))
    return float((peak - cumulative_usd).max())
