"""Closed days as position versions: exact round trip, compaction, crash, other engines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatmap_same import assert_same_heatmap, assert_same_heatmap_of, heatmap
from liqmap.errors import StorageError
from liqmap.store import Store
from liqmap.store import versions as V
from liqmap.store.sql import positions_sql
from market_rows import MarketSim, write_market

from factories import snapshot

NOW = pd.Timestamp("2025-08-25T00:00:00Z")


def _assert_same_rows(a: pa.Table, b: pa.Table) -> None:
    """Equal column by column, bit for bit (NaN equal to NaN), in the same order."""
    assert a.schema.equals(b.schema), (a.schema, b.schema)
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).combine_chunks(), b.column(name).combine_chunks()
        if pa.types.is_dictionary(x.type):
            x, y = x.cast(pa.string()), y.cast(pa.string())
        if pa.types.is_floating(x.type):
            np.testing.assert_array_equal(np.asarray(x.fill_null(np.nan)),
                                          np.asarray(y.fill_null(np.nan)), err_msg=name)
        else:
            assert x.equals(y), name


def _market_store(root: Path, *, n_minutes: int = 150, seed: int = 0, **kw: object) -> Store:
    store = Store(str(root))
    sim = MarketSim(seed=seed, n_positions=40)
    # 22:45 .. past midnight, two missing minutes: versions span gaps and are cut at midnight
    write_market(store, sim, "2025-08-22T22:45", n_minutes, skip=frozenset({5, 6, 90}), **kw)  # type: ignore[arg-type]
    return store


def test_conversion_gives_back_every_row_and_shrinks(tmp_path: Path) -> None:
    store = _market_store(tmp_path, param_change_at=30)
    before = store.read_positions("SOL")
    rows_bytes = store.size_bytes("SOL")["positions"]
    report = store.compact(now=NOW)
    assert report.converted == 2 and report.kept_rows == 0
    assert not list((tmp_path / "positions").rglob("*.parquet"))
    after = store.read_positions("SOL")
    _assert_same_rows(before, after)
    versions = store.read_versions("SOL", pd.Timestamp("2025-08-22").date())
    assert 0 < versions.num_rows < before.num_rows / 5
    fixed = np.asarray(versions.column("interest_source")) == V.FIXED
    assert fixed.any() and not fixed.all()  # the custody market_state lacks -> stored as is
    assert store.size_bytes("SOL")["position_versions"] < rows_bytes
    # a window cut anywhere, and the column subsets readers ask for
    lo, hi = pd.Timestamp("2025-08-22T23:41Z"), pd.Timestamp("2025-08-23T00:03Z")
    cols = ["ts", "liq_price", "size_tokens", "side"]
    _assert_same_rows(before.filter(_between(before, lo, hi)).select(cols),
                      store.read_positions("SOL", lo, hi, cols))


def _between(table: pa.Table, lo: pd.Timestamp, hi: pd.Timestamp) -> np.ndarray:
    ts = pd.DatetimeIndex(table.column("ts").to_pandas())
    return np.asarray((ts >= lo) & (ts <= hi))


def test_compaction_is_idempotent_and_snapshot_files_convert(tmp_path: Path) -> None:
    store = _market_store(tmp_path, n_minutes=20, bulk=False)
    before = store.read_positions("SOL")
    first = store.compact(now=NOW)
    assert first.converted >= 1 and first.files_removed >= 1  # the snapshot files converted
    assert not list(Path(store.root).glob("positions/**/snap-*.parquet"))
    again = store.compact(now=NOW)
    assert again.converted == 0 and again.files_removed == 0
    _assert_same_rows(before, store.read_positions("SOL"))


def test_a_converted_day_refuses_a_late_snapshot(tmp_path: Path) -> None:
    store = _market_store(tmp_path, n_minutes=10)
    store.compact(now=NOW)
    with pytest.raises(StorageError, match="position versions"):
        store.write_snapshot("SOL", *snapshot("2025-08-22T23:30:00Z", 3))
    with pytest.raises(StorageError, match="position versions"):
        store.write_bulk("positions", "SOL", snapshot("2025-08-22T23:31:00Z", 3)[0])


def test_rows_no_version_represents_keep_the_day_as_rows(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for i, ts in enumerate(pd.date_range("2025-08-22T10:00Z", periods=5, freq="min")):
        store.write_snapshot("SOL", *snapshot(ts, 4, seed=i))  # entry prices not whole USD-6
    before = store.read_positions("SOL")
    report = store.compact(now=NOW)
    assert report.kept_rows == 1 and report.converted == 0
    assert (tmp_path / "positions/market=SOL/date=2025-08-22/day-20250822.parquet").exists()
    _assert_same_rows(before, store.read_positions("SOL"))


def test_leftover_row_files_after_conversion_are_ignored_and_removed(tmp_path: Path) -> None:
    store = _market_store(tmp_path, n_minutes=10)
    before = store.read_positions("SOL")
    part = tmp_path / "positions/market=SOL/date=2025-08-22/day-20250822.parquet"
    keep = part.read_bytes()
    store.compact(now=NOW)
    part.write_bytes(keep)  # as if killed between the versions write and the deletes
    _assert_same_rows(before, store.read_positions("SOL"))
    assert store.recover(now=NOW) >= 1
    assert not part.exists()
    _assert_same_rows(before, store.read_positions("SOL"))


def test_duckdb_macro_expands_to_exactly_the_rows(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    store = _market_store(tmp_path, n_minutes=40, param_change_at=12)
    store.compact(now=NOW)
    expected = store.read_positions("SOL")
    con = duckdb.connect()
    con.execute(positions_sql())
    got = _arrow(con.sql(f"select * from liqmap_version_rows('{tmp_path}', 'SOL') "
                         "order by ts, pubkey"))
    _assert_same_rows(expected, _conform(got))


def test_duckdb_macro_reads_both_layouts(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    store = _market_store(tmp_path, n_minutes=90)  # 22:45 .. 00:14
    store.compact(now=pd.Timestamp("2025-08-23T00:30:00Z"))  # 22nd converted, 23rd hours/rows
    assert store.has_versions("SOL", pd.Timestamp("2025-08-22").date())
    expected = store.read_positions("SOL")
    con = duckdb.connect()
    con.execute(positions_sql())
    got = _arrow(con.sql(f"select * from liqmap_positions('{tmp_path}', 'SOL') "
                         "order by ts, pubkey"))
    _assert_same_rows(expected, _conform(got))


def _arrow(relation: object) -> pa.Table:
    """A DuckDB relation as an Arrow table (DuckDB 1.x and 2.x name this differently)."""
    out = relation.arrow()  # type: ignore[attr-defined]
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


def _conform(table: pa.Table) -> pa.Table:
    from liqmap.store import conform

    return conform(table, "positions")


KILL_SCRIPT = """
import sys, pandas as pd
from liqmap.store import Store

