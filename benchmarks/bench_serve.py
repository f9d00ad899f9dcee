"""`liqmap serve` speed: the page in headless Chromium and a bounded load test on 127.0.0.1.

    .venv/bin/python benchmarks/bench_serve.py [--duration 60] [--clients 50]

Builds (once, cached under the temp folder) a 72 h store of 1-minute snapshots with 3,000 open
positions each (the heatmap benchmark's synthetic market), starts `liqmap serve` on a free
loopback port and measures:

- first paint: navigation start to the heatmap drawn, for the 72 h view with 500 price bins
  (0.1 USD), in Chromium (at the page's column width, and at 1-minute columns);
- payload: bytes of that heatmap answer on the wire (binary float32, gzip);
- redraw: `draw()` after pan and zoom steps (the loaded picture redrawn), in the browser;
- live: a snapshot written to the store to its server-sent event at a client; and to the page
  showing it, on a 72 h view (a hard-linked copy of the store): the page fetches only the new
  columns, against the whole view fetched again (what it did before; forced once, same run);
- load: `--clients` concurrent clients asking for cached heatmaps for `--duration` s: p50/p99
  latency, errors, and the server's memory (RSS) at start, peak and end.

Baseline in the same run: `liqmap heatmap --out page.html` for the same 72 h (the interactive
page the CLI writes: time to build and its size), against first paint and payload.
Targets (issue): first paint < 1.5 s; payload <= 2 MB; redraw < 100 ms; p99 < 300 ms with
zero errors; new snapshot on the page within 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from bench_heatmap import MINUTES_PER_DAY, day_tables, price_path
from liqmap.store import Store
from liqmap.timeutil import iso_utc

HERE = Path(__file__).resolve().parent
DAYS = 3
BIN_USD = 0.1
N_BINS = 500
CACHE_VERSION = "v1"


def ensure_store(cache: Path) -> Path:
    """A 72 h store (3 days, 3,000 positions a minute), generated once."""
    root = cache / f"store-{CACHE_VERSION}"
    if (root / "_complete").exists():
        return root
    store = Store(str(root))
    prices = price_path(DAYS * MINUTES_PER_DAY)
    for day in range(DAYS):
        positions, state = day_tables(day, prices)
        store.write_bulk("positions", "SOL", positions)
        store.write_bulk("market_state", "SOL", state)
        print(f"  generated day {day + 1}/{DAYS}", file=sys.stderr, flush=True)
    (root / "_complete").write_text("ok")
    return root


def price_window(root: Path) -> tuple[float, float]:
    """500 bins of 0.1 USD around the mean price of the store."""
    state = Store(str(root)).read_market_state("SOL", columns=["oracle_price"])
    mean = float(np.mean(state.column("oracle_price").to_numpy()))
    pmin = float(np.floor(mean - N_BINS * BIN_USD / 2))
    return pmin, round(pmin + N_BINS * BIN_USD, 1)


class Server:
    """`liqmap serve --port 0` on the store, with its RSS readable."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "liqmap", "serve", "--data-dir",
                                      str(root), "--port", "0"], stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[2].rstrip("/")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/status", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def browser_figures(url: str, pmin: float, pmax: float) -> dict[str, float]:
    """First paint (page column width: computed, then cached; 1-minute columns), payload and
    redraw times."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from browser_helpers import chromium

    out: dict[str, float] = {}
    with chromium() as driver:
        for label, extra in (("", ""), ("_cached", ""), ("_1min", "&freq=1")):
            driver.get(f"{url}/?preset=3d&bin={BIN_USD}&pmin={pmin}&pmax={pmax}{extra}")
            _until(driver, "return window.liqmap.state.firstPaintMs")  # timed in the page
            state = driver.execute_script(
                "const S = window.liqmap.state; return {paint: S.firstPaintMs, "
                "bytes: S.lastLoad.bytes, cols: S.data.n_cols, bins: S.data.n_bins};")
            out[f"first_paint_ms{label}"] = state["paint"]
            out[f"payload_bytes{label}"] = state["bytes"]
            out[f"cells{label}"] = state["cols"] * state["bins"]
            out[f"cols{label}"], out[f"bins{label}"] = state["cols"], state["bins"]
        times = driver.execute_script("""
            const L = window.liqmap, t = [], hour = 3600000;
            for (let i = 0; i < 10; i++) { L.panBy(i % 2 ? hour : -hour); t.push(L.lastDrawMs); }
            for (let i = 0; i < 10; i++) {
              L.zoomTime(i % 2 ? 1.25 : 0.8, L.state.view.t1); t.push(L.lastDrawMs);
            }
            return t;""")
        out["redraw_ms_median"] = statistics.median(times)
        out["redraw_ms_max"] = max(times)
    return out


def live_latency(url: str, root: Path) -> float:
    """Seconds from a snapshot written to the store to its event at a stream client."""
    from liqmap.store import schema as S  # noqa: F401  (the store's tables)

    sys.path.insert(0, str(HERE.parent / "tests"))
    from serve_helpers import add_minute

    last = Store(str(root)).time_bounds("SOL")
    assert last is not None
    new = last[1] + pd.Timedelta(minutes=1)
    with httpx.stream("GET", f"{url}/api/v1/stream", timeout=30) as stream:
        lines = stream.iter_lines()
        for line in lines:
            if line.startswith("event: hello"):
                break
        add_minute(root, new, 180.0, n=3000)
        written = time.perf_counter()  # stored (committed) now
        for line in lines:
            if line.startswith("event: snapshot"):
                return time.perf_counter() - written
    raise TimeoutError("no event")


def live_on_page(url: str, root: Path, pmin: float, pmax: float) -> dict[str, float]:
    """Seconds from a snapshot stored to the 72 h view showing it, and the bytes fetched: as
    the page does it (only the new columns), then with the whole view fetched again."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from browser_helpers import chromium
    from serve_helpers import add_minute

    out: dict[str, float] = {}
    with chromium() as driver:
        driver.get(f"{url}/?preset=3d&bin={BIN_USD}&pmin={pmin}&pmax={pmax}")
        _until(driver, "return window.liqmap.state.firstPaintMs")
        for label, before in (("append", ""), ("whole", "window.liqmap.state.fullAt = 0;")):
            driver.execute_script(before)
            bounds = Store(str(root)).time_bounds("SOL")
            assert bounds is not None
            new = bounds[1] + pd.Timedelta(minutes=1)
            add_minute(root, new, 180.0, n=3000)
            written = time.perf_counter()  # stored (committed) now
            _until(driver, "const d = window.liqmap.state.data; return d && d.t_end === "
                           f"'{iso_utc(new)}' && !window.liqmap.state.loading")
            out[f"{label}_s"] = time.perf_counter() - written
            state = driver.execute_script("const S = window.liqmap.state; return S.lastAppend "
                                          "? S.lastAppend.bytes : -S.lastLoad.bytes;")
            out[f"{label}_bytes"] = abs(state)
            out[f"{label}_was_append"] = float(state > 0)
            if state > 0:
                out["append_event_to_drawn_ms"] = driver.execute_script(
                    "return window.liqmap.state.lastAppend.ms")
    return out


