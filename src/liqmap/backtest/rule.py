"""The boost rule, pure: window sums from prefix sums, trigger thresholds, the state machine.

The state machine is a numba kernel on plain numpy arrays (`_rule_nb`); `run_rule` is its
typed wrapper. Nothing here reads files or knows about pandas frames of results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numba
import numpy as np
import pandas as pd

from liqmap.backtest.params import BacktestParams
from liqmap.matrix import LiqMatrix

EVENT_NONE: Final = 0
EVENT_ON: Final = 1
EVENT_OFF: Final = 2
EVENT_REVERSE: Final = 3
EVENT_NAMES: Final[dict[int, str]] = {EVENT_ON: "on", EVENT_OFF: "off", EVENT_REVERSE: "reverse"}


def bin_prefix_sums(z: np.ndarray) -> np.ndarray:
    """Cumulative amount over price bins, per column.

    Args:
        z: float64 [n_bins, n_columns], amount per cell (tokens).

    Returns:
        float64 [n_columns, n_bins + 1]; row c, entry j is the amount in bins 0..j-1 of column c,
        so the amount in bins lo..hi-1 is `out[c, hi] - out[c, lo]`.
    """
    n_bins, n_cols = z.shape
    out = np.zeros((n_cols, n_bins + 1))
    np.cumsum(z.T, axis=1, out=out[:, 1:])
    return out


def window_usd_of(params: BacktestParams, price_usd: np.ndarray) -> np.ndarray | float:
    """W in USD at each minute: `window_usd` when set, else `window_pct` % of the price."""
    if params.window_usd is not None:
        return float(params.window_usd)
    return price_usd * (float(params.window_pct or 0.0) / 100.0)


def window_sums(prefix: np.ndarray, lower_edges_usd: np.ndarray, columns: np.ndarray,
                price_usd: np.ndarray, window_usd: float | np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Amount in bins whose lower edge lies in (p, p + W] (above) and in [p - W, p) (below).

    Args:
        prefix: [n_columns, n_bins + 1] from `bin_prefix_sums`.
        lower_edges_usd: float64 [n_bins], ascending lower bin edges (USD).
        columns: int64 [n], matrix column of each minute.
        price_usd: float64 [n], price p of each minute.
        window_usd: W, USD: one number, or float64 [n] (a share of each minute's price).

    Returns:
        (above, below), float64 [n] each, in the matrix's unit.

    >>> z = np.array([[1.0], [2.0], [4.0], [8.0]])  # bins 100, 101, 102, 103 USD
    >>> window_sums(bin_prefix_sums(z), np.array([100.0, 101, 102, 103]), np.array([0]),
    ...             np.array([101.0]), 2.0)
    (array([12.]), array([1.]))
    """
    lo_above = np.searchsorted(lower_edges_usd, price_usd, side="right")
    hi_above = np.searchsorted(lower_edges_usd, price_usd + window_usd, side="right")
    lo_below = np.searchsorted(lower_edges_usd, price_usd - window_usd, side="left")
    hi_below = np.searchsorted(lower_edges_usd, price_usd, side="left")
    above = prefix[columns, hi_above] - prefix[columns, lo_above]
    below = prefix[columns, hi_below] - prefix[columns, lo_below]
    return above, below


def trailing_quantile(values: np.ndarray, frozen: np.ndarray, q: float,
                      lookback_min: int) -> np.ndarray:
    """Quantile `q` of `values` over the `lookback_min` previous non-frozen minutes.

    Minute t sees only minutes before it (never itself or later ones); frozen minutes are
    skipped and get NaN, as do the first `lookback_min` usable minutes (warm-up: no trigger).

    Args:
        values: float64 [n], e.g. max(above, below) per minute.
        frozen: bool [n], minutes left out of the distribution (gaps).
        q: quantile in (0, 1], linear interpolation (numpy's default).
        lookback_min: number of previous usable minutes.

    Returns:
        float64 [n].
    """
    usable = ~frozen
    series = pd.Series(values[usable])
    past = series.rolling(lookback_min, min_periods=lookback_min).quantile(q).shift(1)
    out = np.full(values.shape[0], np.nan)
    out[usable] = past.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


@numba.njit(cache=True)
def _rule_nb(above, below, threshold, frozen, confirm_n, release_n, reversal, d, confirm,
             release):
    """Kernel of `run_rule` on plain arrays, from state (d, confirm, release); returns
    (direction int8, trigger bool, event int8, final d, final confirm, final release)."""
    n = above.shape[0]
    direction = np.zeros(n, np.int8)
    trigger = np.zeros(n, np.bool_)
    event = np.zeros(n, np.int8)
    for t in range(n):
        if not frozen[t]:
            trig = above[t] > threshold[t] or below[t] > threshold[t]
            new_d = 1 if below[t] > above[t] else -1
            trigger[t] = trig
            if trig:
                confirm += 1
                if reversal and d != 0 and release > 0 and new_d != d:
                    d = new_d
                    confirm = 1
                    event[t] = EVENT_REVERSE
                release = 0
            else:
                confirm = 0
                release += 1
            if d == 0 and confirm >= confirm_n:
                d = new_d
                event[t] = EVENT_ON
            elif d != 0 and release >= release_n:
                d = 0
                event[t] = EVENT_OFF
        direction[t] = d
    return direction, trigger, event, d, confirm, release


