"""Byte layouts of the accounts liqmap reads and (for the simulator) writes. Pure data.

Offsets are those of the spec (docs/jupiter-perps.md §2.1, §3.1, §4, §7.1), verified against
real mainnet bytes in the tests. `decode` and `encode` both work from these tables, so a
layout change is made in one place.
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from liqmap import constants as C

#: field kinds: (struct format or special, size in bytes)
KIND_SIZE: Final[dict[str, int]] = {
    "u8": 1, "bool": 1, "i8": 1, "u32": 4, "f32": 4, "u64": 8, "i64": 8, "u128": 16,
    "pubkey": 32, "bytes7": 7, "bytes32": 32, "bytes480": 480,
}

# ---------------------------------------------------------------- Position (216 bytes)
POSITION_FIELDS: Final[list[tuple[str, str, int]]] = [
    ("discriminator", "<u8", 0),
    ("owner", "V32", 8),
    ("pool", "V32", 40),
    ("custody", "V32", 72),
    ("collateral_custody", "V32", 104),
    ("open_time", "<i8", 136),
    ("update_time", "<i8", 144),
    ("side", "u1", 152),
    ("price", "<u8", 153),
    ("size_usd", "<u8", 161),
    ("collateral_usd", "<u8", 169),
    ("realised_pnl_usd", "<i8", 177),
    ("cumulative_interest_snapshot", "<u8", 185),  # low 64 bits of the u128
    ("cumulative_interest_snapshot_hi", "<u8", 193),
    ("locked_amount", "<u8", 201),
    ("bump", "u1", 209),
]
POSITION_DTYPE: Final = np.dtype({
    "names": [f[0] for f in POSITION_FIELDS],
    "formats": [f[1] for f in POSITION_FIELDS],
    "offsets": [f[2] for f in POSITION_FIELDS],
    "itemsize": C.POSITION_ACCOUNT_SIZE,
})

# ---------------------------------------------------------------- Custody (2,000 bytes)
CUSTODY_ACCOUNT_SIZE: Final = 2000
CUSTODY_FIELDS: Final[list[tuple[str, str, int]]] = [
    ("pool", "pubkey", 8),
    ("mint", "pubkey", 40),
    ("token_account", "pubkey", 72),
    ("decimals", "u8", 104),
    ("is_stable", "bool", 105),
    ("oracle_account", "pubkey", 106),  # Pyth PriceUpdateV2
    ("oracle_type", "u8", 138),
    ("oracle_buffer", "u64", 139),
    ("max_price_age_sec", "u32", 147),
    ("trade_impact_fee_scalar", "u64", 151),
    ("pricing_buffer", "u64", 159),
    ("swap_spread", "u64", 167),
    ("max_leverage_bps", "u64", 175),  # 5_000_000 = 500x
    ("max_global_long_sizes_usd6", "u64", 183),
    ("max_global_short_sizes_usd6", "u64", 191),
    ("permissions", "bytes7", 199),
    ("target_ratio_bps", "u64", 206),
    ("fees_reserves", "u64", 214),
    ("owned", "u64", 222),  # tokens, custody decimals
    ("locked", "u64", 230),
    ("guaranteed_usd6", "u64", 238),
    ("global_short_sizes_usd6", "u64", 246),
    ("global_short_average_price_usd6", "u64", 254),
    ("cumulative_interest_rate", "u128", 262),  # RATE-9
    ("funding_last_update", "i64", 278),  # unix s
    ("hourly_funding_dbps", "u64", 286),
    ("bump", "u8", 294),
    ("token_account_bump", "u8", 295),
    ("increase_position_bps", "u64", 296),
    ("decrease_position_bps", "u64", 304),
    ("max_position_size_usd6", "u64", 312),
    ("doves_oracle", "pubkey", 320),  # legacy Doves PriceFeed
    ("min_rate_bps", "u64", 352),
    ("max_rate_bps", "u64", 360),
    ("target_rate_bps", "u64", 368),
    ("target_utilization_rate", "u64", 376),  # RATE-9
    ("doves_ag_oracle", "pubkey", 384),  # Doves AgPriceFeed: the price the program uses
    ("price_impact_open_interest", "bytes480", 416),
    ("price_impact_last_updated", "i64", 896),
    ("price_impact_fee_factor", "u64", 904),
    ("price_impact_exponent", "f32", 912),
    ("delta_imbalance_threshold_decimal", "u64", 916),
    ("price_impact_max_fee_bps", "u64", 924),
    ("borrows_limit_in_bps", "u64", 932),
    ("maintainance_margin_bps", "u64", 940),
    ("protocol_fee_bps", "u64", 948),
    ("liquidation_margin", "u64", 956),
    ("liquidation_fee_bps", "u64", 964),
    ("borrows_cumulative_interest_rate", "u128", 972),
    ("borrows_last_update", "i64", 988),
    ("borrows_hourly_funding_dbps", "u64", 996),
    ("debt", "u128", 1004),  # token x 1e9, borrow-lend product
    ("borrow_lend_interests_accrued", "u128", 1020),
    ("borrow_limit_in_token_amount", "u64", 1036),
    ("min_interest_fee_bps", "u64", 1044),
    ("min_interest_fee_grace_period_seconds", "u64", 1052),
    ("total_staked_amount_lamports", "u64", 1060),
    ("max_total_staked_amount_lamports", "u64", 1068),
    ("external_swap_fee_multiplier_bps", "u64", 1076),
    ("disable_close_position_request", "bool", 1084),
    ("withdrawal_limit_token_amount", "u64", 1085),
    ("withdrawal_token_amount_accumulated", "u64", 1093),
    ("withdrawal_limit_last_reset_at", "i64", 1101),
    ("withdrawal_limit_interval_seconds", "u64", 1109),
]
#: bytes a custody must have for liqmap to price positions (ends with dovesAgOracle)
CUSTODY_MIN_SIZE: Final = 416

# ---------------------------------------------------------------- Doves AgPriceFeed (394 bytes)
AG_PRICE_FEED_ACCOUNT_SIZE: Final = 394
AG_PRICE_FEED_FIELDS: Final[list[tuple[str, str, int]]] = [
    ("mint", "pubkey", 8),
    ("edge_feed", "pubkey", 40),
    ("cl_feed", "pubkey", 72),
    ("pyth_feed", "pubkey", 104),
    ("pyth_feed_id", "bytes32", 136),
    ("price", "u64", 168),
    ("expo", "i8", 176),
    ("timestamp", "i64", 177),
    ("max_ag_price_age_sec", "u32", 185),
    ("max_price_feed_age_sec", "u32", 189),
    ("max_price_diff_bps", "u64", 193),
    ("bump", "u8", 201),
    ("lazer_feed", "pubkey", 202),
    ("redstone_feed", "pubkey", 234),
]
AG_PRICE_FEED_MIN_SIZE: Final = 202

# ---------------------------------------------------------------- Pool (variable head)
#: offsets relative to A = end of the custodies vec (spec §4)
POOL_TAIL_FIELDS: Final[list[tuple[str, str, int]]] = [
    ("aum_usd6", "u128", 0),
    ("max_aum_usd6", "u128", 16),
    ("token_weightage_buffer_bps", "u128", 32),
    ("limit_buffer", "u64", 48),
    ("swap_multiplier", "u64", 56),
    ("stable_swap_multiplier", "u64", 64),
    ("add_remove_liquidity_bps", "u64", 72),
    ("swap_bps", "u64", 80),
    ("tax_bps", "u64", 88),
    ("stable_swap_bps", "u64", 96),
    ("stable_swap_tax_bps", "u64", 104),
    ("liquidation_reward_bps", "u64", 112),
    ("protocol_share_bps", "u64", 120),
    ("apr_last_updated", "i64", 128),
    ("fee_apr_bps", "u64", 136),
    ("realized_fee_usd6", "u64", 144),
    ("max_request_execution_sec", "i64", 152),
    ("bump", "u8", 160),
    ("lp_token_bump", "u8", 161),
    ("inception_time", "i64", 162),
]
POOL_TAIL_SIZE: Final = 170


# ---------------------------------------------------------------- generic field codec
_STRUCT = {"u8": "<B", "i8": "<b", "u32": "<I", "f32": "<f", "u64": "<Q", "i64": "<q"}


def read_fields(data: bytes, table: list[tuple[str, str, int]], base: int = 0
                ) -> dict[str, object]:
    """Decode `table`'s fields from `data`; fields past the end of `data` read as zero.

    Pubkeys become base58 strings, raw byte fields stay bytes, bools become bool.
    """
    from solders.pubkey import Pubkey

    out: dict[str, object] = {}
    for name, kind, off in table:
        start, size = base + off, KIND_SIZE[kind]
        chunk = data[start:start + size]
        if len(chunk) < size:
            chunk = bytes(size)
        if kind == "pubkey":
            out[name] = str(Pubkey.from_bytes(chunk))
        elif kind == "u128":
            out[name] = int.from_bytes(chunk, "little")
        elif kind == "bool":
            out[name] = bool(chunk[0])
        elif kind.startswith("bytes"):
            out[name] = bytes(chunk)
        else:
            out[name] = struct.unpack(_STRUCT[kind], chunk)[0]
    return out


def write_fields(buf: bytearray, table: list[tuple[str, str, int]], values: dict[str, object],
                 base: int = 0) -> None:
    """Encode `values` (all fields of `table`) into `buf` at their offsets."""
    from solders.pubkey import Pubkey

    for name, kind, off in table:
        start, size = base + off, KIND_SIZE[kind]
        value = values[name]
        if kind == "pubkey":
            raw = bytes(Pubkey.from_string(str(value)))
        elif kind == "u128":
            raw = int(value).to_bytes(16, "little")  # type: ignore[call-overload]
        elif kind == "bool":
            raw = bytes([1 if value else 0])
        elif kind.startswith("bytes"):
            raw = bytes(value)  # type: ignore[call-overload]
            if len(raw) != size:
                raise ValueError(f"{name} must be {size} bytes, got {len(raw)}")
        else:
            raw = struct.pack(_STRUCT[kind], value)
        buf[start:start + size] = raw
