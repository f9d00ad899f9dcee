"""Heatmap speed and memory, measured against the old tool's pandas pipeline in the same run.

    .venv/bin/python benchmarks/bench_heatmap.py [--cache DIR] [--repeat 3] [--only-folder]

Builds (once, cached under the temp folder) a store of 30 days of 1-minute snapshots with 3,000
open positions each (129.6 M position rows, written with `Store.write_bulk`) and the old tool's
CSV log of the 72 h window read by the benchmark. Then, each in a fresh process so peak memory
is its own:

- store: `build_heatmap` for 72 h at 1 minute × 500 price bins (read + bin, no PNG);
- baseline: the old pipeline on the same rows: `pd.read_csv` of the CSV log, `pd.cut` +
  `groupby` + reindex over all minutes;
- legacy: `liqmap heatmap --folder` on the same CSV (pyarrow CSV reader);
- png: rendering the 72 h matrix to PNG;
- store for 6 h and 24 h windows, to show that memory follows the window, not the store;
- the old tool's own command on the real 72 h log shape: the CSV holds the non-empty cells of
  the real matrix (../shared/data/liq_matrix_72h_1m.npz, 1.7 M rows), `--bin 0.1 --pmin 170
  --pmax 220` over its whole window; the old pipeline (pandas + pd.cut + groupby) against
  `LegacyCsvSource` read + bin, each in its own process (peak RSS); then whole commands as a
  user runs them, each its own process from a cold start, interleaved, median of --repeat:
  the old script's data path (read, bin, npz) against `liqmap heatmap --folder … --npz-out`,
  and the old tool's whole command (the same plus its pcolormesh PNG) against `liqmap heatmap
  --folder … --log-color --vmin 100 --vmax 10000 --out x.png`; wall and CPU time (user +
  system, steadier on a shared machine) and peak RSS. For scale, the npz data path once more
  as a bare script without pandas or numba (`FLOOR_SCRIPT`): what any command must spend.

Targets (issue): store 72 h < 2 s and >= 10x faster than the baseline; PNG < 3 s; --folder
on the real log shape >= 2x faster than the old pipeline, with less memory.

Figures of 2026-11-30 (2-core machine, quiet: load 0.1-1; `--only-folder --repeat 5`):
- read + bin in-process: 0.25 s (CPU 0.41 s) against the old pipeline's 0.76 s (0.85 s): 3.1x,
  0.70x its peak memory (353 MB vs 503 MB), same total;
- data path as commands (npz): 1.06 s (CPU 1.31 s) against 1.09 s (1.27 s): 1.0x, 0.95x the
  memory; the floor script: 0.48 s (CPU 0.66 s), 2.3x, the same matrix as the old script;
- whole command to the PNG: 2.11 s (CPU 2.38 s) against 2.96 s (3.15 s): 1.4x, 0.95x memory.
The >= 2x target is missed on both commands: pandas' import (0.26 s) and numba's (0.15 s import
+ 0.15 s first call into the cached kernels) together exceed the 0.55 s that 2x allows, and
the floor itself leaves 0.07 s for everything else (README, Speed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from liqmap.store import Store
from liqmap.store import schema as S

DAYS = 30
POSITIONS_PER_SNAPSHOT = 3000
MARKET = "SOL"
START = pd.Timestamp("2025-07-01T00:00:00Z")
WINDOW_HOURS = 72
N_BINS = 500
BIN_USD = 0.1
CACHE_VERSION = "v1"
MINUTES_PER_DAY = 1440


# ------------------------------------------------------------------ synthetic market
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a counter-based hash, uint64 -> uint64 (wrapping arithmetic on purpose)."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)).astype(np.uint64)
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)).astype(np.uint64)
    return x ^ (x >> np.uint64(31))


def _uniform(key: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) floats from integer keys."""
    return (_mix(key.astype(np.uint64) * np.uint64(8) + np.uint64(salt)) >> np.uint64(11)) / 2**53


