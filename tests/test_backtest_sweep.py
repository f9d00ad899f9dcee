"""The sweep spec grammar and the grid it expands to."""

from __future__ import annotations

import pytest

from liqmap.backtest.params import BacktestParams
from liqmap.backtest.sweep import grid_params, parse_sweep
from liqmap.errors import InputError


def test_the_issue_example_parses() -> None:
    grid = parse_sweep("threshold=20000:100000:10000;window=5,10,20;release=1,2,5;confirm=1,2;"
                       "boost=0.25,0.5")
    assert grid["threshold"] == [20000.0 + 10000 * i for i in range(9)]
    assert grid["window"] == [5.0, 10.0, 20.0]
    assert list(grid) == ["threshold", "window", "release", "confirm", "boost"]
    assert len(grid_params(BacktestParams(), grid)) == 9 * 3 * 3 * 2 * 2


@pytest.mark.parametrize(("spec", "values"), [
    ("boost=0.1:0.3:0.1", [0.1, 0.2, 0.3]),  # b lands on the grid despite float steps
    ("boost=0:1:0.4", [0.0, 0.4, 0.8]),  # b off the grid is not reached
    ("window=7:7:1", [7.0]),
    (" threshold_quantile = 0.9, 0.95 ; ", [0.9, 0.95]),
    ("reversal=0,1", [0.0, 1.0]),
])
def test_ranges_and_lists(spec: str, values: list[float]) -> None:
    assert list(parse_sweep(spec).values()) == [values]


def test_grid_order_and_types() -> None:
    sets = grid_params(BacktestParams(), parse_sweep("release=1,3;reversal=0,1;boost=0.5"))
    assert [(p.release, p.reversal) for p in sets] == [(1, False), (1, True), (3, False),
                                                       (3, True)]
    assert all(isinstance(p.release, int) and isinstance(p.reversal, bool) for p in sets)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "the sweep spec is empty"),
    ("thresh=1,2", "cannot sweep 'thresh'; sweepable: threshold, threshold_quantile"),
    ("window", "sweep item 'window' is not name=values"),
    ("window=", "sweep item 'window=' is not name=values"),
    ("window=5,x", "sweep values window=5,x are malformed"),
    ("window=5:10", "sweep values window=5:10 are malformed"),
    ("window=10:5:1", "sweep values window=10:5:1 are malformed"),
    ("window=5:10:0", "sweep values window=5:10:0 are malformed"),
    ("window=5;window=10", "sweep names 'window' twice"),
    ("window=5,5", "repeat a value"),
    ("window=0,5", "window must be > 0, got 0"),
    ("confirm=1.5", "confirm must be a whole number, got 1.5"),
    ("reversal=0,2", "reversal must be >= 0 and <= 1, got 2"),
    ("threshold_quantile=0.5,1.5", "threshold_quantile must be > 0 and <= 1, got 1.5"),
    ("threshold=1,2;threshold_quantile=0.9", "not both"),
    ("threshold=1:1000:1;window=1:300:1", "the sweep has 300,000 combinations (limit 200,000)"),
    ("threshold=1:1e9:1", "1,000,000,000 values, more than the 200,000 a sweep may run"),
])
def test_malformed_specs_are_named(spec: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_sweep(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_swept_names_must_matter() -> None:
    sets = grid_params(BacktestParams(threshold_quantile=0.9), parse_sweep("threshold=1,2"))
    assert [(p.threshold_tokens, p.threshold_quantile) for p in sets] == [(1, None), (2, None)]
    with pytest.raises(InputError, match="lookback only matters with a quantile threshold"):
        grid_params(BacktestParams(threshold_tokens=100.0), parse_sweep("lookback=60,120"))
    with pytest.raises(InputError, match="lookback only matters with a quantile threshold"):
        grid_params(BacktestParams(), parse_sweep("lookback=60,120;threshold=1"))
    sets = grid_params(BacktestParams(), parse_sweep("lookback=60,120;threshold_quantile=0.9"))
    assert [p.lookback_min for p in sets] == [60, 120]
