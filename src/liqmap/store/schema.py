"""Column names, Arrow types and units of every stored dataset (one place; see README "Schema").

Times are `timestamp[us, UTC]` so pandas, polars, DuckDB and Spark read them alike. `market` and
`date` are not columns in the files: they are the hive partition directories
(`<dataset>/market=SOL/date=2025-08-22/`), which every engine above turns back into columns.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

TS: Final = pa.timestamp("us", tz="UTC")
SIDE: Final = pa.dictionary(pa.int8(), pa.string())
KEY: Final = pa.string()

POSITIONS: Final = pa.schema([
    ("ts", TS),  # snapshot time: the minute (cycle boundary) this snapshot stands for
    ("slot", pa.uint64()),  # context slot of the getProgramAccounts response
    ("pubkey", KEY),  # Position account, base58
    ("owner", KEY),  # trader wallet, base58
    ("side", SIDE),  # "long" | "short"
    ("entry_price", pa.float64()),  # USD
    ("size_usd", pa.float64()),  # USD notional
    ("collateral_usd", pa.float64()),  # USD
    ("size_tokens", pa.float64()),  # size_usd / entry_price, tokens of the market's asset
    ("borrow_fee_usd", pa.float64()),  # accrued, unpaid borrow fee at chain_time, USD
    ("close_fee_usd", pa.float64()),  # decrease bps + price-impact fee, USD
    ("liq_price", pa.float64()),  # USD; 0 when the position cannot be liquidated (long < 1x)
    ("leverage", pa.float64()),  # size_usd / collateral_usd
    ("collateral_custody", KEY),  # custody of the collateral token, base58
    ("cumulative_interest_snapshot", pa.uint64()),  # RATE-9, for re-accruing borrow fees
    ("open_time", TS),
    ("update_time", TS),
])

MARKET_STATE: Final = pa.schema([
    ("ts", TS),
    ("slot", pa.uint64()),  # context slot of the getMultipleAccounts response
    ("positions_slot", pa.uint64()),  # context slot of the getProgramAccounts response
    ("chain_time", TS),  # Clock sysvar unix_timestamp at `slot`
    ("oracle_price", pa.float64()),  # USD, Doves AgPriceFeed (the price the program uses)
    ("oracle_publish_time", TS),
    ("pyth_price", pa.float64()),  # USD, Pyth PriceUpdateV2 cross-check; null if unreadable
    ("pyth_publish_time", TS),
    ("decrease_position_bps", pa.uint64()),
    ("trade_impact_fee_scalar", pa.uint64()),
    ("max_leverage_bps", pa.uint64()),  # 5_000_000 = 500x
    ("cumulative_interest_rate", pa.uint64()),  # RATE-9, as stored in the custody
    ("cumulative_interest_rate_now", pa.uint64()),  # RATE-9, accrued to chain_time
    ("borrow_rate_apr", pa.float64()),  # fraction per year (0.1371 = 13.71 %)
    ("utilization", pa.float64()),  # fraction
    ("usdc_cumulative_interest_rate_now", pa.uint64()),
    ("usdc_borrow_rate_apr", pa.float64()),
    ("usdt_cumulative_interest_rate_now", pa.uint64()),
    ("usdt_borrow_rate_apr", pa.float64()),
    ("assets_owned_tokens", pa.float64()),
    ("assets_locked_tokens", pa.float64()),
    ("guaranteed_usd", pa.float64()),
    ("global_short_sizes_usd", pa.float64()),
    ("global_short_average_price", pa.float64()),  # USD
    ("jlp_net_delta_tokens", pa.float64()),  # the pool's exposure to the asset, tokens
    ("pool_aum_usd", pa.float64()),  # Pool.aumUsd as stored by the keeper, USD
    ("n_positions", pa.int32()),  # open positions stored for this snapshot
    ("n_long", pa.int32()),
    ("n_short", pa.int32()),
    ("long_size_usd", pa.float64()),
    ("short_size_usd", pa.float64()),
    ("n_decode_errors", pa.int32()),  # accounts skipped because their bytes were invalid
    ("latency_ms", pa.float64()),  # wall time of the cycle's RPC calls
    ("response_bytes", pa.int64()),
    ("retries", pa.int32()),
    ("jlp_supply_tokens", pa.float64()),  # JLP mint supply, JLP tokens (null before collected)
    # how the snapshot was collected (null in stores written before these columns existed)
    ("mode", pa.string()),  # "stream" (live book over WebSocket) | "poll" (full scan)
    ("rpc_bytes", pa.int64()),  # bytes received for this market since its previous snapshot
    ("stream_updates", pa.int64()),  # WebSocket notifications applied to the book since then
    ("book_age_ms", pa.float64()),  # ms from the newest update or resync to the snapshot
    ("missed_updates", pa.int64()),  # accounts a resync found the stream had missed, since then
])

MISSES: Final = pa.schema([
    ("ts", TS),  # the minute that has no snapshot
    ("slot", pa.uint64()),  # last slot seen by the collector (null if none)
    ("reason", pa.string()),
])

LEGACY: Final = pa.schema([
    ("t_bin", TS),
    ("liq_price", pa.float64()),  # USD
    ("size_sol", pa.float64()),  # SOL
])

#: One row per position VERSION of one closed day: the account as it stood, unchanged, in every
#: committed snapshot minute of [valid_from, valid_to]. The per-minute columns of `positions`
#: (ts, slot, borrow_fee_usd, close_fee_usd, liq_price) follow on read from market_state with
#: the collector's formula (`liqmap.store.versions`, or the DuckDB macro `positions.sql`).
POSITION_VERSIONS: Final = pa.schema([
    ("valid_from", TS),  # first snapshot minute holding this version
    ("valid_to", TS),  # last snapshot minute holding it (inclusive)
    ("pubkey", KEY),
    ("owner", KEY),
    ("side", SIDE),
    ("entry_price_usd6", pa.uint64()),  # USD-6; entry_price = entry_price_usd6 / 1e6
    ("size_usd6", pa.uint64()),  # USD-6
    ("collateral_usd6", pa.uint64()),  # USD-6
    ("size_tokens", pa.float64()),  # as in positions
    ("leverage", pa.float64()),  # as in positions
    ("collateral_custody", KEY),
    ("cumulative_interest_snapshot", pa.uint64()),  # RATE-9
    ("open_time", TS),
    ("update_time", TS),
    # which market_state counter accrues this version's borrow fee: 0 cumulative_interest_rate_now
    # (the market's custody), 1 usdc_…, 2 usdt_…; -1: a single-minute row whose per-minute
    # values are stored below as collected (the formula could not reproduce them)
    ("interest_source", pa.int8()),
    ("slot", pa.uint64()),  # only when interest_source = -1
    ("borrow_fee_usd", pa.float64()),  # only when interest_source = -1
    ("close_fee_usd", pa.float64()),  # only when interest_source = -1
    ("liq_price", pa.float64()),  # only when interest_source = -1
])

#: The live signal's alert log (`signal_alerts/market=…/date=…/alert-<ns>-<kind>.parquet`, one
#: record per file, written atomically, never rewritten): the outbox of its webhook posts.
SIGNAL_ALERTS: Final = pa.schema([
    ("recorded_at", TS),  # when this record was written
    ("ts", TS),  # the toggle's minute; for "start", the first minute the rule evaluates
    ("rule_id", pa.string()),  # 12 hex digits of sha256(market, rule parameters, bin, ratio)
    ("kind", pa.string()),  # start | intent | delivered | failed | checkpoint
    ("event", pa.string()),  # on | off | reverse ("" for start)
    ("direction", pa.int8()),  # after the event: -1 (cut the short), 0, +1 (add to it)
    ("price_usd", pa.float64()),
    ("above_tokens", pa.float64()),  # window sums, tokens of the market's asset
    ("below_tokens", pa.float64()),
    ("threshold_tokens", pa.float64()),
    ("suggested_ratio", pa.float64()),  # hedge ratio after the event
    ("key", pa.string()),  # idempotency key of the toggle, in every payload
    ("webhook_id", pa.string()),  # sha256 of the URL, 12 hex (never the URL: it holds tokens)
    ("attempts", pa.int32()),
    ("detail", pa.string()),  # start: JSON (params, live_from); intent: JSON webhook ids;
    # failed: the last error; checkpoint: JSON rule state (direction, confirm, release)
    ("history", pa.list_(pa.float64())),  # checkpoint: trailing max(above, below), tokens
])

#: Realized liquidations and closes: one row per open position that disappeared (README
#: "Realized liquidations"). Detected from two observations; confirmed from the chain's event.
LIQUIDATIONS: Final = pa.schema([
    ("ts", TS),  # the observation that saw the position gone, to the second
    ("slot", pa.uint64()),  # context slot of that observation's positions
    ("pubkey", KEY),  # Position account, base58 (market: the partition, as everywhere)
    ("owner", KEY),  # trader wallet, base58
    ("side", SIDE),  # "long" | "short"
    ("size_usd", pa.float64()),  # USD notional at the last observation before it disappeared
    ("size_tokens", pa.float64()),  # tokens of the market's asset
    ("collateral_usd", pa.float64()),  # USD
    ("predicted_liq_price", pa.float64()),  # USD, the last one stored for it
    ("oracle_price_before", pa.float64()),  # USD, at the previous observation
    ("oracle_price_after", pa.float64()),  # USD, at the observation that saw it gone
    ("kind", pa.string()),  # "liquidated" | "closed"
    ("confirmed", pa.bool_()),  # True when a decoded on-chain event fixed kind, price, fees
    ("signature", pa.string()),  # transaction of the confirming event (null if unconfirmed)
    ("event_price", pa.float64()),  # USD, price in the event (null if unconfirmed)
    ("fee_usd", pa.float64()),  # USD, close/position fee in the event
    ("liquidation_fee_usd", pa.float64()),  # USD, liquidation fee in the event
    ("ts_before", TS),  # the previous observation (the event happened in (ts_before, ts])
    ("liq_price_now", pa.float64()),  # USD, predicted_liq_price with borrow fees accrued to ts
    ("confirm_status", pa.string()),  # why unconfirmed: "pending", "no transaction access", ...
])

SCHEMAS: Final[dict[str, pa.Schema]] = {
    "positions": POSITIONS,
    "market_state": MARKET_STATE,
    "misses": MISSES,
    "legacy": LEGACY,
    "position_versions": POSITION_VERSIONS,
    "liquidations": LIQUIDATIONS,
}

#: Column holding each dataset's time key.
TIME_COLUMN: Final[dict[str, str]] = {
    "positions": "ts", "market_state": "ts", "misses": "ts", "legacy": "t_bin",
    "position_versions": "valid_from",
    "liquidations": "ts",
}
#: Sort order used when compacting (rows orderable; positions keep a stable order per minute).
SORT_KEYS: Final[dict[str, list[tuple[str, str]]]] = {
    "positions": [("ts", "ascending"), ("pubkey", "ascending")],
    "market_state": [("ts", "ascending")],
    "misses": [("ts", "ascending")],
    "legacy": [("t_bin", "ascending"), ("liq_price", "ascending")],
    "position_versions": [("pubkey", "ascending"), ("valid_from", "ascending")],
    "liquidations": [("ts", "ascending"), ("pubkey", "ascending")],
}
