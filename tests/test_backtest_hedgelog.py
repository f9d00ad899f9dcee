"""Hedge-log reading and matching to matrix minutes, on CSV files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liqmap.backtest.align import align_hedge_log, hedge_from_matrix
from liqmap.backtest.hedgelog import read_hedge_log
from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.matrix import LiqMatrix

T0 = pd.Timestamp("2025-08-22 04:00", tz="UTC")
DESK_HEADER = ("@timestamp per minute,SOL_HYPE_perpPrice,SOLCurrentPos,CurrentSOL_Pct,"
               "TargetSOL_Pct,JLP Amount,JLP Price")


def small_matrix(n_cols: int = 6, gap: tuple[int, ...] = ()) -> LiqMatrix:
    z = np.arange(1.0, 3 * n_cols + 1).reshape(3, n_cols)
    mask = np.zeros(n_cols, dtype=bool)
    mask[list(gap)] = True
    z[:, mask] = 0.0
    t_edges = T0.value + NS_PER_MINUTE * np.arange(n_cols + 1, dtype=np.int64)
    return LiqMatrix(z=z, t_edges_ns=t_edges, y_edges_usd=np.array([99.0, 100, 101, 102]),
                     spot_usd=np.linspace(100.0, 101.0, n_cols), gap_mask=mask)


def write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_desk_export_with_separators_and_hong_kong_time(tmp_path: Path) -> None:
    path = write(tmp_path, f"""{DESK_HEADER}
2025-08-22 12:01:00,"183.35","-1,234.5",0.95,1.00,"10,000",4.5
2025-08-22 12:00:00,"183.30","-1,200.0",0.96,1.00,"10,000",4.5
""")
    log = read_hedge_log(path, tz="Asia/Hong_Kong")
    assert log["ts"].tolist() == [T0, T0 + pd.Timedelta(minutes=1)]  # 12:00 HKT = 04:00 UTC
    assert log["position_tokens"].tolist() == [-1200.0, -1234.5]
    assert log["price_usd"].tolist() == [183.30, 183.35]
    assert log["line"].tolist() == [3, 2]


def test_our_names_and_aware_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, """timestamp,price,position,current_ratio,target_ratio
2025-08-22T12:00:00+08:00,100,50,0.5,0.5
2025-08-22T04:01:30Z,101,50,0.5,0.5
""")
    log = read_hedge_log(path, tz="America/New_York")  # ignored: the times carry offsets
    assert log["ts"].tolist() == [T0, T0 + pd.Timedelta(minutes=1)]  # floored to the minute


@pytest.mark.parametrize(("body", "message"), [
    ("timestamp,price,position\n2025-08-22 04:00,1,1\n",
     "lacks column(s) current_ratio (or 'CurrentSOL_Pct'), target_ratio (or 'TargetSOL_Pct')"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,1,1,1,1\n"
     "yesterday noon,1,1,1,1\n", "line 3: cannot parse timestamp 'yesterday noon'"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,1.2.3,1,1,1\n",
     "line 2: price value '1.2.3' is not a number"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,,1,1,1\n",
     "line 2 (2025-08-22 04:00 UTC) has no price"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,nan,1,1,1\n",
     "has no price"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,1,1,1,1\n"
     "2025-08-22 04:01,1,1,0,1\n", "line 3 (2025-08-22 04:01 UTC) has current_ratio 0"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00,1,1,1,1\n"
     "2025-08-22 04:00:30,1,1,1,1\n", "holds the same minute as another row"),
    ("timestamp,price,position,current_ratio,target_ratio\n2025-08-22 04:00Z,1,1,1,1\n"
     "2025-08-22 04:01,1,1,1,1\n", "line 3 has no time zone while others do"),
])
def test_bad_hedge_logs_name_the_problem(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(InputError, match=None) as info:
        read_hedge_log(write(tmp_path, body))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_kibana_style_timestamps(tmp_path: Path) -> None:
    path = write(tmp_path, f"""{DESK_HEADER}
