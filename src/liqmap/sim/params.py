"""Every parameter of the market simulator, in one place.

Custody values are typical mainnet values (decoded from real Custody bytes of 2026-09, spec §3;
ETH/BTC impact scalars are assumptions, see docs/simulator.md). Addresses are the real mainnet
ones (spec §5), so the collector reads the simulated chain exactly as it reads mainnet. The
trader and price parameters were calibrated against a real 72-hour SOL liquidation matrix
(docs/simulator.md, "Realism").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from liqmap import constants as C
from liqmap.jupiter.accounts import Custody, Pool


@dataclass(frozen=True)
class AssetTemplate:
    """Fixed facts and typical custody parameters of one pool asset.

    Attributes:
        decimals: token decimals of the custody's mint.
        trade_impact_fee_scalar: `pricing.tradeImpactFeeScalar` (0 = no price-impact fee).
        min_rate_bps, max_rate_bps, target_rate_bps: jump-rate borrow model, bps per year.
        target_utilization_rate: RATE-9 (800_000_000 = 80 %).
        start_utilization: locked / owned at the start of a run (sets the pool's size).
        cumulative_interest_start: `cumulativeInterestRate` at the start of the warm-up, RATE-9.
    """

    asset: str
    mint: str
    token_account: str
    decimals: int
    is_stable: bool
    pyth_oracle: str
    doves_oracle: str
    doves_ag_oracle: str
    trade_impact_fee_scalar: int
    min_rate_bps: int
    max_rate_bps: int
    target_rate_bps: int
    target_utilization_rate: int
    target_ratio_bps: int
    max_global_long_sizes_usd6: int
    max_global_short_sizes_usd6: int
    max_position_size_usd6: int
    start_utilization: float
    cumulative_interest_start: int


_VOLATILE = {"min_rate_bps": 1000, "max_rate_bps": 15000, "target_rate_bps": 3500,
             "target_utilization_rate": 800_000_000}
_STABLE = {"min_rate_bps": 0, "max_rate_bps": 1500, "target_rate_bps": 850,
           "target_utilization_rate": 900_000_000}

ASSETS: Final[dict[str, AssetTemplate]] = {
    "SOL": AssetTemplate(
        "SOL", "So11111111111111111111111111111111111111112",
        "BUvduFTd2sWFagCunBPLupG8fBTJqweLw9DuhruNFSCm", 9, False,
        "7UVimffxr9ow1uXYxsr4LHAcV58mLzhmwaeKvJ1pjLiE",
        "39cWjvHrpHNz2SbXv6ME4NPhqBDBd4KsjUYv5JkHEAJU",
        "FYq2BWQ1V5P1WFBqr3qB2Kb5yHVvSv7upzKodgQE5zXh",
        trade_impact_fee_scalar=3_750_000_000_000_000, **_VOLATILE, target_ratio_bps=4700,
        max_global_long_sizes_usd6=240_000_000_000_000,
        max_global_short_sizes_usd6=112_293_947_657_720,
        max_position_size_usd6=10_000_000_000_000, start_utilization=0.12,
        cumulative_interest_start=1_062_720_906),
    "ETH": AssetTemplate(
        "ETH", "7vfCXTUXx5WJV5JADk17DUJ4ksgau7utNKj4b963voxs",
        "Bgarxg65CEjN3kosjCW5Du3wEqvV3dpCGDR3a2HRQsYJ", 8, False,
        "42amVS4KgzR9rA28tkVYqVXjq9Qa8dcZQMbH5EYFX6XC",
        "5URYohbPy32nxK1t3jAHVNfdWY2xTubHiFvLrE3VhXEp",
        "AFZnHPzy4mvVCffrVwhewHbFc93uTHvDSFrVH7GtfXF1",
        trade_impact_fee_scalar=5_000_000_000_000_000, **_VOLATILE, target_ratio_bps=1000,
        max_global_long_sizes_usd6=100_000_000_000_000,
        max_global_short_sizes_usd6=50_000_000_000_000,
        max_position_size_usd6=10_000_000_000_000, start_utilization=0.10,
        cumulative_interest_start=980_114_512),
    "BTC": AssetTemplate(
        "BTC", "3NZ9JMVBmGAqocybic2c7LQCJScmgsAZ6vQqTDzcqmJh",
        "FgpXg2J3TzSs7w3WGYYE7aWePdrxBVLCXSxmAKnCZNtZ", 8, False,
        "4cSM2e6rvbGQUFiJbqytoVMi5GgghSMr8LwVrT9VPSPo",
        "4HBbPx9QJdjJ7GUe6bsiJjGybvfpDhQMMPXP1UEa7VT5",
        "hUqAT1KQ7eW1i6Csp9CXYtpPfSAvi835V7wKi5fRfmC",
        trade_impact_fee_scalar=12_500_000_000_000_000, **_VOLATILE, target_ratio_bps=1100,
        max_global_long_sizes_usd6=150_000_000_000_000,
        max_global_short_sizes_usd6=75_000_000_000_000,
        max_position_size_usd6=10_000_000_000_000, start_utilization=0.10,
        cumulative_interest_start=874_301_166),
    "USDC": AssetTemplate(
        "USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "WzWUoCmtVv7eqAbU3BfKPU3fhLP6CXR8NCJH78UK9VS", 6, True,
        "Dpw1EAVrSB1ibxiDQyTAW6Zip3J4Btk2x4SgApQCeFbX",
        "A28T5pKtscnhDo6C1Sz786Tup88aTjt8uyKewjVvPrGk",
        "6Jp2xZUTWdDD2ZyUPRzeMdc6AFQ5K3pFgZxk2EijfjnM",
        trade_impact_fee_scalar=0, **_STABLE, target_ratio_bps=3000,
        max_global_long_sizes_usd6=0, max_global_short_sizes_usd6=0, max_position_size_usd6=0,
        start_utilization=0.55, cumulative_interest_start=243_922_601),
    "USDT": AssetTemplate(
        "USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB",
        "Gex24YznvguMad1mBzTQ7a64U1CJy59gvsStQmNnnwAd", 6, True,
        "HT2PLQBcG5EiCcNSaMHAjSgd9F98ecpATbk4Sk5oYuM",
        "AGW7q2a3WxCzh5TB2Q6yNde1Nf41g3HLaaXdybz7cbBU",
        "Fgc93D641F8N2d1xLjQ4jmShuD3GE3BsCXA56KBQbF5u",
        trade_impact_fee_scalar=0, **_STABLE, target_ratio_bps=1000,
        max_global_long_sizes_usd6=0, max_global_short_sizes_usd6=0, max_position_size_usd6=0,
        start_utilization=0.40, cumulative_interest_start=251_480_377),
}
POOL_ASSETS: Final = ("SOL", "ETH", "BTC", "USDC", "USDT")

#: Fields every simulated custody shares (typical mainnet values, spec §3.1).
CUSTODY_BASE: Final = Custody(
    pool=C.POOL_ADDRESS, oracle_type=2, oracle_buffer=50, max_price_age_sec=5,
    max_leverage_bps=5_000_000, permissions=bytes([1] * 7), increase_position_bps=6,
    decrease_position_bps=6, bump=253, token_account_bump=255,
    withdrawal_limit_interval_seconds=3600)
#: Typical Pool fees and limits (POOLFX 2026-10, spec §4).
POOL_BASE: Final = Pool(
    max_aum_usd6=3_000_000_000_000_000, token_weightage_buffer_bps=1000, swap_multiplier=100,
    stable_swap_multiplier=100, add_remove_liquidity_bps=20, swap_bps=10, tax_bps=100,
    stable_swap_bps=2, stable_swap_tax_bps=5, liquidation_reward_bps=150,
    protocol_share_bps=2500, fee_apr_bps=969, max_request_execution_sec=45, bump=252,
    lp_token_bump=254, inception_time=1_689_677_832)

# ---------------------------------------------------------------- oracle feeds
FEED_EXPO: Final = -8  # AgPriceFeed prices are price x 1e-8 USD (spec §7.1)
FEED_MAX_AG_PRICE_AGE_S: Final = 10
FEED_MAX_PRICE_FEED_AGE_S: Final = 60
FEED_MAX_PRICE_DIFF_BPS: Final = C.PRICE_DIVERGENCE_BPS  # mainnet AgPriceFeed maxPriceDiffBps
FEED_BUMP: Final = 252
STABLE_PRICE_USD: Final = 1.0
#: JLP price at the start of a simulation (sets the JLP mint's supply from the pool's AUM).
JLP_PRICE_USD: Final = 4.5


# ---------------------------------------------------------------- price model
@dataclass(frozen=True)
class PriceModel:
    """GARCH(1,1) minute returns with volatility clustering, plus Poisson jumps.

    Attributes:
        start_price_usd: price at minute 0.
        annual_vol: long-run volatility of the diffusion part, fraction per sqrt(year).
        garch_alpha, garch_beta: weight of the last squared shock and of the last variance
            (alpha + beta < 1; close to 1 = long volatility clusters).
        jumps_per_day: mean number of jumps per day.
        jump_scale: mean absolute jump size, fraction of the price (Laplace distributed).
    """

    start_price_usd: float
    annual_vol: float
    garch_alpha: float = 0.12
    garch_beta: float = 0.86
    jumps_per_day: float = 4.0
    jump_scale: float = 0.004


PRICE_MODELS: Final[dict[str, PriceModel]] = {
    "SOL": PriceModel(start_price_usd=185.0, annual_vol=0.80),
    "ETH": PriceModel(start_price_usd=3500.0, annual_vol=0.65),
    "BTC": PriceModel(start_price_usd=100_000.0, annual_vol=0.45, jump_scale=0.003),
}
#: Correlation of the markets' Gaussian shocks (one common factor).
PRICE_CORRELATION: Final = 0.7
MINUTES_PER_YEAR: Final = 525_600
#: Variance of a minute's return is capped at this multiple of the long-run variance.
MAX_VARIANCE_MULTIPLE: Final = 25.0


# ---------------------------------------------------------------- traders
@dataclass(frozen=True)
class TraderModel:
    """How traders open, change and close positions (per market; rates per minute).

    Attributes:
        target_positions: open positions the market fluctuates around.
        long_share: probability that a new position is a long.
        usdt_short_share: share of shorts posting USDT instead of USDC as collateral.
        round_leverages, round_weights: leverages traders pick from the UI's presets.
        round_leverage_share: share of traders picking a preset; the others pick a
            log-normal leverage (median `free_leverage_median`, log-sd `free_leverage_sigma`).
        size_median_usd, size_sigma: log-normal position size (USD notional).
        mean_hold_min: mean holding time of a 10x position of median size, minutes (higher
            leverage is held shorter, bigger sizes longer: hazard x (leverage / 10) **
            `hold_leverage_power` x (size / median) ** -`hold_size_power`).
        partial_close_share, increase_share: hazards of a partial close / an increase,
            relative to the full-close hazard.
        limit_share: share of new positions that are limit orders at round price levels.
        limit_distance: mean distance of a limit order from the price, fraction.
        limit_expiry_min: mean life of an unfilled limit order, minutes.
        history_spread: log-sd of the entry prices of positions opened before the warm-up.
    """

    target_positions: int
    long_share: float = 0.75
    usdt_short_share: float = 0.15
    round_leverages: tuple[float, ...] = (2, 3, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150,
                                          200, 250, 500)
    round_weights: tuple[float, ...] = (3, 3, 7, 16, 8, 16, 8, 5, 5, 15, 6, 13, 4, 3, 2, 2)
    round_leverage_share: float = 0.55
    free_leverage_median: float = 14.0
    free_leverage_sigma: float = 0.75
    size_median_usd: float = 1250.0
    size_sigma: float = 2.0
    min_size_usd: float = 10.0
    mean_hold_min: float = 240.0
    hold_leverage_power: float = 0.2
    hold_size_power: float = 0.5
    partial_close_share: float = 0.1
    increase_share: float = 0.1
    limit_share: float = 0.35
    limit_distance: float = 0.012
    limit_expiry_min: float = 720.0
    history_spread: float = 0.04


DEFAULT_POSITIONS: Final[dict[str, int]] = {"SOL": 2000, "ETH": 800, "BTC": 800}
#: Round price levels: multiples of ROUND_STEP_FRACTION x 10^(digits of the price - 1).
ROUND_STEP_FRACTION: Final = 0.01
#: ...and a share of the round orders snap to 5x that step (stronger levels).
STRONG_ROUND_SHARE: Final = 0.5
STRONG_ROUND_MULTIPLE: Final = 5
#: A new or increased position must be at least this far (fraction) from liquidation.
MIN_LIQ_DISTANCE: Final = 0.0008
#: Limit orders placed per new position wanted from limits (about half expire unfilled).
LIMIT_PLACEMENT_FACTOR: Final = 2.0
#: Wallets available per target position (a wallet trades several markets over time).
WALLETS_PER_POSITION: Final = 2.0
#: Cap of new positions per minute while the book fills up (share of the target).
MAX_FILL_SHARE_PER_MIN: Final = 0.02
#: The float pre-filter sends positions this close to the price (fraction) to the exact check.
EXACT_CHECK_BAND: Final = 0.002

# ---------------------------------------------------------------- time
#: Minutes simulated (not written) before minute 0, so the book has history.
WARMUP_MIN: Final = 360
#: Mean age (minutes) of the positions that exist when the warm-up starts.
HISTORY_MEAN_AGE_MIN: Final = 4320
#: The chain clock sits this many seconds after each simulated minute's boundary.
CLOCK_OFFSET_S: Final = 1
DEFAULT_SPEED_S: Final = 1.0
SECONDS_PER_MINUTE: Final = 60
DEFAULT_SEED: Final = 7

# ---------------------------------------------------------------- account owners
PERPS_OWNER: Final = C.PERPS_PROGRAM_ID
DOVES_OWNER: Final = C.DOVES_PROGRAM_ID

#: seed stream of the extra closed Position accounts (`--closed-accounts`)
CLOSED_ACCOUNTS_STREAM: Final = 0xC105ED
