"""Where heatmap rows come from: the liqmap store, a legacy CSV folder, a price CSV.

Every source yields `RowBatch`es of snapshot times, liquidation prices, sizes and sides, plus the
minutes that hold a snapshot and the price points of the price line. Reading is the only thing
done here; binning lives in `binning`. Window ends are whole minutes, both included.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from liqmap import constants as C
from liqmap.constants import NS_PER_MINUTE, US_PER_MINUTE
from liqmap.errors import DataGapError, InputError
from liqmap.heatmap.binning import MatrixBinner, unique_int, weighted_quantiles
from liqmap.pricecsv import read_price_csv
from liqmap.timeutil import column_micros
from liqmap.validate import check_text_file

#: `levels --at T` uses the newest snapshot at or before T, at most this long before it.
SNAPSHOT_LOOKBACK = pd.Timedelta(hours=1)
#: Days of position versions read and binned in one pass (memory: ~7 MB a day at 10,000
#: open positions).
FEED_DAYS = 16
#: Without a price line, the default price range holds this central share of the amount.
QUANTILE_RANGE = (0.005, 0.995)


@dataclass(frozen=True)
class RowBatch:
    """Position rows: time_us int64 [n] (snapshot time, µs since the epoch), liq_price_usd
    float64 [n], size_tokens float64 [n], is_long bool [n] or None when the source has no side."""

    time_us: np.ndarray
    liq_price_usd: np.ndarray
    size_tokens: np.ndarray
    is_long: np.ndarray | None = None


@dataclass(frozen=True)
class Snapshots:
    """The snapshots of a window: minute int64 [n_snap] of each, and the price points of the
    price line, price_minute int64 [n_price] with price_usd float64 [n_price] (may be empty)."""

    minute: np.ndarray
    price_minute: np.ndarray
    price_usd: np.ndarray


class Source(Protocol):
    """What `build_heatmap` needs from a data source. Times are tz-aware UTC, bounds inclusive."""

    market: str
    description: str
    has_side: bool
    price_label: str  # legend of the price line

    def time_bounds(self) -> tuple[pd.Timestamp, pd.Timestamp] | None: ...

    def snapshots(self, start: pd.Timestamp, end: pd.Timestamp) -> Snapshots: ...

    def batches(self, start: pd.Timestamp, end: pd.Timestamp, progress: bool | None = False,
                with_side: bool = True) -> Iterator[RowBatch]: ...

    def liq_price_range(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float]: ...


def newest_time(source: Source) -> pd.Timestamp | None:
    """The newest snapshot of `source` (what relative times such as `-6h` count back from),
    or None when it holds none."""
    bounds = source.time_bounds()
    return None if bounds is None else bounds[1]


def to_minutes(ts: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Minutes since the epoch (int64, floored) of an Arrow timestamp column."""
    return column_micros(ts) // US_PER_MINUTE


