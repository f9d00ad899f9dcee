"""The hedge's carrying cost as a time series: a per-hour CSV of funding or borrow rates.

One convention inside liqmap: `carry_apr` is the fraction per year of the short's USD notional
that the short pays (negative: it earns). A CSV gives either that (`carry_apr`) or a perp
venue's hourly funding rate (`funding_rate`, fraction per hour, positive when longs pay
shorts, as Hyperliquid publishes it), which is turned into carry_apr = −funding_rate × 8760.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from liqmap import constants as C
from liqmap.errors import InputError

TIME_NAMES: Final = ("timestamp", "time", "ts", "hour")


def read_carry_csv(path: str | Path) -> pd.Series:
    """Carry rate by time from `path`: a Series of carry_apr (fraction per year, paid by the
    short) indexed by UTC time, sorted; each value holds until the next row.

    Raises:
        InputError: unreadable file, no time column, neither `carry_apr` nor `funding_rate`,
            unparsable values (line named).
    """
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read --carry-csv {path}: {exc}; pass a CSV with a header "
                         "row") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    time_col = next((cols[n] for n in TIME_NAMES if n in cols), None)
    rate_name = next((n for n in ("carry_apr", "funding_rate") if n in cols), None)
    if time_col is None or rate_name is None:
        raise InputError(f"--carry-csv {path} needs a timestamp column and carry_apr (per year, "
                         "paid by the short) or funding_rate (per hour, positive when longs "
                         f"pay); its header is {', '.join(raw.columns)}")
    times = pd.to_datetime(raw[time_col], utc=True, errors="coerce", format="mixed")
    rates = pd.to_numeric(raw[cols[rate_name]], errors="coerce")
    bad = times.isna() | rates.isna() | ~np.isfinite(rates.fillna(0.0))
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise InputError(f"--carry-csv {path} line {i + 2}: cannot read time "
                         f"{raw[time_col].iloc[i]!r} or rate {raw[cols[rate_name]].iloc[i]!r}; "
                         "fix or remove the row")
    if rate_name == "funding_rate":
        rates = -rates * C.HOURS_PER_YEAR
    return pd.Series(rates.to_numpy(dtype=np.float64), index=pd.DatetimeIndex(times),
                     name="carry_apr").sort_index()
