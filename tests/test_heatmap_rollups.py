"""Roll-ups beside position versions: the same matrix as the exact path, edges, invalidation."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap.heatmap import _kernels as K
from liqmap.heatmap import rollups as HR
from liqmap.heatmap.binning import MatrixBinner, TimeGrid, make_price_edges
from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.sources import StoreSource
from liqmap.store import Store
from liqmap.store import rollups as R
from market_rows import MarketSim

NOW = pd.Timestamp("2025-08-26T00:00:00Z")
FIRST = pd.Timestamp("2025-08-22T21:30Z")
N_MINUTES = 300  # 21:30 .. 02:29 the next day: two partial days
#: liquidation prices stored as they are (single-minute versions), exactly on bin edges of
#: many widths, and one float step either side of some
EDGES = [150.0, 150.1, 149.95, 150.05, 133.33, 150.25, 150.02, 120.0, 180.0, 140.5, 149.9]
ON_EDGES = EDGES + [float(np.nextafter(p, 0)) for p in EDGES[:4]] + [
    float(np.nextafter(p, np.inf)) for p in EDGES[:4]]


def _write(store: Store, seed: int = 5) -> None:
    """A simulated market (churn, borrow fees moving prices across bins, a parameter change,
    missing minutes), with some rows' liquidation prices set exactly on bin edges."""
    sim = MarketSim(seed=seed, n_positions=50, churn=0.03, rate_per_min=2_000_000)
    rng = np.random.default_rng(seed)
    positions, states = [], []
    for i in range(N_MINUTES):
        ts = FIRST + pd.Timedelta(minutes=i)
        if i:
            sim.step(int(ts.timestamp()))
        if i == 70:
            sim.params = (sim.params[0] + 1, sim.params[1] // 2, sim.params[2])
        if i in (4, 5, 150):
            continue
        rows = sim.rows(ts, 1000 + i)
        liq = rows.column("liq_price").to_numpy().copy()
        pick = rng.random(liq.size) < 0.1
        liq[pick] = rng.choice(ON_EDGES, int(pick.sum()))
        rows = rows.set_column(rows.schema.get_field_index("liq_price"), "liq_price",
                               pa.array(liq))
        positions.append(rows)
        states.append(sim.state(ts, 1000 + i, rows.num_rows))
    store.write_bulk("positions", "SOL", pa.concat_tables(positions))
    store.write_bulk("market_state", "SOL", pa.concat_tables(states))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated market as rows, not compacted (copied by the tests that change it)."""
    root = tmp_path_factory.mktemp("pristine")
    _write(Store(str(root)))
    return root


def _copy(pristine: Path, tmp_path: Path) -> Store:
    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    return Store(str(tmp_path))


@pytest.fixture(scope="module")
def stores(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same market kept as rows (the reference) and converted, with roll-ups."""
    converted = tmp_path_factory.mktemp("rolled")
    report = _copy(pristine, converted).compact(now=NOW)
    assert report.converted == 2 and report.rollups == 2
    return pristine, converted


def _heatmap(root: Path, **kw: object) -> object:
    return build_heatmap(StoreSource(str(root), "SOL"), HeatmapRequest(**kw))  # type: ignore[arg-type]


def _assert_same(rows: object, rolled: object) -> None:
    """The matrix to 1e-9 relative, the counts exactly, the amounts to 1e-9."""
    a, b = rows.matrix, rolled.matrix  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a.gap_mask, b.gap_mask)
    np.testing.assert_array_equal(a.t_edges_ns, b.t_edges_ns)
    np.testing.assert_array_equal(a.y_edges_usd, b.y_edges_usd)
    scale = max(float(np.abs(a.z).max()), 1e-300)
    np.testing.assert_allclose(b.z, a.z, rtol=1e-9, atol=1e-12 * scale)
    assert ((a.z == 0) == (b.z == 0)).all()  # no float dust in empty cells
    for name in a.extra:
        np.testing.assert_allclose(b.extra[name], a.extra[name], rtol=1e-9, atol=1e-12 * scale)
    sa, sb = rows.stats, rolled.stats  # type: ignore[attr-defined]
    for field in ("n_rows", "n_rows_in_range", "n_rows_below", "n_rows_above", "n_rows_no_liq",
                  "n_rows_unmatched", "n_snapshots"):
        assert getattr(sa, field) == getattr(sb, field), field
    for field in ("amount_in_range", "amount_below", "amount_above"):
        assert getattr(sb, field) == pytest.approx(getattr(sa, field), rel=1e-9, abs=1e-12)


