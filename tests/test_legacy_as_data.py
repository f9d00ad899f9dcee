"""Imported legacy rows are data: heatmap, status and backtest use them (--source)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from liqmap.cli import cli
from liqmap.errors import InputError
from liqmap.heatmap import build_matrix_from_store
from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.sources import LegacyCsvSource, StoreSource
from liqmap.store import Store
from liqmap.store.legacy import import_legacy_csv
from liqmap.store.status import market_status
from test_legacy import write_log

from factories import minutes, snapshot

WINDOW = dict(t_start="2025-08-22T23:00", t_end="2025-08-23T00:29", bin_usd=1.0,
              pmin_usd=140.0, pmax_usd=230.0)


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 legacy minutes 23:00-00:29; collected snapshots at 00:00-00:09 (overlapping)."""
    root = tmp_path_factory.mktemp("mixed")
    write_log(root / "log.csv")
    store = Store(str(root))
    import_legacy_csv(store, root / "log.csv")
    for i, ts in enumerate(minutes("2025-08-23T00:00:00", 10)):
        store.write_snapshot("SOL", *snapshot(ts, 6, seed=i))
    return root


def _matrix(root: Path, source: str, **kw: object) -> object:
    request = HeatmapRequest(**{**WINDOW, **kw})  # type: ignore[arg-type]
    return build_heatmap(StoreSource(str(root), "SOL", source), request)


def test_legacy_only_store_draws_like_the_csv(tmp_path: Path) -> None:
    write_log(tmp_path / "sol_positions_log.csv")
    import_legacy_csv(Store(str(tmp_path / "store")), tmp_path / "sol_positions_log.csv")
    tmp_path = tmp_path / "store"
    stored = _matrix(tmp_path, "auto").matrix  # type: ignore[attr-defined]
    csv = build_heatmap(LegacyCsvSource(tmp_path.parent),
                        HeatmapRequest(**WINDOW)).matrix  # type: ignore[arg-type]
    np.testing.assert_allclose(stored.z, csv.z, rtol=1e-12)  # rows stored in another order
    assert not stored.gap_mask.any()


def test_auto_uses_legacy_rows_only_where_nothing_was_collected(mixed_store: Path) -> None:
    auto = _matrix(mixed_store, "auto").matrix  # type: ignore[attr-defined]
    legacy = _matrix(mixed_store, "legacy").matrix  # type: ignore[attr-defined]
    collected = _matrix(mixed_store, "collected").matrix  # type: ignore[attr-defined]
    assert not auto.gap_mask.any() and not legacy.gap_mask.any()
    assert collected.gap_mask[:60].all() and not collected.gap_mask[60:70].any()
    np.testing.assert_array_equal(auto.z[:, :60], legacy.z[:, :60])
    np.testing.assert_array_equal(auto.z[:, 60:70], collected.z[:, 60:70])
    np.testing.assert_array_equal(auto.z[:, 70:], legacy.z[:, 70:])
    assert not np.array_equal(auto.z[:, 60:70], legacy.z[:, 60:70])
    # the library entry point the backtest and notebooks use takes the same choice
    lib = build_matrix_from_store(str(mixed_store), "SOL", WINDOW["t_start"], WINDOW["t_end"],
                                  1.0, pmin=140.0, pmax=230.0, source="legacy")
    np.testing.assert_array_equal(lib.z, legacy.z)


def test_a_side_needs_collected_rows(mixed_store: Path) -> None:
    longs = _matrix(mixed_store, "auto", side="long").matrix  # type: ignore[attr-defined]
    assert longs.gap_mask[:60].all()  # legacy minutes have no side: not drawn
    with pytest.raises(InputError, match="side"):
        _matrix(mixed_store, "legacy", side="long")


def test_status_counts_legacy_minutes(mixed_store: Path) -> None:
    start, end = pd.Timestamp("2025-08-22T23:00Z"), pd.Timestamp("2025-08-23T00:29Z")
    auto = market_status(Store(str(mixed_store)), "SOL", start, end)
    assert (auto.present, auto.legacy, auto.missing) == (90, 80, 0)
    collected = market_status(Store(str(mixed_store)), "SOL", start, end, source="collected")
    assert (collected.present, collected.legacy) == (10, 0)


def test_cli_heatmap_status_backtest_accept_source(mixed_store: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "legacy.npz"
    result = runner.invoke(cli, ["heatmap", "--data-dir", str(mixed_store), "--source", "legacy",
                                 "--t-start", "2025-08-22T23:00", "--t-end", "2025-08-23T00:29",
                                 "--bin", "1", "--pmin", "140", "--pmax", "230",
                                 "--npz-out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["status", "--data-dir", str(mixed_store), "--market", "SOL",
                                 "--t-start", "2025-08-22T23:00", "--t-end",
                                 "2025-08-23T00:29"])
    assert result.exit_code == 0, result.output
    assert "90/90" in result.output and "80 from legacy rows" in result.output
    log = tmp_path / "desk.csv"
    times = pd.date_range("2025-08-22T23:00Z", periods=90, freq="min")
    pd.DataFrame({"timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "price": 180 + np.sin(np.arange(90) / 9), "position": 1000.0,
                  "current_ratio": 0.5, "target_ratio": 0.5}).to_csv(log, index=False)
    for source, minutes_used in (("legacy", 90), ("auto", 90), ("collected", 10)):
        result = runner.invoke(cli, ["backtest", "--data-dir", str(mixed_store), "--source",
                                     source, "--t-start", "2025-08-22T23:00", "--t-end",
                                     "2025-08-23T00:29", "--bin", "1", "--hedge-log", str(log),
                                     "--no-plots", "--out-dir", str(tmp_path / source)])
        assert result.exit_code == 0, result.output
        rows = pd.read_csv(tmp_path / source / "minutes.csv")
        assert int((~rows["gap"].astype(bool)).sum()) == minutes_used, source
