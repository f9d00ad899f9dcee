"""Shared checks: a heatmap from another layout (versions, roll-ups) equals the rows' one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liqmap.heatmap.build import HeatmapRequest, build_heatmap
from liqmap.heatmap.sources import StoreSource


def heatmap(root: Path, **kw: object) -> object:
    """The SOL heatmap of the store at `root` for the HeatmapRequest fields `kw`."""
    return build_heatmap(StoreSource(str(root), "SOL"), HeatmapRequest(**kw))  # type: ignore[arg-type]


def assert_same_heatmap(rows: object, other: object) -> None:
    """The matrix to 1e-9 relative, the counts exactly, the amounts to 1e-9."""
    a, b = rows.matrix, other.matrix  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a.gap_mask, b.gap_mask)
    np.testing.assert_array_equal(a.t_edges_ns, b.t_edges_ns)
    np.testing.assert_array_equal(a.y_edges_usd, b.y_edges_usd)
    scale = max(float(np.abs(a.z).max()), 1e-300)
    np.testing.assert_allclose(b.z, a.z, rtol=1e-9, atol=1e-12 * scale)
    assert ((a.z == 0) == (b.z == 0)).all()  # no float dust in empty cells
    for name in a.extra:
        np.testing.assert_allclose(b.extra[name], a.extra[name], rtol=1e-9, atol=1e-12 * scale)
    sa, sb = rows.stats, other.stats  # type: ignore[attr-defined]
    for field in ("n_rows", "n_rows_in_range", "n_rows_below", "n_rows_above", "n_rows_no_liq",
                  "n_rows_unmatched", "n_snapshots"):
        assert getattr(sa, field) == getattr(sb, field), field
    for field in ("amount_in_range", "amount_below", "amount_above"):
        assert getattr(sb, field) == pytest.approx(getattr(sa, field), rel=1e-9, abs=1e-12)


def assert_same_heatmap_of(rows_root: Path, other_root: Path, **kw: object) -> None:
    """The two stores' heatmaps for `kw` are the same, or both stores say the window holds no
    snapshot (a window inside a gap)."""
    from liqmap.errors import DataGapError

    try:
        rows = heatmap(rows_root, **kw)
    except DataGapError:
        with pytest.raises(DataGapError):
            heatmap(other_root, **kw)
        return
    assert_same_heatmap(rows, heatmap(other_root, **kw))