"Aug 22, 2025 @ 12:00:00.000",183.3,"-1,200",0.96,1,"10,000",4.5
""")
    assert read_hedge_log(path, tz="Asia/Hong_Kong")["ts"].tolist() == [T0]


def test_unknown_zone_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,price,position,current_ratio,target_ratio\n"
                           "2025-08-22 04:00,1,1,1,1\n")
    with pytest.raises(InputError, match="time zone 'Mars/Olympus'"):
        read_hedge_log(path, tz="Mars/Olympus")


def _log_rows(minutes: list[int], price: float = 100.0) -> str:
    rows = ["timestamp,price,position,current_ratio,target_ratio"]
    rows += [f"{T0 + pd.Timedelta(minutes=m):%Y-%m-%d %H:%M},{price + m},{10 + m},0.5,0.6"
             for m in minutes]
    return "\n".join(rows) + "\n"


def test_rows_match_matrix_columns_by_minute_not_row_number(tmp_path: Path) -> None:
    matrix = small_matrix(6, gap=(3,))
    # shuffled, minute 2 missing, two minutes before and one after the matrix
    log = read_hedge_log(write(tmp_path, _log_rows([5, -2, 1, 0, 4, 3, -1, 9])))
    minutes = align_hedge_log(matrix, log)
    assert minutes.column.tolist() == [0, 1, 3, 4, 5]
    assert minutes.price_usd.tolist() == [100.0, 101.0, 103.0, 104.0, 105.0]
    assert minutes.position_tokens.tolist() == [-10.0, -11.0, -13.0, -14.0, -15.0]  # a short
    assert minutes.gap.tolist() == [False, False, True, False, False]
    cov = minutes.coverage
    assert (cov.n_used, cov.n_gap, cov.n_hedge_outside_matrix, cov.n_matrix_without_hedge) == (
        5, 1, 3, 1)


def test_time_window_limits_both_inputs(tmp_path: Path) -> None:
    log = read_hedge_log(write(tmp_path, _log_rows(list(range(6)))))
    minutes = align_hedge_log(small_matrix(6), log, t_start=T0 + pd.Timedelta(minutes=2),
                              t_end=T0 + pd.Timedelta(minutes=4))
    assert minutes.column.tolist() == [2, 3, 4]
    assert minutes.coverage.n_matrix_without_hedge == 0


def test_no_overlap_names_both_ranges(tmp_path: Path) -> None:
    log = read_hedge_log(write(tmp_path, _log_rows([100, 101, 102])))
    with pytest.raises(InputError) as info:
        align_hedge_log(small_matrix(6), log)
    text = str(info.value)
    assert "hedge log (2025-08-22 05:40 UTC .. 2025-08-22 05:42 UTC)" in text
    assert "matrix (2025-08-22 04:00 UTC .. 2025-08-22 04:05 UTC)" in text


def test_without_a_hedge_log_the_matrix_price_and_target_are_used() -> None:
    matrix = small_matrix(4)
    minutes = hedge_from_matrix(matrix, target_ratio=0.8, exposure_tokens=3.0)
    assert minutes.price_usd.tolist() == matrix.spot_usd.tolist()
    assert minutes.position_tokens.tolist() == [-2.4000000000000004] * 4  # short 3 × 0.8
    assert minutes.current_ratio.tolist() == minutes.target_ratio.tolist() == [0.8] * 4
    with pytest.raises(InputError, match="--target is 0"):
        hedge_from_matrix(matrix, target_ratio=0.0, exposure_tokens=1.0)


def test_stored_exposure_is_taken_as_of_each_minute() -> None:
    matrix = small_matrix(4)
    times = pd.DatetimeIndex([T0 - pd.Timedelta(minutes=5), T0 + pd.Timedelta(minutes=2)])
    series = pd.Series([100.0, 250.0], index=times)
    minutes = hedge_from_matrix(matrix, target_ratio=1.0, exposure_tokens=series)
    assert minutes.position_tokens.tolist() == [-100.0, -100.0, -250.0, -250.0]
    late = pd.Series([1.0], index=pd.DatetimeIndex([T0 + pd.Timedelta(minutes=1)]))
    with pytest.raises(InputError, match="no stored exposure at or before 2025-08-22 04:00"):
        hedge_from_matrix(matrix, target_ratio=1.0, exposure_tokens=late)


def test_missing_matrix_price_drops_gap_minutes_only() -> None:
    base = small_matrix(5, gap=(2,))
    spot = base.spot_usd.copy()
    spot[2] = np.nan
    matrix = LiqMatrix(z=base.z, t_edges_ns=base.t_edges_ns, y_edges_usd=base.y_edges_usd,
                       spot_usd=spot, gap_mask=base.gap_mask)
    minutes = hedge_from_matrix(matrix, target_ratio=1.0, exposure_tokens=1.0)
    assert minutes.column.tolist() == [0, 1, 3, 4]
    assert minutes.coverage.n_without_price == 1
    spot[3] = np.nan
    with pytest.raises(InputError, match="no price at 2025-08-22 04:03 UTC"):
        hedge_from_matrix(LiqMatrix(z=base.z, t_edges_ns=base.t_edges_ns,
                                    y_edges_usd=base.y_edges_usd, spot_usd=spot,
                                    gap_mask=base.gap_mask),
                          target_ratio=1.0, exposure_tokens=1.0)
