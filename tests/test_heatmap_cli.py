"""`liqmap heatmap` end to end: every option and every bad input, on real files in tmp_path."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.matrix import load_npz

from test_heatmap_helpers import run_cli as run
from test_heatmap_helpers import write_legacy_csv, write_store

ROWS = [  # (liq_price, size_sol, t_bin): 12:00..12:04, 12:02 missing
    (170.05, 1.0, "2025-08-22T12:00:00Z"), (185.0, 2.0, "2025-08-22T12:00:00Z"),
    (170.05, 3.0, "2025-08-22T12:01:00Z"), (199.95, 4.0, "2025-08-22T12:01:00Z"),
    (205.0, 9.0, "2025-08-22T12:03:00Z"), (171.0, 5.0, "2025-08-22T12:03:00Z"),
    (171.0, 6.0, "2025-08-22T12:04:00Z"),
]
SNAPSHOTS = {f"2025-08-22T12:0{m}": (180.0 + m, [("long", 170.05 + m, 1.0 + m),
                                                  ("short", 190.0 + m, 2.0)])
             for m in (0, 1, 3, 4)}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path with no liqmap.toml or LIQMAP_* variables around."""
    monkeypatch.chdir(tmp_path)
    for name in ("LIQMAP_CONFIG", "LIQMAP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_legacy_csv(tmp_path / "data-sol_snapshots", ROWS)
    return tmp_path / "data-sol_snapshots"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    write_store(tmp_path / "store", SNAPSHOTS)
    return tmp_path / "store"


def test_the_old_tools_command_line_works(folder: Path, tmp_path: Path) -> None:
    """The exact command of the issue, as a user types it (subprocess, real entry point)."""
    args = ["heatmap", "--folder", "data-sol_snapshots", "--bin", "0.1", "--pmin", "170",
            "--pmax", "200", "--t-start", "2025-08-22T12:00:00", "--t-end",
            "2025-08-22T15:00:00", "--out", "heatmap_0822_12_15.png", "--log-color",
            "--vmin", "100", "--vmax", "10000"]
    done = subprocess.run([sys.executable, "-m", "liqmap", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert "181 columns × 300 bins" in lines[0] and "heatmap_0822_12_15.png" in lines[0]
    assert "gaps 177 of 181 columns" in lines[0]  # 12:02 and 12:05-15:00 have no data
    assert png_size(tmp_path / "heatmap_0822_12_15.png") == (2100, 900)


def test_npz_has_the_old_keys_and_the_amounts(folder: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["heatmap", "--folder", str(folder), "--bin", "0.1", "--pmin", "170",
                          "--pmax", "200", "--t-start", "2025-08-22T12:00", "--t-end",
                          "2025-08-22T12:04", "--npz-out", "m.npz"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "m.npz") as data:
        assert {"Z", "t_edges", "y_edges", "spot_grid", "spot_index", "meta",
                "gap_mask"} <= set(data.files)
        z, gap = data["Z"], data["gap_mask"]
        assert data["t_edges"].dtype == np.int64 and data["t_edges"].size == 6
        # meta[0] is y_edges[1] - y_edges[0] (liqmap.matrix), 0.1 up to float noise
        np.testing.assert_allclose(data["meta"], [0.1, 1, 170, 200], rtol=1e-12)
        assert np.isnan(data["spot_grid"]).all()  # no --price-csv: no price line
    assert z.shape == (300, 5)
    np.testing.assert_array_equal(gap, [False, False, True, False, False])
    np.testing.assert_allclose(z.sum(axis=0), [3.0, 7.0, 0.0, 5.0, 6.0])
    assert z[0, 0] == 1.0 and z[299, 1] == 4.0
    assert "1 outside 170–200 USD" in out and "out m.npz" in out
    assert not list(tmp_path.glob("*.png"))  # only --npz-out given: no picture


@pytest.mark.parametrize("header", ["timestamp,price", "Time,Close", "open_time,close"])
def test_price_csv_draws_a_line(folder: Path, tmp_path: Path, header: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    times = (["2025-08-22T12:00:00Z", "2025-08-22T12:01:30", "2025-08-22T12:04:00+00:00"]
             if header != "open_time,close" else ["1755864000000", "1755864090000",
                                                   "1755864240000"])
    (tmp_path / "p.csv").write_text(header + "\n" + "\n".join(
        f"{t},{p}" for t, p in zip(times, (181.0, 182.0, 184.5), strict=True)) + "\n")
    code, _, err = run(["heatmap", "--folder", str(folder), "--price-csv", "p.csv",
                        "--t-start", "2025-08-22T12:00", "--t-end", "2025-08-22T12:04",
                        "--npz-out", "m.npz", "--out", "h.png"], capsys)
    assert code == 0, err
    spot = load_npz(tmp_path / "m.npz").spot_usd
    np.testing.assert_array_equal(spot[[0, 1, 4]], [181.0, 182.0, 184.5])
    assert np.isnan(spot[[2, 3]]).all()
    assert png_size(tmp_path / "h.png") == (2100, 900)


def test_store_options(store_dir: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["heatmap", "--data-dir", str(store_dir), "--market", "sol",
                          "--t-start", "2025-08-22T14:00+02:00", "--t-end",
                          "2025-08-22T12:05", "--bin", "0.5", "--pmin", "160", "--pmax", "200",
                          "--freq", "2", "--agg", "max", "--unit", "usd", "--side", "split",
                          "--log-color", "--out", "h.png", "--npz-out", "m.npz"], capsys)
    assert code == 0, err
    m = np.load(tmp_path / "m.npz")
    assert m["Z"].shape == (80, 3)  # 12:00-01, 12:02-03, 12:04-05
    np.testing.assert_array_equal(m["gap_mask"], [False, False, False])
    np.testing.assert_allclose(m["Z"], m["Z_long"] + m["Z_short"])
    # column 0 = 12:00 and 12:01; max over the two snapshots, cell by cell, in USD
    assert m["Z_short"][60, 0] == pytest.approx(2 * 190.0)
    assert m["Z_short"][62, 0] == pytest.approx(2 * 191.0)
    assert m["Z_long"][20, 0] == pytest.approx(1 * 170.05)
    assert m["Z_long"][22, 0] == pytest.approx(2 * 171.05)
    np.testing.assert_allclose(m["spot_grid"], [180.5, 183.0, 184.0])
    assert len(out.strip().splitlines()) == 1 and "h.png, m.npz" in out
    assert png_size(tmp_path / "h.png") == (2100, 900)


def test_default_window_store_and_default_output(store_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["heatmap", "--data-dir", str(store_dir)], capsys)
    assert code == 0, err
    expected = tmp_path / "heatmap_SOL_20250822T1200_20250822T1204.png"
    assert expected.exists() and str(expected.name) in out
    assert "5 columns × 768 bins (1 min, 0.1 USD)" in out  # 144 (180 × 0.8) .. 221 (184 × 1.2)


def test_configured_store_is_the_default(store_dir: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIQMAP_DATA_DIR", str(store_dir))
    code, out, err = run(["heatmap", "--npz-out", "m.npz"], capsys)
    assert code == 0, err
    assert "positions 8 rows in 4 snapshots" in out


def test_html_page_is_offline_and_interactive(store_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["heatmap", "--data-dir", str(store_dir), "--out", "h.html",
                        "--vmin", "0.5", "--vmax", "5"], capsys)
    assert code == 0, err
    page = (tmp_path / "h.html").read_text()
    assert "<script src=" not in page.replace('<script src="data:', "")  # nothing fetched
    assert "Plotly.newPlot" in page and "plotly.js v" in page
    assert "\\u2248" in page or "≈" in page  # the approximate other unit in the hover
    assert "Oracle price" in page and '"dtype":"f4"' in page
    assert (tmp_path / "h.html").stat().st_size < 6_000_000


BAD = [
    (["--market", "DOGE"], "unknown market"),
    (["--t-start", "2025-08-23T00:00", "--t-end", "2025-08-23T01:00"], "pick a window"),
    (["--pmin", "200", "--pmax", "170"], "--pmin (200) must be below --pmax"),
    (["--pmin", "170", "--pmax", "170"], "must be below --pmax"),
    (["--bin", "0"], "'--bin': '0' is out of range; give a number of USD > 0"),
    (["--bin", "-0.1"], "'--bin': '-0.1' is out of range"),
    (["--t-start", "yesterday-ish"], "cannot parse --t-start"),
    (["--t-start", "2025-08-22T12:04", "--t-end", "2025-08-22T12:00"], "swap them"),
    (["--bin", "0.0001", "--pmin", "1", "--pmax", "100000"], "coarser --bin"),
    (["--out", "h.jpg"], "ending in .png, .html or .htm"),
    (["--out", "nowhere/h.png"], "does not exist"),
    (["--npz-out", "m.txt"], "ending in .npz"),
    (["--log-color", "--vmin", "0"], "--log-color needs --vmin"),
    (["--vmin", "5", "--vmax", "1"], "must be below --vmax"),
    (["--price-csv", __file__], "drop --price-csv"),  # an existing file: the conflict is named
    (["--freq", "0"], "--freq"),
    (["--agg", "median"], "--agg"),
]


@pytest.mark.parametrize(("extra", "message"), BAD)
def test_bad_store_input(store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         extra: list[str], message: str) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(["heatmap", "--data-dir", str(store_dir), "--out", "h.png", *extra],
                         capsys)
    assert code != 0 and message in err
    assert "Traceback" not in err and out == ""
    error_lines = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


BAD_CSV = [
    ("liq_price,size\n170,1\n", "lacks column(s) size_sol, t_bin"),
    ("liq_price,size_sol,t_bin\n170,abc,2025-08-22T12:00:00Z\n",
     "line 2: size_sol 'abc' is not a positive number"),
    ("liq_price,size_sol,t_bin\n170,1,2025-08-22T12:00:00Z\n171,2\n",
     "line 3: expected 3 fields, got 2"),
    ("liq_price,size_sol,t_bin\n170,1,2025-08-22T12:00:00Z\n,2,2025-08-22T12:00:00Z\n",
     "line 3: liq_price '' is not a positive number"),
    ("liq_price,size_sol,t_bin\n170,1,2025-08-22T12:00:00Z\n170,1,not-a-time\n",
     "line 3: t_bin 'not-a-time' is not a UTC time"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CSV)
def test_bad_legacy_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                        message: str) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sol_positions_log.csv").write_text(content)
    code, _, err = run(["heatmap", "--folder", "old", "--pmin", "160", "--pmax", "200",
                        "--out", "h.png"], capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--side", "split"], "lacks; use --side both"),
    (["--market", "ETH"], "holds SOL positions"),
    (["--data-dir", "x"], "not both"),
    (["--price-csv", "missing.csv"], "'--price-csv': missing.csv does not exist"),
    (["--t-start", "2025-09-01T00:00"], "after the newest snapshot"),
])
def test_bad_legacy_options(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            extra: list[str], message: str) -> None:
    code, _, err = run(["heatmap", "--folder", str(folder), "--out", "h.png", *extra], capsys)
    assert code != 0 and message in err
    assert not (tmp_path / "h.png").exists()


def test_missing_legacy_file_and_bad_price_csv(tmp_path: Path, folder: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run(["heatmap", "--folder", "empty"], capsys)
    assert code == 1 and "no sol_positions_log.csv in empty" in err
    (tmp_path / "p.csv").write_text("when,value\n2025-08-22T12:00,abc\n")
    code, _, err = run(["heatmap", "--folder", str(folder), "--price-csv", "p.csv"], capsys)
    assert code == 1 and "needs a time column" in err
    (tmp_path / "p.csv").write_text("time,price\n2025-08-22T12:00,abc\n")
    code, _, err = run(["heatmap", "--folder", str(folder), "--price-csv", "p.csv"], capsys)
    assert code == 1 and "line 2: bad price 'abc'" in err


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["heatmap", "--help"], capsys)
    assert code == 0
    for option in ("--data-dir", "--market", "--folder", "--price-csv", "--t-start", "--t-end",
                   "--bin", "--pmin", "--pmax", "--freq", "--agg", "--unit", "--side",
                   "--log-color", "--vmin", "--vmax", "--out", "--npz-out", "Example"):
        assert option in out


def test_window_in_another_timezone(store_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["heatmap", "--data-dir", str(store_dir), "--t-start",
                          "2025-08-22T14:01:00+02:00", "--t-end", "2025-08-22T14:03:00+02:00",
                          "--npz-out", "m.npz"], capsys)
    assert code == 0, err
    t_edges = np.load(tmp_path / "m.npz")["t_edges"]
    assert pd.Timestamp(int(t_edges[0]), tz="UTC") == pd.Timestamp("2025-08-22T12:01Z")
    assert "12:01 → 12:03 UTC" in out


@pytest.mark.parametrize(("side", "agg", "expected"), [
    ("long", "last", [2.0, 4.0, 5.0]),  # 12:01 (2), 12:03 (4), 12:04 (5)
    ("short", "mean", [2.0, 2.0, 2.0]),
    ("both", "mean", [3.5, 6.0, 7.0]),  # (3 + 4) / 2, then 12:03 alone (12:02 is a gap)
])
def test_other_market_sides_and_aggregations(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             side: str, agg: str,
                                             expected: list[float]) -> None:
    write_store(tmp_path / "eth", SNAPSHOTS, market="ETH")
    code, out, err = run(["heatmap", "--data-dir", str(tmp_path / "eth"), "--market", "eth",
                          "--side", side, "--agg", agg, "--freq", "2", "--bin", "1",
                          "--pmin", "160", "--pmax", "200", "--npz-out", "m.npz"], capsys)
    assert code == 0, err
    assert out.startswith("ETH 2025-08-22 12:00 → 12:04 UTC")
    m = load_npz(tmp_path / "m.npz")
    np.testing.assert_allclose(m.z.sum(axis=0), expected)
    assert not m.gap_mask.any()
