"""Reading the desk's hedge log: one row per minute of price, hedge position and ratios."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Final

import numpy as np
import pandas as pd

from liqmap.errors import InputError

#: Canonical column -> accepted header spellings (matched after stripping blanks; the desk's
#: export names first, then ours). `jlp_amount`, `jlp_price` are optional and unused.
COLUMN_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "timestamp": ("@timestamp per minute", "timestamp", "ts", "time"),
    "price": ("SOL_HYPE_perpPrice", "price", "price_usd"),
    "position": ("SOLCurrentPos", "position", "position_tokens"),
    "current_ratio": ("CurrentSOL_Pct", "current_ratio", "ratio"),
    "target_ratio": ("TargetSOL_Pct", "target_ratio"),
}
NUMERIC_COLUMNS: Final = ("price", "position", "current_ratio", "target_ratio")
#: Names of the columns returned by `read_hedge_log`, with units.
OUTPUT_COLUMNS: Final[dict[str, str]] = {
    "price": "price_usd", "position": "position_tokens",
    "current_ratio": "current_ratio", "target_ratio": "target_ratio",
}
_HEADER_LINES: Final = 1
_OFFSET: Final = r"(?:Z|[+-]\d{2}:?\d{2})$"


def read_hedge_log(source: str | Path | IO[str], *, tz: str = "UTC") -> pd.DataFrame:
    """Read and check a hedge-log CSV.

    Accepts our column names or the desk's export names (`@timestamp per minute`,
    `SOL_HYPE_perpPrice`, `SOLCurrentPos`, `CurrentSOL_Pct`, `TargetSOL_Pct`), numbers with ","
    thousands separators, and naive timestamps in zone `tz` (aware ones keep their offset).

    The hedge is a short (see `align.MinuteInputs`): a log may write it as negative sizes or
    as positive ones; either way `position_tokens` comes out negative. A log with both signs
    is refused (it is a short and a long at once, or a sign error).

    Returns:
        DataFrame sorted by time, one row per minute, columns `ts` (datetime64 UTC, floored to
        the minute), `price_usd`, `position_tokens` (the short, negative), `current_ratio`,
        `target_ratio` (float64), `position_as_logged` (as written) and `line` (the row's line
        number in the file, for messages). `attrs["short_written_as"]` is "negative" or
        "positive".

    Raises:
        InputError: missing columns (named), unparsable numbers or timestamps, duplicate
            minutes, NaN or non-positive prices, NaN positions or ratios, zero or negative
            current ratio, positions of both signs.
    """
    name = getattr(source, "name", source)
    try:
        raw = pd.read_csv(source, dtype=str, skipinitialspace=True)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read hedge log {name}: {exc}; pass a CSV file with a header "
                         "row") from exc
    columns = _resolve_columns(raw, name)
    frame = pd.DataFrame({"line": np.arange(len(raw), dtype=np.int64) + _HEADER_LINES + 1})
    frame["ts"] = _parse_times(raw[columns["timestamp"]], frame["line"], tz, name)
    for canonical in NUMERIC_COLUMNS:
        frame[OUTPUT_COLUMNS[canonical]] = _parse_numbers(raw[columns[canonical]],
                                                          frame["line"], name)
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    _check_rows(frame, name)
    frame["position_as_logged"] = frame["position_tokens"]
    written = short_sign(frame, name)
    if written == "positive":
        frame["position_tokens"] = -frame["position_tokens"]
    out = frame[["ts", *OUTPUT_COLUMNS.values(), "position_as_logged", "line"]]
    out.attrs["short_written_as"] = written
    return out


def short_sign(frame: pd.DataFrame, name: object) -> str:
    """"negative" or "positive": how the log writes its short (zeros fit either).

    Raises:
        InputError: both signs occur, naming the first row of the less common one.
    """
    pos = frame["position_tokens"].to_numpy()
    n_neg, n_pos = int((pos < 0).sum()), int((pos > 0).sum())
    if n_neg and n_pos:
        minority = pos > 0 if n_pos <= n_neg else pos < 0
        row = frame.loc[minority].iloc[0]
        raise InputError(f"hedge log {name} line {row['line']} has position "
                         f"{row['position_tokens']:g} while {max(n_neg, n_pos):,} other rows "
                         "have the opposite sign; the hedge is a short, written either all "
                         "negative or all positive: fix the sign")
    return "positive" if n_pos else "negative"


def _resolve_columns(raw: pd.DataFrame, name: object) -> dict[str, str]:
    """Canonical name -> the file's header for it; InputError naming every missing column."""
    by_key = {str(c).strip().lower(): str(c) for c in raw.columns}
    found: dict[str, str] = {}
    for canonical, aliases in COLUMN_ALIASES.items():
        hits = [by_key[a.lower()] for a in aliases if a.lower() in by_key]
        if hits:
            found[canonical] = hits[0]
    missing = [c for c in COLUMN_ALIASES if c not in found]
    if missing:
        wanted = ", ".join(f"{c} (or {COLUMN_ALIASES[c][0]!r})" for c in missing)
        raise InputError(f"hedge log {name} lacks column(s) {wanted}; its header is "
                         f"{', '.join(map(str, raw.columns))}")
    return found