class _Spy:
    """Counts the roll-up rows a heatmap added."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        real = HR.add_rollup_rows

        def spy(binner: MatrixBinner, grid: HR.RollupGrid, rows: pa.Table) -> None:
            self.rows += rows.num_rows
            real(binner, grid, rows)

        monkeypatch.setattr(HR, "add_rollup_rows", spy)


BINS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 5.0, 0.03, 0.005, 0.015]


@settings(max_examples=40, deadline=None)
@given(side=st.sampled_from(["both", "long", "short", "split"]),
       agg=st.sampled_from(["mean", "mean", "mean", "last", "max"]),
       freq=st.sampled_from([60, 60, 120, 180, 1440, 30]), bin_usd=st.sampled_from(BINS),
       start_h=st.integers(-1, 4), start_min=st.sampled_from([0, 0, 0, 17]),
       hours=st.integers(1, 30), pmin=st.sampled_from([120.0, 100.0, 149.95, 133.33, 0.0]),
       pmax=st.sampled_from([180.0, 200.0, 150.1, 600.0]))
def test_rollups_give_the_matrix_of_the_rows(stores: tuple[Path, Path], side: str, agg: str,
                                             freq: int, bin_usd: float, start_h: int,
                                             start_min: int, hours: int, pmin: float,
                                             pmax: float) -> None:
    """Random windows, bins, ranges and sides: with roll-ups (where they apply) the matrix and
    every summary figure equal those from the per-minute rows."""
    first = pd.Timestamp("2025-08-22T22:00Z") + pd.Timedelta(hours=start_h, minutes=start_min)
    kw = dict(t_start=first, t_end=first + pd.Timedelta(hours=hours, minutes=-1),
              bin_usd=bin_usd, pmin_usd=pmin, pmax_usd=pmax, freq_min=freq, agg=agg, side=side)
    _assert_same(_heatmap(stores[0], **kw), _heatmap(stores[1], **kw))


@pytest.mark.parametrize("bin_usd", [0.01, 0.05, 0.1, 0.25, 1.0])
@pytest.mark.parametrize("freq", [60, 1440])
def test_aligned_windows_use_the_rollups(stores: tuple[Path, Path], bin_usd: float, freq: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole hours or days, "mean", a bin on the grid: the roll-ups are used, and the matrix
    is the rows' (prices exactly on edges included)."""
    spy = _Spy(monkeypatch)
    kw = dict(t_start="2025-08-22T00:00", t_end="2025-08-23T23:59", bin_usd=bin_usd,
              pmin_usd=120.0, pmax_usd=180.0, freq_min=freq, side="split")
    rolled = _heatmap(stores[1], **kw)
    assert spy.rows > 0
    _assert_same(_heatmap(stores[0], **kw), rolled)


