"""Jupiter Perps formulas (spec §6, §8), pure: decoded accounts in, numbers out.

Integer USD-6 / RATE-9 semantics as on chain; floats only in the final USD columns.

Liquidation price (per position P, traded custody C, collateral custody K), all USD-6:

    impact_bps   = ceil(size * 10_000 / C.tradeImpactFeeScalar)      (0 if the scalar is 0)
    close_fee    = floor(size * (C.decreasePositionBps + impact_bps) / 10_000)
    borrow_fee   = ceil((K.cumulativeInterestRate accrued to now - P.snapshot) * size / 1e9)
    maint_margin = floor(size * 10_000 / C.maxLeverage)
    max_loss     = maint_margin + close_fee + borrow_fee
    gap          = floor(|max_loss - collateral| * entry / size)
    long:  entry - gap if collateral >= max_loss else entry + gap
    short: entry + gap if collateral >= max_loss else entry - gap
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liqmap import constants as C
from liqmap.jupiter.accounts import Custody  # not decode: that imports solders (0.2-0.4 s)
from liqmap.jupiter.perps_nb import liquidation_columns_nb

U64 = np.uint64
#: USD-6 amounts beyond any real position (≈ $4.5 billion): results past it are capped, so a
#: garbage account can never crash a cycle; a capped short liquidates at an absurd price and a
#: capped long at 0, i.e. never.
USD6_CAP = 2**52


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def debt_tokens(k: Custody) -> int:
    """Tokens lent out through the borrow-lend product, ceil((debt - interests) / 1e9)."""
    return _ceil_div(max(k.debt - k.borrow_lend_interests_accrued, 0), C.RATE_POWER)


def utilization(k: Custody) -> int:
    """locked / owned in RATE-9 (debt counted on both sides); 0 when either is 0."""
    debt = debt_tokens(k)
    owned, locked = k.owned + debt, k.locked + debt
    if owned == 0 or locked == 0:
        return 0
    return locked * C.RATE_POWER // owned


def hourly_borrow_rate(k: Custody) -> int:
    """Borrow rate per hour in RATE-9 (1e9 = 100 % of notional), spec §6.3."""
    debt = debt_tokens(k)
    owned, locked = k.owned + debt, k.locked + debt
    if owned == 0:
        return 0
    if k.hourly_funding_dbps != 0:  # legacy linear model
        per_dbps = k.hourly_funding_dbps * C.RATE_POWER // C.DBPS_POWER
        return _ceil_div(locked * per_dbps, owned)
    u = utilization(k)
    tgt_u, min_r, max_r, tgt_r = (k.target_utilization_rate, k.min_rate_bps, k.max_rate_bps,
                                  k.target_rate_bps)
    if tgt_u == 0 or u > tgt_u:
        span = C.RATE_POWER - tgt_u
        yearly_bps = (_ceil_div((max_r - tgt_r) * (u - tgt_u), span) + tgt_r) if span else max_r
    else:
        yearly_bps = _ceil_div((tgt_r - min_r) * u, tgt_u) + min_r
    return (yearly_bps * C.RATE_POWER // C.BPS_POWER) // C.HOURS_PER_YEAR


def borrow_rate_apr(k: Custody) -> float:
    """Current borrow rate as a fraction per year (0.1371 = 13.71 %)."""
    return hourly_borrow_rate(k) * C.HOURS_PER_YEAR / C.RATE_POWER


def accrue_cumulative_interest(k: Custody, now_s: int) -> int:
    """`cumulativeInterestRate` accrued from its last on-chain update to `now_s` (RATE-9)."""
    elapsed = now_s - k.funding_last_update
    if elapsed <= 0:
        return k.cumulative_interest_rate
    return k.cumulative_interest_rate + _ceil_div(hourly_borrow_rate(k) * elapsed,
                                                  C.SECONDS_PER_HOUR)


def impact_fee_bps(size_usd6: int, custody: Custody) -> int:
    """Price-impact fee of one position in bps: ceil(size x 10,000 / tradeImpactFeeScalar)."""
    scalar = custody.trade_impact_fee_scalar
    return _ceil_div(size_usd6 * C.BPS_POWER, scalar) if scalar else 0


def close_fee_usd6(size_usd6: int, custody: Custody) -> int:
    """Close fee of one position (USD-6): decrease bps + price-impact bps, rounded down."""
    bps = custody.decrease_position_bps + impact_fee_bps(size_usd6, custody)
    return size_usd6 * bps // C.BPS_POWER


def borrow_fee_usd6(size_usd6: int, snapshot: int, cum_now: int) -> int:
    """Borrow fee of one position accrued since `snapshot` (RATE-9 counters), rounded up."""
    return _ceil_div(max(cum_now - snapshot, 0) * size_usd6, C.RATE_POWER)


@dataclass(frozen=True)
class LiquidationColumns:
    """Per-position results, aligned with the input records (USD-6 integers and floats)."""

    liq_price_usd6: np.ndarray  # int64; 0 when the position cannot be liquidated
    close_fee_usd6: np.ndarray  # uint64
    borrow_fee_usd6: np.ndarray  # uint64
    maint_margin_usd6: np.ndarray  # uint64
    size_tokens: np.ndarray  # float64
    leverage: np.ndarray  # float64


def liquidation_prices(records: np.ndarray, custody: Custody,
                       cum_interest_now: np.ndarray) -> LiquidationColumns:
    """Liquidation price of each position, exactly as the formula in this module's docstring.

    Args:
        records: decoded Position records (`decode.POSITION_DTYPE`) of one market.
        custody: the market's (traded asset's) custody.
        cum_interest_now: uint64 [n], each position's collateral custody's cumulative interest
            rate accrued to the snapshot time (RATE-9).
    """
    return liquidation_columns(
        records["size_usd"], records["price"], records["collateral_usd"],
        records["cumulative_interest_snapshot"], records["side"] == C.SIDE_LONG,
        cum_interest_now, FeeParams.of(custody))


@dataclass(frozen=True)
class FeeParams:
    """The traded custody's parameters the liquidation price depends on."""

    decrease_position_bps: int
    trade_impact_fee_scalar: int
    max_leverage_bps: int

    @classmethod
    def of(cls, custody: Custody) -> FeeParams:
        return cls(custody.decrease_position_bps, custody.trade_impact_fee_scalar,
                   custody.max_leverage_bps)


