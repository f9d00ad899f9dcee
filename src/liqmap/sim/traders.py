"""Traders and their positions, as pure computation on Position records (no I/O).

A `Book` holds every Position account of one market, open and closed, as records of
`layouts.POSITION_DTYPE` (the on-chain byte layout), plus the wallet and collateral of each.
Position changes (`open_fields`, `closed_fraction`, `increased`, `liquidated`) return the new
record and the cash the trader paid in (+) or took out (−), in USD-6, so the market can keep
its custodies in step. `liquidatable` is the simulator's liquidation check: exactly the
collector's formula (`perps.liquidation_prices`) at the current time.

Units: prices and USD amounts in USD-6 integers (`_usd6`), interest counters in RATE-9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.jupiter import perps
from liqmap.jupiter.accounts import Custody
from liqmap.jupiter.encode import empty_positions, key_bytes
from liqmap.sim import params as SP

U64 = np.uint64
PERPS_PROGRAM = Pubkey.from_string(C.PERPS_PROGRAM_ID)
POOL_KEY = key_bytes(C.POOL_ADDRESS)
#: collateral codes: the traded asset itself (longs), or a stablecoin (shorts)
COLLATERAL_ASSET, COLLATERAL_USDC, COLLATERAL_USDT = 0, 1, 2
STABLE_OF_CODE = {COLLATERAL_USDC: "USDC", COLLATERAL_USDT: "USDT"}


def position_address(owner: bytes, custody: str, collateral_custody: str, side: int
                     ) -> tuple[str, int]:
    """(base58 address, bump) of a Position PDA: seeds "position", owner, pool, custody,
    collateral custody, side byte (spec §2.1)."""
    seeds = [b"position", owner, POOL_KEY, key_bytes(custody), key_bytes(collateral_custody),
             bytes([side])]
    key, bump = Pubkey.find_program_address(seeds, PERPS_PROGRAM)
    return str(key), bump


@dataclass
class Book:
    """Every Position account of one market (open: size_usd > 0; closed: size_usd == 0).

    Rows are never removed: closed accounts stay on chain with size 0 (spec §2.2) and are
    reused when the same wallet reopens the same market, side and collateral.
    """

    market: str
    custody: str
    records: np.ndarray = field(default_factory=lambda: empty_positions(0))
    pubkeys: list[str] = field(default_factory=list)
    wallet: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    collateral_code: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    n: int = 0
    rows_by_slot: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def view(self) -> np.ndarray:
        """The records of all accounts (a view; write through it)."""
        return self.records[:self.n]

    def open_rows(self) -> np.ndarray:
        """Row indices of the open positions."""
        return np.flatnonzero(self.view()["size_usd"] > 0)

    def row_for(self, wallet: int, wallet_key: bytes, side: int, code: int,
                collateral_custody: str) -> int:
        """The row of the wallet's account for (side, collateral), created if new."""
        slot = (wallet, side, code)
        row = self.rows_by_slot.get(slot)
        if row is not None:
            return row
        address, bump = position_address(wallet_key, self.custody, collateral_custody, side)
        row = self._append()
        rec = self.records[row]
        rec["owner"] = np.frombuffer(wallet_key, dtype="V32")[0]
        rec["pool"] = np.frombuffer(POOL_KEY, dtype="V32")[0]
        rec["custody"] = np.frombuffer(key_bytes(self.custody), dtype="V32")[0]
        rec["collateral_custody"] = np.frombuffer(key_bytes(collateral_custody), dtype="V32")[0]
        rec["side"] = side
        rec["bump"] = bump
        self.pubkeys.append(address)
        self.wallet[row] = wallet
        self.collateral_code[row] = code
        self.rows_by_slot[slot] = row
        return row

    def _append(self) -> int:
        if self.n == len(self.records):
            grow = max(64, self.n)
            records = empty_positions(self.n + grow)  # zeroed, padding bytes included
            records[:self.n] = self.records[:self.n]
            self.records = records
            self.wallet = np.concatenate([self.wallet, np.zeros(grow, np.int64)])
            self.collateral_code = np.concatenate([self.collateral_code, np.zeros(grow, np.int8)])
        self.n += 1
        return self.n - 1


