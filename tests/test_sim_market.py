"""The simulator's invariants: positions are conserved, liquidation happens exactly at the
collector's liquidation price, the custodies follow the positions, a seed reproduces a run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.jupiter.decode import POSITION_DTYPE
from liqmap.jupiter.encode import empty_positions
from liqmap.sim import params as SP
from liqmap.sim import traders as T
from liqmap.sim.market import MarketSim, SimConfig, custody_template

START_S = 1_795_000_001
SMALL = {"SOL": 300, "ETH": 120, "BTC": 120}
U64 = np.uint64


def _sim(seed: int = 5, **kw: object) -> MarketSim:
    config = SimConfig(seed=seed, positions=SMALL, warmup_min=120, **kw)  # type: ignore[arg-type]
    return MarketSim(config, START_S)


@pytest.fixture(scope="module")
def run() -> tuple[MarketSim, list, dict[str, int], dict[str, Counter]]:
    """120 simulated minutes; every report, plus open counts and events before the run."""
    sim = _sim()
    sim.initial_writes()
    open_before = {m: len(b.open_rows()) for m, b in sim.books.items()}
    events_before = {m: Counter(c) for m, c in sim.events.items()}
    events_before["accounts"] = Counter({m: b.n for m, b in sim.books.items()})
    reports = []
    for _ in range(120):
        report = sim.step()
        assert report is not None
        reports.append((report, {m: sim.custody(m) for m in C.MARKETS},
                        {m: sim.books[m].view().copy() for m in C.MARKETS},
                        {m: sim.cum_now(m) for m in C.MARKETS}))
        sim.changed_writes()
    return sim, reports, open_before, events_before


def test_positions_are_conserved(run) -> None:
    sim, _, open_before, events_before = run
    total: Counter[str] = Counter()
    for market, book in sim.books.items():
        ev = sim.events[market] - events_before[market]
        opened = ev["open"] + ev["limit_fill"]
        assert len(book.open_rows()) == open_before[market] + opened - ev["close"] \
            - ev["liquidation"]
        assert len(set(book.pubkeys)) == book.n == len(book.rows_by_slot)
        new_accounts = book.n - events_before["accounts"][market]
        total["reopened"] += opened - new_accounts  # closed accounts opened again
        total += ev
    assert total["reopened"] > 0
    assert min(total[k] for k in ("open", "limit_fill", "close", "partial_close", "increase",
                                  "liquidation")) > 0


def test_every_open_position_is_on_the_safe_side_of_the_price(run) -> None:
    _, reports, _, _ = run
    for report, custodies, views, cums in reports:
        for market in C.MARKETS:
            view = views[market]
            rows = np.flatnonzero(view["size_usd"] > 0)
            liq = perps.liquidation_prices(view[rows], custodies[market],
                                           cums[market][rows]).liq_price_usd6
            price = report.prices_usd6[market]
            long = view["side"][rows] == C.SIDE_LONG
            assert (liq[long] < price).all() and (liq[~long] > price).all()


def test_liquidations_happen_at_the_collectors_price(run) -> None:
    _, reports, _, _ = run
    checked = 0
    for report, custodies, _, _ in reports:
        for liq in report.liquidations:
            exact = perps.liquidation_prices(liq.record, custodies[liq.market],
                                             np.array([liq.cum_now], U64)).liq_price_usd6[0]
            if liq.record["side"][0] == C.SIDE_LONG:
                assert liq.price_usd6 <= exact
            else:
                assert liq.price_usd6 >= exact
            checked += 1
    assert checked > 0


def test_liquidated_position_is_written_back_with_size_zero() -> None:
    sim = _sim(seed=9)
    sim.initial_writes()
    for _ in range(200):
        report = sim.step()
        writes = {w.pubkey: w.data for w in sim.changed_writes()}
        if report is not None and report.liquidations:
            break
    liq = report.liquidations[0]
    written = np.frombuffer(writes[liq.pubkey], dtype=POSITION_DTYPE)[0]
    assert written["size_usd"] == 0 and written["collateral_usd"] == 0
    assert written["locked_amount"] == 0 and written["realised_pnl_usd"] == 0
    kept = ("owner", "pool", "custody", "collateral_custody", "side", "price",
            "open_time", "cumulative_interest_snapshot", "bump")
    assert all(written[k] == liq.record[k][0] for k in kept)


def _one_long(entry_usd6: int, leverage: float, custody) -> np.ndarray:
    rec = empty_positions(1)
    rec["side"] = C.SIDE_LONG
    T.open_fields(rec[0], T.Order(C.SIDE_LONG, 10_000 * C.USD_PRECISION, leverage, entry_usd6,
                                  0), START_S, 1_000_000_000, custody)
    return rec


def test_liquidation_is_exactly_at_the_boundary() -> None:
    """Hand-computed: entry $150, size $10,000, 20x, SOL fees, 100 bps of borrow accrued.

    close fee = 10,000 x (6 + ceil(10,000 / 375,000) = 1) bps = $7; borrow = $100 x ... etc.
    """
    custody = custody_template("SOL", START_S)
    rec = _one_long(150 * C.USD_PRECISION, 20.0, custody)
    cum = np.array([1_000_000_000 + 10_000_000], U64)  # +1 % of notional since the snapshot
    # collateral 500, maint 20, close fee 7, borrow 100 -> max loss 127, gap = 373 x 150 / 10000
    liq_usd6 = 150_000_000 - 373 * 150_000_000 // 10_000
    assert perps.liquidation_prices(rec, custody, cum).liq_price_usd6[0] == liq_usd6
    assert T.liquidatable(rec, custody, cum, liq_usd6).tolist() == [True]
    assert T.liquidatable(rec, custody, cum, liq_usd6 + 1).tolist() == [False]
    assert T.liquidatable(rec, custody, cum, liq_usd6 - 50_000_000).tolist() == [True]


def test_fast_check_equals_exact_formula_on_random_positions() -> None:
    rng = np.random.default_rng(3)
    custody = custody_template("ETH", START_S)
    n = 4000
    rec = empty_positions(n)
    rec["side"] = rng.choice([C.SIDE_LONG, C.SIDE_SHORT], n)
    rec["price"] = rng.integers(3000, 4000, n) * C.USD_PRECISION
    rec["size_usd"] = rng.integers(10, 5_000_000, n) * C.USD_PRECISION
    rec["collateral_usd"] = rec["size_usd"] // rng.integers(2, 300, n).astype(np.uint64)
    rec["cumulative_interest_snapshot"] = rng.integers(0, 5_000_000, n)
    rec["size_usd"][:50] = 0
    cum = np.full(n, 5_000_000, U64)
    exact = np.zeros(n, np.int64)
    exact[50:] = perps.liquidation_prices(rec[50:], custody, cum[50:]).liq_price_usd6
    for price in (int(np.median(exact)), int(exact[100]), int(exact[101]) + 1, 3_500_000_000):
        expected = (rec["size_usd"] > 0) & np.where(rec["side"] == C.SIDE_LONG,
                                                   price <= exact, price >= exact)
        assert (T.liquidatable(rec, custody, cum, price) == expected).all()


def test_custodies_follow_the_open_positions(run) -> None:
    sim, _, _, _ = run
    usdc_locked = usdt_locked = 0
    for market, book in sim.books.items():
        rec = book.view()[book.open_rows()]
        codes = book.collateral_code[book.open_rows()]
        long = rec["side"] == C.SIDE_LONG
        custody = sim.custody(market)
        assert custody.locked == int(rec["locked_amount"][long].astype(object).sum())
        guaranteed = (rec["size_usd"][long].astype(object) - rec["collateral_usd"][long]).sum()
        assert custody.guaranteed_usd6 == guaranteed
        assert custody.global_short_sizes_usd6 == int(rec["size_usd"][~long].astype(object).sum())
        usdc_locked += int(rec["locked_amount"][codes == T.COLLATERAL_USDC].astype(object).sum())
        usdt_locked += int(rec["locked_amount"][codes == T.COLLATERAL_USDT].astype(object).sum())
        utilization = perps.utilization(custody) / C.RATE_POWER
        assert 0 < utilization < SP.ASSETS[market].start_utilization * 3
        assert perps.jlp_net_delta_tokens(custody) > 0
    assert sim.custody("USDC").locked == usdc_locked
    assert sim.custody("USDT").locked == usdt_locked


def test_borrow_counters_accrue_to_the_minute(run) -> None:
    sim, reports, _, _ = run
    for asset in SP.POOL_ASSETS:
        custody = sim.custody(asset)
        assert custody.funding_last_update == reports[-1][0].chain_time_s
        assert custody.cumulative_interest_rate > SP.ASSETS[asset].cumulative_interest_start


def test_same_seed_same_accounts_other_seed_other_accounts() -> None:
    def trace(seed: int) -> list[tuple[str, bytes]]:
        sim = _sim(seed=seed)
        out = [(w.pubkey, w.data) for w in sim.initial_writes()]
        for _ in range(15):
            sim.step()
            out += [(w.pubkey, w.data) for w in sim.changed_writes()]
        return out

    first = trace(21)
    assert trace(21) == first
    assert trace(22) != first


def test_replayed_prices_are_used_as_given() -> None:
    series = 180.0 + np.cumsum(np.full(30, 0.37))
    sim = _sim(price_series=series)
    sim.initial_writes()
    assert sim.price_usd6["SOL"] == round(series[0] * C.USD_PRECISION)
    seen = []
    while (report := sim.step()) is not None:
        seen.append(report.prices_usd6["SOL"])
    assert seen == [round(p * C.USD_PRECISION) for p in series[1:]]


def test_book_reuses_the_account_of_a_wallet_slot() -> None:
    book = T.Book("SOL", C.CUSTODY_BY_ASSET["SOL"])
    wallet = bytes(range(32))
    usdc = C.CUSTODY_BY_ASSET["USDC"]
    first = book.row_for(7, wallet, C.SIDE_SHORT, T.COLLATERAL_USDC, usdc)
    assert book.row_for(7, wallet, C.SIDE_SHORT, T.COLLATERAL_USDC, usdc) == first
    other = book.row_for(7, wallet, C.SIDE_LONG, T.COLLATERAL_ASSET, C.CUSTODY_BY_ASSET["SOL"])
    assert other != first and book.n == 2
    assert book.pubkeys[first] == T.position_address(wallet, C.CUSTODY_BY_ASSET["SOL"], usdc,
                                                     C.SIDE_SHORT)[0]
