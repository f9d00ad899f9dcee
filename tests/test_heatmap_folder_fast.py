"""`--folder` reads a clean old-tool CSV with Arrow's threaded reader and anything doubtful with
the exact line parser: both give the same rows, and a bad row is still named by its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liqmap.errors import InputError
from liqmap.heatmap import sources
from liqmap.heatmap.sources import read_legacy_csv, read_legacy_parts


def _write(path: Path, header: str, n: int = 5000, seed: int = 3, extra: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    minute = np.sort(rng.integers(0, 600, n))
    lines = [header]
    for m, price, size in zip(minute, rng.uniform(150, 200, n), rng.lognormal(1, 1, n),
                              strict=True):
        t = np.datetime64("2025-08-22T12:00:00") + np.timedelta64(int(m), "m")
        lines.append(f"{float(price)!r},{float(size)!r},{t}Z" + (",x" if extra else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def _exact(path: Path, lo: int | None = None, hi: int | None = None) -> sources.RowBatch:
    return sources._read_legacy_exact(path, lo, hi, False)


@pytest.mark.parametrize("header", ['liq_price,size_sol,t_bin', '"liq_price","size_sol","t_bin"',
                                    "t_bin,liq_price,size_sol"])
def test_fast_reader_equals_the_exact_parser(tmp_path: Path, header: str) -> None:
    if header.startswith("t_bin"):  # columns in another order
        path = tmp_path / "log.csv"
        _write(path, "liq_price,size_sol,t_bin")
        rows = [line.split(",") for line in path.read_text().splitlines()]
        path.write_text("\n".join(f"{r[2]},{r[0]},{r[1]}" for r in rows) + "\n")
    else:
        path = _write(tmp_path / "log.csv", header)
    start = int(np.datetime64("2025-08-22T13:00", "m").astype(np.int64))
    for lo, hi in ((None, None), (start, start + 120)):
        fast = sources._read_legacy_fast(path, lo, hi)
        assert fast is not None  # a clean file never takes the slow path
        got, want = sources._concat(fast), _exact(path, lo, hi)
        np.testing.assert_array_equal(got.time_us, want.time_us)
        np.testing.assert_array_equal(got.liq_price_usd, want.liq_price_usd)
        np.testing.assert_array_equal(got.size_tokens, want.size_tokens)
        assert got.time_us.size > 0


def test_extra_columns_are_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "liq_price,size_sol,t_bin,note", extra=True)
    assert sources._read_legacy_fast(path, None, None) is not None
    assert read_legacy_csv(path).time_us.size == 5000


@pytest.mark.parametrize(("bad_line", "message"), [
    ("170.5,abc,2025-08-22T12:00:00Z", "line 2001: size_sol 'abc'"),
    ("170.5,-1,2025-08-22T12:00:00Z", "line 2001: size_sol"),
    ("nan,1,2025-08-22T12:00:00Z", "line 2001: liq_price"),
    ("170.5,1,not-a-time", "line 2001: t_bin"),
    ("170.5,1", "line 2001: expected 3 fields"),
])
def test_a_bad_row_is_named_by_its_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _write(tmp_path / "log.csv", "liq_price,size_sol,t_bin")
    lines = path.read_text().splitlines()
    lines[2000] = bad_line  # line 2001 of the file
    path.write_text("\n".join(lines) + "\n")
    assert sources._read_legacy_fast(path, None, None) is None
    with pytest.raises(InputError, match=message):
        read_legacy_parts(path)


def test_other_header_spellings_take_the_exact_parser(tmp_path: Path) -> None:
    path = _write(tmp_path / "log.csv", "Liq_Price, size_sol ,T_BIN")
    assert sources._read_legacy_fast(path, None, None) is None
    assert read_legacy_csv(path).time_us.size == 5000


def test_a_large_file_streams_the_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above FAST_CSV_WHOLE_BYTES the file is read block by block (memory: the window)."""
    path = _write(tmp_path / "log.csv", "liq_price,size_sol,t_bin")
    monkeypatch.setattr(sources, "FAST_CSV_WHOLE_BYTES", 1)
    monkeypatch.setattr(sources, "FAST_CSV_BLOCK_BYTES", 16 << 10)
    start = int(np.datetime64("2025-08-22T13:00", "m").astype(np.int64))
    parts = sources._read_legacy_fast(path, start, start + 60)
    assert parts is not None and len(parts) >= 1
    want = _exact(path, start, start + 60)
    np.testing.assert_array_equal(sources._concat(parts).time_us, want.time_us)