# ---------------------------------------------------------------- fees and liquidation
def approx_liquidation_prices(records: np.ndarray, custody: Custody, cum_now: np.ndarray
                              ) -> np.ndarray:
    """Float64 estimate (USD-6) of `perps.liquidation_prices`, within a few USD-6 units."""
    size = records["size_usd"].astype(np.float64)
    entry = records["price"].astype(np.float64)
    coll = records["collateral_usd"].astype(np.float64)
    safe = np.where(size > 0, size, 1.0)
    scalar = custody.trade_impact_fee_scalar
    impact = np.ceil(safe * C.BPS_POWER / scalar) if scalar else 0.0
    close_fee = safe * (custody.decrease_position_bps + impact) / C.BPS_POWER
    delta = np.maximum(np.asarray(cum_now, np.float64)
                       - records["cumulative_interest_snapshot"].astype(np.float64), 0.0)
    max_loss = (safe * C.BPS_POWER / max(custody.max_leverage_bps, 1) + close_fee
                + delta * safe / C.RATE_POWER)
    gap = (max_loss - coll) * entry / safe
    sign = np.where(records["side"] == C.SIDE_LONG, 1.0, -1.0)
    return np.maximum(entry + sign * gap, 0.0)


def liquidatable(records: np.ndarray, custody: Custody, cum_now: np.ndarray,
                 price_usd6: int) -> np.ndarray:
    """Boolean mask of open positions the oracle price `price_usd6` has crossed.

    A long is liquidated when price <= its liquidation price, a short when price >= it, with
    the liquidation price of `perps.liquidation_prices` (the collector's exact integer
    formula) at the interest counters `cum_now` (uint64 per record, RATE-9). A float estimate
    first discards positions far from the price; the rest get the exact check.
    """
    out = np.zeros(len(records), dtype=bool)
    is_open = records["size_usd"] > 0
    if not is_open.any():
        return out
    approx = approx_liquidation_prices(records, custody, cum_now)
    near = is_open & (np.abs(approx - price_usd6) <= price_usd6 * SP.EXACT_CHECK_BAND)
    long = records["side"] == C.SIDE_LONG
    out |= is_open & ~near & np.where(long, approx >= price_usd6, approx <= price_usd6)
    idx = np.flatnonzero(near)
    if len(idx):
        exact = perps.liquidation_prices(records[idx], custody,
                                         np.asarray(cum_now, U64)[idx]).liq_price_usd6
        out[idx] = np.where(long[idx], price_usd6 <= exact, price_usd6 >= exact)
    return out


def is_safe(rec: np.ndarray, custody: Custody, cum_now: int, price_usd6: int) -> bool:
    """True when position `rec` is at least `MIN_LIQ_DISTANCE` from liquidation at the price."""
    one = rec.reshape(1)
    liq = float(approx_liquidation_prices(one, custody, np.array([cum_now], U64))[0])
    margin = price_usd6 * SP.MIN_LIQ_DISTANCE
    if one["side"][0] == C.SIDE_LONG:
        return liq <= price_usd6 - margin
    return liq >= price_usd6 + margin


# ---------------------------------------------------------------- position changes
@dataclass(frozen=True)
class Order:
    """A trader's new position: side, notional, leverage, entry price and collateral."""

    side: int
    size_usd6: int
    leverage: float
    entry_usd6: int
    collateral_code: int


def open_fields(rec: np.ndarray, order: Order, now_s: int, cum_now: int, custody: Custody
                ) -> int:
    """Fill (closed or new) record `rec` in place as a new position; returns cash in, USD-6.

    The trader posts `size / leverage` as collateral plus the open fee; the borrow-fee
    snapshot starts at the collateral custody's counter `cum_now`.
    """
    collateral = max(int(order.size_usd6 / order.leverage), 1)
    rec["open_time"] = now_s
    rec["update_time"] = now_s
    rec["price"] = order.entry_usd6
    rec["size_usd"] = order.size_usd6
    rec["collateral_usd"] = collateral
    rec["realised_pnl_usd"] = 0
    rec["cumulative_interest_snapshot"] = cum_now
    rec["locked_amount"] = locked_tokens(order.side, order.size_usd6, order.entry_usd6,
                                         custody.decimals)
    return collateral + open_fee_usd6(order.size_usd6, custody)


