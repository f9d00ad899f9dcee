"""A year of three markets in the change-sized layout: bytes per day, heatmap windows, conversion.

    .venv/bin/python benchmarks/bench_store.py [--days 365] [--cache DIR] [--repeat 2]

Writes (once, cached) a store through the library, versions directly: 10,000 open SOL positions
(ETH, BTC 3,000 each), about 0.5 % of them changing a minute (half change collateral or size,
half close and are replaced by a new position), borrow counters accruing every minute, one
market_state row a minute, and each day's roll-up (`heatmap.rollups.ensure_rollup`, as
`liqmap compact` writes it; a store cached before roll-ups existed gets them on the next run,
SOL first). Then, each in a fresh process (peak memory its own):

- bytes per day per market (versions + market_state), against today's compacted day file of the
  same rows (one SOL day expanded to 14.4 M rows and written as `compact` did before);
- heatmaps: any 24 h at 1-minute columns, 30 days at 60-minute, the whole store at daily
  columns (SOL, 0.1 USD bins over 100-200 USD, agg "mean"). Baselines, each with its CPU
  ratio and a check that the matrix is the same to 1e-9: the 24 h window on today's layout
  (the compacted day file); the 30-day and whole-store windows binned from the versions alone
  (roll-ups switched off in that child process), which those two windows would take without
  roll-ups;
- the roll-up of one SOL day: bytes, and the time to write it;
- conversion throughput: the SOL row day converted back to versions (`compact`).

Targets (issue): ≤ 25 MB a day for SOL and ≥ 10x below today's files; 24 h < 0.5 s,
30 days < 2 s, 365 days < 5 s. Times are printed as wall and CPU seconds of the cold
process; on a shared machine the CPU seconds are the figure to compare. `--days 30` makes a
quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from liqmap import constants as C
from liqmap.heatmap.rollups import ensure_rollup
from liqmap.jupiter.base58 import encode_keys
from liqmap.store import Store
from liqmap.store import layout as L
from liqmap.store import schema as S

MARKETS = {"SOL": (10_000, 150.0), "ETH": (3_000, 3_000.0), "BTC": (3_000, 60_000.0)}
CHURN = 0.005  # share of open positions changing a minute
FIRST_DAY = date(2025, 1, 1)
MIN_PER_DAY = 1440
PARAMS = (6, 1_250_000_000_000, 5_000_000)  # decrease bps, impact scalar, max leverage (500x)
RATE_PER_MIN = (260, 190, 200)  # RATE-9 counter growth a minute: ~13.7 %, 10 %, 10.5 % a year
CACHE_VERSION = "v1"
ROLLUPS_DONE = "ROLLUPS-DONE-v1"  # marker: every day has its roll-up (format 1)
BIN_USD, PMIN, PMAX = 0.1, 100.0, 200.0


class Book:
    """Open positions of one market (integers as on chain), carried from day to day."""

    def __init__(self, market: str, n: int, price: float, seed: int) -> None:
        self.market, self.n, self.price = market, n, price
        self.rng = np.random.default_rng(seed)
        self.next_id = 0
        self.cum = np.array([1_000_000_000, 2_000_000_000, 3_000_000_000], np.uint64)
        self.cols = self._new(n, 0)

    def _new(self, n: int, t_s: int | np.ndarray) -> dict[str, np.ndarray]:
        rng = self.rng
        long = rng.random(n) < 0.75
        size = (np.exp(rng.normal(8.5, 1.6, n)) * 1e6).astype(np.uint64) + np.uint64(1_000_000)
        entry = (self.price * rng.normal(1, 0.03, n) * 1e6).astype(np.uint64)
        lev = rng.choice([2.0, 5.0, 10.0, 20.0, 50.0, 100.0], n, p=[.2, .3, .25, .15, .07, .03])
        source = np.where(long, 0, rng.integers(1, 3, n)).astype(np.int8)
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.uint64)
        self.next_id += n
        return {"id": ids, "long": long, "size": size, "entry": entry,
                "coll": (size / lev).astype(np.uint64), "source": source,
                "cis": self.cum[source.astype(np.int64)] - rng.integers(0, 10**6, n).astype("u8"),
                "open": np.broadcast_to(np.asarray(t_s, np.int64), n).copy(),
                "update": np.broadcast_to(np.asarray(t_s, np.int64), n).copy()}

    def day(self, day0_s: int, prices: np.ndarray) -> tuple[pa.Table, pa.Table]:
        """(versions, market_state) of one day; the book moves on to the day's end."""
        rng = self.rng
        cum_min = self.cum[None, :] + np.outer(np.arange(MIN_PER_DAY, dtype=np.uint64),
                                               np.array(RATE_PER_MIN, np.uint64))
        k = rng.binomial(self.n, CHURN, MIN_PER_DAY)
        minute = np.repeat(np.arange(MIN_PER_DAY), k)
        slot = rng.integers(0, self.n, minute.size)
        keep = minute > 0
        order = np.lexsort((minute[keep], slot[keep]))
        slot, minute = slot[keep][order], minute[keep][order]
        dup = np.append(False, (slot[1:] == slot[:-1]) & (minute[1:] == minute[:-1]))
        slot, minute = slot[~dup], minute[~dup]
        # versions: each slot's carried state from minute 0, then one per event
        v_slot = np.concatenate([np.arange(self.n), slot])
        v_from = np.concatenate([np.zeros(self.n, np.int64), minute])
        order = np.lexsort((v_from, v_slot))
        v_slot, v_from = v_slot[order], v_from[order]
        nxt = np.append(v_from[1:], MIN_PER_DAY)
        v_to = np.where(np.append(v_slot[1:] != v_slot[:-1], True), MIN_PER_DAY - 1, nxt - 1)
        cols = {name: col[v_slot] for name, col in self.cols.items()}
        ev = np.flatnonzero(v_from > 0)
        self._apply_events(cols, ev, v_from[ev], day0_s, prices, cum_min)
        last = np.append(v_slot[1:] != v_slot[:-1], True)
        self.cols = {name: col[last] for name, col in cols.items()}
        self.cum = cum_min[-1] + np.array(RATE_PER_MIN, np.uint64)
        versions = self._versions(cols, day0_s, v_from, v_to)
        return versions, self._state(day0_s, prices, cum_min)

    def _apply_events(self, cols: dict[str, np.ndarray], ev: np.ndarray, at: np.ndarray,
                      day0_s: int, prices: np.ndarray, cum_min: np.ndarray) -> None:
        """Half the events replace the position by a new one, half change its collateral."""
        replace = self.rng.random(ev.size) < 0.5
        t_s = day0_s + at * 60
        idx = ev[replace]
        fresh = self._new(idx.size, t_s[replace])
        fresh["entry"] = (prices[at[replace]] * self.rng.normal(1, 0.002, idx.size)
                          * 1e6).astype(np.uint64)
        for name, col in fresh.items():
            cols[name][idx] = col
        mod = ev[~replace]
        settled = cum_min[at[~replace], cols["source"][mod].astype(np.int64)]
        cols["coll"][mod] = cols["coll"][mod] + (cols["size"][mod] // np.uint64(50))
        cols["cis"][mod] = settled
        cols["update"][mod] = t_s[~replace]

    def _versions(self, cols: dict[str, np.ndarray], day0_s: int, v_from: np.ndarray,
                  v_to: np.ndarray) -> pa.Table:
        keys, owners = _key_bytes(cols["id"], self.market, 0), _key_bytes(cols["id"],
                                                                          self.market, 1)
        custody = np.array([C.CUSTODY_BY_ASSET[self.market], C.CUSTODY_BY_ASSET["USDC"],
                            C.CUSTODY_BY_ASSET["USDT"]], object)
        size_f, entry_f, coll_f = (cols[c].astype(np.float64) for c in ("size", "entry", "coll"))
        n = size_f.size
        table = pa.table({
            "valid_from": _ts((day0_s + v_from * 60) * 1_000_000),
            "valid_to": _ts((day0_s + v_to * 60) * 1_000_000),
            "pubkey": encode_keys(keys), "owner": encode_keys(owners),
            "side": pa.DictionaryArray.from_arrays(pa.array(np.where(cols["long"], 0, 1)
                                                            .astype(np.int8)),
                                                   pa.array(["long", "short"])),
            "entry_price_usd6": cols["entry"], "size_usd6": cols["size"],
            "collateral_usd6": cols["coll"], "size_tokens": size_f / entry_f,
            "leverage": size_f / coll_f,
            "collateral_custody": pa.array(custody[cols["source"]], pa.string()),
            "cumulative_interest_snapshot": cols["cis"],
            "open_time": _ts(cols["open"] * 1_000_000),
            "update_time": _ts(cols["update"] * 1_000_000),
            "interest_source": cols["source"],
            "slot": pa.nulls(n, pa.uint64()), "borrow_fee_usd": pa.nulls(n, pa.float64()),
            "close_fee_usd": pa.nulls(n, pa.float64()), "liq_price": pa.nulls(n, pa.float64()),
        })
        return table.cast(S.POSITION_VERSIONS).sort_by(S.SORT_KEYS["position_versions"])

    def _state(self, day0_s: int, prices: np.ndarray, cum_min: np.ndarray) -> pa.Table:
        n = MIN_PER_DAY
        ts = _ts((day0_s + np.arange(n) * 60) * 1_000_000)
        slot = pa.array(np.uint64(day0_s) * np.uint64(3) + np.arange(n, dtype=np.uint64))
        cols: dict[str, pa.Array] = {f.name: pa.nulls(n, f.type) for f in S.MARKET_STATE}
        cols.update(ts=ts, chain_time=ts, slot=slot, positions_slot=slot,
                    oracle_price=pa.array(prices),
                    decrease_position_bps=pa.array(np.full(n, PARAMS[0], np.uint64)),
                    trade_impact_fee_scalar=pa.array(np.full(n, PARAMS[1], np.uint64)),
                    max_leverage_bps=pa.array(np.full(n, PARAMS[2], np.uint64)),
                    cumulative_interest_rate_now=pa.array(cum_min[:, 0]),
                    usdc_cumulative_interest_rate_now=pa.array(cum_min[:, 1]),
                    usdt_cumulative_interest_rate_now=pa.array(cum_min[:, 2]),
                    n_positions=pa.array(np.full(n, self.n, np.int32)))
        return pa.table(cols, schema=S.MARKET_STATE)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 (wrapping arithmetic on purpose): random-looking bytes for account keys."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _key_bytes(ids: np.ndarray, market: str, kind: int) -> np.ndarray:
    """32 random-looking bytes per id, like real Solana keys (n x 32 uint8)."""
    salt = np.uint64((ord(market[0]) << 8) + kind)
    lanes = [_mix(ids * np.uint64(4) + np.uint64(lane) + (salt << np.uint64(40)))
             for lane in range(4)]
    return np.stack(lanes, axis=1).view(np.uint8).reshape(-1, 32)


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, np.int64)).cast(S.TS)


