"""Position versions: the change-sized layout of closed days, and its exact expansion to rows.

A position's account changes only when its owner (or a keeper) acts; between two changes only
the borrow fee moves, and it follows from the collateral custody's interest counter, which
every market_state row stores (`cumulative_interest_rate_now`, `usdc_…`, `usdt_…`). So a closed
day is stored as one row per position VERSION (schema `POSITION_VERSIONS`): the account's
fields, unchanged in every committed snapshot minute of [valid_from, valid_to]. The per-minute
columns of `positions` follow on read, with `perps.liquidation_prices`, the very function the
collector used:

    ts, slot        the snapshot's market_state `ts` and `positions_slot`
    close_fee_usd   from the snapshot's custody parameters (decrease bps, impact scalar)
    borrow_fee_usd  from the snapshot's counter of the version's `interest_source`
    liq_price       from both, with the snapshot's `max_leverage_bps`

Conversion (`to_versions`) checks every row: a row whose stored per-minute values the formula
does not reproduce bit for bit (another writer, a custody outside the three counters) becomes a
single-minute version carrying its values (`interest_source` -1). A day holding a row that a
version cannot represent at all (a USD amount that is not a whole number of micro-dollars) is
not converted. So expanding a day's versions gives back exactly the rows that were stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.constants import US_PER_MINUTE
from liqmap.jupiter import perps
from liqmap.jupiter.accounts import Custody
from liqmap.store import schema as S
from liqmap.timeutil import column_micros

PARAM_COLUMNS = ("decrease_position_bps", "trade_impact_fee_scalar", "max_leverage_bps")
#: market_state counters, indexed by `interest_source`.
INTEREST_COLUMNS = ("cumulative_interest_rate_now", "usdc_cumulative_interest_rate_now",
                    "usdt_cumulative_interest_rate_now")
STATE_COLUMNS = ["ts", "positions_slot", *PARAM_COLUMNS, *INTEREST_COLUMNS]
FIXED = -1
USD6 = float(C.USD_PRECISION)
#: Columns identical in every minute of a version (besides the USD-6 amounts).
STATIC_COLUMNS = ("owner", "side", "size_tokens", "leverage", "collateral_custody",
                  "cumulative_interest_snapshot", "open_time", "update_time")
_RECORD_DTYPE = np.dtype([("size_usd", "u8"), ("price", "u8"), ("collateral_usd", "u8"),
                          ("cumulative_interest_snapshot", "u8"), ("side", "u1")])


class Columns(Protocol):
    """A table read column by column (`pa.Table`, or `compact.FileColumns`)."""

    @property
    def num_rows(self) -> int: ...

    def column(self, name: str) -> pa.ChunkedArray: ...


@dataclass(frozen=True)
class DayState:
    """The committed snapshots of one window, sorted by time: what the formula needs per minute.

    ts_us int64 [n]; slot uint64 [n]; params uint64 [n, 3] (PARAM_COLUMNS); cum uint64 [n, 3]
    (INTEREST_COLUMNS); `*_ok` mark non-null values; `group` int64 [n] numbers the distinct
    parameter triples (snapshots sharing one use one formula call).
    """

    ts_us: np.ndarray
    slot: np.ndarray
    slot_ok: np.ndarray
    params: np.ndarray
    params_ok: np.ndarray
    cum: np.ndarray
    cum_ok: np.ndarray
    group: np.ndarray

    @classmethod
    def from_table(cls, state: pa.Table) -> DayState:
        """From market_state rows holding `STATE_COLUMNS`."""
        state = state.sort_by("ts")
        ts_us = column_micros(state.column("ts"))
        slot, slot_ok = _u64(state.column("positions_slot"))
        params = [_u64(state.column(c)) for c in PARAM_COLUMNS]
        cums = [_u64(state.column(c)) for c in INTEREST_COLUMNS]
        p = np.stack([v for v, _ in params], axis=1) if ts_us.size else np.zeros((0, 3), "u8")
        p_ok = np.logical_and.reduce([ok for _, ok in params]) if ts_us.size else np.zeros(0, bool)
        cum = np.stack([v for v, _ in cums], axis=1) if ts_us.size else np.zeros((0, 3), "u8")
        cum_ok = (np.stack([ok for _, ok in cums], axis=1) if ts_us.size
                  else np.zeros((0, 3), bool))
        group = (np.unique(p, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
                 if ts_us.size else np.zeros(0, np.int64))
        return cls(ts_us, slot, slot_ok, p, p_ok, cum, cum_ok, group)

    @property
    def n(self) -> int:
        return int(self.ts_us.size)

    def take(self, idx: np.ndarray) -> DayState:
        """The snapshots at positions `idx` (sorted)."""
        return DayState(self.ts_us[idx], self.slot[idx], self.slot_ok[idx], self.params[idx],
                        self.params_ok[idx], self.cum[idx], self.cum_ok[idx], self.group[idx])


@dataclass(frozen=True)
class VersionArrays:
    """The numeric columns of versions the formula reads (aligned with the version rows)."""

    size_usd6: np.ndarray
    entry_usd6: np.ndarray
    collateral_usd6: np.ndarray
    interest_snapshot: np.ndarray
    side: np.ndarray  # uint8, C.SIDE_LONG / C.SIDE_SHORT
    source: np.ndarray  # int8, interest_source
    from_us: np.ndarray
    to_us: np.ndarray
    size_tokens: np.ndarray

    @classmethod
    def from_table(cls, versions: pa.Table) -> VersionArrays:
        side = np.where(_is_long(versions.column("side")), C.SIDE_LONG, C.SIDE_SHORT)
        tokens = versions.column("size_tokens")
        tokens = tokens if tokens.null_count == 0 else pc.fill_null(tokens, np.nan)
        return cls(_u64(versions.column("size_usd6"))[0],
                   _u64(versions.column("entry_price_usd6"))[0],
                   _u64(versions.column("collateral_usd6"))[0],
                   _u64(versions.column("cumulative_interest_snapshot"))[0],
                   side.astype(np.uint8),
                   np.asarray(versions.column("interest_source").fill_null(FIXED), np.int8),
                   column_micros(versions.column("valid_from")),
                   column_micros(versions.column("valid_to")),
                   np.asarray(tokens, np.float64))

    def snapshot_ranges(self, state: DayState) -> tuple[np.ndarray, np.ndarray]:
        """[i0, i1): the snapshots of `state` each version holds (empty when i1 <= i0)."""
        if state.n and _whole_minutes(state.ts_us) and _whole_minutes(self.from_us) \
                and _whole_minutes(self.to_us):
            i0, i1 = _minute_ranges(state.ts_us, self.from_us, self.to_us)
        else:
            i0 = np.searchsorted(state.ts_us, self.from_us, side="left")
            i1 = np.searchsorted(state.ts_us, self.to_us, side="right")
        return i0, np.maximum(i1, i0)


def _whole_minutes(us: np.ndarray) -> bool:
    return bool((us % US_PER_MINUTE == 0).all())


def _minute_ranges(ts_us: np.ndarray, from_us: np.ndarray, to_us: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """`snapshot_ranges` when every time is a whole minute: a table lookup per version instead
    of a binary search (the same answer: searchsorted over every minute of the span)."""
    minutes = ts_us // US_PER_MINUTE
    first, last = int(minutes[0]), int(minutes[-1])
    every = np.arange(first - 1, last + 2, dtype=np.int64)
    left = np.searchsorted(minutes, every, side="left")
    right = np.searchsorted(minutes, every, side="right")
    lo = np.clip(from_us // US_PER_MINUTE, first - 1, last + 1) - (first - 1)
    hi = np.clip(to_us // US_PER_MINUTE, first - 1, last + 1) - (first - 1)
    return left[lo], right[hi]


def minute_values(v: VersionArrays, vidx: np.ndarray, sidx: np.ndarray, state: DayState
                  ) -> perps.LiquidationColumns:
    """The collector's per-minute values of version `vidx[i]` at snapshot `sidx[i]`.

    Every pair must have `v.source >= 0` and non-null parameters and counter at its snapshot.
    """
    groups = state.group[sidx]
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if n_groups <= 1:
        return _evaluate(v, vidx, sidx, state)
    liq = np.zeros(vidx.size, np.int64)
    close, borrow, maint = (np.zeros(vidx.size, np.uint64) for _ in range(3))
    tokens, lev = np.zeros(vidx.size), np.zeros(vidx.size)
    for g in range(n_groups):
        sel = np.flatnonzero(groups == g)
        if sel.size:
            part = _evaluate(v, vidx[sel], sidx[sel], state)
            liq[sel], close[sel], borrow[sel] = (part.liq_price_usd6, part.close_fee_usd6,
                                                 part.borrow_fee_usd6)
            maint[sel], tokens[sel], lev[sel] = (part.maint_margin_usd6, part.size_tokens,
                                                 part.leverage)
    return perps.LiquidationColumns(liq, close, borrow, maint, tokens, lev)


def _evaluate(v: VersionArrays, vidx: np.ndarray, sidx: np.ndarray, state: DayState
              ) -> perps.LiquidationColumns:
    """One `perps.liquidation_prices` call: all pairs share the parameters of sidx[0]."""
    rec = np.empty(vidx.size, _RECORD_DTYPE)
    rec["size_usd"], rec["price"] = v.size_usd6[vidx], v.entry_usd6[vidx]
    rec["collateral_usd"] = v.collateral_usd6[vidx]
    rec["cumulative_interest_snapshot"] = v.interest_snapshot[vidx]
    rec["side"] = v.side[vidx]
    decrease, scalar, max_lev = (int(x) for x in state.params[sidx[0]]) if sidx.size else (0, 0, 1)
    custody = Custody(decrease_position_bps=decrease, trade_impact_fee_scalar=scalar,
                      max_leverage_bps=max_lev)
    cum = state.cum[sidx, v.source[vidx].astype(np.int64)]
    return perps.liquidation_prices(rec, custody, cum)


# ------------------------------------------------------------------ versions -> rows
def expand(versions: pa.Table, state: DayState, columns: list[str] | None = None) -> pa.Table:
    """The `positions` rows of `versions` at the snapshots of `state`, sorted by (ts, pubkey).

    `versions` must be sorted by (pubkey, valid_from), as stored; `columns` selects (None: all).
    """
    names = columns or S.POSITIONS.names
    v = VersionArrays.from_table(versions)
    vidx, sidx = pairs(v, state)
    order = np.argsort(sidx, kind="stable")  # versions are in pubkey order: (ts, pubkey)
    vidx, sidx = vidx[order], sidx[order]
    computed = _computed_columns(versions, v, vidx, sidx, state, names)
    out = {}
    for name in names:
        if name in computed:
            out[name] = computed[name]
        else:
            out[name] = versions.column(name).take(pa.array(vidx))
    return pa.table(out, schema=pa.schema([S.POSITIONS.field(n) for n in names]))


def pairs(v: VersionArrays, state: DayState) -> tuple[np.ndarray, np.ndarray]:
    """(version index, snapshot index) of every row the versions stand for, version-major."""
    i0, i1 = v.snapshot_ranges(state)
    counts = (i1 - i0).astype(np.int64)
    vidx = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    starts = np.cumsum(counts) - counts
    sidx = i0[vidx] + (np.arange(vidx.size, dtype=np.int64) - starts[vidx])
    return vidx, sidx


def _computed_columns(versions: pa.Table, v: VersionArrays, vidx: np.ndarray, sidx: np.ndarray,
                      state: DayState, names: list[str]) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    if "ts" in names:
        out["ts"] = pa.array(state.ts_us[sidx], pa.int64()).cast(S.TS)
    fixed = v.source[vidx] == FIXED
    if "slot" in names:
        slot = state.slot[sidx].copy()
        if fixed.any():
            slot[fixed] = _u64(versions.column("slot"))[0][vidx[fixed]]
        out["slot"] = pa.array(slot, pa.uint64())
    for name, attr in (("entry_price", v.entry_usd6), ("size_usd", v.size_usd6),
                       ("collateral_usd", v.collateral_usd6)):
        if name in names:
            out[name] = pa.array(attr[vidx] / USD6, pa.float64())
    wanted = [n for n in ("borrow_fee_usd", "close_fee_usd", "liq_price") if n in names]
    if wanted:
        values = _minute_floats(versions, v, vidx, sidx, state, fixed)
        out.update({n: pa.array(values[n], pa.float64()) for n in wanted})
    return out


def _minute_floats(versions: pa.Table, v: VersionArrays, vidx: np.ndarray, sidx: np.ndarray,
                   state: DayState, fixed: np.ndarray) -> dict[str, np.ndarray]:
    out = {n: np.zeros(vidx.size) for n in ("borrow_fee_usd", "close_fee_usd", "liq_price")}
    live = np.flatnonzero(~fixed)
    if live.size:
        res = minute_values(v, vidx[live], sidx[live], state)
        out["borrow_fee_usd"][live] = res.borrow_fee_usd6 / USD6
        out["close_fee_usd"][live] = res.close_fee_usd6 / USD6
        out["liq_price"][live] = res.liq_price_usd6 / USD6
    dead = np.flatnonzero(fixed)
    for name in out if dead.size else ():
        out[name][dead] = np.asarray(pc.fill_null(versions.column(name), np.nan),
                                     np.float64)[vidx[dead]]
    return out


# ------------------------------------------------------------------ rows -> versions
#: Rows priced per formula call when checking a day (bounds the temporaries).
CHECK_CHUNK = 1 << 20


def to_versions(rows: Columns, state: DayState, market: str) -> pa.Table | None:
    """The versions standing for `rows` (one day's committed positions rows, all columns).

    None when a row cannot be represented (a USD amount that is not whole micro-dollars, or a
    row at a minute without a snapshot): the day then stays in the row layout. Works on index
    arrays (rows are never sorted or copied whole), so memory stays near the table's own.
    """
    if rows.num_rows == 0:
        return S.POSITION_VERSIONS.empty_table()
    ts_us = column_micros(rows.column("ts"))
    sidx = np.searchsorted(state.ts_us, ts_us)
    if (sidx >= state.n).any() or (state.ts_us[np.minimum(sidx, state.n - 1)] != ts_us).any():
        return None
    ints = {}
    for name in ("entry_price", "size_usd", "collateral_usd"):
        value, exact = _to_usd6(rows.column(name))
        if not exact.all():
            return None
        ints[name] = value
    source = _interest_source(rows.column("collateral_custody"), market)
    reproduced = _reproduces(rows, ints, source, sidx, state)
    keys = _codes(rows.column("pubkey"))
    order = np.lexsort((sidx, keys))
    starts = _version_starts(rows, [keys, *ints.values()], sidx, reproduced, order)
    table = _version_table(rows, ints, source, reproduced, order, starts, ts_us)
    return table.sort_by(S.SORT_KEYS["position_versions"])


def _reproduces(rows: Columns, ints: dict[str, np.ndarray], source: np.ndarray,
                sidx: np.ndarray, state: DayState) -> np.ndarray:
    """Rows whose per-minute values the formula gives back bit for bit from market_state."""
    n = rows.num_rows
    slot, slot_ok = _u64(rows.column("slot"))
    cis, cis_ok = _u64(rows.column("cumulative_interest_snapshot"))
    ok = (source >= 0) & state.params_ok[sidx] & state.slot_ok[sidx] & slot_ok & cis_ok
    ok &= ints["size_usd"] > 0  # the formula divides by the size
    ok &= state.cum_ok[sidx, np.maximum(source, 0)]
    ok &= slot == state.slot[sidx]
    side = np.where(_is_long(rows.column("side")), C.SIDE_LONG, C.SIDE_SHORT).astype(np.uint8)
    v = VersionArrays(ints["size_usd"], ints["entry_price"], ints["collateral_usd"], cis, side,
                      source.astype(np.int8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                      np.zeros(0))
    stored = {name: np.asarray(pc.fill_null(rows.column(name), np.nan), np.float64)
              for name in ("liq_price", "borrow_fee_usd", "close_fee_usd")}
    cand = np.flatnonzero(ok)
    for lo in range(0, n, CHECK_CHUNK):
        part = cand[(cand >= lo) & (cand < lo + CHECK_CHUNK)]
        if not part.size:
            continue
        res = minute_values(v, part, sidx[part], state)
        same = (res.liq_price_usd6 / USD6) == stored["liq_price"][part]
        same &= (res.borrow_fee_usd6 / USD6) == stored["borrow_fee_usd"][part]
        same &= (res.close_fee_usd6 / USD6) == stored["close_fee_usd"][part]
        ok[part] = same
    return ok


def _version_starts(rows: Columns, values: list[np.ndarray], sidx: np.ndarray,
                    reproduced: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Positions in `order` (rows by pubkey, then time) that begin a new version: another
    pubkey, a snapshot skipped, any of `values` or of the static columns changed."""
    change = np.zeros(rows.num_rows, bool)
    change[0] = True
    s = sidx[order]
    change[1:] |= s[1:] != s[:-1] + 1  # a new position, or absent from a snapshot in between
    statics = (_comparable(rows.column(c)) for c in STATIC_COLUMNS)
    for column in (*values, *statics):
        sorted_values = column[order]
        change[1:] |= _differs(sorted_values[1:], sorted_values[:-1])
    ok = reproduced[order]
    change |= ~ok
    change[1:] |= ~ok[:-1]
    return np.flatnonzero(change)


def _version_table(rows: Columns, ints: dict[str, np.ndarray], source: np.ndarray,
                   reproduced: np.ndarray, order: np.ndarray, starts: np.ndarray,
                   ts_us: np.ndarray) -> pa.Table:
    ends = np.append(starts[1:] - 1, rows.num_rows - 1)
    first, last = order[starts], order[ends]
    take = pa.array(first)
    fixed = ~reproduced[first]
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "valid_from": pa.array(ts_us[first], pa.int64()).cast(S.TS),
        "valid_to": pa.array(ts_us[last], pa.int64()).cast(S.TS),
        "entry_price_usd6": pa.array(ints["entry_price"][first], pa.uint64()),
        "size_usd6": pa.array(ints["size_usd"][first], pa.uint64()),
        "collateral_usd6": pa.array(ints["collateral_usd"][first], pa.uint64()),
        "interest_source": pa.array(np.where(fixed, FIXED, source[first]).astype(np.int8)),
    }
    for name in ("pubkey", *STATIC_COLUMNS):
        cols[name] = rows.column(name).take(take)
    mask = pa.array(~fixed)
    for name in ("slot", "borrow_fee_usd", "close_fee_usd", "liq_price"):
        taken = rows.column(name).take(take)
        cols[name] = pc.if_else(mask, pa.nulls(len(taken), taken.type), taken)
    table = pa.table({n: cols[n] for n in S.POSITION_VERSIONS.names})
    return table.cast(S.POSITION_VERSIONS)


