"""The real 72-hour SOL matrix (../shared): CSV rows from its cells come back cell for cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from liqmap.heatmap.render_png import color_scale
from liqmap.matrix import load_npz

from test_heatmap_helpers import run_cli


@pytest.fixture(scope="module")
def real(real_matrix_path: Path) -> dict[str, np.ndarray]:
    with np.load(real_matrix_path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def legacy_folder(real: dict[str, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The matrix's non-empty cells as old-tool CSV rows (bin centre as liq_price), plus a
    price CSV with its spot_grid."""
    folder = tmp_path_factory.mktemp("real")
    z, y_edges, t_edges = real["Z"], real["y_edges"], real["t_edges"]
    rows, cols = np.nonzero(z)
    centre = (y_edges[:-1] + y_edges[1:]) / 2
    t_bin = pa.array(t_edges[cols].astype("datetime64[ns]")).cast(pa.timestamp("s", tz="UTC"))
    table = pa.table({"liq_price": centre[rows], "size_sol": z[rows, cols],
                      "t_bin": pa.compute.strftime(t_bin, format="%Y-%m-%dT%H:%M:%SZ")})
    pacsv.write_csv(table, folder / "sol_positions_log.csv",
                    pacsv.WriteOptions(quoting_style="none"))
    prices = pd.DataFrame({"timestamp": pd.to_datetime(real["spot_index"], utc=True),
                           "price": real["spot_grid"]})
    prices.to_csv(folder / "sol_price.csv", index=False)
    return folder


def test_cells_come_back_identical(real: dict[str, np.ndarray], legacy_folder: Path,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t_edges = real["t_edges"]
    start = pd.Timestamp(int(t_edges[0]), tz="UTC").isoformat()
    end = pd.Timestamp(int(t_edges[-2]), tz="UTC").isoformat()
    out, npz = tmp_path / "real.png", tmp_path / "real.npz"
    code, summary, err = run_cli(
        ["heatmap", "--folder", str(legacy_folder), "--price-csv",
         str(legacy_folder / "sol_price.csv"), "--bin", "0.1", "--pmin", "170", "--pmax", "220",
         "--t-start", start, "--t-end", end, "--log-color", "--out", str(out),
         "--npz-out", str(npz)], capsys)
    assert code == 0, err
    m = load_npz(npz)
    np.testing.assert_array_equal(m.z, real["Z"])
    np.testing.assert_array_equal(m.y_edges_usd, real["y_edges"])
    np.testing.assert_array_equal(m.t_edges_ns, t_edges)
    np.testing.assert_array_equal(m.spot_usd, real["spot_grid"])
    original_gaps = ~(real["Z"] != 0).any(axis=0)
    assert original_gaps.sum() == 312
    np.testing.assert_array_equal(m.gap_mask, original_gaps)
    assert "4,095 columns × 500 bins (1 min, 0.1 USD)" in summary
    assert "gaps 312 of 4,095 columns" in summary and "0 outside 170–220 USD" in summary
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_colour_range_reads_the_bands(real: dict[str, np.ndarray]) -> None:
    """Defaults span the bulk of the non-empty cells, so bands stand out on a log scale."""
    gaps = ~(real["Z"] != 0).any(axis=0)
    scale = color_scale(real["Z"], gaps, log_color=True)
    cells = real["Z"][real["Z"] > 0]
    inside = ((cells >= scale.vmin) & (cells <= scale.vmax)).mean()
    assert 0.9 < inside < 1.0 and scale.vmin > 0


def test_html_page_of_the_real_matrix(legacy_folder: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "real.html"
    code, _, err = run_cli(
        ["heatmap", "--folder", str(legacy_folder), "--bin", "0.1", "--pmin", "170", "--pmax",
         "220", "--t-start", "2025-08-22T04:37", "--t-end", "2025-08-25T00:51", "--log-color",
         "--out", str(page)], capsys)
    assert code == 0, err
    text = page.read_text()
    assert "page shows 3-column means" in text  # 4,095 minutes shown as 1,365 columns
    assert page.stat().st_size < 20_000_000