def minute_of(ts: pd.Timestamp) -> int:
    """Minutes since the epoch of `ts` (floored)."""
    return int(ts.value // NS_PER_MINUTE)


def through_minute(end: pd.Timestamp) -> pd.Timestamp:
    """The last microsecond of the minute `end` (window ends include their whole minute)."""
    return end.floor("min") + pd.Timedelta(minutes=1) - pd.Timedelta(microseconds=1)


def _days(start: pd.Timestamp, end: pd.Timestamp, held: Iterable[date] | None = None
          ) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end] cut at UTC midnights (the store keeps one file per day); with `held`, only
    the pieces of those days, so a window of decades over a week of data costs a week."""
    if held is not None:
        first, last = start.date(), end.date()
        starts = [pd.Timestamp(d, tz="UTC") for d in sorted(held) if first <= d <= last]
        return [(max(start, d), min(end, d + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)))
                for d in starts]
    pieces = []
    lo = start
    while lo <= end:
        next_day = lo.normalize() + pd.Timedelta(days=1)
        hi = min(end, next_day - pd.Timedelta(microseconds=1))
        pieces.append((lo, hi))
        lo = next_day
    return pieces


#: `--source` of the store readers: collected snapshots, rows imported from the old tool's
#: CSV (`liqmap import-legacy`), or both (legacy rows only at minutes without a snapshot).
DATA_SOURCES = ("auto", "collected", "legacy")


class StoreSource:
    """Snapshots of one market in a liqmap store (`liqmap.store.Store`).

    `source` "auto" (default) adds the imported legacy rows at the minutes without a collected
    snapshot; "collected" and "legacy" use one kind only. Legacy rows have no side and no
    price: a side other than "both" uses the collected snapshots only.
    """

    price_label = "Oracle price"

    def __init__(self, root: str, market: str, source: str = "auto") -> None:
        from liqmap.store import Store

        if market not in C.MARKETS:
            raise InputError(f"unknown market {market!r}; choose one of {', '.join(C.MARKETS)}")
        if source not in DATA_SOURCES:
            raise InputError(f"--source must be one of {', '.join(DATA_SOURCES)}, got {source!r}")
        self.store = Store(root)
        self.market = market
        self.source = source
        self.has_side = source != "legacy"
        self.description = f"store {root}" + ("" if source == "auto" else f" ({source} rows)")

    def collected_only(self) -> StoreSource:
        """This store without the legacy rows (for views that need the side)."""
        return self if self.source == "collected" else StoreSource(self.store.root,
                                                                    self.market, "collected")

    def time_bounds(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        kinds = {"auto": ("market_state", "legacy"), "collected": ("market_state",),
                 "legacy": ("legacy",)}[self.source]
        bounds = [b for b in (self.store.time_bounds(self.market, k) for k in kinds) if b]
        if not bounds:
            return None
        return min(b[0] for b in bounds), max(b[1] for b in bounds)

    def snapshots(self, start: pd.Timestamp, end: pd.Timestamp) -> Snapshots:
        minute = price_minute = np.zeros(0, np.int64)
        price = np.zeros(0)
        if self.source != "legacy":
            state = self.store.read_market_state(self.market, start, through_minute(end),
                                                 ["ts", "oracle_price"])
            minute = price_minute = to_minutes(state.column("ts"))
            price = state.column("oracle_price").to_numpy(zero_copy_only=False).astype(
                np.float64)
        if self.source != "collected":
            minute = unique_int(np.concatenate([minute, self._legacy_minutes(start, end,
                                                                              minute)]))
        return Snapshots(minute, price_minute, price)

    def _legacy_minutes(self, start: pd.Timestamp, end: pd.Timestamp,
                        collected: np.ndarray) -> np.ndarray:
        """Minutes of legacy rows in the window that have no collected snapshot."""
        t_bin = self.store.read_legacy(self.market, start, through_minute(end), ["t_bin"])
        minutes = unique_int(to_minutes(t_bin.column("t_bin")))
        return minutes[~np.isin(minutes, collected)] if minutes.size else minutes

    def _feed_legacy(self, binner: MatrixBinner, lo: pd.Timestamp, hi: pd.Timestamp) -> None:
        """Legacy rows of [lo, hi] at minutes without a collected snapshot ("auto")."""
        if self.source == "collected":
            return
        for batch in self._legacy_batches(lo, hi):
            binner.add(batch.time_us, batch.liq_price_usd, batch.size_tokens, None)

    def liq_price_range(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float]:
        """Without any oracle price in the window (legacy rows only): the range holding the
        central 99 % of the legacy rows' size."""
        if self.source != "collected":
            table = self.store.read_legacy(self.market, start, through_minute(end))
            lo, hi = weighted_quantiles(_floats(table, "liq_price"), _floats(table, "size_sol"),
                                        QUANTILE_RANGE)
            if not math.isnan(lo):
                return lo, hi
        raise InputError(f"no oracle price stored for {self.market} in this window to centre "
                         "the price range on; pass --pmin and --pmax")

    def batches(self, start: pd.Timestamp, end: pd.Timestamp, progress: bool | None = False,
                with_side: bool = True) -> Iterator[RowBatch]:
        """Rows of each UTC day of [start, end] in turn, so memory holds one day at a time
        (`with_side` False skips reading the side column)."""
        columns = ["ts", "liq_price", "size_tokens", *(["side"] if with_side else [])]
        held = [day for day, _ in self.store.partitions("positions", self.market)]
        days = _days(start, through_minute(end), held)
        bar = tqdm(days, desc=f"reading {self.market} positions", unit="day",
                   disable=_tqdm_disable(progress), leave=False)
        for lo, hi in bar:  # a day's table is freed before the next one is read
            if self.source != "legacy":
                yield from _row_batches(self.store.read_positions(self.market, lo, hi, columns))
            if self.source != "collected":
                yield from self._legacy_batches(lo, hi)

    def _legacy_batches(self, lo: pd.Timestamp, hi: pd.Timestamp) -> Iterator[RowBatch]:
        """Legacy rows of [lo, hi] (with "auto": at minutes without a snapshot), no side."""
        table = self.store.read_legacy(self.market, lo, hi)
        if table.num_rows == 0:
            return
        time_us = column_micros(table.column("t_bin"))
        keep = np.ones(time_us.size, bool)
        if self.source == "auto":
            state = self.store.read_market_state(self.market, lo, hi, ["ts"])
            keep = ~np.isin(time_us // US_PER_MINUTE, to_minutes(state.column("ts")))
        yield RowBatch(time_us[keep], _floats(table, "liq_price")[keep],
                       _floats(table, "size_sol")[keep], None)

    def feed(self, binner: MatrixBinner, start: pd.Timestamp, end: pd.Timestamp,
             progress: bool | None = False) -> None:
        """Add the window's positions to `binner`. Days stored as versions are binned from
        their roll-ups where those give the same matrix (`heatmap.rollups`: agg "mean",
        columns of whole hours, a bin on the roll-up grid), else from the versions
        (`heatmap.versions`), never as per-minute rows, up to `FEED_DAYS` days per read; with
        amounts in USD (they move every minute), and on days still in rows, the rows are read
        a day at a time."""
        from liqmap.heatmap.rollups import RollupGrid, add_day_rollup, rollups_apply

        days = _days(start, through_minute(end))
        use_rollups = self.source != "legacy" and rollups_apply(binner)
        grids: dict[float, RollupGrid | None] = {}
        bar = tqdm(total=len(days), desc=f"reading {self.market} positions", unit="day",
                   disable=_tqdm_disable(progress), leave=False)
        with bar:
            for i in range(0, len(days), FEED_DAYS):
                chunk = days[i:i + FEED_DAYS]
                rolled = [lo for lo, hi in chunk if use_rollups and add_day_rollup(
                    self.store, self.market, binner, lo, hi, grids)]
                converted = ([lo for lo, _ in chunk if lo not in rolled
                              and self.store.has_versions(self.market, lo.date())]
                             if binner.unit == "tokens" else [])
                if converted and self.source != "legacy":
                    self._feed_versions(binner, converted, chunk)
                in_rows = [(lo, hi) for lo, hi in chunk if lo not in rolled
                           and lo not in converted and self.source != "legacy"]
                ahead = self._rows_read_ahead(in_rows, binner.side != "both")
                for lo, hi in chunk:
                    if (lo, hi) in in_rows:
                        self._add_rows(binner, next(ahead))
                    self._feed_legacy(binner, lo, hi)
                ahead.close()
                bar.update(len(chunk))

    def _feed_versions(self, binner: MatrixBinner, converted: list[pd.Timestamp],
                       chunk: list[tuple[pd.Timestamp, pd.Timestamp]]) -> None:
        from liqmap.heatmap.versions import BIN_COLUMNS, add_versions
        from liqmap.store.versions import STATE_COLUMNS, DayState

        lo, hi = chunk[0][0], chunk[-1][1]
        state = self.store.read_market_state(self.market, lo, hi, STATE_COLUMNS)
        # no row filter: versions outside [lo, hi] hold no snapshot of `state` and add nothing
        versions = self.store.read_versions(self.market, [d.date() for d in converted],
                                            columns=BIN_COLUMNS)
        add_versions(binner, versions, DayState.from_table(state))

    def _rows_read_ahead(self, pieces: list[tuple[pd.Timestamp, pd.Timestamp]],
                         with_side: bool) -> Generator[pa.Table, None, None]:
        """The positions rows of each day piece in turn, the next piece read in a thread while
        the caller bins this one (Parquet decoding and the binning kernel both release the
        GIL), so memory holds at most two days of rows."""
        columns = ["ts", "liq_price", "size_tokens", *(["side"] if with_side else [])]

        def read(piece: tuple[pd.Timestamp, pd.Timestamp]) -> pa.Table:
            return self.store.read_positions(self.market, *piece, columns)

        if not pieces:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="liqmap-read") as pool:
            pending = pool.submit(read, pieces[0])
            for following in [*pieces[1:], None]:
                table = pending.result()
                if following is not None:
                    pending = pool.submit(read, following)
                yield table
                del table

    @staticmethod
    def _add_rows(binner: MatrixBinner, table: pa.Table) -> None:
        for batch in _row_batches(table):
            binner.add(batch.time_us, batch.liq_price_usd, batch.size_tokens, batch.is_long)

    def snapshot_at(self, at: pd.Timestamp | None) -> tuple[pd.Timestamp, float, RowBatch]:
        """(time, oracle price, positions) of the newest snapshot at or before `at` (None: the
        newest of all), looking back at most `SNAPSHOT_LOOKBACK`."""
        if at is None:
            bounds = self.time_bounds()
            if bounds is None:
                raise DataGapError(f"no {self.market} snapshots in {self.description}; run "
                                   "`liqmap collect` or point --data-dir at collected data")
            at = bounds[1]
        state = self.store.read_market_state(self.market, at - SNAPSHOT_LOOKBACK, at,
                                             ["ts", "oracle_price"])
        if state.num_rows == 0:
            raise DataGapError(self._no_snapshot_message(at))
        last = int(np.argmax(to_minutes(state.column("ts"))))
        ts = pd.Timestamp(state.column("ts")[last].as_py())
        price = float(state.column("oracle_price")[last].as_py() or math.nan)
        table = self.store.read_positions(self.market, ts, ts,
                                          ["ts", "liq_price", "size_tokens", "side"])
        return ts, price, _row_batch(table)

    def _no_snapshot_message(self, at: pd.Timestamp) -> str:
        bounds = self.time_bounds()
        held = ("it holds none" if bounds is None else
                f"it holds {bounds[0]:%Y-%m-%dT%H:%M}Z to {bounds[1]:%Y-%m-%dT%H:%M}Z")
        return (f"no {self.market} snapshot in the hour up to {at:%Y-%m-%dT%H:%M}Z in "
                f"{self.description} ({held}); pick --at inside it")