Store(sys.argv[1]).compact(now=pd.Timestamp("2025-08-25T00:00:00Z"))
"""


def test_a_versions_write_killed_before_its_rename_leaves_the_rows_read(tmp_path: Path) -> None:
    """What a kill during the versions write leaves (the day's folder and a temporary file,
    no versions file): the day's rows are still read, by the library and by DuckDB. The
    library took the folder for a conversion and returned none of the day's rows (CI)."""
    import duckdb

    from liqmap.store import layout as L
    from liqmap.store.fs import TEMP_PREFIX, TEMP_SUFFIX

    store = _market_store(tmp_path, n_minutes=150)
    expected = store.read_positions("SOL")
    day = pd.Timestamp("2025-08-23").date()
    folder = tmp_path / L.partition_dir("position_versions", "SOL", day)
    folder.mkdir(parents=True)
    (folder / f"{TEMP_PREFIX}999999-0123456789ab-{L.day_name(day)}{TEMP_SUFFIX}").write_bytes(
        b"PAR1 half-written")
    assert not store.has_versions("SOL", day)
    _assert_same_rows(expected, store.read_positions("SOL"))
    day_rows = store.read_positions("SOL", "2025-08-23T00:00Z", "2025-08-23T23:59Z")
    assert day_rows.num_rows == 2960
    versions_files = duckdb.sql(f"select count(*) from glob('{folder}/*.parquet')").fetchall()
    assert versions_files == [(0,)]  # the temporary file is not data to any engine either


@pytest.mark.slow
def test_kill_9_mid_conversion_loses_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    store = _market_store(src, n_minutes=150)
    expected = store.read_positions("SOL")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (0.4, 0.8, 1.2, 1.6, 2.0, 2.5):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(src)], env=env)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        _assert_same_rows(expected, Store(str(src)).read_positions("SOL"))
    Store(str(src)).recover(now=NOW)
    Store(str(src)).compact(now=NOW)
    _assert_same_rows(expected, Store(str(src)).read_positions("SOL"))
    assert not list((src / "positions").rglob("*.parquet"))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), churn=st.floats(0.0, 0.5), n_minutes=st.integers(1, 40),
       rate=st.integers(0, 5_000_000), other=st.floats(0.0, 1.0))
def test_round_trip_any_market(tmp_path_factory: pytest.TempPathFactory, seed: int,
                               churn: float, n_minutes: int, rate: int, other: float) -> None:
    root = tmp_path_factory.mktemp("h")
    store = Store(str(root))
    sim = MarketSim(seed=seed, n_positions=15, churn=churn, rate_per_min=rate, other_share=other)
    write_market(store, sim, "2025-08-22T23:50", n_minutes, skip=frozenset({2}))
    before = store.read_positions("SOL")
    store.compact(now=NOW)
    _assert_same_rows(before, store.read_positions("SOL"))


