"""The notebook API's two numbers, each against a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_api.py [--cache DIR] [--repeat 5]

- `import liqmap`, in fresh interpreters (median of `--repeat`): the lazy top level against
  importing what the API uses (pandas, pyarrow, numba kernels, matplotlib, plotly) up front.
  Target: < 0.3 s.
- `open_store(...).heatmap("SOL", start, end)` over 24 h of a demo-sized store (1,440
  snapshots × 2,000 SOL positions, the demo's count; generated once and cached), default bin
  and price range, in a fresh interpreter: the first call (imports, compiled kernels loaded
  from numba's cache) and the median of `--repeat` warm calls, against what a notebook user
  would write with pandas on the same files (`pd.read_parquet` + `pd.cut` + `groupby`).
  Target: warm < 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bench_heatmap as BH
from liqmap.store import Store

DEMO_POSITIONS = 2000  # liqmap.sim.params.DEFAULT_POSITIONS["SOL"]
CACHE_VERSION = "v1"
MARKET = "SOL"
IMPORT_LIGHT = "import liqmap"
IMPORT_EAGER = ("import liqmap, liqmap.api, liqmap.heatmap.build, liqmap.heatmap.render_png, "
                "liqmap.heatmap.render_html")


def ensure_store(cache: Path) -> Path:
    """24 h of 1-minute SOL snapshots with 2,000 positions each (written once)."""
    root = cache / f"store-{CACHE_VERSION}"
    if (root / "_complete").exists():
        return root
    BH.POSITIONS_PER_SNAPSHOT = DEMO_POSITIONS  # the generator reads it at call time
    positions, state = BH.day_tables(0, BH.price_path(BH.MINUTES_PER_DAY))
    store = Store(str(root))
    store.write_bulk("positions", MARKET, positions)
    store.write_bulk("market_state", MARKET, state)
    (root / "_complete").write_text("ok")
    return root


def window() -> tuple[str, str]:
    last = BH.START + pd.Timedelta(minutes=BH.MINUTES_PER_DAY - 1)
    return BH.START.isoformat(), last.isoformat()


# ------------------------------------------------------------------ measured in children
def import_seconds(statement: str) -> float:
    """Seconds `statement` takes in a fresh interpreter (interpreter start excluded)."""
    code = (f"import time; t0 = time.perf_counter(); {statement}; "
            "print(time.perf_counter() - t0)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    return float(out.stdout.strip())


def heatmap_child(root: Path, repeat: int) -> dict[str, float]:
    import liqmap

    start, end = window()
    t0 = time.perf_counter()
    m = liqmap.open_store(root).heatmap(MARKET, start, end)
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        m = liqmap.open_store(root).heatmap(MARKET, start, end)
        warm.append(time.perf_counter() - t0)
    edges = m.y_edges_usd
    return {"first": first, "warm": statistics.median(warm), "sum": float(m.z.sum()),
            "pmin": float(edges[0]), "pmax": float(edges[-1]), "bin": m.bin_width_usd,
            "cells": float(m.z.size)}


def baseline_child(root: Path, pmin: float, pmax: float, bin_usd: float) -> dict[str, float]:
    """A pandas user's heatmap of the same window and bins, read from the same Parquet files."""
    from liqmap.heatmap.binning import make_price_edges

    start, end = (pd.Timestamp(t) for t in window())
    t0 = time.perf_counter()
    df = pd.read_parquet(root / "positions", columns=["ts", "liq_price", "size_tokens"],
                         filters=[("market", "==", MARKET), ("ts", ">=", start),
                                  ("ts", "<=", end)])
    edges = make_price_edges(pmin, pmax, bin_usd)
    df["bin"] = pd.cut(df["liq_price"], pd.Index(edges), right=False)
    grid = df.groupby(["ts", "bin"], observed=False)["size_tokens"].sum().unstack(fill_value=0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "sum": float(grid.to_numpy().sum())}


def child(job: str, root: Path, repeat: int, args: list[float]) -> dict[str, float]:
    if job == "heatmap":
        return heatmap_child(root, repeat)
    return baseline_child(root, *args)


def measure(job: str, root: Path, repeat: int, *args: float) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", job, "--root", str(root),
                          "--repeat", str(repeat), *map(str, args)],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------ report
def report_import(repeat: int) -> None:
    light = statistics.median(import_seconds(IMPORT_LIGHT) for _ in range(repeat))
    eager = statistics.median(import_seconds(IMPORT_EAGER) for _ in range(repeat))
    print(f"import liqmap (lazy top level)        : {light:6.3f} s  (target < 0.3 s)")
    print(f"baseline: importing what the API uses : {eager:6.3f} s  -> lazy is "
          f"{eager / light:.0f}x less")


def report_heatmap(root: Path, repeat: int) -> None:
    api = measure("heatmap", root, repeat)
    base = measure("baseline", root, 1, api["pmin"], api["pmax"], api["bin"])
    same = np.isclose(api["sum"], base["sum"], rtol=1e-9)
    print(f"store: 24 h × 1,440 snapshots × {DEMO_POSITIONS:,} SOL positions "
          f"({1440 * DEMO_POSITIONS:,} rows); matrix {api['cells']:,.0f} cells, bin "
          f"{api['bin']:g} USD, {api['pmin']:g}–{api['pmax']:g} USD")
    print(f"open_store().heatmap() first call     : {api['first']:6.3f} s  (imports, kernels "
          "from numba's cache)")
    print(f"open_store().heatmap() warm (median)  : {api['warm']:6.3f} s  (target < 1 s)")
    print(f"baseline: pandas read_parquet+cut+groupby: {base['seconds']:6.3f} s  -> warm API is "
          f"{base['seconds'] / api['warm']:.1f}x faster; same total: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "liqmap-bench-api")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", type=float, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps(child(opts.child, opts.root, opts.repeat, opts.args)))
        return
    report_import(opts.repeat)
    report_heatmap(ensure_store(opts.cache), opts.repeat)


if __name__ == "__main__":
    main()
