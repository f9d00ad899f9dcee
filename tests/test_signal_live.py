"""The live signal: the backtest's rule minute by minute, webhooks through an outbox in the
store, a kill -9 between deciding and posting, and the state read back for the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.factories import positions_table, state_table

import liqmap
from liqmap.backtest.live import AlertLog, SignalRunner, Webhook, config_from, signal_state
from liqmap.store import Store

RULE = {"threshold_quantile": 0.7, "lookback": 20, "release": 2, "window": "2%"}
CLI_RULE = ["--threshold-quantile", "0.7", "--lookback", "20", "--release", "2",
            "--window", "2%"]
START = pd.Timestamp("2026-01-05 00:00", tz="UTC")


def write_minutes(root: Path, first: int, count: int) -> None:
    """Minutes first..first+count-1 of a SOL market whose book changes every minute."""
    store = Store(str(root))
    for i in range(first, first + count):
        ts = START + pd.Timedelta(minutes=i)
        price = 150 + 3 * np.sin(i / 9)
        store.write_snapshot("SOL", positions_table(ts, 40, seed=i, price_usd=price),
                             state_table(ts, 40, price_usd=price))


class Receiver:
    """A local HTTP receiver: records every POST; answers 503 while `down`."""

    def __init__(self) -> None:
        self.posts: list[tuple[int, dict[str, object]]] = []
        self.down = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 503 if receiver.down else 200
                receiver.posts.append((status, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=SECRET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered_keys(self) -> list[str]:
        return [str(b["idempotency_key"]) for s, b in self.posts if s == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def backtest_toggles(root: Path, start: pd.Timestamp, end: pd.Timestamp) -> list[tuple[str, str]]:
    bt = liqmap.backtest(str(root), market="SOL", t_start=start, t_end=end, **RULE)
    return [(f"{t:%Y%m%dT%H%MZ}", e) for t, e in zip(bt.toggles["timestamp"],
                                                       bt.toggles["event"], strict=True)]


def test_minute_by_minute_equals_one_backtest_run(tmp_path: Path) -> None:
    write_minutes(tmp_path, 0, 60)
    config = config_from("SOL", **RULE)
    runner = SignalRunner(str(tmp_path), config, [])
    runner.start()  # first start: anchor 21 minutes before the last stored minute
    anchor = START + pd.Timedelta(minutes=59 - 21)
    for i in range(60, 90):  # then one new minute at a time, as the collector writes them
        write_minutes(tmp_path, i, 1)
        assert len(runner.poll()) == 1
    assert runner.poll() == []
    live = [(f"{s.ts:%Y%m%dT%H%MZ}", s.event) for s in runner.toggles]
    assert len(live) >= 4
    assert live == backtest_toggles(tmp_path, anchor, START + pd.Timedelta(minutes=89))


def test_a_restart_from_a_checkpoint_continues_the_same_decisions(tmp_path: Path) -> None:
    write_minutes(tmp_path, 0, 60)
    config = config_from("SOL", **RULE)
    first = SignalRunner(str(tmp_path), config, [], checkpoint_every_min=7)
    first.start()
    for i in range(60, 80):
        write_minutes(tmp_path, i, 1)
        first.poll()
    checkpoint = AlertLog(Store(str(tmp_path)), "SOL").checkpoint(config.rule_id)
    assert checkpoint is not None and len(checkpoint["history"]) == 20  # the θ lookback
    assert pd.Timestamp(checkpoint["ts"]) == START + pd.Timedelta(minutes=73)
    write_minutes(tmp_path, 80, 15)
    second = SignalRunner(str(tmp_path), config, [])  # a restart: replays from minute 74
    second.start()
    assert second.toggles and min(s.ts for s in second.toggles) > START + pd.Timedelta(
        minutes=73)
    live = [(f"{s.ts:%Y%m%dT%H%MZ}", s.event)
            for s in [*[t for t in first.toggles if t.ts <= START + pd.Timedelta(minutes=73)],
                      *second.toggles]]
    anchor = START + pd.Timedelta(minutes=59 - 21)
    assert live == backtest_toggles(tmp_path, anchor, START + pd.Timedelta(minutes=94))
    assert second.last is not None and second.last.ts == START + pd.Timedelta(minutes=94)


def test_toggles_are_posted_once_with_a_key_and_logged(tmp_path: Path,
                                                       receiver: Receiver) -> None:
    write_minutes(tmp_path, 0, 60)
    hooks = [Webhook(receiver.url, "json"), Webhook(receiver.url + "&b=1", "slack")]
    SignalRunner(str(tmp_path), config_from("SOL", **RULE), hooks).start()
    assert receiver.posts == []  # history before the first start is not alerted
    write_minutes(tmp_path, 60, 60)
    runner = SignalRunner(str(tmp_path), config_from("SOL", **RULE), hooks)
    runner.start()
    keys = {toggle_key for toggle_key in receiver.delivered_keys()}
    assert len(receiver.posts) == 2 * len(keys) and len(keys) >= 3
    json_bodies = [b for _, b in receiver.posts if "type" in b]
    assert {b["event"] for b in json_bodies} <= {"on", "off", "reverse"}
    assert all("suggested_ratio" in b and "threshold_tokens" in b for b in json_bodies)
    assert all("text" in b for _, b in receiver.posts if "type" not in b)  # slack
    runner.start()  # a second start delivers nothing again
    assert len(receiver.posts) == 2 * len(keys)
    log = AlertLog(Store(str(tmp_path)), "SOL").read()
    assert (log["kind"] == "delivered").sum() == 2 * len(keys)
    assert not log["detail"].fillna("").str.contains("SECRET").any()


def test_retries_with_backoff_then_records_the_failure(tmp_path: Path,
                                                       receiver: Receiver) -> None:
    write_minutes(tmp_path, 0, 40)
    config = config_from("SOL", **RULE)
    SignalRunner(str(tmp_path), config, []).start()
    write_minutes(tmp_path, 40, 40)
    receiver.down = True
    runner = SignalRunner(str(tmp_path), config, [Webhook(receiver.url)], delays_s=(0.01, 0.02))
    runner.start()
    log = AlertLog(Store(str(tmp_path)), "SOL").read()
    failed = log[log["kind"] == "failed"]
    assert len(failed) >= 1 and (failed["attempts"] == 3).all()
    assert failed["detail"].str.startswith("HTTP 503 from http://127.0.0.1:").all()
    assert "SECRET" not in "".join(failed["detail"])
    receiver.down = False
    runner.start()  # the next start (or minute) delivers what failed
    assert sorted(set(receiver.delivered_keys())) == sorted(receiver.delivered_keys())
    assert len(receiver.delivered_keys()) == len(failed)


@pytest.mark.slow
def test_kill_9_between_deciding_and_posting_delivers_each_toggle_once(
        tmp_path: Path, receiver: Receiver) -> None:
    write_minutes(tmp_path, 0, 60)
    cmd = [sys.executable, "-m", "liqmap", "signal", "--data-dir", str(tmp_path), *CLI_RULE,
           "--webhook", receiver.url, "--once"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=120)
    write_minutes(tmp_path, 60, 60)
    receiver.down = True  # the signal decides, records its intent, and retries the post
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not receiver.posts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert receiver.posts, "the signal never tried to post"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    log = AlertLog(Store(str(tmp_path)), "SOL").read()
    assert (log["kind"] == "intent").sum() >= 1 and (log["kind"] == "delivered").sum() == 0
    receiver.down = False
    out = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True, timeout=120)
    delivered = receiver.delivered_keys()
    assert len(delivered) == len(set(delivered)) >= 3  # each toggle exactly once
    anchor = START + pd.Timedelta(minutes=59 - 21)
    expected = [t for t in backtest_toggles(tmp_path, anchor, START + pd.Timedelta(minutes=119))
                if t[0] > f"{START + pd.Timedelta(minutes=59):%Y%m%dT%H%MZ}"]
    assert [tuple(k.split("-")[-2:]) for k in delivered] == expected
    assert "hedge ratio" in out.stdout and "SECRET" not in out.stdout + out.stderr


def test_signal_state_for_the_server(tmp_path: Path, receiver: Receiver) -> None:
    write_minutes(tmp_path, 0, 50)
    SignalRunner(str(tmp_path), config_from("SOL", **RULE), []).start()
    write_minutes(tmp_path, 50, 30)
    SignalRunner(str(tmp_path), config_from("SOL", **RULE), [Webhook(receiver.url)]).start()
    state = signal_state(str(tmp_path), "SOL", **RULE)
    assert state["as_of"] == "2026-01-05T01:19:00Z"
    assert state["state"]["direction"] in (-1, 0, 1) and state["state"]["threshold_tokens"] > 0
    after = [t for t in state["toggles"] if t["ts"] > state["live_from"]]
    assert after and all(t["delivered_to"] == 1 for t in after)
    assert {t["key"] for t in after} == set(receiver.delivered_keys())
    json.dumps(state)  # serialisable as it is
