"""Pure naming and coverage rules of the store's files (no I/O).

```
<root>/<dataset>/market=<MARKET>/date=<YYYY-MM-DD>/
    snap-20250822T100900Z.parquet   one snapshot (positions or market_state) or one missed minute
    hour-20250822T10Z.parquet       a closed hour, compacted
    day-20250822.parquet            a closed day, compacted: then the only file of the partition
```

Coverage: a day file covers its whole partition; an hour file covers the snapshot files of its
hour. A reader uses, per partition, the day file if present, else the hour files plus the
snapshot files no hour file covers. Files whose names start with "." or "_" (temporary files,
staging) are never data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

SNAP_RE = re.compile(r"^snap-(\d{8}T\d{6})Z\.parquet$")
HOUR_RE = re.compile(r"^hour-(\d{8}T\d{2})Z\.parquet$")
DAY_RE = re.compile(r"^day-(\d{8})\.parquet$")
DATE_DIR_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class DataFile:
    """One data file of a partition: its kind and the time span it covers [start, end)."""

    start: datetime
    end: datetime
    kind: str  # "snap" | "hour" | "day"
    name: str


def partition_dir(dataset: str, market: str, day: date) -> str:
    return f"{dataset}/market={market}/date={day.isoformat()}"


def market_dir(dataset: str, market: str) -> str:
    return f"{dataset}/market={market}"


def snap_name(ts: datetime) -> str:
    return f"snap-{ts.astimezone(UTC):%Y%m%dT%H%M%S}Z.parquet"


def hour_name(hour_start: datetime) -> str:
    return f"hour-{hour_start.astimezone(UTC):%Y%m%dT%H}Z.parquet"


def day_name(day: date) -> str:
    return f"day-{day:%Y%m%d}.parquet"


def parse_file(name: str) -> DataFile | None:
    """Classify a file name; None for anything that is not a data file."""
    if m := SNAP_RE.match(name):
        ts = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return DataFile(ts, ts + timedelta(microseconds=1), "snap", name)
    if m := HOUR_RE.match(name):
        start = datetime.strptime(m.group(1), "%Y%m%dT%H").replace(tzinfo=UTC)
        return DataFile(start, start + timedelta(hours=1), "hour", name)
    if m := DAY_RE.match(name):
        start = datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC)
        return DataFile(start, start + timedelta(days=1), "day", name)
    return None


def parse_date_dir(name: str) -> date | None:
    m = DATE_DIR_RE.match(name)
    return date.fromisoformat(m.group(1)) if m else None


def live_files(names: list[str]) -> list[DataFile]:
    """The files a reader must use from one partition, per the coverage rule, sorted by time."""
    files = [f for f in (parse_file(n) for n in names) if f is not None]
    days = [f for f in files if f.kind == "day"]
    if days:
        return days[:1]
    hours = {f.start for f in files if f.kind == "hour"}
    keep = [f for f in files if f.kind == "hour"
            or (f.kind == "snap" and _hour_of(f.start) not in hours)]
    return sorted(keep)


def covered_files(names: list[str]) -> list[str]:
    """Files made redundant by a compacted file (left by an interrupted compaction)."""
    live = {f.name for f in live_files(names)}
    return [n for n in names if parse_file(n) is not None and n not in live]


def _hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def hour_of(ts: datetime) -> datetime:
    """Start of the UTC hour holding `ts`."""
    return _hour_of(ts.astimezone(UTC))


def days_between(start: datetime | None, end: datetime | None, available: list[date]) -> list[date]:
    """The partition dates among `available` that may hold rows in [start, end]."""
    lo = start.astimezone(UTC).date() if start else date.min
    hi = end.astimezone(UTC).date() if end else date.max
    return sorted(d for d in available if lo <= d <= hi)
