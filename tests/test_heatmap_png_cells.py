"""PNG heatmaps: an empty cell never looks like a small amount (the empty zone around the
price shows), and `--side split` colour bars have labels that neither collide nor clip."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.render_png import EMPTY, heatmap_figure
from liqmap.heatmap.sources import StoreSource

from test_heatmap_helpers import write_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("png") / "store"
    snapshots = {f"2025-08-22T12:{m:02d}": (180.0, [("long", 170.5, 300.0),
                                                   ("long", 160.5, 0.001),  # tiny
                                                   ("short", 190.5, 120.0),
                                                   ("short", 195.5, 0.001)])
                 for m in range(20)}
    write_store(root, snapshots)
    return root


def _pixel(fig, ax, x: float, y: float) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    px, py = ax.transData.transform((x, y))
    return rgba[int(rgba.shape[0] - py), int(px), :3] / 255.0


@pytest.mark.parametrize(("side", "log_color"), [("both", False), ("both", True),
                                                 ("split", False), ("split", True)])
def test_empty_cells_differ_from_small_ones(store: Path, side: str, log_color: bool) -> None:
    heatmap = build_heatmap(StoreSource(str(store), "SOL"),
                            HeatmapRequest(bin_usd=1.0, pmin_usd=150, pmax_usd=200, side=side))
    fig = heatmap_figure(heatmap, log_color=log_color)
    ax = fig.axes[0]
    x = float(np.mean(ax.get_xlim()))
    empty = _pixel(fig, ax, x, 175.5)  # between the price and the longs: nothing there
    tiny_long = _pixel(fig, ax, x, 160.5)
    tiny_short = _pixel(fig, ax, x, 195.5)
    assert np.allclose(empty, to_rgb(EMPTY), atol=0.02)
    for tiny in (tiny_long, tiny_short):
        assert np.abs(tiny - empty).sum() > 0.15, (tiny, empty)


@pytest.mark.parametrize(("pmin_usd", "pmax_usd"), [(None, None), (160.0, 200.0),
                                                    (175.0, 185.0), (179.0, 240.0)])
def test_split_colour_bar_labels_neither_collide_nor_clip(store: Path, pmin_usd: float | None,
                                                          pmax_usd: float | None) -> None:
    """Whatever the height of the price in the range (its tag sits at the right edge, where
    the bars are), no two of: the price tag, each bar's tick labels, each bar's side and unit
    label, collide or leave the figure."""
    heatmap = build_heatmap(StoreSource(str(store), "SOL"),
                            HeatmapRequest(bin_usd=0.5, freq_min=5, side="split", unit="usd",
                                           pmin_usd=pmin_usd, pmax_usd=pmax_usd))
    fig = heatmap_figure(heatmap, log_color=True)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    figure_box = fig.bbox
    (tag,) = fig.axes[0].child_axes  # the price tag's axis, right of the heatmap
    (price_label,) = [t for t in tag.get_yticklabels() if t.get_visible()]
    assert price_label.get_text() == "180.00"
    boxes = [price_label.get_bbox_patch().get_window_extent(renderer)]
    boxes += [cax.yaxis.get_tightbbox(renderer) for cax in fig.axes[1:]]
    for box in boxes:
        assert (box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1
                and box.y0 >= figure_box.y0 and box.y1 <= figure_box.y1), box
    for a, b in combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    labels = [cax.yaxis.label.get_text() for cax in fig.axes[1:]]
    assert [label.split(" · ")[0] for label in labels] == ["Shorts", "Longs"], labels