# ------------------------------------------------------------------ heatmaps from versions


@pytest.fixture(scope="module")
def twin_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same simulated market twice: kept in today's row layout, and converted."""
    roots = tmp_path_factory.mktemp("rows"), tmp_path_factory.mktemp("versions")
    for root, versions in zip(roots, (False, True), strict=True):
        store = Store(str(root))
        sim = MarketSim(seed=3, n_positions=60, churn=0.03, rate_per_min=2_000_000)
        write_market(store, sim, "2025-08-22T22:30", 180, skip=frozenset({7, 8, 100}),
                     param_change_at=50)
        store.compact(now=NOW, versions=versions)
    assert Store(str(roots[1])).has_versions("SOL", pd.Timestamp("2025-08-23").date())
    assert not Store(str(roots[0])).has_versions("SOL", pd.Timestamp("2025-08-23").date())
    return roots


@settings(max_examples=25, deadline=None)
@given(side=st.sampled_from(["both", "long", "short", "split"]),
       agg=st.sampled_from(["mean", "last", "max"]), freq=st.sampled_from([1, 2, 7, 60]),
       bin_usd=st.sampled_from([0.01, 0.1, 1.0, 5.0]), start=st.integers(0, 170),
       length=st.integers(0, 200), unit=st.sampled_from(["tokens", "tokens", "usd"]))
def test_heatmap_from_versions_equals_heatmap_from_rows(twin_stores: tuple[Path, Path],
                                                        side: str, agg: str, freq: int,
                                                        bin_usd: float, start: int, length: int,
                                                        unit: str) -> None:
    first = pd.Timestamp("2025-08-22T22:30Z") + pd.Timedelta(minutes=start)
    kw = dict(t_start=first, t_end=first + pd.Timedelta(minutes=length), bin_usd=bin_usd,
              pmin_usd=120.0, pmax_usd=180.0, freq_min=freq, agg=agg, side=side, unit=unit)
    assert_same_heatmap_of(twin_stores[0], twin_stores[1], **kw)


def test_borrow_fees_move_versions_across_bins(twin_stores: tuple[Path, Path]) -> None:
    """The fast path really bisects: some version changes bin inside its validity."""
    kw = dict(t_start="2025-08-22T22:30", t_end="2025-08-23T01:29", bin_usd=0.01,
              pmin_usd=100.0, pmax_usd=200.0)
    rows, versions = heatmap(twin_stores[0], **kw), heatmap(twin_stores[1], **kw)
    assert_same_heatmap(rows, versions)
    store = Store(str(twin_stores[0]))
    table = store.read_positions("SOL", columns=["pubkey", "update_time", "liq_price"])
    moved = table.group_by(["pubkey", "update_time"]).aggregate([("liq_price", "count_distinct")])
    assert max(moved.column("liq_price_count_distinct").to_pylist()) > 1


def test_cli_compact_converts_an_older_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from liqmap.cli import cli

    store = _market_store(tmp_path, n_minutes=90)  # 22:45 .. 00:14: two days
    before = store.read_positions("SOL")
    result = CliRunner().invoke(cli, ["compact", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 day(s) of positions stored as versions" in result.output
    _assert_same_rows(before, store.read_positions("SOL"))


def test_other_engines_read_versions_directly(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    store = _market_store(tmp_path, n_minutes=20)
    store.compact(now=NOW)
    frame = pl.scan_parquet(str(tmp_path / "position_versions/**/*.parquet"),
                            hive_partitioning=True).collect()
    assert frame.height == store.read_versions("SOL", pd.Timestamp("2025-08-22").date()).num_rows
    assert set(frame["market"].to_list()) == {"SOL"}
    assert (frame["valid_from"] <= frame["valid_to"]).all()


@settings(max_examples=200, deadline=None)
@given(snaps=st.lists(st.integers(0, 300), min_size=1, max_size=60, unique=True),
       ranges=st.lists(st.tuples(st.integers(-20, 320), st.integers(-20, 320)), min_size=1,
                       max_size=30))
def test_minute_lookup_equals_binary_search(snaps: list[int], ranges: list[tuple[int, int]]
                                            ) -> None:
    base = 29_000_000  # minutes since the epoch (2025)
    ts = (np.sort(np.asarray(snaps, np.int64)) + base) * V.US_PER_MINUTE
    lo = (np.asarray([a for a, _ in ranges], np.int64) + base) * V.US_PER_MINUTE
    hi = (np.asarray([b for _, b in ranges], np.int64) + base) * V.US_PER_MINUTE
    i0, i1 = V._minute_ranges(ts, lo, hi)
    np.testing.assert_array_equal(i0, np.searchsorted(ts, lo, side="left"))
    np.testing.assert_array_equal(i1, np.searchsorted(ts, hi, side="right"))
