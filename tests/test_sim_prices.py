"""Price paths: volatility clusters and jumps, seeded; real series replayed from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liqmap.errors import InputError
from liqmap.sim import params as SP
from liqmap.sim.prices import PriceGenerator, PriceSource, history_path, load_price_series


@pytest.fixture(scope="module")
def paths() -> dict[str, np.ndarray]:
    """Two simulated weeks of minute prices of every market."""
    return PriceGenerator(SP.PRICE_MODELS, np.random.default_rng(4)).take(20_160)


def _acf(x: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1])


@pytest.mark.parametrize("market", ["SOL", "ETH", "BTC"])
def test_volatility_clusters_and_jumps(paths: dict[str, np.ndarray], market: str) -> None:
    r = np.diff(np.log(paths[market]))
    abs_r = np.abs(r)
    assert _acf(abs_r, 1) > 0.15 and _acf(abs_r, 30) > 0.05  # clustering (real SOL: 0.40, 0.17)
    assert abs(_acf(r, 1)) < 0.05  # but no predictable direction
    kurtosis = float(((r - r.mean()) ** 4).mean() / r.var() ** 2)
    assert kurtosis > 6  # fat tails from jumps (real SOL: 33; Gaussian: 3)
    annual = r.std() * np.sqrt(SP.MINUTES_PER_YEAR) / SP.PRICE_MODELS[market].annual_vol
    assert 0.8 < annual < 1.6  # jumps add to the diffusion's volatility


def test_markets_move_together(paths: dict[str, np.ndarray]) -> None:
    sol, eth = (np.diff(np.log(paths[m])) for m in ("SOL", "ETH"))
    assert 0.4 < np.corrcoef(sol, eth)[0, 1] < 0.85


def test_same_seed_same_path_other_seed_other_path() -> None:
    def path(seed: int) -> np.ndarray:
        return PriceGenerator(SP.PRICE_MODELS, np.random.default_rng(seed)).take(500)["SOL"]

    assert np.array_equal(path(1), path(1))
    assert not np.array_equal(path(1), path(2))


def test_history_ends_at_the_start_price() -> None:
    model = SP.PRICE_MODELS["SOL"]
    hist = history_path(model, 600, np.random.default_rng(0))
    assert len(hist) == 600
    step = abs(np.log(hist[-1] / model.start_price_usd))
    assert step < 0.02 and not np.allclose(hist, model.start_price_usd)


def test_replay_the_real_spot_grid(real_matrix_path: Path) -> None:
    series = load_price_series(real_matrix_path)
    with np.load(real_matrix_path) as data:
        assert np.array_equal(series, data["spot_grid"])
    source = PriceSource(SP.PRICE_MODELS, np.random.default_rng(0), replay=series[:4])
    assert source.start_prices["SOL"] == series[0]
    assert [source.next()["SOL"] for _ in range(3)] == list(series[1:4])  # type: ignore[index]
    assert source.next() is None


def test_csv_is_resampled_to_minutes(tmp_path: Path) -> None:
    csv = tmp_path / "prices.csv"
    csv.write_text("timestamp,price\n2025-08-22T00:00:00Z,180\n2025-08-22T00:00:30Z,181\n"
                   "2025-08-22T00:01:10Z,182\n2025-08-22T00:03:00Z,179.5\n")
    assert load_price_series(csv).tolist() == [181.0, 182.0, 182.0, 179.5]
    unix = tmp_path / "unix.csv"
    unix.write_text("time,close\n1755820800,180\n1755820860,181\n")
    assert load_price_series(unix).tolist() == [180.0, 181.0]


@pytest.mark.parametrize(("name", "text", "needle"), [
    ("no_price.csv", "timestamp,volume\n1755820800,3\n", "price column"),
    ("short.csv", "timestamp,price\n1755820800,180\n", "at least 2"),
    ("missing.csv", None, "does not exist"),
])
def test_bad_price_files_name_the_fix(tmp_path: Path, name: str, text: str | None,
                                      needle: str) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=needle) as err:
        load_price_series(path)
    assert "\n" not in str(err.value)
