"""Accounting of the boost, pure: positions, P&L raw vs boosted, costs and carry.

The hedge is a short of the exposure E = −position / current_ratio > 0 (tokens; see
`align.MinuteInputs`). At each minute (docs/backtest.md "Accounting"):

    held_raw = position = −E × current_ratio,   target_pos = −E × target_ratio,
    overlay = −E × direction × boost   (direction +1 adds to the short),
    held_boosted = position + overlay = −E × boosted_ratio,
    pnl(t) = (held(t−1) − target_pos(t−1)) × (p(t) − p(t−1)),   pnl(first minute) = 0,
    cost(t) = |overlay(t) − overlay(t−1)| × p(t) × (fee_bps + slippage_bps) / 10 000,
    carry(t) = −held(t−1) × p(t−1) × carry_apr(t−1) × (t − (t−1)) / year   (a short pays it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import pandas as pd

from liqmap import constants as C
from liqmap.backtest.align import MinuteInputs
from liqmap.backtest.params import BacktestParams
from liqmap.backtest.rule import EVENT_NAMES, EVENT_NONE, EVENT_ON, RuleOutput, SignalSource
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix

NS_PER_YEAR: Final = 365 * 24 * 3600 * 1_000_000_000


@dataclass(frozen=True)
class Book:
    """Per-minute quantities that do not depend on the rule's parameters, all float64 [n].

    Attributes:
        price_usd: p; dp_usd: p(t) − p(t−1), 0 at the first minute.
        position_tokens: held_raw (negative: short); current_ratio, target_ratio: ratios.
        exposure_tokens: E = −position / current_ratio.
        target_pos_tokens: −E × target_ratio (computed as position / current_ratio × target).
        pnl_raw_usd: P&L of the raw hedge against the target.
        dt_years: time since the previous minute, years (0 at the first minute).
        carry_apr: the carry rate series of the inputs, or None (the params' constant).
    """

    price_usd: np.ndarray
    dp_usd: np.ndarray
    position_tokens: np.ndarray
    current_ratio: np.ndarray
    target_ratio: np.ndarray
    exposure_tokens: np.ndarray
    target_pos_tokens: np.ndarray
    pnl_raw_usd: np.ndarray
    dt_years: np.ndarray
    carry_apr: np.ndarray | None = None


@dataclass(frozen=True)
class Ledger:
    """The boosted hedge for one parameter set, arrays [n] (see the module docstring).

    Attributes:
        book: the parameter-free part.
        direction: int8 in {-1, 0, +1}; event: int8 toggle codes (rule.EVENT_*).
        boosted_ratio: current_ratio + direction × boost.
        overlay_tokens: −E × direction × boost; trade_tokens: |Δ overlay| (first vs 0).
        pnl_boosted_usd: gross boosted P&L; cost_usd: fee + slippage of the overlay trades.
        carry_raw_usd, carry_boosted_usd: carrying cost of the raw and boosted hedge.
    """

    book: Book
    direction: np.ndarray
    event: np.ndarray
    boosted_ratio: np.ndarray
    overlay_tokens: np.ndarray
    trade_tokens: np.ndarray
    pnl_boosted_usd: np.ndarray
    cost_usd: np.ndarray
    carry_raw_usd: np.ndarray
    carry_boosted_usd: np.ndarray
    has_carry: bool = True


def open_book(minutes: MinuteInputs, *, as_logged: bool = False) -> Book:
    """The parameter-free accounting of `minutes`; `as_logged` takes the hedge-log position
    as written (the old script's reading, for `--legacy-formulas`)."""
    price, position = minutes.price_usd, minutes.position_tokens
    if as_logged and minutes.position_as_logged is not None:
        position = minutes.position_as_logged
    current, target = minutes.current_ratio, minutes.target_ratio
    target_pos = position / current * target
    dp = np.zeros_like(price)
    dp[1:] = np.diff(price)
    pnl_raw = np.zeros_like(price)
    pnl_raw[1:] = (position[:-1] - target_pos[:-1]) * dp[1:]
    dt = np.zeros_like(price)
    dt[1:] = np.diff(minutes.ts_ns) / NS_PER_YEAR
    return Book(price_usd=price, dp_usd=dp, position_tokens=position, current_ratio=current,
                target_ratio=target, exposure_tokens=-position / current,
                target_pos_tokens=target_pos, pnl_raw_usd=pnl_raw, dt_years=dt,
                carry_apr=minutes.carry_apr)


def carry_usd(book: Book, held_tokens: np.ndarray, carry_apr: float) -> np.ndarray:
    """Carry paid per minute by a hedge of `held_tokens` [n] (negative: short), USD [n]:
    −held(t−1) × p(t−1) × rate(t−1) × Δt; the rate is the book's series, else `carry_apr`."""
    out = np.zeros_like(book.price_usd)
    rate = book.carry_apr[:-1] if book.carry_apr is not None else carry_apr
    out[1:] = -held_tokens[:-1] * book.price_usd[:-1] * rate * book.dt_years[1:]
    return out


def settle(book: Book, rule: RuleOutput, params: BacktestParams) -> Ledger:
    """Account the rule's directions with `params.boost` and costs.

    With `params.legacy_formulas` the boosted P&L is the old script's
    (position − position / boosted_ratio × target_ratio)(t−1) × Δp; a zero boosted ratio then
    gives a non-finite P&L (checked by `run_backtest`).
    """
    direction = rule.direction
    step = direction * params.boost
    boosted_ratio = book.current_ratio + step
    overlay = -book.exposure_tokens * step
    pnl_boosted = np.zeros_like(book.price_usd)
    if params.legacy_formulas:
        with np.errstate(divide="ignore", invalid="ignore"):
            theo = book.position_tokens / boosted_ratio * book.target_ratio
            pnl_boosted[1:] = (book.position_tokens[:-1] - theo[:-1]) * book.dp_usd[1:]
    else:
        pnl_boosted[1:] = book.pnl_raw_usd[1:] + overlay[:-1] * book.dp_usd[1:]
    trade = np.abs(np.diff(overlay, prepend=0.0))
    cost = trade * book.price_usd * (params.cost_bps / C.BPS_POWER)
    has_carry = book.carry_apr is not None or params.carry_apr != 0
    if has_carry:
        carry_raw = carry_usd(book, book.position_tokens, params.carry_apr)
        carry_boosted = carry_usd(book, book.position_tokens + overlay, params.carry_apr)
    else:  # one shared array of zeros (read-only) keeps sweeps as fast as without carry
        carry_raw = carry_boosted = _zeros(book.price_usd.shape[0])
    return Ledger(book=book, direction=direction, event=rule.event, boosted_ratio=boosted_ratio,
                  overlay_tokens=overlay, trade_tokens=trade, pnl_boosted_usd=pnl_boosted,
                  cost_usd=cost, carry_raw_usd=carry_raw, carry_boosted_usd=carry_boosted,
                  has_carry=has_carry)


@functools.lru_cache(maxsize=8)
def _zeros(n: int) -> np.ndarray:
    out = np.zeros(n)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class BacktestResult:
    """One run: inputs, rule output, ledger, and the tables written to disk."""

    params: BacktestParams
    minutes: MinuteInputs
    rule: RuleOutput
    ledger: Ledger

    def minutes_frame(self) -> pd.DataFrame:
        """minutes.csv: one row per minute on the timeline."""
        led, rule, book = self.ledger, self.rule, self.ledger.book
        net = led.pnl_boosted_usd - led.cost_usd - led.carry_boosted_usd
        return pd.DataFrame({  # the column names first, then extras (units: docs)
            "timestamp": self.minutes.timestamps(),
            "price": book.price_usd,
            "liq_above": rule.above,
            "liq_below": rule.below,
            "trigger": rule.trigger,
            "direction": led.direction,
            "ratio": book.current_ratio,
            "boosted_ratio": led.boosted_ratio,
            "target_ratio": book.target_ratio,
            "pnl_raw": book.pnl_raw_usd,
            "pnl_boosted": led.pnl_boosted_usd,
            "cost": led.cost_usd,
            "cum_pnl_raw": np.cumsum(book.pnl_raw_usd),
            "cum_pnl_boosted": np.cumsum(led.pnl_boosted_usd),
            "cum_pnl_boosted_net": np.cumsum(net),
            "threshold": rule.threshold,
            "gap": self.minutes.gap,
            "position": book.position_tokens,
            "boosted_position": book.position_tokens + led.overlay_tokens,
            "target_position": book.target_pos_tokens,
            "exposure": book.exposure_tokens,
            "carry_raw": led.carry_raw_usd,
            "carry_boosted": led.carry_boosted_usd,
            "cum_pnl_raw_net": np.cumsum(book.pnl_raw_usd - led.carry_raw_usd),
        })

    def toggles_frame(self) -> pd.DataFrame:
        """toggles.csv: one row per on/off/reverse event."""
        at = np.flatnonzero(self.ledger.event != EVENT_NONE)
        return pd.DataFrame({
            "timestamp": self.minutes.timestamps()[at],
            "event": [EVENT_NAMES[int(e)] for e in self.ledger.event[at]],
            "direction": self.ledger.direction[at],
            "price_usd": self.ledger.book.price_usd[at],
            "boosted_ratio": self.ledger.boosted_ratio[at],
        })


@dataclass(frozen=True)
class Prepared:
    """A matrix and a timeline made ready to run many parameter sets (the sweep's unit)."""

    minutes: MinuteInputs
    source: SignalSource
    book: Book

    @classmethod
    def of(cls, matrix: LiqMatrix, minutes: MinuteInputs, *, legacy: bool = False) -> Prepared:
        source = SignalSource.from_matrix(matrix, minutes.column, minutes.price_usd,
                                          minutes.gap)
        return cls(minutes=minutes, source=source, book=open_book(minutes, as_logged=legacy))

    def simulate(self, params: BacktestParams) -> tuple[RuleOutput, Ledger]:
        """Rule then accounting for one parameter set, unchecked."""
        rule = self.source.evaluate(params)
        return rule, settle(self.book, rule, params)

    def baselines(self, params: BacktestParams) -> dict[str, Ledger]:
        """The two hedges any rule must beat, with `params`' boost, costs and carry: the boost
        never on (the plain hedge) and always on (+1, adding to the short, from the first
        minute)."""
        n = self.minutes.n
        out = {}
        for name, d in (("never_on", 0), ("always_on", 1)):
            event = np.zeros(n, np.int8)
            event[0] = EVENT_ON if d else EVENT_NONE
            rule = RuleOutput(above=np.zeros(n), below=np.zeros(n), threshold=np.zeros(n),
                              trigger=np.zeros(n, bool), direction=np.full(n, d, np.int8),
                              event=event)
            out[name] = settle(self.book, rule, replace(params, legacy_formulas=False))
        return out

    def run(self, params: BacktestParams) -> BacktestResult:
        """`simulate`, checked (see `run_backtest`)."""
        rule, ledger = self.simulate(params)
        check_finite(ledger, self.minutes)
        return BacktestResult(params=params, minutes=self.minutes, rule=rule, ledger=ledger)


def run_backtest(matrix: LiqMatrix, minutes: MinuteInputs,
                 params: BacktestParams) -> BacktestResult:
    """Backtest `params` over `minutes` against `matrix`.

    Raises:
        InputError: the legacy boosted P&L divides by a zero boosted ratio.
    """
    return Prepared.of(matrix, minutes, legacy=params.legacy_formulas).run(params)


def check_finite(ledger: Ledger, minutes: MinuteInputs) -> None:
    """InputError at the first minute whose boosted P&L is not finite (legacy, ratio 0)."""
    bad = ~np.isfinite(ledger.pnl_boosted_usd)
    if bad.any():
        i = int(np.argmax(bad)) - 1
        raise InputError(f"the legacy boosted loss divides by the boosted ratio, which is "
                         f"{ledger.boosted_ratio[i]:g} at {minutes.timestamps()[i]:%Y-%m-%d %H:%M}"
                         " UTC; pick a --boost that differs from the hedge ratio or drop "
                         "--legacy-formulas")
