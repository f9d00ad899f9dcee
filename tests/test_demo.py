"""`liqmap demo` and `liqmap simulate` as a user runs them (child processes): every output
written and named, no node process left behind after Ctrl-C or SIGTERM, one-line errors."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap import constants as C
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.heatmap.sources import read_legacy_csv
from liqmap.jupiter.decode import decode_ag_price_feed
from liqmap.matrix import load_npz
from liqmap.sim.demo import DEMO_OUTPUTS, DESK_TZ, MARKER_FILE, prepare_out_dir
from liqmap.sim.params import ASSETS
from liqmap.store import Store

from conftest import DemoRun


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQMAP_")}
    return {**env, **extra}


def _demo(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "liqmap", "demo", *args], cwd=cwd,
                            env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture
def node_available() -> None:
    from conftest import skip_or_fail_without_surfnet

    skip_or_fail_without_surfnet()


@pytest.mark.slow
@pytest.mark.surfnet
def test_demo_writes_and_names_every_output(demo_run: DemoRun) -> None:
    out, stdout = demo_run.out, demo_run.stdout  # `liqmap demo --out-dir demo-out --no-serve`
    assert "simulate + collect" in demo_run.stderr  # progress bars on stderr
    files = {"heatmap PNG": out / "heatmap_SOL.png", "heatmap HTML": out / "heatmap_SOL.html",
             "liquidation levels": out / "levels_SOL.png", "backtest": out / "backtest",
             "store (Parquet)": out / "store", "heatmap npz": out / "liq_matrix_SOL.npz",
             "old tool's CSV log": out / "data-sol_snapshots" / "sol_positions_log.csv",
             "desk hedge log": out / "desk.csv"}
    for label, path in files.items():
        assert f"{label}:" in stdout and str(path.relative_to(demo_run.cwd)) in stdout
    assert (out / MARKER_FILE).is_file()
    for png in (files["heatmap PNG"], files["liquidation levels"]):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "plotly" in files["heatmap HTML"].read_text().lower()
    summary = json.loads((files["backtest"] / "summary.json").read_text())
    assert summary
    store = Store(str(out / "store"))
    for market in ("SOL", "ETH", "BTC"):
        times = store.snapshot_times(market)
        assert len(times) == 31 and (times[1:] - times[:-1] == pd.Timedelta(minutes=1)).all()
    _check_old_tool_files(out, store)


def _check_old_tool_files(out: Path, store: Store) -> None:
    """The legacy CSV holds the SOL store's positions, the npz the default heatmap's minutes,
    the desk log one row per stored minute in Hong Kong time, read as a short."""
    log = read_legacy_csv(out / "data-sol_snapshots" / "sol_positions_log.csv")
    positions = store.read_positions("SOL", columns=["ts", "size_tokens"])
    assert log.time_us.size == positions.num_rows
    assert np.isclose(log.size_tokens.sum(), np.sum(positions.column("size_tokens")))
    times = store.snapshot_times("SOL")
    matrix = load_npz(out / "liq_matrix_SOL.npz")
    assert pd.Timestamp(int(matrix.t_edges_ns[0]), tz="UTC") == times[0]
    assert pd.Timestamp(int(matrix.t_edges_ns[-2]), tz="UTC") == times[-1]
    desk = read_hedge_log(out / "desk.csv", tz=DESK_TZ)
    assert desk["ts"].tolist() == list(times)
    assert (desk["position_tokens"] < 0).all() and desk.attrs["short_written_as"] == "negative"
    state = store.read_market_state("SOL", columns=["ts", "oracle_price"]).to_pandas()
    prices = state.sort_values("ts")["oracle_price"].to_numpy()
    assert np.allclose(desk["price_usd"].to_numpy(), prices, atol=1e-4)


def _children(pid: int) -> list[int]:
    """Pids of the processes whose parent is `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def _nodes(pid: int) -> list[int]:
    """Pids of the surfnet children of `pid`."""
    out = []
    for child in _children(pid):
        try:
            if b"surfnet" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:  # it ended meanwhile
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.surfnet
@pytest.mark.parametrize(("signum", "phase"), [
    (signal.SIGINT, "simulate + collect"),  # Ctrl-C while collecting
    (signal.SIGTERM, "writing accounts"),  # kill while the node is being filled
])
def test_interrupted_demo_leaves_no_node_behind(node_available, tmp_path: Path, signum: int,
                                                phase: str) -> None:
    proc = _demo("--out-dir", str(tmp_path / "out"), "--hours", "3", "--positions", "300",
                 "--no-serve", cwd=tmp_path)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    stderr = b""
    deadline = time.monotonic() + 60
    while phase.encode() not in stderr and time.monotonic() < deadline:
        chunk = os.read(fd, 65536)  # whatever the child wrote so far (blocks until some)
        if not chunk:
            break
        stderr += chunk
    nodes = _nodes(proc.pid)
    assert phase.encode() in stderr and len(nodes) == 1 and _alive(nodes[0])
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode != 0, rest[-3000:]
    assert rest.strip().splitlines()[-1] in ("Aborted.", "Interrupted.")
    assert not _alive(nodes[0])


def test_an_interrupt_a_finalizer_swallowed_still_stops_the_demo(monkeypatch) -> None:
    """Python drops an exception raised while a finalizer runs: a SIGTERM landing there loses
    the handler's KeyboardInterrupt (CI once saw the demo run on to exit 0). The handler also
    sets the event, and the demo's next step raises."""
    from liqmap.cli.demo import _signals_stop
    from liqmap.sim.session import until

    lost: list[type[BaseException]] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: lost.append(u.exc_type))

    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100_000):  # the handler runs between these bytecodes
                pass

    interrupted = threading.Event()
    step = until(interrupted, lambda n: None, KeyboardInterrupt)
    with _signals_stop(interrupted, at_once=True):
        step(1)
        Finalized()  # dropped at once: its __del__ runs here
        assert lost == [KeyboardInterrupt]  # the signal's own interrupt is gone
        with pytest.raises(KeyboardInterrupt):
            step(1)


@pytest.mark.slow
@pytest.mark.surfnet
@pytest.mark.parametrize("at", ["local Solana node", "--- heatmap PNG"])
def test_a_set_interrupt_stops_the_demo_at_its_next_step(node_available, tmp_path: Path,
                                                         at: str) -> None:
    """Set when the node has started (next step: warm-up) or the first picture is being drawn
    (next step: the HTML), the demo raises KeyboardInterrupt there and ends its node."""
    from liqmap.sim.demo import run_demo

    interrupted = threading.Event()
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith(at):
            interrupted.set()

    def nodes() -> set[int]:
        return {p for p in _nodes(os.getpid()) if _alive(p)}

    before = nodes()  # another module's node may be running in this worker
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "out", hours=0.1, positions={m: 30 for m in C.MARKETS},
                 echo=echo, progress=False, interrupted=interrupted)
    assert lines[-1].startswith(at)
    drawing = at == "--- heatmap PNG"
    assert (tmp_path / "out" / "store" / "market_state").is_dir() == drawing  # collected
    assert (tmp_path / "out" / "heatmap_SOL.png").exists() == drawing
    assert not (tmp_path / "out" / "heatmap_SOL.html").exists()
    assert nodes() <= before


def test_demo_without_node_says_how_to_fix(tmp_path: Path) -> None:
    proc = _demo(cwd=tmp_path, env=_env(PATH=str(tmp_path)))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert stderr.count("\n") == 1 and stderr.startswith("Error: ") and "npm ci" in stderr


def test_a_rerun_replaces_only_the_previous_demos_outputs(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    assert prepare_out_dir(out) == out and (out / MARKER_FILE).is_file()
    for name in DEMO_OUTPUTS:
        target = out / name
        if "." in name:
            target.write_text("old")
        else:
            (target / "sub").mkdir(parents=True)
            (target / "sub" / "f.parquet").write_text("old")
    (out / "my-notes.txt").write_text("mine")
    (out / "mine").mkdir()
    prepare_out_dir(out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER_FILE, "mine", "my-notes.txt"]
    assert (out / "my-notes.txt").read_text() == "mine"


def test_demo_writes_into_demo_out_by_default(tmp_path: Path) -> None:
    (tmp_path / "demo-out").mkdir()
    (tmp_path / "demo-out" / "notes.txt").write_text("mine")  # not a demo's: refused
    proc = _demo(cwd=tmp_path)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and stderr.count("\n") == 1
    assert stderr.startswith("Error: --out-dir demo-out is not an empty directory")
    assert [p.name for p in (tmp_path / "demo-out").iterdir()] == ["notes.txt"]


def test_demo_never_writes_into_a_used_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    proc = _demo("--out-dir", str(tmp_path), cwd=tmp_path)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "not an empty directory" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.slow
@pytest.mark.surfnet
def test_simulate_stops_cleanly_on_sigterm(node_available, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "liqmap", "simulate", "--positions", "100",
                             "--speed", "0.2", "--closed-accounts", "40"], cwd=tmp_path,
                            env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    while lines[-1] and not lines[-1].startswith("ready: "):
        lines.append(proc.stdout.readline())
    assert lines[0].startswith("local Solana node: http://127.0.0.1:"), lines
    assert "(WebSocket ws://127.0.0.1:" in lines[0]
    ws_url = lines[0].split("(WebSocket ")[1].rstrip(")\n")
    assert "liqmap collect --rpc-url http://127.0.0.1:" in lines[1]
    assert f"--ws-url {ws_url} --clock chain" in lines[1]
    nodes = _nodes(proc.pid)
    assert len(nodes) == 1
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "stopped (stop): " in out
    assert not _alive(nodes[0])


@pytest.mark.surfnet
def test_simulate_replays_a_price_file_into_the_feed(surfnet, real_matrix_path: Path,
                                                      tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "liqmap", "simulate", "--rpc-url",
                           surfnet.rpc_url, "--markets", "SOL", "--positions", "50",
                           "--speed", "0", "--minutes", "3", "--price-from",
                           str(real_matrix_path)], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stopped (minutes): 3 simulated minutes" in done.stdout
    account = surfnet.call("getAccountInfo", [ASSETS["SOL"].doves_ag_oracle,
                                              {"encoding": "base64"}])["value"]
    feed = decode_ag_price_feed(base64.b64decode(account["data"][0]))
    with np.load(real_matrix_path) as data:
        assert feed.price_usd6 == round(data["spot_grid"][3] * C.USD_PRECISION)
    assert account["owner"] == C.DOVES_PROGRAM_ID
    assert feed.publish_time == surfnet.chain_time()


def test_simulate_names_a_dead_rpc_url(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "liqmap", "simulate", "--rpc-url",
                           "http://127.0.0.1:9", "--minutes", "1"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("Error: no surfnet answers at http://127.0.0.1:9")