def liquidation_columns(size_usd6: np.ndarray, entry_usd6: np.ndarray,
                        collateral_usd6: np.ndarray, interest_snapshot: np.ndarray,
                        is_long: np.ndarray, cum_interest_now: np.ndarray,
                        params: FeeParams) -> LiquidationColumns:
    """`liquidation_prices` on plain arrays (USD-6 integers, RATE-9 counters, a long mask)."""
    size = np.asarray(size_usd6).astype(U64)
    entry = np.asarray(entry_usd6).astype(U64)
    coll = np.asarray(collateral_usd6).astype(U64)
    n = len(size)
    if n == 0:
        empty_u = np.zeros(0, U64)
        return LiquidationColumns(np.zeros(0, np.int64), empty_u, empty_u, empty_u,
                                  np.zeros(0), np.zeros(0))
    snap, long, cum_now = (np.ascontiguousarray(np.broadcast_to(np.asarray(x).astype(t), n))
                           for x, t in ((interest_snapshot, U64), (is_long, bool),
                                        (cum_interest_now, U64)))
    liq, close_fee, borrow_fee, maint = liquidation_columns_nb(
        size, entry, coll, snap, long, cum_now, U64(params.decrease_position_bps),
        U64(params.trade_impact_fee_scalar), U64(params.max_leverage_bps))
    size_f, coll_f = size.astype(np.float64), coll.astype(np.float64)
    leverage = np.divide(size_f, coll_f, out=np.full(n, np.inf), where=coll_f > 0)
    return LiquidationColumns(
        liq_price_usd6=liq, close_fee_usd6=close_fee, borrow_fee_usd6=borrow_fee,
        maint_margin_usd6=maint, size_tokens=size_f / entry.astype(np.float64),
        leverage=leverage,
    )


def jlp_net_delta_tokens(k: Custody) -> float:
    """The JLP pool's exposure to the custody's asset in tokens (spec §8).

    (owned + debt - locked) / 10^decimals + globalShortSizes / globalShortAveragePrices.
    """
    owned = k.owned + debt_tokens(k)
    spot = (owned - k.locked) / 10**k.decimals
    shorts = (k.global_short_sizes_usd6 / k.global_short_average_price_usd6
              if k.global_short_average_price_usd6 else 0.0)
    return spot + shorts
