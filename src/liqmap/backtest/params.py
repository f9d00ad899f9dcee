"""Parameters of the liquidation-pressure boost rule and their defaults (one place)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from liqmap.errors import InputError

#: W as a share of the price, percent: 0.5 % is about 0.75 USD for SOL at 150, 15 for ETH at
#: 3,000 and 500 for BTC at 100,000, so one default means the same in every market.
DEFAULT_WINDOW_PCT: Final = 0.5
#: θ by default: this quantile of the trailing max(above, below), so the rule fires on the
#: unusual minutes of whatever market and unit it reads (a fixed token count cannot).
DEFAULT_THRESHOLD_QUANTILE: Final = 0.9
DEFAULT_LOOKBACK_MIN: Final = 120
DEFAULT_CONFIRM: Final = 1
DEFAULT_RELEASE: Final = 5
DEFAULT_BOOST: Final = 0.5
DEFAULT_TARGET_RATIO: Final = 1.0
DEFAULT_EXPOSURE_TOKENS: Final = 1.0
DEFAULT_BIN_USD: Final = 0.1
#: Bin of the matrix built from the store, per market (fine enough for a 0.5 % window).
DEFAULT_BIN_USD_BY_MARKET: Final[dict[str, float]] = {"SOL": 0.1, "ETH": 1.0, "BTC": 20.0}
#: The hedge venue the cost defaults describe: Hyperliquid perpetuals (the desk's hedge), base
#: fee tier, taker: 0.045 % per trade; slippage of a market order of a desk's size on a
#: liquid perp book, about 1 bp.
HEDGE_VENUE: Final = "Hyperliquid perps, base tier taker"
DEFAULT_FEE_BPS: Final = 4.5
DEFAULT_SLIPPAGE_BPS: Final = 1.0
#: Carrying cost of the short, fraction per year of its USD notional paid by the short
#: (negative: the short earns). 0 by default: funding swings sign; pass --carry-apr or
#: --carry-csv with the venue's history.
DEFAULT_CARRY_APR: Final = 0.0
#: A rule boosted longer than this share of the time is holding a position, not timing one.
MOSTLY_ON_SHARE: Final = 0.8
DEFAULT_OBJECTIVE: Final = "net_improvement_usd"
DEFAULT_OUT_DIR: Final = "out/backtest"

#: Sweep objective -> +1 when larger is better, −1 when smaller is better.
OBJECTIVES: Final[dict[str, int]] = {
    "net_improvement_usd": +1,
    "improvement_usd": +1,
    "cum_pnl_boosted_net_usd": +1,
    "hit_rate": +1,
    "max_drawdown_usd": -1,
    "cost_usd": -1,
    "turnover_tokens": -1,
}


@dataclass(frozen=True)
class BacktestParams:
    """One parameter set of the rule and its accounting.

    Exactly one of `window_usd`/`window_pct` and one of `threshold_tokens`/`threshold_quantile`
    is set (`resolved()` makes it so: a given USD window or fixed threshold wins over the
    share-of-price and quantile defaults).

    Attributes:
        window_usd: W in USD summed above and below the price, or None.
        window_pct: W as a percentage of each minute's price (0.5 = 0.5 %), or None.
        threshold_tokens: θ, trigger when either window sum exceeds it (matrix units, tokens).
        threshold_quantile: when set, θ at minute t is this quantile (0 < q <= 1, linear
            interpolation) of max(above, below) over the `lookback_min` previous usable minutes.
        lookback_min: length of that trailing distribution, in usable minutes.
        confirm: trigger minutes in a row needed to switch the boost on.
        release: quiet minutes in a row needed to switch it off.
        reversal: while on and cooling down, an opposite trigger flips the direction.
        boost: ratio added (direction +1) or removed (direction -1) while on.
        fee_bps, slippage_bps: cost of every change of the boost overlay, basis points of its
            USD value (defaults: HEDGE_VENUE).
        carry_apr: carrying cost of the short (funding/borrow), fraction per year of its USD
            notional, paid by the short (negative: earned); a per-hour series, when given to
            the run, replaces it.
        legacy_formulas: the old script's window sums (matrix / price) and boosted loss, and no
            gap freeze (it had none).
    """

    window_usd: float | None = None
    threshold_tokens: float | None = None
    threshold_quantile: float | None = DEFAULT_THRESHOLD_QUANTILE
    lookback_min: int = DEFAULT_LOOKBACK_MIN
    confirm: int = DEFAULT_CONFIRM
    release: int = DEFAULT_RELEASE
    reversal: bool = False
    boost: float = DEFAULT_BOOST
    fee_bps: float = DEFAULT_FEE_BPS
    slippage_bps: float = DEFAULT_SLIPPAGE_BPS
    legacy_formulas: bool = False
    window_pct: float | None = DEFAULT_WINDOW_PCT
    carry_apr: float = DEFAULT_CARRY_APR

    def resolved(self) -> BacktestParams:
        """The set with one window and one threshold: a USD window drops the percentage, a
        fixed threshold drops the quantile."""
        out = self
        if out.window_usd is not None and out.window_pct is not None:
            out = replace(out, window_pct=None)
        if out.threshold_tokens is not None and out.threshold_quantile is not None:
            out = replace(out, threshold_quantile=None)
        return out

    def window_label(self) -> str:
        """The window as given: "10 USD" or "0.5%"."""
        if self.window_usd is not None:
            return f"{self.window_usd:g} USD"
        return f"{self.window_pct:g}%"

    @property
    def cost_bps(self) -> float:
        """Fee plus slippage, basis points of each overlay trade's USD value."""
        return self.fee_bps + self.slippage_bps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Sweep / option name -> BacktestParams field.
