"""The Parquet store: atomic snapshots, no duplicates, compaction, recovery, other engines."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from liqmap.errors import StorageError
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store.status import format_status, market_status

from factories import minutes, snapshot


def _fill(store: Store, start: str, count: int, n: int = 5) -> list[pd.Timestamp]:
    times = minutes(start, count)
    for i, ts in enumerate(times):
        assert store.write_snapshot("SOL", *snapshot(ts, n, seed=i))
    return times


def _sorted(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas().sort_values(["ts", "pubkey"]).reset_index(drop=True)


def test_round_trip_keeps_types_and_values(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    positions, state = snapshot("2025-08-22T10:09:00Z", 7)
    assert store.write_snapshot("SOL", positions, state)
    back = store.read_positions("SOL")
    assert back.schema.equals(positions.schema)
    assert _sorted(back).equals(_sorted(positions))
    assert store.read_market_state("SOL").to_pylist() == state.to_pylist()
    part = tmp_path / "positions/market=SOL/date=2025-08-22"
    assert (part / "snap-20250822T100900Z.parquet").exists()


def test_same_minute_twice_is_stored_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    assert store.write_snapshot("SOL", *snapshot("2025-08-22T10:09:00Z", 5, seed=1))
    assert not store.write_snapshot("SOL", *snapshot("2025-08-22T10:09:00Z", 9, seed=2))
    assert store.read_positions("SOL").num_rows == 5


def test_two_collectors_racing_store_one_snapshot(tmp_path: Path) -> None:
    stores = [Store(str(tmp_path)), Store(str(tmp_path))]
    barrier = threading.Barrier(2)

    def write(i: int) -> None:
        barrier.wait()
        for ts in minutes("2025-08-22T10:00:00", 30):
            stores[i].write_snapshot("SOL", *snapshot(ts, 4, seed=i))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = stores[0].read_market_state("SOL").to_pandas()
    assert len(state) == 30 and state["ts"].is_unique
    assert stores[0].read_positions("SOL").num_rows == 30 * 4


def test_bad_rows_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    positions, state = snapshot("2025-08-22T10:09:00Z", 3)
    with pytest.raises(StorageError, match="lack column"):
        store.write_snapshot("SOL", positions.drop(["liq_price"]), state)
    other, _ = snapshot("2025-08-22T10:10:00Z", 3)
    with pytest.raises(StorageError, match="different from the market_state"):
        store.write_snapshot("SOL", other, state)
    assert not list(tmp_path.rglob("*.parquet"))


def test_positions_without_commit_record_are_invisible(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    _fill(store, "2025-08-22T10:00:00", 3)
    positions, _ = snapshot("2025-08-22T10:03:00Z", 5)
    # a crash between the two writes of a snapshot leaves a positions file alone
    store.fs.write_table(f"positions/market=SOL/date=2025-08-22/{L.snap_name(positions['ts'][0].as_py())}",
                         positions)
    assert store.read_positions("SOL").num_rows == 15
    assert store.recover(now=pd.Timestamp("2025-08-22T10:04:00Z")) == 0  # too fresh to judge
    assert store.recover(now=pd.Timestamp("2025-08-22T11:00:00Z")) == 1
    assert store.read_positions("SOL").num_rows == 15


def test_compaction_keeps_every_row(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    _fill(store, "2025-08-22T22:30:00", 160)  # 22:30 .. 01:09, across a day boundary
    before_pos = _sorted(store.read_positions("SOL"))
    before_state = store.read_market_state("SOL").to_pandas()
    report = store.compact(now=pd.Timestamp("2025-08-23T00:40:00Z"))
    assert report.days == 2 and report.hours == 0  # 2025-08-22: positions + market_state
    report = store.compact(now=pd.Timestamp("2025-08-23T01:30:00Z"))
    assert report.hours == 2  # 2025-08-23T00: positions + market_state
    names = sorted(os.listdir(tmp_path / "positions/market=SOL/date=2025-08-22"))
    assert names == ["day-20250822.parquet"]
    names = sorted(os.listdir(tmp_path / "positions/market=SOL/date=2025-08-23"))
    assert names[0] == "hour-20250823T00Z.parquet" and len(names) == 1 + 10  # 01:00-01:09 open
    assert _sorted(store.read_positions("SOL")).equals(before_pos)
    assert store.read_market_state("SOL").to_pandas().equals(before_state)
    window = store.read_positions("SOL", "2025-08-22T23:58:00Z", "2025-08-23T00:01:00Z")
    assert window.num_rows == 4 * 5


def test_interrupted_compaction_never_duplicates(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    _fill(store, "2025-08-22T10:00:00", 60)
    part = "positions/market=SOL/date=2025-08-22"
    all_rows = store._read_files("positions", [f"{part}/{n}" for n in store.fs.listdir(part)])
    # the hour file was written, then the process died before deleting the snapshots
    store.fs.write_table(f"{part}/hour-20250822T10Z.parquet", all_rows)
    assert store.read_positions("SOL").num_rows == 300
    assert store.recover(now=pd.Timestamp("2025-08-22T12:00:00Z")) == 60
    assert store.read_positions("SOL").num_rows == 300


def test_temporary_files_are_never_data(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    _fill(store, "2025-08-22T10:00:00", 2)
    tmp = tmp_path / "positions/market=SOL/date=2025-08-22/.tmp-dead-snap-20250822T100200Z.parquet"
    tmp.write_bytes(b"half a file")
    assert store.read_positions("SOL").num_rows == 10
    os.utime(tmp, (0, 0))  # an old leftover
    assert store.recover() == 1 and not tmp.exists()


def test_object_store_path_works_through_fsspec() -> None:
    store = Store("memory://liqmap-test")
    _fill(store, "2025-08-22T23:58:00", 4)
    assert store.read_positions("SOL").num_rows == 20
    store.compact(now=pd.Timestamp("2025-08-24T00:00:00Z"))
    assert store.read_positions("SOL").num_rows == 20
    assert "day-20250822.parquet" in store.fs.listdir("positions/market=SOL/date=2025-08-22")
    assert not store.write_snapshot("SOL", *snapshot("2025-08-22T23:59:00Z", 5))


def test_other_engines_read_the_store(tmp_path: Path) -> None:
    import duckdb
    import polars as pl

    store = Store(str(tmp_path))
    _fill(store, "2025-08-22T23:50:00", 20)
    store.compact(now=pd.Timestamp("2025-08-23T02:00:00Z"))
    frame = pd.read_parquet(tmp_path / "positions")
    assert len(frame) == 100 and set(frame["market"]) == {"SOL"}
    glob = f"{tmp_path}/positions/*/*/*.parquet"
    count = duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true) "
                       "where market = 'SOL'").fetchall()
    assert count == [(100,)]
    lazy = pl.scan_parquet(f"{tmp_path}/market_state/**/*.parquet", hive_partitioning=True)
    assert lazy.select(pl.len()).collect().item() == 20


def test_status_reports_gaps_with_reasons(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    times = minutes("2025-08-22T10:00:00", 10)
    for i, ts in enumerate(times):
        if i in (3, 4):
            store.write_miss("SOL", ts, "getProgramAccounts failed after 6 attempts")
        elif i != 7:
            store.write_snapshot("SOL", *snapshot(ts, 10 + i))
    status = market_status(store, "SOL", times[0], times[-1])
    assert (status.expected, status.present, status.missing) == (10, 7, 3)
    assert [(g.first, g.minutes) for g in status.gaps] == [(times[3], 2), (times[7], 1)]
    assert "getProgramAccounts failed" in status.gaps[0].reason
    assert "collector not running" in status.gaps[1].reason
    assert (status.positions_min, status.positions_max) == (10, 19)
    text = format_status(status)
    assert "snapshots 7/10" in text and "2025-08-22T10:03Z .. 2025-08-22T10:04Z" in text
