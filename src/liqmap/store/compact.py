"""Compaction of closed hours/days and recovery from interrupted writes.

Each compacted file is written atomically before the files it replaces are deleted; a crash in
between leaves files that the coverage rule already ignores (`layout.live_files`) and that the
next `recover_store` deletes.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from liqmap import constants as C
from liqmap.store import layout as L
from liqmap.store import schema as S
from liqmap.store.fs import is_temp, temp_writer_pid, writer_alive

if TYPE_CHECKING:
    from liqmap.store import CompactionReport, Store

log = logging.getLogger(__name__)

#: positions before market_state: a market_state snapshot file is the commit record of the
#: positions file of the same name and must outlive it.
COMPACT_ORDER = ("positions", "market_state", "misses", "liquidations")


def compact_store(store: Store, now: pd.Timestamp, grace_s: float, *,
                  versions: bool = True, rollups: bool = True) -> CompactionReport:
    from liqmap.store import CompactionReport

    report = CompactionReport()
    cutoff = now - timedelta(seconds=grace_s)
    for market in sorted(set().union(*(store.markets(d) for d in COMPACT_ORDER))):
        days = sorted(set().union(*(store._days(d, market) for d in COMPACT_ORDER)))
        for day in days:
            for dataset in COMPACT_ORDER:
                if dataset == "liquidations":  # rewritten by confirmations too
                    with store.liquidations_lock:
                        _compact_partition(store, dataset, market, day, cutoff, report)
                    continue
                _compact_partition(store, dataset, market, day, cutoff, report, versions)
            if rollups:
                _ensure_rollup(store, market, day, report)
    return report


def _ensure_rollup(store: Store, market: str, day: date, report: CompactionReport) -> None:
    """After the day's files are compacted (its market_state too): the roll-up of a converted
    day, unless a valid one exists (`heatmap.rollups`)."""
    from liqmap.heatmap.rollups import ensure_rollup

    if store.has_versions(market, day) and ensure_rollup(store, market, day):
        report.rollups += 1


def _compact_partition(store: Store, dataset: str, market: str, day: date,
                       cutoff: pd.Timestamp, report: CompactionReport,
                       versions: bool = False) -> None:
    pdir = L.partition_dir(dataset, market, day)
    names = store.fs.listdir(pdir)
    files = [f for f in (L.parse_file(n) for n in names) if f is not None]
    if not files:
        return
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    closed = day_end <= cutoff
    converting = dataset == "positions" and (versions or store.has_versions(market, day))
    if closed and converting:
        convert_day(store, market, day, report)
        return
    if day_end <= cutoff:
        if len(files) > 1 or files[0].kind != "day":
            _rewrite(store, dataset, market, day, pdir, L.live_files(names),
                     L.day_name(day), names, report)
            report.days += 1
            report.partitions.append(pdir)
        return
    by_hour: dict[datetime, list[L.DataFile]] = {}
    for f in L.live_files(names):
        if f.kind == "snap":
            by_hour.setdefault(L.hour_of(f.start), []).append(f)
    for hour, snaps in sorted(by_hour.items()):
        if hour + timedelta(hours=1) > cutoff:
            continue
        old = [f for f in files if f.kind == "hour" and f.start == hour]
        _rewrite(store, dataset, market, day, pdir, old + snaps, L.hour_name(hour),
                 [f.name for f in old + snaps], report)
        report.hours += 1


def _rewrite(store: Store, dataset: str, market: str, day: date, pdir: str,
             sources: list[L.DataFile], target: str, remove: list[str],
             report: CompactionReport) -> None:
    table = _merge_sources(store, dataset, pdir, sources)
    if dataset == "positions":
        table, dropped = _drop_uncommitted(store, market, table)
        report.orphans_dropped += dropped
    table = table.sort_by(S.SORT_KEYS[dataset])
    store.fs.write_table(f"{pdir}/{target}", table, row_group_size=_row_group(table))
    for name in remove:
        if name != target and L.parse_file(name) is not None:
            store.fs.delete(f"{pdir}/{name}")
            report.files_removed += 1
    log.debug("compacted %s/%s (%d rows)", pdir, target, table.num_rows)


def convert_day(store: Store, market: str, day: date, report: CompactionReport) -> None:
    """Store a closed day's positions as versions, then delete its row files.

    The day is first compacted into its day file as before (if it is not yet), then converted
    reading one column at a time from that file. Idempotent and safe to interrupt: the
    versions file is written atomically before any row file is deleted, and readers use it as
    soon as it exists. A day `versions.to_versions` cannot represent stays as its day file.
    """
    from liqmap.store import versions as V

    pdir = L.partition_dir("positions", market, day)
    names = store.fs.listdir(pdir)
    if not store.has_versions(market, day):
        live = L.live_files(names)
        if not live:
            return
        if len(live) > 1 or live[0].kind != "day" or L.covered_files(names):
            _rewrite(store, "positions", market, day, pdir, live, L.day_name(day), names, report)
            report.days += 1
            names = store.fs.listdir(pdir)
        rows = FileColumns(store, f"{pdir}/{L.day_name(day)}")
        lo = pd.Timestamp(day, tz="UTC")
        state = store.read_market_state(market, lo, lo + timedelta(days=1, microseconds=-1),
                                        V.STATE_COLUMNS)
        table = V.to_versions(rows, V.DayState.from_table(state), market)
        if table is None:
            report.kept_rows += 1
            log.info("%s %s kept as rows: a row cannot be stored as a version", market, day)
            return
        store.fs.write_table(f"{L.partition_dir('position_versions', market, day)}/"
                             f"{L.day_name(day)}", table, row_group_size=_row_group(table))
        report.converted += 1
        report.partitions.append(pdir)
        log.debug("%s %s: %d rows -> %d versions", market, day, rows.num_rows, table.num_rows)
    for name in names:
        if L.parse_file(name) is not None:
            store.fs.delete(f"{pdir}/{name}")
            report.files_removed += 1


class FileColumns:
    """The columns of one positions Parquet file, each read when asked (not kept), so a day of
    millions of rows is never in memory whole."""

    def __init__(self, store: Store, rel: str) -> None:
        self._file = pq.ParquetFile(store.fs.fs.open_input_file(store.fs.path(rel)))
        self.num_rows = self._file.metadata.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        return self._file.read(columns=[name]).column(0).cast(S.POSITIONS.field(name).type)


def _row_group(table: pa.Table) -> int:
    return max(min(table.num_rows, C.COMPACT_ROW_GROUP_ROWS), 1)


def _merge_sources(store: Store, dataset: str, pdir: str, sources: list[L.DataFile]) -> pa.Table:
    """Rows of all sources; a snapshot time found in several files is taken from the first.

    Compacted files come first, so a snapshot file left behind by an interrupted compaction
    never duplicates rows.
    """
    tcol = S.TIME_COLUMN[dataset]
    parts: list[pa.Table] = []
    seen = pa.array([], S.TS)
    for f in sorted(sources, key=lambda f: (f.kind == "snap", f.start)):
        part = store._read_files(dataset, [f"{pdir}/{f.name}"])
        if len(seen):
            part = part.filter(pc.invert(pc.is_in(part.column(tcol), value_set=seen)))
        seen = pa.concat_arrays([seen, pc.unique(part.column(tcol))])
        parts.append(part)
    return pa.concat_tables(parts) if parts else S.SCHEMAS[dataset].empty_table()


def _drop_uncommitted(store: Store, market: str, table: pa.Table) -> tuple[pa.Table, int]:
    """Keep positions whose snapshot has a market_state row (crash leftovers are dropped)."""
    if table.num_rows == 0:
        return table, 0
    lo, hi = pc.min_max(table.column("ts")).values()
    committed = store.read_market_state(market, lo.as_py(), hi.as_py(), ["ts"]).column("ts")
    mask = pc.is_in(table.column("ts"), value_set=committed)
    if pc.all(mask).as_py():
        return table, 0
    kept = table.filter(mask)
    return kept, table.num_rows - kept.num_rows


def recover_store(store: Store, now: pd.Timestamp) -> int:
    """Delete stale temporary files, files covered by a compacted file, and old orphans."""
    removed = 0
    for dataset in (*COMPACT_ORDER, "legacy", "position_versions", "position_rollups"):
        for market in store.markets(dataset):
            for day, pdir in store.partitions(dataset, market):
                names = store.fs.listdir(pdir)
                stale = [n for n in names if _unheld_temp(store, f"{pdir}/{n}", n)]
                doomed = stale + L.covered_files(names)
                if dataset == "positions" and store.has_versions(market, day):
                    doomed = stale + [n for n in names if L.parse_file(n) is not None]
                elif dataset == "positions":
                    doomed += _orphans(store, market, day, names, now)
                for name in doomed:
                    store.fs.delete(f"{pdir}/{name}")
                removed += len(doomed)
    return removed


def _orphans(store: Store, market: str, day: date, names: list[str],
             now: pd.Timestamp) -> list[str]:
    """Positions snapshot files without a market_state file, older than ORPHAN_GRACE_S."""
    state = set(store.fs.listdir(L.partition_dir("market_state", market, day)))
    state_files = [f for f in (L.parse_file(n) for n in state) if f is not None]
    out = []
    for f in (L.parse_file(n) for n in names):
        if f is None or f.kind != "snap" or f.name in state:
            continue
        if any(s.kind != "snap" and s.start <= f.start < s.end for s in state_files):
            continue
        if ((now - pd.Timestamp(f.start)).total_seconds() > C.ORPHAN_GRACE_S
                or _writer_gone(store, f"{L.partition_dir('positions', market, day)}/{f.name}")):
            out.append(f.name)
    return out


def _writer_gone(store: Store, rel: str) -> bool:
    """True when the positions file's writer (Parquet metadata) was a process of this machine
    that no longer runs: its commit will never come."""
    from liqmap.store import WRITER_KEY

    try:
        meta = pq.read_schema(store.fs.path(rel), filesystem=store.fs.fs).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return False
    host, _, pid = meta.get(WRITER_KEY, b"").decode(errors="replace").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not writer_alive(int(pid))


def _unheld_temp(store: Store, rel: str, name: str) -> bool:
    """A temporary file no writer holds: its writer (pid in the name) is gone, or it is
    older than an hour (a writer on another machine, or a name without a pid)."""
    if not is_temp(name):
        return False
    pid = temp_writer_pid(name)
    if pid is not None and not writer_alive(pid):
        return True
    return _age_s(store, rel) > C.TEMP_FILE_MAX_AGE_S


def _age_s(store: Store, rel: str) -> float:
    return time.time() - store.fs.mtime(rel)