def _row_batches(table: pa.Table) -> Iterator[RowBatch]:
    """One RowBatch per Arrow chunk of `table`, without copying the columns."""
    for batch in table.to_batches():
        if batch.num_rows:
            yield _row_batch(batch)


def _row_batch(table: pa.Table | pa.RecordBatch) -> RowBatch:
    side = (_is_long(pa.chunked_array([table.column("side")]))
            if "side" in table.column_names else None)
    return RowBatch(column_micros(table.column("ts")), _floats(table, "liq_price"),
                    _floats(table, "size_tokens"), side)


def _tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's `disable`: progress None = only on a terminal."""
    return None if progress is None else not progress


def _floats(table: pa.Table | pa.RecordBatch, name: str) -> np.ndarray:
    """A float column as numpy (no copy for one chunk without nulls; nulls become NaN)."""
    column = table.column(name)
    if column.null_count:
        column = pc.fill_null(column, np.nan)
    return np.asarray(column, dtype=np.float64)


def _is_long(side: pa.ChunkedArray) -> np.ndarray:
    """True where the side column says "long" (dictionary or plain strings)."""
    if pa.types.is_dictionary(side.type):
        parts = []
        for chunk in side.chunks:
            codes = np.asarray(chunk.indices.fill_null(-1))
            names = chunk.dictionary.to_pylist()
            long_code = names.index("long") if "long" in names else -2
            parts.append(codes == long_code)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return np.asarray(pc.fill_null(pc.equal(side, "long"), False))


