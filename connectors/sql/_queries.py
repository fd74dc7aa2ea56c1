"""The statements the connector runs, and a streamed result read in partitions.

Complete listings order by id, incremental reads by ``(updated_at, id)`` from a start key
(the cursor moved back by the overlap); both stream through a server-side cursor where the
driver has one (``stream_results`` + ``yield_per``), so memory does not grow with the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.sql._rows import selection
from connectors.sql._schema import TableMap

__all__ = ["Stream", "by_ids", "changes", "complete", "largest_id", "one_row", "soft_deleted"]


def complete(tm: TableMap) -> sa.Select[Any]:
    """Every live row (not soft-deleted), by id."""
    query: sa.Select[Any] = sa.select(*selection(tm))
    if tm.deleted_at is not None:
        query = query.where(tm.column(tm.deleted_at.name).is_(None))
    return query.order_by(tm.column(tm.id.name))


def changes(tm: TableMap, start: datetime | None, start_id: object | None) -> sa.Select[Any]:
    """Rows whose ``(updated_at, id)`` is at or after ``(start, start_id)``, soft-deleted
    ones included (they are reported deleted), in that order."""
    assert tm.updated_at is not None
    updated = tm.column(tm.updated_at.name)
    ident = tm.column(tm.id.name)
    query: sa.Select[Any] = sa.select(*selection(tm))
    if start is None:
        query = query.where(updated.is_not(None))
    else:
        bound = tm.updated_at.stamp(start)
        later = updated > bound
        query = query.where(
            later
            if start_id is None
            else sa.or_(later, sa.and_(updated == bound, ident >= start_id))
        )
    return query.order_by(updated, ident)


def soft_deleted(tm: TableMap, start: datetime | None) -> sa.Select[Any]:
    """The ids of rows soft-deleted at or after ``start`` (ids only)."""
    assert tm.deleted_at is not None
    marked = tm.column(tm.deleted_at.name)
    ident = sa.type_coerce(tm.column(tm.id.name), sa.types.NullType()).label(tm.id.name)
    query: sa.Select[Any] = sa.select(ident).where(marked.is_not(None))
    if start is not None:
        query = query.where(marked >= tm.deleted_at.stamp(start))
    return query


def one_row(tm: TableMap, key: object) -> sa.Select[Any]:
    query: sa.Select[Any] = sa.select(*selection(tm)).where(tm.column(tm.id.name) == key)
    return query


def by_ids(tm: TableMap, keys: Sequence[object]) -> sa.Select[Any]:
    query: sa.Select[Any] = sa.select(*selection(tm)).where(tm.column(tm.id.name).in_(keys))
    if tm.deleted_at is not None:
        query = query.where(tm.column(tm.deleted_at.name).is_(None))
    return query


def largest_id(tm: TableMap) -> sa.Select[Any]:
    return sa.select(sa.func.max(tm.column(tm.id.name)))


class Stream:
    """A statement being read in partitions (all calls on the worker thread).

    ``owned`` connections were opened for this read alone and are closed with it; the
    write connection is borrowed, so the read sees the writes not committed yet.
    """

    def __init__(self, conn: sa.Connection, statement: sa.Executable, size: int, *, owned: bool):
        self._conn = conn
        self._owned = owned
        self._size = size
        self._result: sa.CursorResult[Any] | None = None
        try:
            # Per statement: Connection.execution_options would change the connection
            # itself, making every later statement (a SAVEPOINT) a server-side cursor.
            options = {"stream_results": True, "yield_per": size}
            self._result = conn.execute(statement, execution_options=options)
        except BaseException:
            self.close()
            raise

    def fetch(self) -> list[sa.RowMapping]:
        """The next partition; empty at the end."""
        if self._result is None:
            return []
        rows = list(self._result.mappings().fetchmany(self._size))
        if not rows:
            self.close()
        return rows

    def close(self) -> None:
        result, self._result = self._result, None
        try:
            if result is not None:
                result.close()
        finally:
            if self._owned and not self._conn.closed:
                self._conn.close()
