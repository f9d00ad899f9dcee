"""The embedded store: a hive-partitioned Parquet dataset any engine can read.

```
<root>/positions/market=SOL/date=2025-08-22/*.parquet     one row per open position per snapshot
<root>/market_state/market=SOL/date=2025-08-22/*.parquet  one row per snapshot (its commit record)
<root>/misses/market=SOL/date=...                         minutes the collector could not store
<root>/legacy/market=SOL/date=...                         rows imported from the old CSV log
<root>/liquidations/market=SOL/date=...                   positions seen gone: liquidated or closed
```

A snapshot is committed when its market_state file exists: positions are written first, the
market_state row last, each atomically. Readers here only return positions of committed
snapshots, so a crash between the two writes is invisible. See `layout` for file names.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from liqmap import constants as C
from liqmap.errors import StorageError
from liqmap.store import layout as L
from liqmap.store import schema as S
from liqmap.store.fs import StoreFS

log = logging.getLogger(__name__)

__all__ = ["CompactionReport", "Store"]

TimeLike = pd.Timestamp | datetime | None
#: damaged files moved aside by `liqmap recover --quarantine`
QUARANTINE_DIR = "_quarantine"
#: the collector's per-endpoint RPC counters (JSON), read by `liqmap status`
ENDPOINTS_FILE = "_collector/endpoints.json"
#: Parquet key-value metadata of a positions snapshot file: "<host>:<pid>" of its writer
WRITER_KEY = b"liqmap.writer"


def writer_id() -> str:
    """This process as a store writer: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class CompactionReport:
    """What one `Store.compact` pass did."""

    hours: int = 0
    days: int = 0
    converted: int = 0  # closed days of positions now stored as versions
    rollups: int = 0  # roll-ups written (missing or stale) beside converted days
    kept_rows: int = 0  # closed days left as rows (a row no version can represent)
    files_removed: int = 0
    orphans_dropped: int = 0
    partitions: list[str] = field(default_factory=list)