@pytest.mark.parametrize("kw", [
    dict(freq_min=30), dict(agg="max"), dict(agg="last"), dict(unit="usd"),
    dict(bin_usd=0.005), dict(bin_usd=0.015), dict(pmax_usd=600.0),
    dict(t_start="2025-08-22T22:10"),
], ids=str)
def test_other_requests_take_the_exact_path(stores: tuple[Path, Path], kw: dict[str, object],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base: dict[str, object] = dict(t_start="2025-08-22T22:00", t_end="2025-08-22T23:59",
                                   bin_usd=0.1, pmin_usd=120.0, pmax_usd=180.0, freq_min=60)
    spy = _Spy(monkeypatch)
    rolled = _heatmap(stores[1], **{**base, **kw})
    assert spy.rows == 0
    _assert_same(_heatmap(stores[0], **{**base, **kw}), rolled)


@settings(max_examples=300, deadline=None)
@given(decade=st.integers(-3, 2), mult=st.sampled_from([1, 2, 3, 5, 10, 20, 25, 50, 100]),
       k_lo=st.integers(0, 5000), n_bins=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_prices_on_edges_fall_in_the_same_bin_on_both_grids(decade: int, mult: int, k_lo: int,
                                                            n_bins: int, seed: int) -> None:
    """Every fine edge, and the floats either side of it: the coarse bin from the roll-up's
    fine code is the bin the exact path computes."""
    step = float(Decimal(10) ** decade)
    bin_usd = float(Decimal(repr(step)) * mult)
    pmin, pmax = (float(Decimal(repr(bin_usd)) * k) for k in (k_lo, k_lo + n_bins))
    binner = MatrixBinner(TimeGrid(0, 1, 60), make_price_edges(pmin, pmax, bin_usd),
                          np.zeros(1, np.int64))
    grid = HR.RollupGrid.match(binner, step)
    assert grid is not None and grid.m == mult
    top = grid.j_hi + 3 * mult
    fine_edges = HR.rollup_edges(step, 0, top)
    lo = max(grid.j_lo - 3 * mult, 0)
    edges = fine_edges[lo:]
    rng = np.random.default_rng(seed)
    prices = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf),
                             rng.uniform(edges[0], edges[-1] * 1.01, 200), [0.0, np.nan]])
    prices = prices[prices >= 0]
    fine = K.price_codes_nb(prices, fine_edges)
    fine = np.where(fine == K.NO_LIQ, R.NO_LIQ_CODE, fine)
    sizes = rng.uniform(0.5, 2.0, prices.size)
    is_long = rng.random(prices.size) < 0.5
    rows = MatrixBinner(TimeGrid(0, 1, 60), binner.y_edges_usd, np.zeros(1, np.int64),
                        side="split")
    rows.add(np.zeros(prices.size, np.int64), prices, sizes, is_long)
    cells = MatrixBinner(TimeGrid(0, 1, 60), binner.y_edges_usd, np.zeros(1, np.int64),
                         side="split")
    cells.add_rollup(np.zeros(prices.size, np.int64), is_long.astype(np.int64), 1, fine, sizes,
                     np.ones(prices.size, np.int64), grid.j_lo, grid.m)
    np.testing.assert_array_equal(cells._counts, rows._counts)
    np.testing.assert_allclose(cells._acc, rows._acc, rtol=1e-12)
    np.testing.assert_allclose(cells._amounts, rows._amounts, rtol=1e-12)
    assert ((cells._acc == 0) == (rows._acc == 0)).all()


def test_a_grid_the_bin_does_not_fit_is_refused() -> None:
    binner = MatrixBinner(TimeGrid(0, 1, 60), make_price_edges(100.0, 101.0, 0.005),
                          np.zeros(1, np.int64))
    assert HR.RollupGrid.match(binner, 0.01) is None
    binner = MatrixBinner(TimeGrid(0, 1, 60), make_price_edges(100.0, 101.5, 0.015),
                          np.zeros(1, np.int64))
    assert HR.RollupGrid.match(binner, 0.01) is None


def _exact(root: Path, monkeypatch: pytest.MonkeyPatch, **kw: object) -> object:
    with monkeypatch.context() as m:
        m.setattr(HR, "rollups_apply", lambda binner: False)
        return _heatmap(root, **kw)


