"""One collection cycle: fetch a market's accounts, decode, price every position, build rows.

`fetch_market` is the I/O half (two RPC calls, plus one more only when an oracle address
rotates or a position uses a collateral custody not seen before). `build_snapshot` is the pure
half: bytes in, Arrow tables out. `Collector` (in `liqmap.collect.loop`) schedules cycles.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap import constants as C
from liqmap.collect.checks import check_snapshot
from liqmap.collect.rpc import RpcClient
from liqmap.collect.rpc.requests import position_filters
from liqmap.collect.rpc.responses import MultipleAccounts
from liqmap.collect.rpc.transport import CallStats
from liqmap.errors import DecodeError, LiqmapError, RefusedSnapshot
from liqmap.jupiter import perps
from liqmap.jupiter.base58 import encode_keys
from liqmap.jupiter.decode import (
    ERROR_NAMES,
    ClockSysvar,
    Custody,
    DecodedPositions,
    OraclePrice,
    Pool,
    decode_ag_price_feed,
    decode_clock,
    decode_custody,
    decode_pool,
    decode_positions,
    decode_pyth_price_update,
    decode_spl_mint,
    match_keys,
    pubkeys_to_base58,
)
from liqmap.store import schema as S

log = logging.getLogger(__name__)


@dataclass
class MarketAddresses:
    """Accounts read for one market; oracle addresses come from the custodies (they rotate)."""

    market: str
    custody: str
    collateral: list[str]
    ag_oracle: str | None = None
    pyth_oracle: str | None = None

    @classmethod
    def default(cls, market: str) -> MarketAddresses:
        return cls(market=market, custody=C.CUSTODY_BY_ASSET[market],
                   collateral=[C.CUSTODY_BY_ASSET[s] for s in C.STABLES])

    def keys(self) -> list[str]:
        oracles = [k for k in (self.ag_oracle, self.pyth_oracle) if k]
        return [C.POOL_ADDRESS, self.custody, *self.collateral, *oracles, C.CLOCK_SYSVAR,
                C.JLP_MINT]


@dataclass
class FetchedMarket:
    """Raw result of one cycle's RPC calls for one market."""

    market: str
    accounts: dict[str, bytes | None]
    accounts_slot: int
    positions: DecodedPositions
    positions_slot: int
    stats: list[CallStats] = field(default_factory=list)
    feed: FeedStats | None = None  # stream mode: what the live book received; None: poll


@dataclass(frozen=True)
class FeedStats:
    """How a market's data arrived since its previous snapshot (market_state columns).

    `rpc_bytes` counts bytes as received on the wire (HTTP bodies and WebSocket messages);
    `book_age_ms` is the age of the newest update or resync behind the snapshot.
    """

    mode: str = "poll"
    rpc_bytes: int = 0
    stream_updates: int = 0
    book_age_ms: float = 0.0
    missed_updates: int = 0


@dataclass(frozen=True)
class Snapshot:
    """One market-minute, ready to store, plus what the log line reports."""

    market: str
    ts: datetime
    positions: pa.Table
    state: pa.Table
    decode_errors: dict[str, int]
    oracle_age_s: int
    pyth_divergence_bps: float | None


def fetch_market(client: RpcClient, addr: MarketAddresses, *, deadline: float | None = None,
                 min_slot: int | None = None) -> FetchedMarket:
    """The RPC half of a cycle: accounts of `addr` and the market's Position accounts.

    Every read asks for `minContextSlot`: the account read at least `min_slot` (the previous
    snapshot's), the positions at least the account read's slot.
    """
    gma, stats = client.get_multiple_accounts(addr.keys(), deadline=deadline,
                                              min_context_slot=min_slot)
    all_stats = [stats]
    accounts = dict(gma.data)
    custody = _custody(accounts, addr.custody, addr.market)
    if (custody.doves_ag_oracle, custody.oracle_account) != (addr.ag_oracle, addr.pyth_oracle):
        if addr.ag_oracle is not None:
            log.warning("%s oracle accounts changed to %s / %s", addr.market,
                        custody.doves_ag_oracle, custody.oracle_account)
        addr.ag_oracle, addr.pyth_oracle = custody.doves_ag_oracle, custody.oracle_account
        all_stats.append(_merge(client, accounts, [addr.ag_oracle, addr.pyth_oracle], deadline,
                                gma.slot))
    gpa, gpa_stats = client.get_program_accounts(C.PERPS_PROGRAM_ID,
                                                 position_filters(addr.custody),
                                                 deadline=deadline, min_context_slot=gma.slot)
    all_stats.append(gpa_stats)
    decoded = decode_positions(gpa.pubkeys, gpa.blobs)
    unknown = _unknown_collateral(decoded, [addr.custody, *addr.collateral])
    if unknown:
        log.info("%s: positions use new collateral custodies %s", addr.market, unknown)
        addr.collateral.extend(unknown)
        all_stats.append(_merge(client, accounts, unknown, deadline, gma.slot))
    return FetchedMarket(addr.market, accounts, gma.slot, decoded, gpa.slot, all_stats)


