"""The notebook API: from a store to DataFrames, heatmap matrices, levels and status.

    import liqmap
    store = liqmap.open_store("./data")
    m = store.heatmap("SOL", "2026-11-23T12:00", "2026-11-23T18:00", bin=0.25)
    m.to_frame(); m.plot()

The `liqmap` commands that read a store (`heatmap`, `levels`, `status`, `export`) are thin
wrappers over these methods, so a command and a notebook give the same numbers, pictures and
one-line errors (`liqmap.LiqmapError` subclasses).

Times: ISO 8601 strings, datetimes or Timestamps; naive means UTC. `start` and `end` are the
first and last minute included; with neither, the last 24 hours of data (as the commands).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from liqmap import constants as C
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix, load_npz

if TYPE_CHECKING:
    import pyarrow as pa

    from liqmap.heatmap.build import TimeArg
    from liqmap.heatmap.levels import LiqLevels
    from liqmap.heatmap.sources import Source
    from liqmap.store.status import MarketStatus

__all__ = ["LegacyLog", "LiqStore", "StoreStatus", "open_legacy", "open_store", "read_npz"]


def open_store(path_or_uri: str | Path) -> LiqStore:
    """The liqmap store at `path_or_uri` (a directory, or a URI such as s3://bucket/liqmap or
    memory://x that pyarrow or fsspec opens), for reading.

    >>> store = liqmap.open_store("demo-out/store")          # doctest: +SKIP
    >>> store.heatmap("SOL").to_frame()                     # doctest: +SKIP
    """
    return LiqStore(str(path_or_uri))


def open_legacy(folder: str | Path, price_csv: str | Path | None = None) -> LegacyLog:
    """The old tool's log `folder/sol_positions_log.csv`, read without importing it; the
    optional `price_csv` (time and price columns) gives the price line."""
    return LegacyLog(Path(folder), None if price_csv is None else Path(price_csv))


def read_npz(path: str | Path, market: str | None = None) -> LiqMatrix:
    """A matrix saved by `LiqMatrix.save_npz`, `liqmap heatmap --npz-out` or the old tool.

    `market` overrides the market saved in the file (old files: "SOL").
    """
    return load_npz(path, market=None if market is None else _market(market))


def _market(market: str) -> str:
    """`market` upper-cased, or `InputError` naming the choices."""
    name = str(market).upper()
    if name not in C.MARKETS:
        raise InputError(f"unknown market {market!r}; choose one of {', '.join(C.MARKETS)}")
    return name


def _bin_usd(bin_usd: float | None) -> float | None:
    """The bin asked, or None: the market's default (`default_bin_usd`), chosen at the price."""
    return None if bin_usd is None else float(bin_usd)


class _HeatmapReader:
    """`heatmap` over a source of positions; subclasses say which source."""

    def _source(self, market: str, source: str = "auto") -> Source:
        raise NotImplementedError

    def heatmap(self, market: str = "SOL", start: TimeArg = None, end: TimeArg = None,
                bin: float | None = None, freq: int = 1, side: str = "both",
                unit: str = "tokens", *, agg: str = "mean", pmin: float | None = None,
                pmax: float | None = None, progress: bool | None = False,
                source: str = "auto") -> LiqMatrix:
        """The liquidation heatmap of `market` over [start, end] (`liqmap heatmap`).

        Args:
            market: "SOL", "ETH" or "BTC".
            start, end: first and last minute included; None: the market's default window
                (`default_window`, 24 h) up to the newest snapshot.
            bin: price bin width in USD (default: the market's, `default_bin_usd`: about
                0.05 % of the price on a 1-2-5 grid); bins are `[k*bin, (k+1)*bin)`.
            freq: minutes per time column; agg: "mean", "last" or "max" of the snapshots in it.
            side: "both", "long", "short" or "split" (long and short layers kept apart).
            unit: "tokens" (of the market's asset) or "usd" (size × liquidation price).
            pmin, pmax: price range in USD (default: the market's margin below and above the
                window's prices, `default_price_margin`: SOL 20 %, ETH 15 %, BTC 10 %).
            progress: a progress bar while reading (None: when stderr is a terminal).
            source: from a store, "auto" (collected snapshots, and rows imported with
                `liqmap import-legacy` at the minutes without one), "collected" or "legacy".

        Returns:
            A `LiqMatrix`: `.to_frame()`, `.plot()`, `.save_png(...)`, ... Minutes without a
            snapshot are gap columns (NaN in `to_frame`).
        """
        from liqmap.heatmap.build import HeatmapRequest, build_heatmap

        request = HeatmapRequest(t_start=start, t_end=end, bin_usd=_bin_usd(bin), pmin_usd=pmin,
                                 pmax_usd=pmax, freq_min=freq, agg=agg, unit=unit, side=side)
        request.validate()
        return build_heatmap(self._source(market, source), request, progress=progress).matrix


class LiqStore(_HeatmapReader):
    """A liqmap store opened for reading (`open_store`). Frames have a UTC DatetimeIndex `ts`
    and the stored column names, units in the names (see the README's schema)."""

    def __init__(self, root: str) -> None:
        from liqmap.store import Store  # pyarrow.dataset: not for `open_legacy`

        self.root = root
        self.store = Store(root)

    def __repr__(self) -> str:
        return f"<LiqStore {self.root}>"

    def _source(self, market: str, source: str = "auto") -> Source:
        from liqmap.heatmap.sources import StoreSource

        return StoreSource(self.root, _market(market), source)

    def markets(self) -> list[str]:
        """Markets with at least one snapshot stored."""
        return self.store.markets()

    # ------------------------------------------------------------------ rows as DataFrames
    def _window(self, market: str, start: TimeArg, end: TimeArg
                ) -> tuple[pd.Timestamp, pd.Timestamp]:
        from liqmap.heatmap.build import resolve_window
        from liqmap.heatmap.sources import through_minute

        first, last = resolve_window(start, end, self._source(market))
        return first, through_minute(last)

    def _frame(self, dataset: str, market: str, start: TimeArg, end: TimeArg,
               columns: Sequence[str] | None) -> pd.DataFrame:
        from liqmap.store import schema as S

        tcol = S.TIME_COLUMN[dataset]
        names = S.SCHEMAS[dataset].names
        wanted = None if columns is None else [tcol, *(c for c in columns if c != tcol)]
        unknown = [c for c in wanted or [] if c not in names]
        if unknown:
            raise InputError(f"no column(s) {', '.join(unknown)} in {dataset}; choose from "
                             f"{', '.join(names)}")
        lo, hi = self._window(market, start, end)
        table: pa.Table = self.store.read(dataset, _market(market), lo, hi, wanted)
        frame = table.to_pandas().set_index(tcol).sort_index(kind="stable")
        frame.attrs = {"market": _market(market), "dataset": dataset, "store": self.root}
        return frame

    def positions(self, market: str = "SOL", start: TimeArg = None, end: TimeArg = None,
                  columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every stored position of every snapshot in [start, end]: one row per position per
        snapshot, indexed by the snapshot's minute `ts` (UTC). Columns: the schema's
        (`liq_price`, `size_tokens`, `size_usd`, `side`, ...), or `columns`."""
        return self._frame("positions", market, start, end, columns)

    def market_state(self, market: str = "SOL", start: TimeArg = None, end: TimeArg = None,
                     columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per snapshot in [start, end] indexed by `ts` (UTC): oracle price, custody
        parameters, JLP delta, counts and costs (`oracle_price`, `jlp_net_delta_tokens`, ...)."""
        return self._frame("market_state", market, start, end, columns)

    def misses(self, market: str = "SOL", start: TimeArg = None,
               end: TimeArg = None) -> pd.DataFrame:
        """Minutes the collector recorded without a snapshot, indexed by `ts`: `slot`, `reason`."""
        return self._frame("misses", market, start, end, None)

    def liquidations(self, market: str = "SOL", start: TimeArg = None, end: TimeArg = None,
                     *, kind: str | None = None, confirmed: bool | None = None) -> pd.DataFrame:
        """Positions seen gone in [start, end], indexed by `ts` (UTC, the observation that saw
        each gone): `kind` "liquidated" or "closed", `confirmed` by an on-chain event, sizes
        and prices in USD (`size_usd`, `predicted_liq_price`, `event_price`, ...; README
        "Realized liquidations"). `kind` and `confirmed` filter the rows."""
        from liqmap.collect.liquidations import CLOSED, LIQUIDATED

        kinds = (LIQUIDATED, CLOSED)
        if kind is not None and kind not in kinds:
            raise InputError(f"kind must be one of {', '.join(kinds)}, got {kind!r}")
        lo, hi = self._window(market, start, end)
        frame = self.store.read_liquidations(_market(market), lo, hi, kind=kind,
                                             confirmed=confirmed).set_index("ts")
        frame.attrs = {"market": _market(market), "dataset": "liquidations", "store": self.root}
        return frame

    # ------------------------------------------------------------------ pictures and reports
    def levels(self, market: str = "SOL", at: TimeArg = None, bin: float | None = None,
               *, pmin: float | None = None, pmax: float | None = None) -> LiqLevels:
        """The liquidation map of the newest snapshot at or before `at` (None: the newest),
        as `liqmap levels`: longs liquidated below the price, shorts above, per `bin` USD.

        Returns `LiqLevels`: `.to_frame()`, `.plot()`, `.save_png(...)`, `.save_html(...)`.
        """
        from liqmap.heatmap.build import build_levels
        from liqmap.heatmap.sources import StoreSource

        source = StoreSource(self.root, _market(market))
        return build_levels(source, at, bin_usd=_bin_usd(bin), pmin_usd=pmin, pmax_usd=pmax)

    def status(self, market: str | Sequence[str] | None = None, start: TimeArg = None,
               end: TimeArg = None, interval_s: float | None = None, *,
               source: str = "auto") -> StoreStatus:
        """Snapshots present and missing (with the recorded reason), positions per snapshot and
        size, per market (default: every market stored), as `liqmap status` prints it.
        `interval_s`: expected seconds between snapshots (None: the collector's setting, as
        `liqmap status`: LIQMAP_INTERVAL, liqmap.toml, else 60). `source` "auto" also counts
        minutes holding only rows imported with import-legacy."""
        if interval_s is None:
            from liqmap.config import load_settings

            interval_s = load_settings().interval_s
        from liqmap.store.status import market_status

        if market is None:  # markets with a snapshot or a recorded miss
            markets = sorted(set(self.store.markets()) | set(self.store.markets("misses"))
                             | set(self.store.markets("legacy")))
        else:
            markets = [_market(m) for m in ([market] if isinstance(market, str) else market)]
        if not markets:
            raise InputError(f"no snapshots in {self.root}; run `liqmap collect` first "
                             "or pass --data-dir")
        windows = {m: self._times(m, start, end, source) for m in markets}
        return StoreStatus(self.root, [market_status(self.store, m, *windows[m], interval_s,
                                                     source=source)
                                       for m in markets], self.store.read_endpoint_report())

    def _times(self, market: str, start: TimeArg, end: TimeArg, source: str = "auto"
               ) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """`start`, `end` parsed; a relative time (`-6h`) counts back from `market`'s newest
        snapshot (of `source`: "auto", "collected" or "legacy")."""
        from liqmap.heatmap.sources import StoreSource, newest_time
        from liqmap.timeutil import parse_window

        return parse_window(
            start, end, anchor=lambda: newest_time(StoreSource(self.root, market, source)))

    def export_legacy_csv(self, path: str | Path, market: str = "SOL", start: TimeArg = None,
                          end: TimeArg = None, source: str = "positions") -> int:
        """Write `liq_price,size_sol,t_bin` rows for the old scripts (`liqmap export`): the
        collected positions, or with `source="legacy"` the rows imported from the old log.
        `path` "-" writes to stdout. Returns the rows written (`size_sol` = `size_tokens`)."""
        from liqmap.store.legacy import export_legacy_csv

        first, last = self._times(_market(market), start, end,
                                  "legacy" if source == "legacy" else "collected")
        return export_legacy_csv(self.store, str(path), _market(market), source=source,
                                 start=first, end=last)


class LegacyLog(_HeatmapReader):
    """The old tool's CSV log (`open_legacy`): `heatmap(...)` as `liqmap heatmap --folder`."""

    def __init__(self, folder: Path, price_csv: Path | None = None) -> None:
        self.folder = folder
        self.price_csv = price_csv

    def __repr__(self) -> str:
        return f"<LegacyLog {self.folder / C.LEGACY_CSV_NAME}>"

    def _source(self, market: str, source: str = "auto") -> Source:
        from liqmap.heatmap.sources import LegacyCsvSource

        return LegacyCsvSource(self.folder, self.price_csv, _market(market))


@dataclass(frozen=True)
class StoreStatus:
    """What `LiqStore.status` found: one `MarketStatus` per market. `str()` is the text
    `liqmap status` prints; `to_frame()` one row per market; `gaps()` one row per gap."""

    root: str
    markets: list[MarketStatus]
    #: the collector's per-RPC-endpoint counters as last saved in the store (None: none)
    endpoints: dict[str, object] | None = None

    def __str__(self) -> str:
        from liqmap.store.status import format_endpoints, format_status

        endpoints = format_endpoints(self.endpoints)
        return "\n".join([f"store {self.root}", *(format_status(s) for s in self.markets),
                          *([endpoints] if endpoints else [])])

    def __repr__(self) -> str:
        return str(self)

    def to_frame(self) -> pd.DataFrame:
        """Per market: window, snapshots expected/present/missing, gap ranges, positions per
        snapshot (min/median/max) and bytes per dataset."""
        rows = [{"market": s.market, "start": s.start, "end": s.end, "expected": s.expected,
                 "present": s.present, "missing": s.missing, "gap_ranges": len(s.gaps),
                 "positions_min": s.positions_min, "positions_median": s.positions_median,
                 "positions_max": s.positions_max, "damaged_files": len(s.damaged),
                 **{f"{k}_bytes": v for k, v in s.bytes_by_dataset.items()}}
                for s in self.markets]
        return pd.DataFrame(rows).set_index("market")

    def gaps(self) -> pd.DataFrame:
        """One row per run of missing minutes: market, first, last, minutes, reason."""
        rows = [{"market": s.market, "first": g.first, "last": g.last, "minutes": g.minutes,
                 "reason": g.reason} for s in self.markets for g in s.gaps]
        return pd.DataFrame(rows, columns=["market", "first", "last", "minutes", "reason"])