def _until(driver: Any, script: str, timeout_s: float = 120) -> None:
    """Poll the page until `script` returns something true; TimeoutError with the page's
    info line after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not driver.execute_script(script):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{script}: {driver.find_element('id', 'info').text}")
        time.sleep(0.02)


async def _client(host: str, port: int, paths: list[str], until: float,
                  latencies: list[float], errors: list[str]) -> None:
    """One keep-alive connection asking for `paths` in turn until `until`; a minimal HTTP/1.1
    client (asyncio streams, gzip body read as bytes), so the load generator takes little of
    the 2 cores it shares with the server."""
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < until:
            request = (f"GET {paths[i % len(paths)]} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                       "Accept: application/x-liqmap-f32\r\nAccept-Encoding: gzip\r\n\r\n")
            started = time.perf_counter()
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(str(status))
            i += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(type(exc).__name__)
    finally:
        writer.close()


def load_test(server: Server, clients: int, duration_s: float, pmin: float,
              pmax: float) -> dict[str, float]:
    """`clients` concurrent loops over three cached heatmap views for `duration_s` seconds."""
    base = f"/api/v1/heatmap?market=SOL&side=split&bin={BIN_USD}&pmin={pmin}"
    paths = [f"{base}&pmax={pmax}&freq={f}" for f in (4, 10, 30)]
    for path in paths:  # warm the cache (what "cached requests" means)
        httpx.get(server.url + path, headers={"accept": "application/x-liqmap-f32"},
                  timeout=120)
    host, port = server.url.split("//")[1].rsplit(":", 1)
    rss = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            rss.append(server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    latencies: list[float] = []
    errors: list[str] = []

    async def run() -> None:
        until = time.perf_counter() + duration_s
        await asyncio.gather(*[_client(host, int(port), paths, until, latencies, errors)
                               for _ in range(clients)])

    asyncio.run(run())
    stop.set()
    sampler.join()
    ordered = np.sort(np.array(latencies))
    return {"requests": len(latencies), "errors": len(errors),
            "p50_ms": float(np.percentile(ordered, 50) * 1000),
            "p99_ms": float(np.percentile(ordered, 99) * 1000),
            "rss_start_mb": rss[0], "rss_peak_mb": max(rss), "rss_end_mb": rss[-1]}


def baseline_html(root: Path, pmin: float, pmax: float, out: Path) -> tuple[float, int]:
    """The CLI's interactive page of the same 72 h: seconds to write it, and its size."""
    state = Store(str(root)).time_bounds("SOL")
    assert state is not None
    end = state[1]
    start = end - pd.Timedelta(hours=72) + pd.Timedelta(minutes=1)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "liqmap", "heatmap", "--data-dir", str(root),
                    "--t-start", start.isoformat(), "--t-end", end.isoformat(), "--bin",
                    str(BIN_USD), "--pmin", str(pmin), "--pmax", str(pmax), "--out", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - started, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "liqmap-bench-serve")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    root = ensure_store(args.cache)
    live_root = args.cache / "live"
    pmin, pmax = price_window(root)
    html_s, html_bytes = baseline_html(root, pmin, pmax, args.cache / "page.html")
    server = Server(root)
    try:
        page = browser_figures(server.url, pmin, pmax)
        load = load_test(server, args.clients, args.duration, pmin, pmax)
    finally:
        server.stop()
    import shutil

    shutil.rmtree(live_root, ignore_errors=True)  # the 72 h store, hard-linked: minutes are
    shutil.copytree(root, live_root / "store", copy_function=os.link)  # added as new files
    live_server = Server(live_root / "store")
    try:
        live_s = live_latency(live_server.url, live_root / "store")
        live_page = live_on_page(live_server.url, live_root / "store", pmin, pmax)
    finally:
        live_server.stop()
        shutil.rmtree(live_root)
    report(page, load, live_s, html_s, html_bytes, args, live_page)


