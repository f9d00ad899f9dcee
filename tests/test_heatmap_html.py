"""The interactive page's figure: gap shading sits on the minutes without a snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liqmap.heatmap import HeatmapRequest, StoreSource, build_heatmap
from liqmap.heatmap.render_html import heatmap_html_figure

from test_heatmap_helpers import write_store


def test_gap_shading_is_placed_on_the_missing_minutes(tmp_path: Path) -> None:
    minutes = [m for m in range(20) if m not in (7, 8, 13)]
    write_store(tmp_path, {f"2025-08-22T12:{m:02d}": (180.0, [("long", 170.0 + m % 4, 50.0)])
                           for m in minutes})
    heatmap = build_heatmap(StoreSource(str(tmp_path), "SOL"),
                            HeatmapRequest(t_start="2025-08-22T12:00", t_end="2025-08-22T12:19",
                                           bin_usd=1.0))
    # as plotly.js receives them: a bare number on a date axis would be read as milliseconds
    shapes = json.loads(heatmap_html_figure(heatmap).to_json())["layout"]["shapes"]
    assert all(isinstance(s["x0"], str) and isinstance(s["x1"], str) for s in shapes)
    spans = [(pd.Timestamp(s["x0"]), pd.Timestamp(s["x1"])) for s in shapes]
    assert spans == [(pd.Timestamp("2025-08-22T12:07"), pd.Timestamp("2025-08-22T12:09")),
                     (pd.Timestamp("2025-08-22T12:13"), pd.Timestamp("2025-08-22T12:14"))]
