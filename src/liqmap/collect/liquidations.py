"""Realized liquidations, detected from two observations of a market (pure: tables in, rows out).

An open position that is gone from the current observation (absent, `sizeUsd = 0`, or reopened:
its `open_time` changed) is classified by one rule, `crossed`:

    liq_now = the position's liquidation price re-priced with borrow fees accrued to the current
              observation (the formula of `jupiter.perps`, the current custody parameters)
    long:   liquidated  if  price_after <= liq_now  or  price_before <= predicted_liq_price
    short:  liquidated  if  price_after >= liq_now  or  price_before >= predicted_liq_price
    else:   closed (by its trader)

Prices are compared in USD-6 integers, as on chain; a liquidation price of 0 (a long below
1x) is never crossed. The rule sees the oracle price at the two observations only: a price
that crossed a level and came back between them is invisible, so such a liquidation is
classified `closed` until the on-chain event confirms it (`collect.confirm`).

The collector calls `detect(previous, current)` after each stored snapshot; in stream mode it
also calls `classify_gone` at once with the stored row of each position the book saw close
(`collect.confirm.RealizedLiquidations.record_close`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.store import schema as S
from liqmap.timeutil import column_micros

#: positions columns the rule needs (a subset of `schema.POSITIONS`)
DETECT_COLUMNS = ("pubkey", "owner", "side", "entry_price", "size_usd", "size_tokens",
                  "collateral_usd", "liq_price", "collateral_custody",
                  "cumulative_interest_snapshot", "open_time")
LIQUIDATED, CLOSED = "liquidated", "closed"
PENDING = "pending"
NO_TRANSACTIONS = "no transaction access"


@dataclass(frozen=True)
class Observation:
    """One observation of a market: its open positions and the chain state priced with them.

    `interest_now` maps each collateral custody (base58) to its cumulative interest counter
    accrued to `ts` (RATE-9); `fee_params` are the traded custody's parameters at `ts`.
    """

    ts: pd.Timestamp
    slot: int
    oracle_price: float  # USD
    positions: pa.Table
    interest_now: dict[str, int] = field(default_factory=dict)
    fee_params: perps.FeeParams = field(default_factory=lambda: perps.FeeParams(0, 0, 1))

    @classmethod
    def from_snapshot(cls, market: str, positions: pa.Table, state: pa.Table) -> Observation:
        """The observation stored as one snapshot (`positions` rows and its market_state row)."""
        row = state.slice(0, 1).to_pylist()[0]
        interest = {C.CUSTODY_BY_ASSET[market]: row["cumulative_interest_rate_now"],
                    C.CUSTODY_BY_ASSET["USDC"]: row["usdc_cumulative_interest_rate_now"],
                    C.CUSTODY_BY_ASSET["USDT"]: row["usdt_cumulative_interest_rate_now"]}
        raw = [row["decrease_position_bps"], row["trade_impact_fee_scalar"],
               row["max_leverage_bps"]]
        known = None not in raw  # without the custody's parameters: the stored levels as-is
        params = perps.FeeParams(*(int(v) for v in raw)) if known else perps.FeeParams(0, 0, 1)
        slot = row["positions_slot"] if row["positions_slot"] is not None else row["slot"]
        return cls(ts=pd.Timestamp(row["ts"]), slot=int(slot or 0),
                   oracle_price=float(row["oracle_price"]),
                   positions=positions.select(list(DETECT_COLUMNS)),
                   interest_now=({k: int(v) for k, v in interest.items() if v is not None}
                                 if known else {}),
                   fee_params=params)


def usd6(values: np.ndarray | float) -> np.ndarray:
    """USD floats (as stored) back to the USD-6 integers they were computed from."""
    return np.rint(np.asarray(values, dtype=np.float64) * C.USD_PRECISION).astype(np.int64)


def gone_rows(previous: pa.Table, current: pa.Table) -> pa.Table:
    """Rows of `previous` whose position is not open in `current` (absent, or reopened)."""
    if previous.num_rows == 0:
        return previous
    idx = key_index(previous.column("pubkey"), current.column("pubkey"))
    gone = idx < 0
    if "open_time" in current.column_names and (~gone).any():
        present = np.flatnonzero(~gone)
        before = column_micros(previous.column("open_time"))[present]
        now = column_micros(current.column("open_time"))[idx[present]]
        gone[present[before != now]] = True
    return previous.take(pa.array(np.flatnonzero(gone)))


_PREFIX_BYTES = 16
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _prefix_words(keys: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """The first 16 bytes of each key as two uint64 words [n, 2]; None if a key is shorter
    or null."""
    arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    if arr.null_count or len(arr) == 0 or pc.min(pc.binary_length(arr)).as_py() < _PREFIX_BYTES:
        return None
    head = pc.binary_slice(arr.cast(pa.binary()), 0, _PREFIX_BYTES)
    return np.frombuffer(head.buffers()[2], np.uint64, count=2 * len(head),
                         offset=head.offset * _PREFIX_BYTES).reshape(-1, 2)


def key_index(keys: pa.ChunkedArray | pa.Array, value_set: pa.ChunkedArray | pa.Array
              ) -> np.ndarray:
    """For each key, its index in `value_set`, -1 if absent.

    Base58 Solana keys are matched on their first 16 characters (~94 bits: two distinct keys
    agreeing there have odds ~1e-28 per pair, and such a match would cost one missed
    disappearance, never a wrong class). Shorter keys, or prefixes repeated in `value_set`,
    take Arrow's exact string match."""
    kw, vw = _prefix_words(keys), _prefix_words(value_set)
    if kw is not None and vw is not None:
        with np.errstate(over="ignore"):
            index = pd.Index(vw[:, 0] * _MIX ^ vw[:, 1])
            if not index.has_duplicates:
                idx = index.get_indexer(kw[:, 0] * _MIX ^ kw[:, 1])
                hit = idx >= 0
                safe = np.where(hit, idx, 0)
                same = (kw[:, 0] == vw[safe, 0]) & (kw[:, 1] == vw[safe, 1])
                return np.where(hit & same, idx, -1)
    idx = pc.index_in(keys, value_set=value_set)
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False)


