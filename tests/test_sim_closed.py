"""Mainnet-shaped simulator: extra closed Position accounts (sizeUsd 0), spread as on chain."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from liqmap import constants as C
from liqmap.collect.loop import Collector
from liqmap.collect.resync import Scanner
from liqmap.collect.rpc import RpcClient, Transport
from liqmap.config import load_settings
from liqmap.jupiter.decode import decode_positions, pubkeys_to_base58
from liqmap.sim.market import MarketSim, SimConfig
from liqmap.sim.traders import closed_accounts, position_address
from liqmap.sim.writer import ChainWriter, publish_initial
from liqmap.store import Store


def test_closed_accounts_are_spread_over_markets_sides_and_collateral() -> None:
    keys, rec = closed_accounts(3000, ("SOL", "ETH", "BTC"), np.random.default_rng(4),
                                now_s=1_800_000_000)
    assert len(set(keys)) == 3000 and (rec["size_usd"] == 0).all()
    decoded = decode_positions(keys, _blobs(rec))
    assert decoded.n_closed == 3000 and decoded.n_errors == 0 and len(decoded.records) == 0
    custody = Counter(pubkeys_to_base58(rec["custody"]))
    assert set(custody) == {C.CUSTODY_BY_ASSET[m] for m in ("SOL", "ETH", "BTC")}
    assert min(custody.values()) > 800
    sides = rec["side"]
    assert 1300 < (sides == C.SIDE_LONG).sum() < 1700
    collateral = np.array(pubkeys_to_base58(rec["collateral_custody"]))
    longs = sides == C.SIDE_LONG
    assert (collateral[longs] == np.array(pubkeys_to_base58(rec["custody"]))[longs]).all()
    shorts = Counter(collateral[~longs])
    assert set(shorts) == {C.CUSTODY_BY_ASSET["USDC"], C.CUSTODY_BY_ASSET["USDT"]}
    assert shorts[C.CUSTODY_BY_ASSET["USDC"]] > 3 * shorts[C.CUSTODY_BY_ASSET["USDT"]]
    i = 17
    assert position_address(bytes(rec["owner"][i]), pubkeys_to_base58(rec["custody"][i:i + 1])[0],
                            collateral[i], int(sides[i]))[0] == keys[i]
    assert (rec["update_time"] < 1_800_000_000).all()


def _blobs(rec: np.ndarray) -> list[bytes]:
    from liqmap.jupiter.encode import encode_positions

    return encode_positions(rec)


def test_closed_accounts_do_not_change_the_market() -> None:
    plain = MarketSim(SimConfig(markets=("SOL",), positions={"SOL": 50}, warmup_min=5), 0)
    shaped = MarketSim(SimConfig(markets=("SOL",), positions={"SOL": 50}, warmup_min=5,
                                 closed_accounts=25), 0)
    a, b = plain.initial_writes(), shaped.initial_writes()
    assert len(b) == len(a) + 25 and b[:len(a)] == a
    assert shaped.closed_writes() == b[len(a):]  # same seed, same accounts


@pytest.mark.surfnet
def test_collector_and_key_scan_skip_closed_accounts_on_surfnet(surfnet, tmp_path) -> None:
    sim = MarketSim(SimConfig(markets=("SOL",), positions={"SOL": 40}, warmup_min=10,
                              closed_accounts=300), 0)
    sim.start_time_s = (surfnet.chain_time() // 60 + 1) * 60
    publish_initial(sim, ChainWriter(surfnet))
    open_keys = {sim.books["SOL"].pubkeys[i] for i in sim.books["SOL"].open_rows()}
    settings = load_settings({"rpc_urls": surfnet.rpc_url, "markets": "SOL", "mode": "poll",
                              "data_dir": str(tmp_path)}, environ={})
    [result] = Collector(settings, Store(str(tmp_path))).collect_once(
        pd.Timestamp(sim.chain_time(0), unit="s", tz="UTC"))
    assert result.stored, result.error
    assert set(Store(str(tmp_path)).read_positions("SOL").column("pubkey").to_pylist()) == \
        open_keys
    with Transport([surfnet.rpc_url]) as transport:
        scan = Scanner(RpcClient(transport), method="keys").scan(C.CUSTODY_BY_ASSET["SOL"])
    assert set(scan.positions) == open_keys
