"""The DuckDB SQL shipped with the store (`positions.sql`): per-minute rows from any engine."""

from __future__ import annotations

from pathlib import Path

#: The file: macros `liqmap_positions(root, market)` and `liqmap_version_rows(root, market)`.
SQL_PATH = Path(__file__).with_name("positions.sql")


def positions_sql() -> str:
    """The text of `positions.sql`, to run once in a DuckDB connection."""
    return SQL_PATH.read_text(encoding="utf-8")
