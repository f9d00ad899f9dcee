"""Watching the store for new snapshots: a cheap directory listing per market each poll, and
the newest snapshot read only when that listing changed."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from liqmap import constants as C
from liqmap.errors import LiqmapError
from liqmap.heatmap.sources import to_minutes
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.timeutil import iso_utc


@dataclass(frozen=True)
class MarketView:
    """What the server knows of one market's data.

    `first`/`last`: oldest and newest committed snapshot (None: none yet); `price_usd`: oracle
    price of the newest; `changed_at`: wall time (unix s) this server saw a new snapshot arrive
    (None: nothing arrived since it started).
    """

    market: str
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    price_usd: float = math.nan
    changed_at: float | None = None

    def age_s(self, now: float) -> float | None:
        """Seconds from the newest snapshot's minute to `now` (None without data)."""
        return None if self.last is None else now - self.last.timestamp()

    def stale(self, now: float, stale_after_s: float) -> bool:
        """True when the newest snapshot is old and none arrived for `stale_after_s` either (a
        simulated clock may run ahead of or behind the wall clock; arrivals still count)."""
        if self.last is None:
            return True
        arrived = self.changed_at is not None and now - self.changed_at <= stale_after_s
        age = self.age_s(now)
        return not arrived and (age is None or age > stale_after_s)

    def as_json(self, now: float, stale_after_s: float) -> dict[str, object]:
        age = self.age_s(now)
        return {
            "market": self.market,
            "first": _iso(self.first), "last": _iso(self.last),
            "price_usd": None if math.isnan(self.price_usd) else self.price_usd,
            "age_s": None if age is None else round(age, 1),
            "since_arrival_s": (None if self.changed_at is None
                                else round(now - self.changed_at, 1)),
            "stale": self.stale(now, stale_after_s),
        }

    def event(self) -> dict[str, object]:
        """The server-sent event announcing this market's newest snapshot."""
        return {"market": self.market, "ts": _iso(self.last),
                "price_usd": None if math.isnan(self.price_usd) else self.price_usd}


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else iso_utc(ts)


class StoreWatcher:
    """Tracks the newest committed snapshot of each market of a store (call `poll` often)."""

    def __init__(self, store: Store, markets: tuple[str, ...] = C.MARKETS) -> None:
        self.store = store
        self.views = {m: MarketView(m) for m in markets}
        self._fingerprints: dict[str, tuple[object, ...]] = {}

    def poll(self, now: float | None = None) -> list[MarketView]:
        """Re-read the markets whose listing changed; returns those with a new newest snapshot.

        The first poll fills the views without reporting them as arrivals.
        """
        now = time.time() if now is None else now
        changed = []
        for market, view in self.views.items():
            fingerprint = self._fingerprint(market)
            first_poll = market not in self._fingerprints
            if self._fingerprints.get(market) == fingerprint:
                continue
            fresh = self._read(view)
            if fresh is None:  # a file being compacted: read again on the next poll
                continue
            self._fingerprints[market] = fingerprint
            if fresh.last != view.last:
                if not first_poll:
                    fresh = replace(fresh, changed_at=now)
                    changed.append(fresh)
                self.views[market] = fresh
        return changed

    def _fingerprint(self, market: str) -> tuple[object, ...]:
        """The first and last day directory of the market and the names, sizes and times of
        the files in the last one (one listing each; a rewritten file changes it too)."""
        days = sorted(self.store.fs.listdir(L.market_dir("market_state", market)))
        if not days:
            return ()
        newest = f"{L.market_dir('market_state', market)}/{days[-1]}"
        infos = self.store.fs.fs.get_file_info(
            pafs.FileSelector(self.store.fs.path(newest), allow_not_found=True))
        return (days[0], days[-1], *sorted((i.base_name, i.size, i.mtime_ns) for i in infos))

    def _read(self, view: MarketView) -> MarketView | None:
        try:
            bounds = self.store.time_bounds(view.market)
            if bounds is None:
                return MarketView(view.market, changed_at=view.changed_at)
            state = self.store.read_market_state(view.market, bounds[1], bounds[1],
                                                 ["ts", "oracle_price"])
        except LiqmapError:
            return None
        price = math.nan
        if state.num_rows:
            newest = int(np.argmax(to_minutes(state.column("ts"))))
            price = float(state.column("oracle_price")[newest].as_py() or math.nan)
        return MarketView(view.market, bounds[0], bounds[1], price, view.changed_at)