def price_path(n_minutes: int, seed: int = 7) -> np.ndarray:
    """SOL-like oracle price per minute: a random walk, 0.08 % per minute, around 180 USD."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.0008, n_minutes)
    return 180.0 * np.exp(np.cumsum(steps) - np.linspace(0, steps.sum(), n_minutes))


def day_tables(day: int, prices: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """(positions, market_state) of one day: 1,440 snapshots × 3,000 open positions.

    Position slot k holds one position at a time for a lifetime of 20 min to 8 h; a position's
    entry is the price at its opening minute and its leverage sets its liquidation price.
    """
    slots = np.arange(POSITIONS_PER_SNAPSHOT, dtype=np.int64)
    lifetime = (20 + 460 * _uniform(slots, 1)).astype(np.int64)
    phase = (_uniform(slots, 2) * lifetime).astype(np.int64)
    minute = day * MINUTES_PER_DAY + np.arange(MINUTES_PER_DAY, dtype=np.int64)
    pos_id = (minute[:, None] + phase[None, :]) // lifetime[None, :]
    key = (slots[None, :] << np.int64(24)) + pos_id
    opened = np.clip(pos_id * lifetime[None, :] - phase[None, :], 0, None)
    entry = prices[opened]
    is_long = _uniform(key, 3) < 0.6
    leverage = np.exp(np.log(1.5) + (np.log(80) - np.log(1.5)) * _uniform(key, 4))
    size_usd = 50.0 * 10 ** (3.6 * _uniform(key, 5))
    age = minute[:, None] - opened  # borrow fees accrue: the liquidation price creeps inward
    liq = np.where(is_long, entry * (1 - 1 / leverage + 0.002 + 2e-6 * age),
                   entry * (1 + 1 / leverage - 0.002 - 2e-6 * age))
    n = minute.size * slots.size
    ts = pa.array((minute.repeat(slots.size) * 60_000_000 + START.value // 1000), pa.int64())
    ts = ts.cast(S.TS)
    uniq, inverse = np.unique(key.ravel(), return_inverse=True)
    names = pa.array([f"Pos{k:016x}" for k in uniq.tolist()], pa.string())
    pubkey = pa.DictionaryArray.from_arrays(pa.array(inverse.astype(np.int32)), names)
    owners = pa.array([f"Owner{k:05d}" for k in range(slots.size)], pa.string())
    owner = pa.DictionaryArray.from_arrays(pa.array(np.tile(slots, minute.size).astype(np.int32)),
                                           owners)
    side = pa.DictionaryArray.from_arrays(pa.array((~is_long).ravel().astype(np.int8)),
                                          pa.array(["long", "short"]))
    flat = {k: v.ravel() for k, v in {"entry": entry, "size_usd": size_usd, "liq": liq,
                                       "lev": leverage, "age": age}.items()}
    opened_ts = pa.array(opened.ravel() * 60_000_000 + START.value // 1000, pa.int64()).cast(S.TS)
    custody = pa.DictionaryArray.from_arrays(pa.array((~is_long).ravel().astype(np.int8)),
                                             pa.array(["SOLcustody", "USDCcustody"]))
    positions = pa.table({
        "ts": ts, "slot": pa.array(np.repeat(minute, slots.size).astype(np.uint64)),
        "pubkey": pubkey.cast(pa.string()), "owner": owner.cast(pa.string()), "side": side,
        "entry_price": flat["entry"], "size_usd": flat["size_usd"],
        "collateral_usd": flat["size_usd"] / flat["lev"],
        "size_tokens": flat["size_usd"] / flat["entry"],
        "borrow_fee_usd": flat["size_usd"] * 2e-6 * flat["age"],
        "close_fee_usd": flat["size_usd"] * 0.0006,
        "liq_price": flat["liq"], "leverage": flat["lev"],
        "collateral_custody": custody.cast(pa.string()),
        "cumulative_interest_snapshot": pa.array(np.zeros(n, dtype=np.uint64)),
        "open_time": opened_ts, "update_time": opened_ts,
    })
    state_ts = pa.array(minute * 60_000_000 + START.value // 1000, pa.int64()).cast(S.TS)
    state = {f.name: pa.nulls(minute.size, f.type) for f in S.MARKET_STATE}
    state.update(ts=state_ts, slot=pa.array(minute.astype(np.uint64)),
                 oracle_price=pa.array(prices[minute]),
                 n_positions=pa.array(np.full(minute.size, slots.size, dtype=np.int32)))
    return positions, pa.table(state, schema=S.MARKET_STATE)


def ensure_store(cache: Path) -> Path:
    """The 30-day store under `cache` (generated once; a marker file says it is complete)."""
    root = cache / f"store-{CACHE_VERSION}"
    marker = root / "_complete"
    if marker.exists():
        return root
    store = Store(str(root))
    prices = price_path(DAYS * MINUTES_PER_DAY)
    started = time.perf_counter()
    for day in range(DAYS):
        positions, state = day_tables(day, prices)
        store.write_bulk("positions", MARKET, positions)
        store.write_bulk("market_state", MARKET, state)
        print(f"  generated day {day + 1}/{DAYS} ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    marker.write_text("ok")
    return root


def window(hours: int = WINDOW_HOURS) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A window in the middle of the store: `hours` hours ending at its last minute."""
    start = START + pd.Timedelta(days=DAYS // 2)
    return start, start + pd.Timedelta(hours=hours) - pd.Timedelta(minutes=1)


def price_range(prices: np.ndarray) -> tuple[float, float]:
    """500 bins of 0.1 USD centred on the window's mean price."""
    start, end = window()
    lo = int((start - START) / pd.Timedelta(minutes=1))
    hi = int((end - START) / pd.Timedelta(minutes=1))
    pmin = float(np.floor(prices[lo:hi + 1].mean() - N_BINS * BIN_USD / 2))
    return pmin, round(pmin + N_BINS * BIN_USD, 1)


def ensure_csv(cache: Path, root: Path) -> Path:
    """The old tool's CSV log holding the 72 h window's rows (liq_price, size_sol, t_bin)."""
    folder = cache / f"legacy-{CACHE_VERSION}"
    path = folder / "sol_positions_log.csv"
    if path.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    start, end = window()
    table = Store(str(root)).read_positions(MARKET, start, end,
                                            ["liq_price", "size_tokens", "ts"])
    # the old tool's format, 2025-08-22T12:00:00Z (snapshot times are whole minutes)
    t_bin = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H:%M:00Z")
    out = pa.table({"liq_price": table.column("liq_price"),
                    "size_sol": table.column("size_tokens"), "t_bin": t_bin})
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(out, tmp, pacsv.WriteOptions(quoting_style="none"))
    tmp.rename(path)
    return folder


REAL_NPZ = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "liq_matrix_72h_1m.npz"
REAL_PMIN, REAL_PMAX = 170.0, 220.0


def ensure_real_csv(cache: Path) -> Path | None:
    """The old tool's CSV log shaped like the real 72 h SOL log: one row per non-empty cell of
    the real matrix (bin centre as liq_price), as tests/test_heatmap_real.py builds it."""
    folder = cache / f"real-{CACHE_VERSION}"
    path = folder / "sol_positions_log.csv"
    if path.exists():
        return folder
    if not REAL_NPZ.is_file():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    with np.load(REAL_NPZ) as data:
        z, y_edges, t_edges = data["Z"], data["y_edges"], data["t_edges"]
    rows, cols = np.nonzero(z)
    order = np.lexsort((rows, cols))  # time-ordered, as the old collector appended
    rows, cols = rows[order], cols[order]
    centre = (y_edges[:-1] + y_edges[1:]) / 2
    t_bin = pa.array(t_edges[cols].astype("datetime64[ns]")).cast(pa.timestamp("s", tz="UTC"))
    table = pa.table({"liq_price": centre[rows], "size_sol": z[rows, cols],
                      "t_bin": pc.strftime(t_bin, format="%Y-%m-%dT%H:%M:%SZ")})
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp, pacsv.WriteOptions(quoting_style="none"))
    tmp.rename(path)
    return folder