def _parse_numbers(column: pd.Series, line: pd.Series, name: object) -> pd.Series:
    text = column.str.replace(",", "", regex=False).str.strip()
    values = pd.to_numeric(text, errors="coerce").astype(np.float64)
    bad = values.isna() & text.notna() & (text != "")
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise InputError(f"hedge log {name} line {line.iloc[i]}: {column.name} value "
                         f"{column.iloc[i]!r} is not a number; fix or remove the row")
    return values


def _parse_times(column: pd.Series, line: pd.Series, tz: str, name: object) -> pd.Series:
    """UTC minutes from ISO-like text (Kibana's "Aug 22, 2025 @ 12:00:00.000" too).

    Times with an offset (`Z`, `+08:00`) keep it; naive ones are wall times in `tz`.
    """
    text = column.str.replace(" @ ", " ", regex=False).str.strip()
    aware = text.str.contains(_OFFSET, regex=True, na=False)
    if aware.any() and not aware.all():
        raise InputError(f"hedge log {name}: line {line.iloc[int(np.argmin(aware))]} has no "
                         "time zone while others do; export all timestamps one way")
    parsed = None
    for fmt in ("ISO8601", "mixed"):
        try:
            parsed = pd.to_datetime(text, format=fmt, utc=bool(aware.all()))
            break
        except (ValueError, TypeError):
            continue
    if parsed is None or parsed.isna().any():
        raise _time_error(text, line, name)
    if parsed.dt.tz is None:
        try:
            parsed = parsed.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except (ValueError, KeyError) as exc:  # unknown zone, or a DST-ambiguous wall time
            raise InputError(f"hedge log {name}: cannot place its naive timestamps in time "
                             f"zone {tz!r} ({exc}); pass a valid --tz such as "
                             "Asia/Hong_Kong or UTC") from exc
    return parsed.dt.tz_convert("UTC").dt.floor("min").astype("datetime64[ns, UTC]")


def _time_error(text: pd.Series, line: pd.Series, name: object) -> InputError:
    """Name the first value that does not parse on its own (else the formats differ)."""
    for i, value in enumerate(text):
        try:
            if pd.isna(value) or pd.Timestamp(value) is pd.NaT:
                raise ValueError(value)
        except (ValueError, TypeError):
            return InputError(f"hedge log {name} line {line.iloc[i]}: cannot parse timestamp "
                              f"{value!r}; use ISO 8601 such as 2025-08-22 12:00:00")
    return InputError(f"hedge log {name}: its timestamps are in several formats; export them "
                      "in one, ISO 8601 such as 2025-08-22 12:00:00")


def _check_rows(frame: pd.DataFrame, name: object) -> None:
    """Duplicates, NaN and zero values, reported at the first offending row."""
    checks = [
        (frame["ts"].duplicated(keep=False), "holds the same minute as another row; keep one "
                                             "row per minute"),
        (frame["price_usd"].isna(), "has no price; fill it or remove the row"),
        (frame["price_usd"] <= 0, "has a price <= 0; fix the price"),
        (frame["position_tokens"].isna(), "has no position; fill it or remove the row"),
        (frame["current_ratio"].isna() | frame["target_ratio"].isna(),
         "lacks a current or target ratio; fill it or remove the row"),
        (frame["current_ratio"] == 0, "has current_ratio 0, so the exposure position / "
                                      "current_ratio is undefined; fix or remove the row"),
        ((frame["current_ratio"] < 0) | (frame["target_ratio"] < 0),
         "has a negative hedge ratio; ratios are the share of the exposure shorted (1.0 = "
         "fully hedged), write them positive"),
    ]
    for mask, problem in checks:
        if mask.any():
            row = frame.loc[mask.to_numpy()].iloc[0]
            raise InputError(f"hedge log {name} line {row['line']} "
                             f"({row['ts']:%Y-%m-%d %H:%M} UTC) {problem}")
