"""`liqmap serve` as a user runs it: a real uvicorn server in a child process on a free
loopback port: live events for new snapshots, clean stop, refusal of unsafe binds, token."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from serve_helpers import add_minute, child_env, serve_process, write_market

START = "2026-11-22T23:40"  # the history ends at midnight: the live minute starts a new day
TOKEN = "a-long-enough-token-1234567890"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("live") / "store"
    write_market(root, start=START, minutes=20)
    return root


def _events(stream: httpx.Response, deadline: float):
    """(event, data) pairs of a server-sent event stream until `deadline` (monotonic)."""
    event = None
    for line in stream.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            yield event, json.loads(line[6:])
            event = None
        if time.monotonic() > deadline:
            return


def test_new_snapshot_is_announced_then_sigterm_stops_cleanly(store_dir: Path) -> None:
    with serve_process(store_dir) as (url, proc):
        status = httpx.get(f"{url}/api/v1/status").json()
        assert status["markets"][0]["last"] == "2026-11-22T23:59:00Z"
        with httpx.stream("GET", f"{url}/api/v1/stream", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            deadline = time.monotonic() + 30
            events = _events(stream, deadline)
            event, hello = next(events)
            assert event == "hello" and hello["ok"]
            stored = pd.Timestamp("2026-11-23T00:00", tz="UTC")
            add_minute(store_dir, stored, 181.5)
            written = time.monotonic()
            event, data = next(events)
            assert event == "snapshot"
            assert data == {"market": "SOL", "ts": "2026-11-23T00:00:00Z", "price_usd": 181.5}
            assert time.monotonic() - written < 10  # the 2 s figure is measured by bench_serve
            heat = httpx.get(f"{url}/api/v1/heatmap?bin=0.5").json()
            assert heat["t_end"] == "2026-11-23T00:00:00Z"
            proc.send_signal(signal.SIGTERM)  # with a stream still open
            assert [e for e, _ in events] == []  # the server ends the stream: no error here
            _, err = proc.communicate(timeout=20)
            assert proc.returncode == 0
            assert "ERROR" not in err and "Traceback" not in err, err  # no cancelled stream


def test_stale_after_follows_the_collectors_interval(store_dir: Path) -> None:
    """A 300 s collector (LIQMAP_INTERVAL) is not stale after the default 180 s: three of its
    intervals; --stale-after still wins."""
    env = {**child_env(), "LIQMAP_INTERVAL": "300"}
    with serve_process(store_dir, env=env) as (url, _):
        assert httpx.get(f"{url}/api/v1/status").json()["stale_after_s"] == 900
    with serve_process(store_dir, "--stale-after", "42", env=env) as (url, _):
        assert httpx.get(f"{url}/api/v1/status").json()["stale_after_s"] == 42
    with serve_process(store_dir) as (url, _):
        assert httpx.get(f"{url}/api/v1/status").json()["stale_after_s"] == 180


def test_public_bind_without_token_refuses_to_start(store_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "liqmap", "serve", "--data-dir", str(store_dir),
                           "--host", "0.0.0.0", "--port", "0"], env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: --host 0.0.0.0 ")
    assert "--token" in done.stderr


def test_busy_port_is_one_line(store_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "liqmap", "serve", "--data-dir",
                               str(store_dir), "--port", str(port)], env=child_env(),
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_token_from_the_environment_guards_a_real_server(store_dir: Path) -> None:
    env = child_env(LIQMAP_SERVE_TOKEN=TOKEN)
    with serve_process(store_dir, "--token", TOKEN, env=env) as (url, proc):
        assert httpx.get(f"{url}/api/v1/status").status_code == 401
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{url}/api/v1/heatmap?bin=1", headers=auth).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert TOKEN not in out + err  # never printed, never logged


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.slow
@pytest.mark.surfnet
def test_demo_serves_a_moving_market_and_ctrl_c_ends_node_and_server(tmp_path: Path) -> None:
    from conftest import skip_or_fail_without_surfnet

    skip_or_fail_without_surfnet()
    proc = subprocess.Popen([sys.executable, "-m", "liqmap", "demo", "--out-dir",
                             str(tmp_path / "out"), "--hours", "0.1", "--positions", "200",
                             "--port", "0"], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline()]
        while lines[-1] and not lines[-1].startswith("live page: "):
            lines.append(proc.stdout.readline())
        assert "heatmap PNG:" in "".join(lines), lines
        url = lines[-1].split()[2].rstrip("/")
        nodes = [p for p in _children(proc.pid)
                 if b"surfnet" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(nodes) == 1
        first = httpx.get(f"{url}/api/v1/status", timeout=30).json()["markets"][0]["last"]
        with httpx.stream("GET", f"{url}/api/v1/stream?market=SOL", timeout=60) as stream:
            deadline = time.monotonic() + 60
            events = _events(stream, deadline)
            assert next(events)[0] == "hello"
            event, data = next(events)  # the simulated market goes on
        assert event == "snapshot" and data["ts"] > first
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert not Path(f"/proc/{nodes[0]}").exists() or b"Z" in Path(
            f"/proc/{nodes[0]}/stat").read_bytes().rsplit(b")", 1)[1][:3]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/v1/status", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_collect_runs_the_collector_in_the_same_process(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_market(root, start=START, minutes=5)
    env = child_env(LIQMAP_MAX_RETRIES="0", LIQMAP_MARKETS="SOL")
    with serve_process(root, "--collect", "--rpc-url", "http://127.0.0.1:9",
                       env=env) as (url, proc):
        from liqmap.store import Store

        deadline = time.monotonic() + 60
        while Store(str(root)).read_misses("SOL").num_rows == 0:  # a dead endpoint: a miss
            assert time.monotonic() < deadline, "the collector recorded nothing"
            time.sleep(0.5)
        assert httpx.get(f"{url}/api/v1/status").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_rpc_url_without_collect_is_a_usage_error(store_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "liqmap", "serve", "--data-dir", str(store_dir),
                           "--rpc-url", "http://127.0.0.1:9"], env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--rpc-url is for --collect" in done.stderr
