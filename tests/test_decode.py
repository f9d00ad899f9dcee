"""Decoders against real mainnet bytes (../shared/data), every field of the spec's tables."""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from liqmap import constants as C
from liqmap.errors import DecodeError
from liqmap.jupiter.decode import (
    ERR_DISCRIMINATOR,
    ERR_SIDE,
    ERR_SIZE,
    POSITION_DTYPE,
    decode_ag_price_feed,
    decode_ag_price_feed_account,
    decode_clock,
    decode_custody,
    decode_doves_price_feed,
    decode_pool,
    decode_positions,
    decode_pyth_price_update,
)
from liqmap.jupiter.encode import (
    encode_ag_price_feed,
    encode_custody,
    encode_pool,
    encode_positions,
)

SOL_CUSTODY = C.CUSTODY_BY_ASSET["SOL"]
USDC_CUSTODY = C.CUSTODY_BY_ASSET["USDC"]


@pytest.fixture(scope="module")
def fx(mainnet_accounts_path: Path) -> dict[str, bytes]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: base64.b64decode(v["data_b64"]) for k, v in data.items()}


def test_discriminators_follow_the_anchor_rule() -> None:
    assert C.POSITION_DISCRIMINATOR.hex() == "aabc8fe47a40f7d0"
    assert C.CUSTODY_DISCRIMINATOR.hex() == "01b830515d833f91"
    assert C.POOL_DISCRIMINATOR.hex() == "f19a6d0411b16dbc"
    assert C.POSITION_REQUEST_DISCRIMINATOR.hex() == "0c26fac72e9a20d8"


def _b58decode(text: str) -> bytes:
    """Reference base58 decoder (test-only) to check the memcmp string in constants."""
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = 0
    for ch in text:
        n = n * 58 + alphabet.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + raw


def test_memcmp_string_is_the_position_discriminator() -> None:
    assert _b58decode(C.POSITION_DISCRIMINATOR_B58) == C.POSITION_DISCRIMINATOR


def test_position_every_field(fx: dict[str, bytes]) -> None:
    raw = fx["position_FBLz"]
    assert len(raw) == 216 and raw[210:] == bytes(6)
    rec = np.frombuffer(raw, dtype=POSITION_DTYPE)[0]
    assert rec["discriminator"].tobytes() == C.POSITION_DISCRIMINATOR
    from solders.pubkey import Pubkey

    assert str(Pubkey.from_bytes(rec["owner"].tobytes())) == \
        "815wh1VLC8D7ZWMa3uB7GgjHFetANuML2dPrJiLV1nVF"
    assert str(Pubkey.from_bytes(rec["pool"].tobytes())) == C.POOL_ADDRESS
    assert str(Pubkey.from_bytes(rec["custody"].tobytes())) == SOL_CUSTODY
    assert str(Pubkey.from_bytes(rec["collateral_custody"].tobytes())) == SOL_CUSTODY
    assert rec["open_time"] == 1745832539  # 2025-04-28T09:28:59Z
    assert rec["update_time"] >= rec["open_time"]
    assert rec["side"] == C.SIDE_LONG
    assert rec["price"] == 151_433_252
    assert rec["size_usd"] == 0 and rec["collateral_usd"] == 0
    assert rec["realised_pnl_usd"] == 0 and rec["locked_amount"] == 0
    assert rec["cumulative_interest_snapshot"] == 813_121_107
    assert rec["cumulative_interest_snapshot_hi"] == 0
    # the struct-based reading of the spec's offsets agrees with the numpy layout
    side, price, size = struct.unpack_from("<BQQ", raw, 152)
    assert (side, price, size) == (rec["side"], rec["price"], rec["size_usd"])


def test_closed_position_is_not_open(fx: dict[str, bytes]) -> None:
    decoded = decode_positions(["FBLzd5VM67MEKkoWerXu7Nu1ksbLXQvJDx63y5aeLEvt"],
                               [fx["position_FBLz"]])
    assert len(decoded.records) == 0 and decoded.n_closed == 1 and decoded.n_errors == 0