def real_window() -> tuple[pd.Timestamp, pd.Timestamp]:
    with np.load(REAL_NPZ) as data:
        t_edges = data["t_edges"]
    return pd.Timestamp(int(t_edges[0]), tz="UTC"), pd.Timestamp(int(t_edges[-2]), tz="UTC")


def old_pipeline(csv: Path, start: pd.Timestamp, end: pd.Timestamp, pmin: float,
                 pmax: float) -> np.ndarray:
    """The old tool's pipeline: pandas CSV, pd.cut (closed left), groupby, reindex minutes."""
    from liqmap.heatmap.binning import make_price_edges

    df = pd.read_csv(csv)
    df["t_bin"] = pd.to_datetime(df["t_bin"], utc=True)
    df = df[(df["t_bin"] >= start) & (df["t_bin"] <= end)]
    edges = make_price_edges(pmin, pmax, BIN_USD)
    df["p_bin"] = pd.cut(df["liq_price"], pd.Index(edges), right=False)
    grp = df.groupby([df["t_bin"].dt.floor("1min"), "p_bin"], observed=False)["size_sol"]
    grid = grp.sum().unstack(fill_value=0)
    minutes = pd.date_range(grid.index.min(), grid.index.max(), freq="1min")
    return grid.reindex(minutes, fill_value=0.0).T.to_numpy()


