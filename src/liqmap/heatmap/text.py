"""Words around a heatmap: units, titles, gap lists and the one-line run summary (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from liqmap.heatmap.build import Heatmap
from liqmap.matrix import LiqMatrix

#: Gap runs named one by one in the summary line before "+N more".
MAX_LISTED_GAP_RUNS = 4


def unit_name(matrix: LiqMatrix) -> str:
    """The amount unit: the market's token ("SOL") or "USD"."""
    return "USD" if matrix.unit == "usd" else matrix.market


def format_usd(value: float) -> str:
    """A price or width in USD without float noise: 0.1 -> "0.1", 170 -> "170"."""
    return f"{value:.10g}"


def colorbar_label(matrix: LiqMatrix, agg: str = "mean") -> str:
    """E.g. "SOL to liquidate per 0.1 USD bin" (+ how coarser columns combine snapshots)."""
    what = f"{unit_name(matrix)} to liquidate per {format_usd(matrix.bin_width_usd)} USD bin"
    if matrix.unit == "usd":
        what += " (size × liq. price)"
    if matrix.freq_min > 1:
        what += f"\n{agg} of the 1-min snapshots in each {matrix.freq_min}-min column"
    return what


def window_text(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """"2025-08-22 12:00 → 15:00 UTC" (the date repeated only when it changes)."""
    end_fmt = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} → {end.strftime(end_fmt)} UTC"


def title_lines(heatmap: Heatmap, gap_style: str = "hatched") -> tuple[str, str]:
    """(title, subtitle) naming market, window, bin, columns, side and gaps (drawn `gap_style`)."""
    m = heatmap.matrix
    title = f"{m.market} liquidation heatmap · {window_text(heatmap.t_start, heatmap.t_end)}"
    side = {"both": "all positions", "long": "longs only", "short": "shorts only",
            "split": "longs and shorts"}[heatmap.side]
    cols = f"{m.freq_min}-min columns" + (f" ({heatmap.agg})" if m.freq_min > 1 else "")
    gaps = f"{heatmap.n_gaps} gap column(s), {gap_style}" if heatmap.n_gaps else "no gaps"
    return title, f"bin {format_usd(m.bin_width_usd)} USD · {cols} · {side} · {gaps}"


def gap_runs(gap_mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive gap columns as (first, last) column indices.

    >>> gap_runs(np.array([False, True, True, False, True]))
    [(1, 2), (4, 4)]
    """
    padded = np.concatenate([[False], np.asarray(gap_mask, dtype=bool), [False]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(change[::2], change[1::2], strict=True)]


def format_gap_runs(matrix: LiqMatrix, limit: int = MAX_LISTED_GAP_RUNS) -> str:
    """E.g. "12:05, 13:10–13:12 +3 more": first and last minute of each gap run, UTC."""
    runs = gap_runs(matrix.gap_mask)
    starts = pd.to_datetime(matrix.t_edges_ns[:-1], utc=True)
    multi_day = starts[0].date() != starts[-1].date()
    fmt = "%m-%d %H:%M" if multi_day else "%H:%M"
    parts = []
    step = pd.Timedelta(int(matrix.t_edges_ns[1] - matrix.t_edges_ns[0]), unit="ns")
    for first, last in runs[:limit]:
        text = starts[first].strftime(fmt)
        last_minute = starts[last] + step - pd.Timedelta(minutes=1)
        if last_minute > starts[first]:
            text += "–" + last_minute.strftime("%H:%M")
        parts.append(text)
    more = f" +{len(runs) - limit} more" if len(runs) > limit else ""
    return ", ".join(parts) + more


def summary_line(heatmap: Heatmap, outputs: Sequence[str]) -> str:
    """One line: window, columns, gaps, positions, amount in range, outputs."""
    m, s = heatmap.matrix, heatmap.stats
    unit = unit_name(m)
    n_bins = m.z.shape[0]
    gaps = f"gaps {heatmap.n_gaps} of {m.n_columns:,} columns"
    if heatmap.n_gaps:
        gaps += f" ({format_gap_runs(m)})"
    total = s.amount_in_range + s.amount_outside
    outside_pct = 100 * s.amount_outside / total if total else 0.0
    per_snapshot = s.amount_in_range / s.n_snapshots if s.n_snapshots else 0.0
    positions = (f"positions {s.n_rows:,} rows in {s.n_snapshots:,} snapshots, "
                 f"{s.n_rows_below + s.n_rows_above:,} outside "
                 f"{format_usd(m.y_edges_usd[0])}–{format_usd(m.y_edges_usd[-1])} USD "
                 f"({outside_pct:.1f}% of amount: {s.n_rows_below:,} below, "
                 f"{s.n_rows_above:,} above)")
    if s.n_rows_no_liq:
        positions += f", {s.n_rows_no_liq:,} without liq. price"
    if s.n_rows_unmatched:
        positions += f", {s.n_rows_unmatched:,} outside any snapshot"
    return " | ".join([
        f"{m.market} {window_text(heatmap.t_start, heatmap.t_end)}",
        f"{m.n_columns:,} columns × {n_bins:,} bins ({m.freq_min} min, "
        f"{format_usd(m.bin_width_usd)} USD)",
        gaps,
        positions,
        f"in range {per_snapshot:,.1f} {unit} per snapshot",
        "out " + (", ".join(outputs) if outputs else "nothing written"),
    ])
