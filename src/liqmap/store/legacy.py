"""The old scripts' CSV log (`liq_price,size_sol,t_bin`): streaming import and export.

Import reads the file in blocks (a multi-GB log never sits in memory), stages the good rows
under `<root>/_staging/<id>/`, and only then merges them into the `legacy` dataset.
On a local disk the market's whole next `legacy/market=<M>` tree is built in the staging
directory (stored files hard-linked, imported days merged), a commit marker is written, and one
atomic directory exchange makes it live: every reader, DuckDB and polars globs included, sees
all of the import or none of it, even before recovery. Without the marker, recovery deletes the
staging; with it, recovery finishes the exchange. On object stores the days are merged one by
one after the marker (re-applying a day adds nothing, stored minutes win).
Bad rows are counted and reported with their line numbers; they never abort the import.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from liqmap import constants as C
from liqmap.errors import DataGapError, InputError
from liqmap.files import atomic_output
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store import schema as S
from liqmap.store.fs import can_swap_dirs
from liqmap.timeutil import check_order
from liqmap.validate import check_text_file

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 << 20
STAGING = "_staging"
#: inside a staging directory: the market's complete next legacy tree (atomic imports)
NEXT_TREE = "next"
#: in a live legacy market directory: the staging that made it (so recovery never swaps twice)
IMPORT_MARK = "_import"
MAX_REPORTED_BAD = 20


@dataclass
class ImportReport:
    """What an import did; `bad_lines` holds the first bad rows as (line number, reason)."""

    path: str
    rows_read: int = 0
    rows_stored: int = 0
    rows_bad: int = 0
    rows_already_stored: int = 0
    days: list[str] = field(default_factory=list)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"imported {self.rows_stored:,} of {self.rows_read:,} rows from {self.path} into "
                f"{len(self.days)} day(s); {self.rows_bad:,} bad row(s) skipped, "
                f"{self.rows_already_stored:,} already stored")
        if self.bad_lines:
            shown = "; ".join(f"line {n}: {why}" for n, why in self.bad_lines[:5])
            more = self.rows_bad - min(len(self.bad_lines), 5)
            text += f"\n  bad rows: {shown}" + (f"; and {more:,} more" if more > 0 else "")
        return text


# ---------------------------------------------------------------- parsing (pure)
def header_indices(header: bytes) -> list[int]:
    """Positions of liq_price, size_sol, t_bin in the header; InputError naming missing ones."""
    try:
        text = header.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError("the file is not a text CSV (binary data in its first line); give "
                         f"the old tool's log with the header {','.join(C.LEGACY_COLUMNS)}"
                         ) from None
    names = [h.strip().strip('"').lower() for h in text.strip().split(",")]
    missing = [c for c in C.LEGACY_COLUMNS if c not in names]
    if missing:
        found = ",".join(names) or "nothing"
        raise InputError(f"legacy CSV lacks column(s) {', '.join(missing)}; the header must "
                         f"name {','.join(C.LEGACY_COLUMNS)} (found {found})")
    return [names.index(c) for c in C.LEGACY_COLUMNS]


@dataclass(frozen=True)
class ParsedBlock:
    """One block of the CSV: good rows, the number of bad rows and the first few of them."""

    table: pa.Table
    rows: int
    n_bad: int
    bad: list[tuple[int, str]]


def parse_chunk(data: bytes, first_line: int, indices: list[int], n_columns: int
                ) -> ParsedBlock:
    """Parse a block of whole lines; `first_line` is the 1-based line number of its first line."""
    columns, lines, bad = _fast_split(data, first_line, n_columns)
    if columns is None:
        columns, lines, bad = _exact_split(data, first_line, n_columns)
    picked = [columns[i] for i in indices]
    table, n_bad, more_bad = _convert(picked[0], picked[1], picked[2], lines)
    details = sorted(bad + more_bad)[:MAX_REPORTED_BAD]
    return ParsedBlock(table, len(lines) + len(bad), n_bad + len(bad), details)


def _fast_split(data: bytes, first_line: int, n_columns: int
                ) -> tuple[list[pa.Array] | None, np.ndarray, list[tuple[int, str]]]:
    """pyarrow's CSV parser; gives up (None) when the block has blank or ragged lines."""
    if b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r\n")) \
            or (not data.isascii() and not _is_utf8(data)):
        return None, np.zeros(0, np.int64), []
    ragged: list[object] = []

    def on_ragged(row: object) -> str:
        ragged.append(row)
        return "skip"

    names = [f"c{i}" for i in range(n_columns)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_ragged),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                 strings_can_be_null=False))
    except pa.ArrowInvalid:
        return None, np.zeros(0, np.int64), []
    if ragged:
        return None, np.zeros(0, np.int64), []
    lines = first_line + np.arange(table.num_rows, dtype=np.int64)
    return [table.column(i).combine_chunks() for i in range(n_columns)], lines, []