# ------------------------------------------------------------------ measured jobs (children)
def baseline_old_tool(folder: Path, pmin: float, pmax: float) -> np.ndarray:
    """The old tool's pipeline: pandas CSV, pd.cut (closed left), groupby, reindex minutes."""
    start, end = window()
    return old_pipeline(folder / "sol_positions_log.csv", start, end, pmin, pmax)


def _build(source: object, hours: int, pmin: float, pmax: float) -> object:
    from liqmap.heatmap.build import HeatmapRequest, build_heatmap

    start, end = window(hours)
    request = HeatmapRequest(t_start=start, t_end=end, bin_usd=BIN_USD, pmin_usd=pmin,
                             pmax_usd=pmax)
    return build_heatmap(source, request)  # type: ignore[arg-type]


def run_child(job: str, cache: Path, hours: int, repeat: int) -> dict[str, float]:
    """One measurement in this (fresh) process: best wall time of `repeat`, peak RSS."""
    import liqmap.heatmap.build  # noqa: F401  (imports are not what is measured)
    from liqmap.heatmap.sources import LegacyCsvSource, StoreSource

    root, folder = cache / f"store-{CACHE_VERSION}", cache / f"legacy-{CACHE_VERSION}"
    pmin, pmax = price_range(price_path(DAYS * MINUTES_PER_DAY))
    rss_before = _memory_mb("VmRSS")
    times, cpu, cells = [], [], 0.0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        if job == "store":
            heatmap = _build(StoreSource(str(root), MARKET), hours, pmin, pmax)
            cells = float(heatmap.matrix.z.sum())  # type: ignore[attr-defined]
        elif job == "legacy":
            heatmap = _build(LegacyCsvSource(folder), hours, pmin, pmax)
            cells = float(heatmap.matrix.z.sum())  # type: ignore[attr-defined]
        elif job == "baseline":
            cells = float(baseline_old_tool(folder, pmin, pmax).sum())
        elif job == "real-baseline":
            start, end = real_window()
            csv = cache / f"real-{CACHE_VERSION}" / "sol_positions_log.csv"
            cells = float(old_pipeline(csv, start, end, REAL_PMIN, REAL_PMAX).sum())
        elif job == "real-folder":
            cells = _real_folder(cache)
        elif job in ("png", "html"):
            seconds, cells = _time_render(job, StoreSource(str(root), MARKET), hours, pmin, pmax)
            times.append(seconds)
            continue
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = _memory_mb("VmHWM")
    return {"seconds": min(times), "cpu_seconds": min(cpu) if cpu else 0.0,
            "peak_rss_mb": peak, "rss_added_mb": peak - rss_before, "sum": cells}


def _real_folder(cache: Path) -> float:
    """`liqmap heatmap --folder` read + bin of the real-shaped log (what `_build` does)."""
    from liqmap.heatmap.build import HeatmapRequest, build_heatmap
    from liqmap.heatmap.sources import LegacyCsvSource

    start, end = real_window()
    request = HeatmapRequest(t_start=start, t_end=end, bin_usd=BIN_USD, pmin_usd=REAL_PMIN,
                             pmax_usd=REAL_PMAX)
    heatmap = build_heatmap(LegacyCsvSource(cache / f"real-{CACHE_VERSION}"), request)
    return float(heatmap.matrix.z.sum())


def measure_command(argv: list[str]) -> dict[str, float]:
    """Wall time, CPU time (user + system) and peak RSS (MB) of a command line run as its own
    process (os.wait4 gives that child's own rusage, not the maximum over every child so far).
    CPU time is the steadier figure on a shared machine: other jobs stretch the wall clock."""
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        why = child.stderr.read().decode() if child.stderr else ""
        raise RuntimeError(f"{argv[:4]} failed: {why}")
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024}


