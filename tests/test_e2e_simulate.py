"""End to end, as a user runs it: `liqmap simulate` writes a moving market into surfnet, a
separate `liqmap collect --clock chain` process records it minute by minute, then the heatmap
and the backtest run on the store. Checks at each step; the simulator is replayed in-process
from its seed to know exactly which positions it opened and liquidated."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.sim.market import MarketSim, SimConfig
from liqmap.store import Store

MINUTES = 20
#: seconds per simulated minute. The simulator writes minute m+1's accounts `SPEED_S` after it
#: moved the clock to m, and a snapshot of m must be copied before: 3 s leaves a busy CI machine
#: (both cores on the suite) room for the clock poll, the stream's catch-up and the copy.
SPEED_S = 3.0
SEED = 1  # liquidates in 8 of its 20 minutes (the test of liquidated positions needs some)
POSITIONS = 400
MARKETS = ("SOL", "ETH", "BTC")

pytestmark = [pytest.mark.slow, pytest.mark.surfnet]


def liqmap(*args: str, **kw: object) -> subprocess.Popen[str]:
    """`python -m liqmap ARGS` with no LIQMAP_* settings from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    return subprocess.Popen([sys.executable, "-m", "liqmap", *args], env=env, text=True,
                            **kw)  # type: ignore[call-overload]


