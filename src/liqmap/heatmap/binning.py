"""Pure binning: position rows -> time × price matrices (no I/O).

Times are whole minutes since the epoch (int64). Price bins are `[edge, edge + bin_usd)` with
edges on integer multiples of the bin width, so 170.0 starts a bin whatever float noise
`k * 0.1` carries. A time column holds `freq_min` minutes; with several snapshots inside it,
their 1-minute matrices are combined with `agg`:

- "mean": cellwise mean over the snapshots present (gaps excluded), so a column keeps the units
  of a 1-minute column (the old tool summed them instead);
- "last": the newest snapshot inside the column;
- "max": cellwise maximum over the snapshots.

A column without any snapshot is a gap: its cells are 0 and its `gap_mask` entry is True.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.heatmap import _kernels as K
from liqmap.heatmap._kernels import bin_index_nb

AGGS = ("mean", "last", "max")
SIDES = ("both", "long", "short", "split")
UNITS = ("tokens", "usd")
#: Refuse matrices bigger than this (bytes of float64 cells, all layers together).
DEFAULT_MAX_MATRIX_BYTES = 2 * 1024**3
#: Bin widths are rounded to at most this many decimals when edges are computed.
MAX_BIN_DECIMALS = 12


def bin_decimals(bin_usd: float) -> int:
    """Decimal places that write `bin_usd` exactly, at most 12.

    >>> bin_decimals(0.1), bin_decimals(0.25), bin_decimals(5.0), bin_decimals(50)
    (1, 2, 0, 0)
    """
    exponent = Decimal(repr(float(bin_usd))).normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite input
    return min(max(-exponent, 0), MAX_BIN_DECIMALS)


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise `InputError` unless `value` is one of `choices` (`option` names the flag)."""
    if value not in choices:
        raise InputError(f"{option} must be one of {', '.join(choices)}, got {value!r}")


def check_bin(bin_usd: float) -> None:
    """Raise `InputError` unless `bin_usd` is a finite width > 0 USD."""
    if not (math.isfinite(bin_usd) and bin_usd > 0):
        raise InputError(f"--bin must be a positive price width in USD, got {bin_usd:g}; "
                         "use e.g. --bin 0.1")


def check_price_range(pmin_usd: float, pmax_usd: float, bin_usd: float | None) -> None:
    """Raise `InputError` unless `0 <= pmin_usd < pmax_usd` and `bin_usd > 0` (all finite;
    `bin_usd` None: the default bin, not chosen yet)."""
    if bin_usd is not None:
        check_bin(bin_usd)
    if not (math.isfinite(pmin_usd) and math.isfinite(pmax_usd)):
        raise InputError("--pmin and --pmax must be finite prices in USD")
    if pmin_usd < 0:
        raise InputError(f"--pmin must be >= 0 USD, got {pmin_usd:g}")
    if pmin_usd >= pmax_usd:
        raise InputError(f"--pmin ({pmin_usd:g}) must be below --pmax ({pmax_usd:g}); "
                         "swap them or widen the range")