#: The old tool's heatmap script, reduced to its data path (read, bin, save the matrix).
OLD_SCRIPT = """
import sys
import numpy as np
import pandas as pd
csv, start, end, pmin, pmax, step, out = sys.argv[1:]
df = pd.read_csv(csv)
df["t_bin"] = pd.to_datetime(df["t_bin"], utc=True)
df = df[(df["t_bin"] >= pd.Timestamp(start)) & (df["t_bin"] <= pd.Timestamp(end))]
edges = np.round(np.arange(float(pmin), float(pmax) + float(step) / 2, float(step)), 10)
df["p_bin"] = pd.cut(df["liq_price"], edges, right=False)
grid = df.groupby([df["t_bin"].dt.floor("1min"), "p_bin"], observed=False)["size_sol"].sum()
grid = grid.unstack(fill_value=0.0)
minutes = pd.date_range(grid.index.min(), grid.index.max(), freq="1min")
z = grid.reindex(minutes, fill_value=0.0).T.to_numpy()
np.savez(out, Z=z, y_edges=edges)
"""

#: The old tool's whole command as a user runs it: its data path, then its picture (pyplot,
#: a 14 x 6 in `pcolormesh` of the matrix over the minute edges, viridis, log colours between
#: --vmin and --vmax, a colour bar, tight layout, 150 dpi PNG). Its spot-price download from
#: Binance is left out (no network here), which only flatters the old tool.
OLD_SCRIPT_PNG = """
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
csv, start, end, pmin, pmax, step, vmin, vmax, out = sys.argv[1:]
df = pd.read_csv(csv)
df["t_bin"] = pd.to_datetime(df["t_bin"], utc=True).dt.tz_convert(None)
df = df[(df["t_bin"] >= pd.Timestamp(start).tz_convert(None))
        & (df["t_bin"] <= pd.Timestamp(end).tz_convert(None))]
edges = np.round(np.arange(float(pmin), float(pmax) + float(step) / 2, float(step)), 10)
df["p_bin"] = pd.cut(df["liq_price"], edges, right=False)
grid = df.groupby([df["t_bin"].dt.floor("1min"), "p_bin"], observed=False)["size_sol"].sum()
grid = grid.unstack(fill_value=0.0)
t_edges = pd.date_range(grid.index.min(), grid.index.max() + pd.Timedelta(minutes=1),
                        freq="1min")
z = grid.reindex(t_edges[:-1], fill_value=0.0).T.to_numpy()
fig, ax = plt.subplots(figsize=(14, 6))
mesh = ax.pcolormesh(t_edges.to_pydatetime(), edges, z, shading="auto", cmap="viridis",
                     norm=LogNorm(vmin=float(vmin), vmax=float(vmax)))
fig.colorbar(mesh, ax=ax, pad=0.01).set_label("Positions to liquidate (SOL)")
ax.set_xlabel("Time (UTC)")
ax.set_ylabel("USD")
ax.set_ylim(edges[0], edges[-1])
fig.autofmt_xdate()
fig.tight_layout()
fig.savefig(out, dpi=150)
"""


#: What any `--folder` command must at least spend, for scale: the same data path with neither
#: pandas nor numba (Arrow's threaded CSV reader, its buffers viewed by numpy, `searchsorted` +
#: `bincount`, a compressed npz like liqmap's). pyarrow's `to_numpy` imports pandas, so the
#: columns are read from the Arrow buffers. The window and range are the whole file's.
FLOOR_SCRIPT = """
import sys
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
csv, start, end, pmin, pmax, step, out = sys.argv[1:]
types = {"liq_price": pa.float64(), "size_sol": pa.float64(), "t_bin": pa.timestamp("s", tz="UTC")}
table = pacsv.read_csv(csv, convert_options=pacsv.ConvertOptions(column_types=types))
def column(name, dtype):
    chunks = table.column(name).chunks
    assert all(c.null_count == 0 for c in chunks)
    return np.concatenate([np.frombuffer(c.buffers()[1], dtype, len(c) + c.offset)[c.offset:]
                           for c in chunks])
price, size = column("liq_price", np.float64), column("size_sol", np.float64)
minute = column("t_bin", np.int64) // 60
edges = np.round(np.arange(float(pmin), float(pmax) + float(step) / 2, float(step)), 10)
n_bins, first = edges.size - 1, minute.min()
k = np.searchsorted(edges, price, side="right") - 1
inside = (k >= 0) & (k < n_bins)
n_minutes = int(minute.max() - first) + 1
cells = np.bincount((minute[inside] - first) * n_bins + k[inside], weights=size[inside],
                    minlength=n_minutes * n_bins)
np.savez_compressed(out, Z=cells.reshape(n_minutes, n_bins).T, y_edges=edges)
"""