def _is_utf8(data: bytes) -> bool:
    """pyarrow's ragged-row handler cannot even show a row that is not UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _exact_split(data: bytes, first_line: int, n_columns: int
                 ) -> tuple[list[pa.Array], np.ndarray, list[tuple[int, str]]]:
    """Line by line (only for blocks with blank or ragged lines): exact line numbers."""
    fields: list[list[str]] = [[] for _ in range(n_columns)]
    lines, bad = [], []
    for offset, raw in enumerate(data.split(b"\n")):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        parts = [p.strip().strip('"') for p in text.split(",")]
        if len(parts) != n_columns:
            bad.append((first_line + offset, f"expected {n_columns} fields, got {len(parts)}"))
            continue
        for i, p in enumerate(parts):
            fields[i].append(p)
        lines.append(first_line + offset)
    return [pa.array(f, pa.string()) for f in fields], np.array(lines, np.int64), bad


def _to_float(values: pa.Array) -> np.ndarray:
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(values.to_pandas(), errors="coerce").to_numpy(np.float64)


def _to_time(values: pa.Array) -> pa.Array:
    parsed = pc.strptime(values, format=C.LEGACY_TIME_FORMAT, unit="us", error_is_null=True)
    if parsed.null_count == 0:
        return parsed.cast(S.TS)
    fallback = pd.to_datetime(values.to_pandas(), utc=True, errors="coerce", format="ISO8601")
    exact = pd.Series(parsed.to_pandas()).dt.tz_localize("UTC")
    merged = exact.where(exact.notna(), fallback)
    return pa.array(merged, S.TS)


def _convert(liq: pa.Array, size: pa.Array, t_bin: pa.Array, lines: np.ndarray
             ) -> tuple[pa.Table, int, list[tuple[int, str]]]:
    """Typed good rows, the number of bad rows, and the first bad rows with a reason."""
    liq_f, size_f, t = _to_float(liq), _to_float(size), _to_time(t_bin)
    t_ok = t.is_valid().to_numpy(zero_copy_only=False)
    liq_ok = np.isfinite(liq_f) & (liq_f > 0)
    size_ok = np.isfinite(size_f) & (size_f > 0)
    good = liq_ok & size_ok & t_ok
    bad = []
    for i in np.flatnonzero(~good)[:MAX_REPORTED_BAD].tolist():
        what = "liq_price" if not liq_ok[i] else "size_sol" if not size_ok[i] else "t_bin"
        value = {"liq_price": liq, "size_sol": size, "t_bin": t_bin}[what][i].as_py()
        kind = "UTC time" if what == "t_bin" else "positive number"
        bad.append((int(lines[i]), f"{what} {value!r} is not a {kind}"))
    keep = pa.array(good)
    table = pa.table({"t_bin": t.filter(keep), "liq_price": pa.array(liq_f[good]),
                      "size_sol": pa.array(size_f[good])}, schema=S.LEGACY)
    return table, int((~good).sum()), bad


def iter_blocks(fh: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines and the 1-based line number of each block's first line (after
    the header, which the caller has read)."""
    line = 2
    while True:
        block = fh.read(chunk_bytes)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += fh.readline()
        yield block, line
        line += block.count(b"\n")


