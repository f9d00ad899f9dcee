"""Query parameters of API v1: one table drives both validation and the OpenAPI description.

Validation is pure and cheap: a request with any bad parameter is answered 400 with one line
naming the parameter and what it accepts, before anything is read or computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from liqmap import constants as C
from liqmap.errors import InputError
from liqmap.heatmap.binning import AGGS, SIDES, UNITS
from liqmap.heatmap.defaults import margin_help
from liqmap.timeutil import parse_time, relative_offset

#: Largest accepted bin width (USD) and column width (minutes): beyond any market's range.
MAX_BIN_USD = 1_000_000.0
MAX_FREQ_MIN = 525_600
MAX_PRICE_USD = 1e9
#: Oldest and newest accepted time (the store cannot hold anything outside).
TIME_MIN = pd.Timestamp("2000-01-01", tz="UTC")
TIME_MAX = pd.Timestamp("2200-01-01", tz="UTC")


class ApiError(Exception):
    """An answer other than 200: HTTP status and a one-line message naming problem and fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Param:
    """One query parameter: kind is "choice", "time", "float" or "int"."""

    name: str
    kind: str
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    default: Any = None

    def schema(self) -> dict[str, Any]:
        """The OpenAPI schema of this parameter."""
        if self.kind == "choice":
            out: dict[str, Any] = {"type": "string", "enum": list(self.choices)}
        elif self.kind == "time":
            out = {"type": "string", "examples": ["2026-11-23T12:00Z", "-6h", "-90min"]}
        else:
            out = {"type": "number" if self.kind == "float" else "integer"}
            if self.low is not None:
                out["minimum"] = self.low
            if self.high is not None:
                out["maximum"] = self.high
        if self.default is not None:
            out["default"] = self.default
        return out

    def parse(self, raw: str) -> Any:
        """The value of `raw`, or ApiError(400) naming this parameter."""
        if self.kind == "choice":
            value = raw.upper() if self.name == "market" else raw.lower()
            if value not in self.choices:
                raise self.error(f"must be one of {', '.join(self.choices)}")
            return value
        if self.kind == "time":
            return _parse_time(self, raw)
        return _parse_number(self, raw)

    def error(self, what: str) -> ApiError:
        return ApiError(400, f"parameter {self.name} {what}")


def _parse_time(param: Param, raw: str) -> pd.Timestamp | str:
    """A UTC time, or a relative time (`-6h`) kept as text: it counts back from the newest
    snapshot, read when the answer is built (answers are cached per newest snapshot)."""
    offset = relative_offset(raw)
    if offset is not None:
        if offset > TIME_MAX - TIME_MIN:
            raise param.error(f"must lie between {TIME_MIN:%Y} and {TIME_MAX:%Y}")
        return raw.strip()
    try:
        ts = parse_time(raw, what=param.name)
    except (InputError, OverflowError, ValueError) as exc:
        raise param.error("must be an ISO 8601 time such as 2026-11-23T12:00Z, or a time "
                          "before the newest snapshot such as -6h") from exc
    if not TIME_MIN <= ts <= TIME_MAX:
        raise param.error(f"must lie between {TIME_MIN:%Y} and {TIME_MAX:%Y}")
    return ts


def _parse_number(param: Param, raw: str) -> float | int:
    try:
        value: float | int = int(raw, 10) if param.kind == "int" else float(raw)
    except ValueError as exc:
        kind = "a whole number" if param.kind == "int" else "a number"
        raise param.error(f"must be {kind}") from exc
    if not math.isfinite(value):
        raise param.error("must be finite")
    if param.low is not None and value < param.low:
        raise param.error(f"must be >= {param.low:g}")
    if param.high is not None and value > param.high:
        raise param.error(f"must be <= {param.high:g}")
    return value


MARKET = Param("market", "choice", "Market (traded asset).", C.MARKETS, default="SOL")
START = Param("start", "time", "First minute included, ISO 8601 (UTC unless an offset is "
              "given), or a time before the newest snapshot (-6h, -90min, -2d). Default: 24 h "
              "before `end`.")
END = Param("end", "time", "Last minute included, ISO 8601, or a time before the newest "
            "snapshot (-2h). Default: the newest snapshot.")
BIN = Param("bin", "float", "Price bin width in USD (default: per market, from the price). "
            "Coarsened when the range would exceed the bin limit.", low=1e-6, high=MAX_BIN_USD)
FREQ = Param("freq", "int", "Minutes per time column (default 1). Coarsened when the window "
             "would exceed the column limit.", low=1, high=MAX_FREQ_MIN)
SIDE = Param("side", "choice", "Positions counted; split adds z_long and z_short.", SIDES,
             default="both")
UNIT = Param("unit", "choice", "Amount unit: tokens of the asset, or USD (size × liquidation "
             "price).", UNITS, default="tokens")
AGG = Param("agg", "choice", "How snapshots inside a coarser column combine.", AGGS,
            default="mean")
PMIN = Param("pmin", "float", "Lowest price in USD ("
             + margin_help("below the window's lowest price") + ").", low=0, high=MAX_PRICE_USD)
PMAX = Param("pmax", "float", "Highest price in USD ("
             + margin_help("above the window's highest price") + ").", low=0, high=MAX_PRICE_USD)
AT = Param("at", "time", "Moment shown: the newest snapshot at or before it (default: the "
           "newest).")
FORMAT = Param("format", "choice", "Answer format, instead of the Accept header: json, arrow "
               "(Arrow IPC stream) or f32 (the page's compact binary).", ("json", "arrow", "f32"))

MARKETS_FILTER = Param("market", "choice", "Only this market's events (default: all).",
                       C.MARKETS)

HEATMAP_PARAMS = (MARKET, START, END, BIN, FREQ, SIDE, UNIT, AGG, PMIN, PMAX, FORMAT)
LEVELS_PARAMS = (MARKET, AT, BIN, PMIN, PMAX)
STREAM_PARAMS = (MARKETS_FILTER,)
LIQUIDATIONS_PARAMS = (MARKET, START, END)
SIGNAL_PARAMS = (MARKET,)


def parse_query(query: Mapping[str, str], params: tuple[Param, ...],
                multi: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Validated values of `params` from `query` (absent: the default); unknown or repeated
    names are errors too, so a typo never silently falls back to a default."""
    known = {p.name: p for p in params}
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0][:40]!r}; this route takes "
                            f"{', '.join(known)}")
    for name, count in (multi or {}).items():
        if count > 1:
            raise ApiError(400, f"parameter {name} given {count} times; give it once")
    values = {p.name: p.default for p in params}
    for name, raw in query.items():
        values[name] = known[name].parse(raw)
    return values