def open_fee_usd6(size_usd6: int, custody: Custody) -> int:
    """Open fee of a position of `size_usd6`: increase bps + price-impact bps."""
    return size_usd6 * (custody.increase_position_bps + perps.impact_fee_bps(size_usd6, custody)) \
        // C.BPS_POWER


def locked_tokens(side: int, size_usd6: int, price_usd6: int, decimals: int) -> int:
    """Tokens the pool locks for a position's maximum profit: the size in asset tokens for a
    long, the size in stablecoin (6 decimals, at $1) for a short."""
    if side == C.SIDE_LONG:
        return size_usd6 * 10**decimals // price_usd6
    return size_usd6


def pnl_usd6(side: int, size_usd6: int, entry_usd6: int, price_usd6: int) -> int:
    """Profit (+) or loss (−) of `size_usd6` of a position entered at `entry_usd6`."""
    move = price_usd6 - entry_usd6 if side == C.SIDE_LONG else entry_usd6 - price_usd6
    return size_usd6 * move // entry_usd6


def closed_fraction(rec: np.ndarray, fraction: float, price_usd6: int, now_s: int,
                    cum_now: int, custody: Custody) -> int:
    """Close `fraction` (0 < f <= 1) of position `rec` in place at the price; returns the cash
    the trader takes out (<= 0), USD-6. Accrued borrow fees are settled."""
    size, coll = int(rec["size_usd"]), int(rec["collateral_usd"])
    entry, side = int(rec["price"]), int(rec["side"])
    borrow = perps.borrow_fee_usd6(size, int(rec["cumulative_interest_snapshot"]), cum_now)
    part = size if fraction >= 1.0 else int(size * fraction)
    part_coll = coll if part == size else coll * part // size
    pnl = pnl_usd6(side, part, entry, price_usd6)
    payout = part_coll + pnl - perps.close_fee_usd6(part, custody)
    rest_coll = coll - part_coll - borrow
    rec["update_time"] = now_s
    if part == size or rest_coll <= 0:
        payout = (coll + pnl_usd6(side, size, entry, price_usd6)
                  - perps.close_fee_usd6(size, custody) - borrow)
        _zero(rec)
        return -max(payout, 0)
    rec["size_usd"] = size - part
    rec["collateral_usd"] = rest_coll
    rec["realised_pnl_usd"] = int(rec["realised_pnl_usd"]) + pnl
    rec["cumulative_interest_snapshot"] = cum_now
    rec["locked_amount"] = int(rec["locked_amount"]) * (size - part) // size
    return -max(payout, 0)


def increased(rec: np.ndarray, add_size_usd6: int, leverage: float, price_usd6: int,
              now_s: int, cum_now: int, custody: Custody) -> int:
    """Add `add_size_usd6` at the price to position `rec` in place (entry = size-weighted
    harmonic mean, borrow fees settled); returns the cash paid in, USD-6."""
    size, coll = int(rec["size_usd"]), int(rec["collateral_usd"])
    entry, side = int(rec["price"]), int(rec["side"])
    borrow = perps.borrow_fee_usd6(size, int(rec["cumulative_interest_snapshot"]), cum_now)
    add_coll = max(int(add_size_usd6 / leverage), 1)
    new_size = size + add_size_usd6
    tokens_x = size * 10**12 // entry + add_size_usd6 * 10**12 // price_usd6
    rec["price"] = new_size * 10**12 // tokens_x
    rec["size_usd"] = new_size
    rec["collateral_usd"] = max(coll + add_coll - borrow, 1)
    rec["cumulative_interest_snapshot"] = cum_now
    rec["update_time"] = now_s
    rec["locked_amount"] = int(rec["locked_amount"]) + locked_tokens(
        side, add_size_usd6, price_usd6, custody.decimals)
    return add_coll + open_fee_usd6(add_size_usd6, custody)


