"""kill -9 of a running collector at random moments: the store stays readable, holds only
whole snapshots, and a restart carries on. SIGTERM finishes the write and exits 0."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from solders.pubkey import Pubkey

from liqmap import constants as C
from liqmap.jupiter.accounts import AgPriceFeed, Custody
from liqmap.jupiter.encode import (
    empty_positions,
    encode_ag_price_feed,
    encode_custody,
    encode_positions,
    key_bytes,
)
from liqmap.store import Store

N_POSITIONS = 1500
FEED = str(Pubkey.from_bytes(b"\x05" * 32))


def _market(node) -> None:
    now = node.chain_time()
    sol = Custody(decimals=9, max_leverage_bps=5_000_000, decrease_position_bps=6,
                  trade_impact_fee_scalar=3_750_000_000_000_000, doves_ag_oracle=FEED,
                  owned=10**15, locked=10**14, min_rate_bps=1000, max_rate_bps=15000,
                  target_rate_bps=3500, target_utilization_rate=800_000_000,
                  funding_last_update=now, cumulative_interest_rate=10**9)
    node.set_account(C.CUSTODY_BY_ASSET["SOL"], encode_custody(sol), C.PERPS_PROGRAM_ID)
    usdc = Custody(decimals=6, is_stable=True, owned=10**14, funding_last_update=now)
    node.set_account(C.CUSTODY_BY_ASSET["USDC"], encode_custody(usdc), C.PERPS_PROGRAM_ID)
    node.set_account(FEED, encode_ag_price_feed(AgPriceFeed(price=15_000_000_000, expo=-8,
                                                            timestamp=now)), C.DOVES_PROGRAM_ID)
    rec = empty_positions(N_POSITIONS)
    rng = np.random.default_rng(1)
    rec["custody"] = np.void(key_bytes(C.CUSTODY_BY_ASSET["SOL"]))
    rec["collateral_custody"] = np.void(key_bytes(C.CUSTODY_BY_ASSET["SOL"]))
    rec["side"] = 1
    rec["price"] = rng.integers(100_000_000, 200_000_000, N_POSITIONS)
    rec["size_usd"] = rng.integers(10**8, 10**11, N_POSITIONS)
    rec["collateral_usd"] = rec["size_usd"] // 10
    rec["cumulative_interest_snapshot"] = 10**9
    guaranteed = int((rec["size_usd"].astype(np.int64) - rec["collateral_usd"]).sum())
    node.set_account(C.CUSTODY_BY_ASSET["SOL"],
                     encode_custody(replace(sol, guaranteed_usd6=guaranteed)), C.PERPS_PROGRAM_ID)
    for i, blob in enumerate(encode_positions(rec)):
        node.set_account(str(Pubkey.from_bytes(i.to_bytes(4, "big") * 8)), blob,
                         C.PERPS_PROGRAM_ID)


def _start(node, data_dir: Path, mode: str = "stream") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    cmd = [sys.executable, "-m", "liqmap", "collect", "--rpc-url", node.rpc_url, "--markets",
           "SOL", "--interval", "1", "--data-dir", str(data_dir), "--mode", mode,
           "--ws-url", node.ws_url]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _assert_whole(data_dir: Path) -> int:
    for path in data_dir.rglob("*.parquet"):
        pq.read_metadata(path)  # every file a glob can see is a complete Parquet file
    n_globbed = _glob_readers_agree(data_dir)
    store = Store(str(data_dir))
    state = store.read_market_state("SOL").to_pandas()
    positions = store.read_positions("SOL", columns=["ts"]).to_pandas()
    counts = positions.groupby("ts").size()
    assert state["ts"].is_unique
    assert set(counts.index) == set(state["ts"])
    assert (counts == N_POSITIONS).all() and (state["n_positions"] == N_POSITIONS).all()
    assert n_globbed == len(state)  # no temporary file counted as a committed snapshot
    return len(state)


def _glob_readers_agree(data_dir: Path) -> int:
    """The README's DuckDB and polars globs read the store; snapshots they count (market_state
    rows), the same for both."""
    if not any(data_dir.glob("market_state/*/*/*.parquet")):
        return 0
    state_glob = str(data_dir / "market_state" / "*" / "*" / "*.parquet")
    n_duck = duckdb.sql(f"select count(*) from read_parquet('{state_glob}', "
                        "hive_partitioning=true)").fetchall()[0][0]
    n_polars = pl.scan_parquet(state_glob, hive_partitioning=True).select(pl.len()).collect()
    if any(data_dir.glob("positions/*/*/*.parquet")):
        pos_glob = str(data_dir / "positions" / "*" / "*" / "*.parquet")
        duckdb.sql(f"select count(*) from read_parquet('{pos_glob}', hive_partitioning=true)")
        pl.scan_parquet(pos_glob, hive_partitioning=True).select(pl.len()).collect()
    assert n_duck == n_polars.item()
    return int(n_duck)


def _wait_for_snapshots(data_dir: Path, n: int, timeout_s: float = 60.0) -> None:
    """Until `n` snapshots are committed (a loaded machine starts Python slowly)."""
    end = time.monotonic() + timeout_s
    while len(list(data_dir.glob("market_state/*/*/snap-*.parquet"))) < n:
        assert time.monotonic() < end, f"fewer than {n} snapshots after {timeout_s} s"
        time.sleep(0.1)


def _in_flight(data_dir: Path) -> tuple[bool, bool]:
    """(a temporary file is being written, a positions file waits for its commit record)."""
    tmp = any(data_dir.rglob(".tmp-*"))
    positions = {p.name for p in data_dir.glob("positions/*/*/snap-*")}
    states = {p.name for p in data_dir.glob("market_state/*/*/snap-*")}
    return tmp, bool(positions - states)


def _kill_mid_write(proc: subprocess.Popen[bytes], data_dir: Path, want_tmp: bool,
                    timeout_s: float = 20.0) -> bool:
    """SIGKILL the collector the moment a write is in flight; True if one was caught."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.poll() is None:
        tmp, orphan = _in_flight(data_dir)
        if (tmp if want_tmp else orphan):
            proc.send_signal(signal.SIGKILL)
            return True
    proc.send_signal(signal.SIGKILL)
    return False


@pytest.mark.parametrize("mode", ["stream", "poll"])
def test_kill_9_during_writes_leaves_only_whole_snapshots(surfnet, tmp_path: Path,
                                                          mode: str) -> None:
    _market(surfnet)
    rng = random.Random(5)
    stored, caught = 0, 0
    for attempt in range(8):
        proc = _start(surfnet, tmp_path, mode)
        if attempt % 3 == 2:  # and a few kills at arbitrary moments
            time.sleep(rng.uniform(1.5, 3.0))
            proc.send_signal(signal.SIGKILL)
        else:
            caught += _kill_mid_write(proc, tmp_path, want_tmp=attempt % 2 == 0)
        proc.wait(timeout=30)
        now = _assert_whole(tmp_path)
        assert now >= stored  # nothing finished was lost
        stored = now
    assert caught >= 3  # the kills really landed inside writes
    proc = _start(surfnet, tmp_path, mode)  # a restart carries on and cleans up
    _wait_for_snapshots(tmp_path, stored + 1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert _assert_whole(tmp_path) > stored


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_and_exits_zero(surfnet, tmp_path: Path, sig: signal.Signals) -> None:
    _market(surfnet)
    proc = _start(surfnet, tmp_path)
    _wait_for_snapshots(tmp_path, 1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    assert b"collector stopped" in stderr
    assert _assert_whole(tmp_path) >= 1