def price_paths(days: int) -> dict[str, np.ndarray]:
    """A seeded random walk a minute per market, kept inside the benchmark's price range."""
    out = {}
    for i, (market, (_, price)) in enumerate(MARKETS.items()):
        steps = np.random.default_rng(100 + i).normal(0, 6e-4, days * MIN_PER_DAY)
        walk = np.cumsum(steps)
        walk = 0.25 * np.sin(walk)  # bounded, mean-reverting
        out[market] = price * np.exp(walk)
    return out


def ensure_store(cache: Path, days: int) -> Path:
    root = cache / f"store-{CACHE_VERSION}-{days}d"
    if (root / "DONE").exists():
        ensure_rollups(root, days)
        return root
    shutil.rmtree(root, ignore_errors=True)
    store, paths = Store(str(root)), price_paths(days)
    books = {m: Book(m, n, price, seed=i) for i, (m, (n, price)) in enumerate(MARKETS.items())}
    t0 = time.perf_counter()
    for d in range(days):
        day = FIRST_DAY + timedelta(days=d)
        day0_s = int(pd.Timestamp(day, tz="UTC").timestamp())
        for market, book in books.items():
            versions, state = book.day(day0_s, paths[market][d * MIN_PER_DAY:(d + 1) * MIN_PER_DAY])
            store.fs.write_table(f"{L.partition_dir('position_versions', market, day)}/"
                                 f"{L.day_name(day)}", versions)
            store.fs.write_table(f"{L.partition_dir('market_state', market, day)}/"
                                 f"{L.day_name(day)}", state)
            ensure_rollup(store, market, day)  # as `liqmap compact` writes it
        if d % 30 == 29:
            print(f"  wrote {d + 1} days ({time.perf_counter() - t0:.0f} s)", flush=True)
    (root / "DONE").write_text("ok")
    (root / ROLLUPS_DONE).write_text("ok")
    print(f"wrote {days} days × 3 markets in {time.perf_counter() - t0:.0f} s", flush=True)
    return root


