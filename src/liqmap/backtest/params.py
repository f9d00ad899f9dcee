"""Parameters of the liquidation-pressure boost rule and their defaults (one place)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

from liqmap.errors import InputError

DEFAULT_WINDOW_USD: Final = 10.0
DEFAULT_THRESHOLD_TOKENS: Final = 200.0
DEFAULT_LOOKBACK_MIN: Final = 240
DEFAULT_CONFIRM: Final = 1
DEFAULT_RELEASE: Final = 5
DEFAULT_BOOST: Final = 0.5
DEFAULT_TARGET_RATIO: Final = 1.0
DEFAULT_EXPOSURE_TOKENS: Final = 1.0
DEFAULT_BIN_USD: Final = 0.1
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

    Attributes:
        window_usd: W, the price distance in USD summed above and below the price.
        threshold_tokens: θ, trigger when either window sum exceeds it (matrix units, tokens).
        threshold_quantile: when set, θ at minute t is this quantile (0 < q <= 1, linear
            interpolation) of max(above, below) over the `lookback_min` previous usable minutes;
            replaces `threshold_tokens`.
        lookback_min: length of that trailing distribution, in usable minutes.
        confirm: trigger minutes in a row needed to switch the boost on.
        release: quiet minutes in a row needed to switch it off.
        reversal: while on and cooling down, an opposite trigger flips the direction.
        boost: ratio added (direction +1) or removed (direction -1) while on.
        fee_bps, slippage_bps: cost of every change of the boost overlay, basis points of its
            USD value.
        legacy_formulas: the old script's window sums (matrix / price) and boosted loss, and no
            gap freeze (it had none).
    """

    window_usd: float = DEFAULT_WINDOW_USD
    threshold_tokens: float = DEFAULT_THRESHOLD_TOKENS
    threshold_quantile: float | None = None
    lookback_min: int = DEFAULT_LOOKBACK_MIN
    confirm: int = DEFAULT_CONFIRM
    release: int = DEFAULT_RELEASE
    reversal: bool = False
    boost: float = DEFAULT_BOOST
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    legacy_formulas: bool = False

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
    """Return `params` unchanged, or raise InputError naming the first bad value and its range."""
    for name, attr in SWEEPABLE.items():
        value = getattr(params, attr)
        if value is not None:
            check_value(name, float(value))
    return params
