"""The store under crashes, a read-only disk, damaged files and a second writer: temporary
files never match the dataset globs, leftovers go, `status` tells the truth, nothing is lost."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from liqmap.errors import StorageError
from liqmap.store import WRITER_KEY, Store
from liqmap.store import layout as L
from liqmap.store.fs import temp_path
from liqmap.store.status import format_status, market_status

from factories import minutes, snapshot

PART = "positions/market=SOL/date=2025-08-22"


def glob_counts(root: Path, dataset: str) -> tuple[int, int]:
    """Rows of `dataset` as the README's DuckDB and polars globs read them."""
    pattern = str(root / dataset / "*" / "*" / "*.parquet")
    n_duck = duckdb.sql(f"select count(*) from read_parquet('{pattern}', "
                        "hive_partitioning=true)").fetchall()[0][0]
    n_polars = pl.scan_parquet(pattern, hive_partitioning=True).select(pl.len()).collect().item()
    return int(n_duck), int(n_polars)


def liqmap(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    return subprocess.run([sys.executable, "-m", "liqmap", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` on a read-only mount (EROFS, as a full or remounted disk gives), then back."""
    if subprocess.run(["mount", "--bind", str(path), str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs mount (root in a container that allows bind mounts)")
    try:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(path)],
                                 capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.strip()}")
        yield
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)  # busy: detach anyway


def test_temporary_files_never_match_the_glob_and_go_when_their_writer_is_gone(tmp_path
                                                                                ) -> None:
    store = Store(str(tmp_path))
    for ts in minutes("2025-08-22T10:00:00", 3):
        store.write_snapshot("SOL", *snapshot(ts, 5))
    target = tmp_path / PART / "snap-20250822T100300Z.parquet"
    held = temp_path(target)  # this process is writing it
    held.write_bytes(b"PAR1 half a file")
    crashed = target.with_name(held.name.replace(f"-{held.name.split('-')[1]}-",
                                                 f"-{dead_pid()}-"))
    crashed.write_bytes(pq.read_table(tmp_path / PART / "snap-20250822T100000Z.parquet")
                        .to_pandas().to_parquet())  # an intact file of a killed writer
    assert not held.name.endswith(".parquet")
    assert glob_counts(tmp_path, "positions") == (15, 15)
    assert glob_counts(tmp_path, "market_state") == (3, 3)
    assert store.recover() == 1  # a minute old, but its writer is gone: removed at once
    assert held.exists() and not crashed.exists()


def test_a_read_only_disk_raises_storage_errors_only(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_snapshot("SOL", *snapshot("2025-08-22T10:00:00Z", 5))
    ts = pd.Timestamp("2025-08-22T10:01:00Z")
    with read_only(tmp_path):
        with pytest.raises(StorageError, match="Read-only file system"):
            store.write_snapshot("SOL", *snapshot(ts, 5))
        with pytest.raises(StorageError, match="Read-only file system"):
            store.write_miss("SOL", pd.Timestamp("2025-08-23T10:01:00Z"), "x")  # new folder
        with pytest.raises(StorageError):
            store.write_endpoint_report([])
        assert store.read_positions("SOL").num_rows == 5
    assert store.write_snapshot("SOL", *snapshot(ts, 5))  # writable again


def test_positions_awaiting_another_writers_commit_are_never_overwritten(tmp_path) -> None:
    """Two collectors: the first to place its positions owns the minute; the other neither
    overwrites them nor commits its own market_state next to them."""
    store = Store(str(tmp_path))
    ts = pd.Timestamp("2025-08-22T10:00:00Z")
    theirs, _ = snapshot(ts, 4, seed=1)
    store.fs.write_table(f"{PART}/{L.snap_name(ts)}", theirs.replace_schema_metadata(
        {WRITER_KEY: b"elsewhere:1"}))  # the other collector, between its two writes
    assert not store.write_snapshot("SOL", *snapshot(ts, 9, seed=2))
    on_disk = pq.read_table(tmp_path / PART / L.snap_name(ts))
    assert on_disk.num_rows == 4 and not store.has_snapshot("SOL", ts)


def test_positions_of_a_killed_writer_are_recovered_at_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    ts = pd.Timestamp.now(tz="UTC").floor("min")
    positions, state = snapshot(ts, 4)
    store.fs.write_table(f"{L.partition_dir('positions', 'SOL', ts.date())}/{L.snap_name(ts)}",
                         positions.replace_schema_metadata(
                             {WRITER_KEY: f"{__import__('socket').gethostname()}:{dead_pid()}"
                              .encode()}))
    assert store.recover() == 1  # younger than the orphan grace, but its writer is dead
    assert store.write_snapshot("SOL", positions, state)  # so a restart stores the minute


def test_status_shows_misses_after_the_last_snapshot_and_every_reason(tmp_path) -> None:
    store = Store(str(tmp_path))
    times = minutes("2025-08-22T10:00:00", 8)
    for ts in times[:3]:
        store.write_snapshot("SOL", *snapshot(ts, 5))
    for ts, why in zip(times[3:], ["HTTP 503", "HTTP 503", "stale answer", "HTTP 503",
                                   "disk full"], strict=True):
        store.write_miss("SOL", ts, why)
    status = market_status(store, "SOL")  # default window: up to the last miss too
    assert (status.expected, status.present) == (8, 3)
    [gap] = status.gaps
    assert gap.reason == "HTTP 503 (3 min); stale answer (1 min); disk full (1 min)"
    assert "gaps: none" not in format_status(status)


def test_status_names_a_damaged_file_and_recover_quarantines_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for ts in minutes("2025-08-22T10:00:00", 3):
        store.write_snapshot("SOL", *snapshot(ts, 5))
    bad = tmp_path / "market_state/market=SOL/date=2025-08-22/snap-20250822T100100Z.parquet"
    bad.write_bytes(bad.read_bytes()[:50])  # truncated
    out = liqmap("status", "--data-dir", str(tmp_path))
    assert out.returncode != 0 and "snap-20250822T100100Z.parquet" in out.stderr
    assert "recover --quarantine" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = liqmap("recover", "--data-dir", str(tmp_path))
    assert out.returncode == 0 and "damaged: market_state" in out.stdout and bad.exists()
    out = liqmap("recover", "--data-dir", str(tmp_path), "--quarantine")
    assert out.returncode == 0 and not bad.exists()
    moved = tmp_path / "_quarantine/market_state/market=SOL/date=2025-08-22" / bad.name
    assert moved.stat().st_size == 50  # moved aside, not deleted
    out = liqmap("status", "--data-dir", str(tmp_path))
    assert out.returncode == 0 and "snapshots 2/3" in out.stdout
    assert glob_counts(tmp_path, "market_state") == (2, 2)


# ---------------------------------------------------------------- kill -9 of real processes
def _visible_everywhere(root: Path, dataset: str) -> tuple[int, int]:
    """DuckDB and polars read the dataset's glob without error (and agree)."""
    counts = glob_counts(root, dataset)
    assert counts[0] == counts[1]
    return counts


def _kill_when(proc: subprocess.Popen[bytes], seen, timeout_s: float = 60.0) -> bool:
    """SIGKILL `proc` the moment `seen()` is true (or when it ends); True if caught in time."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.poll() is None:
        if seen():
            proc.kill()
            proc.wait()
            return True
    proc.kill()
    proc.wait()
    return False


def _start(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    return subprocess.Popen([sys.executable, "-m", "liqmap", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _has_temp(root: Path) -> bool:
    return any(root.rglob(".tmp-*"))


@pytest.mark.slow
def test_kill_9_mid_compaction_leaves_every_glob_readable(tmp_path: Path) -> None:
    template = tmp_path / "template"
    store = Store(str(template))
    for i, ts in enumerate(minutes("2025-08-22T21:00:00", 240)):  # 4 closed hours, 2 days
        store.write_snapshot("SOL", *snapshot(ts, 300, seed=i))
    n_pos = store.read_positions("SOL").num_rows
    cycles = caught = 0
    for attempt in range(4):
        root = tmp_path / f"run{attempt}"
        shutil.copytree(template, root)
        proc = _start("compact", "--data-dir", str(root))
        if attempt % 2 == 0:
            caught += _kill_when(proc, lambda r=root: _has_temp(r))
        else:
            time.sleep(1.0 + attempt * 0.3)
            proc.kill()
            proc.wait()
        cycles += 1
        for dataset in ("positions", "market_state"):
            _visible_everywhere(root, dataset)  # before any recovery
        assert _start("compact", "--data-dir", str(root)).wait(timeout=120) == 0  # restart
        after = Store(str(root))
        assert after.read_positions("SOL").num_rows == n_pos
        assert _visible_everywhere(root, "positions") == (n_pos, n_pos)
        assert _visible_everywhere(root, "market_state") == (240, 240)
        assert not _has_temp(root)
    assert cycles == 4 and caught >= 1


def _legacy_csv(path: Path, days: int = 3, per_minute: int = 30) -> int:
    t = pd.date_range("2025-08-20", periods=days * 1440, freq="min", tz="UTC")
    stamps = np.repeat(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(), per_minute)
    liq = np.tile(np.linspace(150, 220, per_minute), len(t))
    frame = pd.DataFrame({"liq_price": liq.round(2), "size_sol": 1.5, "t_bin": stamps})
    frame.to_csv(path, index=False)
    return len(frame)


@pytest.mark.slow
def test_kill_9_mid_import_shows_all_days_or_none(tmp_path: Path) -> None:
    csv = tmp_path / "log.csv"
    rows = _legacy_csv(csv)
    cycles = 0
    conditions = [
        lambda r: any((r / "legacy" / "market=SOL").glob("date=*")),  # the first day lands
        lambda r: any((r / "_staging").glob("*/COMMIT")),  # the commit marker
        lambda r: _has_temp(r / "_staging"),  # staging in progress
    ]
    for attempt, seen in enumerate(conditions * 2):
        root = tmp_path / f"store{attempt}"
        proc = _start("import-legacy", str(csv), "--data-dir", str(root))
        _kill_when(proc, lambda r=root, s=seen: s(r))
        cycles += 1
        legacy = root / "legacy"
        if legacy.exists():  # before recovery: every reader sees all of the import or none
            pattern = str(legacy / "*" / "*" / "*.parquet")
            n_duck = n_polars = 0  # no data file yet is "none" (both engines refuse an empty glob)
            if list(legacy.glob("*/*/*.parquet")):
                n_duck = duckdb.sql(f"select count(*) from read_parquet('{pattern}')"
                                    ).fetchall()[0][0]
                n_polars = pl.scan_parquet(pattern).select(pl.len()).collect().item()
            assert n_duck == n_polars and n_duck in (0, rows)
            assert Store(str(root)).read_legacy("SOL").num_rows in (0, rows)
        Store(str(root)).recover()
        done = Store(str(root)).read_legacy("SOL").num_rows
        assert done in (0, rows)
        if done == 0:  # the import did not commit: run it again
            assert _start("import-legacy", str(csv), "--data-dir", str(root)).wait(120) == 0
        assert Store(str(root)).read_legacy("SOL").num_rows == rows
        assert not list(root.glob("_staging/*"))
    assert cycles == 6


def test_a_new_day_whose_first_write_was_killed_keeps_the_store_bounds(tmp_path: Path) -> None:
    """The first snapshot of a new day killed before its rename leaves the day's folders with
    a temporary file only: the store's first and last snapshot are still the stored ones (they
    were None, so status, the heatmap and the page's watcher saw no data)."""
    store = Store(str(tmp_path))
    times = [pd.Timestamp("2025-08-22T23:57:00Z") + pd.Timedelta(minutes=m) for m in range(3)]
    for ts in times:
        assert store.write_snapshot("SOL", *snapshot(ts, 5))
    new_day = pd.Timestamp("2025-08-23T00:00:00Z")
    for dataset in ("positions", "market_state"):
        target = tmp_path / L.partition_dir(dataset, "SOL", new_day.date()) / L.snap_name(new_day)
        target.parent.mkdir(parents=True)
        temp_path(target).write_bytes(b"PAR1 half-written")
    for dataset in ("market_state", "positions"):
        assert store.time_bounds("SOL", dataset) == (times[0], times[-1])
    assert store.read_positions("SOL").num_rows == 15
