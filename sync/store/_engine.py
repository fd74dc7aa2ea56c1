"""Engine set-up: SQLite pragmas and transactions, any other SQLAlchemy URL as given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from sync.errors import StoreError
from sync.privacy.files import private_dir, private_sqlite_file

__all__ = ["BUSY_TIMEOUT_MS", "WRITE", "Database", "connect_database"]

BUSY_TIMEOUT_MS = 15_000
"""How long a SQLite writer waits for another writer before giving up."""

WRITE = "flowtly_sync_write"
"""Execution option marking a connection that will write (SQLite: BEGIN IMMEDIATE)."""


@dataclass(frozen=True, slots=True)
class Database:
    """An engine and what kind of database is behind it."""

    engine: Engine
    url: URL
    sqlite_path: Path | None
    """The database file for file-backed SQLite, else None."""

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_memory(self) -> bool:
        return self.is_sqlite and self.sqlite_path is None

    @property
    def is_postgresql(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return self.url.render_as_string(hide_password=True)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        database = database.removeprefix("file:")
    return Path(database).expanduser().absolute()


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Leave transaction control to us (see _on_sqlite_begin), not to the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _on_sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that later upgrades
    # fails at once with "database is locked" instead of waiting out the busy timeout.
    immediate = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def connect_database(raw_url: str) -> Database:
    """Build the engine for ``raw_url``; for SQLite files, create the parent directory
    (0700 when created here) and the database file, 0600 like the journals SQLite adds."""
    try:
        url = make_url(raw_url)
    except ArgumentError as exc:
        raise StoreError(f"store url is not a valid SQLAlchemy URL: {exc}") from exc
    if url.get_backend_name() != "sqlite":
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except (ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot use store url {url.render_as_string()}: {exc}") from exc
        return Database(engine, url, None)

    path = _sqlite_file(url)
    if path is None:
        # One shared connection: every pooled connection would otherwise be its own database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        try:
            private_dir(path.parent)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {path.parent}: {exc}") from exc
        if url.query.get("mode") != "ro":
            try:
                private_sqlite_file(path)
            except OSError as exc:
                raise StoreError(f"cannot create the store file {path}: {exc}") from exc
        if not url.query.get("uri"):
            # Absolute, so a later chdir (daemon) still finds the same file.
            url = url.set(database=str(path))
        engine = create_engine(url)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return Database(engine, url, path)
