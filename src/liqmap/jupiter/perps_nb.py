"""The liquidation formula of `perps` compiled (numba): its one implementation.

`perps.liquidation_columns` (the collector, the simulator) runs it over arrays;
`liq_price_usd6_nb` is the same code for kernels that price millions of (version, minute)
pairs (`heatmap.versions`). On-chain integer semantics: USD-6 and RATE-9 integers, exact
128-bit products (numpy and numba have no 128-bit integers, so a product is formed from 32-bit
limbs and a float64 estimate of the quotient is corrected against it), each quotient capped at
2**52 (`perps.USD6_CAP`: beyond any real account, so garbage never crashes a cycle).
`tests/test_perps_nb.py` checks it against Python's exact integers (hypothesis).
"""

from __future__ import annotations

import numba
import numpy as np

from liqmap import constants as C

U64 = np.uint64
_CAP = 2**52
_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


@numba.njit(cache=True, nogil=True, inline="always")
def _mul128(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """(high, low) words of the exact product a*b."""
    a_lo, a_hi = a & _M32, a >> _S32
    b_lo, b_hi = b & _M32, b >> _S32
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> _S32) + (lh & _M32) + (hl & _M32)
    low = (ll & _M32) | (mid << _S32)
    high = hh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)
    return high, low


@numba.njit(cache=True, nogil=True, inline="always")
def _greater(ah: np.uint64, al: np.uint64, bh: np.uint64, bl: np.uint64) -> bool:
    return bool(ah > bh or (ah == bh and al > bl))


@numba.njit(cache=True, nogil=True)
def mul_div_capped_nb(a: np.uint64, b: np.uint64, d: np.uint64, ceil: bool) -> np.uint64:
    """min(floor or ceil of a*b/d, 2**52), exact (2**52 outright when the float estimate of
    the quotient reaches it)."""
    a, b, d = U64(a), U64(b), U64(d)
    if np.float64(a) * np.float64(b) / np.float64(d) >= _CAP:
        return U64(_CAP)
    ph, pl = _mul128(a, b)
    if ph == _ZERO:
        q = pl // d
        if ceil and pl % d != _ZERO:
            q += _ONE
        return min(q, U64(_CAP))
    q = U64(np.floor(np.float64(a) * np.float64(b) / np.float64(d)))
    for _ in range(8):  # the float estimate is off by at most a few units
        qh, ql = _mul128(q, d)
        if _greater(qh, ql, ph, pl):
            q -= _ONE
            continue
        nh, nl = _mul128(q + _ONE, d)
        if not _greater(nh, nl, ph, pl):
            q += _ONE
            continue
        break
    if ceil:
        qh, ql = _mul128(q, d)
        if qh != ph or ql != pl:
            q += _ONE
    return min(q, U64(_CAP))


@numba.njit(cache=True, nogil=True, inline="always")
def _liquidation_nb(size: np.uint64, entry: np.uint64, collateral: np.uint64,
                    interest_snapshot: np.uint64, is_long: bool, cum_now: np.uint64,
                    decrease_bps: np.uint64, impact_scalar: np.uint64,
                    max_leverage_bps: np.uint64
                    ) -> tuple[np.int64, np.uint64, np.uint64, np.uint64]:
    """(liquidation price, close fee, borrow fee, maintenance margin) of one position, USD-6:
    the formula of `perps`' docstring, every quotient capped at `_CAP`."""
    size, entry, collateral = U64(size), U64(entry), U64(collateral)
    bps = U64(C.BPS_POWER)
    impact = _ZERO
    if impact_scalar != _ZERO:
        impact = mul_div_capped_nb(size, bps, U64(impact_scalar), True)
    close_fee = mul_div_capped_nb(size, U64(decrease_bps) + impact, bps, False)
    delta = U64(cum_now) - U64(interest_snapshot) if cum_now > interest_snapshot else _ZERO
    borrow_fee = mul_div_capped_nb(delta, size, U64(C.RATE_POWER), True)
    maint = mul_div_capped_nb(size, bps, max(U64(max_leverage_bps), _ONE), False)
    max_loss = maint + close_fee + borrow_fee
    solvent = collateral >= max_loss
    excess = collateral - max_loss if solvent else max_loss - collateral
    gap = np.int64(mul_div_capped_nb(excess, entry, size, False))
    liq = np.int64(entry) - gap if is_long == solvent else np.int64(entry) + gap
    return max(liq, np.int64(0)), close_fee, borrow_fee, maint


@numba.njit(cache=True, nogil=True)
def liq_price_usd6_nb(size: np.uint64, entry: np.uint64, collateral: np.uint64,
                      interest_snapshot: np.uint64, is_long: bool, cum_now: np.uint64,
                      decrease_bps: np.uint64, impact_scalar: np.uint64,
                      max_leverage_bps: np.uint64) -> np.int64:
    """Liquidation price (USD-6, >= 0) of one position, for kernels that price (version,
    minute) pairs."""
    return _liquidation_nb(size, entry, collateral, interest_snapshot, is_long, cum_now,
                           decrease_bps, impact_scalar, max_leverage_bps)[0]


@numba.njit(cache=True, nogil=True)
def liquidation_columns_nb(size: np.ndarray, entry: np.ndarray, collateral: np.ndarray,
                           interest_snapshot: np.ndarray, is_long: np.ndarray,
                           cum_now: np.ndarray, decrease_bps: np.uint64,
                           impact_scalar: np.uint64, max_leverage_bps: np.uint64
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_liquidation_nb` over aligned uint64 arrays (`is_long` bool): (liq int64, close fee,
    borrow fee, maintenance margin uint64)."""
    n = size.size
    liq = np.empty(n, np.int64)
    close_fee, borrow_fee, maint = (np.empty(n, np.uint64), np.empty(n, np.uint64),
                                    np.empty(n, np.uint64))
    for i in range(n):
        liq[i], close_fee[i], borrow_fee[i], maint[i] = _liquidation_nb(
            size[i], entry[i], collateral[i], interest_snapshot[i], is_long[i], cum_now[i],
            decrease_bps, impact_scalar, max_leverage_bps)
    return liq, close_fee, borrow_fee, maint
