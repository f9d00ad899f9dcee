"""Exact `floor(a * b / d)` and `ceil(a * b / d)` on uint64 arrays, with a 128-bit product.

The on-chain formulas multiply USD-6 amounts by prices or RATE-9 counters, which overflows 64
bits (e.g. a BTC position: 1e9 USD-6 gap x 1e11 USD-6 price). numpy has no 128-bit integers, so
the product is formed from 32-bit limbs, a float64 estimate of the quotient is taken, and the
estimate is corrected against the exact product until `q*d <= a*b < (q+1)*d`. Exact for
quotients below 2**53 (any USD-6 amount under $9 billion); larger quotients raise.
"""

from __future__ import annotations

import numpy as np

U64 = np.uint64
M32 = U64(0xFFFFFFFF)
S32 = U64(32)
_MAX_EXACT = 2.0**53


def mul128(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit words of the exact 128-bit products a*b (uint64 arrays)."""
    a_lo, a_hi = a & M32, a >> S32
    b_lo, b_hi = b & M32, b >> S32
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> S32) + (lh & M32) + (hl & M32)
    low = (ll & M32) | (mid << S32)
    high = hh + (lh >> S32) + (hl >> S32) + (mid >> S32)
    return high, low


def _greater(ah: np.ndarray, al: np.ndarray, bh: np.ndarray, bl: np.ndarray) -> np.ndarray:
    return (ah > bh) | ((ah == bh) & (al > bl))


def mul_div(a: np.ndarray | int, b: np.ndarray | int, d: np.ndarray | int, *,
            ceil: bool = False) -> np.ndarray:
    """Exact floor (or ceil) of a*b/d elementwise; a, b, d non-negative < 2**64, d > 0.

    >>> mul_div(np.array([7, 10**16], dtype=np.uint64), 10**11, 10**12).tolist()
    [0, 1000000000000000]
    >>> mul_div(7, 3, 2, ceil=True).tolist()
    [11]
    >>> mul_div(10**12, 10**11, 3)
    Traceback (most recent call last):
    ...
    OverflowError: quotient too large for exact uint64 mul_div
    """
    av, bv, dv = (np.asarray(x, dtype=U64) for x in (a, b, d))
    if (dv == 0).any():
        raise ZeroDivisionError("mul_div by zero")
    fits = _product_fits(av, bv)
    if fits.all():  # the usual case: plain uint64, scalar operands stay scalar (fast division)
        product = np.atleast_1d(av * bv)
        q = product // dv
        return q + ((product % dv) != 0).astype(U64) if ceil else q
    av, bv, dv, fits = (np.atleast_1d(x) for x in np.broadcast_arrays(av, bv, dv, fits))
    out = np.empty(av.shape, dtype=U64)
    out[fits] = mul_div(av[fits], bv[fits], dv[fits], ceil=ceil)
    wide = ~fits
    out[wide] = _mul_div_wide(av[wide], bv[wide], dv[wide], ceil)
    return out


def _product_fits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether a*b < 2**64, elementwise (one division by a scalar when b or a is scalar)."""
    top = np.iinfo(U64).max
    if b.ndim == 0:
        return np.asarray(a <= U64(top // max(int(b), 1)))
    if a.ndim == 0:
        return np.asarray(b <= U64(top // max(int(a), 1)))
    return np.asarray(a <= top // np.maximum(b, U64(1)))


def _mul_div_wide(av: np.ndarray, bv: np.ndarray, dv: np.ndarray, ceil: bool) -> np.ndarray:
    """mul_div for rows whose product needs more than 64 bits (128-bit limbs)."""
    estimate = np.floor(av.astype(np.float64) * bv.astype(np.float64) / dv.astype(np.float64))
    if (estimate >= _MAX_EXACT).any():
        raise OverflowError("quotient too large for exact uint64 mul_div")
    q = estimate.astype(U64)
    ph, pl = mul128(av, bv)
    for _ in range(4):  # the float estimate is off by at most a few units
        qh, ql = mul128(q, dv)
        over = _greater(qh, ql, ph, pl)
        q = np.where(over, q - U64(1), q)
        nh, nl = mul128(q + U64(1), dv)
        under = ~_greater(nh, nl, ph, pl)
        q = np.where(under & ~over, q + U64(1), q)
        if not (over | under).any():
            break
    qh, ql = mul128(q, dv)
    nh, nl = mul128(q + U64(1), dv)
    if (_greater(qh, ql, ph, pl) | ~_greater(nh, nl, ph, pl)).any():
        raise ArithmeticError("mul_div failed to converge")  # pragma: no cover
    if ceil:
        q = q + ((qh != ph) | (ql != pl)).astype(U64)
    return q


def mul_div_capped(a: np.ndarray | int, b: np.ndarray | int, d: np.ndarray | int, cap: int, *,
                   ceil: bool = False) -> np.ndarray:
    """min(exact floor/ceil of a*b/d, cap) elementwise; `cap` <= 2**52.

    For inputs no real account holds (a $1 position with $1M collateral) the quotient can
    exceed what is exact; such rows get `cap`, which callers treat as "beyond any price".

    >>> mul_div_capped(np.array([2, 10**18], dtype=np.uint64), 10**18, 1, cap=2**40).tolist()
    [1099511627776, 1099511627776]
    """
    if cap > 2**52:
        raise ValueError("cap must be <= 2**52")
    av, bv, dv = (np.atleast_1d(np.asarray(x, dtype=U64)) for x in (a, b, d))
    av, bv, dv = np.broadcast_arrays(av, bv, dv)
    too_big = av.astype(np.float64) * bv.astype(np.float64) / dv.astype(np.float64) >= cap
    q = mul_div(np.where(too_big, U64(0), av), bv, dv, ceil=ceil)
    return np.minimum(np.where(too_big, U64(cap), q), U64(cap))
