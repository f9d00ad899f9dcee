"""Every fixed id, byte layout constant, precision and default of liqmap, in one place.

Sources are the keys of the on-chain spec (docs/jupiter-perps.md in the shared material):
CONST, IDL25/IDL26, DOCS-*, FX.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

# --- Time units -------------------------------------------------------------------------
US_PER_S: Final = 1_000_000
US_PER_MINUTE: Final = 60 * US_PER_S
NS_PER_MINUTE: Final = 1_000 * US_PER_MINUTE

# --- Programs and fixed accounts (CONST, IDL26) -------------------------------------------
PERPS_PROGRAM_ID: Final = "PERPHjGBqRHArX4DySjwM6UJHiR3sWAatqfdBS2qQJu"
DOVES_PROGRAM_ID: Final = "DoVEsk76QybCEHQGzkvYPWLQu9gzNoZZZt3TPiL597e"
POOL_ADDRESS: Final = "5BUwFW4nRbftYTDMbgxykoFWqWHPzahFSNAaaaJtVKsq"
JLP_MINT: Final = "27G8MtK7VtTcCHkpASjSDdkWWYfoqT6ggEuKidVJidD4"
CLOCK_SYSVAR: Final = "SysvarC1ock11111111111111111111111111111111"

#: Custody account of each traded market and of the stablecoins shorts post as collateral.
CUSTODY_BY_ASSET: Final[dict[str, str]] = {
    "SOL": "7xS2gz2bTp3fwCC7knJvUWTEU9Tycczu6VhJYKgi1wdz",
    "ETH": "AQCGyheWPLeo6Qp9WpYS9m3Qj479t7R636N9ey1rEjEn",
    "BTC": "5Pv3gM9JrFFH883SWAhvJC9RPYmo8UNxuFtv5bMMALkm",
    "USDC": "G18jKKXQwBbrHeiK3C9MRXhkHsLHf7XgCSisykV46EZa",
    "USDT": "4vkNeXiYEUizLdrpdPS1eC2mccyM4NUPRtERrk6ZETkk",
}
MARKETS: Final = ("SOL", "ETH", "BTC")
STABLES: Final = ("USDC", "USDT")
ASSET_BY_CUSTODY: Final[dict[str, str]] = {v: k for k, v in CUSTODY_BY_ASSET.items()}


def anchor_discriminator(account_name: str) -> bytes:
    """First 8 bytes of sha256("account:<Name>"), the Anchor account discriminator."""
    return hashlib.sha256(f"account:{account_name}".encode()).digest()[:8]


POSITION_DISCRIMINATOR: Final = anchor_discriminator("Position")
CUSTODY_DISCRIMINATOR: Final = anchor_discriminator("Custody")
POOL_DISCRIMINATOR: Final = anchor_discriminator("Pool")
POSITION_REQUEST_DISCRIMINATOR: Final = anchor_discriminator("PositionRequest")
#: base58 of POSITION_DISCRIMINATOR, for the getProgramAccounts memcmp filter (spec §1).
POSITION_DISCRIMINATOR_B58: Final = "VZMoMoKgZQb"
AG_PRICE_FEED_DISCRIMINATOR: Final = bytes.fromhex("70f98bd9d7d0f936")
DOVES_PRICE_FEED_DISCRIMINATOR: Final = bytes.fromhex("bd67fc179823f39c")
PYTH_PRICE_UPDATE_DISCRIMINATOR: Final = bytes.fromhex("22f123639d7ef4cd")

#: Bitcoin's base58 alphabet, as Solana writes keys and signatures.
BASE58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# --- Account sizes ------------------------------------------------------------------------
POSITION_ACCOUNT_SIZE: Final = 216  # 210 Borsh bytes + 6 padding (FX, SW)
POSITION_CUSTODY_OFFSET: Final = 72  # memcmp offset of Position.custody
CLOCK_SIZE: Final = 40

# --- Precision ----------------------------------------------------------------------------
USD_DECIMALS: Final = 6
USD_PRECISION: Final = 10**USD_DECIMALS  # USD-6: integer micro-dollars
BPS_POWER: Final = 10_000
RATE_POWER: Final = 1_000_000_000  # RATE-9
SECONDS_PER_HOUR: Final = 3600
HOURS_PER_YEAR: Final = 8760
DBPS_POWER: Final = 100_000  # hourlyFundingDbps denominator

SIDE_LONG: Final = 1
SIDE_SHORT: Final = 2
SIDE_NAMES: Final[dict[int, str]] = {SIDE_LONG: "long", SIDE_SHORT: "short"}

# --- Storage ------------------------------------------------------------------------------
#: Rows per Parquet row group in compacted hour and day files.
COMPACT_ROW_GROUP_ROWS: Final = 256 * 1024

# --- Defaults -----------------------------------------------------------------------------
DEFAULT_RPC_URL: Final = "https://api.mainnet-beta.solana.com"
DEFAULT_DATA_DIR: Final = "./data"
DEFAULT_INTERVAL_S: Final = 60.0
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_GPA_TIMEOUT_S: Final = 120.0
DEFAULT_MAX_RETRIES: Final = 5
DEFAULT_BACKOFF_S: Final = 0.5
DEFAULT_BACKOFF_MAX_S: Final = 15.0
CONFIG_FILE_NAME: Final = "liqmap.toml"
ENV_PREFIX: Final = "LIQMAP_"

#: Oracle older than this at snapshot time is flagged in the log line.
ORACLE_STALE_AFTER_S: Final = 120
#: Pyth differing from the Doves price by more than this is flagged (AgPriceFeed maxPriceDiffBps).
PRICE_DIVERGENCE_BPS: Final = 50
#: Closed hours/days are compacted once they are this far in the past.
COMPACTION_GRACE_S: Final = 300
#: Positions files without a committing market-state file are removed after this long.
ORPHAN_GRACE_S: Final = 600

# --- Legacy format (the old scripts' CSV) -------------------------------------------------
LEGACY_CSV_NAME: Final = "sol_positions_log.csv"
LEGACY_COLUMNS: Final = ("liq_price", "size_sol", "t_bin")
LEGACY_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

# --- Times in outputs ---------------------------------------------------------------------
#: A time to the second in UTC, as every machine-readable output writes it (API and JSON
#: answers, reports, alerts, the command lines a step prints): `2025-08-22T04:37:00Z`.
ISO_SECONDS_UTC: Final = "%Y-%m-%dT%H:%M:%SZ"

# --- Heatmap defaults per market ----------------------------------------------------------
#: The default price bin is about this fraction of the price (0.05 %), rounded to 1-2-5 steps.
DEFAULT_BIN_FRACTION: Final = 0.0005
#: The default bin (USD) when no price is known: 0.05 % of a typical 2025-26 price, 1-2-5 grid.
DEFAULT_BIN_USD_BY_MARKET: Final[dict[str, float]] = {"SOL": 0.1, "ETH": 2.0, "BTC": 50.0}
#: Price step (USD) of the pre-binned roll-ups beside position versions: a decade below the
#: default bin's, so every 1-2-5 bin from the step up is a whole number of steps.
ROLLUP_STEP_USD_BY_MARKET: Final[dict[str, float]] = {"SOL": 0.01, "ETH": 0.1, "BTC": 1.0}
#: A roll-up's price grid reaches this multiple of the day's highest oracle or entry price;
#: prices above it are kept as one "above" amount (a window reaching higher is binned exactly).
ROLLUP_TOP_FACTOR: Final = 3.0
#: Default heatmap window (hours) when --t-start/--t-end are missing.
DEFAULT_WINDOW_HOURS_BY_MARKET: Final[dict[str, int]] = {"SOL": 24, "ETH": 24, "BTC": 24}
#: Default price range: this fraction below the lowest and above the highest price of the
#: window. Traders take less leverage on the more volatile asset, so its liquidations spread
#: further from the price.
DEFAULT_PRICE_MARGIN_BY_MARKET: Final[dict[str, float]] = {"SOL": 0.20, "ETH": 0.15,
                                                           "BTC": 0.10}

# --- Stream mode (live book over WebSocket) -----------------------------------------------
POSITION_SIZE_USD_OFFSET: Final = 161  # Position.sizeUsd, u64 USD-6 (key-only scan slice)
DEFAULT_RESYNC_S: Final = 1800.0  # seconds between periodic resyncs of the book
#: no notification for this long while slots advance: the stream is considered stalled
DEFAULT_MAX_SILENCE_S: Final = 90.0
#: no slot notification for this long: the connection is considered dead
SLOT_SILENCE_S: Final = 20.0
WS_MAX_MESSAGE_BYTES: Final = 16 * 2**20  # one notification is ~0.5 kB; replies can be large
WS_PING_INTERVAL_S: Final = 20.0
WS_OPEN_TIMEOUT_S: Final = 10.0
WS_BACKOFF_S: Final = 0.5  # first reconnect delay; x2 per failure with jitter
WS_BACKOFF_MAX_S: Final = 60.0
#: a connection that drops sooner than this after opening counts as a failure (backoff grows)
WS_STABLE_AFTER_S: Final = 30.0
GPA_V2_PAGE_LIMIT: Final = 10_000  # accounts per getProgramAccountsV2 page
#: a snapshot waits at most this long for the stream to pass the slot of its Clock read
STREAM_CATCH_UP_S: Final = 2.0
#: `--clock chain`: seconds between Clock reads while waiting for the next boundary; a stream
#: collector reads it at once when the stream's slots jump (a simulator moved its clock, which
#: also moves the slot) and otherwise only every CHAIN_CLOCK_STREAM_POLL_S
CHAIN_CLOCK_POLL_S: Final = 0.25
CHAIN_CLOCK_STREAM_POLL_S: Final = 1.0
#: while waiting for a slot notification, how often the wait checks that the book is in sync
STREAM_READY_CHECK_S: Final = 0.25
#: longest wait between attempts of a failed book load (the transport has its own backoff)
BOOK_LOAD_RETRY_MAX_S: Final = 2.0
#: at startup, stream mode waits this long for the first book load before its first cycle
STREAM_FIRST_LOAD_WAIT_S: Final = 60.0
# --- liqmap serve -------------------------------------------------------------------------
SERVE_DEFAULT_HOST: Final = "127.0.0.1"
SERVE_DEFAULT_PORT: Final = 8050
#: A heatmap answer has at most this many time columns, price bins and cells; a request past
#: them is answered coarser (wider columns or bins) and flagged, never refused or run out of memory.
SERVE_MAX_COLUMNS: Final = 4320
SERVE_MAX_BINS: Final = 2000
SERVE_MAX_CELLS: Final = 4_000_000
#: Memory one heatmap build may use (bytes of matrix cells); a bigger one is refused with 400.
SERVE_MAX_MATRIX_BYTES: Final = 512 * 1024**2
#: Seconds a request may compute before it is answered 503.
SERVE_REQUEST_TIMEOUT_S: Final = 30.0
#: Heatmap builds running at once, and waiting, before new ones are answered 503.
SERVE_MAX_BUILDS: Final = 2
SERVE_MAX_QUEUED_BUILDS: Final = 16
#: Bytes of encoded answers kept in memory (least recently used dropped first).
SERVE_CACHE_BYTES: Final = 256 * 1024**2
#: Longest accepted query string (characters); longer is answered 414.
SERVE_MAX_QUERY_CHARS: Final = 2048
#: The store is checked for new snapshots this often (seconds).
SERVE_POLL_S: Final = 0.5
#: The page warns when the newest snapshot is older than this many snapshot intervals and none
#: arrived for as long (`serve --stale-after` defaults to it times the collector's interval).
SERVE_STALE_AFTER_INTERVALS: Final = 3
SERVE_STALE_AFTER_S: Final = SERVE_STALE_AFTER_INTERVALS * DEFAULT_INTERVAL_S
#: Server-sent events: a comment line this often keeps proxies from closing the stream (s).
SERVE_KEEPALIVE_S: Final = 15.0

# --- SPL token mint (the JLP mint's supply, for a holder's share of the pool) ------------
TOKEN_PROGRAM_ID: Final = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
SPL_MINT_SIZE: Final = 82  # COption<Pubkey> authority, u64 supply @36, u8 decimals @44, ...
SPL_MINT_SUPPLY_OFFSET: Final = 36
SPL_MINT_DECIMALS_OFFSET: Final = 44
SPL_MINT_INITIALIZED_OFFSET: Final = 45
JLP_DECIMALS: Final = 6

# ---- refusing wrong snapshots (liqmap.collect.checks)
#: slots a getProgramAccounts answer may lag the getMultipleAccounts answer of the same cycle
#: (~20 s at 400 ms a slot); beyond that the positions are not the market state's positions
MAX_POSITIONS_SLOT_LAG: Final = 50
#: open interest decoded from positions may differ from the custody's totals by this fraction
OPEN_INTEREST_REL_TOLERANCE: Final = 0.05
#: ... or by this many USD (small markets, rounding, fee drift of single positions)
OPEN_INTEREST_ABS_TOLERANCE_USD: Final = 1_000.0
#: a temporary store file older than this is a leftover even if its writer may still live
TEMP_FILE_MAX_AGE_S: Final = 3600

# ---------------------------------------------------------------- realized liquidations
#: Observations further apart than this are not compared: over a longer gap the price may have
#: crossed a level and come back, so a disappeared position could not be classified honestly.
LIQUIDATION_MAX_GAP_S: Final = 600
#: On-chain confirmation: default and maximum requests per second (getSignaturesForAddress,
#: getTransaction), and how many signatures of a position account are examined at most.
DEFAULT_CONFIRM_RPS: Final = 2.0
MAX_CONFIRM_RPS: Final = 100.0
CONFIRM_SIGNATURES_LIMIT: Final = 20
#: Seconds of slack around (ts_before, ts] when matching a transaction's blockTime.
CONFIRM_TIME_SLACK_S: Final = 120
#: Detections kept waiting for confirmation at most (older ones are dropped, logged).
CONFIRM_QUEUE_MAX: Final = 10_000
#: closes seen by the stream classified and stored together at most (a liquidation cascade)
CLOSE_BATCH_MAX: Final = 1000
#: Confirmations are stored together (one rewrite per liquidations file, not one per row):
#: when the queue is empty, or this many rows or seconds after the first unsaved one.
CONFIRM_WRITE_BATCH: Final = 200
CONFIRM_WRITE_AFTER_S: Final = 5.0


def per_market(values: Mapping[str, float], fmt: str = "{:g}") -> str:
    """A per-market default as help texts name it.

    >>> per_market(DEFAULT_BIN_USD_BY_MARKET)
    'SOL 0.1, ETH 2, BTC 50'
    """
    return ", ".join(f"{m} {fmt.format(values[m])}" for m in MARKETS if m in values)