def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MB, from /proc (Linux); else ru_maxrss.

    VmHWM starts afresh at exec, unlike ru_maxrss, which a child inherits from its parent.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_render(job: str, source: object, hours: int, pmin: float,
                 pmax: float) -> tuple[float, float]:
    """(seconds to draw and encode the built matrix, bytes of the file)."""
    heatmap = _build(source, hours, pmin, pmax)
    t0 = time.perf_counter()
    if job == "png":
        from liqmap.heatmap.render_png import heatmap_figure, png_bytes

        data = png_bytes(heatmap_figure(heatmap, log_color=True))  # type: ignore[arg-type]
    else:
        from liqmap.heatmap.render_html import heatmap_html_figure, html_bytes

        data = html_bytes(heatmap_html_figure(heatmap, log_color=True))  # type: ignore[arg-type]
    return time.perf_counter() - t0, float(len(data))


def measure(job: str, cache: Path, hours: int, repeat: int) -> dict[str, float]:
    """Run `job` in a fresh interpreter and return its figures."""
    out = subprocess.run([sys.executable, __file__, "--child", job, "--cache", str(cache),
                          "--hours", str(hours), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "liqmap-bench-heatmap")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only-folder", action="store_true",
                        help="Only the old tool's command on the real 72 h log shape.")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--hours", type=int, default=WINDOW_HOURS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child, args.cache, args.hours, args.repeat)))
        return
    report_real(args.cache, args.repeat)
    if args.only_folder:
        return
    root = ensure_store(args.cache)
    ensure_csv(args.cache, root)
    report(args.cache, args.repeat)


def report_real(cache: Path, repeat: int) -> None:
    """The old tool's command on the real 72 h log shape: old pipeline vs `--folder`."""
    folder = ensure_real_csv(cache)
    if folder is None:
        print(f"real 72 h log: skipped ({REAL_NPZ} not found)")
        return
    n_rows = sum(1 for _ in (folder / "sol_positions_log.csv").open("rb")) - 1
    print(f"real 72 h log shape: {n_rows:,} rows, --bin {BIN_USD} --pmin {REAL_PMIN:g} "
          f"--pmax {REAL_PMAX:g}")
    pairs = [(measure("real-baseline", cache, WINDOW_HOURS, 1),
              measure("real-folder", cache, WINDOW_HOURS, 1)) for _ in range(repeat)]
    base = min((p[0] for p in pairs), key=lambda f: f["seconds"])
    ours = min((p[1] for p in pairs), key=lambda f: f["seconds"])
    same = np.isclose(ours["sum"], base["sum"], rtol=1e-9)
    print(f"old pipeline (pandas read_csv + pd.cut + groupby): {base['seconds']:6.2f} s  "
          f"(CPU {base['cpu_seconds']:5.2f} s)  peak RSS {base['peak_rss_mb']:5.0f} MB")
    print(f"--folder read + bin (LegacyCsvSource)            : {ours['seconds']:6.2f} s  "
          f"(CPU {ours['cpu_seconds']:5.2f} s)  peak RSS {ours['peak_rss_mb']:5.0f} MB  -> "
          f"{base['seconds'] / ours['seconds']:.1f}x faster, "
          f"{ours['peak_rss_mb'] / base['peak_rss_mb']:.2f}x the memory "
          f"(target >= 2x faster, < 1x memory); same total: {same}")
    start, end = real_window()
    csv = folder / "sol_positions_log.csv"
    window = [str(csv), start.isoformat(), end.isoformat(), f"{REAL_PMIN:g}", f"{REAL_PMAX:g}",
              str(BIN_USD)]
    new = [sys.executable, "-m", "liqmap", "heatmap", "--folder", str(folder), "--bin",
           str(BIN_USD), "--pmin", f"{REAL_PMIN:g}", "--pmax", f"{REAL_PMAX:g}", "--t-start",
           start.isoformat(), "--t-end", end.isoformat()]
    commands = {
        "npz": ([sys.executable, "-c", OLD_SCRIPT, *window, str(cache / "old.npz")],
                [*new, "--npz-out", str(cache / "new.npz")]),
        "png": ([sys.executable, "-c", OLD_SCRIPT_PNG, *window, "100", "10000",
                 str(cache / "old.png")],
                [*new, "--log-color", "--vmin", "100", "--vmax", "10000", "--out",
                 str(cache / "new.png")]),
    }
    labels = {"npz": "data path: read, bin, write the matrix (npz)",
              "png": "the whole command: read, bin, draw the PNG"}
    floor = [sys.executable, "-c", FLOOR_SCRIPT, *window, str(cache / "floor.npz")]
    for kind, (old_argv, new_argv) in commands.items():
        runs: dict[str, list[dict[str, float]]] = {"old": [], "new": [], "floor": []}
        for _ in range(repeat):  # interleaved, so both see the same machine load
            runs["old"].append(measure_command(old_argv))
            runs["new"].append(measure_command(new_argv))
            if kind == "npz":
                runs["floor"].append(measure_command(floor))
        print(f"whole process, {labels[kind]} (median of {repeat}):")
        old_fig, new_fig = _median(runs["old"]), _median(runs["new"])
        print(f"  old script             : {_figures(old_fig)}")
        print(f"  liqmap heatmap --folder: {_figures(new_fig)}  -> {_versus(old_fig, new_fig)} "
              "(target >= 2x faster, < 1x memory)")
        if runs["floor"]:
            floor_fig = _median(runs["floor"])
            equal = np.allclose(np.load(cache / "floor.npz")["Z"], np.load(cache / "old.npz")["Z"])
            print(f"  floor: no pandas, numba: {_figures(floor_fig)}  -> "
                  f"{_versus(old_fig, floor_fig)}; same matrix as the old script: {equal}")


