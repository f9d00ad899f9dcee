"""The simulator's ground truth: every position it liquidated and every full close its traders
made, per simulated minute, as a CSV (what detection and `liqmap score` are checked against).

Columns: `minute`, `chain_time` (ISO, the minute's chain time), `ts` (the collector's snapshot
minute that first sees it), `market`, `pubkey`, `kind` (`liquidated` | `closed`),
`price_usd` (the oracle price of the minute), `liq_price_usd` (for a liquidation, the exact
liquidation price that was crossed), `size_usd`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.sim.market import MarketSim, MinuteReport

COLUMNS = ("minute", "chain_time", "ts", "market", "pubkey", "kind", "price_usd",
           "liq_price_usd", "size_usd")


def truth_rows(sim: MarketSim, report: MinuteReport,
               interval_s: int = 60) -> list[dict[str, object]]:
    """Rows of one simulated minute (liquidations, then full closes)."""
    when = pd.Timestamp(report.chain_time_s, unit="s", tz="UTC")
    ts = when.floor(f"{interval_s}s")
    base = {"minute": report.minute, "chain_time": when.isoformat(), "ts": ts.isoformat()}
    rows: list[dict[str, object]] = []
    for liq in report.liquidations:
        custody = sim.custody(liq.market)
        exact = perps.liquidation_prices(liq.record, custody,
                                         np.array([liq.cum_now], np.uint64)).liq_price_usd6[0]
        rows.append({**base, "market": liq.market, "pubkey": liq.pubkey, "kind": "liquidated",
                     "price_usd": liq.price_usd6 / C.USD_PRECISION,
                     "liq_price_usd": int(exact) / C.USD_PRECISION,
                     "size_usd": int(liq.record["size_usd"][0]) / C.USD_PRECISION})
    for market, pubkey in report.closes:
        rows.append({**base, "market": market, "pubkey": pubkey, "kind": "closed",
                     "price_usd": report.prices_usd6[market] / C.USD_PRECISION,
                     "liq_price_usd": None, "size_usd": None})
    return rows


class TruthLog:
    """Appends ground-truth rows to a CSV file (header written on creation)."""

    def __init__(self, path: str | Path, sim: MarketSim) -> None:
        self.path = Path(path)
        self.sim = sim
        with self.path.open("w", newline="") as fh:
            csv.DictWriter(fh, COLUMNS).writeheader()

    def add(self, report: MinuteReport) -> None:
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, COLUMNS).writerows(truth_rows(self.sim, report))


def read_truth(path: str | Path) -> pd.DataFrame:
    """The ground-truth CSV as a DataFrame (`ts` as UTC timestamps)."""
    df = pd.read_csv(path)
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df