@pytest.mark.parametrize("dataset", ["position_versions", "market_state"])
def test_a_changed_day_file_invalidates_its_rollup(pristine: Path, tmp_path: Path, dataset: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewriting a day's versions or market_state makes its roll-up stale: heatmaps bin the
    versions again (the new data, not the roll-up's), and `compact` rebuilds it."""
    store = _copy(pristine, tmp_path)
    store.compact(now=NOW)
    day = pd.Timestamp("2025-08-23").date()
    assert R.valid_meta(store, "SOL", day) is not None
    kw = dict(t_start="2025-08-23T00:00", t_end="2025-08-23T01:59", bin_usd=0.1,
              pmin_usd=120.0, pmax_usd=180.0, freq_min=60)
    before = _heatmap(tmp_path, **kw)
    rel = (f"{dataset}/market=SOL/date=2025-08-23/day-20250823.parquet")
    table = pq.read_table(tmp_path / rel, schema=None).cast(
        pq.read_schema(tmp_path / rel))
    keep = np.ones(table.num_rows, bool)
    keep[::3] = False  # drop a third of the versions, or of the snapshots
    store.fs.write_table(rel, table.filter(pa.array(keep)))
    assert R.valid_meta(store, "SOL", day) is None
    spy = _Spy(monkeypatch)
    changed = _heatmap(tmp_path, **kw)
    assert spy.rows == 0
    _assert_same(_exact(tmp_path, monkeypatch, **kw), changed)
    assert not np.allclose(changed.matrix.z, before.matrix.z)  # type: ignore[attr-defined]
    assert store.compact(now=NOW).rollups == 1
    assert R.valid_meta(store, "SOL", day) is not None
    rolled = _heatmap(tmp_path, **kw)
    assert spy.rows > 0
    _assert_same(changed, rolled)
    assert store.compact(now=NOW).rollups == 0  # idempotent


def test_a_damaged_or_missing_rollup_falls_back(pristine: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = _copy(pristine, tmp_path)
    store.compact(now=NOW)
    kw = dict(t_start="2025-08-22T22:00", t_end="2025-08-23T01:59", bin_usd=0.1,
              pmin_usd=120.0, pmax_usd=180.0, freq_min=60)
    expected = _exact(tmp_path, monkeypatch, **kw)
    (tmp_path / R.rollup_rel("SOL", pd.Timestamp("2025-08-22").date())).write_bytes(b"junk")
    (tmp_path / R.rollup_rel("SOL", pd.Timestamp("2025-08-23").date())).unlink()
    spy = _Spy(monkeypatch)
    _assert_same(expected, _heatmap(tmp_path, **kw))
    assert spy.rows == 0
    assert store.compact(now=NOW).rollups == 2


def test_other_readers_do_not_see_rollups(pristine: Path, tmp_path: Path) -> None:
    """Roll-ups live in their own dataset: the DuckDB macros, polars and pyarrow read the
    versions as before; `status` counts their bytes; `recover` removes only stale temps."""
    import pyarrow.dataset as pads

    from liqmap.store.sql import positions_sql
    from liqmap.store.status import format_status, market_status

    store = _copy(pristine, tmp_path)
    store.compact(now=NOW)
    assert list((tmp_path / R.DATASET).rglob("rollup-*.parquet"))
    expected = store.read_positions("SOL")
    assert pads.dataset(tmp_path / "position_versions", format="parquet",
                        partitioning="hive").to_table().num_rows == \
        store.read_versions("SOL", [pd.Timestamp(d).date() for d in
                                    ("2025-08-22", "2025-08-23")]).num_rows
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute(positions_sql())
    n = con.execute(f"select count(*) from liqmap_version_rows('{tmp_path}', 'SOL')").fetchone()
    assert n is not None and n[0] == expected.num_rows
    status = market_status(store, "SOL", pd.Timestamp("2025-08-22T21:30Z"),
                           pd.Timestamp("2025-08-23T02:29Z"))
    assert status.bytes_by_dataset["position_rollups"] > 0 and not status.damaged
    assert "position_rollups" in format_status(status)
    stale = tmp_path / R.DATASET / "market=SOL/date=2025-08-22/.tmp-999999999-x.parquet.partial"
    stale.write_bytes(b"")
    assert store.recover(now=NOW) == 1
    assert not stale.exists()
    assert R.valid_meta(store, "SOL", pd.Timestamp("2025-08-22").date()) is not None


def test_rollups_on_an_object_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """memory:// (fsspec): compact writes the roll-ups, heatmaps use them, same matrix."""
    from market_rows import write_market

    root = "memory://liqmap-rollups-test"
    store = Store(root)
    write_market(store, MarketSim(seed=1, n_positions=30), "2025-08-22T22:30", 120)
    assert store.compact(now=NOW).rollups == 2
    assert R.valid_meta(store, "SOL", pd.Timestamp("2025-08-23").date()) is not None
    kw = dict(t_start="2025-08-22T23:00", t_end="2025-08-23T00:59", bin_usd=0.1,
              pmin_usd=120.0, pmax_usd=180.0, freq_min=60)
    spy = _Spy(monkeypatch)
    rolled = build_heatmap(StoreSource(root, "SOL"), HeatmapRequest(**kw))  # type: ignore[arg-type]
    assert spy.rows > 0
    with monkeypatch.context() as m:
        m.setattr(HR, "rollups_apply", lambda binner: False)
        exact = build_heatmap(StoreSource(root, "SOL"), HeatmapRequest(**kw))  # type: ignore[arg-type]
    _assert_same(exact, rolled)
    assert store.compact(now=NOW).rollups == 0
