"""Roll-ups: a closed day's versions pre-binned per hour on a fine price grid, and their use.

Writing (`build_rollup`, `ensure_rollup`): the day's versions are binned hour by hour and side
by side with the very kernels a heatmap uses (`heatmap.versions.HeldVersions`), on the grid of
edges `j × step` (`rollup_edges`); per cell the SUM of the amounts over the hour's snapshots and
the number of position-snapshots are kept (`store.rollups` has the file).

Reading (`RollupGrid`, `add_rollup_rows`): a heatmap whose columns are whole hours, aggregated
by "mean", with a bin that is a whole number m of steps and edges that are (bit for bit) every
m-th roll-up edge, gets from the roll-ups the very sums the versions would give: a price is in
coarse bin i exactly when its fine code j satisfies j // m == i (both paths put a price in the
bin whose lower edge is the largest edge at or below it, and the coarse edges are fine edges),
so the column's sum is the sum of the hour sums, up to float rounding of the additions. The
mean then divides by the column's snapshot count, as before. Anything else takes the exact
path (`StoreSource.feed` decides per day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.constants import US_PER_MINUTE
from liqmap.heatmap import _kernels as K
from liqmap.heatmap.binning import MatrixBinner, TimeGrid, bin_decimals
from liqmap.store import rollups as R
from liqmap.store import versions as V

if TYPE_CHECKING:
    from liqmap.store import Store

US_PER_HOUR = 60 * US_PER_MINUTE
SIDES = ("long", "short")


def rollup_step_usd(market: str) -> float:
    """The market's roll-up price step (USD)."""
    return C.ROLLUP_STEP_USD_BY_MARKET.get(market, C.ROLLUP_STEP_USD_BY_MARKET["SOL"])


def rollup_edges(step_usd: float, j_lo: int, j_hi: int, every: int = 1) -> np.ndarray:
    """Edges `j × step` for j = j_lo, j_lo + every, … up to j_hi, rounded as
    `make_price_edges` rounds them (each edge depends on its j alone)."""
    ks = np.arange(j_lo, j_hi + 1, every, dtype=np.float64)
    return np.round(ks * float(step_usd), bin_decimals(step_usd))


