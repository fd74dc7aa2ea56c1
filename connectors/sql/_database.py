"""The database behind the connector: one engine, one worker thread, errors without secrets.

SQLAlchemy's engine is synchronous; every call runs on one dedicated worker thread
(`Database.run`), so the event loop never blocks, a connection is never used by two
threads at once, and SQLite's same-thread rule holds. Driver errors become one-line
`ConnectorError` messages that name the database by its URL without the password, and
have the password removed from their text as well (a driver may echo its DSN).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event

from connectors.sql._settings import SqlSettings, parse_url, public_url
from sync.errors import ConnectorError, TransientError

__all__ = ["Database"]

_T = TypeVar("_T")


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def _sqlite_savepoints(engine: sa.Engine) -> None:
    """Let SQLAlchemy, not the pysqlite driver, begin transactions, so SAVEPOINTs (one
    per write, so one refused write leaves the others of its transaction) work."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")


class Database:
    """An engine for ``settings.url`` used from a single worker thread."""

    def __init__(self, settings: SqlSettings) -> None:
        self.url = parse_url(settings.url)
        self.public = public_url(self.url)
        """The URL as it may be shown (no password)."""
        self._password = self.url.password
        self._timeout = settings.connect_timeout
        self._executor: ThreadPoolExecutor | None = None
        self.engine: sa.Engine | None = None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    async def run(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` on the worker thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowtly-sql")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(call, *args))

    def start(self) -> sa.Engine:
        """Create the engine (on the worker thread, before any connection)."""
        if self.engine is None:
            args: dict[str, Any] = {}
            if self.dialect in ("postgresql", "mysql", "mariadb") and self._timeout:
                args["connect_timeout"] = max(1, round(self._timeout))
            engine = sa.create_engine(self.url, connect_args=args, pool_pre_ping=True)
            if self.dialect == "sqlite":
                _sqlite_savepoints(engine)
            self.engine = engine
        return self.engine

    def connect(self) -> sa.Connection:
        """A new connection; `ConnectorError` (one line, no password) when there is none."""
        engine = self.start()
        try:
            return engine.connect()
        except sa.exc.DBAPIError as error:
            raise self.failure("cannot connect", error) from None

    def scrub(self, text: str) -> str:
        """``text`` without the password (however the driver spelled it)."""
        if self._password:
            text = text.replace(self._password, "[redacted]")
        return text

    def failure(self, what: str, error: BaseException) -> ConnectorError:
        """The error to raise for a failed operation ``what``: transient when the
        connection broke, else a plain `ConnectorError`."""
        message = self.scrub(f"sql {self.public}: {what}: {_first_line(error)}")
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            return TransientError(message, side="sql")
        return ConnectorError(message)

    def close(self) -> None:
        """Dispose of the engine's connections (on the worker thread)."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    async def shutdown(self) -> None:
        """Close everything and stop the worker thread."""
        if self._executor is None:
            return
        await self.run(self.close)
        self._executor.shutdown(wait=True)
        self._executor = None
