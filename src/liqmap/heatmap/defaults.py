"""Per-market defaults of the heatmap and levels pictures: bin width, window, price range.

One implementation for the CLI, the notebook API and the web page.
"""

from __future__ import annotations

import math

from liqmap import constants as C
from liqmap.timeutil import default_start, default_window

__all__ = ["bin_help", "default_bin_usd", "default_price_margin", "default_start",
           "default_window", "margin_help", "nice_number", "round_125"]

#: The 1-2-5 steps of each decade.
STEPS_125 = (1.0, 2.0, 5.0)


def nice_number(value: float, steps: tuple[float, ...] = STEPS_125, *, up: bool = False
                ) -> float:
    """The number `steps[i] × 10^k` nearest to `value` > 0 on a log scale, or with `up` the
    smallest at or above it (the page's zoom also takes 2.5: steps (1, 2, 2.5, 5)).

    >>> [nice_number(x) for x in (0.075, 1.75, 50.0, 0.3)]
    [0.1, 2.0, 50.0, 0.2]
    >>> nice_number(2.7, (1, 2, 2.5, 5)), nice_number(0.11, up=True)
    (2.5, 0.2)
    """
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"need a finite value > 0, got {value}")
    decade = math.floor(math.log10(value))
    candidates = [float(f"{s * 10.0 ** d:.12g}")  # 0.1, not 0.10000000000000001
                  for d in (decade - 1, decade, decade + 1) for s in steps]
    if up:
        return min(c for c in candidates if c >= value * (1 - 1e-9))
    return min(candidates, key=lambda c: abs(math.log(c / value)))


def round_125(value: float) -> float:
    """The 1-2-5 number (…, 0.1, 0.2, 0.5, 1, 2, 5, 10, …) nearest to `value` > 0 on a log
    scale."""
    return nice_number(value, STEPS_125)


def default_bin_usd(market: str, price_usd: float | None = None) -> float:
    """The default price bin (USD) of `market`: about 0.05 % of `price_usd` on a 1-2-5 grid
    (SOL ~150 → 0.1, ETH ~3,500 → 2, BTC ~100,000 → 50); without a usable price, the
    market's constant (`constants.DEFAULT_BIN_USD_BY_MARKET`)."""
    if price_usd is not None and math.isfinite(price_usd) and price_usd > 0:
        return round_125(price_usd * C.DEFAULT_BIN_FRACTION)
    return C.DEFAULT_BIN_USD_BY_MARKET.get(market, C.DEFAULT_BIN_USD_BY_MARKET["SOL"])


def default_price_margin(market: str) -> float:
    """The default range reaches this fraction below the lowest and above the highest price."""
    return C.DEFAULT_PRICE_MARGIN_BY_MARKET.get(market, C.DEFAULT_PRICE_MARGIN_BY_MARKET["SOL"])


def bin_help() -> str:
    """The `--bin` help text naming each market's default."""
    return (f"Price bin width (default: about {C.DEFAULT_BIN_FRACTION:.2%} of the price on a "
            f"1-2-5 grid, e.g. {C.per_market(C.DEFAULT_BIN_USD_BY_MARKET)})")


def margin_help(where: str) -> str:
    """The default price range's help: "default: SOL 20 %, ETH 15 %, BTC 10 % `where`"."""
    return f"default: {C.per_market(C.DEFAULT_PRICE_MARGIN_BY_MARKET, '{:.0%}')} {where}"