def _merge(client: RpcClient, accounts: dict[str, bytes | None], keys: list[str],
           deadline: float | None, min_slot: int) -> CallStats:
    extra: MultipleAccounts
    extra, stats = client.get_multiple_accounts(keys, deadline=deadline,
                                                min_context_slot=min_slot)
    accounts.update(extra.data)
    return stats


def _unknown_collateral(decoded: DecodedPositions, known: list[str]) -> list[str]:
    """Collateral custodies used by positions that are not in `known`."""
    keys = decoded.records["collateral_custody"]
    unknown = keys[match_keys(keys, known) < 0]
    return sorted(set(pubkeys_to_base58(np.unique(unknown)))) if len(unknown) else []


def _custody(accounts: dict[str, bytes | None], key: str, what: str) -> Custody:
    data = accounts.get(key)
    if data is None:
        raise LiqmapError(f"{what} custody account {key} not found on this RPC node; "
                          "is the RPC URL a Solana mainnet endpoint?")
    return decode_custody(data)


def build_snapshot(fetched: FetchedMarket, ts: datetime, addr: MarketAddresses,
                   previous_slot: int | None = None) -> Snapshot:
    """The pure half of a cycle: position rows with liquidation prices and the state row.

    Raises `RefusedSnapshot` when the answers fail `checks.check_snapshot` (`previous_slot`:
    positions slot of the market's last stored snapshot).
    """
    accounts = fetched.accounts
    custody = _custody(accounts, addr.custody, addr.market)
    refused = check_snapshot(custody, fetched.positions.records, fetched.accounts_slot,
                             fetched.positions_slot, previous_slot)
    if refused:
        raise RefusedSnapshot(f"{addr.market}: {refused}")
    clock = _clock(accounts)
    oracle = _ag_price(accounts, custody)
    pyth = _pyth_price(accounts, custody)
    cum_now = _accrued_interest(accounts, addr, clock)
    rec = fetched.positions.records
    readable = list(cum_now)
    collateral = match_keys(rec["collateral_custody"], readable)
    if (collateral < 0).any():
        missing = pubkeys_to_base58(rec["collateral_custody"][collateral < 0][:1])[0]
        raise DecodeError(f"{addr.market}: collateral custody {missing} could not be read")
    cum = np.array([cum_now[k] for k in readable], dtype=np.uint64)[collateral]
    liq = perps.liquidation_prices(rec, custody, cum)
    collateral_keys = pa.DictionaryArray.from_arrays(pa.array(collateral, pa.int16()),
                                                     pa.array(readable, pa.string()))
    positions = _positions_table(fetched, ts, collateral_keys.cast(pa.string()), liq)
    errors = {ERROR_NAMES[c]: len(keys) for c, keys in fetched.positions.errors.items()}
    for code, keys in fetched.positions.errors.items():
        log.warning("%s: %d account(s) rejected, %s: %s%s", addr.market, len(keys),
                    ERROR_NAMES[code], ", ".join(keys[:3]), " ..." if len(keys) > 3 else "")
    state = _state_row(fetched, ts, addr.custody, clock, oracle, pyth, cum_now, positions)
    divergence = (abs(pyth.price_usd6 - oracle.price_usd6) / oracle.price_usd6 * C.BPS_POWER
                  if pyth and oracle.price_usd6 else None)
    return Snapshot(addr.market, ts, positions, state, errors,
                    clock.unix_timestamp - oracle.publish_time, divergence)


