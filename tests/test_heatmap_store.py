"""Heatmaps from a real store (written through `Store.write_snapshot` in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.errors import DataGapError, InputError
from liqmap.heatmap import build_matrix_from_store
from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.sources import StoreSource

from test_heatmap_helpers import write_store

# 12:00..12:05 with 12:02 and 12:03 missing (gaps)
SNAPSHOTS = {
    "2025-08-22T12:00": (180.0, [("long", 170.05, 1.0), ("short", 190.0, 2.0),
                                 ("long", 150.0, 4.0)]),
    "2025-08-22T12:01": (181.0, [("long", 170.05, 3.0), ("short", 190.2, 2.0),
                                 ("long", 0.0, 8.0)]),
    "2025-08-22T12:04": (182.0, [("long", 171.0, 5.0), ("short", 199.99, 1.0)]),
    "2025-08-22T12:05": (183.0, [("long", 171.0, 6.0), ("short", 200.0, 7.0)]),
}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    write_store(root, SNAPSHOTS)
    return root


def _build(store_dir: Path, **kw: object) -> object:
    kw.setdefault("t_start", "2025-08-22T12:00")
    kw.setdefault("t_end", "2025-08-22T12:05")
    kw.setdefault("bin_usd", 1.0)
    kw.setdefault("pmin_usd", 160)
    kw.setdefault("pmax_usd", 200)
    return build_heatmap(StoreSource(str(store_dir), "SOL"), HeatmapRequest(**kw))  # type: ignore[arg-type]


def test_columns_gaps_price_and_conservation(store_dir: Path) -> None:
    hm = _build(store_dir)
    m = hm.matrix  # type: ignore[attr-defined]
    assert m.z.shape == (40, 6)
    np.testing.assert_array_equal(m.gap_mask, [False, False, True, True, False, False])
    np.testing.assert_array_equal(m.z.sum(axis=0), [3.0, 5.0, 0.0, 0.0, 6.0, 6.0])
    assert m.z[10, 0] == 1.0 and m.z[30, 0] == 2.0 and m.z[39, 4] == 1.0
    np.testing.assert_array_equal(m.spot_usd[[0, 1, 4, 5]], [180.0, 181.0, 182.0, 183.0])
    assert np.isnan(m.spot_usd[[2, 3]]).all()
    s = hm.stats  # type: ignore[attr-defined]
    assert (s.n_rows, s.n_rows_below, s.n_rows_above, s.n_rows_no_liq) == (10, 1, 1, 1)
    assert (s.amount_below, s.amount_above) == (4.0, 7.0)
    assert m.t_edges_ns[0] == pd.Timestamp("2025-08-22T12:00Z").value


def test_usd_is_size_times_liquidation_price(store_dir: Path) -> None:
    m = _build(store_dir, unit="usd").matrix  # type: ignore[attr-defined]
    assert m.unit == "usd"
    assert m.z[10, 0] == pytest.approx(170.05) and m.z[30, 0] == pytest.approx(380.0)


def test_sides_and_split(store_dir: Path) -> None:
    longs = _build(store_dir, side="long").matrix  # type: ignore[attr-defined]
    shorts = _build(store_dir, side="short").matrix  # type: ignore[attr-defined]
    split = _build(store_dir, side="split").matrix  # type: ignore[attr-defined]
    np.testing.assert_array_equal(longs.z.sum(axis=0), [1.0, 3.0, 0, 0, 5.0, 6.0])
    np.testing.assert_array_equal(shorts.z.sum(axis=0), [2.0, 2.0, 0, 0, 1.0, 0.0])
    np.testing.assert_array_equal(split.extra["Z_long"], longs.z)
    np.testing.assert_array_equal(split.extra["Z_short"], shorts.z)
    np.testing.assert_array_equal(split.z, longs.z + shorts.z)


def test_coarse_columns_mean_last_max(store_dir: Path) -> None:
    mean = _build(store_dir, freq_min=3, agg="mean").matrix  # type: ignore[attr-defined]
    last = _build(store_dir, freq_min=3, agg="last").matrix  # type: ignore[attr-defined]
    peak = _build(store_dir, freq_min=3, agg="max").matrix  # type: ignore[attr-defined]
    # 12:00 floors to 12:00 with freq 3: columns [12:00-12:02], [12:03-12:05]
    assert mean.z.shape[1] == 2 and not mean.gap_mask.any()
    assert mean.z[10, 0] == 2.0 and mean.z[30, 0] == 2.0 and mean.z[30, 1] == 0.0  # (2+2)/2
    assert last.z[10, 0] == 3.0 and last.z[11, 1] == 6.0 and last.z[39, 1] == 0.0
    assert peak.z[10, 0] == 3.0 and peak.z[11, 1] == 6.0 and peak.z[39, 1] == 1.0
    np.testing.assert_allclose(mean.spot_usd, [180.5, 182.5])
    np.testing.assert_allclose(last.spot_usd, [181.0, 183.0])


def test_default_window_and_price_range(store_dir: Path) -> None:
    hm = build_heatmap(StoreSource(str(store_dir), "SOL"), HeatmapRequest(bin_usd=0.5))
    assert hm.t_start == pd.Timestamp("2025-08-22T12:00Z")  # clipped to the oldest snapshot
    assert hm.t_end == pd.Timestamp("2025-08-22T12:05Z")
    assert hm.matrix.y_edges_usd[0] == 144.0  # 180 × 0.8
    assert hm.matrix.y_edges_usd[-1] == 220.0  # 183 × 1.2 = 219.6, up to the next edge


def test_only_t_end_gives_24_hours_of_columns(store_dir: Path) -> None:
    hm = build_heatmap(StoreSource(str(store_dir), "SOL"),
                       HeatmapRequest(t_end="2025-08-22T12:05", bin_usd=1.0, pmin_usd=160,
                                      pmax_usd=200))
    assert hm.matrix.n_columns == 1440 and hm.matrix.gap_mask.sum() == 1436


def test_build_matrix_from_store_for_the_backtest(store_dir: Path) -> None:
    m = build_matrix_from_store(str(store_dir), "sol", "2025-08-22T12:00",
                                pd.Timestamp("2025-08-22T12:05Z"), 1.0, "tokens", pmin=160,
                                pmax=200, freq_min=1, agg="mean", side="both")
    np.testing.assert_array_equal(m.z.sum(axis=0), [3.0, 5.0, 0.0, 0.0, 6.0, 6.0])
    assert m.market == "SOL" and m.freq_min == 1


def test_empty_window_and_unknown_market(store_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataGapError, match="pick a window inside it"):
        _build(store_dir, t_start="2025-08-23T00:00", t_end="2025-08-23T01:00")
    with pytest.raises(DataGapError, match="liqmap collect"):
        build_heatmap(StoreSource(str(tmp_path / "empty"), "SOL"), HeatmapRequest())
    with pytest.raises(InputError, match="unknown market"):
        StoreSource(str(store_dir), "DOGE")
