"""The simulated Jupiter Perps market: pool, custodies, oracle feeds and every position, stepped
minute by minute, and turned into account bytes (pure computation; `writer` does the I/O).

Each minute at chain time t: new prices; every custody's borrow counter accrued to t;
traders close, partly close, increase and open positions (limit orders fill at round levels);
then every open position the oracle price has crossed is liquidated with the collector's exact
formula at t. Custodies follow every change (owned, locked, guaranteed USD, global shorts), so
utilization, borrow rates and the JLP delta move as on chain.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from liqmap import constants as C
from liqmap.errors import InputError
from liqmap.jupiter import perps
from liqmap.jupiter.accounts import AgPriceFeed, Custody
from liqmap.jupiter.encode import (
    empty_positions,
    encode_ag_price_feed,
    encode_custody,
    encode_pool,
    encode_positions,
    encode_spl_mint,
)
from liqmap.sim import params as SP
from liqmap.sim import traders as T
from liqmap.sim.prices import PriceSource, history_path

U64 = np.uint64


@dataclass(frozen=True)
class AccountWrite:
    """One account to create or overwrite: base58 address, data bytes, owner program."""

    pubkey: str
    data: bytes
    owner: str


@dataclass(frozen=True)
class Liquidation:
    """A liquidation: the position just before it, the counter and price that triggered it."""

    market: str
    pubkey: str
    record: np.ndarray  # POSITION_DTYPE [1], the position before liquidation
    cum_now: int  # collateral custody's counter at the minute, RATE-9
    price_usd6: int


@dataclass
class MinuteReport:
    """What happened in one simulated minute."""

    minute: int
    chain_time_s: int
    prices_usd6: dict[str, int]
    liquidations: list[Liquidation] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    closes: list[tuple[str, str]] = field(default_factory=list)  # (market, pubkey), full closes


@dataclass(frozen=True)
class SimConfig:
    """What to simulate.

    Attributes:
        markets: markets with traders (the pool always has SOL, ETH, BTC, USDC, USDT).
        seed: seed of every random draw (same seed, same accounts).
        positions: target open positions per market (default `params.DEFAULT_POSITIONS`).
        price_series: USD per minute replayed for `price_market` (minute 0 = first value).
        price_market: the market `price_series` belongs to.
        warmup_min: minutes simulated before minute 0 (not written), so positions have history.
        closed_accounts: extra closed Position accounts (sizeUsd 0) written at minute 0, as
            the ~10^5-10^6 on mainnet (Jupiter never closes Position accounts).
    """

    markets: tuple[str, ...] = C.MARKETS
    seed: int = SP.DEFAULT_SEED
    positions: dict[str, int] | None = None
    price_series: np.ndarray | None = None
    price_market: str = "SOL"
    warmup_min: int = SP.WARMUP_MIN
    closed_accounts: int = 0

    def target(self, market: str) -> int:
        """Target open positions of `market`."""
        positions = self.positions or SP.DEFAULT_POSITIONS
        return int(positions.get(market, SP.DEFAULT_POSITIONS[market]))


class CustodyState:
    """The changing fields of one custody over its fixed template."""

    def __init__(self, template: Custody) -> None:
        self.template = template
        self.owned = template.owned
        self.locked = template.locked
        self.guaranteed_usd6 = 0
        self.global_short_sizes_usd6 = 0
        self.global_short_average_price_usd6 = 0
        self.cumulative_interest_rate = template.cumulative_interest_rate
        self.funding_last_update = template.funding_last_update
        self.fees_reserves = 0

    def custody(self) -> Custody:
        """The full Custody account as of now (negative counters clamped to 0)."""
        return replace(
            self.template, owned=max(self.owned, 0), locked=max(self.locked, 0),
            guaranteed_usd6=max(self.guaranteed_usd6, 0),
            global_short_sizes_usd6=max(self.global_short_sizes_usd6, 0),
            global_short_average_price_usd6=self.global_short_average_price_usd6,
            cumulative_interest_rate=self.cumulative_interest_rate,
            funding_last_update=self.funding_last_update, fees_reserves=self.fees_reserves)

    def accrue(self, now_s: int) -> None:
        """Bring the borrow counter to `now_s` (as every on-chain touch does)."""
        self.cumulative_interest_rate = perps.accrue_cumulative_interest(self.custody(), now_s)
        self.funding_last_update = max(now_s, self.funding_last_update)

    def add_short(self, size_usd6: int, price_usd6: int) -> None:
        """Global short size and average price after shorts of `size_usd6` (+/-) at a price."""
        old = self.global_short_sizes_usd6
        new = max(old + size_usd6, 0)
        if new == 0:
            self.global_short_average_price_usd6 = 0
        elif size_usd6 > 0:
            avg = self.global_short_average_price_usd6 or price_usd6
            self.global_short_average_price_usd6 = (
                new * 10**12 // (old * 10**12 // avg + size_usd6 * 10**12 // price_usd6))
        self.global_short_sizes_usd6 = new


def custody_template(asset: str, start_s: int) -> Custody:
    """A custody with the typical mainnet parameters of `asset` (`params.ASSETS`), its borrow
    counter at its typical value as of `start_s` (unix s)."""
    a = SP.ASSETS[asset]
    return replace(
        SP.CUSTODY_BASE, mint=a.mint, token_account=a.token_account, decimals=a.decimals,
        is_stable=a.is_stable, oracle_account=a.pyth_oracle,
        trade_impact_fee_scalar=a.trade_impact_fee_scalar,
        max_global_long_sizes_usd6=a.max_global_long_sizes_usd6,
        max_global_short_sizes_usd6=a.max_global_short_sizes_usd6,
        target_ratio_bps=a.target_ratio_bps, cumulative_interest_rate=a.cumulative_interest_start,
        funding_last_update=start_s, max_position_size_usd6=a.max_position_size_usd6,
        doves_oracle=a.doves_oracle, min_rate_bps=a.min_rate_bps, max_rate_bps=a.max_rate_bps,
        target_rate_bps=a.target_rate_bps, target_utilization_rate=a.target_utilization_rate,
        doves_ag_oracle=a.doves_ag_oracle)


def price_feed(asset: str, price_usd6: int, timestamp_s: int) -> AgPriceFeed:
    """The Doves AgPriceFeed of `asset` at a price (USD-6) and publish time."""
    a = SP.ASSETS[asset]
    return AgPriceFeed(
        mint=a.mint, edge_feed=a.doves_oracle, pyth_feed=a.pyth_oracle,
        price=price_usd6 * 10 ** (-SP.FEED_EXPO - C.USD_DECIMALS), expo=SP.FEED_EXPO,
        timestamp=timestamp_s, max_ag_price_age_sec=SP.FEED_MAX_AG_PRICE_AGE_S,
        max_price_feed_age_sec=SP.FEED_MAX_PRICE_FEED_AGE_S,
        max_price_diff_bps=SP.FEED_MAX_PRICE_DIFF_BPS, bump=SP.FEED_BUMP)


def to_usd6(price_usd: float) -> int:
    """USD float to USD-6 integer."""
    return round(price_usd * C.USD_PRECISION)


class MarketSim:
    """The whole simulated market. `start_time_s` is the chain time of minute 0 (unix s).

    Use: `initial_writes()` once (it runs the warm-up), then per simulated minute `step()`
    and `changed_writes()`. Minute m is at chain time `chain_time(m)`.
    """

    def __init__(self, config: SimConfig, start_time_s: int) -> None:
        bad = [m for m in config.markets if m not in C.MARKETS]
        if bad:
            raise InputError(f"unknown market {', '.join(bad)}; choose from "
                             f"{', '.join(C.MARKETS)}")
        self.config = config
        self.start_time_s = start_time_s
        seeds = np.random.SeedSequence(config.seed).spawn(3)
        self.rng = np.random.default_rng(seeds[0])
        replay = config.price_series
        self.prices = PriceSource(SP.PRICE_MODELS, np.random.default_rng(seeds[1]),
                                  replay=replay, replay_market=config.price_market)
        self._history_rng = np.random.default_rng(seeds[2])
        self.minute = -config.warmup_min
        self.price_usd6 = {m: 0 for m in C.MARKETS}
        self.books = {m: T.Book(m, C.CUSTODY_BY_ASSET[m]) for m in config.markets}
        self.limits = {m: T.LimitOrders() for m in config.markets}
        self.models = {m: SP.TraderModel(target_positions=config.target(m))
                       for m in config.markets}
        n_wallets = max(int(SP.WALLETS_PER_POSITION * sum(config.target(m)
                                                          for m in config.markets)), 1)
        self.wallet_keys = self.rng.bytes(32 * n_wallets)
        self.n_wallets = n_wallets
        self.custodies = {a: CustodyState(custody_template(a, self.chain_time(self.minute)))
                          for a in SP.POOL_ASSETS}
        self.events: dict[str, Counter[str]] = {m: Counter() for m in config.markets}
        self._dirty: dict[str, set[int]] = {m: set() for m in config.markets}
        self._jlp_supply_units: int | None = None  # the JLP mint, written once
        #: rows the price has crossed this minute: only the liquidation may touch them
        self._doomed: dict[str, set[int]] = {m: set() for m in config.markets}
        self._warmed = False

    # ---------------------------------------------------------------- time
    def chain_time(self, minute: int) -> int:
        """Chain time (unix s) of simulated minute `minute`."""
        return self.start_time_s + SP.SECONDS_PER_MINUTE * minute

    # ---------------------------------------------------------------- warm-up
    def warm_up(self, progress: Callable[[int], object] | None = None) -> None:
        """Seed positions opened before the warm-up, then simulate the warm-up minutes (history
        ending at the start prices). Accounts are not written; `initial_writes` has them."""
        if self._warmed:
            return
        n = self.config.warmup_min
        history = {m: history_path(replace(SP.PRICE_MODELS[m],
                                           start_price_usd=self.prices.start_prices[m]),
                                   n, self._history_rng) for m in C.MARKETS}
        first = {m: to_usd6(h[0]) if n else to_usd6(self.prices.start_prices[m])
                 for m, h in history.items()}
        self.price_usd6 = first
        for market in self.config.markets:
            self._seed_book(market)
        self._size_pool()
        for i in range(1, n + 1):
            prices = {m: (history[m][i] if i < n else self.prices.start_prices[m])
                      for m in C.MARKETS}
            self._advance({m: to_usd6(p) for m, p in prices.items()})
            if progress is not None:
                progress(1)
        self._warmed = True

    def _seed_book(self, market: str) -> None:
        """Open `target` positions as if traded before the warm-up (ages, spread entries,
        borrow fees accrued since), skipping any that would already be liquidated."""
        model = self.models[market]
        now = self.chain_time(self.minute)
        price = self.price_usd6[market]
        rng = self._history_rng
        for _ in range(model.target_positions * 3):
            if len(self.books[market].open_rows()) >= model.target_positions:
                break
            age_s = int(rng.exponential(SP.HISTORY_MEAN_AGE_MIN) * SP.SECONDS_PER_MINUTE)
            entry = int(price * math.exp(model.history_spread * rng.standard_normal()))
            order = T.draw_order(self.rng, model, entry, self.custodies[market].template)
            self._open(market, order, price, now, age_s=age_s)

    def _size_pool(self) -> None:
        """Pool liquidity so utilization starts at each asset's typical value."""
        for asset, state in self.custodies.items():
            util = SP.ASSETS[asset].start_utilization
            floor = 10 ** SP.ASSETS[asset].decimals * 1000
            state.owned = max(int(state.locked / util), floor)

    # ---------------------------------------------------------------- stepping
    def step(self) -> MinuteReport | None:
        """Simulate the next minute and report it (None when a replayed price series has
        ended); `changed_writes()` then has the accounts to write."""
        self.warm_up()
        prices = self.prices.next()
        if prices is None:
            return None
        return self._advance({m: to_usd6(p) for m, p in prices.items()})

    def _advance(self, prices_usd6: dict[str, int]) -> MinuteReport:
        self.minute += 1
        now = self.chain_time(self.minute)
        self.price_usd6 = prices_usd6
        for state in self.custodies.values():
            state.accrue(now)
        report = MinuteReport(self.minute, now, dict(prices_usd6))
        for market in self.config.markets:
            self._trade(market, now, report)
            self._liquidate(market, now, report)
        return report

    def _trade(self, market: str, now: int, report: MinuteReport) -> None:
        model, book, price = self.models[market], self.books[market], self.price_usd6[market]
        rows = book.open_rows()
        # a position the price has crossed belongs to the liquidator, not its trader
        doomed = T.liquidatable(book.view(), self.custodies[market].custody(),
                                self.cum_now(market), price)
        self._doomed[market] = set(np.flatnonzero(doomed).tolist())
        rows = rows[~doomed[rows]]
        hazard = T.hold_hazards(book.view()[rows], model)
        u = self.rng.random(len(rows)) / hazard
        act = np.flatnonzero(u < 1 + model.partial_close_share + model.increase_share)
        for row, uu in zip(rows[act].tolist(), u[act].tolist(), strict=True):
            if uu < 1:
                self._close(market, row, 1.0, now, report)
            elif uu < 1 + model.partial_close_share:
                self._close(market, row, self.rng.uniform(0.2, 0.8), now, report)
            else:
                self._increase(market, row, self.rng.uniform(0.2, 1.0), now, report)
        for order in self.limits[market].pop_triggered(price, self.minute):
            self._open(market, order, price, now, report=report, kind="limit_fill")
        rate = self._new_order_rate(market, float(hazard.sum()))
        for _ in range(self.rng.poisson(rate * (1 - model.limit_share))):
            order = T.draw_order(self.rng, model, price, self.custodies[market].template)
            self._open(market, order, price, now, report=report)
        for _ in range(self.rng.poisson(rate * model.limit_share * SP.LIMIT_PLACEMENT_FACTOR)):
            self._place_limit(market, price)

    def _new_order_rate(self, market: str, closing_rate: float) -> float:
        """New positions per minute: replace closes, pulled toward the target count."""
        target = self.models[market].target_positions
        n_open = len(self.books[market].open_rows())
        pull = (target / max(n_open, 1)) ** 2
        base = max(closing_rate, target / self.models[market].mean_hold_min)
        return min(base * pull, target * SP.MAX_FILL_SHARE_PER_MIN)

    def _place_limit(self, market: str, price: int) -> None:
        model = self.models[market]
        order = T.draw_order(self.rng, model, price, self.custodies[market].template)
        level = T.limit_level_usd6(self.rng, order.side, price, model)
        expiry = self.minute + 1 + int(self.rng.exponential(model.limit_expiry_min))
        self.limits[market].add(replace(order, entry_usd6=level), expiry)

    # ---------------------------------------------------------------- position changes
    def _cum(self, market: str, code: int) -> int:
        asset = market if code == T.COLLATERAL_ASSET else T.STABLE_OF_CODE[code]
        return self.custodies[asset].cumulative_interest_rate

    def _open(self, market: str, order: T.Order, price: int, now: int, *, age_s: int = 0,
              report: MinuteReport | None = None, kind: str = "open") -> None:
        """Open `order` (or add it to the wallet's open position of the same slot)."""
        custody = self.custodies[market].template
        lev = min(order.leverage, T.max_safe_leverage(order.side, order.entry_usd6, price,
                                                      custody))
        if lev < 1.1:
            return
        order = replace(order, leverage=lev)
        wallet = int(self.rng.integers(self.n_wallets))
        key = self.wallet_keys[32 * wallet:32 * wallet + 32]
        collateral = C.CUSTODY_BY_ASSET[market if order.collateral_code == T.COLLATERAL_ASSET
                                        else T.STABLE_OF_CODE[order.collateral_code]]
        book = self.books[market]
        cum = self._cum(market, order.collateral_code)
        snapshot = self._snapshot(cum, market, order, age_s)
        trial = empty_positions(1)
        trial["side"] = order.side
        T.open_fields(trial[0], order, now - age_s, snapshot, custody)
        if not T.is_safe(trial[0], custody, cum, price):
            return
        row = book.row_for(wallet, key, order.side, order.collateral_code, collateral)
        if row in self._doomed[market]:  # the liquidator comes first
            return
        if book.records[row]["size_usd"] > 0:
            self._increase(market, row, order.size_usd6 / int(book.records[row]["size_usd"]),
                           now, report, leverage=lev)
            return
        before = book.records[row].copy()
        cash = T.open_fields(book.records[row], order, now - age_s, snapshot, custody)
        self._settle(market, row, before, cash, order.entry_usd6)
        self._count(market, kind, report)

    def _snapshot(self, cum: int, market: str, order: T.Order, age_s: int) -> int:
        """The borrow counter a position opened `age_s` ago started from."""
        if age_s <= 0:
            return cum
        asset = market if order.collateral_code == T.COLLATERAL_ASSET else \
            T.STABLE_OF_CODE[order.collateral_code]
        state = self.custodies[asset]
        typical = replace(state.custody(), locked=int(SP.ASSETS[asset].start_utilization * 1e9),
                          owned=10**9)
        return max(cum - perps.hourly_borrow_rate(typical) * age_s // C.SECONDS_PER_HOUR, 0)

    def _close(self, market: str, row: int, fraction: float, now: int,
               report: MinuteReport) -> None:
        book = self.books[market]
        before = book.records[row].copy()
        code = int(book.collateral_code[row])
        price, cum = self.price_usd6[market], self._cum(market, code)
        custody = self.custodies[market].template
        if fraction < 1.0:  # a partial close never leaves the rest past its liquidation price
            trial = before.reshape(1).copy()
            T.closed_fraction(trial[0], fraction, price, now, cum, custody)
            if T.liquidatable(trial, custody, np.array([cum], U64), price)[0]:
                return
        cash = T.closed_fraction(book.records[row], fraction, price, now, cum, custody)
        self._settle(market, row, before, cash, price)
        kind = "close" if book.records[row]["size_usd"] == 0 else "partial_close"
        if kind == "close":
            report.closes.append((market, book.pubkeys[row]))
        self._count(market, kind, report)

    def _increase(self, market: str, row: int, fraction: float, now: int,
                  report: MinuteReport | None, leverage: float | None = None) -> None:
        book = self.books[market]
        rec = book.records[row]
        price = self.price_usd6[market]
        custody = self.custodies[market].template
        lev = leverage or max(int(rec["size_usd"]) / max(int(rec["collateral_usd"]), 1), 1.1)
        add = int(int(rec["size_usd"]) * fraction)
        if custody.max_position_size_usd6:
            add = min(add, custody.max_position_size_usd6 - int(rec["size_usd"]))
        if add <= 0:
            return
        cum = self._cum(market, int(book.collateral_code[row]))
        trial = rec.copy().reshape(1)
        T.increased(trial[0], add, lev, price, now, cum, custody)
        if not T.is_safe(trial[0], custody, cum, price):
            return
        before = rec.copy()
        cash = T.increased(book.records[row], add, lev, price, now, cum, custody)
        self._settle(market, row, before, cash, price)
        self._count(market, "increase", report)

    def _liquidate(self, market: str, now: int, report: MinuteReport) -> None:
        book = self.books[market]
        cum = self.cum_now(market)
        price = self.price_usd6[market]
        hit = T.liquidatable(book.view(), self.custodies[market].custody(), cum, price)
        for row in np.flatnonzero(hit).tolist():
            before = book.records[row].copy()
            report.liquidations.append(Liquidation(market, book.pubkeys[row],
                                                   before.reshape(1).copy(), int(cum[row]),
                                                   price))
            T.liquidated(book.records[row], now)
            self._settle(market, row, before, 0, price)
            self._count(market, "liquidation", report)

    def _settle(self, market: str, row: int, before: np.ndarray, cash_usd6: int,
                price_usd6: int) -> None:
        """Custodies after a position change from `before` to the book's row."""
        book = self.books[market]
        after = book.records[row]
        self._dirty[market].add(row)
        asset = self.custodies[market]
        d_locked = int(after["locked_amount"]) - int(before["locked_amount"])
        if int(after["side"]) == C.SIDE_LONG:
            asset.locked += d_locked
            asset.guaranteed_usd6 += (int(after["size_usd"]) - int(after["collateral_usd"])) \
                - (int(before["size_usd"]) - int(before["collateral_usd"]))
            asset.owned += cash_usd6 * 10**asset.template.decimals // price_usd6
            return
        stable = self.custodies[T.STABLE_OF_CODE[int(book.collateral_code[row])]]
        stable.locked += d_locked
        stable.owned += cash_usd6
        asset.add_short(int(after["size_usd"]) - int(before["size_usd"]), price_usd6)

    def _count(self, market: str, kind: str, report: MinuteReport | None) -> None:
        self.events[market][kind] += 1
        if report is not None:
            report.events[f"{market}:{kind}"] += 1

    # ---------------------------------------------------------------- accounts
    def initial_writes(self) -> list[AccountWrite]:
        """Every account of the market at minute 0: pool, custodies, feeds, all positions."""
        self.warm_up()
        writes = self._fixed_writes()
        for market, book in self.books.items():
            writes += _position_writes(book, range(book.n))
            self._dirty[market].clear()
        return writes + self.closed_writes()

    def closed_writes(self) -> list[AccountWrite]:
        """The config's extra closed Position accounts (own random stream: the market's
        draws are the same with or without them)."""
        rng = np.random.default_rng([self.config.seed, SP.CLOSED_ACCOUNTS_STREAM])
        keys, records = T.closed_accounts(self.config.closed_accounts, self.config.markets,
                                          rng, self.start_time_s)
        return [AccountWrite(k, blob, SP.PERPS_OWNER)
                for k, blob in zip(keys, encode_positions(records), strict=True)]

    def changed_writes(self) -> list[AccountWrite]:
        """Accounts changed since the last `initial_writes`/`changed_writes`: pool,
        custodies and feeds (they change every minute) and the positions that changed."""
        writes = self._fixed_writes()
        for market, book in self.books.items():
            writes += _position_writes(book, sorted(self._dirty[market]))
            self._dirty[market].clear()
        return writes

    def _fixed_writes(self) -> list[AccountWrite]:
        now = self.chain_time(self.minute)
        custodies = {a: s.custody() for a, s in self.custodies.items()}
        prices = {**self.price_usd6, **{s: to_usd6(SP.STABLE_PRICE_USD) for s in C.STABLES}}
        pool = replace(SP.POOL_BASE,
                       custodies=tuple(C.CUSTODY_BY_ASSET[a] for a in SP.POOL_ASSETS),
                       aum_usd6=pool_aum_usd6(custodies, prices), apr_last_updated=now)
        writes = [AccountWrite(C.POOL_ADDRESS, encode_pool(pool), SP.PERPS_OWNER)]
        if self._jlp_supply_units is None:  # once: no mints or burns are simulated
            self._jlp_supply_units = jlp_supply(pool.aum_usd6)
            writes.append(AccountWrite(C.JLP_MINT, encode_spl_mint(self._jlp_supply_units,
                                                                   C.JLP_DECIMALS),
                                       C.TOKEN_PROGRAM_ID))
        for asset, custody in custodies.items():
            writes.append(AccountWrite(C.CUSTODY_BY_ASSET[asset], encode_custody(custody),
                                       SP.PERPS_OWNER))
            feed = price_feed(asset, prices[asset], now)
            writes.append(AccountWrite(custody.doves_ag_oracle, encode_ag_price_feed(feed),
                                       SP.DOVES_OWNER))
        return writes

    # ---------------------------------------------------------------- views
    def custody(self, asset: str) -> Custody:
        """The current Custody account of `asset`."""
        return self.custodies[asset].custody()

    def cum_now(self, market: str) -> np.ndarray:
        """Each position's collateral-custody counter now (uint64 per book row, RATE-9)."""
        book = self.books[market]
        table = np.array([self._cum(market, c) for c in range(3)], dtype=U64)
        return table[book.collateral_code[:book.n]]


def _position_writes(book: T.Book, rows: object) -> list[AccountWrite]:
    idx = np.fromiter(rows, dtype=np.int64)  # type: ignore[call-overload]
    if len(idx) == 0:
        return []
    blobs = encode_positions(book.records[idx])
    return [AccountWrite(book.pubkeys[i], blob, SP.PERPS_OWNER)
            for i, blob in zip(idx.tolist(), blobs, strict=True)]


def jlp_supply(aum_usd6: int) -> int:
    """JLP supply (base units) that prices JLP at SP.JLP_PRICE_USD for a pool of `aum_usd6`."""
    return max(int(aum_usd6 / SP.JLP_PRICE_USD), 1) * 10**C.JLP_DECIMALS // C.USD_PRECISION


def pool_aum_usd6(custodies: dict[str, Custody], prices_usd6: dict[str, int]) -> int:
    """Pool AUM (USD-6) from the custodies as in spec §8 (stables at max(1, price))."""
    total = 0
    for asset, k in custodies.items():
        price = prices_usd6[asset]
        if k.is_stable:
            total += k.owned * max(price, C.USD_PRECISION) // 10**k.decimals
            continue
        aum = k.guaranteed_usd6 + max(k.owned - k.locked, 0) * price // 10**k.decimals
        avg = k.global_short_average_price_usd6
        if avg:
            pnl = k.global_short_sizes_usd6 * abs(avg - price) // avg
            aum = aum + pnl if price > avg else max(aum - pnl, 0)
        total += aum
    return total
