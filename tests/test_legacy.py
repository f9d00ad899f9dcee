"""The old CSV log: streaming import with line-numbered bad rows, crash safety, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from liqmap.cli import cli
from liqmap.errors import InputError
from liqmap.store import Store
from liqmap.store.legacy import ImportReport, _stage, export_legacy_csv, import_legacy_csv

from factories import minutes, snapshot


def write_log(path: Path, n_minutes: int = 90, per_minute: int = 20, *,
              start: str = "2025-08-22T23:00:00") -> pd.DataFrame:
    """An old-style log: rows of each snapshot appended minute after minute."""
    rng = np.random.default_rng(3)
    frames = []
    for ts in minutes(start, n_minutes):
        frames.append(pd.DataFrame({
            "liq_price": np.round(rng.uniform(150, 220, per_minute), 6),
            "size_sol": np.round(rng.lognormal(3, 1, per_minute), 4),
            "t_bin": ts.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    frame = pd.concat(frames, ignore_index=True)
    frame.to_csv(path, index=False)
    return frame


def _stored(store: Store) -> pd.DataFrame:
    frame = store.read_legacy("SOL").to_pandas()
    frame["t_bin"] = frame["t_bin"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return frame.sort_values(["t_bin", "liq_price"]).reset_index(drop=True)


def test_import_streams_in_blocks_and_is_idempotent(tmp_path: Path) -> None:
    original = write_log(tmp_path / "log.csv")
    store = Store(str(tmp_path / "store"))
    report = import_legacy_csv(store, tmp_path / "log.csv", chunk_bytes=4096)  # ~40 blocks
    assert (report.rows_read, report.rows_stored, report.rows_bad) == (1800, 1800, 0)
    assert report.days == ["2025-08-22", "2025-08-23"]
    expected = original.sort_values(["t_bin", "liq_price"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(_stored(store), expected[["t_bin", "liq_price", "size_sol"]],
                                  check_like=True)
    again = import_legacy_csv(store, tmp_path / "log.csv")
    assert again.rows_stored == 0 and again.rows_already_stored == 1800
    assert store.read_legacy("SOL").num_rows == 1800


def test_bad_rows_are_counted_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write_log(path, n_minutes=3, per_minute=4)
    lines = path.read_text().splitlines()
    lines[2] = "abc,1.5,2025-08-22T23:00:00Z"  # line 3
    lines[5] = "170.1,2"  # line 6: a field missing
    lines.insert(7, "")  # a blank line is harmless
    lines[9] = "171,2,yesterday"  # line 10
    lines.append("nan,1,2025-08-22T23:02:00Z")  # last line
    path.write_text("\n".join(lines) + "\n")
    store = Store(str(tmp_path / "store"))
    report = import_legacy_csv(store, path, chunk_bytes=64)  # many tiny blocks, some dirty
    assert report.rows_bad == 4 and report.rows_stored == 12 - 3
    numbers = [n for n, _ in report.bad_lines]
    assert numbers == [3, 6, 10, len(lines)]
    assert "liq_price 'abc'" in report.bad_lines[0][1]
    assert "expected 3 fields, got 2" in report.bad_lines[1][1]
    assert "line 3:" in report.summary()


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("liq_price,size\n1,2\n")
    with pytest.raises(InputError, match=r"lacks column.*size_sol, t_bin"):
        import_legacy_csv(Store(str(tmp_path / "store")), path)
    assert not (tmp_path / "store" / "legacy").exists()


def test_an_interrupted_import_stores_nothing_or_everything(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    write_log(path, n_minutes=30)
    store = Store(str(tmp_path / "store"))
    # killed while staging: no commit marker, so nothing is applied and the staging goes
    _stage(store, path, "_staging/dead", ImportReport(str(path)), None, 1 << 20)
    assert store.recover() >= 1 and store.read_legacy("SOL").num_rows == 0
    assert not store.fs.listdir("_staging")
    # killed after the commit marker: the next start finishes the import
    _stage(store, path, "_staging/done", ImportReport(str(path)), None, 1 << 20)
    store.fs.write_bytes("_staging/done/COMMIT", json.dumps({"market": "SOL"}).encode())
    store.recover()
    assert store.read_legacy("SOL").num_rows == 600 and not store.fs.listdir("_staging")


def test_export_round_trips_the_old_format(tmp_path: Path) -> None:
    original = write_log(tmp_path / "log.csv", n_minutes=5)
    store = Store(str(tmp_path / "store"))
    import_legacy_csv(store, tmp_path / "log.csv")
    out = tmp_path / "back.csv"
    rows = export_legacy_csv(store, str(out), source="legacy")
    back = pd.read_csv(out)
    assert rows == 100 and list(back.columns) == ["liq_price", "size_sol", "t_bin"]
    key = ["t_bin", "liq_price"]
    pd.testing.assert_frame_equal(back.sort_values(key).reset_index(drop=True),
                                  original.sort_values(key).reset_index(drop=True))


def test_export_of_collected_positions(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for i, ts in enumerate(minutes("2025-08-22T10:00:00", 3)):
        store.write_snapshot("SOL", *snapshot(ts, 4, seed=i))
    out = tmp_path / "sol_positions_log.csv"
    export_legacy_csv(store, str(out), start=pd.Timestamp("2025-08-22T10:01:00Z"))
    back = pd.read_csv(out)
    expected = store.read_positions("SOL", "2025-08-22T10:01:00Z").to_pandas()
    assert len(back) == 8 and set(back["t_bin"]) == {"2025-08-22T10:01:00Z", "2025-08-22T10:02:00Z"}
    assert np.allclose(np.sort(back["size_sol"]), np.sort(expected["size_tokens"]))


def test_cli_import_and_export(tmp_path: Path) -> None:
    write_log(tmp_path / "log.csv", n_minutes=4)
    runner = CliRunner()
    store = str(tmp_path / "store")
    result = runner.invoke(cli, ["import-legacy", str(tmp_path / "log.csv"), "--data-dir", store])
    assert result.exit_code == 0, result.output
    assert "imported 80 of 80 rows" in result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(cli, ["export", "--format", "legacy-csv", "--source", "legacy",
                                 "--data-dir", store, "--out", str(out)])
    assert result.exit_code == 0 and "wrote 80 rows" in result.output
    assert out.read_text().startswith("liq_price,size_sol,t_bin\n")
