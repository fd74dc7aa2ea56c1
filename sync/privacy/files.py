"""Files only their owner may read: the state store and its journals, lock files, reports.

They hold tax ids, bases of every linked record and the audit trail. Every mode here is
set explicitly after the file or directory exists, so no umask (000 included) widens it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, TextIO

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "SQLITE_SIDE_FILES",
    "open_private",
    "open_private_text",
    "private_dir",
    "private_sqlite_file",
    "private_temporary_file",
]

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""Suffixes of the files SQLite keeps beside a database. It creates them with the
database file's own mode, so a private database gets private journals."""


def _restrict(path: Path | int, mode: int) -> None:
    """``chmod`` to ``mode``; a file someone else owns is left as it is (not ours to
    change, and refusing to run over it would help no one)."""
    with contextlib.suppress(PermissionError):
        if isinstance(path, int):
            os.fchmod(path, mode)
        else:
            os.chmod(path, mode)


def private_dir(path: Path) -> None:
    """Make sure ``path`` is a directory; one created here is 0700 (missing parents are
    created as usual). An existing directory keeps its mode: it may be shared on purpose."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return  # created meanwhile by another process, which chose its mode
    _restrict(path, PRIVATE_DIR)


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` with the file 0600, new or not."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    _restrict(fd, PRIVATE_FILE)
    return fd


def open_private_text(path: Path) -> TextIO:
    """``path`` opened for writing text from scratch (UTF-8), the file 0600."""
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    try:
        return os.fdopen(fd, "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite database ``path`` (empty: SQLite takes it as a new database)
    before SQLite does, 0600, and narrow journals an earlier run left wider."""
    os.close(open_private(path, os.O_RDWR))
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            _restrict(side, PRIVATE_FILE)


def private_temporary_file() -> BinaryIO:
    """A binary scratch file, 0600, gone when closed (or, on POSIX, nameless from the start:
    no other process can open it, and nothing is left behind by a crash)."""
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the caller owns and closes it
    _restrict(file.fileno(), PRIVATE_FILE)
    return file
