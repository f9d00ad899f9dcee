"""The compiled liquidation formula (`perps_nb`, the one implementation) against Python's exact
integers, over the whole uint64 input domain: each quotient, and each output of a position
through both entry points (the arrays `perps.liquidation_columns`, the scalar
`liq_price_usd6_nb` of the versions binning)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.jupiter.perps_nb import liq_price_usd6_nb, mul_div_capped_nb

U64_MAX = 2**64 - 1
CAP = perps.USD6_CAP
usd6 = st.one_of(st.integers(1, 10**13), st.integers(1, U64_MAX // 2**8))
rate = st.one_of(st.integers(0, 10**12), st.integers(0, U64_MAX))


def mul_div_capped(a: int, b: int, d: int, ceil: bool = False) -> int:
    """min(floor or ceil of a*b/d, CAP) in exact integers; CAP outright when the float64
    estimate of the quotient reaches it (the pre-check that keeps garbage cheap)."""
    if float(a) * float(b) / float(d) >= CAP:
        return CAP
    return min(-(-a * b // d) if ceil else a * b // d, CAP)


def reference(size: int, entry: int, coll: int, snap: int, cum: int, long: bool, dec: int,
              scalar: int, max_lev: int) -> tuple[int, int, int, int]:
    """(liq price, close fee, borrow fee, maintenance margin), USD-6: `perps`' docstring."""
    impact = mul_div_capped(size, C.BPS_POWER, scalar, ceil=True) if scalar else 0
    close_fee = mul_div_capped(size, dec + impact, C.BPS_POWER)
    borrow_fee = mul_div_capped(max(cum - snap, 0), size, C.RATE_POWER, ceil=True)
    maint = mul_div_capped(size, C.BPS_POWER, max(max_lev, 1))
    max_loss = maint + close_fee + borrow_fee
    gap = mul_div_capped(abs(coll - max_loss), entry, size)
    liq = entry - gap if long == (coll >= max_loss) else entry + gap
    return max(liq, 0), close_fee, borrow_fee, maint


@settings(max_examples=600, deadline=None)
@given(a=st.integers(0, U64_MAX), b=st.integers(0, U64_MAX), d=st.integers(1, U64_MAX),
       ceil=st.booleans())
def test_mul_div_capped_is_exact(a: int, b: int, d: int, ceil: bool) -> None:
    got = mul_div_capped_nb(np.uint64(a), np.uint64(b), np.uint64(d), ceil)
    assert int(got) == mul_div_capped(a, b, d, ceil)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(usd6, st.integers(1, 10**12), st.integers(0, 10**13), rate, rate,
                               st.booleans()), min_size=1, max_size=30),
       dec=st.integers(0, 1000), scalar=st.one_of(st.just(0), st.integers(1, 10**16)),
       max_lev=st.one_of(st.just(0), st.integers(1, 10**7)))
def test_every_output_equals_exact_integers(rows: list[tuple[int, int, int, int, int, bool]],
                                            dec: int, scalar: int, max_lev: int) -> None:
    columns = list(zip(*rows, strict=True))
    size, entry, coll, snap, cum = (np.array(col, np.uint64) for col in columns[:5])
    long = np.array([r[5] for r in rows])
    out = perps.liquidation_columns(size, entry, coll, snap, long, cum,
                                    perps.FeeParams(dec, scalar, max_lev))
    got = list(zip(out.liq_price_usd6.tolist(), out.close_fee_usd6.tolist(),
                   out.borrow_fee_usd6.tolist(), out.maint_margin_usd6.tolist(), strict=True))
    assert got == [reference(*r, dec, scalar, max_lev) for r in rows]
    scalar_path = [int(liq_price_usd6_nb(*(np.uint64(v) for v in r[:4]), r[5], np.uint64(r[4]),
                                         np.uint64(dec), np.uint64(scalar), np.uint64(max_lev)))
                   for r in rows]
    assert scalar_path == [g[0] for g in got]
