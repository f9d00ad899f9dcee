"""Where the store's bytes live: a local directory or any pyarrow/fsspec filesystem.

Local writes are atomic and durable: temporary file in the target directory, fsync, rename (or
hard link when the target must not be overwritten), fsync of the directory. On object stores
(s3://, gs://, memory://, ...) a single PUT is atomic by itself, so files are written in place.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from liqmap.errors import StorageError

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True,
                   "write_statistics": True}


def resolve_filesystem(root: str) -> tuple[pafs.FileSystem, str, bool]:
    """(filesystem, base path inside it, is_local) for a directory or URI."""
    if "://" not in root or root.startswith("file://"):
        path = Path(root.removeprefix("file://")).expanduser().resolve()
        return pafs.LocalFileSystem(), str(path), True
    try:
        fs, base = pafs.FileSystem.from_uri(root)
        return fs, base.rstrip("/"), False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        pass
    try:
        import fsspec

        fs_spec, base = fsspec.core.url_to_fs(root)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"cannot open store {root!r}: {exc}; use a local directory or a "
                           "URI supported by pyarrow or fsspec (s3://, gs://, memory://)") from exc
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs_spec)), base.rstrip("/"), False


class StoreFS:
    """Relative-path file operations on the store root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, self.base, self.local = resolve_filesystem(root)

    def path(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def listdir(self, rel: str) -> list[str]:
        """Names in a directory ([] when it does not exist)."""
        if self.local:
            try:
                return [e.name for e in os.scandir(self.path(rel))]
            except (FileNotFoundError, NotADirectoryError):
                return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return [i.base_name for i in infos]

    def exists(self, rel: str) -> bool:
        if self.local:
            return os.path.exists(self.path(rel))
        return bool(self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound)

    def delete(self, rel: str) -> None:
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(rel))
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(rel))

    def delete_dir(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_dir(self.path(rel))

    def mtime(self, rel: str) -> float:
        info = self.fs.get_file_info(self.path(rel))
        return info.mtime.timestamp() if info.mtime else 0.0

    def size(self, rel: str) -> int:
        """Total bytes under `rel` (recursive)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), recursive=True,
                                                        allow_not_found=True))
        return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)

    def write_table(self, rel: str, table: pa.Table, *, overwrite: bool = True,
                    row_group_size: int | None = None) -> bool:
        """Write `table` as Parquet at `rel` atomically. False if it exists and not `overwrite`."""
        if not overwrite and self.exists(rel):
            return False
        if not self.local:
            try:
                self.fs.create_dir(self.path(rel).rsplit("/", 1)[0], recursive=True)
                pq.write_table(table, self.path(rel), filesystem=self.fs,
                               row_group_size=row_group_size, **PARQUET_OPTIONS)
            except OSError as exc:
                raise _storage_error(Path(rel), exc) from exc
            return True
        return _write_local_atomic(Path(self.path(rel)), table, overwrite, row_group_size)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Small control files (import journals): atomic replace."""
        if not self.local:
            with self.fs.open_output_stream(self.path(rel)) as out:
                out.write(data)
            return
        target = Path(self.path(rel))
        tmp = temp_path(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            _discard(tmp)
            raise _storage_error(target, exc) from exc

    def parquet_error(self, rel: str) -> str | None:
        """Why the Parquet file at `rel` cannot be opened, or None when its footer reads."""
        try:
            pq.read_metadata(self.path(rel), filesystem=self.fs)
        except (OSError, pa.ArrowException) as exc:
            return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return None

    def move_aside(self, rel: str, dest_rel: str) -> None:
        """Move a file to another place in the store (never across stores); keeps its bytes."""
        try:
            self.fs.create_dir(self.path(dest_rel).rsplit("/", 1)[0], recursive=True)
            self.fs.move(self.path(rel), self.path(dest_rel))
        except OSError as exc:
            raise _storage_error(Path(self.path(dest_rel)), exc) from exc

    def link_tree(self, src_rel: str, dest_rel: str) -> None:
        """Hard-link every file under `src_rel` to the same place under `dest_rel` (local)."""
        src = Path(self.path(src_rel))
        for path in sorted(src.rglob("*")) if src.exists() else []:
            if path.is_file() and not is_temp(path.name):
                dest = Path(self.path(dest_rel)) / path.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, dest)

    def swap_dir(self, new_rel: str, live_rel: str) -> None:
        """Make directory `new_rel` the live `live_rel` in one atomic step (local only): a
        reader, or a glob, sees either the old tree or the new one. The old tree ends up at
        `new_rel`."""
        new, live = self.path(new_rel), self.path(live_rel)
        try:
            if not os.path.exists(live):
                os.makedirs(os.path.dirname(live), exist_ok=True)
                os.rename(new, live)
            else:
                _exchange(new, live)
            _fsync_dir(Path(live).parent)
        except OSError as exc:
            raise _storage_error(Path(live), exc) from exc

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.path(rel)) as src:
            return bytes(src.read())


TEMP_PREFIX = ".tmp-"
#: temporary files end so: never `.parquet`, so no `*.parquet` glob (DuckDB, polars) sees them
TEMP_SUFFIX = ".partial"


def temp_path(target: Path) -> Path:
    """A temporary name next to `target`, holding the writer's pid (see `temp_writer_pid`)."""
    return target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-"
                            f"{target.name}{TEMP_SUFFIX}")


def temp_writer_pid(name: str) -> int | None:
    """The pid of the process writing temporary file `name`; None if not a new-style temp name.

    A temporary file is held while that process lives on this machine; recovery may delete
    a temporary file whose writer is gone at once, and any temporary file after an hour.
    """
    if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
        return None
    pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def is_temp(name: str) -> bool:
    """Temporary file of any liqmap version (older ones ended in `.parquet`)."""
    return name.startswith(TEMP_PREFIX)


def writer_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _discard(tmp: Path) -> None:
    """Best-effort removal of a temporary file (the disk may refuse this too)."""
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _storage_error(target: Path, exc: OSError) -> StorageError:
    return StorageError(f"cannot write {target}: {exc.strerror or exc}; check free disk space "
                        "and permissions of the data directory")


def _write_local_atomic(target: Path, table: pa.Table, overwrite: bool,
                        row_group_size: int | None) -> bool:
    tmp = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, row_group_size=row_group_size, **PARQUET_OPTIONS)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if another writer got there first
            except FileExistsError:
                return False
            finally:
                _discard(tmp)
        _fsync_dir(target.parent)
        return True
    except OSError as exc:
        _discard(tmp)
        raise _storage_error(target, exc) from exc


_RENAME_EXCHANGE = 2


def can_swap_dirs() -> bool:
    """Whether this system has an atomic exchange of two paths (Linux renameat2)."""
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "renameat2")


def _exchange(a: str, b: str) -> None:
    """Atomically exchange paths `a` and `b` (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd = -100
    if libc.renameat2(at_fdcwd, a.encode(), at_fdcwd, b.encode(), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), b)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
