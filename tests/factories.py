"""Builders of schema-conforming snapshot tables for store tests (no RPC involved)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap.store import schema as S


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
    row = {f.name: None for f in S.MARKET_STATE}
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
