"""The simulator's accounts: our encoder reproduces real mainnet bytes field for field, the
simulated custodies carry the real parameters, and every simulated account decodes with the
collector's decoders."""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.jupiter.decode import (
    POSITION_DTYPE,
    decode_ag_price_feed,
    decode_ag_price_feed_account,
    decode_custody,
    decode_pool,
    decode_positions,
)
from liqmap.jupiter.encode import encode_ag_price_feed, encode_custody, encode_positions
from liqmap.sim import params as SP
from liqmap.sim.market import MarketSim, SimConfig, custody_template

#: Custody fields that are parameters (not balances or counters) and must match mainnet.
PARAMETER_FIELDS = (
    "pool", "mint", "token_account", "decimals", "is_stable", "oracle_account", "oracle_type",
    "oracle_buffer", "max_price_age_sec", "trade_impact_fee_scalar", "max_leverage_bps",
    "max_global_long_sizes_usd6", "max_global_short_sizes_usd6", "permissions",
    "target_ratio_bps", "increase_position_bps", "decrease_position_bps",
    "max_position_size_usd6", "doves_oracle", "min_rate_bps", "max_rate_bps",
    "target_rate_bps", "target_utilization_rate", "doves_ag_oracle", "hourly_funding_dbps",
)


@pytest.fixture(scope="module")
def fx(mainnet_accounts_path: Path) -> dict[str, bytes]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: base64.b64decode(v["data_b64"]) for k, v in data.items()}


def _same_fields(a: object, b: object) -> list[str]:
    return [f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name)]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["custody_sol", "custody_usdc"])
def test_encoder_reproduces_real_custody_field_for_field(fx: dict[str, bytes], name: str) -> None:
    real = decode_custody(fx[name])
    encoded = encode_custody(real)
    assert encoded == fx[name]
    assert _same_fields(decode_custody(encoded), real) == []


def test_encoder_reproduces_real_ag_price_feed_field_for_field(fx: dict[str, bytes]) -> None:
    real = decode_ag_price_feed_account(fx["doves_ag_sol"])
    encoded = encode_ag_price_feed(real)
    assert encoded == fx["doves_ag_sol"]
    assert _same_fields(decode_ag_price_feed_account(encoded), real) == []


def test_encoder_reproduces_real_position_field_for_field(fx: dict[str, bytes]) -> None:
    raw = fx["position_FBLz"]
    record = np.frombuffer(raw, dtype=POSITION_DTYPE)
    encoded = encode_positions(record.copy())
    assert encoded == [raw]
    again = np.frombuffer(encoded[0], dtype=POSITION_DTYPE)
    assert [n for n in POSITION_DTYPE.names if again[n][0] != record[n][0]] == []


@pytest.mark.parametrize(("asset", "name"), [("SOL", "custody_sol"), ("USDC", "custody_usdc")])
def test_simulated_custody_has_the_mainnet_parameters(fx: dict[str, bytes], asset: str,
                                                      name: str) -> None:
    real = decode_custody(fx[name])
    sim = custody_template(asset, start_s=1_790_000_000)
    assert {f: getattr(sim, f) for f in PARAMETER_FIELDS} == \
        {f: getattr(real, f) for f in PARAMETER_FIELDS}


@pytest.fixture(scope="module")
def small_sim() -> MarketSim:
    sim = MarketSim(SimConfig(seed=11, positions={"SOL": 200, "ETH": 80, "BTC": 80},
                              warmup_min=60), start_time_s=1_795_000_001)
    sim.warm_up()
    return sim


def test_every_simulated_account_decodes(small_sim: MarketSim) -> None:
    writes = {w.pubkey: w for w in small_sim.initial_writes()}
    pool = decode_pool(writes[C.POOL_ADDRESS].data)
    assert set(pool.custodies) == {C.CUSTODY_BY_ASSET[a] for a in SP.POOL_ASSETS}
    assert pool.aum_usd6 > 0
    for market in C.MARKETS:
        custody = decode_custody(writes[C.CUSTODY_BY_ASSET[market]].data)
        feed = writes[custody.doves_ag_oracle]
        assert feed.owner == C.DOVES_PROGRAM_ID
        oracle = decode_ag_price_feed(feed.data)
        assert oracle.price_usd6 == small_sim.price_usd6[market]
        assert oracle.publish_time == small_sim.chain_time(0)
        book = small_sim.books[market]
        blobs = [writes[k].data for k in book.pubkeys]
        decoded = decode_positions(book.pubkeys, blobs)
        assert decoded.errors == {}
        assert len(decoded.records) == len(book.open_rows()) > 0
        assert decoded.n_closed == book.n - len(book.open_rows())
        assert {writes[k].owner for k in book.pubkeys} == {C.PERPS_PROGRAM_ID}
        assert {len(b) for b in blobs} == {C.POSITION_ACCOUNT_SIZE}


def test_position_addresses_are_their_pdas(small_sim: MarketSim) -> None:
    book = small_sim.books["SOL"]
    program = Pubkey.from_string(C.PERPS_PROGRAM_ID)
    for row in range(0, book.n, max(book.n // 25, 1)):
        rec = book.records[row]
        seeds = [b"position", bytes(rec["owner"]), bytes(rec["pool"]), bytes(rec["custody"]),
                 bytes(rec["collateral_custody"]), bytes([int(rec["side"])])]
        key, bump = Pubkey.find_program_address(seeds, program)
        assert (str(key), bump) == (book.pubkeys[row], int(rec["bump"]))
    assert len(set(book.pubkeys)) == book.n


def test_shorts_post_stablecoins_longs_the_asset(small_sim: MarketSim) -> None:
    for market, book in small_sim.books.items():
        rows = book.open_rows()
        rec = book.view()[rows]
        collateral = {str(Pubkey.from_bytes(bytes(k))) for k in rec["collateral_custody"]
                      [rec["side"] == C.SIDE_SHORT]}
        assert collateral <= {C.CUSTODY_BY_ASSET["USDC"], C.CUSTODY_BY_ASSET["USDT"]}
        long_coll = {str(Pubkey.from_bytes(bytes(k))) for k in rec["collateral_custody"]
                     [rec["side"] == C.SIDE_LONG]}
        assert long_coll == {C.CUSTODY_BY_ASSET[market]}
