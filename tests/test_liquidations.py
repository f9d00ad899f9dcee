"""Detection of realized liquidations (pure rule) and the `liquidations` dataset in the store."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from liqmap import constants as C
from liqmap.collect.liquidations import (
    CLOSED,
    LIQUIDATED,
    Observation,
    classify_gone,
    crossed,
    detect,
    gone_rows,
    liq_price_now_usd6,
)
from liqmap.jupiter import perps
from liqmap.store import Store
from liqmap.store import schema as S

from factories import PARAMS, SOL_CUSTODY, priced_positions, state_table

T0 = pd.Timestamp("2026-11-24T08:00:00Z")
T1 = T0 + pd.Timedelta(minutes=1)


def _obs(ts: pd.Timestamp, price: float, positions: pa.Table, cum_now: int = 1_000_000
         ) -> Observation:
    return Observation(ts=ts, slot=7, oracle_price=price, positions=positions,
                       interest_now={SOL_CUSTODY: cum_now}, fee_params=PARAMS)


LONG = {"pubkey": "L", "side": "long", "size_usd6": 10_000_000_000, "entry_usd6": 150_000_000,
        "collateral_usd6": 500_000_000}  # 20x long, liquidates near 143.1
SHORT = {"pubkey": "S", "side": "short", "size_usd6": 5_000_000_000, "entry_usd6": 150_000_000,
         "collateral_usd6": 500_000_000}  # 10x short, liquidates near 164.9


def test_gone_rows_are_the_absent_and_the_reopened_positions() -> None:
    prev = priced_positions(T0, [LONG, SHORT, {**LONG, "pubkey": "K"}])
    cur = priced_positions(T1, [{**SHORT, "open_time": T1},
                                {**LONG, "pubkey": "K", "open_time": T0}])
    assert sorted(gone_rows(prev, cur).column("pubkey").to_pylist()) == ["L", "S"]
    assert gone_rows(prev, cur.slice(0, 0)).num_rows == 3
    assert gone_rows(prev.slice(0, 0), cur).num_rows == 0


def test_rule_long_and_short_both_ways() -> None:
    long = np.array([True, True, False, False, True])
    liq = np.array([140_000_000, 140_000_000, 160_000_000, 160_000_000, 0])
    hit = crossed(long, liq, liq, 150_000_000, 139_999_999)
    assert hit.tolist() == [True, True, False, False, False]  # a level of 0 is never crossed
    hit = crossed(long, liq, liq, 150_000_000, 160_000_000)
    assert hit.tolist() == [False, False, True, True, False]
    # exactly at the level counts (the program liquidates at <= / >=)
    assert crossed(long[:1], liq[:1], liq[:1], 150_000_000, 140_000_000).tolist() == [True]
    # already past the level at the earlier observation (a keeper's delay) counts too
    assert crossed(long[:1], liq[:1], liq[:1], 139_000_000, 141_000_000).tolist() == [True]


def test_levels_are_repriced_with_borrow_fees_accrued_to_the_later_observation() -> None:
    prev = priced_positions(T0, [LONG])
    stored = round(prev.column("liq_price")[0].as_py() * 1e6)
    cum_later = 1_000_000 + 50_000_000  # 5 % of notional in borrow fees since the snapshot
    now = liq_price_now_usd6(prev, {SOL_CUSTODY: cum_later}, PARAMS)
    exact = perps.liquidation_columns(
        np.array([LONG["size_usd6"]], np.uint64), np.array([LONG["entry_usd6"]], np.uint64),
        np.array([LONG["collateral_usd6"]], np.uint64), np.array([1_000_000], np.uint64),
        np.array([True]), np.array([cum_later], np.uint64), PARAMS).liq_price_usd6
    assert now.tolist() == exact.tolist()
    assert now[0] > stored + 7_000_000  # a long's level rises with fees: 5 % × 150 / 20x ≈ 7.5
    # a custody whose counter is unknown keeps the stored level
    assert liq_price_now_usd6(prev, {"other": cum_later}, PARAMS).tolist() == [stored]


def test_a_move_between_the_stored_and_the_accrued_level_is_a_liquidation() -> None:
    prev = priced_positions(T0, [LONG])
    stored = prev.column("liq_price")[0].as_py()
    cum_later = 1_000_000 + 50_000_000
    after = stored + 1.0  # above the stored level, below the level with today's fees
    rows = detect(_obs(T0, 150.0, prev), _obs(T1, after, prev.slice(0, 0), cum_later))
    assert rows.column("kind").to_pylist() == [LIQUIDATED]
    rows = detect(_obs(T0, 150.0, prev), _obs(T1, after, prev.slice(0, 0), 1_000_000))
    assert rows.column("kind").to_pylist() == [CLOSED]


def test_detect_fills_every_field_and_stays_unconfirmed() -> None:
    prev = priced_positions(T0, [LONG, SHORT])
    cur = priced_positions(T1 + pd.Timedelta(seconds=12.7), [])
    rows = detect(_obs(T0, 150.0, prev), _obs(T1 + pd.Timedelta(seconds=12.7), 142.0, cur))
    assert rows.schema == S.LIQUIDATIONS
    got = {r["pubkey"]: r for r in rows.to_pylist()}
    assert got["L"]["kind"] == LIQUIDATED and got["S"]["kind"] == CLOSED
    first = got["L"]
    assert first["ts"] == (T1 + pd.Timedelta(seconds=12)).to_pydatetime()  # to the second
    assert first["ts_before"] == T0.to_pydatetime() and first["slot"] == 7
    assert first["oracle_price_before"] == 150.0 and first["oracle_price_after"] == 142.0
    assert first["size_usd"] == 10_000.0 and first["collateral_usd"] == 500.0
    assert first["side"] == "long" and first["size_tokens"] == pytest.approx(10_000 / 150)
    assert first["confirmed"] is False and first["signature"] is None
    assert first["event_price"] is None and first["confirm_status"] == "pending"


def test_observations_too_far_apart_or_out_of_order_are_not_compared() -> None:
    prev = priced_positions(T0, [LONG])
    late = T0 + pd.Timedelta(seconds=C.LIQUIDATION_MAX_GAP_S + 1)
    assert detect(_obs(T0, 150.0, prev), _obs(late, 100.0, prev.slice(0, 0))).num_rows == 0
    assert detect(_obs(T1, 150.0, prev), _obs(T0, 100.0, prev.slice(0, 0))).num_rows == 0


def test_classify_gone_is_what_the_stream_collector_calls() -> None:
    gone = priced_positions(T0, [SHORT]).select(
        ["pubkey", "owner", "side", "entry_price", "size_usd", "size_tokens", "collateral_usd",
         "liq_price", "collateral_custody", "cumulative_interest_snapshot", "open_time"])
    rows = classify_gone(gone, ts_before=T0, price_before=150.0, ts=T0 + pd.Timedelta(seconds=3),
                         slot=9, price_after=170.0, interest_now={SOL_CUSTODY: 1_000_000},
                         fee_params=PARAMS)
    assert rows.column("kind").to_pylist() == [LIQUIDATED]
    assert rows.column("slot").to_pylist() == [9]


def test_observation_from_a_stored_snapshot_row() -> None:
    positions = priced_positions(T0, [LONG])
    state = state_table(T0, 1, price_usd=149.5)
    row = state.to_pylist()[0]
    row.update(decrease_position_bps=6, trade_impact_fee_scalar=1_250_000_000_000,
               max_leverage_bps=5_000_000, cumulative_interest_rate_now=123,
               usdc_cumulative_interest_rate_now=456, usdt_cumulative_interest_rate_now=None)
    obs = Observation.from_snapshot("SOL", positions, pa.Table.from_pylist([row],
                                                                          schema=S.MARKET_STATE))
    assert obs.fee_params == PARAMS and obs.oracle_price == 149.5
    assert obs.interest_now == {SOL_CUSTODY: 123, C.CUSTODY_BY_ASSET["USDC"]: 456}
    # a state row without the custody's parameters: levels used as stored
    bare = Observation.from_snapshot("SOL", positions, state)
    assert bare.interest_now == {}


# ---------------------------------------------------------------- the dataset
def _rows(ts: pd.Timestamp) -> pa.Table:
    prev = priced_positions(ts - pd.Timedelta(minutes=1), [LONG, SHORT])
    return detect(_obs(ts - pd.Timedelta(minutes=1), 150.0, prev),
                  _obs(ts, 142.0, prev.slice(0, 0)))


def test_store_writes_reads_and_updates_liquidations(tmp_path) -> None:
    store = Store(str(tmp_path))
    assert store.write_liquidations("SOL", _rows(T1)) == 2
    assert store.write_liquidations("SOL", _rows(T1 + pd.Timedelta(minutes=1))) == 2
    df = store.read_liquidations("SOL")
    assert len(df) == 4 and set(df["market"]) == {"SOL"}
    assert df["ts"].dt.tz is not None and set(df["side"]) == {"long", "short"}
    assert len(store.read_liquidations("SOL", T1, T1)) == 2
    assert len(store.read_liquidations("SOL", kind=LIQUIDATED)) == 2
    # a confirmation replaces its detection, nothing else
    row = df[(df["ts"] == T1) & (df["pubkey"] == "S")].iloc[0].to_dict()
    row.update(kind=LIQUIDATED, confirmed=True, signature="sig", event_price=165.0,
               fee_usd=3.5, liquidation_fee_usd=25.0, confirm_status="confirmed")
    row.pop("market")
    store.write_liquidations("SOL", pa.Table.from_pylist([row], schema=S.LIQUIDATIONS))
    after = store.read_liquidations("SOL")
    assert len(after) == 4
    updated = after[(after["ts"] == T1) & (after["pubkey"] == "S")].iloc[0]
    assert updated["confirmed"] and updated["signature"] == "sig"
    assert updated["event_price"] == 165.0 and updated["kind"] == LIQUIDATED
    assert store.read_liquidations("SOL", confirmed=False)["pubkey"].tolist().count("S") == 1


def test_liquidations_survive_compaction_and_read_in_every_engine(tmp_path) -> None:
    store = Store(str(tmp_path))
    for i in range(3):
        store.write_liquidations("SOL", _rows(T1 + pd.Timedelta(minutes=i)))
    before = store.read_liquidations("SOL")
    report = store.compact(now=T1 + pd.Timedelta(days=2))
    assert report.days >= 1
    pd.testing.assert_frame_equal(store.read_liquidations("SOL"), before)
    root = tmp_path / "liquidations"
    assert pads.dataset(str(root), format="parquet", partitioning="hive").to_table().num_rows == 6
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/*/*/*.parquet', "
                      "hive_partitioning=true) where market = 'SOL'").fetchall()[0][0] == 6
    assert pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True).collect().height == 6


def test_key_index_matches_arrow_exactly() -> None:
    from solders.pubkey import Pubkey

    from liqmap.collect.liquidations import key_index

    rng = np.random.default_rng(3)
    keys = [str(Pubkey.new_unique()) for _ in range(2000)]
    values = pa.chunked_array([pa.array([keys[i] for i in rng.permutation(2000)[:1500]]),
                               pa.array(["x" * 44])])
    probe = pa.array([*keys, "x" * 44, "y" * 44])
    exact = pa.compute.fill_null(pa.compute.index_in(probe, value_set=values), -1)
    assert key_index(probe, values).tolist() == exact.to_pylist()
    # keys sharing a 16-character prefix in the value set, and short keys: the exact path
    twins = pa.array(["A" * 16 + "b" * 28, "A" * 16 + "c" * 28])
    assert key_index(twins[::-1], twins).tolist() == [1, 0]
    assert key_index(pa.array(["short", "A" * 16 + "b" * 28]), twins).tolist() == [-1, 0]


def test_accounts_that_failed_to_decode_are_not_gone() -> None:
    prev = priced_positions(T0, [LONG, SHORT])
    rows = detect(_obs(T0, 150.0, prev), _obs(T1, 142.0, prev.slice(0, 0)), unknown=["L"])
    assert rows.column("pubkey").to_pylist() == ["S"]
