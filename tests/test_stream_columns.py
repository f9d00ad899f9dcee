"""The market_state mode columns: stores written before them still read, status shows them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

from liqmap.store import Store
from liqmap.store.status import COLLECTION_COLUMNS, format_status, market_status

from factories import minutes, snapshot


def test_old_files_without_the_mode_columns_still_read_and_compact(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    times = minutes("2026-11-20T10:00", 3)
    for i, ts in enumerate(times):
        positions, state = snapshot(ts, n=4 + i)
        if i == 2:
            state = state.set_column(state.schema.get_field_index("mode"), "mode",
                                     [["stream"]])
            for col, value in (("rpc_bytes", 12_000), ("stream_updates", 9),
                               ("missed_updates", 2)):
                state = state.set_column(state.schema.get_field_index(col), col, [[value]])
            state = state.set_column(state.schema.get_field_index("book_age_ms"),
                                     "book_age_ms", [[85.0]])
        assert store.write_snapshot("SOL", positions, state)
    files = sorted(tmp_path.rglob("market_state/**/*.parquet"))
    assert len(files) == 3
    for path in files[:2]:  # written by an older liqmap: no mode columns at all
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(COLLECTION_COLUMNS), path)
        assert "mode" not in pq.read_schema(path).names
    state = store.read_market_state("SOL").to_pandas()
    assert state["mode"].isna().tolist() == [True, True, False]
    assert state["missed_updates"].fillna(0).tolist() == [0, 0, 2]
    status = market_status(store, "SOL", times[0], times[-1])
    assert status.collection is not None and status.collection.modes == {"unknown": 2,
                                                                         "stream": 1}
    text = format_status(status)
    assert "collection: mode stream 1, unknown 2" in text and "missed_updates 2" in text
    assert "rpc_bytes 12,000" in text and "book_age_ms 85" in text
    glob = str(tmp_path / "market_state" / "**" / "*.parquet")
    assert duckdb.sql(f"select count(*) from read_parquet('{glob}', union_by_name=true)"
                      ).fetchall() == [(3,)]
    assert pl.read_parquet(files[2]).height == 1
    store.compact(now=times[-1] + pd.Timedelta(days=3), grace_s=0)
    assert store.read_market_state("SOL").to_pandas()["mode"].isna().sum() == 2



def test_side_totals_do_not_depend_on_the_order_of_the_positions() -> None:
    """Poll mode lists positions in the node's order, stream mode in key order: the stored
    totals must be identical (a plain float sum differs in the last bits)."""
    from datetime import UTC, datetime

    import numpy as np
    import pyarrow as pa

    from liqmap import constants as C
    from liqmap.collect.cycle import FetchedMarket, _state_row
    from liqmap.jupiter.accounts import Custody
    from liqmap.jupiter.decode import ClockSysvar, OraclePrice, decode_positions
    from liqmap.jupiter.encode import encode_custody

    sol = C.CUSTODY_BY_ASSET["SOL"]
    fetched = FetchedMarket("SOL", {sol: encode_custody(Custody(decimals=9))}, 1,
                            decode_positions([], []), 1)
    sizes = np.array([0.1, 0.2, 0.3] * 50)
    totals = set()
    for order in (sizes, sizes[::-1], np.random.default_rng(1).permutation(sizes)):
        positions = pa.table({"side": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(order), np.int8)), pa.array(["long", "short"])),
            "size_usd": order})
        row = _state_row(fetched, datetime(2026, 1, 1, tzinfo=UTC), sol,
                         ClockSysvar(slot=1, unix_timestamp=0),
                         OraclePrice(price_usd6=1, publish_time=0), None, {sol: 0}, positions)
        totals.add(row.column("long_size_usd")[0].as_py())
    assert totals == {30.0}