def report(page: dict[str, float], load: dict[str, float], live_s: float, html_s: float,
           html_bytes: int, args: argparse.Namespace, live: dict[str, float]) -> None:
    mb = 1024 * 1024
    print(f"first paint 72 h x {page['bins']:.0f} bins ({page['cols']:.0f} columns): "
          f"{page['first_paint_ms'] / 1000:.2f} s (target < 1.5 s); baseline CLI HTML page "
          f"{html_s:.2f} s -> {html_s / (page['first_paint_ms'] / 1000):.1f}x")
    print(f"payload: {page['payload_bytes'] / mb:.2f} MB (target <= 2 MB); baseline HTML "
          f"{html_bytes / mb:.1f} MB -> {html_bytes / page['payload_bytes']:.0f}x smaller")
    print(f"first paint again, answer cached by the server: "
          f"{page['first_paint_ms_cached'] / 1000:.2f} s")
    print(f"first paint at 1-minute columns ({page['cols_1min']:.0f} x {page['bins_1min']:.0f}):"
          f" {page['first_paint_ms_1min'] / 1000:.2f} s, payload "
          f"{page['payload_bytes_1min'] / mb:.2f} MB")
    print(f"redraw after pan/zoom: median {page['redraw_ms_median']:.1f} ms, max "
          f"{page['redraw_ms_max']:.1f} ms (target < 100 ms)")
    print(f"new snapshot -> event at a client: {live_s:.2f} s")
    print(f"new snapshot -> on the 72 h view: {live['append_s']:.2f} s, {live['append_bytes']:,.0f}"
          f" B fetched (new columns only: {'yes' if live['append_was_append'] else 'NO'}; "
          f"target < 2 s); the whole view fetched again: {live['whole_s']:.2f} s, "
          f"{live['whole_bytes']:,.0f} B -> {live['whole_s'] / live['append_s']:.1f}x faster, "
          f"{live['whole_bytes'] / live['append_bytes']:.0f}x fewer bytes; in the page, event "
          f"to drawn: {live['append_event_to_drawn_ms']:.0f} ms")
    print(f"load: {args.clients} clients x {args.duration:.0f} s: {load['requests']:,} cached "
          f"heatmap requests, p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms "
          f"(target < 300 ms), errors {load['errors']}; server RSS {load['rss_start_mb']:.0f} "
          f"-> peak {load['rss_peak_mb']:.0f} -> end {load['rss_end_mb']:.0f} MB")
    ok = (page["first_paint_ms"] < 1500 and page["payload_bytes"] <= 2 * mb
          and page["redraw_ms_max"] < 100 and load["p99_ms"] < 300 and load["errors"] == 0
          and live_s < 2 and live["append_s"] < 2)
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
