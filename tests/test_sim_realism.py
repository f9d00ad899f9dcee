"""Does a simulated heatmap look like a real one? The simulator replays the real 72-hour SOL
price path of ../shared/data/liq_matrix_72h_1m.npz; its positions' exact liquidation prices are
binned like the real matrix (0.1 USD bins, 170-220 USD, tokens) and both matrices' summary
statistics are compared. Tolerances cover the spread over seeds (docs/simulator.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.realism import MatrixStats, matrix_stats, simulated_column

START_S = 1_795_000_001

#: statistic -> (lowest, highest) accepted as a multiple of the real value
RELATIVE_BOUNDS = {
    "share_2pct": (0.5, 1.5),
    "share_5pct": (0.7, 1.3),
    "share_10pct": (0.8, 1.2),
    "empty_zone_pct": (0.5, 1.5),
}


@pytest.fixture(scope="module")
def real(real_matrix_path: Path) -> dict[str, np.ndarray]:
    with np.load(real_matrix_path) as data:
        return {k: data[k] for k in ("Z", "y_edges", "spot_grid")}


@pytest.fixture(scope="module")
def stats(real: dict[str, np.ndarray]) -> tuple[MatrixStats, MatrixStats]:
    """(real, simulated) statistics over the whole 68-hour price path."""
    spot, edges = real["spot_grid"], real["y_edges"]
    sim = MarketSim(SimConfig(markets=("SOL",), price_series=spot), START_S)
    sim.warm_up()
    columns = [simulated_column(sim, "SOL", edges)]
    while sim.step() is not None:
        columns.append(simulated_column(sim, "SOL", edges))
    z_sim = np.array(columns).T
    assert z_sim.shape == real["Z"].shape
    return matrix_stats(real["Z"], edges, spot), matrix_stats(z_sim, edges, spot)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELATIVE_BOUNDS))
def test_amount_near_the_price_and_empty_zone_match(stats, name: str) -> None:
    real, sim = (s.as_dict()[name] for s in stats)
    low, high = RELATIVE_BOUNDS[name]
    assert low * real <= sim <= high * real, f"{name}: simulated {sim:.4f}, real {real:.4f}"


@pytest.mark.slow
def test_mostly_longs_below_the_price(stats) -> None:
    real, sim = stats
    assert abs(sim.below_share - real.below_share) < 0.1


@pytest.mark.slow
def test_bands_persist_but_churn(stats) -> None:
    real, sim = stats
    assert sim.persistence_corr > 0.995 and real.persistence_corr > 0.995
    real_churn, sim_churn = 1 - real.persistence_overlap, 1 - sim.persistence_overlap
    assert real_churn / 3 < sim_churn < real_churn * 3
    assert sim.lag60_corr > 0.8
