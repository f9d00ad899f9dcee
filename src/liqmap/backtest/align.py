"""Put the matrix and the hedge side on one timeline: the minutes both know, matched by time."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix

MIN_MINUTES = 2


@dataclass(frozen=True)
class Coverage:
    """How the inputs overlapped (reported in summary.json).

    Attributes:
        matrix_range, hedge_range: "first .. last" minute (UTC) of each input in the window.
        n_used: minutes on the timeline; n_gap: of those, matrix gap minutes.
        n_hedge_outside_matrix: hedge-log minutes with no matrix column.
        n_matrix_without_hedge: matrix minutes with no hedge-log row.
        n_without_price: matrix gap minutes dropped because the matrix has no price for them
            (only without a hedge log).
    """

    matrix_range: str
    hedge_range: str
    n_used: int
    n_gap: int
    n_hedge_outside_matrix: int = 0
    n_matrix_without_hedge: int = 0
    n_without_price: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MinuteInputs:
    """The backtest's timeline, all arrays [n] in time order.

    Sign convention (the one place it is stated; README "Backtest"): the holder is long an
    exposure E > 0 tokens and hedges it with a **short**. `position_tokens` is the hedge as
    held, negative for a short: position = −current_ratio × E. Direction +1 of the boost adds
    to the short, −1 takes from it.

    Attributes:
        ts_ns: int64, minute start, ns since epoch UTC.
        column: int64, matrix column of the minute.
        price_usd: float64, USD.
        position_tokens: float64, the hedge held, tokens, negative = short.
        current_ratio, target_ratio: float64, shares of E hedged (1 = fully).
        gap: bool, the matrix has no snapshot for the minute.
        position_as_logged: float64, the hedge-log position as written (the old script's
            `--legacy-formulas` read it so); None without a hedge log.
        carry_apr: float64, carrying cost of the short in force at each minute (fraction per
            year, paid by the short), or None to use the parameter set's constant.
    """

    ts_ns: np.ndarray
    column: np.ndarray
    price_usd: np.ndarray
    position_tokens: np.ndarray
    current_ratio: np.ndarray
    target_ratio: np.ndarray
    gap: np.ndarray
    coverage: Coverage
    position_as_logged: np.ndarray | None = None
    carry_apr: np.ndarray | None = None

    @property
    def exposure_tokens(self) -> np.ndarray:
        """E = −position / current_ratio, tokens (positive: the long being hedged)."""
        return -self.position_tokens / self.current_ratio

    @property
    def n(self) -> int:
        return int(self.ts_ns.shape[0])

    def timestamps(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self.ts_ns, unit="ns", utc=True))


def align_hedge_log(matrix: LiqMatrix, log: pd.DataFrame, *, t_start: pd.Timestamp | None = None,
                    t_end: pd.Timestamp | None = None) -> MinuteInputs:
    """Match hedge-log rows (from `read_hedge_log`) to matrix columns by time, never by row.

    Only minutes in both (and in [t_start, t_end]) are kept.

    Raises:
        InputError: the overlap is empty or shorter than two minutes (names both ranges).
    """
    edges = matrix.t_edges_ns
    in_window_cols = _in_window(edges[:-1], t_start, t_end)
    ts = _ns(log["ts"])
    in_window = _in_window(ts, t_start, t_end)
    on_matrix = (ts >= edges[0]) & (ts < edges[-1])
    column = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, matrix.n_columns - 1)
    used = in_window & on_matrix & in_window_cols[column]
    matrix_range = _range(edges[:-1][in_window_cols])
    hedge_range = _range(ts[in_window])
    if used.sum() < MIN_MINUTES:
        raise InputError(f"the hedge log ({hedge_range}) and the matrix ({matrix_range}) share "
                         f"{int(used.sum())} minute(s); pass a hedge log and matrix (or "
                         "--t-start/--t-end) covering the same minutes")
    col = column[used]
    coverage = Coverage(
        matrix_range=matrix_range, hedge_range=hedge_range, n_used=int(used.sum()),
        n_gap=int(matrix.gap_mask[col].sum()),
        n_hedge_outside_matrix=int((in_window & ~on_matrix).sum()),
        n_matrix_without_hedge=int(in_window_cols.sum() - np.unique(col).size))
    return MinuteInputs(
        ts_ns=ts[used], column=col, price_usd=_floats(log, "price_usd", used),
        position_tokens=_floats(log, "position_tokens", used),
        position_as_logged=_floats(log, "position_as_logged", used)
        if "position_as_logged" in log else None,
        current_ratio=_floats(log, "current_ratio", used),
        target_ratio=_floats(log, "target_ratio", used),
        gap=matrix.gap_mask[col].copy(), coverage=coverage)


def hedge_from_matrix(matrix: LiqMatrix, *, target_ratio: float,
                      exposure_tokens: float | pd.Series,
                      t_start: pd.Timestamp | None = None,
                      t_end: pd.Timestamp | None = None) -> MinuteInputs:
    """Timeline without a hedge log: the matrix's price, current ratio = target ratio.

    Args:
        target_ratio: hedge ratio held all along (not 0).
        exposure_tokens: E, the long hedged, tokens: a number, or a Series of it indexed by
            UTC time (e.g. a JLP holding's share of the pool's net delta), taken as of each
            minute (last value at or before). The hedge held is −target_ratio × E (a short).

    Raises:
        InputError: zero ratio, a missing price on a minute with data, no exposure yet at the
            first minute, or fewer than two minutes in the window.
    """
    if target_ratio == 0:
        raise InputError("--target is 0, so the hedge exposure is undefined; pass a non-zero "
                         "target ratio such as 1.0")
    labels = matrix.t_edges_ns[:-1]
    cols = np.flatnonzero(_in_window(labels, t_start, t_end))
    no_price = np.isnan(matrix.spot_usd[cols])
    bad = no_price & ~matrix.gap_mask[cols]
    if bad.any():
        raise InputError(f"the matrix has no price at {_minute(labels[cols[bad][0]])} "
                         f"({int(bad.sum())} minutes with data lack one); pass --hedge-log with "
                         "prices")
    cols = cols[~no_price]
    if cols.size < MIN_MINUTES:
        raise InputError(f"the matrix ({_range(labels)}) has {cols.size} priced minute(s) in "
                         "the window; widen --t-start/--t-end")
    ts = labels[cols]
    k = _exposure_at(exposure_tokens, ts)
    ratio = np.full(cols.size, float(target_ratio))
    coverage = Coverage(matrix_range=_range(ts), hedge_range="none (constant target)",
                        n_used=int(cols.size), n_gap=int(matrix.gap_mask[cols].sum()),
                        n_without_price=int(no_price.sum()))
    return MinuteInputs(ts_ns=ts, column=cols.astype(np.int64),
                        price_usd=matrix.spot_usd[cols].astype(np.float64),
                        position_tokens=-k * ratio, current_ratio=ratio, target_ratio=ratio.copy(),
                        gap=matrix.gap_mask[cols].copy(), coverage=coverage)


def _exposure_at(exposure: float | pd.Series, ts_ns: np.ndarray) -> np.ndarray:
    if not isinstance(exposure, pd.Series):
        return np.full(ts_ns.shape[0], float(exposure))
    return as_of(exposure, ts_ns, what="stored exposure", fix="start later with --t-start or "
                 "pass --exposure")


def as_of(series: pd.Series, ts_ns: np.ndarray, *, what: str, fix: str) -> np.ndarray:
    """Values of `series` (indexed by UTC time) as of each of `ts_ns`: the last at or before.

    Raises:
        InputError: the first minute comes before the series' first value.
    """
    series = series.dropna().sort_index()
    known = _ns(pd.Series(series.index))
    idx = np.searchsorted(known, ts_ns, side="right") - 1
    if idx.size and idx[0] < 0:
        first = _minute(known[0]) if known.size else "never"
        raise InputError(f"no {what} at or before {_minute(ts_ns[0])} (first: {first}); {fix}")
    return series.to_numpy(dtype=np.float64)[idx]


def _ns(times: pd.Series) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(times).as_unit("ns").asi8, dtype=np.int64)


def _in_window(ts_ns: np.ndarray, t_start: pd.Timestamp | None,
               t_end: pd.Timestamp | None) -> np.ndarray:
    mask = np.ones(ts_ns.shape[0], dtype=bool)
    if t_start is not None:
        mask &= ts_ns >= pd.Timestamp(t_start).as_unit("ns").value
    if t_end is not None:
        mask &= ts_ns <= pd.Timestamp(t_end).as_unit("ns").value
    return mask


def _floats(log: pd.DataFrame, column: str, used: np.ndarray) -> np.ndarray:
    return log[column].to_numpy(dtype=np.float64)[used]


def _minute(ts_ns: int | np.integer) -> str:
    return f"{pd.Timestamp(int(ts_ns), tz='UTC'):%Y-%m-%d %H:%M} UTC"


def _range(ts_ns: np.ndarray) -> str:
    if ts_ns.size == 0:
        return "empty"
    return f"{_minute(ts_ns.min())} .. {_minute(ts_ns.max())}"
