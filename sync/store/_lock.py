"""One run at a time per sync: flock for SQLite files, advisory locks for PostgreSQL.

The ``lock`` table only records who holds a lock, for messages and status; the lock that
excludes is the OS file lock or the PostgreSQL session lock, both released by the OS or the
server when the holding process dies.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from sync.errors import LockHeld, StoreError
from sync.privacy.files import open_private
from sync.store._engine import WRITE, Database
from sync.store.tables import lock_table

__all__ = ["MemoryLocks", "hold_lock", "lock_file_path", "pg_lock_key"]

_UNKNOWN = "holder unknown"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")
_lock = lock_table


class MemoryLocks:
    """Process-local locks for an in-memory store (which no other process can open)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, str] = {}

    def acquire(self, sync: str, holder: str) -> None:
        with self._guard:
            if sync in self._held:
                raise LockHeld(sync, self._held[sync])
            self._held[sync] = holder

    def release(self, sync: str) -> None:
        with self._guard:
            self._held.pop(sync, None)


def lock_file_path(database: Path, sync: str) -> Path:
    """``<db>.<sync>.lock``; names unfit for a file name get a hash suffix."""
    if _SAFE_NAME.fullmatch(sync):
        name = sync
    else:
        digest = hashlib.blake2b(sync.encode(), digest_size=6).hexdigest()
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', sync)[:60]}-{digest}"
    return database.with_name(f"{database.name}.{name}.lock")


def pg_lock_key(schema: str, sync: str) -> int:
    """A stable signed 64-bit advisory lock key for ``sync`` in ``schema``.

    Python's ``hash`` is salted per process and ``hashtext`` is 32 bits, so neither serves.
    The schema is part of the key because advisory locks are per database, not per schema.
    """
    digest = hashlib.blake2b(f"flowtly-sync:{schema}:{sync}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _holder(now: datetime) -> str:
    return f"{socket.gethostname()} pid {os.getpid()} since {now.isoformat(timespec='seconds')}"


@contextmanager
def _lock_errors(sync: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"the run lock of sync {sync!r} failed: {exc}") from exc


def _record_holder(db: Database, sync: str, holder: str, now: datetime) -> None:
    with _lock_errors(sync), db.engine.execution_options(**{WRITE: True}).begin() as conn:
        conn.execute(delete(_lock).where(_lock.c.sync == sync))
        conn.execute(insert(_lock).values(sync=sync, holder=holder, acquired_at=now))


def _forget_holder(db: Database, sync: str, holder: str) -> None:
    with _lock_errors(sync), db.engine.execution_options(**{WRITE: True}).begin() as conn:
        conn.execute(delete(_lock).where(_lock.c.sync == sync, _lock.c.holder == holder))


def _recorded_holder(db: Database, sync: str) -> str:
    with _lock_errors(sync), db.engine.connect() as conn:
        holder = conn.execute(select(_lock.c.holder).where(_lock.c.sync == sync)).scalar()
    return holder or _UNKNOWN


@contextmanager
def _file_lock(db: Database, path: Path, sync: str, holder: str, now: datetime) -> Iterator[None]:
    lock_path = lock_file_path(path, sync)
    try:
        fd = open_private(lock_path, os.O_RDWR)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {lock_path}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise StoreError(f"cannot lock {lock_path}: {exc}") from exc
            current = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            raise LockHeld(sync, current or _UNKNOWN) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder}\n".encode(), 0)
        try:
            _record_holder(db, sync, holder, now)
            yield
        finally:
            try:
                _forget_holder(db, sync, holder)
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _pg_unlock(conn: Connection, key: int) -> None:
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    except SQLAlchemyError:
        # A session lock dies with its session: drop the connection rather than pool it.
        conn.invalidate()


@contextmanager
def _advisory_lock(db: Database, sync: str, holder: str, now: datetime) -> Iterator[None]:
    # A dedicated connection, in autocommit so it never idles inside a transaction.
    with _lock_errors(sync):
        conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    with conn:
        with _lock_errors(sync):
            schema = conn.execute(text("SELECT current_schema()")).scalar() or ""
            key = pg_lock_key(schema, sync)
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        if not taken:
            raise LockHeld(sync, _recorded_holder(db, sync))
        try:
            _record_holder(db, sync, holder, now)
            yield
        finally:
            try:
                _forget_holder(db, sync, holder)
            finally:
                _pg_unlock(conn, key)


@contextmanager
def hold_lock(
    db: Database, memory: MemoryLocks, sync: str, clock: Callable[[], datetime]
) -> Iterator[None]:
    """Hold ``sync``'s lock for the ``with`` block; `LockHeld` names the holder if taken."""
    now = clock()
    holder = _holder(now)
    if db.sqlite_path is not None:
        with _file_lock(db, db.sqlite_path, sync, holder, now):
            yield
    elif db.is_memory:
        memory.acquire(sync, holder)
        try:
            _record_holder(db, sync, holder, now)
            yield
        finally:
            try:
                _forget_holder(db, sync, holder)
            finally:
                memory.release(sync)
    elif db.is_postgresql:
        with _advisory_lock(db, sync, holder, now):
            yield
    else:
        raise StoreError(f"no run lock for {db.url.get_backend_name()} stores")