class LegacyCsvSource:
    """The old tool's `sol_positions_log.csv` (`liq_price,size_sol,t_bin`), read directly.

    Each distinct `t_bin` minute is a snapshot; the file has no side and no price, so the price
    line comes from an optional price CSV (`read_price_csv`).
    """

    has_side = False

    def __init__(self, folder: str | Path, price_csv: str | Path | None = None,
                 market: str = "SOL") -> None:
        if market != "SOL":
            raise InputError(f"the legacy CSV holds SOL positions (size_sol), not {market}; "
                             "drop --market or use --market SOL")
        self.path = Path(folder) / C.LEGACY_CSV_NAME
        if not self.path.is_file():
            raise InputError(f"no {C.LEGACY_CSV_NAME} in {folder}; point --folder at the "
                             "folder holding the old tool's log")
        self.market = market
        self.description = f"legacy CSV {self.path}"
        self.price = read_price_csv(price_csv) if price_csv else None
        self.price_label = f"Price ({Path(price_csv).name})" if price_csv else "Price"
        self._rows: tuple[tuple[int | None, int | None], list[RowBatch]] | None = None

    def _load(self, start: pd.Timestamp | None, end: pd.Timestamp | None,
              progress: bool | None = False) -> list[RowBatch]:
        """Rows with minute in [start, end] (None = open), in parts as read (not copied into
        one array); the file is read once per window."""
        lo = None if start is None else minute_of(start)
        hi = None if end is None else minute_of(end)
        if self._rows is not None and self._rows[0] == (lo, hi):
            return self._rows[1]
        if self._rows is not None and self._rows[0] == (None, None):
            parts = [_window(p, lo, hi) for p in self._rows[1]]  # the file is in memory
        else:
            parts = read_legacy_parts(self.path, lo, hi, progress=progress)
        self._rows = ((lo, hi), parts)
        return parts

    def time_bounds(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        parts = [p.time_us for p in self._load(None, None) if p.time_us.size]
        if not parts:
            return None
        return (pd.Timestamp(min(int(t.min()) for t in parts) * 1000, tz="UTC"),
                pd.Timestamp(max(int(t.max()) for t in parts) * 1000, tz="UTC"))

    def snapshots(self, start: pd.Timestamp, end: pd.Timestamp) -> Snapshots:
        lo, hi = minute_of(start), minute_of(end)
        held = np.zeros(hi - lo + 1, dtype=bool)  # one flag a minute: no sort of every row
        for part in self._load(start, end):
            held[part.time_us // US_PER_MINUTE - lo] = True
        empty = np.zeros(0, dtype=np.int64)
        price_minute, price = self.price if self.price is not None else (empty, empty * 0.0)
        return Snapshots(np.flatnonzero(held) + lo, price_minute, price)

    def batches(self, start: pd.Timestamp, end: pd.Timestamp, progress: bool | None = False,
                with_side: bool = True) -> Iterator[RowBatch]:
        yield from self._load(start, end, progress)

    def liq_price_range(self, start: pd.Timestamp, end: pd.Timestamp) -> tuple[float, float]:
        """The range holding the central 99 % of the size (no price line to centre on)."""
        rows = _concat(self._load(start, end))
        lo, hi = weighted_quantiles(rows.liq_price_usd, rows.size_tokens, QUANTILE_RANGE)
        if math.isnan(lo):
            raise DataGapError("no liquidation prices in the window; pass --pmin and --pmax")
        return lo, hi


def read_legacy_csv(path: str | Path, start_min: int | None = None, end_min: int | None = None,
                    *, progress: bool | None = False) -> RowBatch:
    """Rows of an old-tool CSV (`liq_price,size_sol,t_bin`) with minute in [start_min, end_min].

    A well-formed file is read by Arrow's multithreaded CSV reader, typed, only the three
    columns, and windowed block by block. Any doubt (other header spelling, a row that does not
    parse, a price or size that is not a positive number) re-reads it with the line-by-line
    parser `liqmap import-legacy` uses: unlike the import, which skips bad rows, a bad row here
    is an `InputError` naming its line, since a heatmap with silently missing rows would
    misstate the amounts.
    """
    return _concat(read_legacy_parts(path, start_min, end_min, progress=progress))


def read_legacy_parts(path: str | Path, start_min: int | None = None,
                      end_min: int | None = None, *, progress: bool | None = False
                      ) -> list[RowBatch]:
    """`read_legacy_csv` in parts as read, without copying them into one array."""
    path = Path(path)
    check_text_file(path, f"the old tool's CSV log ({','.join(C.LEGACY_COLUMNS)})")
    fast = _read_legacy_fast(path, start_min, end_min)
    if fast is not None:
        return fast
    return [_read_legacy_exact(path, start_min, end_min, progress)]


#: Arrow reads the old CSV in blocks of this many bytes, in parallel.
FAST_CSV_BLOCK_BYTES = 1 << 20
#: A CSV up to this size is read whole by all cores; a larger one in a stream of blocks, so
#: memory holds the window's rows, not the file's.
FAST_CSV_WHOLE_BYTES = 1 << 30


def _read_legacy_fast(path: Path, start_min: int | None, end_min: int | None
                      ) -> list[RowBatch] | None:
    """The window's rows via Arrow's CSV reader (typed, threaded), or None when the file
    needs the exact parser (see `read_legacy_csv`)."""
    import pyarrow.csv as pacsv

    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace").strip()
    names = [name.removeprefix('"').removesuffix('"') for name in header.split(",")]
    if not set(C.LEGACY_COLUMNS) <= set(names) or len(names) != len(set(names)):
        return None
    convert = pacsv.ConvertOptions(
        include_columns=list(C.LEGACY_COLUMNS),
        column_types={"liq_price": pa.float64(), "size_sol": pa.float64(),
                      "t_bin": pa.timestamp("s", tz="UTC")})
    read = pacsv.ReadOptions(use_threads=True, block_size=FAST_CSV_BLOCK_BYTES)
    parts: list[RowBatch] = []
    try:
        if path.stat().st_size <= FAST_CSV_WHOLE_BYTES:
            batches: Iterator[pa.RecordBatch] = iter(
                pacsv.read_csv(path, read_options=read, convert_options=convert).to_batches())
        else:
            batches = iter(pacsv.open_csv(path, read_options=read, convert_options=convert))
        for batch in batches:
            rows = _checked_rows(batch)
            if rows is None:
                return None
            rows = _window(rows, start_min, end_min)
            if rows.time_us.size:
                parts.append(rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return parts


def _checked_rows(batch: pa.RecordBatch) -> RowBatch | None:
    """The batch as rows, or None if any value is missing or not a positive number."""
    if any(batch.column(i).null_count for i in range(batch.num_columns)):
        return None
    price = np.asarray(batch.column("liq_price"))
    size = np.asarray(batch.column("size_sol"))
    with np.errstate(invalid="ignore"):
        if not (np.isfinite(price) & (price > 0) & np.isfinite(size) & (size > 0)).all():
            return None
    seconds = np.asarray(batch.column("t_bin").cast(pa.int64()))
    return RowBatch(seconds * 1_000_000, price, size)


def _concat(parts: list[RowBatch]) -> RowBatch:
    if not parts:
        return RowBatch(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    if len(parts) == 1:
        return parts[0]
    return RowBatch(np.concatenate([p.time_us for p in parts]),
                    np.concatenate([p.liq_price_usd for p in parts]),
                    np.concatenate([p.size_tokens for p in parts]))


def _read_legacy_exact(path: Path, start_min: int | None, end_min: int | None,
                       progress: bool | None) -> RowBatch:
    """Line-by-line, with `liqmap import-legacy`'s parser: the first bad row is named."""
    from liqmap.store.legacy import header_indices, iter_blocks, parse_chunk

    times, prices, sizes = [], [], []
    with path.open("rb") as fh, tqdm(total=path.stat().st_size, desc=f"reading {path.name}",
                                     unit="B", unit_scale=True, disable=_tqdm_disable(progress),
                                     leave=False) as bar:
        header = fh.readline()
        try:
            indices = header_indices(header)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        n_columns = header.decode("utf-8-sig").count(",") + 1
        for block, first_line in iter_blocks(fh):
            parsed = parse_chunk(block, first_line, indices, n_columns)
            bar.update(len(block))
            if parsed.n_bad:
                line, why = parsed.bad[0]
                raise InputError(f"{path}: line {line}: {why} ({parsed.n_bad:,} bad row(s) in "
                                 "this block); fix or delete them, or import the file with "
                                 "`liqmap import-legacy`, which skips bad rows")
            rows = _window(RowBatch(column_micros(parsed.table.column("t_bin")),
                                    _floats(parsed.table, "liq_price"),
                                    _floats(parsed.table, "size_sol")), start_min, end_min)
            times.append(rows.time_us)
            prices.append(rows.liq_price_usd)
            sizes.append(rows.size_tokens)
    if not times:
        return RowBatch(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    return RowBatch(np.concatenate(times), np.concatenate(prices), np.concatenate(sizes))


def _window(rows: RowBatch, start_min: int | None, end_min: int | None) -> RowBatch:
    """The rows with minute in [start_min, end_min] (None = open)."""
    if not rows.time_us.size:
        return rows
    first, last = int(rows.time_us.min()), int(rows.time_us.max())
    if ((start_min is None or first >= start_min * US_PER_MINUTE)
            and (end_min is None or last < (end_min + 1) * US_PER_MINUTE)):
        return rows  # the whole part is inside: no per-row test
    minute = rows.time_us // US_PER_MINUTE
    keep = np.ones(minute.size, dtype=bool)
    if start_min is not None:
        keep &= minute >= start_min
    if end_min is not None:
        keep &= minute <= end_min
    if keep.all():
        return rows
    return RowBatch(rows.time_us[keep], rows.liq_price_usd[keep], rows.size_tokens[keep])
