"""A running collector against a real node (surfnet) under faults: a read-only disk, an outage
under `--clock chain`, and a second collector on the same store."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liqmap.collect.loop import Collector
from liqmap.config import load_settings
from liqmap.store import Store
from test_crash import N_POSITIONS, _assert_whole, _market
from test_store_hardening import read_only

from scripted_rpc import proxy


def _collector(url: str, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    cmd = [sys.executable, "-m", "liqmap", "collect", "--rpc-url", url, "--markets", "SOL",
           "--interval", "1", "--data-dir", str(data_dir), "--mode", "poll"]  # HTTP faults
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def _snapshots(data_dir: Path) -> int:
    return len(list(data_dir.glob("market_state/*/*/snap-*.parquet")))


def _counts_stored(data_dir: Path) -> set[int]:
    """The position counts of the committed market_state rows (A's and B's differ by one)."""
    counts = set()
    for path in data_dir.glob("market_state/*/*/snap-*.parquet"):
        with contextlib.suppress(OSError, pa.ArrowException):  # one being replaced
            counts.update(pq.read_table(path, columns=["n_positions"])
                          .column("n_positions").to_pylist())
    return counts


def _wait_for(cond, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_read_only_disk_does_not_stop_the_collector(surfnet, tmp_path: Path) -> None:
    _market(surfnet)
    data, log = tmp_path / "data", tmp_path / "collector.log"
    data.mkdir()
    proc = _collector(surfnet.rpc_url, data, log)
    try:
        _wait_for(lambda: _snapshots(data) >= 2)
        with read_only(data):
            before = _snapshots(data)
            time.sleep(4.0)
            assert proc.poll() is None, log.read_text()  # still collecting
            assert _snapshots(data) == before
        _wait_for(lambda: _snapshots(data) >= before + 2)  # resumed by itself
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in text
    assert "Read-only file system" in text
    misses = Store(str(data)).read_misses("SOL").to_pandas()
    assert misses["reason"].str.contains("Read-only file system").sum() >= 2  # flushed later
    _assert_whole(data)


def test_chain_clock_outage_minutes_keep_the_real_error(surfnet, tmp_path: Path) -> None:
    _market(surfnet)
    with proxy(surfnet.rpc_url) as node:
        settings = load_settings({"rpc_urls": node.url, "markets": "SOL", "clock": "chain",
                                  "max_retries": 0, "backoff_s": 0.01,
                                  "data_dir": str(tmp_path)}, environ={})
        store = Store(str(tmp_path))
        col = Collector(settings, store)
        runner = threading.Thread(target=col.run)
        runner.start()
        try:
            _wait_for(lambda: store.read_market_state("SOL").num_rows >= 1)
            node.down = True  # the node is unreachable while 5 chain minutes pass
            surfnet.time_travel((surfnet.chain_time() + 300) * 1000)
            outage_at = time.monotonic()
            # no cycle runs while the clock is unreadable: `status` still sees the errors
            _wait_for(lambda: "HTTP 503" in _last_error(store), 20)
            time.sleep(max(0.0, 1.5 - (time.monotonic() - outage_at)))
            node.down = False
            _wait_for(lambda: len(store.read_misses("SOL")) >= 4, 30)
        finally:
            col.stop.set()
            runner.join(60)
    reasons = store.read_misses("SOL").column("reason").to_pylist()
    assert len(reasons) >= 4 and all("HTTP 503" in r for r in reasons), reasons
    assert not any("busy or paused" in r for r in reasons)


def _last_error(store: Store) -> str:
    report = store.read_endpoint_report() or {}
    return " ".join(str(e.get("last_error", "")) for e in report.get("endpoints", []))


def _drop_one_position(method: str, answer: dict[str, Any]) -> dict[str, Any]:
    if method == "getProgramAccounts":
        answer["result"]["value"] = answer["result"]["value"][1:]
    return answer


@pytest.mark.slow
def test_two_collector_processes_on_one_store_pair_their_own_files(surfnet, tmp_path) -> None:
    """Collector B sees one position fewer than A (a proxy drops it; within the open-interest
    tolerance): every committed snapshot must hold as many positions rows as its market_state
    row says, i.e. both files come from the same collector."""
    _market(surfnet)
    data = tmp_path / "data"
    with proxy(surfnet.rpc_url) as a, proxy(surfnet.rpc_url) as b:
        b.rewrite = _drop_one_position
        procs = [_collector(a.url, data, tmp_path / "a.log"),
                 _collector(b.url, data, tmp_path / "b.log")]
        try:
            # until both collectors have committed snapshots (each wins about half the races)
            _wait_for(lambda: _snapshots(data) >= 15 and len(_counts_stored(data)) == 2, 120)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
    store = Store(str(data))
    state = store.read_market_state("SOL", columns=["ts", "n_positions"]).to_pandas()
    rows = store.read_positions("SOL", columns=["ts"]).to_pandas().groupby("ts").size()
    assert state["ts"].is_unique and len(state) >= 15
    paired = state.set_index("ts")["n_positions"]
    assert (rows.reindex(paired.index) == paired).all()
    assert set(paired.unique()) <= {N_POSITIONS, N_POSITIONS - 1}
    assert set(paired.unique()) == {N_POSITIONS, N_POSITIONS - 1}  # both wrote
