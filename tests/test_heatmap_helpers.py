"""Builders shared by the heatmap and levels tests: real stores and legacy CSVs in tmp_path.

No tests here; `test_heatmap_*.py` and `test_levels*.py` import these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from liqmap import constants as C
from liqmap.cli import main
from liqmap.store import Store
from liqmap.store import schema as S

from factories import positions_table, state_table

#: One position: (side "long"/"short", liquidation price USD, size in tokens).
Position = tuple[str, float, float]


def snapshot_tables(ts: pd.Timestamp, price_usd: float,
                    positions: Sequence[Position]) -> tuple[pa.Table, pa.Table]:
    """(positions, market_state) tables of one snapshot: the shared factories' tables with the
    side, liquidation price and size of `positions`."""
    table = positions_table(ts, len(positions), price_usd=price_usd)
    columns = {
        "side": pa.array([p[0] for p in positions], pa.string()).dictionary_encode().cast(S.SIDE),
        "liq_price": pa.array([p[1] for p in positions], pa.float64()),
        "size_tokens": pa.array([p[2] for p in positions], pa.float64()),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table, state_table(ts, len(positions), price_usd=price_usd)


def write_store(root: Path, snapshots: dict[str, tuple[float, Sequence[Position]]],
                market: str = "SOL") -> Store:
    """A store at `root` holding one snapshot per entry: UTC minute (naive ISO) -> (price,
    positions)."""
    store = Store(str(root))
    for when, (price, positions) in snapshots.items():
        ts = pd.Timestamp(when, tz="UTC")
        assert store.write_snapshot(market, *snapshot_tables(ts, price, positions))
    return store


def write_legacy_csv(folder: Path, rows: Sequence[tuple[float, float, str]]) -> Path:
    """The old tool's log `folder/sol_positions_log.csv` with rows (liq_price, size_sol, t_bin)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / C.LEGACY_CSV_NAME
    frame = pd.DataFrame(rows, columns=["liq_price", "size_sol", "t_bin"])
    frame.to_csv(path, index=False)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`liqmap <args>` in-process: (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
