"""A simulated market written as today's per-minute rows, priced by the collector's formula.

Rows are built exactly as `collect.cycle._positions_table` builds them (integer accounts,
`perps.liquidation_prices`, the same float divisions), so converting them to versions and
expanding them again must give every bit back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.jupiter.accounts import Custody
from liqmap.store import Store
from liqmap.store import schema as S

OTHER_CUSTODY = "Other1111111111111111111111111111111111111"
_DTYPE = np.dtype([("size_usd", "u8"), ("price", "u8"), ("collateral_usd", "u8"),
                   ("cumulative_interest_snapshot", "u8"), ("side", "u1"),
                   ("open_time", "i8"), ("update_time", "i8")])


@dataclass
class MarketSim:
    """Open positions of one market evolving minute by minute (all integers as on chain)."""

    market: str = "SOL"
    n_positions: int = 40
    churn: float = 0.05  # share of positions changed per minute
    price_usd: float = 150.0
    rate_per_min: int = 300_000  # RATE-9 counter growth a minute (fast, so prices move bins)
    other_share: float = 0.05  # positions with a collateral custody market_state lacks
    seed: int = 0
    params: tuple[int, int, int] = (6, 1_250_000_000_000, 5_000_000)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.next_id = 0
        self.cum = np.array([1_000_000_000, 2_000_000_000, 3_000_000_000, 500_000_000], "u8")
        self.rec = np.zeros(0, _DTYPE)
        self.keys: list[str] = []
        self.custody: list[int] = []
        self._open(self.n_positions, 0)

    def _open(self, n: int, t_s: int) -> None:
        rng = self.rng
        new = np.zeros(n, _DTYPE)
        side = np.where(rng.random(n) < 0.7, C.SIDE_LONG, C.SIDE_SHORT)
        size = rng.integers(10, 200_000, n) * 1_000_000 + rng.integers(0, 1_000_000, n)
        entry = (self.price_usd * rng.uniform(0.9, 1.1, n) * 1e6).astype(np.int64)
        lev = rng.choice([1.5, 3.0, 10.0, 50.0, 200.0], n)
        custody = np.where(side == C.SIDE_LONG, 0, rng.integers(1, 3, n))
        custody = np.where(rng.random(n) < self.other_share, 3, custody)
        new["size_usd"], new["price"] = size, entry
        new["collateral_usd"] = (size / lev).astype(np.int64)
        new["cumulative_interest_snapshot"] = self.cum[custody] - rng.integers(0, 10**7, n)
        new["side"], new["open_time"], new["update_time"] = side, t_s, t_s
        self.rec = np.concatenate([self.rec, new])
        self.custody += custody.tolist()
        self.keys += [f"K{self.seed}x{self.next_id + i:07d}" for i in range(n)]
        self.next_id += n

    def step(self, t_s: int) -> None:
        """One minute: interest accrues; some positions change, close, or open."""
        self.cum += np.array([self.rate_per_min, self.rate_per_min // 3, self.rate_per_min // 2,
                              self.rate_per_min], "u8")
        n_change = self.rng.binomial(len(self.rec), self.churn)
        picks = self.rng.choice(len(self.rec), n_change, replace=False)
        closing = picks[: n_change // 3]
        changing = picks[n_change // 3:]
        r = self.rec
        r["collateral_usd"][changing] += self.rng.integers(1, 10**8, changing.size).astype("u8")
        r["update_time"][changing] = t_s
        keep = np.ones(len(r), bool)
        keep[closing] = False
        self.rec = r[keep]
        self.keys = [k for k, ok in zip(self.keys, keep, strict=True) if ok]
        self.custody = [c for c, ok in zip(self.custody, keep, strict=True) if ok]
        self._open(closing.size, t_s)

    def rows(self, ts: pd.Timestamp, slot: int) -> pa.Table:
        """The positions rows the collector would store now (same operations as the cycle)."""
        custody = Custody(decrease_position_bps=self.params[0],
                          trade_impact_fee_scalar=self.params[1],
                          max_leverage_bps=self.params[2])
        cum = self.cum[np.asarray(self.custody, np.int64)]
        liq = perps.liquidation_prices(self.rec, custody, cum)
        rec, n, usd = self.rec, len(self.rec), float(C.USD_PRECISION)
        names = [C.CUSTODY_BY_ASSET[self.market], C.CUSTODY_BY_ASSET["USDC"],
                 C.CUSTODY_BY_ASSET["USDT"], OTHER_CUSTODY]
        ts_us = int(ts.value // 1000)
        table = pa.table({
            "ts": pa.array(np.full(n, ts_us, np.int64)).cast(S.TS),
            "slot": pa.array(np.full(n, slot, np.uint64)),
            "pubkey": pa.array(self.keys, pa.string()),
            "owner": pa.array([k.replace("K", "O") for k in self.keys], pa.string()),
            "side": pa.DictionaryArray.from_arrays(
                pa.array(rec["side"].astype(np.int8) - 1, pa.int8()),
                pa.array(["long", "short"])),
            "entry_price": rec["price"] / usd, "size_usd": rec["size_usd"] / usd,
            "collateral_usd": rec["collateral_usd"] / usd, "size_tokens": liq.size_tokens,
            "borrow_fee_usd": liq.borrow_fee_usd6 / usd, "close_fee_usd": liq.close_fee_usd6 / usd,
            "liq_price": liq.liq_price_usd6 / usd, "leverage": liq.leverage,
            "collateral_custody": pa.array([names[c] for c in self.custody], pa.string()),
            "cumulative_interest_snapshot": rec["cumulative_interest_snapshot"],
            "open_time": pa.array(rec["open_time"] * 1_000_000).cast(S.TS),
            "update_time": pa.array(rec["update_time"] * 1_000_000).cast(S.TS),
        }, schema=S.POSITIONS)
        return table.sort_by(S.SORT_KEYS["positions"])

    def state(self, ts: pd.Timestamp, slot: int, n: int) -> pa.Table:
        row = {f.name: None for f in S.MARKET_STATE}
        row.update(ts=ts, slot=slot, positions_slot=slot, chain_time=ts,
                   oracle_price=self.price_usd, n_positions=n,
                   decrease_position_bps=self.params[0], trade_impact_fee_scalar=self.params[1],
                   max_leverage_bps=self.params[2], cumulative_interest_rate_now=int(self.cum[0]),
                   usdc_cumulative_interest_rate_now=int(self.cum[1]),
                   usdt_cumulative_interest_rate_now=int(self.cum[2]))
        return pa.Table.from_pylist([row], schema=S.MARKET_STATE)


def write_market(store: Store, sim: MarketSim, start: str, n_minutes: int, *,
                 skip: frozenset[int] = frozenset(), bulk: bool = True,
                 param_change_at: int | None = None) -> list[pd.Timestamp]:
    """Simulate `n_minutes` from `start` into `store` (day files via write_bulk when `bulk`,
    else one snapshot at a time); minutes in `skip` have no snapshot. Returns stored minutes."""
    first = pd.Timestamp(start, tz="UTC")
    positions, states, stored = [], [], []
    for i in range(n_minutes):
        ts = first + pd.Timedelta(minutes=i)
        if i:
            sim.step(int(ts.timestamp()))
        if param_change_at is not None and i == param_change_at:
            sim.params = (sim.params[0] + 1, sim.params[1] // 2, sim.params[2])
        if i in skip:
            continue
        rows = sim.rows(ts, 1000 + i)
        state = sim.state(ts, 1000 + i, rows.num_rows)
        if bulk:
            positions.append(rows)
            states.append(state)
        else:
            assert store.write_snapshot(sim.market, rows, state)
        stored.append(ts)
    if bulk and positions:
        store.write_bulk("positions", sim.market, pa.concat_tables(positions))
        store.write_bulk("market_state", sim.market, pa.concat_tables(states))
    return stored