# ---------------------------------------------------------------- import (I/O)
def import_legacy_csv(store: Store, path: str | os.PathLike[str], market: str = "SOL", *,
                      progress: Callable[[int], None] | None = None,
                      chunk_bytes: int = CHUNK_BYTES) -> ImportReport:
    """Stream a legacy CSV log into the store's `legacy` dataset (see module docstring).

    `progress` is called with the number of bytes read after each block.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"legacy CSV {path} does not exist")
    store.recover()
    report = ImportReport(path=str(path))
    stage = f"{STAGING}/{uuid.uuid4().hex}"
    try:
        staged_days = _stage(store, path, stage, report, progress, chunk_bytes)
        atomic = store.fs.local and can_swap_dirs()
        if atomic:  # the whole new legacy tree first: then one swap makes it visible
            _prepare(store, stage, market, report)
        store.fs.write_bytes(f"{stage}/COMMIT", json.dumps(
            {"market": market, "days": sorted(staged_days), "atomic": atomic}).encode())
        if atomic:
            _swap_in(store, stage, market)
        else:
            _apply(store, stage, market, report)
    except BaseException:
        if not store.fs.exists(f"{stage}/COMMIT"):
            store.fs.delete_dir(stage)
        raise
    store.fs.delete_dir(stage)
    return report


def _stage(store: Store, path: Path, stage: str, report: ImportReport,
           progress: Callable[[int], None] | None, chunk_bytes: int) -> set[str]:
    days: set[str] = set()
    check_text_file(path, f"the old tool's CSV log ({','.join(C.LEGACY_COLUMNS)})")
    with path.open("rb") as fh:
        header = fh.readline()
        try:
            indices = header_indices(header)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        n_columns = header.decode("utf-8-sig").count(",") + 1
        for part, (block, first_line) in enumerate(iter_blocks(fh, chunk_bytes)):
            parsed = parse_chunk(block, first_line, indices, n_columns)
            report.rows_read += parsed.rows
            report.rows_bad += parsed.n_bad
            report.bad_lines.extend(parsed.bad)
            del report.bad_lines[MAX_REPORTED_BAD:]
            days |= _stage_table(store, stage, part, parsed.table)
            if progress:
                progress(len(block))
    if report.rows_read and report.rows_bad == report.rows_read:
        first = report.bad_lines[0] if report.bad_lines else (0, "")
        raise InputError(f"{path}: none of its {report.rows_read:,} rows is valid (line "
                         f"{first[0]}: {first[1]}); nothing imported; give the old tool's "
                         "sol_positions_log.csv")
    return days


def _stage_table(store: Store, stage: str, part: int, table: pa.Table) -> set[str]:
    if table.num_rows == 0:
        return set()
    day_col = pc.cast(pc.cast(table.column("t_bin"), pa.timestamp("us")), pa.date32())
    days = set()
    for day in pc.unique(day_col).to_pylist():
        rows = table.filter(pc.equal(day_col, pa.scalar(day, pa.date32())))
        store.fs.write_table(f"{stage}/date={day.isoformat()}/part-{part:06d}.parquet", rows)
        days.add(day.isoformat())
    return days


def _apply(store: Store, stage: str, market: str, report: ImportReport) -> None:
    for name in sorted(store.fs.listdir(stage)):
        day = L.parse_date_dir(name)
        if day is None:
            continue
        table = store._read_files("legacy", _staged_parts(store, f"{stage}/{name}"))
        added = store.write_bulk("legacy", market, table)
        report.rows_stored += added
        report.rows_already_stored += table.num_rows - added
        report.days.append(day.isoformat())


def _next_tree(stage: str, market: str) -> str:
    return f"{stage}/{NEXT_TREE}/market={market}"


def _prepare(store: Store, stage: str, market: str, report: ImportReport) -> None:
    """Build the market's whole new legacy tree inside the staging directory: the stored files
    hard-linked, each imported day merged into its day file; nothing visible to readers."""
    tree = _next_tree(stage, market)
    store.fs.link_tree(L.market_dir("legacy", market), tree)
    for name in sorted(store.fs.listdir(stage)):
        day = L.parse_date_dir(name)
        if day is None:
            continue
        table = store._read_files("legacy", _staged_parts(store, f"{stage}/{name}"))
        added = store.merge_day("legacy", f"{tree}/{name}", day, table)
        report.rows_stored += added
        report.rows_already_stored += table.num_rows - added
        report.days.append(day.isoformat())
    store.fs.write_bytes(f"{tree}/{IMPORT_MARK}", stage.encode())


def _swap_in(store: Store, stage: str, market: str) -> None:
    """Make the prepared tree the live one in one step, unless a crash came after that step
    (the live tree then carries this import's mark)."""
    live = L.market_dir("legacy", market)
    if store.fs.exists(f"{live}/{IMPORT_MARK}") and \
            store.fs.read_bytes(f"{live}/{IMPORT_MARK}").decode() == stage:
        return
    store.fs.swap_dir(_next_tree(stage, market), live)


def _staged_parts(store: Store, day_dir: str) -> list[str]:
    return [f"{day_dir}/{p}" for p in sorted(store.fs.listdir(day_dir)) if p.endswith(".parquet")]


def recover_imports(store: Store) -> int:
    """Finish committed imports and delete uncommitted staging; returns stagings handled."""
    handled = 0
    for name in store.fs.listdir(STAGING):
        stage = f"{STAGING}/{name}"
        if store.fs.exists(f"{stage}/COMMIT"):
            meta = json.loads(store.fs.read_bytes(f"{stage}/COMMIT"))
            if meta.get("atomic"):
                _swap_in(store, stage, meta["market"])
            else:
                _apply(store, stage, meta["market"], ImportReport(path=stage))
            log.info("finished an interrupted legacy import (%s)", name)
        store.fs.delete_dir(stage)
        handled += 1
    return handled


# ---------------------------------------------------------------- export (I/O)
def _legacy_rows(store: Store, market: str, source: str, start: pd.Timestamp | None,
                 end: pd.Timestamp | None) -> Iterator[pa.Table]:
    """One table per stored day: liq_price, size_sol, t_bin (text, as the old CSV)."""
    dataset = "positions" if source == "positions" else "legacy"
    for day, _ in store.partitions(dataset, market):
        day_start = pd.Timestamp(day, tz="UTC")
        day_end = day_start + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        lo = max(start, day_start) if start is not None else day_start
        hi = min(end, day_end) if end is not None else day_end
        if lo > hi:
            continue
        if dataset == "positions":
            t = store.read_positions(market, lo, hi, ["ts", "liq_price", "size_tokens"])
            t = t.rename_columns(["t_bin", "liq_price", "size_sol"])
        else:
            t = store.read_legacy(market, lo, hi)
        if t.num_rows:
            seconds = pc.cast(t.column("t_bin"), pa.timestamp("s", tz="UTC"), safe=False)
            text_time = pc.strftime(seconds, format=C.LEGACY_TIME_FORMAT)
            yield pa.table({"liq_price": t.column("liq_price"),
                            "size_sol": t.column("size_sol"), "t_bin": text_time})


def export_legacy_csv(store: Store, out: str, market: str = "SOL", *, source: str = "positions",
                      start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> int:
    """Write `liq_price,size_sol,t_bin` rows (old-script format); returns rows written.

    `out` "-" writes to stdout; a file is written to a temporary name and renamed at the end.
    `DataGapError` (and nothing written) when the window holds no rows: a header-only file
    would read as "no positions" to the old scripts.
    """
    check_order(start, end)
    tables = _legacy_rows(store, market, source, start, end)
    first = next(tables, None)
    if first is None:
        window = "" if start is None and end is None else " in this window"
        raise DataGapError(f"no {market} {source} rows{window} in {store.root}; nothing "
                           "written; check --data-dir, --market, --source and the window "
                           "(`liqmap status`)")
    if out == "-":
        return _write_csv(sys.stdout.buffer, first, tables)
    with atomic_output(out) as tmp, tmp.open("wb") as fh:
        return _write_csv(fh, first, tables)


def _write_csv(fh: BinaryIO, first: pa.Table, rest: Iterator[pa.Table]) -> int:
    fh.write(b"liq_price,size_sol,t_bin\n")
    rows = 0
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    for table in itertools.chain([first], rest):
        pacsv.write_csv(table, fh, write_options=options)
        rows += table.num_rows
    return rows