def liquidated(rec: np.ndarray, now_s: int) -> None:
    """Liquidate position `rec` in place: size, collateral, PnL and locked amount go to 0;
    the account keeps its other fields (spec §2.2). The pool keeps the collateral."""
    rec["update_time"] = now_s
    _zero(rec)


def _zero(rec: np.ndarray) -> None:
    for name in ("size_usd", "collateral_usd", "realised_pnl_usd", "locked_amount"):
        rec[name] = 0


# ---------------------------------------------------------------- drawing orders
def draw_leverage(rng: np.random.Generator, model: SP.TraderModel) -> float:
    """A leverage from the trader mix: a UI preset, or a log-normal free choice (>= 1.1x)."""
    if rng.random() < model.round_leverage_share:
        weights = np.asarray(model.round_weights, dtype=np.float64)
        return float(rng.choice(model.round_leverages, p=weights / weights.sum()))
    lev = model.free_leverage_median * math.exp(model.free_leverage_sigma * rng.standard_normal())
    return float(min(max(lev, 1.1), 500.0))


def draw_size_usd6(rng: np.random.Generator, model: SP.TraderModel, max_usd6: int) -> int:
    """A log-normal position size, USD-6, between `model.min_size_usd` and `max_usd6`."""
    usd = model.size_median_usd * math.exp(model.size_sigma * rng.standard_normal())
    size = int(max(usd, model.min_size_usd) * C.USD_PRECISION)
    return min(size, max_usd6) if max_usd6 else size


def draw_side(rng: np.random.Generator, model: SP.TraderModel) -> tuple[int, int]:
    """(side, collateral code): longs on the asset, shorts on USDC (or USDT)."""
    if rng.random() < model.long_share:
        return C.SIDE_LONG, COLLATERAL_ASSET
    code = COLLATERAL_USDT if rng.random() < model.usdt_short_share else COLLATERAL_USDC
    return C.SIDE_SHORT, code


def draw_order(rng: np.random.Generator, model: SP.TraderModel, entry_usd6: int,
               custody: Custody) -> Order:
    """A market order at `entry_usd6` from the trader mix."""
    side, code = draw_side(rng, model)
    return Order(side, draw_size_usd6(rng, model, custody.max_position_size_usd6),
                 draw_leverage(rng, model), entry_usd6, code)


