"""The price CSV users bring (a time column and a price column), read into minute prices.

Used for the heatmap's price line over legacy data (`--price-csv`) and by the simulator's
`--price-from`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from liqmap.constants import NS_PER_MINUTE
from liqmap.errors import InputError
from liqmap.validate import check_text_file

#: Price CSV headers accepted (lower-cased) for the time and the price column, in this order.
PRICE_CSV_TIME_HEADERS = ("timestamp", "time", "datetime", "date", "ts", "t", "open_time",
                          "t_bin", "minute")
PRICE_CSV_PRICE_HEADERS = ("price", "close", "oracle_price", "spot", "mid", "last", "value")


def _parse_times(path: Path, values: pd.Series) -> np.ndarray:
    """Minutes of ISO times in any form (naive = UTC); InputError naming the first bad one."""
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: line {first + 2}: cannot parse time "
                         f"{values.iloc[first]!r}; use ISO 8601 such as 2025-08-22T12:00:00Z")
    ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return ns // NS_PER_MINUTE


def read_price_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(minute int64 [n], price_usd float64 [n]) from a CSV with a time and a price column.

    Headers are matched case-insensitively: time is the first of timestamp, time, datetime,
    date, ts, t, open_time, t_bin, minute; price the first of price, close, oracle_price, spot,
    mid, last, value. Times are ISO 8601 (naive = UTC) or epoch numbers in s, ms, us or ns.
    """
    path = Path(path)
    try:
        check_text_file(path, "a price CSV with a header such as timestamp,price")
        frame = pd.read_csv(path, dtype=str)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read price CSV {path}: {exc}; pass a CSV with a header "
                         "such as timestamp,price") from exc
    columns = {c.strip().lower(): c for c in frame.columns}
    t_col = next((columns[h] for h in PRICE_CSV_TIME_HEADERS if h in columns), None)
    p_col = next((columns[h] for h in PRICE_CSV_PRICE_HEADERS if h in columns), None)
    if t_col is None or p_col is None:
        found = ", ".join(map(str, frame.columns)) or "no header"
        raise InputError(f"price CSV {path} needs a time column "
                         f"({', '.join(PRICE_CSV_TIME_HEADERS)}) and a price column "
                         f"({', '.join(PRICE_CSV_PRICE_HEADERS)}); found {found}")
    price = pd.to_numeric(frame[p_col].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(price)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(f"price CSV {path}: line {first + 2}: bad price "
                         f"{frame[p_col].iloc[first]!r}; fix or delete that row")
    return _price_csv_minutes(path, frame[t_col].str.strip()), price


def _price_csv_minutes(path: Path, values: pd.Series) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    if values.size and numeric.notna().all():
        epoch = numeric.to_numpy(dtype=np.float64)
        scale = _epoch_ns_scale(float(np.nanmax(np.abs(epoch))))
        return (epoch * scale).astype(np.int64) // NS_PER_MINUTE
    return _parse_times(path, values)


def _epoch_ns_scale(magnitude: float) -> float:
    """Nanoseconds per unit of an epoch number: s, ms, us or ns told apart by size."""
    if magnitude > 1e17:
        return 1.0
    if magnitude > 1e14:
        return 1e3
    if magnitude > 1e11:
        return 1e6
    return 1e9