def ensure_rollups(root: Path, days: int) -> None:
    """Roll-ups for a store cached before they existed (each day's is written unless a valid
    one is there, so an interrupted run resumes)."""
    if (root / ROLLUPS_DONE).exists():
        return
    store = Store(str(root))
    t0, cpu0 = time.perf_counter(), time.process_time()
    for market in MARKETS:  # SOL first: the heatmaps measured are SOL's
        for d in range(days):
            ensure_rollup(store, market, FIRST_DAY + timedelta(days=d))
            if d % 30 == 29:
                print(f"  {market} roll-ups of {d + 1} days ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    (root / ROLLUPS_DONE).write_text(f"{time.process_time() - cpu0:.1f}")
    print(f"wrote the roll-ups of {days} days × 3 markets in {time.perf_counter() - t0:.0f} s "
          f"(CPU {time.process_time() - cpu0:.0f} s)", flush=True)


def ensure_row_day(cache: Path, root: Path) -> tuple[Path, float]:
    """One SOL day in today's layout (the compacted day file): (store root, seconds taken)."""
    rows_root = cache / f"rows-{CACHE_VERSION}-{root.name}"
    if (rows_root / "DONE").exists():
        return rows_root, float((rows_root / "DONE").read_text())
    shutil.rmtree(rows_root, ignore_errors=True)
    day = FIRST_DAY + timedelta(days=1)
    src, dst = Store(str(root)), Store(str(rows_root))
    t0 = time.perf_counter()
    rows = src.read_versions_expanded("SOL", day)
    lo = pd.Timestamp(day, tz="UTC")
    state = src.read_market_state("SOL", lo, lo + pd.Timedelta(days=1, microseconds=-1))
    dst.fs.write_table(f"{L.partition_dir('positions', 'SOL', day)}/{L.day_name(day)}",
                       rows, row_group_size=256 * 1024)
    dst.fs.write_table(f"{L.partition_dir('market_state', 'SOL', day)}/{L.day_name(day)}", state)
    seconds = time.perf_counter() - t0
    (rows_root / "DONE").write_text(f"{seconds:.3f}")
    return rows_root, seconds


def sizes(root: Path, days: int) -> dict[str, float]:
    store = Store(str(root))
    return {m: (store.size_bytes(m)["position_versions"] + store.size_bytes(m)["market_state"])
            / days for m in MARKETS}


# ------------------------------------------------------------------ measurements (children)
def child(job: str, root: Path, days: int, out: Path | None = None) -> dict[str, float]:
    from liqmap.heatmap.build import HeatmapRequest, build_heatmap
    from liqmap.heatmap.sources import StoreSource

    first = pd.Timestamp(FIRST_DAY, tz="UTC")
    windows = {"24h": (first + pd.Timedelta(days=1), 24 * 60, 1),
               "24h-span": (first + pd.Timedelta(days=1, hours=9, minutes=17), 24 * 60, 1),
               "30d": (first + pd.Timedelta(hours=5), min(30, days) * MIN_PER_DAY, 60),
               "all": (first, days * MIN_PER_DAY, MIN_PER_DAY)}
    if job == "convert":
        return _convert(root)
    if job == "rollup":
        return _rollup_day(root)
    if job.endswith("-exact"):  # the baseline: the same window binned from the versions
        import liqmap.heatmap.rollups as HR

        HR.rollups_apply = lambda binner: False
        job = job.removesuffix("-exact")
    start, minutes, freq = windows[job]
    rss0 = _memory_mb("VmRSS")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    hm = build_heatmap(StoreSource(str(root), "SOL"), HeatmapRequest(
        t_start=start, t_end=start + pd.Timedelta(minutes=minutes - 1), bin_usd=BIN_USD,
        pmin_usd=PMIN, pmax_usd=PMAX, freq_min=freq))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if out is not None:
        np.save(out, hm.matrix.z)
    return {"seconds": seconds, "cpu_s": cpu,
            "peak_mb": _memory_mb("VmHWM"), "rss0_mb": rss0,
            "sum": float(hm.matrix.z.sum()), "rows": float(hm.stats.n_rows)}


def _rollup_day(root: Path) -> dict[str, float]:
    """Write one SOL day's roll-up again (in a copy of its files): CPU and bytes."""
    day = FIRST_DAY + timedelta(days=1)
    work = Path(tempfile.mkdtemp(prefix="liqmap-bench-rollup-"))
    try:
        for dataset in ("position_versions", "market_state"):
            rel = L.partition_dir(dataset, "SOL", day)
            shutil.copytree(root / rel, work / rel)
        store = Store(str(work))
        t0, cpu0 = time.perf_counter(), time.process_time()
        ensure_rollup(store, "SOL", day)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        return {"seconds": seconds, "cpu_s": cpu, "bytes": float(store.size_bytes("SOL")[
            "position_rollups"]), "peak_mb": _memory_mb("VmHWM")}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _convert(rows_root: Path) -> dict[str, float]:
    work = rows_root.with_name(rows_root.name + "-convert")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(rows_root, work)
    store = Store(str(work))
    n_rows = store.read_positions("SOL", columns=["ts"]).num_rows
    before = store.size_bytes("SOL")["positions"]
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = store.compact(now=pd.Timestamp("2100-01-01", tz="UTC"))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = store.size_bytes("SOL")["position_versions"]
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": seconds, "cpu_s": cpu, "rows": float(n_rows),
            "converted": float(report.converted),
            "rows_bytes": float(before), "versions_bytes": float(after),
            "peak_mb": _memory_mb("VmHWM")}