CUSTODY_EXPECTED = {
    "custody_sol": {
        "pool": C.POOL_ADDRESS, "mint": "So11111111111111111111111111111111111111112",
        "token_account": "BUvduFTd2sWFagCunBPLupG8fBTJqweLw9DuhruNFSCm",
        "decimals": 9, "is_stable": False,
        "oracle_account": "7UVimffxr9ow1uXYxsr4LHAcV58mLzhmwaeKvJ1pjLiE", "oracle_type": 2,
        "oracle_buffer": 50, "max_price_age_sec": 5,
        "trade_impact_fee_scalar": 3_750_000_000_000_000, "pricing_buffer": 0, "swap_spread": 0,
        "max_leverage_bps": 5_000_000, "max_global_long_sizes_usd6": 240_000_000_000_000,
        "max_global_short_sizes_usd6": 112_293_947_657_720, "permissions": b"\x01" * 7,
        "target_ratio_bps": 4700, "fees_reserves": 19_488_934_339,
        "owned": 3_975_394_929_999_087, "locked": 471_295_277_464_702,
        "guaranteed_usd6": 41_231_560_903_284, "global_short_sizes_usd6": 8_084_388_331_162,
        "global_short_average_price_usd6": 104_917_564,
        "cumulative_interest_rate": 1_062_720_906, "funding_last_update": 1_790_256_111,
        "hourly_funding_dbps": 0, "increase_position_bps": 6, "decrease_position_bps": 6,
        "max_position_size_usd6": 10_000_000_000_000,
        "doves_oracle": "39cWjvHrpHNz2SbXv6ME4NPhqBDBd4KsjUYv5JkHEAJU",
        "min_rate_bps": 1000, "max_rate_bps": 15000, "target_rate_bps": 3500,
        "target_utilization_rate": 800_000_000,
        "doves_ag_oracle": "FYq2BWQ1V5P1WFBqr3qB2Kb5yHVvSv7upzKodgQE5zXh",
        "price_impact_last_updated": 1_790_256_111, "price_impact_fee_factor": 1,
        "price_impact_exponent": 1.0, "delta_imbalance_threshold_decimal": 1_500_000_000_000,
        "price_impact_max_fee_bps": 50, "borrows_limit_in_bps": 0,
        "maintainance_margin_bps": 0, "protocol_fee_bps": 0, "liquidation_margin": 0,
        "liquidation_fee_bps": 0, "debt": 0, "withdrawal_limit_interval_seconds": 3600,
    },
    "custody_usdc": {
        "pool": C.POOL_ADDRESS, "mint": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "token_account": "WzWUoCmtVv7eqAbU3BfKPU3fhLP6CXR8NCJH78UK9VS",
        "decimals": 6, "is_stable": True,
        "oracle_account": "Dpw1EAVrSB1ibxiDQyTAW6Zip3J4Btk2x4SgApQCeFbX", "oracle_type": 2,
        "oracle_buffer": 50, "max_price_age_sec": 5, "trade_impact_fee_scalar": 0,
        "max_leverage_bps": 5_000_000, "max_global_long_sizes_usd6": 0,
        "max_global_short_sizes_usd6": 0, "permissions": b"\x01" * 7, "target_ratio_bps": 3000,
        "fees_reserves": 934_225_736, "owned": 128_811_883_899_983,
        "locked": 19_489_148_839_612, "guaranteed_usd6": 0, "global_short_sizes_usd6": 0,
        "global_short_average_price_usd6": 0, "cumulative_interest_rate": 243_922_601,
        "funding_last_update": 1_790_256_101, "hourly_funding_dbps": 0,
        "increase_position_bps": 6, "decrease_position_bps": 6, "max_position_size_usd6": 0,
        "doves_oracle": "A28T5pKtscnhDo6C1Sz786Tup88aTjt8uyKewjVvPrGk",
        "min_rate_bps": 0, "max_rate_bps": 1500, "target_rate_bps": 850,
        "target_utilization_rate": 900_000_000,
        "doves_ag_oracle": "6Jp2xZUTWdDD2ZyUPRzeMdc6AFQ5K3pFgZxk2EijfjnM",
        "price_impact_open_interest": bytes(480), "borrows_limit_in_bps": 8000,
        "maintainance_margin_bps": 9000, "protocol_fee_bps": 2500, "liquidation_margin": 9500,
        "liquidation_fee_bps": 200, "min_interest_fee_bps": 2,
        "min_interest_fee_grace_period_seconds": 10, "withdrawal_limit_interval_seconds": 3600,
    },
}