SWEEPABLE: Final[dict[str, str]] = {
    "threshold": "threshold_tokens",
    "threshold_quantile": "threshold_quantile",
    "window": "window_usd",
    "window_pct": "window_pct",
    "carry_apr": "carry_apr",
    "confirm": "confirm",
    "release": "release",
    "boost": "boost",
    "lookback": "lookback_min",
    "fee_bps": "fee_bps",
    "slippage_bps": "slippage_bps",
    "reversal": "reversal",
}
INTEGER_PARAMS: Final = frozenset({"confirm", "release", "lookback", "reversal"})

# name -> (lowest allowed, lowest is allowed, highest allowed or None)
_BOUNDS: Final[dict[str, tuple[float, bool, float | None]]] = {
    "threshold": (0.0, True, None),
    "threshold_quantile": (0.0, False, 1.0),
    "window": (0.0, False, None),
    "window_pct": (0.0, False, 50.0),
    "carry_apr": (-10.0, True, 10.0),
    "confirm": (1, True, None),
    "release": (1, True, None),
    "boost": (0.0, True, None),
    "lookback": (1, True, None),
    "fee_bps": (0.0, True, None),
    "slippage_bps": (0.0, True, None),
    "reversal": (0, True, 1),
}


def check_value(name: str, value: float) -> None:
    """Raise InputError when `value` is outside what parameter `name` (a SWEEPABLE key) allows."""
    low, low_ok, high = _BOUNDS[name]
    if not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value}")
    if name in INTEGER_PARAMS and value != int(value):
        raise InputError(f"{name} must be a whole number, got {value:g}")
    if value < low or (value == low and not low_ok) or (high is not None and value > high):
        bound = f">= {low:g}" if low_ok else f"> {low:g}"
        bound += f" and <= {high:g}" if high is not None else ""
        raise InputError(f"{name} must be {bound}, got {value:g}")


def validate_params(params: BacktestParams) -> BacktestParams:
    """Return `params` resolved (see `BacktestParams.resolved`), or raise InputError naming the
    first bad value and its range."""
    params = params.resolved()
    if params.window_usd is None and params.window_pct is None:
        raise InputError("no window: pass --window as a share of the price (0.5%) or in USD")
    if params.threshold_tokens is None and params.threshold_quantile is None:
        raise InputError("no threshold: pass --threshold TOKENS or --threshold-quantile Q")
    for name, attr in SWEEPABLE.items():
        value = getattr(params, attr)
        if value is not None:
            check_value(name, float(value))
    return params