def check_colors(log_color: bool, vmin: float | None, vmax: float | None) -> None:
    """Raise `InputError` unless vmin/vmax are finite, > 0 for a log scale, vmin < vmax."""
    for name, value in (("--vmin", vmin), ("--vmax", vmax)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{name} must be a finite number, got {value}")
    if log_color and ((vmin is not None and vmin <= 0) or (vmax is not None and vmax <= 0)):
        raise InputError("--log-color needs --vmin and --vmax > 0; raise them or drop "
                         "--log-color")
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise InputError(f"--vmin ({vmin:g}) must be below --vmax ({vmax:g})")


def price_edge_range(pmin_usd: float, pmax_usd: float, bin_usd: float) -> tuple[int, int]:
    """(k_lo, k_hi): the edges are `k * bin_usd` for k in [k_lo, k_hi].

    k_lo = floor(pmin / bin), k_hi = ceil(pmax / bin), computed in decimal so that 170 / 0.1
    is 1700, not 1699.999; a ratio within 1e-9 of a whole number counts as that number, so a
    bound carrying float noise (3 * 0.05 = 0.15000000000000002) stays on its edge.

    >>> price_edge_range(170, 200, 0.1)
    (1700, 2000)
    >>> price_edge_range(170.05, 199.91, 0.1)
    (1700, 2000)
    """
    check_price_range(pmin_usd, pmax_usd, bin_usd)
    width = Decimal(repr(float(bin_usd)))
    k_lo = math.floor(_snap(Decimal(repr(float(pmin_usd))) / width))
    k_hi = math.ceil(_snap(Decimal(repr(float(pmax_usd))) / width))
    return int(k_lo), max(int(k_hi), int(k_lo) + 1)


def _snap(ratio: Decimal) -> Decimal:
    """`ratio`, or the whole number within 1e-9 (relative) of it."""
    nearest = ratio.to_integral_value()
    close = abs(ratio - nearest) <= Decimal("1e-9") * max(Decimal(1), abs(nearest))
    return nearest if close else ratio


def make_price_edges(pmin_usd: float, pmax_usd: float, bin_usd: float) -> np.ndarray:
    """Price bin edges in USD, float64 [n_bins + 1], from floor(pmin/bin) to ceil(pmax/bin).

    >>> make_price_edges(170, 170.3, 0.1).tolist()
    [170.0, 170.1, 170.2, 170.3]
    """
    k_lo, k_hi = price_edge_range(pmin_usd, pmax_usd, bin_usd)
    ks = np.arange(k_lo, k_hi + 1, dtype=np.float64)
    return np.round(ks * float(bin_usd), bin_decimals(bin_usd))


def price_bin_index(price_usd: np.ndarray, y_edges_usd: np.ndarray) -> np.ndarray:
    """Bin of each price, int64 [n]: i for `y_edges[i] <= p < y_edges[i+1]`, -1 below, n_bins above.

    Prices must be finite. A price exactly on an edge goes to the bin starting there (the same
    answer as `np.searchsorted(y_edges, p, side="right") - 1` and `pd.cut(closed="left")`),
    whatever the float noise of the edges: the estimate from the width is corrected against the
    edges themselves.

    >>> price_bin_index(np.array([169.9, 170.0, 170.1, 170.15, 170.3]),
    ...                 make_price_edges(170, 170.3, 0.1)).tolist()
    [-1, 0, 1, 1, 3]
    """
    return bin_index_nb(np.ascontiguousarray(price_usd, dtype=np.float64),
                        np.ascontiguousarray(y_edges_usd, dtype=np.float64))


def unique_int(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array, int64 (as `np.unique`, by sorting:
    numpy 2's hash-based `np.unique` takes ~0.4 s for a year of minutes, a sort ~10 ms; an
    already increasing array is returned as it is)."""
    a = np.asarray(values, dtype=np.int64)
    if a.size < 2:
        return a.copy()
    step = np.diff(a)
    if (step > 0).all():
        return a
    a = np.sort(a)
    return a[np.append(True, a[1:] != a[:-1])]


@dataclass(frozen=True)
class TimeGrid:
    """Time columns: column c holds minutes [start + c * freq, start + (c + 1) * freq).

    Attributes:
        start_min: first minute of column 0, minutes since the epoch (a multiple of `freq_min`).
        n_cols: number of columns.
        freq_min: minutes per column.
    """

    start_min: int
    n_cols: int
    freq_min: int = 1

    @classmethod
    def from_window(cls, t_start_min: int, t_end_min: int, freq_min: int = 1) -> TimeGrid:
        """Columns from `t_start_min` floored to a multiple of `freq_min` through `t_end_min`."""
        if freq_min < 1:
            raise InputError(f"--freq must be a whole number of minutes >= 1, got {freq_min}")
        if t_end_min < t_start_min:
            raise InputError("--t-start is after --t-end; swap them")
        start = t_start_min // freq_min * freq_min
        return cls(start, (t_end_min - start) // freq_min + 1, freq_min)

    @property
    def n_minutes(self) -> int:
        return self.n_cols * self.freq_min

    def t_edges_ns(self) -> np.ndarray:
        """Column edges, int64 ns since the epoch [n_cols + 1]."""
        minutes = self.start_min + self.freq_min * np.arange(self.n_cols + 1, dtype=np.int64)
        return minutes * NS_PER_MINUTE


def matrix_bytes(n_bins: int, n_slots: int, n_layers: int = 1) -> int:
    """Bytes of `n_layers` float64 matrices of `n_bins` × `n_slots` cells."""
    return 8 * n_bins * n_slots * n_layers


def check_matrix_size(n_bins: int, n_cols: int, need_bytes: int, limit_bytes: int) -> None:
    """Raise `InputError`, before allocating, when a matrix of `n_bins` × `n_cols` needs more
    than `limit_bytes` (`need_bytes`: its memory with working copies)."""
    if need_bytes > limit_bytes:
        raise InputError(
            f"a matrix of {n_bins:,} price bins × {n_cols:,} columns would need "
            f"{need_bytes / 2**30:.1f} GiB of memory, over the {limit_bytes / 2**30:.1f} GiB "
            "limit; use a coarser --bin or --freq, a narrower --pmin/--pmax or a shorter window")


@dataclass(frozen=True)
class BinStats:
    """What the binning saw, summed over every snapshot row used (amounts in the matrix unit)."""

    n_rows: int = 0
    n_rows_in_range: int = 0
    n_rows_below: int = 0
    n_rows_above: int = 0
    n_rows_no_liq: int = 0  # liq_price 0 or missing: the position cannot be liquidated
    n_rows_unmatched: int = 0  # rows whose minute is not a snapshot of the window
    n_snapshots: int = 0  # snapshots whose rows were used (with agg "last": one per column)
    amount_in_range: float = 0.0
    amount_below: float = 0.0
    amount_above: float = 0.0

    @property
    def amount_outside(self) -> float:
        return self.amount_below + self.amount_above


def _layer_names(side: str) -> tuple[str, ...]:
    return {"both": ("total",), "long": ("long",), "short": ("short",),
            "split": ("long", "short")}[side]


_SIDE_MODES = {"both": K.ALL_ONE_LAYER, "long": K.LONGS_ONLY, "short": K.SHORTS_ONLY,
               "split": K.SPLIT}


@dataclass
class MatrixBinner:
    """Accumulates batches of position rows into per-column matrices, one pass per batch.

    Args:
        grid: the time columns.
        y_edges_usd: price bin edges [n_bins + 1].
        snapshot_min: minutes (since the epoch) that have a snapshot; the others are gaps.
        agg: how snapshots inside one column combine ("mean", "last", "max").
        side: "both", "long", "short" or "split" (long and short layers).
        unit: "tokens" (amount = size_tokens) or "usd" (size_tokens × liq_price).
    """

    grid: TimeGrid
    y_edges_usd: np.ndarray
    snapshot_min: np.ndarray
    agg: str = "mean"
    side: str = "both"
    unit: str = "tokens"

    def __post_init__(self) -> None:
        check_choice("--agg", self.agg, AGGS)
        check_choice("--side", self.side, SIDES)
        check_choice("--unit", self.unit, UNITS)
        offset = unique_int(self.snapshot_min) - self.grid.start_min
        offset = offset[(offset >= 0) & (offset < self.grid.n_minutes)]
        self._snap_offset = offset
        self._snap_col = offset // self.grid.freq_min
        self.count = np.bincount(self._snap_col, minlength=self.grid.n_cols)
        self.per_snapshot = self.agg == "max" and self.grid.freq_min > 1
        self._lut = self._slot_table()
        n_slots = offset.size if self.per_snapshot else self.grid.n_cols
        self.layers = _layer_names(self.side)
        self.n_bins = len(self.y_edges_usd) - 1
        self._edges = np.ascontiguousarray(self.y_edges_usd, dtype=np.float64)
        self._acc = np.zeros((len(self.layers), n_slots, self.n_bins))
        self._counts = np.zeros(6, dtype=np.int64)
        self._amounts = np.zeros(3)

    def _slot_table(self) -> np.ndarray:
        """Slot of each minute of the grid: its snapshot (agg max) or column; with agg "last",
        the snapshots before the last one of their column are SKIPPED."""
        lut = np.full(self.grid.n_minutes, K.NO_SNAPSHOT, dtype=np.int64)
        if self.per_snapshot:
            lut[self._snap_offset] = np.arange(self._snap_offset.size)
            return lut
        lut[self._snap_offset] = self._snap_col
        if self.agg == "last" and self.grid.freq_min > 1:
            is_last = np.append(self._snap_col[1:] != self._snap_col[:-1], True)
            lut[self._snap_offset[~is_last]] = K.SKIPPED
        return lut

    @property
    def stats(self) -> BinStats:
        """What the rows added so far held."""
        c, a = self._counts, self._amounts
        n_snapshots = (int((self.count > 0).sum()) if self.agg == "last"
                       else int(self._snap_offset.size))
        return BinStats(n_rows=int(c[K.N_USED]), n_rows_in_range=int(c[K.N_IN]),
                        n_rows_below=int(c[K.N_BELOW]), n_rows_above=int(c[K.N_ABOVE]),
                        n_rows_no_liq=int(c[K.N_NO_LIQ]), n_rows_unmatched=int(c[K.N_UNMATCHED]),
                        n_snapshots=n_snapshots, amount_in_range=float(a[K.A_IN]),
                        amount_below=float(a[K.A_BELOW]), amount_above=float(a[K.A_ABOVE]))

    def add(self, time_us: np.ndarray, liq_price_usd: np.ndarray, size_tokens: np.ndarray,
            is_long: np.ndarray | None = None) -> None:
        """Add rows: snapshot time (int64 [n], µs since the epoch), liquidation price (float64
        [n], USD), size (float64 [n], tokens) and side (bool [n], True = long; None when the
        source has no side, allowed only with side "both")."""
        if is_long is None and self.side != "both":
            raise InputError(f"--side {self.side} needs the position side, which this source "
                             "lacks (legacy CSV); use --side both")
        side_mode = _SIDE_MODES[self.side] if is_long is not None else K.ALL_ONE_LAYER
        K.bin_rows_nb(np.ascontiguousarray(time_us, dtype=np.int64),
                      np.ascontiguousarray(liq_price_usd, dtype=np.float64),
                      np.ascontiguousarray(size_tokens, dtype=np.float64),
                      np.ascontiguousarray(is_long if is_long is not None else np.zeros(0, bool),
                                           dtype=np.bool_),
                      side_mode, self.unit == "usd", self.grid.start_min, self._lut,
                      self._edges, self._acc, self._counts, self._amounts)

    def price_codes(self, liq_price_usd: np.ndarray) -> np.ndarray:
        """Where each price falls, int64 [n]: a bin 0..n_bins-1, -1 below, n_bins above, -2
        (`_kernels.NO_LIQ`) for a position that cannot be liquidated. Rises with the price."""
        return K.price_codes_nb(np.ascontiguousarray(liq_price_usd, dtype=np.float64),
                                self._edges)

    def _snapshot_slots(self, snap_minute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slot of each snapshot, first later snapshot with another slot), int64 [n_snap]."""
        offset = np.asarray(snap_minute, np.int64) - self.grid.start_min
        inside = (offset >= 0) & (offset < self._lut.size)
        snap_slot = np.where(inside, self._lut[np.where(inside, offset, 0)], K.NO_SNAPSHOT)
        n = snap_slot.size
        starts = np.flatnonzero(np.append(True, snap_slot[1:] != snap_slot[:-1]))
        next_change = np.repeat(np.append(starts[1:], n), np.diff(np.append(starts, n)))
        return snap_slot.astype(np.int64), next_change.astype(np.int64)

    def _check_tokens(self) -> None:
        if self.unit != "tokens":
            raise ValueError("segments add token amounts; use add() for --unit usd")

    def add_segments(self, snap_minute: np.ndarray, seg_a: np.ndarray, seg_b: np.ndarray,
                     code: np.ndarray, size_tokens: np.ndarray, is_long: np.ndarray) -> None:
        """Add position segments, each the same as one row of `size_tokens` at price code
        `code` in every snapshot seg_a <= s < seg_b of `snap_minute` (int64 [n_snap], sorted
        minutes since the epoch). Amounts in tokens only (the USD amount moves each minute)."""
        self._check_tokens()
        snap_slot, next_change = self._snapshot_slots(snap_minute)
        K.add_segments_nb(np.asarray(seg_a, np.int64), np.asarray(seg_b, np.int64),
                          np.asarray(code, np.int64), np.asarray(size_tokens, np.float64),
                          _segment_layers(self.side, np.asarray(is_long, bool)), snap_slot,
                          next_change, self.n_bins, self._acc, self._counts, self._amounts)

    def add_versions(self, snap: SnapshotTerms, held: VersionTerms) -> None:
        """Add position versions priced at every snapshot they hold (`_kernels.add_versions_nb`:
        the collector's formula, compiled; bisection on the price bin within `snap.run_end`)."""
        self._check_tokens()
        snap_slot, next_change = self._snapshot_slots(snap.minute)
        K.add_versions_nb(held.i0, held.i1, held.size_usd6, held.entry_usd6,
                          held.collateral_usd6, held.interest_snapshot, held.is_long,
                          held.source, held.size_tokens,
                          _segment_layers(self.side, held.is_long), snap.run_end, snap.cum,
                          snap.params, snap_slot, next_change, self._edges, self._acc,
                          self._counts, self._amounts)

    def add_rollup(self, ts_us: np.ndarray, side_code: np.ndarray, long_code: int,
                   fine_code: np.ndarray, amount: np.ndarray, n_rows: np.ndarray, j_lo: int,
                   m: int) -> None:
        """Add roll-up cells: `amount[i]` tokens summed over `n_rows[i]` position-snapshots of
        the span starting at `ts_us[i]` (µs since the epoch; inside one column), side
        `side_code[i]` (`long_code`: long), at fine price code `fine_code[i]` (-2: cannot be
        liquidated); bin b holds fine codes [j_lo + b × m, j_lo + (b + 1) × m). Only with agg
        "mean", whose columns are such sums until `finish` divides them."""
        self._check_tokens()
        if self.agg != "mean":
            raise ValueError("pre-binned sums add up only for agg 'mean'")
        K.add_rollup_nb(np.ascontiguousarray(ts_us, np.int64),
                        np.ascontiguousarray(side_code, np.int64), int(long_code),
                        np.ascontiguousarray(fine_code, np.int64),
                        np.ascontiguousarray(amount, np.float64),
                        np.ascontiguousarray(n_rows, np.int64), int(j_lo), int(m),
                        _SIDE_MODES[self.side], self.grid.start_min, self.grid.freq_min,
                        self._acc, self._counts, self._amounts)

    def finish(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(layers by name, each float64 [n_bins, n_cols]; gap mask bool [n_cols]).

        With side "split" the layers are "long", "short" and their sum "total".
        """
        acc = self._acc.transpose(0, 2, 1)  # [layers, n_bins, n_slots]
        if self.side == "split":
            acc = np.concatenate([acc, acc.sum(axis=0, keepdims=True)])
        names = (*self.layers, "total") if self.side == "split" else self.layers
        gap = self.count == 0
        if self.per_snapshot:
            cols = self._reduce_max(acc)
        elif self.agg == "mean":
            cols = acc / np.maximum(self.count, 1)
        else:
            cols = np.ascontiguousarray(acc)
        result = {name: cols[i] for i, name in enumerate(names)}
        if "total" not in result:
            result["total"] = cols[0]
        return result, gap

    def _reduce_max(self, acc: np.ndarray) -> np.ndarray:
        out = np.zeros((acc.shape[0], self.n_bins, self.grid.n_cols))
        if self._snap_col.size:
            present = np.flatnonzero(self.count)
            starts = np.searchsorted(self._snap_col, present)
            out[:, :, present] = np.maximum.reduceat(acc, starts, axis=2)
        return out


@dataclass(frozen=True)
class SnapshotTerms:
    """Per snapshot of one day, sorted: minute int64 [n] since the epoch; cum uint64 [n, 3]
    interest counters (market, USDC, USDT custody); params uint64 [n, 3] (decrease bps,
    impact scalar, max leverage bps); run_end int64 [n]: end of the run of snapshots holding
    s inside which the formula's parameters stay and no counter falls."""

    minute: np.ndarray
    cum: np.ndarray
    params: np.ndarray
    run_end: np.ndarray


@dataclass(frozen=True)
class VersionTerms:
    """Per version: snapshots [i0, i1) held (int64), the account (uint64 USD-6 / RATE-9),
    is_long bool, source int64 (index into `SnapshotTerms.cum`), size_tokens float64."""

    i0: np.ndarray
    i1: np.ndarray
    size_usd6: np.ndarray
    entry_usd6: np.ndarray
    collateral_usd6: np.ndarray
    interest_snapshot: np.ndarray
    is_long: np.ndarray
    source: np.ndarray
    size_tokens: np.ndarray


def _segment_layers(side: str, is_long: np.ndarray) -> np.ndarray:
    """Layer of each segment for `side` (-1: not wanted), as `bin_rows_nb` picks it."""
    if side == "both":
        return np.zeros(is_long.size, np.int64)
    if side == "split":
        return np.where(is_long, 0, 1).astype(np.int64)
    wanted = is_long if side == "long" else ~is_long
    return np.where(wanted, 0, -1).astype(np.int64)
def warm_up_binning() -> threading.Thread:
    """Start the binning kernel's one-time set-up in a fresh process (numba's type registries
    and the cached machine code: 0.3-2 s) on a thread, so it overlaps reading the rows, which
    Arrow does without holding the GIL. Returns the thread; the first real call waits for it
    under numba's own lock if it is still running."""
    def run() -> None:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        K.bin_rows_nb(empty_i, empty_f, empty_f, np.zeros(0, np.bool_), K.ALL_ONE_LAYER, False,
                      0, empty_i, np.array([0.0, 1.0]), np.zeros((1, 1, 1)),
                      np.zeros(6, np.int64), np.zeros(3))

    thread = threading.Thread(target=run, name="liqmap-binning-warm-up", daemon=True)
    thread.start()
    return thread


def aggregate_spot(minute: np.ndarray, price_usd: np.ndarray, grid: TimeGrid,
                   how: str = "mean") -> np.ndarray:
    """Price per column, float64 [n_cols] (NaN where no price falls in the column).

    Args:
        minute: int64 [n], minute (since the epoch) of each price point.
        price_usd: float64 [n], price in USD (non-finite points are ignored).
        grid: the time columns.
        how: "mean" of the points inside each column, or "last" (the newest point).
    """
    minute = np.asarray(minute, dtype=np.int64)
    price = np.asarray(price_usd, dtype=np.float64)
    offset = minute - grid.start_min
    ok = (offset >= 0) & (offset < grid.n_minutes) & np.isfinite(price)
    col, price, minute = offset[ok] // grid.freq_min, price[ok], minute[ok]
    out = np.full(grid.n_cols, np.nan)
    if how == "last":
        order = np.lexsort((minute, col))
        col, price = col[order], price[order]
        is_last = np.append(col[1:] != col[:-1], True) if col.size else col.astype(bool)
        out[col[is_last]] = price[is_last]
        return out
    sums = np.bincount(col, weights=price, minlength=grid.n_cols)
    counts = np.bincount(col, minlength=grid.n_cols)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def weighted_quantiles(values: np.ndarray, weights: np.ndarray,
                       qs: Iterable[float]) -> list[float]:
    """Quantiles of `values` weighted by `weights` (non-negative; NaN values ignored)."""
    ok = np.isfinite(values) & (weights > 0)
    v, w = values[ok], weights[ok]
    if not v.size:
        return [math.nan for _ in qs]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    cum /= cum[-1]
    return [float(v[order][min(np.searchsorted(cum, q), v.size - 1)]) for q in qs]
