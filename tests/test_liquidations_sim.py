"""Realized liquidations end to end on a real local node: the simulator liquidates at the exact
computed price and knows its traders' closes (its ground-truth log); the real collector,
reading the node's JSON-RPC, must detect every liquidation with the right kind, call no trader
close a liquidation, and the map must score 1.0 against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.collect.loop import Collector
from liqmap.config import Settings
from liqmap.score.report import score_store
from liqmap.sim.demo import _simulate_and_collect
from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.truth import read_truth
from liqmap.sim.writer import ChainWriter, start_time_s
from liqmap.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.surfnet]
MINUTES = 24


def _sell_off() -> np.ndarray:
    """SOL falls 9 % in 14 minutes, then recovers: long clusters are swept."""
    return np.r_[np.full(3, 150.0), np.linspace(150.0, 136.5, 14), np.linspace(136.5, 146.0, 9)]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    from liqmap.sim.surfnet import Surfnet

    from conftest import skip_or_fail_without_surfnet

    skip_or_fail_without_surfnet()
    out = tmp_path_factory.mktemp("sim")
    config = SimConfig(markets=("SOL", "ETH"), seed=5, positions={"SOL": 600, "ETH": 300},
                       price_series=_sell_off(), price_market="SOL")
    with Surfnet() as node:
        store_dir = out / "store"
        settings = Settings(rpc_urls=(node.rpc_url,), data_dir=str(store_dir),
                            markets=config.markets, clock="chain", mode="poll", max_retries=2)
        collector = Collector(settings, Store(str(store_dir)))
        try:
            _simulate_and_collect(MarketSim(config, start_time_s(node)), ChainWriter(node),
                                  collector, store_dir, MINUTES, lambda _: None, False,
                                  truth_path=out / "truth.csv")
        finally:
            collector.client.transport.close()
    return out / "store", read_truth(out / "truth.csv")


def test_every_simulated_liquidation_is_detected_with_its_kind(simulated) -> None:
    store_dir, truth = simulated
    store = Store(str(store_dir))
    n_liq = 0
    for market in ("SOL", "ETH"):
        detected = store.read_liquidations(market)
        t = truth[truth["market"] == market]
        liq = set(zip(t.loc[t["kind"] == "liquidated", "pubkey"],
                      t.loc[t["kind"] == "liquidated", "ts"], strict=True))
        closed = set(zip(t.loc[t["kind"] == "closed", "pubkey"],
                         t.loc[t["kind"] == "closed", "ts"], strict=True))
        got_liq = set(zip(detected.loc[detected["kind"] == "liquidated", "pubkey"],
                          detected.loc[detected["kind"] == "liquidated", "ts"], strict=True))
        got_closed = set(zip(detected.loc[detected["kind"] == "closed", "pubkey"],
                             detected.loc[detected["kind"] == "closed", "ts"], strict=True))
        assert got_liq == liq  # every liquidation, at its minute, and nothing else
        assert not closed & got_liq  # no trader close called a liquidation
        # every detected close is a trader close (a close reopened within the same minute is
        # invisible to minute snapshots, so truth may hold a few more)
        assert got_closed <= closed
        assert len(got_closed) >= 0.9 * len(closed)
        n_liq += len(liq)
    assert n_liq >= 10  # the sell-off did liquidate


def test_detected_rows_carry_the_simulated_prices(simulated) -> None:
    store_dir, truth = simulated
    detected = Store(str(store_dir)).read_liquidations("SOL", kind="liquidated")
    t = truth[(truth["market"] == "SOL") & (truth["kind"] == "liquidated")]
    merged = detected.merge(t, on=["pubkey", "ts"], suffixes=("", "_truth"))
    assert len(merged) == len(t) > 0
    # the level re-priced to the liquidation minute is exactly the simulator's crossed level
    assert np.allclose(merged["liq_price_now"], merged["liq_price_usd"], rtol=0, atol=1e-6)
    assert np.allclose(merged["oracle_price_after"], merged["price_usd"], rtol=0, atol=1e-6)
    assert np.allclose(merged["size_usd"], merged["size_usd_truth"], rtol=0, atol=1e-6)
    assert not detected["confirmed"].any()  # surfnet runs no Jupiter program


def test_the_map_scores_one_on_simulated_data(simulated) -> None:
    store_dir, _ = simulated
    score = score_store(Store(str(store_dir)), "SOL")
    s = score.summary
    assert s["realized"]["positions"] >= 5
    assert s["precision"] == {"by_position": 1.0, "by_volume": 1.0}
    assert s["recall"] == {"by_position": 1.0, "by_volume": 1.0}
    assert s["misses"]["positions"] == 0
    assert s["lead_time_min"]["n"] == s["realized"]["positions"]


def test_simulate_writes_its_ground_truth(tmp_path: Path) -> None:
    from liqmap.sim.session import run_simulation
    from liqmap.sim.truth import COLUMNS

    from conftest import skip_or_fail_without_surfnet

    skip_or_fail_without_surfnet()
    path = tmp_path / "truth.csv"
    config = SimConfig(markets=("SOL",), seed=5, positions={"SOL": 300},
                       price_series=_sell_off()[:8], price_market="SOL")
    summary = run_simulation(config, speed_s=0, minutes=7, echo=lambda _: None,
                             progress=False, truth_path=path)
    truth = read_truth(path)
    assert tuple(truth.columns) == COLUMNS
    assert (truth["kind"] == "liquidated").sum() == summary.liquidations
    assert set(truth["kind"]) <= {"liquidated", "closed"} and truth["minute"].between(1, 7).all()


def test_simulate_refuses_to_overwrite_a_truth_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from liqmap.cli import cli

    existing = tmp_path / "truth.csv"
    existing.write_text("keep me")
    result = CliRunner().invoke(cli, ["simulate", "--truth", str(existing)])
    assert result.exit_code != 0 and "exists" in result.output
    assert existing.read_text() == "keep me"