# ------------------------------------------------------------------ helpers
def interest_sources(market: str) -> tuple[str, str, str]:
    """Custody addresses whose counters INTEREST_COLUMNS hold, in `interest_source` order."""
    return (C.CUSTODY_BY_ASSET[market], C.CUSTODY_BY_ASSET["USDC"], C.CUSTODY_BY_ASSET["USDT"])


def _interest_source(custody: pa.ChunkedArray, market: str) -> np.ndarray:
    keys = pa.array(interest_sources(market)) if market in C.CUSTODY_BY_ASSET else pa.array(
        [], pa.string())
    idx = pc.index_in(custody.cast(pa.string()), value_set=keys)
    return np.asarray(idx.fill_null(FIXED), np.int64)


def _to_usd6(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(USD-6 integers, exact mask): x such that x / 1e6 gives the stored float back."""
    usd = np.asarray(pc.fill_null(column, np.nan), np.float64)
    ok = np.isfinite(usd) & (usd >= 0) & (usd < 2.0**63 / USD6)
    value = np.where(ok, np.rint(np.where(ok, usd, 0.0) * USD6), 0).astype(np.uint64)
    return value, ok & (value / USD6 == usd)


def _u64(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 values with nulls as 0, non-null mask)."""
    if column.null_count == 0 and column.type == pa.uint64():
        return np.asarray(column, np.uint64), np.ones(len(column), bool)
    valid = np.asarray(pc.is_valid(column), bool)
    values = np.asarray(pc.fill_null(column.cast(pa.uint64()), 0), np.uint64)
    return values, valid


def _is_long(side: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the side is "long" (dictionary codes compared, no strings built)."""
    chunks = side.chunks if isinstance(side, pa.ChunkedArray) else [side]
    if chunks and all(pa.types.is_dictionary(c.type) for c in chunks):
        parts = []
        for chunk in chunks:
            names = chunk.dictionary.to_pylist()
            code = names.index("long") if "long" in names else -2
            parts.append(np.asarray(chunk.indices.fill_null(-1), np.int64) == code)
        return np.concatenate(parts)
    return np.asarray(pc.fill_null(pc.equal(side.cast(pa.string()), "long"), False), bool)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """int64 codes of a string column: equal strings, equal codes; null -1."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.string())
    encoded = pc.dictionary_encode(col)
    return np.asarray(encoded.indices.fill_null(-1), np.int64)


def _comparable(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy values whose equality is the column's (nulls equal each other only):
    codes for strings, -2**63 for a null time or integer, NaN for a null float."""
    t = column.type
    if pa.types.is_string(t) or pa.types.is_dictionary(t):
        return _codes(column)
    if pa.types.is_floating(t):
        return np.asarray(pc.fill_null(column, np.nan), np.float64)
    if pa.types.is_timestamp(t):
        return np.asarray(pc.fill_null(column.cast(S.TS).cast(pa.int64()), -(2**63)), np.int64)
    if pa.types.is_unsigned_integer(t):  # a null here also fails the formula check: own version
        return np.asarray(pc.fill_null(column.cast(pa.uint64()), 0), np.uint64)
    return np.asarray(pc.fill_null(column.cast(pa.int64()), -(2**63)), np.int64)


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise a != b, with NaN equal to NaN (float arrays)."""
    if a.dtype.kind == "f":
        return ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return a != b
