"""Bin position versions directly, without one row per position per minute.

A version holds its account unchanged over a run of snapshots; only the borrow fee moves, with
the collateral custody's interest counter, and it moves the liquidation price one way only:
up for a long, down for a short (a higher fee means less margin), while the custody's
parameters stay the same and the counter does not fall. So within such a run the price bin
is monotone in time, and where it changes is found by bisection, each probe priced with
`perps.liquidation_prices` (through `store.versions.minute_values`). Each piece of constant bin
is then added once per heatmap column (`MatrixBinner.add_segments`), giving the matrix the
per-minute rows give, to float rounding (a sum of n equal amounts is amount × n).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.heatmap.binning import MatrixBinner
from liqmap.store import versions as V

#: The version columns the binning reads (no account keys).
BIN_COLUMNS = ["valid_from", "valid_to", "side", "entry_price_usd6", "size_usd6",
               "collateral_usd6", "size_tokens", "cumulative_interest_snapshot",
               "interest_source", "liq_price"]


def add_versions(binner: MatrixBinner, versions: pa.Table, state: V.DayState) -> None:
    """Add what `versions` hold at the snapshots of `state` (one day or less) to `binner`."""
    if state.n == 0 or versions.num_rows == 0:
        return
    v = V.VersionArrays.from_table(versions)
    i0, i1 = v.snapshot_ranges(state)
    held = i1 > i0
    fixed = np.flatnonzero(held & (v.source == V.FIXED))
    stored = np.asarray(pc.fill_null(versions.column("liq_price"), np.nan), np.float64)
    parts = [(fixed, i0[fixed], i1[fixed], binner.price_codes(stored[fixed]))]
    live = np.flatnonzero(held & (v.source != V.FIXED))
    vid, a, b = _cut(live, i0[live], i1[live], _run_starts(state))
    parts.append(_constant_pieces(binner, v, state, vid, a, b))
    vid, a, b, code = (np.concatenate(x) for x in zip(*parts, strict=True))
    snap_minute = state.ts_us // 60_000_000
    binner.add_segments(snap_minute, a, b, code, v.size_tokens[vid], v.side[vid] == C.SIDE_LONG)


def _run_starts(state: V.DayState) -> np.ndarray:
    """Snapshots (> 0) where the formula's parameters change or a counter falls: the price of
    a version is monotone between two of them."""
    if state.n < 2:
        return np.zeros(0, np.int64)
    cut = state.group[1:] != state.group[:-1]
    cut |= (state.cum[1:] < state.cum[:-1]).any(axis=1)
    return np.flatnonzero(cut) + 1


def _cut(vid: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segments [a, b) cut at every run start strictly inside them."""
    if not starts.size or not vid.size:
        return vid, a, b
    lo = np.searchsorted(starts, a, side="right")
    n_cut = np.searchsorted(starts, b - 1, side="right") - lo
    pieces = n_cut + 1
    seg = np.repeat(np.arange(vid.size), pieces)
    j = np.arange(seg.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    padded = np.append(starts, 0)  # index past the end is masked below
    start = np.where(j == 0, a[seg], padded[np.minimum(lo[seg] + j - 1, starts.size)])
    end = np.where(j == n_cut[seg], b[seg], padded[np.minimum(lo[seg] + j, starts.size)])
    return vid[seg], start, end


def _codes(binner: MatrixBinner, v: V.VersionArrays, state: V.DayState, vid: np.ndarray,
           snap: np.ndarray) -> np.ndarray:
    liq = V.minute_values(v, vid, snap, state).liq_price_usd6 / V.USD6
    return binner.price_codes(liq)


def _constant_pieces(binner: MatrixBinner, v: V.VersionArrays, state: V.DayState,
                     vid: np.ndarray, a: np.ndarray, b: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split monotone segments until each holds one price code (bisection on the code)."""
    first = _codes(binner, v, state, vid, a)
    last = _codes(binner, v, state, vid, b - 1)
    done: list[tuple[np.ndarray, ...]] = []
    while vid.size:
        same = first == last
        done.append((vid[same], a[same], b[same], first[same]))
        vid, a, b, first, last = (x[~same] for x in (vid, a, b, first, last))
        if not vid.size:
            break
        mid = (a + b) // 2
        before, at = _codes(binner, v, state, vid, mid - 1), _codes(binner, v, state, vid, mid)
        vid = np.concatenate([vid, vid])
        a, b = np.concatenate([a, mid]), np.concatenate([mid, b])
        first, last = np.concatenate([first, at]), np.concatenate([before, last])
    if not done:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    return tuple(np.concatenate(x) for x in zip(*done, strict=True))  # type: ignore[return-value]