def _clock(accounts: dict[str, bytes | None]) -> ClockSysvar:
    data = accounts.get(C.CLOCK_SYSVAR)
    if data is None:
        raise LiqmapError("the Clock sysvar is missing from the RPC response")
    return decode_clock(data)


def _ag_price(accounts: dict[str, bytes | None], custody: Custody) -> OraclePrice:
    data = accounts.get(custody.doves_ag_oracle)
    if data is None:
        raise LiqmapError(f"Doves AgPriceFeed {custody.doves_ag_oracle} not found; "
                          "the snapshot needs the oracle price")
    return decode_ag_price_feed(data)


def _pyth_price(accounts: dict[str, bytes | None], custody: Custody) -> OraclePrice | None:
    data = accounts.get(custody.oracle_account)
    if data is None:
        return None
    try:
        return decode_pyth_price_update(data)
    except DecodeError as exc:
        log.debug("Pyth cross-check unavailable: %s", exc)
        return None


def _accrued_interest(accounts: dict[str, bytes | None], addr: MarketAddresses,
                      clock: ClockSysvar) -> dict[str, int]:
    """Cumulative interest accrued to chain time, per readable collateral custody."""
    out = {}
    for key in (addr.custody, *addr.collateral):
        data = accounts.get(key)
        if data is not None:
            out[key] = perps.accrue_cumulative_interest(decode_custody(data), clock.unix_timestamp)
    return out


def _ts_array(unix_s: np.ndarray) -> pa.Array:
    """Unix seconds -> timestamp[us, UTC] without Python objects."""
    return pa.array(np.asarray(unix_s, dtype=np.int64) * 1_000_000, pa.int64()).cast(S.TS)


