"""Pre-binned roll-ups beside the position versions of a closed day: the files, not the binning.

```
<root>/position_rollups/market=SOL/date=2025-01-01/rollup-20250101.parquet
```

One file per converted day (schema `POSITION_ROLLUPS`): for each hour of the day and each side,
the SUM over the hour's snapshots of the amount (tokens) at each price code of a fixed grid,
and the number of position-snapshots there; then the same summed over the whole day. Price
code `j` is the bin [j × step, (j + 1) × step) USD of the market's roll-up step
(`constants.ROLLUP_STEP_USD_BY_MARKET`, the bins' edges rounded as `make_price_edges` rounds
them); code `top_code` holds every price at or above the grid's top, code -2 the positions
that cannot be liquidated. Only non-zero cells are stored.

A roll-up is derived data: the Parquet metadata names the files it was computed from (path,
size, modification time of the day's versions and market_state files), and a reader uses it
only while they are unchanged (`valid_meta`); `liqmap compact` writes the missing and stale
ones. It lives in its own dataset directory, so no glob of `positions/`, `position_versions/`
or `market_state/` (DuckDB, polars, the macros in `positions.sql`) ever sees it. The binning
that writes and reads it is `liqmap.heatmap.rollups`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from liqmap.store import layout as L
from liqmap.store import schema as S

if TYPE_CHECKING:
    from liqmap.store import Store

DATASET: Final = "position_rollups"
#: Parquet key-value metadata key holding `RollupMeta` as JSON.
META_KEY: Final = b"liqmap.rollup"
FORMAT: Final = 1
#: span_min of the rows summed over one hour, and over the whole day.
HOUR_MIN, DAY_MIN = 60, 1440
NO_LIQ_CODE: Final = -2

POSITION_ROLLUPS: Final = pa.schema([
    ("ts", S.TS),  # start of the hour (span_min 60) or of the day (span_min 1440)
    ("span_min", pa.int16()),  # 60 | 1440
    ("side", S.SIDE),  # "long" | "short"
    ("code", pa.int32()),  # price bin [code × step, (code+1) × step) USD; top_code: above; -2
    ("amount_tokens", pa.float64()),  # sum over the span's snapshots of size_tokens
    ("n_rows", pa.int64()),  # position-snapshots summed
])


@dataclass(frozen=True)
class RollupMeta:
    """What a roll-up file was computed from and on which grid."""

    step_usd: float
    top_code: int  # codes 0..top_code-1 are bins; top_code: at or above the grid's top
    inputs: str  # `input_fingerprint` of the day when computed
    day_rows: int  # rows of span DAY_MIN (stored first, as the first row group)
    snapshots_per_hour: list[int]
    format: int = FORMAT


def rollup_rel(market: str, day: date) -> str:
    return f"{L.partition_dir(DATASET, market, day)}/rollup-{day:%Y%m%d}.parquet"


def input_fingerprint(store: Store, market: str, day: date) -> str:
    """Path, size and modification time of every file a day's roll-up is computed from (the
    day's versions file and its live market_state files); '' when the day has no versions."""
    versions = f"{L.partition_dir('position_versions', market, day)}/{L.day_name(day)}"
    sdir = L.partition_dir("market_state", market, day)
    rels = [versions] + [f"{sdir}/{f.name}" for f in L.live_files(store.fs.listdir(sdir))]
    infos = store.fs.fs.get_file_info([store.fs.path(r) for r in rels])
    if infos[0].size is None:
        return ""
    return ";".join(f"{rel}:{info.size}:{info.mtime_ns or 0}"
                    for rel, info in zip(rels, infos, strict=True))


def write_rollup(store: Store, market: str, day: date, table: pa.Table, meta: RollupMeta
                 ) -> None:
    """Write a day's roll-up atomically (day rows first, as their own row group)."""
    table = table.cast(POSITION_ROLLUPS).replace_schema_metadata(
        {META_KEY: json.dumps(asdict(meta)).encode()})
    store.fs.write_table(rollup_rel(market, day), table,
                         row_group_size=max(meta.day_rows, 1))


def _meta_of(pf: pq.ParquetFile) -> RollupMeta | None:
    try:
        doc = json.loads((pf.schema_arrow.metadata or {})[META_KEY])
        meta = RollupMeta(**doc)
    except (KeyError, ValueError, TypeError):
        return None
    return meta if meta.format == FORMAT else None


def open_valid(store: Store, market: str, day: date) -> tuple[RollupMeta, pq.ParquetFile] | None:
    """The day's roll-up (metadata, open file) when it matches the day's files as they are
    now; None when it is missing, unreadable or stale."""
    try:
        pf = pq.ParquetFile(store.fs.fs.open_input_file(store.fs.path(rollup_rel(market, day))))
    except (OSError, pa.ArrowException):
        return None
    meta = _meta_of(pf)
    if meta is None:
        return None
    current = input_fingerprint(store, market, day)
    return (meta, pf) if current and current == meta.inputs else None


def valid_meta(store: Store, market: str, day: date) -> RollupMeta | None:
    """The day's roll-up metadata when the roll-up matches the day's files as they are now."""
    found = open_valid(store, market, day)
    return found[0] if found else None


#: the columns a heatmap reads
READ_COLUMNS = ["ts", "side", "code", "amount_tokens", "n_rows"]


def read_rows(pf: pq.ParquetFile, meta: RollupMeta, span_min: int) -> pa.Table:
    """The rows of one span of a roll-up file (DAY_MIN: its first row group)."""
    n_groups = pf.metadata.num_row_groups
    if meta.day_rows == 0 or n_groups == 0:
        return POSITION_ROLLUPS.empty_table().select(READ_COLUMNS)
    if pf.metadata.row_group(0).num_rows != meta.day_rows:  # written otherwise: filter
        table = pf.read(columns=[*READ_COLUMNS, "span_min"])
        return table.filter(pc.equal(table.column("span_min"), span_min)).select(READ_COLUMNS)
    groups = [0] if span_min == DAY_MIN else list(range(1, n_groups))
    if not groups:
        return POSITION_ROLLUPS.empty_table().select(READ_COLUMNS)
    return pf.read_row_groups(groups, columns=READ_COLUMNS)
