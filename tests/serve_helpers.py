"""Builders for the `liqmap serve` tests: a store that looks like a market, and a real
`liqmap serve` child process on a free loopback port. No tests here."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap.store import Store

from test_heatmap_helpers import snapshot_tables


def book(rng: np.random.Generator, price_usd: float, n: int) -> list[tuple[str, float, float]]:
    """n positions: 75 % longs liquidating 1.5-25 % below `price_usd`, shorts as far above."""
    longs = rng.random(n) < 0.75
    distance = rng.uniform(0.015, 0.25, n)
    liq = np.where(longs, price_usd * (1 - distance), price_usd * (1 + distance))
    size = np.round(rng.lognormal(3, 1.2, n), 3)
    return [("long" if lg else "short", float(p), float(s))
            for lg, p, s in zip(longs, liq, size, strict=True)]


def write_market(root: Path, *, start: str = "2026-11-23T00:00", minutes: int = 120,
                 n: int = 300, seed: int = 1, market: str = "SOL", price_usd: float = 180.0,
                 gaps: range = range(0)) -> Store:
    """A store with one snapshot per minute (except `gaps`, minute offsets): a slowly
    changing book and a random-walk oracle price, written as compacted day files at once
    (snapshots stored later on a day held in a day file would not be read: start a new day)."""
    rng = np.random.default_rng(seed)
    positions = book(rng, price_usd, n)
    store = Store(str(root))
    price = price_usd
    t0 = pd.Timestamp(start, tz="UTC")
    tables: list[tuple[pa.Table, pa.Table]] = []
    for m in range(minutes):
        price *= float(np.exp(rng.normal(0, 0.0015)))
        if m % 10 == 0:  # churn: a few positions replaced
            k = max(1, n // 20)
            positions[:k] = book(rng, price, k)
        if m in gaps:
            continue
        tables.append(snapshot_tables(t0 + pd.Timedelta(minutes=m), price, positions))
    store.write_bulk("positions", market, pa.concat_tables([t[0] for t in tables]))
    store.write_bulk("market_state", market, pa.concat_tables([t[1] for t in tables]))
    return store


def add_minute(root: Path, when: pd.Timestamp, price_usd: float = 180.0, n: int = 50,
               market: str = "SOL") -> None:
    """Store one more snapshot (what a running collector does)."""
    rng = np.random.default_rng(int(when.timestamp()))
    assert Store(str(root)).write_snapshot(market, *snapshot_tables(when, price_usd,
                                                                   book(rng, price_usd, n)))


def child_env(**extra: str) -> dict[str, str]:
    """The environment without liqmap settings (where the local node lives is kept)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LIQMAP_") or k == "LIQMAP_NODE_MODULES"}
    return {**env, **extra}


@contextmanager
def serve_process(data_dir: Path, *args: str, env: dict[str, str] | None = None
                  ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`liqmap serve --port 0` on `data_dir`; yields (base URL, process); SIGTERM at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "liqmap", "serve", "--data-dir",
                             str(data_dir), "--port", "0", *args], env=env or child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("liqmap serve: http://127.0.0.1:"), (line, proc.stderr)
        url = line.split()[2].rstrip("/")
        wait_ready(url, args)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(url: str, args: tuple[str, ...] = ()) -> None:
    """Until the server answers (the socket listens before the app has started)."""
    headers = {}
    if "--token" in args:
        headers["authorization"] = f"Bearer {args[args.index('--token') + 1]}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/status", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer")
        time.sleep(0.1)


def decode_f32(data: bytes) -> tuple[dict[str, object], np.ndarray]:
    """The page's binary answer (`LQM1`): its header and layers [n_layers, n_cols, n_bins]."""
    assert data[:4] == b"LQM1"
    (n,) = struct.unpack("<I", data[4:8])
    head = json.loads(data[8:8 + n])
    layers = np.frombuffer(data[8 + n:], "<f4")
    return head, layers.reshape(len(head["layers"]), head["n_cols"], head["n_bins"])
