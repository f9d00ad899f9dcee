"""Atomic output files: written to a temporary name in the target folder, then renamed."""

from __future__ import annotations

from pathlib import Path

from liqmap.errors import InputError
from liqmap.files import atomic_output, write_bytes
from liqmap.matrix import LiqMatrix, save_npz

__all__ = ["OUTPUT_SUFFIXES", "atomic_output", "check_output_path", "write_bytes", "write_npz"]

OUTPUT_SUFFIXES = (".png", ".html", ".htm")


def write_npz(matrix: LiqMatrix, path: str | Path) -> None:
    """`save_npz` atomically, to exactly `path` (numpy would append .npz to other names)."""
    with atomic_output(path, tmp_suffix=".npz") as tmp:
        save_npz(matrix, tmp)


def check_output_path(path: str | Path, suffixes: tuple[str, ...], option: str) -> Path:
    """Raise `InputError` unless `path` ends in one of `suffixes` and its folder exists."""
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        names = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1
                            else suffixes)
        raise InputError(f"{option} {target}: use a file name ending in {names}")
    folder = target.parent
    if not folder.is_dir():
        raise InputError(f"{option} {target}: folder {folder} does not exist; create it first")
    return target
