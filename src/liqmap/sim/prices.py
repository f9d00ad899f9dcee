"""Price paths: a seeded stochastic model, or a real series replayed from a file.

`PriceGenerator` is pure computation (a numpy Generator in, prices out) and streams minute by
minute, so an unbounded run (until Ctrl-C) never precomputes. `load_price_series` reads a file.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from liqmap.errors import InputError
from liqmap.pricecsv import read_price_csv
from liqmap.sim import params as SP


class PriceGenerator:
    """Correlated minute prices (USD) of several markets from `PriceModel`s.

    Each market's log return is `sqrt(h_t) * z_t + jump_t`, where `h_t` follows GARCH(1,1)
    (volatility clusters), `z_t` are Gaussian shocks sharing one common factor (correlation
    `correlation`), and jumps arrive as a Poisson process with Laplace sizes. Deterministic for
    a given `rng` state.
    """

    def __init__(self, models: dict[str, SP.PriceModel], rng: np.random.Generator, *,
                 correlation: float = SP.PRICE_CORRELATION) -> None:
        self.markets = list(models)
        self.models = models
        self.rng = rng
        self.correlation = correlation
        self._long_var = np.array([m.annual_vol**2 / SP.MINUTES_PER_YEAR
                                   for m in models.values()])
        self._alpha = np.array([m.garch_alpha for m in models.values()])
        self._beta = np.array([m.garch_beta for m in models.values()])
        self._omega = self._long_var * (1.0 - self._alpha - self._beta)
        self._jump_rate = np.array([m.jumps_per_day / 1440.0 for m in models.values()])
        self._jump_scale = np.array([m.jump_scale for m in models.values()])
        self._var = self._long_var.copy()
        self._last_shock = np.zeros(len(models))
        self._log_price = np.log([m.start_price_usd for m in models.values()])

    def take(self, n_minutes: int) -> dict[str, np.ndarray]:
        """The next `n_minutes` prices per market (USD, float64 [n_minutes])."""
        out = np.empty((n_minutes, len(self.markets)))
        for i in range(n_minutes):
            out[i] = np.exp(self._advance())
        return {m: out[:, j] for j, m in enumerate(self.markets)}

    def _advance(self) -> np.ndarray:
        self._var = np.minimum(
            self._omega + self._alpha * self._last_shock**2 + self._beta * self._var,
            self._long_var * SP.MAX_VARIANCE_MULTIPLE)
        common = self.rng.standard_normal()
        own = self.rng.standard_normal(len(self.markets))
        rho = self.correlation
        z = math.sqrt(rho) * common + math.sqrt(1.0 - rho) * own
        shock = np.sqrt(self._var) * z
        jump = self._jumps()
        self._last_shock = shock + jump
        self._log_price = self._log_price + shock + jump - 0.5 * self._var
        return self._log_price

    def _jumps(self) -> np.ndarray:
        hit = self.rng.random(len(self.markets)) < self._jump_rate
        return np.where(hit, self.rng.laplace(0.0, self._jump_scale), 0.0)


def history_path(model: SP.PriceModel, n_minutes: int, rng: np.random.Generator) -> np.ndarray:
    """`n_minutes` prices (USD) that END at `model.start_price_usd` (the warm-up's past)."""
    if n_minutes <= 0:
        return np.zeros(0)
    path = PriceGenerator({"X": model}, rng, correlation=0.0).take(n_minutes + 1)["X"]
    return path[:-1] * (model.start_price_usd / path[-1])


def load_price_series(path: str | Path) -> np.ndarray:
    """Minute prices (USD, float64) from `path`, for `--price-from`.

    An `.npz` must hold `spot_grid` (one price per minute, like the real liquidation matrix);
    any other file is read as CSV with a time column and a price column (`timestamp,price`,
    also `time`/`close`), resampled to one price per minute (last price, carried forward).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"price file {path} does not exist; pass an npz with `spot_grid` or "
                         "a CSV with timestamp,price")
    prices = _load_npz(path) if path.suffix == ".npz" else _load_csv(path)
    prices = prices[np.isfinite(prices)]
    if len(prices) < 2 or (prices <= 0).any():
        raise InputError(f"{path}: need at least 2 positive prices, got {len(prices)} usable; "
                         "check the price column")
    return prices


def _load_npz(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "spot_grid" not in data.files:
                raise InputError(f"{path} has no `spot_grid` array (keys: "
                                 f"{', '.join(data.files)}); pass a liquidation-matrix npz")
            return np.asarray(data["spot_grid"], dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}; pass an npz with `spot_grid`") from exc


def _load_csv(path: Path) -> np.ndarray:
    """One price per minute from the first to the last minute of a price CSV (the last price
    of each minute, carried forward over minutes without one)."""
    minutes, prices = read_price_csv(path)
    series = pd.Series(prices, index=minutes)
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if series.empty:
        return np.zeros(0)
    full = np.arange(series.index[0], series.index[-1] + 1)
    return series.reindex(full).ffill().to_numpy(dtype=np.float64)


class PriceSource:
    """Minute prices (USD) of every pool market: the stochastic model, with one market
    optionally replaying a real series (`replay`, one price per minute from minute 0).

    `start_prices` are the minute-0 prices; `next()` returns minute 1, 2, ... and None once a
    replayed series is exhausted.
    """

    def __init__(self, models: dict[str, SP.PriceModel], rng: np.random.Generator, *,
                 replay: np.ndarray | None = None, replay_market: str = "SOL") -> None:
        if replay is not None and replay_market not in models:
            raise InputError(f"cannot replay prices for {replay_market}; choose one of "
                             f"{', '.join(models)}")
        self.replay = replay
        self.replay_market = replay_market
        if replay is not None:
            models = {**models, replay_market: _with_start(models[replay_market],
                                                           float(replay[0]))}
        self.models = models
        self.generator = PriceGenerator(models, rng)
        self.start_prices = {m: model.start_price_usd for m, model in models.items()}
        self.minute = 0

    def next(self) -> dict[str, float] | None:
        """Prices of the next minute, or None when the replayed series has ended."""
        if self.replay is not None and self.minute + 1 >= len(self.replay):
            return None
        self.minute += 1
        prices = {m: float(p[0]) for m, p in self.generator.take(1).items()}
        if self.replay is not None:
            prices[self.replay_market] = float(self.replay[self.minute])
        return prices

    @property
    def minutes_left(self) -> int | None:
        """Minutes until a replayed series ends (None: unbounded)."""
        return None if self.replay is None else len(self.replay) - 1 - self.minute


def _with_start(model: SP.PriceModel, price_usd: float) -> SP.PriceModel:
    return replace(model, start_price_usd=price_usd)