def _versus(old: dict[str, float], new: dict[str, float]) -> str:
    return (f"{old['seconds'] / new['seconds']:.1f}x faster (CPU "
            f"{old['cpu_seconds'] / new['cpu_seconds']:.1f}x), "
            f"{new['peak_rss_mb'] / old['peak_rss_mb']:.2f}x the memory")


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs."""
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]}


def _figures(fig: dict[str, float]) -> str:
    return (f"{fig['seconds']:6.2f} s (CPU {fig['cpu_seconds']:5.2f} s)  peak RSS "
            f"{fig['peak_rss_mb']:5.0f} MB")


def report(cache: Path, repeat: int) -> None:
    rows = POSITIONS_PER_SNAPSHOT * 60 * WINDOW_HOURS
    print(f"store: {DAYS} days × 1,440 snapshots × {POSITIONS_PER_SNAPSHOT:,} positions; "
          f"window {WINDOW_HOURS} h = {rows:,} rows, {N_BINS} bins of {BIN_USD} USD")
    base = measure("baseline", cache, WINDOW_HOURS, 1)
    store = measure("store", cache, WINDOW_HOURS, repeat)
    legacy = measure("legacy", cache, WINDOW_HOURS, 1)
    png = measure("png", cache, WINDOW_HOURS, repeat)
    html = measure("html", cache, WINDOW_HOURS, 1)
    same = np.isclose(store["sum"], base["sum"], rtol=1e-9)
    print(f"baseline (pandas read_csv + pd.cut + groupby): {base['seconds']:7.2f} s  "
          f"peak RSS {base['peak_rss_mb']:6.0f} MB")
    print(f"store read + bin (build_heatmap)             : {store['seconds']:7.2f} s  "
          f"peak RSS {store['peak_rss_mb']:6.0f} MB  -> {base['seconds'] / store['seconds']:.1f}x"
          f" faster than baseline (target >= 10x, < 2 s); same total: {same}")
    print(f"legacy CSV read + bin (--folder)             : {legacy['seconds']:7.2f} s  "
          f"peak RSS {legacy['peak_rss_mb']:6.0f} MB  -> "
          f"{base['seconds'] / legacy['seconds']:.1f}x faster than baseline")
    print(f"PNG render of the 72 h matrix                : {png['seconds']:7.2f} s  "
          "(target < 3 s)")
    print(f"HTML page of the 72 h matrix (--log-color)   : {html['seconds']:7.2f} s  "
          f"{html['sum'] / 1e6:.1f} MB")
    for hours in (6, 24, WINDOW_HOURS):
        fig = store if hours == WINDOW_HOURS else measure("store", cache, hours, 1)
        print(f"memory, store window {hours:3d} h: peak RSS {fig['peak_rss_mb']:6.0f} MB, "
              f"of which the build added {fig['rss_added_mb']:6.0f} MB")


if __name__ == "__main__":
    main()