class Lines:
    """Lines of a child's stream, read in a thread, waited for with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} in {timeout_s} s: {self.seen}")

    def text(self) -> str:
        """Every line so far (call after the child exited)."""
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """Simulator and collector processes against one surfnet; returns (store dir, minute-0
    chain time, the collector's stderr)."""
    from liqmap.sim.surfnet import Surfnet

    from conftest import skip_or_fail_without_surfnet

    skip_or_fail_without_surfnet()
    tmp = tmp_path_factory.mktemp("e2e")
    data = tmp / "store"
    with Surfnet() as node:
        collector = liqmap("collect", "--rpc-url", node.rpc_url, "--ws-url", node.ws_url,
                           "--clock", "chain",
                           "--markets", ",".join(MARKETS), "--data-dir", str(data), cwd=tmp,
                           stderr=subprocess.PIPE)
        logs = Lines(collector.stderr)
        try:
            logs.wait_for("", 30)  # the collector is up (it logs its settings first)
            sim = liqmap("simulate", "--rpc-url", node.rpc_url, "--speed", str(SPEED_S),
                         "--minutes", str(MINUTES), "--seed", str(SEED), "--positions",
                         str(POSITIONS), cwd=tmp, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
            out = Lines(sim.stdout)
            ready = out.wait_for("ready: minute 0 at chain time ", 60)
            assert sim.wait(timeout=MINUTES * SPEED_S + 60) == 0
            out.wait_for("stopped (minutes)", 5)
            time.sleep(2 * SPEED_S)  # the collector takes the last minute
        finally:
            collector.send_signal(signal.SIGTERM)
            code = collector.wait(timeout=60)
        assert code == 0
    t0 = int(pd.Timestamp(ready.split()[6].rstrip(",")).timestamp())
    time.sleep(0.5)  # the reader thread takes the last lines
    return data, t0, logs.text()


@pytest.fixture(scope="module")
def replica(run) -> dict[int, object]:
    """The same simulation in-process (same seed, same minute-0 time): minute -> report."""
    _, t0, _ = run
    sim = MarketSim(SimConfig(markets=MARKETS, seed=SEED,
                              positions={m: POSITIONS for m in MARKETS}), t0)
    sim.initial_writes()
    reports: dict[int, object] = {0: None}
    open_keys = {0: {m: _open_keys(sim, m) for m in MARKETS}}
    for minute in range(1, MINUTES + 1):
        reports[minute] = sim.step()
        open_keys[minute] = {m: _open_keys(sim, m) for m in MARKETS}
    return {"reports": reports, "open": open_keys}


def _open_keys(sim: MarketSim, market: str) -> set[str]:
    book = sim.books[market]
    return {book.pubkeys[i] for i in book.open_rows().tolist()}


def _minute(ts: pd.Timestamp, t0: int) -> int:
    return (int(ts.timestamp()) - (t0 - 1)) // 60


def test_store_has_minute_spaced_snapshots_without_gaps(run) -> None:
    data, t0, _ = run
    store = Store(str(data))
    for market in MARKETS:
        times = store.snapshot_times(market)
        assert len(times) >= MINUTES - 2
        assert (np.diff(times) == pd.Timedelta(minutes=1)).all()
        assert _minute(times[-1], t0) == MINUTES
        misses = store.read_misses(market, start=times[0])
        assert misses.num_rows == 0
        state = store.read_market_state(market).to_pandas()
        chain = pd.DatetimeIndex(state["chain_time"])
        assert ((chain - pd.DatetimeIndex(state["ts"])).total_seconds() == 1).all()


def test_collector_sees_exactly_the_simulated_open_positions(run, replica) -> None:
    data, t0, _ = run
    store = Store(str(data))
    for market in MARKETS:
        rows = store.read_positions(market, columns=["ts", "pubkey"]).to_pandas()
        for ts, group in rows.groupby("ts"):
            minute = _minute(ts, t0)
            seen, opened = set(group["pubkey"]), replica["open"][minute][market]
            assert seen == opened, (f"{market} minute {minute}: {len(seen - opened)} "
                                    f"unexpected, {len(opened - seen)} missing")


def test_liquidated_positions_leave_the_next_snapshot(run, replica) -> None:
    data, t0, _ = run
    store = Store(str(data))
    keys = {m: store.read_positions(m, columns=["ts", "pubkey"]).to_pandas()
            .groupby("ts")["pubkey"].apply(set) for m in MARKETS}
    minutes = {m: {_minute(ts, t0): s for ts, s in keys[m].items()} for m in MARKETS}
    checked = 0
    for minute, report in replica["reports"].items():
        for liq in getattr(report, "liquidations", []):
            before, after = minutes[liq.market].get(minute - 1), minutes[liq.market].get(minute)
            if before is None or after is None:
                continue
            assert liq.pubkey in before and liq.pubkey not in after
            checked += 1
    assert checked > 0


def test_no_stored_position_is_past_its_liquidation_price(run) -> None:
    data, _, _ = run
    store = Store(str(data))
    for market in MARKETS:
        pos = store.read_positions(market, columns=["ts", "side", "liq_price"]).to_pandas()
        state = store.read_market_state(market, columns=["ts", "oracle_price"]).to_pandas()
        merged = pos.merge(state, on="ts")
        long = merged["side"] == "long"
        assert (merged.loc[long, "liq_price"] < merged.loc[long, "oracle_price"]).all()
        assert (merged.loc[~long, "liq_price"] > merged.loc[~long, "oracle_price"]).all()


def _heatmap(data: Path, out: Path, *args: str) -> dict[str, np.ndarray]:
    npz = out.with_suffix(".npz")
    done = liqmap("heatmap", "--data-dir", str(data), "--market", "SOL", "--bin", "0.1",
                  "--out", str(out), "--npz-out", str(npz), *args, cwd=out.parent,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    with np.load(npz) as m:
        return {k: m[k] for k in ("Z", "y_edges", "spot_grid")}


def test_heatmap_empty_zone_follows_the_price(run, tmp_path: Path) -> None:
    """Every minute the price sits in the gap between the highest long liquidation bin and the
    lowest short one, and the gap stays a narrow zone around the price."""
    data, _, _ = run
    longs = _heatmap(data, tmp_path / "long.png", "--side", "long")
    shorts = _heatmap(data, tmp_path / "short.html", "--side", "short")
    assert (tmp_path / "long.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in (tmp_path / "short.html").read_text().lower()
    edges, spot = longs["y_edges"], longs["spot_grid"]
    assert np.array_equal(edges, shorts["y_edges"]) and longs["Z"].shape[1] >= MINUTES - 2
    widths = []
    for j, price in enumerate(spot):
        long_bins = np.flatnonzero(longs["Z"][:, j] > 0)
        short_bins = np.flatnonzero(shorts["Z"][:, j] > 0)
        top_long, bottom_short = edges[long_bins.max() + 1], edges[short_bins.min()]
        assert edges[long_bins.max()] <= price <= edges[short_bins.min() + 1]
        widths.append((bottom_short - top_long) / price)
    assert 0 < np.median(widths) < 0.03


def test_backtest_runs_on_the_store(run, tmp_path: Path) -> None:
    data, _, _ = run
    out_dir = tmp_path / "bt"
    done = liqmap("backtest", "--data-dir", str(data), "--market", "SOL", "--bin", "0.5",
                  "--out-dir", str(out_dir), cwd=tmp_path, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert (out_dir / "summary.json").is_file() and (out_dir / "minutes.csv").is_file()
    minutes = pd.read_csv(out_dir / "minutes.csv")
    assert len(minutes) >= MINUTES - 2
    state = Store(str(data)).read_market_state("SOL").to_pandas()
    assert (state["jlp_supply_tokens"] > 0).all()  # the simulator writes the JLP mint
    done = liqmap("backtest", "--data-dir", str(data), "--jlp-amount", "1000", "--bin", "0.5",
                  "--out-dir", str(out_dir / "jlp"), "--no-plots", cwd=tmp_path,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    jlp = pd.read_csv(out_dir / "jlp" / "minutes.csv").set_index("timestamp")
    share = 1000 / state.set_index(state["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))[
        "jlp_supply_tokens"]
    delta = state.set_index(state["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))["jlp_net_delta_tokens"]
    expected = (share * delta).reindex(jlp.index)
    np.testing.assert_allclose(jlp["exposure"], expected, rtol=1e-12)


def test_collector_logged_every_market_minute(run) -> None:
    """One stored line per market-minute; the only failures are of the minute before the
    simulator's first (the collector started on an empty node)."""
    _, t0, log = run
    stored = [line for line in log.splitlines() if " stored positions=" in line]
    assert len(stored) >= 3 * (MINUTES - 2)
    before = pd.Timestamp(t0 - 61, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    failed = [line for line in log.splitlines() if "no snapshot" in line]
    assert all(f" {before}: " in line for line in failed), failed