def _memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(job: str, root: Path, days: int, out: Path | None = None) -> dict[str, float]:
    extra = ["--out", str(out)] if out is not None else []
    done = subprocess.run([sys.executable, __file__, "--child", job, "--root", str(root),
                           "--days", str(days), *extra], check=True, capture_output=True,
                          text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "liqmap-bench-store")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root, args.days, args.out)))
        return
    if args.days < 2:
        sys.exit("--days must be at least 2")
    root = ensure_store(args.cache, args.days)
    report(args.cache, root, args.days, args.repeat)


def _same(a: Path, b: Path) -> bool:
    """Whether two saved matrices are equal to 1e-9 relative (the exactness bound)."""
    x, y = np.load(a), np.load(b)
    scale = max(float(np.abs(x).max()), 1e-300)
    return bool(x.shape == y.shape and np.allclose(x, y, rtol=1e-9, atol=1e-12 * scale)
                and ((x == 0) == (y == 0)).all())


def report(cache: Path, root: Path, days: int, repeat: int) -> None:
    per_day = sizes(root, days)
    rows_root, expand_s = ensure_row_day(cache, root)
    rows_bytes = Store(str(rows_root)).size_bytes("SOL")["positions"]
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"store: {days} days; SOL {MARKETS['SOL'][0]:,}, ETH/BTC {MARKETS['ETH'][0]:,} open "
          f"positions, {CHURN:.1%} changing a minute")
    for market, size in per_day.items():
        print(f"bytes per day {market}: {size / 1e6:6.2f} MB (versions + market_state)")
    print(f"today's compacted day file, SOL, same rows: {rows_bytes / 1e6:7.1f} MB -> "
          f"{rows_bytes / per_day['SOL']:.0f}x smaller (target <= 25 MB and >= 10x)")
    measure("24h", root, days)  # numba cache and page cache warm-up
    labels = {"24h": "24 h, 1-minute columns (target < 0.5 s)",
              "24h-span": "24 h across midnight, 1-minute columns",
              "30d": f"{min(30, days)} days, 60-minute columns (target < 2 s)",
              "all": f"{days} days, daily columns (target < 5 s)"}
    for job, label in labels.items():
        best = min((measure(job, root, days, cache / f"{job}.npy") for _ in range(repeat)),
                   key=lambda r: r["seconds"])
        print(f"heatmap {label:44s}: {best['seconds']:6.2f} s (CPU {best['cpu_s']:.2f} s)  "
              f"peak RSS {best['peak_mb']:5.0f}"
              f" MB (interpreter + imports {best['rss0_mb']:.0f} MB), "
              f"{best['rows']:,.0f} position-minutes")
        if job == "24h":
            base = measure("24h", rows_root, days, cache / "24h-base.npy")
            print(f"  the same 24 h on today's layout (the compacted day file): "
                  f"{base['seconds']:6.2f} s (CPU {base['cpu_s']:.2f} s), "
                  f"peak RSS {base['peak_mb']:.0f} MB -> "
                  f"{base['cpu_s'] / best['cpu_s']:.1f}x CPU; same matrix: "
                  f"{_same(cache / '24h.npy', cache / '24h-base.npy')}")
        if job in ("30d", "all"):
            base = measure(f"{job}-exact", root, days, cache / f"{job}-base.npy")
            print(f"  the same window from the versions alone (no roll-ups): "
                  f"{base['seconds']:6.2f} s (CPU {base['cpu_s']:.2f} s), "
                  f"peak RSS {base['peak_mb']:.0f} MB -> "
                  f"{base['cpu_s'] / best['cpu_s']:.1f}x CPU; same matrix: "
                  f"{_same(cache / f'{job}.npy', cache / f'{job}-base.npy')}")
    roll = measure("rollup", root, days)
    print(f"roll-up of one SOL day (written by compact beside its versions): "
          f"{roll['bytes'] / 1e6:.2f} MB, {roll['seconds']:.1f} s (CPU {roll['cpu_s']:.1f} s), "
          f"peak RSS {roll['peak_mb']:.0f} MB")
    conv = measure("convert", rows_root, days)
    print(f"conversion of one SOL row day ({conv['rows']:,.0f} rows, "
          f"{conv['rows_bytes'] / 1e6:.0f} MB) to versions: {conv['seconds']:.1f} s "
          f"(CPU {conv['cpu_s']:.1f} s) = "
          f"{conv['rows'] / conv['seconds'] / 1e6:.2f} M rows/s, peak RSS {conv['peak_mb']:.0f}"
          f" MB; expanding versions to rows: {expand_s:.1f} s")


if __name__ == "__main__":
    main()
