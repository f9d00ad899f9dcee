"""One validation layer for every number, path and name a user gives: CLI options (through the
click types in `liqmap.cli.options`), environment variables and liqmap.toml (`liqmap.config`).

Each check raises `InputError` with a message that says what is wrong and what to give instead;
callers add which option or setting it was.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from liqmap.errors import InputError


@dataclass(frozen=True)
class Bounds:
    """The values a number may take: finite always; `low`/`high` (None = open-ended), `low_open`
    and `high_open` exclude the bound itself; `whole` asks for an integer."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False
    unit: str = ""

    def describe(self) -> str:
        """What to give, e.g. 'a whole number of seconds >= 1'."""
        kind = "a whole number" if self.whole else "a number"
        if self.unit:
            kind += f" of {self.unit}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return kind + (" " + " and ".join(parts) if parts else "")

    def contains(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return False
        return not (self.high is not None
                    and (number > self.high or (self.high_open and number == self.high)))


def check_number(value: object, bounds: Bounds) -> float | int:
    """`value` (a number or its text) as a float, or int when `bounds.whole`; `InputError` if it
    is not a finite number inside `bounds`. Booleans are refused: `true` is not 1 second."""
    want = bounds.describe()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(f"{value!r} is not a number; give {want}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise InputError(f"{value!r} is not a number; give {want}") from None
    if not math.isfinite(number):
        raise InputError(f"{value!r} is not a finite number; give {want}")
    if bounds.whole and number != int(number):
        raise InputError(f"{value!r} is not a whole number; give {want}")
    if not bounds.contains(number):
        raise InputError(f"{value!r} is out of range; give {want}")
    return int(number) if bounds.whole else number


def check_time_zone(name: str) -> str:
    """`name` if it is an IANA time zone (e.g. Asia/Hong_Kong, UTC), else `InputError`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        if not name or name != name.strip():
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = suggest(name, available_timezones())
        raise InputError(f"unknown time zone {name!r}{hint}; give an IANA name such as UTC or "
                         "Asia/Hong_Kong") from None
    return name


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_uri(path: str) -> bool:
    """True for an object-store or other URI (s3://, gs://, memory://, file://)."""
    return "://" in path


def check_input_file(path: str) -> Path:
    """An existing, readable regular file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path} does not exist; give an existing file")
    if p.is_dir():
        raise InputError(f"{path} is a directory; give a file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{path} is not readable; fix its permissions")
    return p


def check_input_dir(path: str) -> Path:
    """An existing directory."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path} does not exist; give an existing directory")
    if not p.is_dir():
        raise InputError(f"{path} is a file; give a directory")
    return p


def check_output_file(path: str) -> Path:
    """A file that may be written: not a directory, in an existing writable folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{path} is a directory; give a file name")
    folder = p.parent
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise InputError(f"{path}: folder {folder} {what}; create the folder or write elsewhere")
    _check_writable(folder, path)
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{path} is not writable; fix its permissions or write elsewhere")
    return p


def check_output_dir(path: str) -> Path:
    """A directory that exists and is writable, or can be created (its nearest existing
    ancestor is a writable directory)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{path} is a file; give a directory")
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is a file; give a directory path")
    _check_writable(existing, path)
    return p


def _check_writable(folder: Path, path: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK) or _read_only_mount(folder):
        raise InputError(f"{path}: folder {folder} is not writable; fix its permissions or "
                         "write elsewhere")


def _read_only_mount(folder: Path) -> bool:
    """True on a read-only file system (os.access says writable there for root)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


#: Bytes read to tell a text file from a binary one.
TEXT_SNIFF_BYTES = 64 << 10


def check_text_file(path: str | os.PathLike[str], what: str) -> None:
    """`InputError` unless the start of `path` is UTF-8 text without NUL or other control bytes
    (tab, CR and LF aside): a binary file given as a CSV or TOML. `what` names what to give."""
    with open(path, "rb") as fh:
        head = fh.read(TEXT_SNIFF_BYTES)
    bad = next((i for i, b in enumerate(head[:4096]) if b < 32 and b not in (9, 10, 13)), None)
    if bad is None:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut by the sniff
                bad = exc.start
    if bad is not None:
        raise InputError(f"{path} is not a text file (binary data at byte {bad}); give {what}")


def check_kind(path: str, kind: str) -> Path:
    """`path` if it does not exist or is of `kind` ("file" or "dir")."""
    p = Path(path)
    if kind == "file" and p.is_dir():
        raise InputError(f"{path} is a directory; give a file")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise InputError(f"{path} is a file; give a directory")
    return p


def check_data_dir(path: str) -> str:
    """A store root: a URI, or a local path that is not a file."""
    if not is_uri(path) and Path(path).exists() and not Path(path).is_dir():
        raise InputError(f"{path} is a file; give the store's directory")
    return path
