"""`liqmap score` outputs: the store window read, the summary JSON, the figure, the table."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liqmap.collect.liquidations import DETECT_COLUMNS
from liqmap.errors import DataGapError
from liqmap.files import write_bytes
from liqmap.score import Score, score_map
from liqmap.store import Store
from liqmap.timeutil import default_start, parse_time


def score_store(store: Store, market: str, t_start: str | pd.Timestamp | None = None,
                t_end: str | pd.Timestamp | None = None) -> Score:
    """Score `market`'s map in [t_start, t_end] (default: the last 24 stored hours)."""
    bounds = store.time_bounds(market)
    if bounds is None:
        raise DataGapError(f"the store {store.root} holds no {market} snapshots; collect first "
                           "or fix --data-dir/--market")
    end = _time(t_end, "--t-end", bounds[1]) if t_end is not None else bounds[1]
    start = (_time(t_start, "--t-start", bounds[1]) if t_start is not None
             else max(bounds[0], default_start(end, market)))
    if start >= end:
        raise DataGapError(f"--t-start {start} is not before --t-end {end}; swap or widen them")
    states = store.read_market_state(market, start, end)
    if states.num_rows < 2:
        raise DataGapError(f"{market} has {states.num_rows} snapshot(s) between {start} and "
                           f"{end}; scoring needs two or more: widen the window")
    positions = store.read_positions(market, start, end, ["ts", *DETECT_COLUMNS])
    realized = store.read_liquidations(market, start, end)
    return score_map(market, positions, states, realized)


def _time(value: str | pd.Timestamp, flag: str, newest: pd.Timestamp) -> pd.Timestamp:
    """`value` in UTC; a relative time (`-6h`) counts back from `newest`."""
    if isinstance(value, pd.Timestamp):
        return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
    return parse_time(value, what=flag, anchor=newest)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def table_text(score: Score) -> str:
    """The summary as a plain-text table (what the command prints)."""
    s = score.summary
    lines = [
        f"{s['market']} {s['t_start']} .. {s['t_end']}: {s['intervals_scored']} intervals "
        f"scored of {s['snapshots']} snapshots",
        f"{'':24}{'by position':>14}{'by volume':>18}",
        f"{'predicted':24}{s['predicted']['positions']:>14,}{s['predicted']['usd']:>17,.0f}$",
        f"{'realized':24}{s['realized']['positions']:>14,}{s['realized']['usd']:>17,.0f}$",
        f"{'hits':24}{s['hits']['positions']:>14,}{s['hits']['usd']:>17,.0f}$",
        f"{'precision':24}{_pct(s['precision']['by_position']):>14}"
        f"{_pct(s['precision']['by_volume']):>18}",
        f"{'recall':24}{_pct(s['recall']['by_position']):>14}"
        f"{_pct(s['recall']['by_volume']):>18}",
    ]
    lead = s["lead_time_min"]
    if lead["n"]:
        lines.append(f"lead time in the map (min): p10 {lead['p10']:.0f}, median "
                     f"{lead['median']:.0f}, p90 {lead['p90']:.0f} (n={lead['n']})")
    m = s["misses"]
    lines.append(f"misses: {m['positions']} ({m['not_in_map']} not in the map)"
                 + (f"; the map had the others a median {m['median_distance_pct']:.2f} % "
                    "beyond the swept interval" if m["median_distance_pct"] is not None
                    else ""))
    lines.append(f"realized outside the scored intervals: "
                 f"{s['realized']['outside_scored_intervals']}")
    lines.append("calibration (distance to the level, % of price): in map / predicted / "
                 "realized")
    for row in s["calibration"]:
        lines.append(f"  {row['distance_pct']:>12}: {row['in_map']:>9,} / "
                     f"{row['predicted']:>6,} / {row['realized']:>6,}")
    return "\n".join(lines)


def figure_png(score: Score) -> bytes:
    """Four panels: predicted vs realized USD per interval, calibration, lead time, misses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), dpi=110)
    s = score.summary
    fig.suptitle(f"liqmap score: {s['market']} {s['t_start']} .. {s['t_end']}   precision "
                 f"{_pct(s['precision']['by_volume'])}, recall {_pct(s['recall']['by_volume'])}"
                 " (by volume)")
    _volume_panel(axes[0, 0], score)
    _calibration_panel(axes[0, 1], score)
    _lead_panel(axes[1, 0], score)
    _miss_panel(axes[1, 1], score)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _volume_panel(ax: Any, score: Score) -> None:
    """Each scored interval (t0, t1] as a bar: predicted filled, realized outlined."""
    import matplotlib.dates as mdates

    m = score.minutes
    ax.set_title("USD per interval: predicted by the map vs realized")
    if len(m):
        left = mdates.date2num(m["ts_before"].dt.tz_convert("UTC").dt.tz_localize(None))
        right = mdates.date2num(m["ts"].dt.tz_convert("UTC").dt.tz_localize(None))
        ax.bar(left, m["predicted_usd"], width=right - left, align="edge", color="tab:blue",
               alpha=0.55, label="predicted (levels the move crossed)")
        ax.bar(left, m["realized_usd"], width=right - left, align="edge", fill=False,
               edgecolor="tab:red", linewidth=1.2, label="realized (liquidations dataset)")
        ax.xaxis_date()
        ax.legend(loc="upper left", fontsize=8)
    ax.set_ylabel("USD")
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)


def _calibration_panel(ax: Any, score: Score) -> None:
    cal = score.calibration
    ax.set_title("calibration: share of the map liquidated next interval")
    x = np.arange(len(cal))
    pred = cal["predicted_share"].astype(float).fillna(0).to_numpy()
    real = cal["realized_share"].astype(float).fillna(0).to_numpy()
    ax.bar(x - 0.2, pred * 100, 0.4, color="tab:blue", label="predicted")
    ax.bar(x + 0.2, real * 100, 0.4, color="tab:red", label="realized")
    ax.set_xticks(x, cal["distance_pct"], rotation=30, fontsize=8)
    ax.set_xlabel("distance from the price to the level at t0, % of price")
    ax.set_ylabel("% of positions in the bucket")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)


def _lead_panel(ax: Any, score: Score) -> None:
    lead: Any = score.realized["lead_time_min"].dropna() if len(score.realized) else []
    ax.set_title("lead time: minutes each liquidated position sat in the map")
    if len(lead):
        ax.hist(lead, bins=min(40, max(len(lead) // 3, 5)), color="tab:purple")
    else:
        ax.text(0.5, 0.5, "no realized liquidation in the map", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("minutes")
    ax.set_ylabel("positions")


def _miss_panel(ax: Any, score: Score) -> None:
    misses = score.misses
    ax.set_title("misses: where the map had them (beyond the swept interval)")
    misses = misses[misses["miss_distance_pct"].notna()] if len(misses) else misses
    if len(misses):
        d = misses["miss_distance_pct"].astype(float)
        ax.scatter(misses["ts"], d, s=np.clip(misses["size_usd"] / 1000, 8, 300),
                   color="tab:orange", alpha=0.7)
        ax.set_ylabel("% of the price beyond the move")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    else:
        n_out = len(score.misses)
        text = "no misses the map held" + (f" ({n_out} never in it)" if n_out else "")
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])


def write_outputs(score: Score, out_dir: str | Path) -> tuple[Path, Path]:
    """`score.json` and `score.png` in `out_dir` (created), each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / "score.json", out / "score.png"
    png = figure_png(score)
    write_bytes(json_path, json.dumps(score.summary, indent=2, default=str).encode())
    write_bytes(png_path, png)
    return json_path, png_path
