"""numba kernels of the binning (plain numpy arrays in, no objects): one pass over the rows.

`binning` wraps them; the rule for a price on an edge lives only in `_bin_of`.
"""

from __future__ import annotations

import numba
import numpy as np

from liqmap.constants import US_PER_MINUTE
from liqmap.jupiter.perps_nb import liq_price_usd6_nb

USD6 = 1e6

#: `lut` values besides a slot index: the minute has no snapshot / its rows are not used.
NO_SNAPSHOT = -1
SKIPPED = -2
#: Indices into the int64 `counts` array filled by `bin_rows_nb`.
N_USED, N_UNMATCHED, N_NO_LIQ, N_IN, N_BELOW, N_ABOVE = range(6)
#: Indices into the float64 `amounts` array.
A_IN, A_BELOW, A_ABOVE = range(3)
#: `side_mode` of `bin_rows_nb`.
ALL_ONE_LAYER, LONGS_ONLY, SHORTS_ONLY, SPLIT = range(4)


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(price: float, edges: np.ndarray, inv_width: float) -> int:
    """Bin of a finite price: i for edges[i] <= price < edges[i+1], -1 below, n_bins above.

    The estimate from the width is corrected against the edges themselves, so a price equal
    to an edge always lands in the bin starting there.
    """
    n_bins = edges.size - 1
    if price < edges[0]:
        return -1
    if price >= edges[n_bins]:
        return n_bins
    k = min(max(int((price - edges[0]) * inv_width), 0), n_bins - 1)
    if price < edges[k]:
        k -= 1
    elif price >= edges[k + 1]:
        k += 1
    return k


