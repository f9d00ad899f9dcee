"""The collector against a real Solana JSON-RPC server (surfnet) holding real mainnet custody and
price-feed bytes plus Position accounts built for the test; stored rows are checked against
liquidation prices computed by hand from the spec (§6.2, §6.3)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.collect.loop import Collector
from liqmap.config import load_settings
from liqmap.jupiter.accounts import Pool
from liqmap.jupiter.decode import decode_ag_price_feed_account, decode_custody
from liqmap.jupiter.encode import (
    empty_positions,
    encode_ag_price_feed,
    encode_custody,
    encode_pool,
    encode_positions,
    encode_spl_mint,
    key_bytes,
)
from liqmap.store import Store

SOL, USDC, USDT, ETH = (C.CUSTODY_BY_ASSET[k] for k in ("SOL", "USDC", "USDT", "ETH"))
HOURLY = {SOL: 15_650, USDC: 6_438, USDT: 6_438}  # spec §6.3 (FX custodies)


def pda(owner: str, custody: str, collateral: str, side: int) -> str:
    seeds = [b"position", key_bytes(owner), key_bytes(C.POOL_ADDRESS), key_bytes(custody),
             key_bytes(collateral), bytes([side])]
    return str(Pubkey.find_program_address(seeds, Pubkey.from_string(C.PERPS_PROGRAM_ID))[0])


# (owner seed, collateral custody, side, entry USD, size USD, leverage)
JLP_SUPPLY_UNITS = 2_123_456_789_012_345  # 2,123,456,789.012345 JLP
BOOK = [
    (1, SOL, 1, 150.0, 10_000, 2), (2, SOL, 1, 151.5, 25_000, 10),
    (3, SOL, 1, 149.0, 5_000, 50), (4, SOL, 1, 120.0, 1_200, 200),
    (5, USDC, 2, 150.0, 10_000, 5), (6, USDC, 2, 152.25, 40_000, 25),
    (7, USDT, 2, 148.0, 3_000, 100),
]


class Chain:
    """Accounts of a tiny SOL market written into surfnet."""

    def __init__(self, node, fx: dict[str, bytes]) -> None:
        self.node = node
        self.sol = decode_custody(fx["custody_sol"])
        self.usdc = decode_custody(fx["custody_usdc"])
        self.usdt = replace(self.usdc, mint="Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB")
        self.feed = decode_ag_price_feed_account(fx["doves_ag_sol"])
        self.now = node.chain_time()
        self.owners = [str(Pubkey.from_bytes(bytes([i]) * 32)) for i in range(1, 16)]
        self.custody_by_key = {SOL: self.sol, USDC: self.usdc, USDT: self.usdt}
        self.book: dict[str, np.ndarray] = {}
        for key, custody in self.custody_by_key.items():
            node.set_account(key, encode_custody(custody), C.PERPS_PROGRAM_ID)
        self.set_price(115.008403)
        pool = Pool(custodies=tuple(C.CUSTODY_BY_ASSET.values()), aum_usd6=943_382_147_770_150)
        node.set_account(C.POOL_ADDRESS, encode_pool(pool), C.PERPS_PROGRAM_ID)
        node.set_account(C.JLP_MINT, encode_spl_mint(JLP_SUPPLY_UNITS, C.JLP_DECIMALS),
                         C.TOKEN_PROGRAM_ID)

    def set_price(self, price_usd: float, feed_key: str | None = None) -> None:
        feed = replace(self.feed, price=round(price_usd * 1e8), timestamp=self.now - 2)
        self.node.set_account(feed_key or self.sol.doves_ag_oracle, encode_ag_price_feed(feed),
                              C.DOVES_PROGRAM_ID)

    def position(self, owner: int, collateral: str, side: int, entry: float, size: float,
                 leverage: float, *, custody: str = SOL, discriminator: bytes | None = None,
                 side_byte: int | None = None) -> tuple[str, np.ndarray]:
        rec = empty_positions(1)
        rec["owner"] = np.void(key_bytes(self.owners[owner]))
        rec["pool"] = np.void(key_bytes(C.POOL_ADDRESS))
        rec["custody"] = np.void(key_bytes(custody))
        rec["collateral_custody"] = np.void(key_bytes(collateral))
        rec["side"] = side if side_byte is None else side_byte
        rec["price"] = round(entry * 1e6)
        rec["size_usd"] = round(size * 1e6)
        rec["collateral_usd"] = round(size / leverage * 1e6)
        snap_custody = self.custody_by_key.get(collateral, self.sol)
        rec["cumulative_interest_snapshot"] = snap_custody.cumulative_interest_rate - 40_000
        rec["open_time"], rec["update_time"] = self.now - 86_400, self.now - 3_600
        blob = encode_positions(rec)[0]
        if discriminator:
            blob = discriminator + blob[8:]
        key = pda(self.owners[owner], custody, collateral, side)
        self.node.set_account(key, blob, C.PERPS_PROGRAM_ID)
        if custody == SOL and discriminator is None and side_byte is None:
            self.book[key] = rec
            self.sync_custody()
        return key, rec

    def sync_custody(self) -> None:
        """The SOL custody's open-interest totals as the program keeps them: guaranteedUsd =
        sum of (size - collateral) over longs, globalShortSizes = sum of short sizes."""
        recs = [r[0] for r in self.book.values() if int(r["size_usd"][0]) > 0]
        longs = [r for r in recs if int(r["side"]) == 1]
        self.sol = replace(
            self.sol,
            guaranteed_usd6=sum(int(r["size_usd"]) - int(r["collateral_usd"]) for r in longs),
            global_short_sizes_usd6=sum(int(r["size_usd"]) for r in recs if int(r["side"]) == 2))
        self.custody_by_key[SOL] = self.sol
        self.node.set_account(SOL, encode_custody(self.sol), C.PERPS_PROGRAM_ID)


def hand_liq_price(rec: np.ndarray, collateral: str, chain: Chain, now: int) -> float:
    """Spec §6.2/§6.3 by hand, with the FX hourly rates the spec states."""
    custody = chain.custody_by_key[collateral]
    elapsed = now - custody.funding_last_update
    cum_now = custody.cumulative_interest_rate + -(-HOURLY[collateral] * elapsed // 3600)
    size, entry, coll = int(rec["size_usd"][0]), int(rec["price"][0]), int(rec["collateral_usd"][0])
    impact = -(-size * 10_000 // 3_750_000_000_000_000)
    close_fee = size * (6 + impact) // 10_000
    borrow_fee = -(-(cum_now - int(rec["cumulative_interest_snapshot"][0])) * size // 10**9)
    max_loss = size * 10_000 // 5_000_000 + close_fee + borrow_fee
    gap = abs(max_loss - coll) * entry // size
    long = int(rec["side"][0]) == 1
    return ((entry - gap) if long == (coll >= max_loss) else (entry + gap)) / 1e6


@pytest.fixture
def fx(mainnet_accounts_path: Path) -> dict[str, bytes]:
    data = json.loads(mainnet_accounts_path.read_text())
    return {k: base64.b64decode(v["data_b64"]) for k, v in data.items()}


def collector(node, tmp_path: Path) -> tuple[Collector, Store]:
    settings = load_settings({"rpc_urls": node.rpc_url, "markets": "SOL",
                              "data_dir": str(tmp_path)}, environ={})
    store = Store(str(tmp_path))
    return Collector(settings, store), store


def test_stored_rows_match_hand_computed_liquidation_prices(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    expected = {}
    for owner, collateral, side, entry, size, lev in BOOK:
        key, rec = chain.position(owner, collateral, side, entry, size, lev)
        expected[key] = (rec, collateral)
    closed_key, _ = chain.position(8, SOL, 1, 150.0, 0.0, 1)  # size 0: closed, kept on chain
    chain.position(9, SOL, 1, 150.0, 1_000, 5, discriminator=C.POSITION_REQUEST_DISCRIMINATOR)
    bad_key, _ = chain.position(10, SOL, 1, 150.0, 1_000, 5, side_byte=0)
    chain.position(11, ETH, 1, 3000.0, 9_000, 3, custody=ETH)  # another market

    col, store = collector(surfnet, tmp_path)
    ts = pd.Timestamp("2026-11-24T08:00:00Z")
    [result] = col.collect_once(ts)
    assert result.stored and result.error is None

    rows = store.read_positions("SOL").to_pandas().set_index("pubkey")
    state = store.read_market_state("SOL").to_pylist()[0]
    assert set(rows.index) == set(expected) and closed_key not in rows.index
    assert bad_key not in rows.index and state["n_decode_errors"] == 1
    now = int(state["chain_time"].timestamp())
    assert abs(now - chain.now) <= 5
    for key, (rec, collateral) in expected.items():
        row = rows.loc[key]
        assert row["liq_price"] == pytest.approx(hand_liq_price(rec, collateral, chain, now),
                                                 abs=1e-6), key
        assert row["side"] == ("long" if rec["side"][0] == 1 else "short")
        assert row["size_tokens"] == pytest.approx(rec["size_usd"][0] / rec["price"][0])
        assert row["collateral_custody"] == collateral
        assert row["ts"] == ts and row["slot"] > 0
    long_2x = rows.loc[pda(chain.owners[1], SOL, SOL, 1)]
    assert long_2x["leverage"] == pytest.approx(2) and long_2x["owner"] == chain.owners[1]
    assert state["oracle_price"] == pytest.approx(115.008403)
    assert (state["n_positions"], state["n_long"], state["n_short"]) == (7, 4, 3)
    # spec §8 with the FX owned/locked and this book's 53,000 USD of shorts
    avg = chain.sol.global_short_average_price_usd6 / 1e6
    assert state["jlp_net_delta_tokens"] == pytest.approx(3_504_099.65 + 53_000 / avg, abs=1)
    assert state["pool_aum_usd"] == pytest.approx(943_382_147.77015)
    assert state["usdt_borrow_rate_apr"] == pytest.approx(0.0564, abs=1e-4)
    assert state["jlp_supply_tokens"] == JLP_SUPPLY_UNITS / 1e6  # read from the JLP mint


def test_closed_and_liquidated_positions_leave_the_next_snapshot(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    keys = [chain.position(o, c, s, e, z, lev)[0] for o, c, s, e, z, lev in BOOK]
    col, store = collector(surfnet, tmp_path)
    t0 = pd.Timestamp("2026-11-24T08:00:00Z")
    col.collect_once(t0)
    chain.position(3, SOL, 1, 149.0, 0.0, 1)  # the 50x long was liquidated: size set to 0
    chain.set_price(140.0)
    col.collect_once(t0 + pd.Timedelta(minutes=1))
    rows = store.read_positions("SOL").to_pandas()
    first, second = (set(g["pubkey"]) for _, g in rows.groupby("ts"))
    assert first == set(keys) and second == set(keys) - {keys[2]}
    prices = store.read_market_state("SOL").to_pandas()["oracle_price"].tolist()
    assert prices == pytest.approx([115.008403, 140.0])
    assert not col.collect_once(t0 + pd.Timedelta(minutes=1))[0].stored  # never twice


def test_oracle_address_is_read_from_the_custody(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    chain.position(*BOOK[0])
    col, store = collector(surfnet, tmp_path)
    col.collect_once(pd.Timestamp("2026-11-24T08:00:00Z"))
    rotated = str(Pubkey.from_bytes(b"\x07" * 32))
    chain.set_price(131.5, feed_key=rotated)
    chain.sol = replace(chain.sol, doves_ag_oracle=rotated)
    surfnet.set_account(SOL, encode_custody(chain.sol), C.PERPS_PROGRAM_ID)
    col.collect_once(pd.Timestamp("2026-11-24T08:01:00Z"))
    prices = store.read_market_state("SOL").to_pandas()["oracle_price"].tolist()
    assert prices == pytest.approx([115.008403, 131.5])


def test_cli_collect_once_and_status(surfnet, fx, tmp_path) -> None:
    chain = Chain(surfnet, fx)
    for row in BOOK:
        chain.position(*row)
    env_url = surfnet.rpc_url + "/?api-key=TOPSECRET"  # surfnet ignores the query string
    cmd = [sys.executable, "-m", "liqmap", "collect", "--once", "--markets", "SOL",
           "--data-dir", str(tmp_path)]
    done = subprocess.run(cmd, env={**_env(), "LIQMAP_RPC_URL": env_url}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "positions=7 (long 4, short 3)" in done.stderr and "TOPSECRET" not in done.stderr
    status = subprocess.run([sys.executable, "-m", "liqmap", "status", "--data-dir",
                             str(tmp_path)], env=_env(), capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 0 and "snapshots 1/1" in status.stdout
    assert "positions/snapshot min 7" in status.stdout


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