def _positions_table(fetched: FetchedMarket, ts: datetime, collateral: pa.Array,
                     liq: perps.LiquidationColumns) -> pa.Table:
    rec = fetched.positions.records
    n = len(rec)
    usd = float(C.USD_PRECISION)
    side_idx = (rec["side"].astype(np.int8) - 1)
    ts_us = int(pd.Timestamp(ts).value // 1000)
    columns = {
        "ts": pa.array(np.full(n, ts_us, dtype=np.int64), pa.int64()).cast(S.TS),
        "slot": pa.array(np.full(n, fetched.positions_slot, dtype=np.uint64)),
        "pubkey": pa.array(fetched.positions.pubkeys, pa.string()),
        "owner": encode_keys(rec["owner"]),
        "side": pa.DictionaryArray.from_arrays(pa.array(side_idx, pa.int8()),
                                               pa.array(["long", "short"])),
        "entry_price": rec["price"] / usd,
        "size_usd": rec["size_usd"] / usd,
        "collateral_usd": rec["collateral_usd"] / usd,
        "size_tokens": liq.size_tokens,
        "borrow_fee_usd": liq.borrow_fee_usd6 / usd,
        "close_fee_usd": liq.close_fee_usd6 / usd,
        "liq_price": liq.liq_price_usd6 / usd,
        "leverage": liq.leverage,
        "collateral_custody": collateral,
        "cumulative_interest_snapshot": rec["cumulative_interest_snapshot"],
        "open_time": _ts_array(rec["open_time"]),
        "update_time": _ts_array(rec["update_time"]),
    }
    return pa.table(columns, schema=S.POSITIONS)


def _state_row(fetched: FetchedMarket, ts: datetime, custody_key: str, clock: ClockSysvar,
               oracle: OraclePrice, pyth: OraclePrice | None, cum_now: dict[str, int],
               positions: pa.Table) -> pa.Table:
    accounts = fetched.accounts
    custody = decode_custody(accounts[custody_key] or b"")
    usd = float(C.USD_PRECISION)
    token = float(10**custody.decimals)
    stables = {s: _stable_rates(accounts, C.CUSTODY_BY_ASSET[s], cum_now) for s in C.STABLES}
    side = positions.column("side").combine_chunks().indices.to_numpy(zero_copy_only=False)
    size = positions.column("size_usd").to_numpy()
    pool = _pool(accounts)
    row = {
        "ts": ts, "slot": fetched.accounts_slot, "positions_slot": fetched.positions_slot,
        "chain_time": clock.unix_timestamp * 1_000_000,
        "oracle_price": oracle.price_usd, "oracle_publish_time": oracle.publish_time * 1_000_000,
        "pyth_price": pyth.price_usd if pyth else None,
        "pyth_publish_time": pyth.publish_time * 1_000_000 if pyth else None,
        "decrease_position_bps": custody.decrease_position_bps,
        "trade_impact_fee_scalar": custody.trade_impact_fee_scalar,
        "max_leverage_bps": custody.max_leverage_bps,
        "cumulative_interest_rate": custody.cumulative_interest_rate,
        "cumulative_interest_rate_now": cum_now[custody_key],
        "borrow_rate_apr": perps.borrow_rate_apr(custody),
        "utilization": perps.utilization(custody) / C.RATE_POWER,
        "usdc_cumulative_interest_rate_now": stables["USDC"][0],
        "usdc_borrow_rate_apr": stables["USDC"][1],
        "usdt_cumulative_interest_rate_now": stables["USDT"][0],
        "usdt_borrow_rate_apr": stables["USDT"][1],
        "assets_owned_tokens": custody.owned / token,
        "assets_locked_tokens": custody.locked / token,
        "guaranteed_usd": custody.guaranteed_usd6 / usd,
        "global_short_sizes_usd": custody.global_short_sizes_usd6 / usd,
        "global_short_average_price": custody.global_short_average_price_usd6 / usd,
        "jlp_net_delta_tokens": perps.jlp_net_delta_tokens(custody),
        "pool_aum_usd": pool.aum_usd6 / usd if pool else None,
        "n_positions": positions.num_rows,
        "n_long": int((side == 0).sum()), "n_short": int((side == 1).sum()),
        # exactly rounded: the same total whatever order the node or the book lists positions
        "long_size_usd": math.fsum(size[side == 0]),
        "short_size_usd": math.fsum(size[side == 1]),
        "n_decode_errors": fetched.positions.n_errors,
        "latency_ms": sum(s.latency_s for s in fetched.stats) * 1000,
        "response_bytes": sum(s.response_bytes for s in fetched.stats),
        "retries": sum(s.retries for s in fetched.stats),
        "jlp_supply_tokens": _jlp_supply(accounts),
        **_feed_columns(fetched),
    }
    return pa.Table.from_pylist([row], schema=S.MARKET_STATE)


def _feed_columns(fetched: FetchedMarket) -> dict[str, object]:
    """The mode columns: a poll snapshot received exactly its calls' bytes, just now."""
    feed = fetched.feed or FeedStats(rpc_bytes=sum(s.response_bytes for s in fetched.stats))
    return {"mode": feed.mode, "rpc_bytes": feed.rpc_bytes,
            "stream_updates": feed.stream_updates, "book_age_ms": feed.book_age_ms,
            "missed_updates": feed.missed_updates}


def _stable_rates(accounts: dict[str, bytes | None], key: str,
                  cum_now: dict[str, int]) -> tuple[int | None, float | None]:
    data = accounts.get(key)
    if data is None:
        return None, None
    return cum_now.get(key), perps.borrow_rate_apr(decode_custody(data))


def _jlp_supply(accounts: dict[str, bytes | None]) -> float | None:
    """JLP tokens in circulation, from the JLP mint; None (logged) when unreadable."""
    data = accounts.get(C.JLP_MINT)
    if data is None:
        log.warning("JLP mint %s not found; jlp_supply_tokens left empty", C.JLP_MINT)
        return None
    try:
        supply, decimals = decode_spl_mint(data)
    except DecodeError as exc:
        log.warning("JLP mint unreadable (%s); jlp_supply_tokens left empty", exc)
        return None
    return supply / 10**decimals if supply else None


def _pool(accounts: dict[str, bytes | None]) -> Pool | None:
    data = accounts.get(C.POOL_ADDRESS)
    if data is None:
        log.warning("pool account %s not found; pool_aum_usd left empty", C.POOL_ADDRESS)
        return None
    try:
        return decode_pool(data)
    except DecodeError as exc:
        log.warning("pool account unreadable (%s); pool_aum_usd left empty", exc)
        return None