@numba.njit(cache=True, nogil=True)
def bin_index_nb(price: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """`_bin_of` of every price, int64 [n]."""
    inv_width = (edges.size - 1) / (edges[-1] - edges[0])
    out = np.empty(price.size, dtype=np.int64)
    for i in range(price.size):
        out[i] = _bin_of(price[i], edges, inv_width)
    return out


@numba.njit(cache=True, nogil=True)
def bin_rows_nb(time_us: np.ndarray, price: np.ndarray, size: np.ndarray, is_long: np.ndarray,
                side_mode: int, usd: bool, start_min: int, lut: np.ndarray, edges: np.ndarray,
                acc: np.ndarray, counts: np.ndarray, amounts: np.ndarray) -> None:
    """Add rows into `acc` float64 [n_layers, n_slots, n_bins] (slot-major for locality).

    `lut[minute - start_min]` is the slot of a minute, NO_SNAPSHOT or SKIPPED. The amount is
    `size` (tokens) or `size * price` (`usd`). `is_long` may be empty with ALL_ONE_LAYER.
    """
    n_bins = edges.size - 1
    inv_width = n_bins / (edges[n_bins] - edges[0])
    last_time, slot = np.int64(-1), NO_SNAPSHOT
    for i in range(time_us.size):
        if i == 0 or time_us[i] != last_time:  # rows come grouped by snapshot: divide rarely
            last_time = time_us[i]
            offset = last_time // US_PER_MINUTE - start_min
            slot = lut[offset] if 0 <= offset < lut.size else NO_SNAPSHOT
        if slot == NO_SNAPSHOT:
            counts[N_UNMATCHED] += 1
            continue
        if slot == SKIPPED:
            continue
        layer = 0
        if side_mode != ALL_ONE_LAYER:
            if side_mode == LONGS_ONLY and not is_long[i]:
                continue
            if side_mode == SHORTS_ONLY and is_long[i]:
                continue
            if side_mode == SPLIT and not is_long[i]:
                layer = 1
        counts[N_USED] += 1
        p = price[i]
        if not (p > 0 and p < np.inf):  # 0 or NaN: cannot be liquidated
            counts[N_NO_LIQ] += 1
            continue
        amount = size[i] * p if usd else size[i]
        k = _bin_of(p, edges, inv_width)
        if k < 0:
            counts[N_BELOW] += 1
            amounts[A_BELOW] += amount
        elif k >= n_bins:
            counts[N_ABOVE] += 1
            amounts[A_ABOVE] += amount
        else:
            counts[N_IN] += 1
            amounts[A_IN] += amount
            acc[layer, slot, k] += amount


#: `code` of a price that cannot be liquidated (0 or not finite), below every bin's -1.
NO_LIQ = -2


@numba.njit(cache=True, nogil=True)
def price_codes_nb(price: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """NO_LIQ for a price that is not > 0 and finite, else `_bin_of` (-1 .. n_bins): the codes
    rise with the price, which `add_segments_nb` callers rely on."""
    inv_width = (edges.size - 1) / (edges[-1] - edges[0])
    out = np.empty(price.size, dtype=np.int64)
    for i in range(price.size):
        p = price[i]
        out[i] = _bin_of(p, edges, inv_width) if (p > 0 and p < np.inf) else NO_LIQ
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _add_segment(s: int, b: int, k: int, lay: int, amt: float, snap_slot: np.ndarray,
                 next_change: np.ndarray, n_bins: int, acc: np.ndarray, counts: np.ndarray,
                 amounts: np.ndarray) -> None:
    """An amount at price code `k` in snapshots [s, b): what `bin_rows_nb` does for one row
    per snapshot, once per run of snapshots sharing a slot (`next_change[s]`: the first
    snapshot after s with another slot). `lay` -1: the side is not wanted."""
    while s < b:
        e = min(next_change[s], b)
        cnt = e - s
        slot = snap_slot[s]
        s = e
        if slot == NO_SNAPSHOT:
            counts[N_UNMATCHED] += cnt
            continue
        if slot == SKIPPED or lay < 0:
            continue
        counts[N_USED] += cnt
        if k == NO_LIQ:
            counts[N_NO_LIQ] += cnt
        elif k < 0:
            counts[N_BELOW] += cnt
            amounts[A_BELOW] += amt * cnt
        elif k >= n_bins:
            counts[N_ABOVE] += cnt
            amounts[A_ABOVE] += amt * cnt
        else:
            counts[N_IN] += cnt
            amounts[A_IN] += amt * cnt
            acc[lay, slot, k] += amt * cnt


@numba.njit(cache=True, nogil=True)
def add_segments_nb(seg_a: np.ndarray, seg_b: np.ndarray, code: np.ndarray, amount: np.ndarray,
                    layer: np.ndarray, snap_slot: np.ndarray, next_change: np.ndarray,
                    n_bins: int, acc: np.ndarray, counts: np.ndarray,
                    amounts: np.ndarray) -> None:
    """Add segments: `amount[i]` at price code `code[i]` in snapshots [seg_a[i], seg_b[i])."""
    for i in range(seg_a.size):
        _add_segment(seg_a[i], seg_b[i], code[i], layer[i], amount[i], snap_slot, next_change,
                     n_bins, acc, counts, amounts)


@numba.njit(cache=True, nogil=True, inline="always")
def _code_at(v: int, s: int, size: np.ndarray, entry: np.ndarray, coll: np.ndarray,
             cis: np.ndarray, is_long: np.ndarray, source: np.ndarray, snap_cum: np.ndarray,
             snap_params: np.ndarray, edges: np.ndarray, inv_width: float) -> int:
    liq = liq_price_usd6_nb(size[v], entry[v], coll[v], cis[v], is_long[v],
                            snap_cum[s, source[v]], snap_params[s, 0], snap_params[s, 1],
                            snap_params[s, 2])
    p = liq / USD6
    return _bin_of(p, edges, inv_width) if (p > 0 and p < np.inf) else NO_LIQ


@numba.njit(cache=True, nogil=True)
def add_versions_nb(i0: np.ndarray, i1: np.ndarray, size: np.ndarray, entry: np.ndarray,
                    coll: np.ndarray, cis: np.ndarray, is_long: np.ndarray, source: np.ndarray,
                    amount: np.ndarray, layer: np.ndarray, run_end: np.ndarray,
                    snap_cum: np.ndarray, snap_params: np.ndarray, snap_slot: np.ndarray,
                    next_change: np.ndarray, edges: np.ndarray, acc: np.ndarray,
                    counts: np.ndarray, amounts: np.ndarray) -> None:
    """Add versions, version v held in snapshots [i0[v], i1[v]), priced at each snapshot.

    Inside a run of snapshots (`run_end[s]`: where the run holding s ends) the price code of a
    version is monotone, so a piece whose first and last codes agree holds that code
    throughout; other pieces are halved until they do.
    """
    n_bins = edges.size - 1
    inv_width = n_bins / (edges[n_bins] - edges[0])
    stack = np.empty((128, 4), dtype=np.int64)
    for v in range(i0.size):
        s = i0[v]
        while s < i1[v]:
            e = min(run_end[s], i1[v])
            top = 0
            stack[0, 0], stack[0, 1] = s, e
            stack[0, 2] = _code_at(v, s, size, entry, coll, cis, is_long, source, snap_cum,
                                   snap_params, edges, inv_width)
            stack[0, 3] = _code_at(v, e - 1, size, entry, coll, cis, is_long, source,
                                   snap_cum, snap_params, edges, inv_width)
            while top >= 0:
                a, b, ca, cb = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
                top -= 1
                if ca == cb:
                    _add_segment(a, b, ca, layer[v], amount[v], snap_slot, next_change,
                                 n_bins, acc, counts, amounts)
                    continue
                m = (a + b) // 2
                before = _code_at(v, m - 1, size, entry, coll, cis, is_long, source, snap_cum,
                                  snap_params, edges, inv_width)
                at = _code_at(v, m, size, entry, coll, cis, is_long, source, snap_cum,
                              snap_params, edges, inv_width)
                top += 1
                stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = m, b, at, cb
                top += 1
                stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = a, m, ca, before
            s = e


#: fine price code of a roll-up cell holding positions that cannot be liquidated
ROLLUP_NO_LIQ = -2


@numba.njit(cache=True, nogil=True)
def add_rollup_nb(ts_us: np.ndarray, side_code: np.ndarray, long_code: int, fine: np.ndarray,
                  amount: np.ndarray, n_rows: np.ndarray, j_lo: int, m: int, side_mode: int,
                  start_min: int, freq_min: int, acc: np.ndarray, counts: np.ndarray,
                  amounts: np.ndarray) -> None:
    """Add roll-up cells (sums over their span's snapshots) into `acc` [layers, cols, bins]:
    fine code j is bin (j - j_lo) // m, below j_lo, at or above j_lo + n_bins × m above."""
    n_bins = acc.shape[2]
    j_hi = j_lo + n_bins * m
    for i in range(ts_us.size):
        is_long = side_code[i] == long_code
        layer = 0
        if side_mode == LONGS_ONLY and not is_long:
            continue
        if side_mode == SHORTS_ONLY and is_long:
            continue
        if side_mode == SPLIT and not is_long:
            layer = 1
        col = (ts_us[i] // US_PER_MINUTE - start_min) // freq_min
        if col < 0 or col >= acc.shape[1]:
            raise ValueError("a roll-up cell outside the grid's columns")
        cnt, amt, j = n_rows[i], amount[i], fine[i]
        counts[N_USED] += cnt
        if j == ROLLUP_NO_LIQ:
            counts[N_NO_LIQ] += cnt
        elif j < j_lo:
            counts[N_BELOW] += cnt
            amounts[A_BELOW] += amt
        elif j >= j_hi:
            counts[N_ABOVE] += cnt
            amounts[A_ABOVE] += amt
        else:
            counts[N_IN] += cnt
            amounts[A_IN] += amt
            acc[layer, col, (j - j_lo) // m] += amt