@pytest.mark.parametrize("name", sorted(CUSTODY_EXPECTED))
def test_custody_every_field(fx: dict[str, bytes], name: str) -> None:
    raw = fx[name]
    assert len(raw) == 2000 and raw[1117:] == bytes(2000 - 1117)
    custody = decode_custody(raw)
    got = asdict(custody)
    for field, value in CUSTODY_EXPECTED[name].items():
        assert got[field] == value, field


def test_usdc_debt_and_sol_staking(fx: dict[str, bytes]) -> None:
    usdc = decode_custody(fx["custody_usdc"])
    assert 1.42e23 < usdc.debt < 1.43e23  # ≈ 142.3M USDC lent out (token x 1e9)
    sol = decode_custody(fx["custody_sol"])
    assert round(sol.total_staked_amount_lamports / 1e9) == 3_501_817


@pytest.mark.parametrize("name", ["custody_sol", "custody_usdc"])
def test_custody_encoder_reproduces_mainnet_bytes(fx: dict[str, bytes], name: str) -> None:
    assert encode_custody(decode_custody(fx[name])) == fx[name]


def test_ag_price_feed_every_field(fx: dict[str, bytes]) -> None:
    raw = fx["doves_ag_sol"]
    feed = decode_ag_price_feed_account(raw)
    assert len(raw) == 394
    assert feed.mint == "So11111111111111111111111111111111111111112"
    assert feed.edge_feed == "39cWjvHrpHNz2SbXv6ME4NPhqBDBd4KsjUYv5JkHEAJU"
    assert feed.cl_feed == "FWLXDDgW2Qm2VuX8MdV99VYpo6X1HLEykUjfAsjz2G78"
    assert feed.pyth_feed == "7UVimffxr9ow1uXYxsr4LHAcV58mLzhmwaeKvJ1pjLiE"
    assert feed.pyth_feed_id.hex().startswith("ef0d8b6f") and feed.pyth_feed_id.hex()[-4:] == "b56d"
    assert (feed.price, feed.expo, feed.timestamp) == (11_500_840_348, -8, 1_790_256_931)
    assert (feed.max_ag_price_age_sec, feed.max_price_feed_age_sec) == (10, 60)
    assert (feed.max_price_diff_bps, feed.bump) == (50, 252)
    assert feed.lazer_feed == "A5d4aY4K4BYEtXdAY7WNBHTKxRMeyAA6RYHWVYEW22Fe"
    assert feed.redstone_feed == "9FboGHATJTgJA7fzG3fKeV1VuLqDsV5HtCGUR2PqZor3"
    price = decode_ag_price_feed(raw)
    assert price.price_usd6 == 115_008_403 and price.publish_time == 1_790_256_931
    assert encode_ag_price_feed(feed) == raw


def test_custody_points_at_its_price_feeds(fx: dict[str, bytes]) -> None:
    custody = decode_custody(fx["custody_sol"])
    assert custody.doves_ag_oracle == "FYq2BWQ1V5P1WFBqr3qB2Kb5yHVvSv7upzKodgQE5zXh"
    assert decode_ag_price_feed_account(fx["doves_ag_sol"]).edge_feed == custody.doves_oracle


def test_legacy_doves_feed(fx: dict[str, bytes]) -> None:
    price = decode_doves_price_feed(fx["doves_sol"])
    assert fx["doves_sol"][8:14] == b"SOLUSD"
    assert price.price_usd6 == 67_828_620 and price.publish_time == 1_780_621_855


def test_pool_round_trip() -> None:
    from liqmap.jupiter.accounts import Pool

    pool = Pool(custodies=tuple(C.CUSTODY_BY_ASSET.values()), aum_usd6=943_382_147_770_150,
                liquidation_reward_bps=150, protocol_share_bps=2500, inception_time=1689677832)
    raw = encode_pool(pool)
    assert decode_pool(raw) == pool
    # spec §4: with 5 custodies the AUM sits at byte 180
    assert int.from_bytes(raw[180:196], "little") == 943_382_147_770_150


def test_pyth_price_update_both_verification_levels() -> None:
    def account(level: bytes) -> bytes:
        head = C.PYTH_PRICE_UPDATE_DISCRIMINATOR + bytes(32) + level + bytes(32)
        return head + struct.pack("<qQiqq", 11_500_000_000, 5_000_000, -8, 1_790_256_930, 0) + \
            bytes(40)

    full = decode_pyth_price_update(account(b"\x01"))
    partial = decode_pyth_price_update(account(b"\x00\x05"))
    assert full.price_usd6 == partial.price_usd6 == 115_000_000
    assert full.publish_time == partial.publish_time == 1_790_256_930