def _utc(ts: TimeLike) -> pd.Timestamp | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def conform(table: pa.Table, dataset: str) -> pa.Table:
    """Cast `table` to the dataset's schema (column order too); StorageError naming the problem."""
    schema = S.SCHEMAS[dataset]
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise StorageError(f"{dataset} rows lack column(s) {', '.join(missing)}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise StorageError(f"{dataset} rows do not fit the schema: {exc}") from exc


class Store:
    """Read and write snapshots under `root` (a directory, or a pyarrow/fsspec URI)."""

    def __init__(self, root: str) -> None:
        self.root = str(root)
        self.fs = StoreFS(self.root)
        #: held while liquidation files are rewritten (a confirmation, a compaction), so the
        #: confirmer thread and the compactor thread never overwrite each other's rows
        self.liquidations_lock = threading.RLock()

    # ---------------------------------------------------------------- writing
    def write_snapshot(self, market: str, positions: pa.Table, state: pa.Table) -> bool:
        """Store one snapshot atomically; False (and nothing written) if its minute exists.

        `state` is the single market_state row; every positions row must carry the same `ts`.
        """
        state = conform(state, "market_state")
        positions = conform(positions, "positions")
        if state.num_rows != 1:
            raise StorageError(f"a snapshot has one market_state row, got {state.num_rows}")
        ts = state.column("ts")[0].as_py()
        if positions.num_rows and not pc.all(pc.equal(positions.column("ts"),
                                                      pa.scalar(ts, S.TS))).as_py():
            raise StorageError("positions rows carry a ts different from the market_state row")
        if self.has_snapshot(market, ts):
            return False
        name = L.snap_name(ts)
        day = ts.astimezone(UTC).date()
        if self.has_versions(market, day):
            raise StorageError(f"{market} {day} is a closed day already stored as position "
                               f"versions; a snapshot at {ts:%Y-%m-%dT%H:%M}Z cannot be added")
        positions = positions.sort_by(S.SORT_KEYS["positions"])
        positions = positions.replace_schema_metadata({WRITER_KEY: writer_id().encode()})
        # No-overwrite on both files: the first writer to place its positions owns the minute,
        # so a committed market_state row always sits next to its own writer's positions.
        if not self.fs.write_table(f"{L.partition_dir('positions', market, day)}/{name}",
                                   positions, overwrite=False):
            if not self.has_snapshot(market, ts):
                log.warning("%s %s: another writer's positions await their commit; minute left "
                            "to it", market, name)
            return False
        return self.fs.write_table(f"{L.partition_dir('market_state', market, day)}/{name}",
                                   state, overwrite=False)

    def write_miss(self, market: str, ts: datetime, reason: str, slot: int | None = None) -> bool:
        """Record that minute `ts` has no snapshot and why (shown by `liqmap status`)."""
        if self.has_snapshot(market, ts):
            return False
        table = pa.table({"ts": pa.array([ts], S.TS), "slot": pa.array([slot], pa.uint64()),
                          "reason": pa.array([reason[:500]], pa.string())})
        day = ts.astimezone(UTC).date()
        return self.fs.write_table(f"{L.partition_dir('misses', market, day)}/{L.snap_name(ts)}",
                                   table, overwrite=True)

    def write_endpoint_report(self, endpoints: list[dict[str, object]]) -> None:
        """Save the collector's per-RPC-endpoint counters (URLs redacted) for `status`."""
        doc = {"updated": pd.Timestamp.now(tz="UTC").isoformat(), "endpoints": endpoints}
        self.fs.write_bytes(ENDPOINTS_FILE, json.dumps(doc).encode())

    def read_endpoint_report(self) -> dict[str, object] | None:
        """The last saved endpoint report, or None if there is none (or it is unreadable)."""
        try:
            doc = json.loads(self.fs.read_bytes(ENDPOINTS_FILE))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def has_snapshot(self, market: str, ts: datetime) -> bool:
        """True when a committed snapshot of `market` exists for exactly `ts`."""
        ts = ts.astimezone(UTC)
        part = L.partition_dir("market_state", market, ts.date())
        names = self.fs.listdir(part)
        if L.snap_name(ts) in names:
            return True
        covering = [f for f in L.live_files(names) if f.kind != "snap" and f.start <= ts < f.end]
        if not covering:
            return False
        table = self._read_files("market_state", [f"{part}/{f.name}" for f in covering],
                                 ["ts"], _time_filter("ts", ts, ts))
        return table.num_rows > 0

    def write_bulk(self, dataset: str, market: str, table: pa.Table) -> int:
        """Write rows of any number of days as compacted day files; returns rows added.

        Rows whose time key is already stored for that day are skipped (stored rows win), so
        re-running an import adds nothing. Each day file is replaced atomically.
        """
        table = conform(table, dataset)
        tcol = S.TIME_COLUMN[dataset]
        if table.num_rows == 0:
            return 0
        days = pc.cast(pc.cast(table.column(tcol), pa.timestamp("us")), pa.date32())
        added = 0
        for day in pc.unique(days).to_pylist():
            if dataset == "positions" and self.has_versions(market, day):
                raise StorageError(f"{market} {day} is stored as position versions; rows "
                                   "cannot be added to a converted day")
            part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            added += self.merge_day(dataset, L.partition_dir(dataset, market, day), day, part)
        return added

    def merge_day(self, dataset: str, pdir: str, day: date, incoming: pa.Table) -> int:
        """Merge rows of one day into the partition directory `pdir` as one day file (stored
        time keys win); returns rows added."""
        tcol = S.TIME_COLUMN[dataset]
        names = self.fs.listdir(pdir)
        existing = self._read_files(dataset, [f"{pdir}/{f.name}" for f in L.live_files(names)])
        if existing.num_rows:
            keep = pc.invert(pc.is_in(incoming.column(tcol), value_set=existing.column(tcol)))
            incoming = incoming.filter(keep)
        if incoming.num_rows == 0:
            return 0
        merged = pa.concat_tables([existing, incoming]).sort_by(S.SORT_KEYS[dataset])
        self.fs.write_table(f"{pdir}/{L.day_name(day)}", merged,
                            row_group_size=C.COMPACT_ROW_GROUP_ROWS)
        for name in names:
            if name != L.day_name(day) and L.parse_file(name) is not None:
                self.fs.delete(f"{pdir}/{name}")
        return incoming.num_rows

    # ---------------------------------------------------------------- liquidations
    def write_liquidations(self, market: str, rows: pa.Table) -> int:
        """Store detected liquidations/closes (`schema.LIQUIDATIONS` rows), one file per
        second of `ts`, atomically. Rows already stored for the same (ts, pubkey) are replaced
        (a confirmation updates its detection); returns rows written."""
        rows = conform(rows, "liquidations")
        if rows.num_rows == 0:
            return 0
        with self.liquidations_lock:
            for ts in pc.unique(rows.column("ts")).to_pylist():
                part = rows.filter(pc.equal(rows.column("ts"), pa.scalar(ts, S.TS)))
                self._upsert_liquidations(market, ts, part)
        return rows.num_rows

    def _upsert_liquidations(self, market: str, ts: datetime, rows: pa.Table) -> None:
        pdir = L.partition_dir("liquidations", market, ts.astimezone(UTC).date())
        live = [f for f in L.live_files(self.fs.listdir(pdir)) if f.start <= ts < f.end]
        name = live[0].name if live else L.snap_name(ts)
        existing = (self._read_files("liquidations", [f"{pdir}/{name}"]) if live
                    else S.LIQUIDATIONS.empty_table())
        if existing.num_rows:
            same = pc.and_(pc.equal(existing.column("ts"), pa.scalar(ts, S.TS)),
                           pc.is_in(existing.column("pubkey"), value_set=rows.column("pubkey")))
            existing = existing.filter(pc.invert(same))
        merged = pa.concat_tables([existing, rows]).sort_by(S.SORT_KEYS["liquidations"])
        self.fs.write_table(f"{pdir}/{name}", merged)

    def read_liquidations(self, market: str, start: TimeLike = None, end: TimeLike = None,
                          *, kind: str | None = None,
                          confirmed: bool | None = None) -> pd.DataFrame:
        """Detected liquidations and closes of `market` with `ts` in [start, end], as a
        DataFrame with a `market` column (README "Realized liquidations" for the fields).
        `kind` ("liquidated" | "closed") and `confirmed` filter the rows."""
        table = self.read("liquidations", market, start, end)
        if kind is not None:
            table = table.filter(pc.equal(table.column("kind"), kind))
        if confirmed is not None:
            table = table.filter(pc.equal(table.column("confirmed"), confirmed))
        df = table.to_pandas()
        df.insert(2, "market", market)
        df["side"] = df["side"].astype(str)
        return df.sort_values(["ts", "pubkey"], ignore_index=True)

    # ---------------------------------------------------------------- reading
    def read(self, dataset: str, market: str, start: TimeLike = None, end: TimeLike = None,
             columns: list[str] | None = None) -> pa.Table:
        """Rows of `dataset` with time key in [start, end] (inclusive; None = open).

        `positions` of days stored as versions are expanded to the rows they stand for.
        """
        start_u, end_u = _utc(start), _utc(end)
        if dataset == "positions":
            converted = self._converted_days(market, start_u, end_u)
            if converted:
                return self._read_positions_mixed(market, start_u, end_u, columns, converted)
        files, inside = self._live_paths(dataset, market, start_u, end_u)
        return self._read_files(dataset, files, columns, None if inside else
                                _time_filter(S.TIME_COLUMN[dataset], start_u, end_u))

    def _read_positions_mixed(self, market: str, start: pd.Timestamp | None,
                              end: pd.Timestamp | None, columns: list[str] | None,
                              converted: list[date]) -> pa.Table:
        """Positions over days of both layouts, day by day in time order."""
        pieces = []
        for day in L.days_between(start, end, self._days("positions", market)):
            lo = _day_start(day) if start is None else max(_day_start(day), start)
            hi = _day_end(day) if end is None else min(_day_end(day), end)
            if day in converted:
                pieces.append(self.read_versions_expanded(market, day, lo, hi, columns))
            else:
                files, inside = self._live_paths("positions", market, lo, hi)
                pieces.append(self._read_files("positions", files, columns,
                                               None if inside else _time_filter("ts", lo, hi)))
        schema = pa.schema([S.POSITIONS.field(n) for n in (columns or S.POSITIONS.names)])
        return pa.concat_tables([p.cast(schema) for p in pieces]) if pieces else \
            schema.empty_table()

    def _converted_days(self, market: str, start: pd.Timestamp | None,
                        end: pd.Timestamp | None) -> list[date]:
        """Days in [start, end] whose positions are stored as versions: their versions file
        exists. A day folder alone is not a conversion (a write killed before its rename
        leaves the folder and a temporary file; the day's rows are still the data)."""
        folders = self._days("position_versions", market)
        return [d for d in L.days_between(start, end, folders) if self.has_versions(market, d)]

    def has_versions(self, market: str, day: date) -> bool:
        """True when the positions of `day` are stored as versions (a converted closed day)."""
        return self.fs.exists(f"{L.partition_dir('position_versions', market, day)}/"
                              f"{L.day_name(day)}")

    def read_versions(self, market: str, day: date | list[date], start: TimeLike = None,
                      end: TimeLike = None, columns: list[str] | None = None) -> pa.Table:
        """The position versions of converted day(s) that hold a minute in [start, end],
        each day's sorted by (pubkey, valid_from), days in the order given; days not converted
        contribute nothing. Several days are read in one parallel pass."""
        days = day if isinstance(day, list) else [day]
        paths = [f"{L.partition_dir('position_versions', market, d)}/{L.day_name(d)}"
                 for d in days]
        paths = [p for p in paths if self.fs.exists(p)]
        start_u, end_u = _utc(start), _utc(end)
        flt = None
        if start_u is not None:
            flt = pc.field("valid_to") >= pa.scalar(start_u, S.TS)
        if end_u is not None:
            upper = pc.field("valid_from") <= pa.scalar(end_u, S.TS)
            flt = upper if flt is None else flt & upper
        return self._read_files("position_versions", paths, columns, flt)

    def read_versions_expanded(self, market: str, day: date, start: TimeLike = None,
                               end: TimeLike = None, columns: list[str] | None = None
                               ) -> pa.Table:
        """The positions rows a converted `day` stands for in [start, end], by (ts, pubkey)."""
        from liqmap.store import versions as V

        start_u, end_u = _utc(start), _utc(end)
        lo = _day_start(day) if start_u is None else max(_day_start(day), start_u)
        hi = _day_end(day) if end_u is None else min(_day_end(day), end_u)
        state = V.DayState.from_table(self.read_market_state(market, lo, hi, V.STATE_COLUMNS))
        return V.expand(self.read_versions(market, day, lo, hi), state, columns)

    def read_positions(self, market: str, start: TimeLike = None, end: TimeLike = None,
                       columns: list[str] | None = None) -> pa.Table:
        """Positions of committed snapshots with ts in [start, end]."""
        return self.read("positions", market, start, end, columns)

    def read_market_state(self, market: str, start: TimeLike = None, end: TimeLike = None,
                          columns: list[str] | None = None) -> pa.Table:
        """One row per committed snapshot with ts in [start, end]."""
        return self.read("market_state", market, start, end, columns)

    def read_misses(self, market: str, start: TimeLike = None, end: TimeLike = None) -> pa.Table:
        return self.read("misses", market, start, end)

    def read_legacy(self, market: str, start: TimeLike = None, end: TimeLike = None,
                    columns: list[str] | None = None) -> pa.Table:
        """Rows imported from the old CSV log (`t_bin`, `liq_price`, `size_sol`)."""
        return self.read("legacy", market, start, end, columns)

    def snapshot_times(self, market: str, start: TimeLike = None,
                       end: TimeLike = None) -> pd.DatetimeIndex:
        """Sorted times of the committed snapshots in [start, end]."""
        col = self.read_market_state(market, start, end, ["ts"]).column("ts")
        return pd.DatetimeIndex(col.to_pandas()).sort_values()

    def time_bounds(self, market: str, dataset: str = "market_state"
                    ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """(first, last) time key stored for `market` in `dataset`, or None if empty."""
        tcol = S.TIME_COLUMN[dataset]
        days = self._days(dataset, market)
        first = self._day_with_rows(dataset, market, days, tcol)
        if first is None:
            return None
        last = self._day_with_rows(dataset, market, days[::-1], tcol)
        assert last is not None  # a day with rows exists: `first`'s
        return (pd.Timestamp(pc.min(first.column(tcol)).as_py()),
                pd.Timestamp(pc.max(last.column(tcol)).as_py()))

    def _day_with_rows(self, dataset: str, market: str, days: list[date], tcol: str
                       ) -> pa.Table | None:
        """The time column of the first of `days` holding rows. A day folder can hold none:
        a write killed before its rename leaves the folder and a temporary file."""
        for day in days:
            table = self.read(dataset, market, _day_start(day), _day_end(day), [tcol])
            if table.num_rows:
                return table
        return None

    def markets(self, dataset: str = "market_state") -> list[str]:
        names = self.fs.listdir(dataset)
        return sorted(n.split("=", 1)[1] for n in names if n.startswith("market="))

    def size_bytes(self, market: str | None = None) -> dict[str, int]:
        """Bytes on disk per dataset (for one market, or all)."""
        out = {}
        for dataset in (*S.SCHEMAS, "position_rollups"):
            rel = L.market_dir(dataset, market) if market else dataset
            out[dataset] = self.fs.size(rel)
        return out

    # ---------------------------------------------------------------- internals
    def _days(self, dataset: str, market: str) -> list[date]:
        """Partition dates of `dataset`; for positions, with the days stored as versions."""
        names = self.fs.listdir(L.market_dir(dataset, market))
        if dataset == "positions":
            names += self.fs.listdir(L.market_dir("position_versions", market))
        return sorted({d for d in (L.parse_date_dir(n) for n in names) if d is not None})

    def _live_paths(self, dataset: str, market: str, start: pd.Timestamp | None,
                    end: pd.Timestamp | None) -> tuple[list[str], bool]:
        """The live files holding a row of [start, end], and whether every one of them lies
        inside it (then their rows need no time filter: a file's rows are within its span)."""
        paths, inside = [], True
        for day in L.days_between(start, end, self._days(dataset, market)):
            pdir = L.partition_dir(dataset, market, day)
            files = L.live_files(self.fs.listdir(pdir))
            if dataset == "positions":
                files = self._committed(market, day, files)
            for f in files:
                if (end is None or f.start <= end) and (start is None or f.end > start):
                    paths.append(f"{pdir}/{f.name}")
                    inside = inside and (start is None or f.start >= start) and (
                        end is None or f.end - _ONE_US <= end)
        return paths, inside

    def _committed(self, market: str, day: date, files: list[L.DataFile]) -> list[L.DataFile]:
        """Drop positions snapshot files whose market_state commit record does not exist."""
        if all(f.kind != "snap" for f in files):
            return files
        names = self.fs.listdir(L.partition_dir("market_state", market, day))
        state_snaps = set(names)
        compacted = [f for f in L.live_files(names) if f.kind != "snap"]
        return [f for f in files if f.kind != "snap" or f.name in state_snaps
                or any(c.start <= f.start < c.end for c in compacted)]

    def _read_files(self, dataset: str, paths: list[str], columns: list[str] | None = None,
                    flt: pc.Expression | None = None) -> pa.Table:
        schema = S.SCHEMAS[dataset]
        if not paths:
            return schema.empty_table().select(columns or schema.names)
        try:
            data = pads.dataset([self.fs.path(p) for p in paths], schema=schema,
                                format="parquet", filesystem=self.fs.fs)
            return data.to_table(columns=columns, filter=flt)
        except (OSError, pa.ArrowInvalid) as exc:
            raise StorageError(f"cannot read the {dataset} data in {self.root}: {exc}; run "
                               "`liqmap status` to locate the damaged file") from exc

    # ---------------------------------------------------------------- maintenance
    def compact(self, now: TimeLike = None, *, grace_s: float = C.COMPACTION_GRACE_S,
                versions: bool = True, rollups: bool = True) -> CompactionReport:
        """Compact closed hours into hour files and closed days into one day file each; with
        `versions`, a closed day's positions become position versions (`store.versions`);
        with `rollups`, each converted day gets its pre-binned roll-up (`store.rollups`) if
        it lacks a valid one.

        Readers see the same rows before and after. Positions are compacted before their
        market_state, and only snapshots whose market_state row exists are kept.
        """
        from liqmap.store.compact import compact_store

        return compact_store(self, _utc(now) or pd.Timestamp.now(tz="UTC"), grace_s,
                             versions=versions, rollups=rollups)

    def recover(self, now: TimeLike = None) -> int:
        """Remove leftovers of interrupted writes; returns the number of files removed."""
        from liqmap.store.compact import recover_store
        from liqmap.store.legacy import recover_imports

        return (recover_imports(self)
                + recover_store(self, _utc(now) or pd.Timestamp.now(tz="UTC")))

    def quarantine(self, rel: str) -> str:
        """Move the data file `rel` aside to `_quarantine/<rel>` (no reader or compaction
        looks there; nothing is deleted); returns where it went."""
        dest = f"{QUARANTINE_DIR}/{rel}"
        if self.fs.exists(dest):
            dest = f"{dest}.{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}"
        self.fs.move_aside(rel, dest)
        log.warning("moved damaged file %s to %s", rel, dest)
        return dest

    def partitions(self, dataset: str, market: str) -> Iterable[tuple[date, str]]:
        for day in self._days(dataset, market):
            yield day, L.partition_dir(dataset, market, day)


_ONE_US = timedelta(microseconds=1)


def _time_filter(column: str, start: datetime | None, end: datetime | None
                 ) -> pc.Expression | None:
    expr = None
    if start is not None:
        expr = pc.field(column) >= pa.scalar(start, S.TS)
    if end is not None:
        upper = pc.field(column) <= pa.scalar(end, S.TS)
        expr = upper if expr is None else expr & upper
    return expr


def _day_start(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _day_end(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC") + timedelta(days=1) - timedelta(microseconds=1)