def liq_price_now_usd6(rows: pa.Table, interest_now: dict[str, int],
                       params: perps.FeeParams) -> np.ndarray:
    """Each row's liquidation price with borrow fees accrued to `interest_now` (USD-6);
    the stored `liq_price` for rows whose collateral custody's counter is unknown."""
    stored = usd6(rows.column("liq_price").to_numpy(zero_copy_only=False))
    if rows.num_rows == 0 or not interest_now:
        return stored
    keys = list(interest_now)
    which = pc.index_in(rows.column("collateral_custody"), value_set=pa.array(keys, pa.string()))
    known = pc.is_valid(which).to_numpy(zero_copy_only=False)
    counters = np.array([interest_now[k] for k in keys], dtype=np.uint64)
    cum = counters[pc.fill_null(which, 0).to_numpy(zero_copy_only=False)]
    is_long = _is_long(rows)
    cols = perps.liquidation_columns(
        usd6(rows.column("size_usd").to_numpy(zero_copy_only=False)),
        usd6(rows.column("entry_price").to_numpy(zero_copy_only=False)),
        usd6(rows.column("collateral_usd").to_numpy(zero_copy_only=False)),
        rows.column("cumulative_interest_snapshot").to_numpy(zero_copy_only=False),
        is_long, cum, params)
    # a stored 0 means "can never be liquidated"; keep it so
    return np.where(known & (stored > 0), cols.liq_price_usd6, stored)


def crossed(is_long: np.ndarray, liq_before_usd6: np.ndarray, liq_now_usd6: np.ndarray,
            price_before_usd6: int, price_after_usd6: int) -> np.ndarray:
    """The classification rule (module docstring): True where the oracle price crossed the
    position's liquidation price between the two observations. All prices USD-6."""
    liq_before = np.asarray(liq_before_usd6, np.int64)
    liq_now = np.asarray(liq_now_usd6, np.int64)
    long_hit = (price_after_usd6 <= liq_now) | (price_before_usd6 <= liq_before)
    short_hit = (price_after_usd6 >= liq_now) | (price_before_usd6 >= liq_before)
    return np.where(is_long, long_hit, short_hit) & (liq_now > 0)