def test_clock_sysvar() -> None:
    raw = struct.pack("<QqQQq", 450_000_000, 1_700_000_000, 1000, 1001, 1_790_256_931)
    clock = decode_clock(raw)
    assert (clock.slot, clock.unix_timestamp) == (450_000_000, 1_790_256_931)


def test_wrong_account_type_is_refused(fx: dict[str, bytes]) -> None:
    with pytest.raises(DecodeError, match="not a Custody"):
        decode_custody(fx["doves_ag_sol"] + bytes(100))
    with pytest.raises(DecodeError, match="needs at least"):
        decode_custody(fx["custody_sol"][:300])


def _open_positions(n: int, side: int = 1) -> np.ndarray:
    from liqmap.jupiter.encode import empty_positions

    rec = empty_positions(n)
    rec["side"] = side
    rec["price"] = 150_000_000
    rec["size_usd"] = np.arange(1, n + 1, dtype=np.uint64) * 1_000_000_000
    rec["collateral_usd"] = 100_000_000
    return rec


def test_vectorised_decode_flags_bad_accounts_never_guesses() -> None:
    good = encode_positions(_open_positions(3))
    bad_side = bytearray(good[1])
    bad_side[152] = 0  # open position with side None: an error, not a long
    foreign = bytearray(good[2])
    foreign[:8] = C.POSITION_REQUEST_DISCRIMINATOR  # custody at 72 too, but another type
    blobs = [good[0], bytes(bad_side), bytes(foreign), good[0][:210]]
    keys = ["a", "b", "c", "d"]
    decoded = decode_positions(keys, blobs)
    assert decoded.pubkeys == ["a"]
    assert decoded.errors == {ERR_SIDE: ["b"], ERR_DISCRIMINATOR: ["c"], ERR_SIZE: ["d"]}


def test_vectorised_decode_equals_struct_decode() -> None:
    rng = np.random.default_rng(7)
    rec = _open_positions(500, side=2)
    rec["side"][rng.random(500) < 0.5] = 1
    rec["price"] = rng.integers(1, 10**11, 500)
    rec["cumulative_interest_snapshot"] = rng.integers(0, 10**10, 500)
    blobs = encode_positions(rec)
    decoded = decode_positions([str(i) for i in range(500)], blobs)
    for i, blob in enumerate(blobs):
        side, price, size, coll = struct.unpack_from("<BQQQ", blob, 152)
        (snap,) = struct.unpack_from("<Q", blob, 185)
        got = decoded.records[i]
        assert (got["side"], got["price"], got["size_usd"], got["collateral_usd"],
                got["cumulative_interest_snapshot"]) == (side, price, size, coll, snap)


def test_encoded_padding_is_zero_even_for_copied_records() -> None:
    rec = _open_positions(50)
    picked = rec[np.arange(0, 50, 3)]  # fancy indexing leaves padding bytes uninitialised
    for blob in encode_positions(picked):
        assert len(blob) == 216 and blob[210:] == bytes(6)


def test_match_keys_needs_all_32_bytes() -> None:
    from liqmap.jupiter.decode import match_keys
    from liqmap.jupiter.encode import key_bytes

    sol, usdc = C.CUSTODY_BY_ASSET["SOL"], C.CUSTODY_BY_ASSET["USDC"]
    twin = key_bytes(sol)[:8] + bytes(24)  # same first 8 bytes as the SOL custody
    keys = np.frombuffer(key_bytes(usdc) + key_bytes(sol) + twin + bytes(32), dtype="V32")
    assert match_keys(keys, [sol, usdc]).tolist() == [1, 0, -1, -1]


def test_spl_mint_supply_and_decimals() -> None:
    from liqmap.errors import DecodeError
    from liqmap.jupiter.decode import decode_spl_mint
    from liqmap.jupiter.encode import encode_spl_mint

    assert decode_spl_mint(encode_spl_mint(123_456_789, 6)) == (123_456_789, 6)
    with pytest.raises(DecodeError, match="SPL mint"):
        decode_spl_mint(b"\x00" * 40)
    with pytest.raises(DecodeError, match="not initialized"):
        decode_spl_mint(b"\x00" * 82)
