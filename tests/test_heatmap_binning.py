"""Pure binning: price edges, bin assignment, conservation, aggregation of snapshots, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap.errors import InputError
from liqmap.heatmap.binning import (
    MatrixBinner,
    TimeGrid,
    aggregate_spot,
    bin_decimals,
    check_matrix_size,
    make_price_edges,
    matrix_bytes,
    price_bin_index,
    price_edge_range,
)

BINS = st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
PRICES = st.floats(min_value=1.0, max_value=5000.0, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------ edges
@settings(max_examples=300, deadline=None)
@given(bin_usd=BINS, pmin=PRICES, width=st.floats(min_value=0.01, max_value=300.0))
def test_edges_are_multiples_of_the_bin_and_cover_the_range(bin_usd: float, pmin: float,
                                                            width: float) -> None:
    pmax = pmin + width
    edges = make_price_edges(pmin, pmax, bin_usd)
    k_lo, k_hi = price_edge_range(pmin, pmax, bin_usd)
    expected = np.round(np.arange(k_lo, k_hi + 1) * bin_usd, bin_decimals(bin_usd))
    np.testing.assert_array_equal(edges, expected)
    noise = 1e-8 * pmax  # bounds within float noise of an edge snap to it
    assert edges[0] <= pmin + noise and edges[0] > pmin - bin_usd - noise
    assert edges[-1] >= pmax - noise and edges[-1] < pmax + bin_usd + noise
    np.testing.assert_allclose(np.diff(edges), bin_usd, rtol=1e-9)


def test_edges_of_the_real_matrix() -> None:
    edges = make_price_edges(170, 220, 0.1)
    assert edges.size == 501
    assert edges[0] == 170.0 and edges[-1] == 220.0 and edges[3] == 170.3


@settings(max_examples=300, deadline=None)
@given(bin_usd=BINS, k0=st.integers(min_value=1, max_value=100_000),
       n=st.integers(min_value=1, max_value=400))
def test_a_price_on_an_edge_goes_to_the_bin_starting_there(bin_usd: float, k0: int,
                                                           n: int) -> None:
    edges = make_price_edges(k0 * bin_usd, (k0 + n) * bin_usd, bin_usd)
    assert edges.size == n + 1
    index = price_bin_index(edges, edges)
    np.testing.assert_array_equal(index, np.append(np.arange(n), n))  # last edge: above


@settings(max_examples=200, deadline=None)
@given(bin_usd=BINS, pmin=st.floats(min_value=10, max_value=500),
       prices=st.lists(st.floats(min_value=0.5, max_value=1000, allow_nan=False), max_size=60))
def test_bin_index_agrees_with_searchsorted_and_pd_cut(bin_usd: float, pmin: float,
                                                       prices: list[float]) -> None:
    edges = make_price_edges(pmin, pmin + 40 * bin_usd, bin_usd)
    price = np.array(prices, dtype=np.float64)
    index = price_bin_index(price, edges)
    reference = np.searchsorted(edges, price, side="right") - 1
    np.testing.assert_array_equal(index, np.clip(reference, -1, edges.size - 1))
    codes = pd.cut(price, edges, right=False, labels=False)
    inside = (index >= 0) & (index < edges.size - 1)
    np.testing.assert_array_equal(np.nan_to_num(codes, nan=-1)[inside], index[inside])
    assert np.isnan(codes[~inside]).all()


@pytest.mark.parametrize(("pmin", "pmax", "bin_usd"), [
    (200, 170, 0.1), (170, 170, 0.1), (170, 200, 0.0), (170, 200, -0.5),
    (170, 200, float("nan")), (-5, 200, 0.1), (170, float("inf"), 0.1)])
def test_bad_price_ranges_are_refused(pmin: float, pmax: float, bin_usd: float) -> None:
    with pytest.raises(InputError):
        make_price_edges(pmin, pmax, bin_usd)


# ------------------------------------------------------------------ conservation
ROWS = st.lists(st.tuples(st.integers(min_value=0, max_value=29),
                          st.floats(min_value=0.0, max_value=260.0, allow_nan=False),
                          st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
                          st.booleans()), max_size=200)


def _binner(freq: int, agg: str, side: str = "both", snapshots: np.ndarray | None = None,
            pmin: float = 150, pmax: float = 210, bin_usd: float = 0.5) -> MatrixBinner:
    grid = TimeGrid.from_window(1000, 1029, freq)
    snaps = np.arange(1000, 1030) if snapshots is None else snapshots
    return MatrixBinner(grid, make_price_edges(pmin, pmax, bin_usd), snaps, agg=agg, side=side)


def _add(binner: MatrixBinner, rows: list[tuple[int, float, float, bool]]) -> None:
    """Rows (minute offset from 1000, liq price, size, is_long); times with a few seconds."""
    time_us = np.array([(1000 + r[0]) * 60_000_000 + 7 for r in rows], dtype=np.int64)
    binner.add(time_us, np.array([r[1] for r in rows], dtype=np.float64),
               np.array([r[2] for r in rows], dtype=np.float64),
               np.array([r[3] for r in rows], dtype=bool))


@settings(max_examples=200, deadline=None)
@given(rows=ROWS)
def test_each_column_holds_the_in_range_amount_of_its_snapshot(rows: list) -> None:
    binner = _binner(1, "mean")
    _add(binner, rows)
    layers, gap = binner.finish()
    z = layers["total"]
    assert not gap.any()
    for col in range(30):
        expected = sum(a for m, p, a, _ in rows if m == col and 150 <= p < 210)
        assert z[:, col].sum() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    s = binner.stats
    assert s.n_rows == len(rows)
    assert s.n_rows_in_range + s.n_rows_below + s.n_rows_above + s.n_rows_no_liq == len(rows)
    liquidatable = sum(a for _, p, a, _ in rows if p > 0)
    assert s.amount_in_range + s.amount_outside == pytest.approx(liquidatable, rel=1e-9, abs=1e-6)
    assert z.sum() == pytest.approx(s.amount_in_range, rel=1e-9, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(rows=ROWS, freq=st.sampled_from([2, 5, 7, 30]),
       missing=st.sets(st.integers(min_value=0, max_value=29), max_size=20))
def test_a_coarse_column_is_the_mean_of_its_snapshots(rows: list, freq: int,
                                                      missing: set[int]) -> None:
    snaps = np.array([1000 + m for m in range(30) if m not in missing], dtype=np.int64)
    binner = _binner(freq, "mean", snapshots=snaps)
    _add(binner, rows)
    layers, gap = binner.finish()
    grid = binner.grid
    for col in range(grid.n_cols):
        minutes = [m - 1000 for m in snaps if (m - grid.start_min) // freq == col]
        assert gap[col] == (not minutes)
        per_snapshot = [sum(a for m, p, a, _ in rows if m == s and 150 <= p < 210)
                        for s in minutes]
        expected = float(np.mean(per_snapshot)) if per_snapshot else 0.0
        assert layers["total"][:, col].sum() == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(rows=ROWS, agg=st.sampled_from(["mean", "last", "max"]),
       freq=st.sampled_from([1, 3, 10]))
def test_split_layers_add_up_and_sides_filter(rows: list, agg: str, freq: int) -> None:
    split = _binner(freq, agg, "split")
    _add(split, rows)
    layers, _ = split.finish()
    if agg != "max":
        np.testing.assert_allclose(layers["total"], layers["long"] + layers["short"])
    else:
        assert (layers["total"] >= np.maximum(layers["long"], layers["short"]) - 1e-9).all()
    for side in ("long", "short"):
        one = _binner(freq, agg, side)
        _add(one, rows)
        np.testing.assert_allclose(one.finish()[0]["total"], layers[side])


def test_empty_input_gives_zeros_and_gaps_only_where_no_snapshot() -> None:
    binner = _binner(5, "mean", snapshots=np.array([1000, 1001, 1017], dtype=np.int64))
    binner.add(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    layers, gap = binner.finish()
    assert layers["total"].shape == (120, 6) and not layers["total"].any()
    np.testing.assert_array_equal(gap, [False, True, True, False, True, True])
    assert binner.stats.n_rows == 0 and binner.stats.n_snapshots == 3


def test_last_and_max_by_hand() -> None:
    # column 0 (minutes 1000-1004): snapshots 1000 and 1003; column 1: only 1006
    snaps = np.array([1000, 1003, 1006], dtype=np.int64)
    rows = [(0, 160.2, 4.0, True), (0, 170.0, 1.0, True), (3, 160.4, 2.0, True),
            (3, 170.1, 5.0, False), (6, 160.0, 7.0, True), (4, 160.0, 9.0, True)]
    expected = {"mean": ({20: 3.0, 40: 3.0}, 7.0), "last": ({20: 2.0, 40: 5.0}, 7.0),
                "max": ({20: 4.0, 40: 5.0}, 7.0)}
    for agg, (col0, col1) in expected.items():
        binner = _binner(5, agg, snapshots=snaps)
        _add(binner, rows)
        z = binner.finish()[0]["total"]
        assert {int(i): float(z[i, 0]) for i in np.flatnonzero(z[:, 0])} == col0, agg
        assert z[:, 1].sum() == col1 and z[20, 1] == 7.0
    assert binner.stats.n_rows_unmatched == 1  # minute 1004 has no snapshot


def test_rows_without_liquidation_price_are_counted_not_binned() -> None:
    binner = _binner(1, "mean")
    _add(binner, [(0, 0.0, 3.0, True), (0, float("nan"), 2.0, False), (0, 160.0, 1.0, True)])
    assert binner.finish()[0]["total"].sum() == 1.0
    assert binner.stats.n_rows_no_liq == 2


def test_side_needs_a_side_column() -> None:
    binner = _binner(1, "mean", "long")
    with pytest.raises(InputError, match="--side both"):
        binner.add(np.array([60_000_000_000]), np.array([160.0]), np.array([1.0]), None)


# ------------------------------------------------------------------ grid, price, size
def test_time_grid_floors_the_start_to_the_frequency() -> None:
    grid = TimeGrid.from_window(1007, 1031, 15)
    assert (grid.start_min, grid.n_cols) == (1005, 2)
    np.testing.assert_array_equal(grid.t_edges_ns() // 60_000_000_000, [1005, 1020, 1035])
    with pytest.raises(InputError, match="swap"):
        TimeGrid.from_window(10, 5, 1)
    with pytest.raises(InputError, match="--freq"):
        TimeGrid.from_window(0, 5, 0)


def test_spot_mean_and_last_per_column() -> None:
    grid = TimeGrid.from_window(100, 109, 5)
    minute = np.array([103, 100, 101, 107, 200])
    price = np.array([3.0, 1.0, 2.0, 10.0, 99.0])
    np.testing.assert_allclose(aggregate_spot(minute, price, grid, "mean"), [2.0, 10.0])
    np.testing.assert_allclose(aggregate_spot(minute, price, grid, "last"), [3.0, 10.0])
    empty = aggregate_spot(np.zeros(0, np.int64), np.zeros(0), grid)
    assert np.isnan(empty).all()


def test_oversized_matrices_are_refused_before_allocation() -> None:
    check_matrix_size(500, 4320, matrix_bytes(500, 4320), 2**30)
    with pytest.raises(InputError, match="1,000,000,000 price bins × 4,320 columns"):
        check_matrix_size(10**9, 4320, matrix_bytes(10**9, 4320), 2**31)
