"""A simulated Jupiter Perps market written into a local Solana node (surfnet).

Layers: `params` (every simulation constant), `prices` (pure: price paths, price files),
`traders` (pure: positions, orders, the liquidation check), `market` (pure: the whole market
minute by minute -> account bytes), `realism` (pure: heatmap statistics), `writer` (I/O:
accounts and clock into surfnet), `session` (`liqmap simulate` as a library call).
"""

from __future__ import annotations

from liqmap.sim.market import AccountWrite, Liquidation, MarketSim, MinuteReport, SimConfig
from liqmap.sim.prices import PriceGenerator, PriceSource, load_price_series
from liqmap.sim.session import run_simulation
from liqmap.sim.writer import ChainWriter, publish_initial, publish_minute, run_paced

__all__ = [
    "AccountWrite",
    "ChainWriter",
    "Liquidation",
    "MarketSim",
    "MinuteReport",
    "PriceGenerator",
    "PriceSource",
    "SimConfig",
    "load_price_series",
    "publish_initial",
    "publish_minute",
    "run_paced",
    "run_simulation",
]
