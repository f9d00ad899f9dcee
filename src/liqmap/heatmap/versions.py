"""Bin position versions directly, without one row per position per minute.

A version holds its account unchanged over a run of snapshots; only the borrow fee moves, with
the collateral custody's interest counter, and it moves the liquidation price one way only:
up for a long, down for a short (a higher fee means less margin), while the custody's
parameters stay the same and the counter does not fall. So within such a run the price bin is
monotone in time and where it changes is found by bisection (`_kernels.add_versions_nb`, pricing
with `perps_nb.liq_price_usd6_nb`, the formula the collector prices with). Each
piece of constant bin is added once per heatmap column, giving the matrix the per-minute rows
give, to float rounding (a sum of n equal amounts is amount × n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from liqmap import constants as C
from liqmap.heatmap.binning import MatrixBinner, SnapshotTerms, VersionTerms
from liqmap.store import versions as V

#: The version columns the binning reads (no account keys).
BIN_COLUMNS = ["valid_from", "valid_to", "side", "entry_price_usd6", "size_usd6",
               "collateral_usd6", "size_tokens", "cumulative_interest_snapshot",
               "interest_source", "liq_price"]


def add_versions(binner: MatrixBinner, versions: pa.Table, state: V.DayState) -> None:
    """Add what `versions` hold at the snapshots of `state` (one day or less) to `binner`."""
    if state.n == 0 or versions.num_rows == 0:
        return
    HeldVersions.from_table(versions).add_to(binner, state)


@dataclass(frozen=True)
class HeldVersions:
    """The columns of versions the binning reads, decoded once (several windows may bin them:
    the roll-up writer bins one day hour by hour)."""

    v: V.VersionArrays
    is_long: np.ndarray
    stored_liq: np.ndarray  # USD, the stored liq_price (only `interest_source` -1 rows use it)

    @classmethod
    def from_table(cls, versions: pa.Table) -> HeldVersions:
        v = V.VersionArrays.from_table(versions)
        stored = np.asarray(pc.fill_null(versions.column("liq_price"), np.nan), np.float64)
        return cls(v, v.side == C.SIDE_LONG, stored)

    def add_to(self, binner: MatrixBinner, state: V.DayState,
               amount: np.ndarray | None = None) -> None:
        """Add the versions at the snapshots of `state`; `amount` (float64 per version)
        replaces `size_tokens` (ones count the position-snapshots)."""
        if state.n == 0 or self.is_long.size == 0:
            return
        v, is_long = self.v, self.is_long
        tokens = v.size_tokens if amount is None else amount
        i0, i1 = v.snapshot_ranges(state)
        held = i1 > i0
        minute = state.ts_us // C.US_PER_MINUTE
        fixed = np.flatnonzero(held & (v.source == V.FIXED))
        if fixed.size:
            binner.add_segments(minute, i0[fixed], i1[fixed],
                                binner.price_codes(self.stored_liq[fixed]), tokens[fixed],
                                is_long[fixed])
        live = np.flatnonzero(held & (v.source != V.FIXED))
        snap = SnapshotTerms(minute, np.ascontiguousarray(state.cum),
                             np.ascontiguousarray(state.params), run_ends(state))
        binner.add_versions(snap, VersionTerms(
            i0[live].astype(np.int64), i1[live].astype(np.int64), v.size_usd6[live],
            v.entry_usd6[live], v.collateral_usd6[live], v.interest_snapshot[live],
            is_long[live], v.source[live].astype(np.int64), tokens[live]))


def run_ends(state: V.DayState) -> np.ndarray:
    """For each snapshot, the end (exclusive) of its run: snapshots between which the
    formula's parameters stay and no interest counter falls, so a version's price is monotone."""
    n = state.n
    cut = np.zeros(max(n - 1, 0), bool)
    if n > 1:
        cut = state.group[1:] != state.group[:-1]
        cut |= (state.cum[1:] < state.cum[:-1]).any(axis=1)
    starts = np.append(0, np.flatnonzero(cut) + 1)
    ends = np.append(starts[1:], n)
    return np.repeat(ends, ends - starts).astype(np.int64)