# ------------------------------------------------------------------ writing
def build_rollup(versions: pa.Table, state_table: pa.Table, day: date, step_usd: float
                 ) -> tuple[pa.Table, int, int, list[int]]:
    """(rows, top_code, day_rows, snapshots per hour) of one day's roll-up.

    `versions`: the day's versions (`heatmap.versions.BIN_COLUMNS`); `state_table`: its
    market_state rows (`store.versions.STATE_COLUMNS` and `oracle_price`).
    """
    from liqmap.heatmap.versions import HeldVersions

    state = V.DayState.from_table(state_table)
    day_us = int(np.datetime64(day, "us").astype(np.int64))
    hour = (state.ts_us - day_us) // US_PER_HOUR
    per_hour = np.bincount(hour[(hour >= 0) & (hour < 24)], minlength=24)[:24]
    top = _top_code(versions, state_table, step_usd)
    edges = rollup_edges(step_usd, 0, top)
    held = HeldVersions.from_table(versions)
    ones = np.ones(versions.num_rows)
    parts = []
    for h in np.flatnonzero(per_hour):
        hour_state = state.take(np.flatnonzero(hour == h))
        grid = TimeGrid(day_us // US_PER_MINUTE + 60 * int(h), 1, 60)
        minutes = hour_state.ts_us // US_PER_MINUTE
        for side in SIDES:
            sums = MatrixBinner(grid, edges, minutes, side=side)
            counts = MatrixBinner(grid, edges, minutes, side=side)
            held.add_to(sums, hour_state)
            held.add_to(counts, hour_state, ones)
            parts.append(_cells(sums, counts, int(h), side, top))
    hourly = _concat(parts)
    daily = _daily(hourly, top)
    ts_hour = day_us + hourly["hour"] * US_PER_HOUR
    table = pa.table({
        "ts": pa.array(np.concatenate([np.full(daily["code"].size, day_us), ts_hour]))
        .cast(pa.timestamp("us")).cast(R.POSITION_ROLLUPS.field("ts").type),
        "span_min": pa.array(np.concatenate([np.full(daily["code"].size, R.DAY_MIN),
                                             np.full(ts_hour.size, R.HOUR_MIN)]), pa.int16()),
        "side": pa.DictionaryArray.from_arrays(
            pa.array(np.concatenate([daily["side"], hourly["side"]]).astype(np.int8)),
            pa.array(list(SIDES))),
        "code": pa.array(np.concatenate([daily["code"], hourly["code"]]), pa.int32()),
        "amount_tokens": np.concatenate([daily["amount"], hourly["amount"]]),
        "n_rows": np.concatenate([daily["n"], hourly["n"]]),
    })
    return table, top, int(daily["code"].size), per_hour.astype(int).tolist()


def _top_code(versions: pa.Table, state_table: pa.Table, step_usd: float) -> int:
    """The grid reaches ROLLUP_TOP_FACTOR × the day's highest oracle or entry price."""
    prices = [step_usd]
    oracle = np.asarray(state_table.column("oracle_price").to_numpy(zero_copy_only=False),
                        np.float64)
    if np.isfinite(oracle).any():
        prices.append(float(np.nanmax(oracle)))
    if versions.num_rows:
        entry = np.asarray(versions.column("entry_price_usd6").fill_null(0), np.float64)
        prices.append(float(entry.max()) / 1e6)
    return max(1, math.ceil(C.ROLLUP_TOP_FACTOR * max(prices) / step_usd))


def _cells(sums: MatrixBinner, counts: MatrixBinner, hour: int, side: str, top: int
           ) -> dict[str, np.ndarray]:
    """The non-empty cells of one hour and side, with the above-grid and no-price cells."""
    n = np.rint(counts._acc[0, 0]).astype(np.int64)
    codes = np.flatnonzero(n)
    amount = sums._acc[0, 0, codes]
    c, a = sums._counts, sums._amounts
    if c[K.N_BELOW] or c[K.N_UNMATCHED]:  # edges start at 0 and every snapshot is the hour's
        raise AssertionError("roll-up grid missed a row")
    extra = [(top, a[K.A_ABOVE], c[K.N_ABOVE]), (R.NO_LIQ_CODE, 0.0, c[K.N_NO_LIQ])]
    extra = [e for e in extra if e[2]]
    extra_code = [e[0] for e in extra]
    extra_amount = [e[1] for e in extra]
    extra_n = [e[2] for e in extra]
    code = np.concatenate([np.asarray(extra_code, np.int64), codes])
    return {"hour": np.full(code.size, hour, np.int64),
            "side": np.full(code.size, SIDES.index(side), np.int64), "code": code,
            "amount": np.concatenate([np.asarray(extra_amount, np.float64), amount]),
            "n": np.concatenate([np.asarray(extra_n, np.int64), n[codes]])}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = ("hour", "side", "code", "amount", "n")
    if not parts:
        return {k: np.zeros(0, np.float64 if k == "amount" else np.int64) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _daily(hourly: dict[str, np.ndarray], top: int) -> dict[str, np.ndarray]:
    """The hourly cells summed over the day, by (side, code)."""
    width = top + 3  # codes -2 .. top
    key = hourly["side"] * width + hourly["code"] + 2
    uniq, inv = np.unique(key, return_inverse=True)
    return {"side": uniq // width, "code": uniq % width - 2,
            "amount": np.bincount(inv, weights=hourly["amount"], minlength=uniq.size),
            "n": np.bincount(inv, weights=hourly["n"], minlength=uniq.size).astype(np.int64)}


def ensure_rollup(store: Store, market: str, day: date) -> bool:
    """Write the roll-up of a converted day unless a valid one exists; True if written."""
    from liqmap.heatmap.versions import BIN_COLUMNS

    if not store.has_versions(market, day) or R.valid_meta(store, market, day) is not None:
        return False
    inputs = R.input_fingerprint(store, market, day)  # before reading: a change means stale
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    state = store.read_market_state(market, start, end, [*V.STATE_COLUMNS, "oracle_price"])
    versions = store.read_versions(market, day, columns=BIN_COLUMNS)
    step = rollup_step_usd(market)
    table, top, day_rows, per_hour = build_rollup(versions, state, day, step)
    R.write_rollup(store, market, day, table, R.RollupMeta(
        step_usd=step, top_code=top, inputs=inputs, day_rows=day_rows,
        snapshots_per_hour=per_hour))
    return True


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class RollupGrid:
    """How a binner's bins sit on a roll-up grid: bin i is fine codes
    [j_lo + i × m, j_lo + (i + 1) × m)."""

    step_usd: float
    j_lo: int
    m: int
    n_bins: int

    @property
    def j_hi(self) -> int:
        return self.j_lo + self.n_bins * self.m

    @classmethod
    def match(cls, binner: MatrixBinner, step_usd: float) -> RollupGrid | None:
        """The mapping, or None unless the binner's edges are every m-th edge of the grid,
        bit for bit (only then do both paths put every price in the same bin)."""
        edges = binner._edges
        if binner.n_bins < 1 or not (step_usd > 0 and math.isfinite(step_usd)):
            return None
        step = Decimal(repr(float(step_usd)))
        width = float(edges[-1] - edges[0]) / binner.n_bins
        m = round(width / float(step_usd)) if math.isfinite(width) else 0
        j0 = Decimal(repr(float(edges[0]))) / step
        if m < 1 or j0 != j0.to_integral_value() or j0 < 0:
            return None
        grid = cls(float(step_usd), int(j0), m, binner.n_bins)
        fine = rollup_edges(step_usd, grid.j_lo, grid.j_hi, m)
        return grid if np.array_equal(fine, edges) else None


def rollups_apply(binner: MatrixBinner) -> bool:
    """Whether roll-ups can give this binner's matrix at all: token amounts, agg "mean",
    columns of whole hours (the grid starts on a multiple of its width, so on an hour)."""
    return binner.unit == "tokens" and binner.agg == "mean" and binner.grid.freq_min % 60 == 0


def add_day_rollup(store: Store, market: str, binner: MatrixBinner, lo: pd.Timestamp,
                   hi: pd.Timestamp, grids: dict[float, RollupGrid | None]) -> bool:
    """Add the piece [lo, hi] of one day from its roll-up, if that gives the same matrix (the
    piece is whole hours, the roll-up is valid, the bins sit on its grid within its top);
    False (nothing added) otherwise. `grids` caches `RollupGrid.match` per step."""
    after = hi + pd.Timedelta(microseconds=1)
    if lo != lo.floor("h") or after != after.floor("h"):
        return False  # a partial hour
    found = R.open_valid(store, market, lo.date())
    if found is None:
        return False
    meta, pf = found
    if meta.step_usd not in grids:
        grids[meta.step_usd] = RollupGrid.match(binner, meta.step_usd)
    grid = grids[meta.step_usd]
    if grid is None or grid.j_hi > meta.top_code:
        return False
    whole_day = lo == lo.normalize() and after == lo.normalize() + pd.Timedelta(days=1)
    daily = whole_day and binner.grid.freq_min % R.DAY_MIN == 0
    rows = R.read_rows(pf, meta, R.DAY_MIN if daily else R.HOUR_MIN)
    if not whole_day:
        ts = rows.column("ts")
        rows = rows.filter(pc.and_(pc.greater_equal(ts, pa.scalar(lo, ts.type)),
                                   pc.less_equal(ts, pa.scalar(hi, ts.type))))
    add_rollup_rows(binner, grid, rows)
    return True


def add_rollup_rows(binner: MatrixBinner, grid: RollupGrid, rows: pa.Table) -> None:
    """Add roll-up rows (one span, inside the window) to `binner`'s columns."""
    for batch in rows.to_batches():
        if batch.num_rows == 0:
            continue
        side = batch.column("side")
        if pa.types.is_dictionary(side.type):
            names = side.dictionary.to_pylist()
            codes = np.asarray(side.indices.fill_null(-1), np.int64)
            long_code = names.index("long") if "long" in names else -3
        else:
            codes = np.asarray(pc.fill_null(pc.equal(side, "long"), False), np.int64)
            long_code = 1
        ts_us = np.asarray(batch.column("ts").cast(pa.int64()), np.int64)
        binner.add_rollup(ts_us, codes, long_code, np.asarray(batch.column("code"), np.int64),
                          np.asarray(batch.column("amount_tokens"), np.float64),
                          np.asarray(batch.column("n_rows"), np.int64), grid.j_lo, grid.m)
