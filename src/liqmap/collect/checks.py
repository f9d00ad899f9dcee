"""Checks that refuse a wrong snapshot before it is stored (pure: arrays and dataclasses in).

A snapshot pairs two chain reads: the market state (getMultipleAccounts: custodies, oracle,
Clock) at `accounts_slot`, and the market's Position accounts (getProgramAccounts, or the
streaming book) at `positions_slot`. Both functions return `None` when the snapshot may be
stored, or a one-line reason that the collector records as a miss instead.

- `check_slots`: the positions must not be older than the market state by more than
  `MAX_POSITIONS_SLOT_LAG` slots, and neither read may be older than the previous snapshot's
  (a node that fell behind answers with old data it believes current).
- `check_open_interest`: the positions must add up to the custody's own totals (spec §8 and
  DOCS-CUST):
  * longs: `assets.guaranteedUsd` = Σ (sizeUsd − collateralUsd) over open longs of the custody
    (USD-6). Compared two-sided.
  * longs: `assets.locked` (tokens) holds at least Σ lockedAmount of the custody's longs (a long's
    collateral custody is the traded custody, so its locked tokens are reserved there). The
    custody may reserve more than its positions' sum (the simulator's pool, and any custody
    reserve), so this is an upper bound on the decoded sum only.
  * shorts: `assets.globalShortSizes` = Σ sizeUsd over open shorts of the custody (USD-6).
    Compared two-sided. (Shorts lock stablecoins in the USDC/USDT custodies shared by every
    market, so their locked amounts cannot be checked per market.)
  The custody and the positions are read a few slots apart, so trades in between make the
  sums differ a little; the tolerance is `OPEN_INTEREST_REL_TOLERANCE` of the larger side or
  `OPEN_INTEREST_ABS_TOLERANCE_USD`, whichever is larger. An empty or truncated answer (the
  failure this catches) is off by 100 % or by the missing accounts' share. A side with no open
  positions passes when the custody's total for that side is within the tolerance of zero: a
  real market may have no shorts.
"""

from __future__ import annotations

import numpy as np

from liqmap import constants as C
from liqmap.jupiter.decode import Custody

__all__ = ["check_open_interest", "check_slots", "check_snapshot"]


def check_slots(accounts_slot: int, positions_slot: int, previous_slot: int | None = None,
                max_lag: int = C.MAX_POSITIONS_SLOT_LAG) -> str | None:
    """Reason to refuse a snapshot read at these context slots, or None.

    `previous_slot` is the positions slot of the market's last stored snapshot (None: none).
    """
    if positions_slot <= 0:
        return ("the positions answer carries no context slot; the node must support "
                "getProgramAccounts withContext")
    if positions_slot + max_lag < accounts_slot:
        return (f"stale positions answer: slot {positions_slot} is {accounts_slot - positions_slot}"
                f" slots behind the market state's slot {accounts_slot} (bound {max_lag})")
    if previous_slot is not None:
        oldest = min(accounts_slot, positions_slot)
        if oldest < previous_slot:
            return (f"stale answer: slot {oldest} is older than the previous snapshot's slot "
                    f"{previous_slot}; the node is behind")
    return None


def _off(decoded: float, custody: float, rel: float, abs_tol: float) -> bool:
    return abs(decoded - custody) > max(abs_tol, rel * max(abs(decoded), abs(custody)))


def check_open_interest(custody: Custody, records: np.ndarray, *,
                        rel: float = C.OPEN_INTEREST_REL_TOLERANCE,
                        abs_usd: float = C.OPEN_INTEREST_ABS_TOLERANCE_USD) -> str | None:
    """Reason to refuse positions `records` (open, decoded) of `custody`'s market, or None.

    `records` has the fields `side`, `size_usd`, `collateral_usd` (USD-6) and `locked_amount`
    (tokens of the custody, raw units) of `liqmap.jupiter.layouts.POSITION_DTYPE`.
    """
    usd = float(C.USD_PRECISION)
    abs_usd6 = abs_usd * usd
    side = records["side"]  # sums over the fields, never copies of whole records
    long, short = side == C.SIDE_LONG, side == C.SIDE_SHORT
    size = records["size_usd"].astype(np.float64)
    guaranteed = float(np.sum(size, where=long)
                       - np.sum(records["collateral_usd"].astype(np.float64), where=long))
    if _off(guaranteed, float(custody.guaranteed_usd6), rel, abs_usd6):
        return (f"positions disagree with the custody: {int(long.sum())} long(s) add up to "
                f"${guaranteed / usd:,.0f} size minus collateral, the custody's guaranteedUsd "
                f"is ${custody.guaranteed_usd6 / usd:,.0f}; incomplete or stale answer")
    short_usd6 = float(np.sum(size, where=short))
    if _off(short_usd6, float(custody.global_short_sizes_usd6), rel, abs_usd6):
        return (f"positions disagree with the custody: {int(short.sum())} short(s) add up to "
                f"${short_usd6 / usd:,.0f}, the custody's globalShortSizes is "
                f"${custody.global_short_sizes_usd6 / usd:,.0f}; incomplete or stale answer")
    locked = float(np.sum(records["locked_amount"].astype(np.float64), where=long))
    if locked > custody.locked * (1 + rel) + 10**custody.decimals:
        token = float(10**custody.decimals)
        return (f"positions disagree with the custody: longs lock {locked / token:,.2f} tokens, "
                f"more than the custody's locked {custody.locked / token:,.2f}")
    return None


def check_snapshot(custody: Custody, records: np.ndarray, accounts_slot: int,
                   positions_slot: int, previous_slot: int | None = None) -> str | None:
    """Both checks: the first reason to refuse the snapshot, or None to store it."""
    return (check_slots(accounts_slot, positions_slot, previous_slot)
            or check_open_interest(custody, records))
