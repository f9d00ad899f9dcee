"""The benchmarks' synthetic chain answers pass the collector's own checks (a refused snapshot
stopped `make bench` once), and their two pipelines still agree, on a small scale."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_collect as B


def test_the_decode_benchmarks_snapshot_is_stored_and_equals_its_baseline() -> None:
    from liqmap.jupiter.perps import accrue_cumulative_interest

    raw, rec = B.gpa_response(2_000)
    rows = B.liqmap_rows(raw, B.other_accounts(B.sol_custody(rec)))
    cum_now = {B.key_bytes(B.SOL): accrue_cumulative_interest(B.SOL_CUSTODY, B.NOW),
               B.key_bytes(B.USDC): accrue_cumulative_interest(B.USDC_CUSTODY, B.NOW)}
    assert rows.num_rows == 2_000 and rows.equals(B.struct_rows(raw, cum_now))