def classify_gone(gone: pa.Table, *, ts_before: datetime, price_before: float, ts: datetime,
                  slot: int, price_after: float, interest_now: dict[str, int],
                  fee_params: perps.FeeParams, status: str = PENDING) -> pa.Table:
    """`liquidations` rows for positions seen open at `ts_before` and gone at `ts`.

    Args:
        gone: their last stored rows (`DETECT_COLUMNS` of the positions dataset).
        price_before, price_after: oracle prices (USD) at the two observations.
        ts: when they were seen gone (stored to the second); `slot` its context slot.
        interest_now, fee_params: the chain state at `ts` (see `Observation`).
        status: `confirm_status` of the new rows ("pending" when a confirmer will look).
    """
    n = gone.num_rows
    liq_before = usd6(gone.column("liq_price").to_numpy(zero_copy_only=False))
    liq_now = liq_price_now_usd6(gone, interest_now, fee_params)
    hit = crossed(_is_long(gone), liq_before, liq_now, int(usd6(price_before)),
                  int(usd6(price_after)))
    ts_s = pd.Timestamp(ts).floor("s")
    nulls_f = pa.nulls(n, pa.float64())
    columns = {
        "ts": pa.array(np.full(n, ts_s.value // 1000, np.int64)).cast(S.TS),
        "slot": pa.array(np.full(n, slot, np.uint64)),
        "pubkey": gone.column("pubkey"), "owner": gone.column("owner"),
        "side": gone.column("side"),
        "size_usd": gone.column("size_usd"), "size_tokens": gone.column("size_tokens"),
        "collateral_usd": gone.column("collateral_usd"),
        "predicted_liq_price": gone.column("liq_price"),
        "oracle_price_before": pa.array(np.full(n, price_before, np.float64)),
        "oracle_price_after": pa.array(np.full(n, price_after, np.float64)),
        "kind": pa.array(np.where(hit, LIQUIDATED, CLOSED).astype(object), pa.string()),
        "confirmed": pa.array(np.zeros(n, bool)),
        "signature": pa.nulls(n, pa.string()),
        "event_price": nulls_f, "fee_usd": nulls_f, "liquidation_fee_usd": nulls_f,
        "ts_before": pa.array(np.full(n, pd.Timestamp(ts_before).value // 1000, np.int64)
                              ).cast(S.TS),
        "liq_price_now": pa.array(liq_now / C.USD_PRECISION),
        "confirm_status": pa.array([status] * n, pa.string()),
    }
    return pa.table(columns).cast(S.LIQUIDATIONS)


def detect(previous: Observation, current: Observation, *,
           max_gap_s: float = C.LIQUIDATION_MAX_GAP_S, status: str = PENDING,
           unknown: list[str] | None = None) -> pa.Table:
    """`liquidations` rows for the positions open in `previous` and gone in `current`.

    Empty when the observations are more than `max_gap_s` apart (not comparable) or out of
    order. Positions in `unknown` (accounts of `current` that failed to decode) are not gone.
    """
    gap_s = (current.ts - previous.ts).total_seconds()
    if not 0 < gap_s <= max_gap_s:
        return S.LIQUIDATIONS.empty_table()
    gone = gone_rows(previous.positions, current.positions)
    if unknown and gone.num_rows:
        gone = gone.filter(pc.invert(pc.is_in(gone.column("pubkey"),
                                              value_set=pa.array(unknown, pa.string()))))
    if gone.num_rows == 0:
        return S.LIQUIDATIONS.empty_table()
    return classify_gone(gone, ts_before=previous.ts, price_before=previous.oracle_price,
                         ts=current.ts, slot=current.slot, price_after=current.oracle_price,
                         interest_now=current.interest_now, fee_params=current.fee_params,
                         status=status)


def _is_long(rows: pa.Table) -> np.ndarray:
    side = rows.column("side")
    if pa.types.is_dictionary(side.type):
        side = side.cast(pa.string())
    return pc.equal(side, "long").to_numpy(zero_copy_only=False)
