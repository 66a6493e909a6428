"""Files of the data folder created private: folders 0700, files 0600.

The data folder holds the database (contacts, answers, the mail ledger), the portal secret,
the mail folder and reports: nothing in it is for other accounts on the machine. Files are
created with their mode at `open` (no window in which they are world-readable), and an
existing folder or database from an older version is tightened when it is opened again.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create PATH (and missing parents) as 0700; tighten it when it exists and is ours."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)
        _tighten(folder, DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create PATH empty as 0600 when missing (SQLite gives -wal/-shm the same mode); tighten it."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for companion in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _tighten(companion, FILE_MODE)
    return path


def write_private(path: Path, content: bytes, *, fsync: bool = False) -> Path:
    """Write CONTENT to PATH atomically (temporary file, rename) as a 0600 file."""
    private_dir(path.parent)
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temp, path)
    return path


def _tighten(path: Path, mode: int) -> None:
    """Take away group/other rights from PATH when it exists, belongs to us and is not shared."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX:
        return  # a shared folder such as /tmp (a database file put there): never ours to close
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        with contextlib.suppress(PermissionError):
            path.chmod(stat.S_IMODE(info.st_mode) & mode)
