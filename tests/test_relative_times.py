"""Relative times (`-6h`, `-90min`, `-2d`): that long BEFORE the newest snapshot of the data
read, in one place (`liqmap.timeutil`), for every command and the API."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap import open_store
from liqmap.backtest.api import load_inputs
from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.heatmap.build import HeatmapRequest, build_heatmap, build_levels
from liqmap.heatmap.sources import LegacyCsvSource, StoreSource
from liqmap.matrix import LiqMatrix, load_npz
from liqmap.serve.params import AT, START, ApiError
from liqmap.timeutil import parse_time, parse_window, relative_offset

from test_heatmap_helpers import run_cli, write_legacy_csv, write_store

NEWEST = pd.Timestamp("2025-08-22T12:05", tz="UTC")
# 12:00..12:05 with 12:02 and 12:03 missing
SNAPSHOTS = {f"2025-08-22T12:0{m}": (180.0 + m, [("long", 170.0 + m, 1.0), ("short", 190.0, 2.0)])
             for m in (0, 1, 4, 5)}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    write_store(root, SNAPSHOTS)
    return root


@pytest.mark.parametrize(("text", "minutes"), [
    ("-6h", 360), ("-90min", 90), ("-90m", 90), ("-2d", 2880), ("-1w", 10080), ("-1.5h", 90),
    (" -0h ", 0)])
def test_relative_forms(text: str, minutes: int) -> None:
    assert relative_offset(text) == pd.Timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["6h", "+6h", "-6", "-6 hours", "2025-08-22", "-6y", ""])
def test_not_relative(text: str) -> None:
    assert relative_offset(text) is None


def test_the_sign_minus_6h_is_six_hours_before_the_newest_snapshot() -> None:
    ts = parse_time("-6h", what="--t-start", anchor=NEWEST)
    assert ts == NEWEST - pd.Timedelta(hours=6) and ts < NEWEST
    assert parse_time("-90min", anchor=lambda: NEWEST) == pd.Timestamp("2025-08-22T10:35Z")


def test_no_snapshot_to_count_from_is_one_line_naming_the_fix() -> None:
    with pytest.raises(InputError) as err:
        parse_time("-6h", what="--t-start", anchor=lambda: None)
    message = str(err.value)
    assert "\n" not in message and message.startswith("--t-start -6h counts back from")
    assert "--data-dir" in message and "ISO 8601" in message
    with pytest.raises(InputError, match=r"cannot parse --t-start .noonish.*such as -6h"):
        parse_time("noonish", what="--t-start")
    for bare in ("6h", "+6h"):  # pandas alone reads "6h" as 06:00 today
        with pytest.raises(InputError, match=f"--t-start '{re.escape(bare)}' is ambiguous; .* -6h"):
            parse_time(bare, what="--t-start")


def test_heatmap_window_counts_back_from_the_newest_snapshot(store_dir: Path) -> None:
    heatmap = build_heatmap(StoreSource(str(store_dir), "SOL"),
                            HeatmapRequest(t_start="-4min", t_end="-1min", bin_usd=1.0))
    assert (heatmap.t_start, heatmap.t_end) == (NEWEST - pd.Timedelta(minutes=4),
                                                NEWEST - pd.Timedelta(minutes=1))
    only_start = open_store(str(store_dir)).heatmap("SOL", start="-1min", bin=1.0)
    assert pd.Timestamp(int(only_start.t_edges_ns[0]), tz="UTC") == NEWEST - pd.Timedelta("1min")
    assert only_start.n_columns == 2


def test_levels_at_counts_back(store_dir: Path) -> None:
    source = StoreSource(str(store_dir), "SOL")
    assert build_levels(source, "-1min").ts == pd.Timestamp("2025-08-22T12:04Z")
    assert build_levels(source, "-2min").ts == pd.Timestamp("2025-08-22T12:01Z")  # 12:03 missing


def test_cli_heatmap_levels_status_export(store_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(store_dir)]
    npz = tmp_path / "m.npz"
    code, _, err = run_cli(["heatmap", *data, "--t-start", "-5min", "--t-end", "-1min",
                            "--bin", "1", "--npz-out", str(npz)], capsys)
    assert code == 0, err
    matrix = load_npz(npz)
    assert pd.Timestamp(int(matrix.t_edges_ns[0]), tz="UTC") == pd.Timestamp("2025-08-22T12:00Z")
    assert matrix.n_columns == 5
    code, out, err = run_cli(["levels", *data, "--at", "-1min", "--out",
                              str(tmp_path / "l.png")], capsys)
    assert code == 0 and "levels at 2025-08-22 12:04 UTC (asked -1min before the newest" in out
    code, out, err = run_cli(["status", *data, "--t-start", "-4min"], capsys)
    assert code == 0 and "2025-08-22T12:01Z .. 2025-08-22T12:05Z" in out, out + err
    code, out, err = run_cli(["export", *data, "--t-start", "-1min", "--out",
                              str(tmp_path / "x.csv")], capsys)
    assert code == 0 and "wrote 4 rows" in out, out + err  # 12:04 and 12:05, two each


def test_cli_relative_time_on_an_empty_store(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["heatmap", "--data-dir", str(tmp_path / "empty"), "--t-start",
                              "-6h", "--t-end", "-1h", "--out", str(tmp_path / "h.png")], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("Error: --t-start -6h counts back from the newest snapshot")
    assert not (tmp_path / "h.png").exists()


def test_folder_counts_back_from_the_logs_newest_minute(tmp_path: Path) -> None:
    write_legacy_csv(tmp_path / "old", [(170.0, 1.0, "2025-08-22 12:00:00"),
                                        (171.0, 2.0, "2025-08-22 12:03:00"),
                                        (172.0, 3.0, "2025-08-22 12:05:00")])
    heatmap = build_heatmap(LegacyCsvSource(tmp_path / "old"),
                            HeatmapRequest(t_start="-2min", bin_usd=1.0, pmin_usd=160,
                                           pmax_usd=180))
    assert heatmap.t_start == pd.Timestamp("2025-08-22T12:03Z")
    assert float(heatmap.matrix.z.sum()) == pytest.approx(5.0)


def _matrix(n_cols: int = 10) -> LiqMatrix:
    t0 = pd.Timestamp("2025-08-22T04:00Z").value
    return LiqMatrix(z=np.ones((3, n_cols)),
                     t_edges_ns=t0 + NS_PER_MINUTE * np.arange(n_cols + 1, dtype=np.int64),
                     y_edges_usd=np.array([99.0, 100, 101, 102]),
                     spot_usd=np.linspace(100.0, 101.0, n_cols), gap_mask=np.zeros(n_cols, bool))


def test_backtest_counts_back_from_the_matrix_last_column() -> None:
    inputs = load_inputs(_matrix(), t_start="-3min")
    first = pd.Timestamp(int(inputs.minutes.ts_ns[0]), tz="UTC")
    assert first == pd.Timestamp("2025-08-22T04:06Z")  # the last column is 04:09


def test_backtest_counts_back_from_the_store(store_dir: Path) -> None:
    inputs = load_inputs(str(store_dir), t_start="-1min", bin_usd=1.0)
    assert pd.Timestamp(int(inputs.minutes.ts_ns[0]), tz="UTC") == NEWEST - pd.Timedelta("1min")


def test_api_parameters_keep_a_relative_time_for_the_build() -> None:
    assert START.parse("-6h") == "-6h" and AT.parse(" -30min") == "-30min"
    with pytest.raises(ApiError, match=r"parameter start must be an ISO 8601 time .* -6h"):
        START.parse("-6 hours")
    with pytest.raises(ApiError, match="must lie between"):
        START.parse("-99999w")


def test_a_reversed_window_is_one_message_everywhere(store_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The start after the end: the same one line from the library, each command and the
    notebook API, whether the times are absolute or counted back."""
    message = "--t-start 2025-08-22T12:05Z is after --t-end 2025-08-22T12:01Z; swap them"
    with pytest.raises(InputError) as caught:
        parse_window("-0min", "-4min", anchor=NEWEST)
    assert str(caught.value) == message
    with pytest.raises(InputError) as caught:
        open_store(str(store_dir)).heatmap("SOL", start="2025-08-22T12:05",
                                          end="2025-08-22T12:01")
    assert str(caught.value) == message
    for command in (["heatmap", "--out", str(tmp_path / "h.png")], ["status"],
                    ["export", "--out", str(tmp_path / "x.csv")], ["backtest"]):
        code, _, err = run_cli([*command, "--data-dir", str(store_dir), "--t-start", "-0min",
                                "--t-end", "-4min"], capsys)
        assert code != 0 and err == f"Error: {message}\n", (command, err)


def test_output_times_are_utc_to_the_second() -> None:
    """One format for every machine-readable time (`C.ISO_SECONDS_UTC`), zones converted."""
    import doctest

    from liqmap import constants as C
    from liqmap import timeutil
    from liqmap.timeutil import iso_utc

    assert doctest.testmod(timeutil).failed == 0
    assert iso_utc("2025-08-22 04:37:59.9") == "2025-08-22T04:37:59Z"  # no zone: UTC, cut
    assert iso_utc(pd.Timestamp("2025-08-21 23:37", tz="America/New_York")) == \
        "2025-08-22T03:37:00Z"
    assert pd.Timestamp(iso_utc(0)) == pd.Timestamp(0, tz="UTC")
    assert pd.Timestamp.now(tz="UTC").strftime(C.ISO_SECONDS_UTC).endswith("Z")