@dataclass(frozen=True)
class RuleState:
    """Where the state machine stands after a minute: direction (−1, 0, +1) and the counts of
    trigger and quiet minutes in a row. The rule at minute t depends on earlier minutes only
    through this and the trailing θ history, so a run can stop and go on from it."""

    direction: int = 0
    confirm: int = 0
    release: int = 0


@dataclass(frozen=True)
class RuleOutput:
    """Per-minute decisions of the rule, all [n].

    Attributes:
        above, below: window sums (tokens; matrix / price with legacy formulas).
        threshold: θ used at each minute (NaN during a quantile warm-up).
        trigger: bool, the minute triggered (False on frozen minutes).
        direction: int8 in {-1, 0, +1}, decided at t, held from t to t + 1.
        event: int8 EVENT_* code of the toggle at t, EVENT_NONE if none.
        final: the state after the last minute (a later run starts from it).
    """

    above: np.ndarray
    below: np.ndarray
    threshold: np.ndarray
    trigger: np.ndarray
    direction: np.ndarray
    event: np.ndarray
    final: RuleState = field(default_factory=RuleState)


def run_rule(above: np.ndarray, below: np.ndarray, threshold: np.ndarray, frozen: np.ndarray,
             *, confirm: int, release: int, reversal: bool,
             state: RuleState | None = None) -> RuleOutput:
    """Run the confirm/release state machine over minutes (see docs/backtest.md "The rule").

    Args:
        above, below: float64 [n], window sums per minute.
        threshold: float64 [n], θ per minute.
        frozen: bool [n], gap minutes: counters and state are held, no trigger.
        confirm, release: counts from BacktestParams.
        reversal: allow flips while cooling down.
        state: where to start (default: off, counters 0); the live signal passes the state
            after the minutes it has already evaluated.
    """
    s = state or RuleState()
    direction, trigger, event, d, c, r = _rule_nb(
        np.ascontiguousarray(above, dtype=np.float64), np.ascontiguousarray(below, np.float64),
        np.ascontiguousarray(threshold, dtype=np.float64), np.ascontiguousarray(frozen, bool),
        int(confirm), int(release), bool(reversal), int(s.direction), int(s.confirm),
        int(s.release))
    return RuleOutput(above=above, below=below, threshold=threshold, trigger=trigger,
                      direction=direction, event=event,
                      final=RuleState(int(d), int(c), int(r)))


@dataclass
class SignalSource:
    """What the rule reads, prepared once per run or sweep: the matrix as prefix sums, and
    the minutes (matrix column, price, gap) it is evaluated at. Memoizes window sums and
    thresholds so a sweep computes each (window, threshold) pair only once.
    """

    prefix: np.ndarray
    lower_edges_usd: np.ndarray
    columns: np.ndarray
    price_usd: np.ndarray
    gap: np.ndarray
    _sums: dict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _thresholds: dict[tuple[object, ...], np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_matrix(cls, matrix: LiqMatrix, columns: np.ndarray, price_usd: np.ndarray,
                    gap: np.ndarray) -> SignalSource:
        """Prepare `matrix` for minutes at `columns` [n] with `price_usd` [n] and `gap` [n]."""
        return cls(prefix=bin_prefix_sums(matrix.z), lower_edges_usd=matrix.y_edges_usd[:-1],
                   columns=columns, price_usd=price_usd, gap=gap)

    def frozen(self, params: BacktestParams) -> np.ndarray:
        """Minutes the rule holds still: gaps, except with legacy formulas (no gap handling)."""
        return np.zeros_like(self.gap) if params.legacy_formulas else self.gap

    def sums(self, params: BacktestParams) -> tuple[np.ndarray, np.ndarray]:
        """(above, below) [n] for the params' window; divided by the price if legacy."""
        key = (params.window_usd, params.window_pct, params.legacy_formulas)
        if key not in self._sums:
            above, below = window_sums(self.prefix, self.lower_edges_usd, self.columns,
                                       self.price_usd, window_usd_of(params, self.price_usd))
            if params.legacy_formulas:
                above, below = above / self.price_usd, below / self.price_usd
            self._sums[key] = (above, below)
        return self._sums[key]

    def threshold(self, params: BacktestParams) -> np.ndarray:
        """θ per minute [n]: constant, or the trailing quantile of max(above, below)."""
        q = params.threshold_quantile
        if params.threshold_tokens is not None or q is None:
            return np.full(self.columns.shape[0], float(params.threshold_tokens or 0.0))
        key = (params.window_usd, params.window_pct, params.legacy_formulas, q,
               params.lookback_min)
        if key not in self._thresholds:
            above, below = self.sums(params)
            self._thresholds[key] = trailing_quantile(np.maximum(above, below),
                                                      self.frozen(params), q, params.lookback_min)
        return self._thresholds[key]

    def evaluate(self, params: BacktestParams) -> RuleOutput:
        """Run the rule with `params` over the prepared minutes."""
        above, below = self.sums(params)
        return run_rule(above, below, self.threshold(params), self.frozen(params),
                        confirm=params.confirm, release=params.release, reversal=params.reversal)
