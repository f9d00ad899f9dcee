"""`liqmap levels`: the liquidation map at one moment, by hand and from a real store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.errors import DataGapError, InputError
from liqmap.heatmap.binning import make_price_edges
from liqmap.heatmap.build import build_levels
from liqmap.heatmap.levels import compute_levels
from liqmap.heatmap.sources import StoreSource

from test_heatmap_helpers import run_cli, write_store

NAN = np.nan


def test_levels_by_hand() -> None:
    # bins [90,95) [95,100) [100,105) [105,110) [110,115) [115,120); price 100 in bin 2
    liq = np.array([95.0, 98.0, 105.0, 50.0, 0.0, 102.0, 110.0, 130.0])
    size = np.array([2.0, 1.0, 1.0, 4.0, 9.0, 3.0, 1.0, 5.0])
    is_long = np.array([True, True, True, True, True, False, False, False])
    lv = compute_levels(liq, size, is_long, 100.0, make_price_edges(90, 120, 5))
    assert lv.price_bin == 2 and lv.n_no_liq == 1
    np.testing.assert_array_equal(lv.long.tokens, [0, 3, 0, 1, 0, 0])
    np.testing.assert_array_equal(lv.long.usd, [0, 2 * 95 + 98, 0, 105, 0, 0])
    np.testing.assert_array_equal(lv.long.cum_tokens, [4, 4, 1, NAN, NAN, NAN])
    np.testing.assert_array_equal(lv.short.tokens, [0, 0, 3, 0, 1, 0])
    np.testing.assert_array_equal(lv.short.cum_tokens, [NAN, NAN, 3, 3, 4, 4])
    np.testing.assert_array_equal(lv.short.cum_usd, [NAN, NAN, 306, 306, 416, 416])
    assert (lv.long.below_tokens, lv.long.above_tokens, lv.long.n) == (4.0, 0.0, 4)
    assert (lv.short.below_tokens, lv.short.above_tokens, lv.short.n) == (0.0, 5.0, 3)


def test_cumulative_counts_what_lies_beyond_the_range() -> None:
    lv = compute_levels(np.array([130.0, 60.0]), np.array([2.0, 7.0]), np.array([True, False]),
                        100.0, make_price_edges(90, 120, 5))
    np.testing.assert_array_equal(lv.long.cum_tokens[:3], [2, 2, 2])  # long above the range
    np.testing.assert_array_equal(lv.short.cum_tokens[2:], [7, 7, 7, 7])  # short below it


SNAPSHOTS = {
    "2025-08-22T12:00": (180.0, [("long", 170.2, 1.0), ("short", 190.2, 2.0)]),
    "2025-08-22T12:01": (181.0, [("long", 170.2, 3.0), ("short", 195.0, 4.0),
                                 ("long", 0.0, 1.0)]),
}


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    write_store(tmp_path / "store", SNAPSHOTS)
    return tmp_path / "store"


def test_levels_from_the_store(store_dir: Path) -> None:
    source = StoreSource(str(store_dir), "SOL")
    newest = build_levels(source, None, bin_usd=1.0)
    assert newest.ts == pd.Timestamp("2025-08-22T12:01Z") and newest.price_usd == 181.0
    assert newest.y_edges_usd[0] == 144.0 and newest.y_edges_usd[-1] == 218.0  # 181 ± 20 %
    assert newest.long.tokens.sum() == 3.0 and newest.short.tokens.sum() == 4.0
    assert newest.n_no_liq == 1
    earlier = build_levels(source, "2025-08-22T12:00:59", bin_usd=1.0, pmin_usd=160,
                           pmax_usd=200)
    assert earlier.ts == pd.Timestamp("2025-08-22T12:00Z")
    assert earlier.long.tokens[10] == 1.0 and earlier.short.usd[30] == pytest.approx(380.4)
    with pytest.raises(DataGapError, match="pick --at inside it"):
        build_levels(source, "2025-08-22T11:00", bin_usd=1.0)
    with pytest.raises(InputError, match="cannot parse --at"):
        build_levels(source, "noon", bin_usd=1.0)


def test_levels_png_draws_each_bin_at_its_amount(store_dir: Path) -> None:
    """The PNG's bars (one collection per side and panel) stand on each non-empty bin at its
    centre, as tall as the bin's tokens (top panel) and USD (bottom panel); the axes start
    at 0."""
    from matplotlib.collections import PolyCollection

    from liqmap.heatmap.render_png import levels_figure

    levels = build_levels(StoreSource(str(store_dir), "SOL"), None, bin_usd=1.0)
    fig = levels_figure(levels)
    drawn = {}
    for ax in fig.axes:
        for coll in ax.collections:
            if isinstance(coll, PolyCollection) and "liquidated here" in str(coll.get_label()):
                assert ax.get_ylim()[0] == 0
                drawn.setdefault(str(coll.get_label()), []).append(
                    [(float(v[:, 0].min() + v[:, 0].max()) / 2, float(v[:, 1].max())) for v in
                     (path.vertices for path in coll.get_paths())])
    centres = (levels.y_edges_usd[:-1] + levels.y_edges_usd[1:]) / 2
    for side, name in ((levels.long, "Longs"), (levels.short, "Shorts")):
        expected = [[(centres[i], amounts[i]) for i in np.flatnonzero(amounts)]
                    for amounts in (side.tokens, side.usd)]
        got = drawn[f"{name} liquidated here"]
        assert [len(panel) for panel in got] == [len(panel) for panel in expected]
        assert all(len(panel) >= 1 for panel in expected)
        np.testing.assert_allclose(np.concatenate(got), np.concatenate(expected), rtol=1e-12)


def test_levels_cli_png_and_html(store_dir: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["levels", "--data-dir", str(store_dir), "--at",
                              "2025-08-22T14:00:30+02:00", "--bin", "0.5"], capsys)
    assert code == 0, err
    png = tmp_path / "levels_SOL_20250822T1200.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(out.strip().splitlines()) == 1
    assert "levels at 2025-08-22 12:00 UTC (asked 2025-08-22 12:00)" in out
    assert "longs 1: 1.0 SOL (170 USD)" in out and "shorts 1: 2.0 SOL (380 USD)" in out
    code, out, err = run_cli(["levels", "--data-dir", str(store_dir), "--pmin", "160",
                              "--pmax", "200", "--out", "lv.html"], capsys)
    assert code == 0, err
    page = (tmp_path / "lv.html").read_text()
    assert "<script src=" not in page and "Plotly.newPlot" in page
    figure = json.loads(re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{",
                                  page, re.S).group(1))
    names = [trace.get("name") for trace in figure]
    assert names.count("Longs") == 2 and names.count("Shorts") == 2  # tokens and USD panels
    assert "Longs: cumulative from price" in names


@pytest.mark.parametrize(("extra", "message"), [
    (["--at", "noon"], "cannot parse --at"),
    (["--at", "2025-08-21T00:00"], "pick --at inside it"),
    (["--bin", "0"], "'--bin': '0' is out of range; give a number of USD > 0"),
    (["--pmin", "190", "--pmax", "180"], "must be below --pmax"),
    (["--out", "lv.svg"], "ending in .png, .html or .htm"),
    (["--market", "XRP"], "unknown market"),
])
def test_levels_bad_input(store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch, extra: list[str],
                          message: str) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run_cli(["levels", "--data-dir", str(store_dir), *extra], capsys)
    assert code != 0 and message in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before
