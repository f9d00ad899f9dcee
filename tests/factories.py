"""Builders of schema-conforming snapshot tables for store tests (no RPC involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.store import schema as S

SOL_CUSTODY = C.CUSTODY_BY_ASSET["SOL"]
PARAMS = perps.FeeParams(decrease_position_bps=6, trade_impact_fee_scalar=1_250_000_000_000,
                         max_leverage_bps=5_000_000)


def positions_table(ts: pd.Timestamp, n: int, *, seed: int = 0, price_usd: float = 150.0,
                    slot: int = 1) -> pa.Table:
    """n plausible positions at snapshot `ts`."""
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, n).astype(np.int8)
    leverage = rng.uniform(2, 50, n)
    entry = price_usd * rng.uniform(0.95, 1.05, n)
    liq = np.where(side == 0, entry * (1 - 1 / leverage), entry * (1 + 1 / leverage))
    size_usd = np.round(rng.lognormal(8, 1.5, n), 6)
    return pa.table({
        "ts": pa.array([ts] * n, S.TS),
        "slot": pa.array(np.full(n, slot, np.uint64)),
        "pubkey": [f"pos{seed}-{i}" for i in range(n)],
        "owner": [f"owner{i}" for i in range(n)],
        "side": pa.DictionaryArray.from_arrays(pa.array(side), pa.array(["long", "short"])),
        "entry_price": entry, "size_usd": size_usd, "collateral_usd": size_usd / leverage,
        "size_tokens": size_usd / entry, "borrow_fee_usd": np.zeros(n),
        "close_fee_usd": size_usd * 7e-4, "liq_price": liq, "leverage": leverage,
        "collateral_custody": ["c"] * n,
        "cumulative_interest_snapshot": pa.array(np.zeros(n, np.uint64)),
        "open_time": pa.array([ts] * n, S.TS), "update_time": pa.array([ts] * n, S.TS),
    }, schema=S.POSITIONS)


def state_table(ts: pd.Timestamp, n_positions: int, *, price_usd: float = 150.0,
                slot: int = 1) -> pa.Table:
    """The market_state row of a snapshot (fields not under test are null)."""
    row: dict[str, object] = {f.name: None for f in S.MARKET_STATE}
    row.update(ts=ts, slot=slot, positions_slot=slot, chain_time=ts, oracle_price=price_usd,
               n_positions=n_positions, jlp_net_delta_tokens=3_500_000.0)
    return pa.Table.from_pylist([row], schema=S.MARKET_STATE)


def snapshot(ts: pd.Timestamp | str, n: int = 5, *, seed: int = 0, price_usd: float = 150.0
             ) -> tuple[pa.Table, pa.Table]:
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return (positions_table(ts, n, seed=seed, price_usd=price_usd),
            state_table(ts, n, price_usd=price_usd))


def minutes(start: str, count: int, step_s: int = 60) -> list[pd.Timestamp]:
    first = pd.Timestamp(start, tz="UTC")
    return [first + pd.Timedelta(seconds=step_s * i) for i in range(count)]


def priced_positions(ts: pd.Timestamp, rows: list[dict[str, object]]) -> pa.Table:
    """Positions priced exactly like the collector (USD-6 integers, `perps`)."""
    n = len(rows)
    size = np.array([r["size_usd6"] for r in rows], np.uint64)
    entry = np.array([r["entry_usd6"] for r in rows], np.uint64)
    coll = np.array([r["collateral_usd6"] for r in rows], np.uint64)
    snap = np.array([r.get("snapshot", 1_000_000) for r in rows], np.uint64)
    long = np.array([r["side"] == "long" for r in rows])
    cum = np.array([r.get("cum_then", 1_000_000) for r in rows], np.uint64)
    liq = perps.liquidation_columns(size, entry, coll, snap, long, cum, PARAMS)
    base = positions_table(ts, n)
    cols = {name: base.column(name) for name in base.column_names}
    cols.update({
        "pubkey": pa.array([str(r["pubkey"]) for r in rows]),
        "side": pa.array([str(r["side"]) for r in rows]).dictionary_encode(),
        "entry_price": entry / 1e6, "size_usd": size / 1e6, "collateral_usd": coll / 1e6,
        "size_tokens": size / entry, "liq_price": liq.liq_price_usd6 / 1e6,
        "collateral_custody": pa.array([SOL_CUSTODY] * n),
        "cumulative_interest_snapshot": pa.array(snap),
        "open_time": pa.array([r.get("open_time", ts) for r in rows], S.TS),
    })
    return pa.table(cols).cast(S.POSITIONS)
