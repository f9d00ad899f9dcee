"""Frozen dataclasses of the accounts liqmap reads (field names follow `layouts`).

Integers are raw on-chain units: USD-6 (suffix `_usd6`), RATE-9, basis points (`_bps`), tokens
in the custody's decimals, unix seconds. Every field has a default so tests and the simulator
can build accounts by naming only what matters to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from liqmap import constants as C

ZERO_KEY = "11111111111111111111111111111111"


@dataclass(frozen=True)
class Custody:
    """A Custody account (spec §3.1), every field of the 2026 layout."""

    pool: str = ZERO_KEY
    mint: str = ZERO_KEY
    token_account: str = ZERO_KEY
    decimals: int = 0
    is_stable: bool = False
    oracle_account: str = ZERO_KEY  # Pyth PriceUpdateV2
    oracle_type: int = 0
    oracle_buffer: int = 0
    max_price_age_sec: int = 0
    trade_impact_fee_scalar: int = 0
    pricing_buffer: int = 0
    swap_spread: int = 0
    max_leverage_bps: int = 0  # 5_000_000 = 500x
    max_global_long_sizes_usd6: int = 0
    max_global_short_sizes_usd6: int = 0
    permissions: bytes = bytes(7)
    target_ratio_bps: int = 0
    fees_reserves: int = 0
    owned: int = 0  # tokens, in the custody's decimals
    locked: int = 0  # tokens
    guaranteed_usd6: int = 0
    global_short_sizes_usd6: int = 0
    global_short_average_price_usd6: int = 0
    cumulative_interest_rate: int = 0  # RATE-9 (1e9 = 100 % of notional)
    funding_last_update: int = 0  # unix s
    hourly_funding_dbps: int = 0
    bump: int = 0
    token_account_bump: int = 0
    increase_position_bps: int = 0
    decrease_position_bps: int = 0
    max_position_size_usd6: int = 0
    doves_oracle: str = ZERO_KEY  # legacy Doves PriceFeed
    min_rate_bps: int = 0
    max_rate_bps: int = 0
    target_rate_bps: int = 0
    target_utilization_rate: int = 0  # RATE-9
    doves_ag_oracle: str = ZERO_KEY  # Doves AgPriceFeed, the price the program uses
    price_impact_open_interest: bytes = bytes(480)
    price_impact_last_updated: int = 0
    price_impact_fee_factor: int = 0
    price_impact_exponent: float = 0.0
    delta_imbalance_threshold_decimal: int = 0
    price_impact_max_fee_bps: int = 0
    borrows_limit_in_bps: int = 0
    maintainance_margin_bps: int = 0
    protocol_fee_bps: int = 0
    liquidation_margin: int = 0
    liquidation_fee_bps: int = 0
    borrows_cumulative_interest_rate: int = 0
    borrows_last_update: int = 0
    borrows_hourly_funding_dbps: int = 0
    debt: int = 0  # token x 1e9, borrow-lend product
    borrow_lend_interests_accrued: int = 0
    borrow_limit_in_token_amount: int = 0
    min_interest_fee_bps: int = 0
    min_interest_fee_grace_period_seconds: int = 0
    total_staked_amount_lamports: int = 0
    max_total_staked_amount_lamports: int = 0
    external_swap_fee_multiplier_bps: int = 0
    disable_close_position_request: bool = False
    withdrawal_limit_token_amount: int = 0
    withdrawal_token_amount_accumulated: int = 0
    withdrawal_limit_last_reset_at: int = 0
    withdrawal_limit_interval_seconds: int = 0


@dataclass(frozen=True)
class AgPriceFeed:
    """A Doves AgPriceFeed account (spec §7.1): price = price x 10^expo USD."""

    mint: str = ZERO_KEY
    edge_feed: str = ZERO_KEY
    cl_feed: str = ZERO_KEY
    pyth_feed: str = ZERO_KEY
    pyth_feed_id: bytes = bytes(32)
    price: int = 0
    expo: int = 0
    timestamp: int = 0
    max_ag_price_age_sec: int = 0
    max_price_feed_age_sec: int = 0
    max_price_diff_bps: int = 0
    bump: int = 0
    lazer_feed: str = ZERO_KEY
    redstone_feed: str = ZERO_KEY


@dataclass(frozen=True)
class Pool:
    """The JLP Pool account (spec §4): name, custodies, then fixed fields."""

    name: str = "Pool"
    custodies: tuple[str, ...] = ()
    aum_usd6: int = 0
    max_aum_usd6: int = 0
    token_weightage_buffer_bps: int = 0
    limit_buffer: int = 0
    swap_multiplier: int = 0
    stable_swap_multiplier: int = 0
    add_remove_liquidity_bps: int = 0
    swap_bps: int = 0
    tax_bps: int = 0
    stable_swap_bps: int = 0
    stable_swap_tax_bps: int = 0
    liquidation_reward_bps: int = 0
    protocol_share_bps: int = 0
    apr_last_updated: int = 0
    fee_apr_bps: int = 0
    realized_fee_usd6: int = 0
    max_request_execution_sec: int = 0
    bump: int = 0
    lp_token_bump: int = 0
    inception_time: int = 0


@dataclass(frozen=True)
class OraclePrice:
    """A price with its publish time: `price_usd6` (USD-6), `publish_time` (unix s)."""

    price_usd6: int
    publish_time: int
    feed: str = ""

    @property
    def price_usd(self) -> float:
        return self.price_usd6 / C.USD_PRECISION


@dataclass(frozen=True)
class ClockSysvar:
    """The Clock sysvar: `slot`, `unix_timestamp` (the chain's time, unix s)."""

    slot: int
    unix_timestamp: int
