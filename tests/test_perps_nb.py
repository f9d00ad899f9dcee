"""The compiled liquidation price equals `perps.liquidation_prices` bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.jupiter.accounts import Custody
from liqmap.jupiter.perps_nb import liq_price_usd6_nb, mul_div_capped_nb
from liqmap.jupiter.wide import mul_div_capped

U64_MAX = 2**64 - 1
usd6 = st.one_of(st.integers(1, 10**13), st.integers(1, U64_MAX // 2**8))
rate = st.integers(0, 10**12)


@settings(max_examples=400, deadline=None)
@given(a=st.integers(0, U64_MAX), b=st.integers(0, U64_MAX), d=st.integers(1, U64_MAX),
       ceil=st.booleans())
def test_mul_div_capped_matches_the_numpy_form(a: int, b: int, d: int, ceil: bool) -> None:
    want = int(mul_div_capped(a, b, d, 2**52, ceil=ceil)[0])
    assert int(mul_div_capped_nb(np.uint64(a), np.uint64(b), np.uint64(d), ceil)) == want


@settings(max_examples=400, deadline=None)
@given(size=usd6, entry=st.integers(1, 10**12), coll=st.integers(0, 10**13), snap=rate,
       cum=rate, long=st.booleans(), dec=st.integers(0, 1000),
       scalar=st.one_of(st.just(0), st.integers(1, 10**16)),
       max_lev=st.one_of(st.just(0), st.integers(1, 10**7)))
def test_liquidation_price_matches_the_collector(size: int, entry: int, coll: int, snap: int,
                                                 cum: int, long: bool, dec: int, scalar: int,
                                                 max_lev: int) -> None:
    rec = np.zeros(1, [("size_usd", "u8"), ("price", "u8"), ("collateral_usd", "u8"),
                       ("cumulative_interest_snapshot", "u8"), ("side", "u1")])
    rec[0] = (size, entry, coll, snap, C.SIDE_LONG if long else C.SIDE_SHORT)
    custody = Custody(decrease_position_bps=dec, trade_impact_fee_scalar=scalar,
                      max_leverage_bps=max_lev)
    want = perps.liquidation_prices(rec, custody, np.array([cum], np.uint64)).liq_price_usd6[0]
    got = liq_price_usd6_nb(np.uint64(size), np.uint64(entry), np.uint64(coll), np.uint64(snap),
                            long, np.uint64(cum), np.uint64(dec), np.uint64(scalar),
                            np.uint64(max_lev))
    assert int(got) == int(want)
