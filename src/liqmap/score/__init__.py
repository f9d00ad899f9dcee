"""Score the map against what was actually liquidated (pure: tables in, a `Score` out).

For every pair of consecutive snapshots (t0, t1) at most `LIQUIDATION_MAX_GAP_S` apart, the
price moved from p0 to p1 and swept the interval between them. The map at t0 (every stored
position with its liquidation price) predicted the positions whose level the move crossed:
the same rule that classifies disappearances (`collect.liquidations.crossed`, levels
re-priced with borrow fees accrued to t1), so prediction and detection never disagree on a
convention. The realized set is the `liquidations` rows of kind `liquidated` with `ts` in
(t0, t1]: stored at t1 by the snapshot comparison, or in between by the stream (to the second;
confirmed kind when confirmation ran).

- precision = hits / predicted, recall = hits / realized, by positions and by USD volume
  (`size_usd` at t0); None when the denominator is empty (never a made-up 1.0 or 0).
- calibration: every position of the map at t0, bucketed by its signed distance from p0 to its
  level (percent of p0, positive = the side the price has not reached), with the share
  predicted and the share realized in the next interval.
- lead time: how long each realized liquidation had sat in the map (t1 minus the first stored
  snapshot of the same position, same `open_time`, in the window).
- misses: realized liquidations the map did not predict at t1, with where the map had them
  (their stored level and its distance from the swept interval), or not in the map at all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.collect.liquidations import (
    LIQUIDATED,
    Observation,
    crossed,
    liq_price_now_usd6,
    usd6,
)
from liqmap.timeutil import iso_utc

#: calibration buckets: signed distance from the price to the level, percent of the price
DISTANCE_EDGES_PCT = (-np.inf, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, np.inf)


@dataclass
class Score:
    """What `score_map` measured; `summary` is the JSON-ready part."""

    summary: dict[str, Any]
    minutes: pd.DataFrame  # one row per scored interval
    calibration: pd.DataFrame  # one row per distance bucket
    realized: pd.DataFrame  # one row per realized liquidation in the window
    misses: pd.DataFrame = field(default_factory=pd.DataFrame)


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _pairs(states: pd.DataFrame, max_gap_s: float) -> list[tuple[int, int]]:
    ts = states["ts"]
    gaps = ts.diff().dt.total_seconds().to_numpy()
    return [(i - 1, i) for i in range(1, len(states)) if 0 < gaps[i] <= max_gap_s]


def _in_intervals(ts: pd.Series, minutes: pd.DataFrame) -> np.ndarray:
    """Which `ts` fall in a scored interval (ts_before, ts] of `minutes`."""
    inside = np.zeros(len(ts), bool)
    for t0, t1 in zip(minutes.get("ts_before", []), minutes.get("ts", []), strict=True):
        inside |= ((ts > t0) & (ts <= t1)).to_numpy()
    return inside


def _signed_distance_pct(is_long: np.ndarray, liq: np.ndarray, price: float) -> np.ndarray:
    """Percent of `price` the price must still move to reach each level (negative: past it)."""
    d = np.where(is_long, price - liq, liq - price) / price * 100.0
    return np.where(liq > 0, d, np.inf)


def score_map(market: str, positions: pa.Table, states: pa.Table, realized: pd.DataFrame, *,
              max_gap_s: float = C.LIQUIDATION_MAX_GAP_S) -> Score:
    """Score the stored map of `market` against realized liquidations (module docstring).

    Args:
        positions: positions rows (with `ts`) of the window.
        states: market_state rows of the same snapshots.
        realized: `Store.read_liquidations` rows of the window (any kind).
    """
    st = states.sort_by("ts")
    st_df = st.select(["ts", "oracle_price"]).to_pandas()
    realized = realized[realized["kind"] == LIQUIDATED] if len(realized) else realized
    by_ts = _split_positions(positions)
    first_seen = _first_seen(positions)
    minutes, cal_parts, seen_rows = [], [], []
    for i0, i1 in _pairs(st_df, max_gap_s):
        t0, t1 = st_df["ts"].iloc[i0], st_df["ts"].iloc[i1]
        prev_rows = by_ts.get(t0)
        if prev_rows is None:
            continue
        prev = Observation.from_snapshot(market, prev_rows, st.slice(i0, 1))
        cur = Observation.from_snapshot(market, prev_rows.slice(0, 0), st.slice(i1, 1))
        actual = (realized[(realized["ts"] > t0) & (realized["ts"] <= t1)] if len(realized)
                  else realized)
        row, cal, seen = _score_pair(prev, cur, actual, first_seen)
        minutes.append(row)
        cal_parts.append(cal)
        seen_rows.append(seen)
    return _assemble(market, minutes, cal_parts, seen_rows, realized, st_df, max_gap_s)


def _split_positions(positions: pa.Table) -> dict[pd.Timestamp, pa.Table]:
    if positions.num_rows == 0:
        return {}
    positions = positions.sort_by("ts")
    ts = positions.column("ts").to_numpy()
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    return {pd.Timestamp(ts[s]).tz_localize("UTC"): positions.slice(s, e - s)
            for s, e in zip(starts, ends, strict=True)}


def _first_seen(positions: pa.Table) -> dict[tuple[str, int], pd.Timestamp]:
    if positions.num_rows == 0:
        return {}
    df = positions.select(["pubkey", "open_time", "ts"]).to_pandas()
    first = df.groupby(["pubkey", "open_time"], sort=False)["ts"].min()
    return {(k, pd.Timestamp(o).value): v for (k, o), v in first.items()}


def _score_pair(prev: Observation, cur: Observation, actual: pd.DataFrame,
                first_seen: dict[tuple[str, int], pd.Timestamp]
                ) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    rows = prev.positions
    side = rows.column("side").cast(pa.string())
    is_long = pc.equal(side, "long").to_numpy(zero_copy_only=False)
    liq_before = usd6(rows.column("liq_price").to_numpy(zero_copy_only=False))
    liq_now = liq_price_now_usd6(rows, cur.interest_now, cur.fee_params)
    p0, p1 = prev.oracle_price, cur.oracle_price
    predicted = crossed(is_long, liq_before, liq_now, int(usd6(p0)), int(usd6(p1)))
    keys = np.asarray(rows.column("pubkey").to_pylist(), dtype=object)
    size = rows.column("size_usd").to_numpy(zero_copy_only=False)
    realized_keys = set(actual["pubkey"]) if len(actual) else set()
    was_realized = np.fromiter((k in realized_keys for k in keys), bool, len(keys))
    hit = predicted & was_realized
    in_map = set(keys.tolist())
    dist = _signed_distance_pct(is_long, liq_before / C.USD_PRECISION, p0)
    cal = pd.DataFrame({"distance_pct": dist, "predicted": predicted,
                        "realized": was_realized, "size_usd": size})
    actual_usd = float(actual["size_usd"].sum()) if len(actual) else 0.0
    hit_usd = float(size[hit].sum())
    row = {"ts": cur.ts, "ts_before": prev.ts, "price_before": p0, "price_after": p1,
           "swept_low": min(p0, p1), "swept_high": max(p0, p1),
           "predicted_n": int(predicted.sum()), "predicted_usd": float(size[predicted].sum()),
           "realized_n": len(actual), "realized_usd": actual_usd,
           "hit_n": int(hit.sum()), "hit_usd": hit_usd}
    seen = _realized_detail(actual, keys, predicted, dist, rows, prev, cur, first_seen, in_map)
    return row, cal, seen


def _realized_detail(actual: pd.DataFrame, keys: np.ndarray, predicted: np.ndarray,
                     dist: np.ndarray, rows: pa.Table, prev: Observation, cur: Observation,
                     first_seen: dict[tuple[str, int], pd.Timestamp], in_map: set[str]
                     ) -> pd.DataFrame:
    if not len(actual):
        return pd.DataFrame()
    index = {k: i for i, k in enumerate(keys.tolist())}
    open_time = rows.column("open_time").to_numpy(zero_copy_only=False)
    liq_map = rows.column("liq_price").to_numpy(zero_copy_only=False)
    out = []
    for rec in actual.to_dict("records"):
        key = str(rec["pubkey"])
        i = index.get(key)
        seen = (first_seen.get((key, pd.Timestamp(open_time[i]).value)) if i is not None
                else None)
        out.append({
            "ts": cur.ts, "pubkey": key, "side": rec["side"], "size_usd": rec["size_usd"],
            "confirmed": bool(rec["confirmed"]), "in_map": key in in_map,
            "predicted": bool(predicted[i]) if i is not None else False,
            "map_liq_price": rec["predicted_liq_price"],
            "distance_pct": float(dist[i]) if i is not None else np.nan,
            "miss_distance_pct": (_miss_distance(str(rec["side"]), float(liq_map[i]),
                                                 prev.oracle_price, cur.oracle_price)
                                  if i is not None else np.nan),
            "lead_time_min": ((cur.ts - seen).total_seconds() / 60 if seen is not None
                              else np.nan),
        })
    return pd.DataFrame(out)


def _miss_distance(side: str, level: float, p0: float, p1: float) -> float:
    """How far (percent of the price) the map's level lay beyond the swept interval, on the
    side the price did not reach (negative: the move had already passed it)."""
    lo, hi = min(p0, p1), max(p0, p1)
    if side == "long":
        return (lo - level) / lo * 100.0
    return (level - hi) / hi * 100.0


def _assemble(market: str, minutes: list[dict[str, Any]], cal_parts: list[pd.DataFrame],
              seen_rows: list[pd.DataFrame], realized: pd.DataFrame, states: pd.DataFrame,
              max_gap_s: float) -> Score:
    mdf = pd.DataFrame(minutes)
    det = pd.concat([s for s in seen_rows if len(s)], ignore_index=True) if any(
        len(s) for s in seen_rows) else pd.DataFrame(columns=[
            "ts", "pubkey", "side", "size_usd", "confirmed", "in_map", "predicted",
            "map_liq_price", "distance_pct", "miss_distance_pct", "lead_time_min"])
    cal = _calibration(pd.concat(cal_parts, ignore_index=True) if cal_parts
                       else pd.DataFrame(columns=["distance_pct", "predicted", "realized",
                                                  "size_usd"]))
    tot = {k: float(mdf[k].sum()) if len(mdf) else 0.0 for k in
           ("predicted_n", "predicted_usd", "realized_n", "realized_usd", "hit_n", "hit_usd")}
    unscored = int((~_in_intervals(realized["ts"], mdf)).sum()) if len(realized) else 0
    misses = det[~det["predicted"].astype(bool)] if len(det) else det
    lead = det["lead_time_min"].dropna() if len(det) else pd.Series(dtype=float)
    summary = {
        "market": market,
        "t_start": iso_utc(states["ts"].iloc[0]) if len(states) else None,
        "t_end": iso_utc(states["ts"].iloc[-1]) if len(states) else None,
        "snapshots": len(states), "intervals_scored": len(mdf),
        "max_gap_s": max_gap_s,
        "predicted": {"positions": int(tot["predicted_n"]), "usd": tot["predicted_usd"]},
        "realized": {"positions": int(tot["realized_n"]), "usd": tot["realized_usd"],
                     "confirmed": int(det["confirmed"].sum()) if len(det) else 0,
                     "outside_scored_intervals": unscored},
        "hits": {"positions": int(tot["hit_n"]), "usd": tot["hit_usd"]},
        "precision": {"by_position": _ratio(tot["hit_n"], tot["predicted_n"]),
                      "by_volume": _ratio(tot["hit_usd"], tot["predicted_usd"])},
        "recall": {"by_position": _ratio(tot["hit_n"], tot["realized_n"]),
                   "by_volume": _ratio(tot["hit_usd"], tot["realized_usd"])},
        "lead_time_min": _quantiles(lead),
        "misses": {"positions": len(misses),
                   "not_in_map": int((~misses["in_map"].astype(bool)).sum()) if len(misses)
                   else 0,
                   "median_distance_pct": _median(misses["miss_distance_pct"])
                   if len(misses) else None},
        "calibration": cal.to_dict(orient="records"),
    }
    return Score(summary, mdf, cal, det, misses)


def _calibration(rows: pd.DataFrame) -> pd.DataFrame:
    labels = [_bucket_label(lo, hi) for lo, hi in itertools.pairwise(DISTANCE_EDGES_PCT)]
    finite = rows[np.isfinite(rows["distance_pct"].astype(float))]
    bucket = pd.cut(finite["distance_pct"].astype(float), list(DISTANCE_EDGES_PCT),
                    labels=labels, right=False)
    out = []
    for label in labels:
        part = finite[bucket == label]
        pred = part["predicted"].astype(bool)
        real = part["realized"].astype(bool)
        out.append({"distance_pct": label, "in_map": len(part),
                    "predicted": int(pred.sum()), "realized": int(real.sum()),
                    "hits": int((pred & real).sum()),
                    "predicted_share": _ratio(float(pred.sum()), len(part)),
                    "realized_share": _ratio(float(real.sum()), len(part)),
                    "realized_usd": float(part["size_usd"][real].sum())})
    return pd.DataFrame(out)


def _bucket_label(lo: float, hi: float) -> str:
    if lo == -np.inf:
        return "< 0 (past)"
    if hi == np.inf:
        return f">= {lo:g}"
    return f"{lo:g}-{hi:g}"


def _median(values: pd.Series) -> float | None:
    finite = values.astype(float).dropna()
    return float(finite.median()) if len(finite) else None


def _quantiles(values: pd.Series) -> dict[str, float | None]:
    if not len(values):
        return {"n": 0, "p10": None, "median": None, "p90": None}
    q = values.quantile([0.1, 0.5, 0.9]).to_numpy()
    return {"n": len(values), "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}