def round_step_usd6(price_usd6: int) -> int:
    """The price grid traders round to: 1 % of the price's leading power of ten
    ($1 for SOL at $185, $10 for ETH at $3,500, $1,000 for BTC at $100,000)."""
    digits = max(len(str(price_usd6 // C.USD_PRECISION)), 1)
    return max(int(SP.ROUND_STEP_FRACTION * 10 ** (digits - 1) * C.USD_PRECISION), 1)


def limit_level_usd6(rng: np.random.Generator, side: int, price_usd6: int,
                     model: SP.TraderModel) -> int:
    """A round price level for a limit order: below the price for a long, above for a short."""
    step = round_step_usd6(price_usd6)
    if rng.random() < SP.STRONG_ROUND_SHARE:
        step *= SP.STRONG_ROUND_MULTIPLE
    distance = rng.exponential(model.limit_distance)
    target = price_usd6 * (1 - distance if side == C.SIDE_LONG else 1 + distance)
    level = round(target / step) * step
    if side == C.SIDE_LONG:
        return min(level, (price_usd6 // step) * step) or step
    return max(level, -(-price_usd6 // step) * step)


def hold_hazards(records: np.ndarray, model: SP.TraderModel) -> np.ndarray:
    """Per-minute probability that each position is closed: higher leverage is held shorter,
    bigger positions longer (hazard x (leverage / 10) ** p x (size / median) ** -q)."""
    size = records["size_usd"].astype(np.float64)
    coll = np.maximum(records["collateral_usd"].astype(np.float64), 1.0)
    lev = np.maximum(size / coll, 1.0)
    rel_size = np.maximum(size / (model.size_median_usd * C.USD_PRECISION), 1e-3)
    hazard = ((lev / 10.0) ** model.hold_leverage_power
              * rel_size ** -model.hold_size_power / model.mean_hold_min)
    return np.clip(hazard, 1e-9, 0.5)


def max_safe_leverage(side: int, entry_usd6: int, price_usd6: int, custody: Custody) -> float:
    """Highest leverage at which a position entered at `entry_usd6` is still at least
    `MIN_LIQ_DISTANCE` from liquidation at `price_usd6` (ignores borrow fees: new position)."""
    fee = (custody.decrease_position_bps + 1) / C.BPS_POWER
    maint = C.BPS_POWER / max(custody.max_leverage_bps, 1)
    ratio = price_usd6 / entry_usd6
    if side == C.SIDE_LONG:
        inv = 1 + maint + fee - ratio * (1 - SP.MIN_LIQ_DISTANCE)
    else:
        inv = maint + fee - 1 + ratio * (1 + SP.MIN_LIQ_DISTANCE)
    return 1.0 / inv if inv > 0 else math.inf


# ---------------------------------------------------------------- limit orders
@dataclass
class LimitOrders:
    """Pending limit orders of one market: they open at their round level when the price
    reaches it (long: price <= level, short: price >= level) or expire."""

    orders: list[Order] = field(default_factory=list)
    level_usd6: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    is_long: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    expiry_minute: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def add(self, order: Order, expiry_minute: int) -> None:
        """Rest `order` at its `entry_usd6` level until `expiry_minute`."""
        self.orders.append(order)
        self.level_usd6 = np.append(self.level_usd6, order.entry_usd6)
        self.is_long = np.append(self.is_long, order.side == C.SIDE_LONG)
        self.expiry_minute = np.append(self.expiry_minute, expiry_minute)

    def pop_triggered(self, price_usd6: int, minute: int) -> list[Order]:
        """Remove and return the orders the price reached; drop the expired ones."""
        if not self.orders:
            return []
        fired = np.where(self.is_long, price_usd6 <= self.level_usd6,
                         price_usd6 >= self.level_usd6)
        keep = ~fired & (self.expiry_minute > minute)
        out = [self.orders[i] for i in np.flatnonzero(fired).tolist()]
        if not keep.all():
            self.orders = [self.orders[i] for i in np.flatnonzero(keep).tolist()]
            self.level_usd6, self.is_long = self.level_usd6[keep], self.is_long[keep]
            self.expiry_minute = self.expiry_minute[keep]
        return out


def closed_accounts(n: int, markets: tuple[str, ...], rng: np.random.Generator,
                    now_s: int) -> tuple[list[str], np.ndarray]:
    """`n` closed Position accounts (sizeUsd 0) as they pile up on chain: spread evenly over
    `markets` and sides, longs with the asset as collateral, shorts with USDC (80 %) or USDT,
    last touched up to a year before `now_s`. Returns (PDA addresses, records)."""
    rec = empty_positions(n)
    if n == 0 or not markets:
        return [], rec
    market_idx = rng.integers(len(markets), size=n)
    side = rng.integers(C.SIDE_LONG, C.SIDE_SHORT + 1, size=n)
    usdt = rng.random(n) < 0.2
    owners = rng.bytes(32 * n)
    updated = now_s - rng.integers(3600, 365 * 86_400, size=n)
    rec["side"] = side
    rec["update_time"] = updated
    rec["open_time"] = updated - rng.integers(60, 30 * 86_400, size=n)
    keys: list[str] = []
    for i in range(n):
        market = markets[int(market_idx[i])]
        collateral = (market if side[i] == C.SIDE_LONG else "USDT" if usdt[i] else "USDC")
        owner = owners[32 * i:32 * i + 32]
        address, bump = position_address(owner, C.CUSTODY_BY_ASSET[market],
                                         C.CUSTODY_BY_ASSET[collateral], int(side[i]))
        rec[i]["owner"] = np.frombuffer(owner, dtype="V32")[0]
        rec[i]["pool"] = np.frombuffer(POOL_KEY, dtype="V32")[0]
        rec[i]["custody"] = np.frombuffer(key_bytes(C.CUSTODY_BY_ASSET[market]), dtype="V32")[0]
        rec[i]["collateral_custody"] = np.frombuffer(key_bytes(C.CUSTODY_BY_ASSET[collateral]),
                                                     dtype="V32")[0]
        rec[i]["bump"] = bump
        keys.append(address)
    return keys, rec
