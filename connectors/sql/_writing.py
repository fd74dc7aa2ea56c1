"""Writes: one transaction per `commit`, one SAVEPOINT per write.

All methods run on the worker thread. The first write of a group opens the write
connection and its transaction; a write that fails (a value the column refuses, a
constraint) rolls back to its own savepoint, so the other writes of the group stand.
An update writes only the columns whose value changes, and ``updated_at`` with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from connectors.sql import _queries as q
from connectors.sql._database import Database
from connectors.sql._rows import ParsedRow, parse_row
from connectors.sql._schema import IdSource, TableMap
from connectors.sql._values import Category, ValueRefused
from sync.errors import NotFound, ValidationFailed, Violation
from sync.mapping.layout import FieldLayout
from sync.model import SCHEMAS, EntityKind, Record, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = ["Writer"]

_ID_TEXT = 32
_T = TypeVar("_T")


class Writer:
    """The write connection and the writes pending on it."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock
        self.conn: sa.Connection | None = None

    def connection(self) -> sa.Connection:
        if self.conn is None:
            conn = self._db.connect()
            conn.begin()
            self.conn = conn
        return self.conn

    def commit(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.commit()
        except sa.exc.DBAPIError as error:
            raise self._db.failure(
                "commit failed, the writes since the last are lost", error
            ) from None
        finally:
            conn.close()

    def rollback(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()  # rolls back what was not committed

    # -- the writes -----------------------------------------------------------------------

    def create(
        self, tm: TableMap, layout: FieldLayout, entity: EntityKind, values: Mapping[str, Scalar]
    ) -> Record:
        cells = _cells(tm, entity, values)
        conn = self.connection()

        def insert() -> Record:
            if tm.kind is not None:
                cells[tm.kind.name] = _bound(tm.kind.bind, layout.kind_label(entity), "kind")
            self._stamp(tm, cells)
            if tm.id_source is not IdSource.DATABASE:
                cells[tm.id.name] = self._new_id(conn, tm)
            statement = tm.table.insert().values(cells)
            ident = tm.column(tm.id.name)
            if tm.id.name in cells:
                conn.execute(statement)
                key = cells[tm.id.name]
            elif conn.dialect.insert_returning:
                key = conn.execute(statement.returning(ident)).scalar_one()
            else:
                inserted = conn.execute(statement).inserted_primary_key
                assert inserted is not None
                key = inserted[0]
            return self._reread(conn, tm, layout, entity, key)

        return self._guarded(conn, insert, f"{entity} refused by {tm.name}")

    def update(
        self,
        tm: TableMap,
        layout: FieldLayout,
        entity: EntityKind,
        record_id: str,
        changes: Mapping[str, Scalar],
    ) -> Record:
        cells = _cells(tm, entity, changes)
        conn = self.connection()
        key, current = self._existing(conn, tm, layout, entity, record_id)
        if current.record is not None:
            # Only what changes is written: a no-op update leaves the row (and its
            # updated_at) alone, so an echo of our own write is never a change.
            unchanged = {
                name
                for name, value in changes.items()
                if name in SCHEMAS[entity]
                and _canonical(tm, entity, name, value) == current.record.get(name)
            }
            for field in tm.fields[entity]:
                if field.name in unchanged:
                    cells.pop(field.column.name, None)
            if not cells:
                return current.record

        def write() -> Record:
            self._stamp(tm, cells)
            conn.execute(tm.table.update().where(tm.column(tm.id.name) == key).values(cells))
            return self._reread(conn, tm, layout, entity, key)

        return self._guarded(conn, write, f"{entity} {record_id} refused by {tm.name}")

    def delete(self, tm: TableMap, layout: FieldLayout, entity: EntityKind, record_id: str) -> None:
        conn = self.connection()
        key, _ = self._existing(conn, tm, layout, entity, record_id)
        where = tm.column(tm.id.name) == key

        def remove() -> None:
            if tm.deleted_at is None:
                conn.execute(tm.table.delete().where(where))
                return
            cells: dict[str, Any] = {tm.deleted_at.name: tm.deleted_at.bind(self._now())}
            self._stamp(tm, cells)
            conn.execute(tm.table.update().where(where).values(cells))

        self._guarded(conn, remove, f"{entity} {record_id} not deleted from {tm.name}")

    # -- helpers ------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().isoformat()

    def _stamp(self, tm: TableMap, cells: dict[str, Any]) -> None:
        if tm.updated_at is not None:
            cells[tm.updated_at.name] = tm.updated_at.bind(self._now())

    def _new_id(self, conn: sa.Connection, tm: TableMap) -> object:
        if tm.id_source is IdSource.NEXT_NUMBER:
            # Inside the write transaction; a concurrent insert of the same number fails
            # on the primary key (that write alone is refused), it never overwrites.
            largest = conn.execute(q.largest_id(tm)).scalar()
            return int(largest or 0) + 1
        if tm.id.category is Category.UUID:
            return uuid.uuid4()
        return uuid.uuid4().hex[: min(tm.id.length or _ID_TEXT, _ID_TEXT)]

    def _existing(
        self,
        conn: sa.Connection,
        tm: TableMap,
        layout: FieldLayout,
        entity: EntityKind,
        record_id: str,
    ) -> tuple[object, ParsedRow]:
        key = tm.id.key(record_id)
        row = None if key is None else conn.execute(q.one_row(tm, key)).mappings().first()
        parsed = None if row is None else parse_row(tm, layout, row, entity)
        if (
            parsed is None
            or parsed.deleted
            or (parsed.entity is not entity and parsed.entity is not None)
        ):
            raise NotFound(
                f"{entity} {record_id} not found in table {tm.name}", status=404, side="sql"
            )
        return key, parsed

    def _reread(
        self,
        conn: sa.Connection,
        tm: TableMap,
        layout: FieldLayout,
        entity: EntityKind,
        key: object,
    ) -> Record:
        row = conn.execute(q.one_row(tm, key)).mappings().first()
        if row is None:
            raise ValidationFailed(f"{entity}: the row written to {tm.name} cannot be read back")
        parsed = parse_row(tm, layout, row, entity)
        if parsed.record is None:
            violations = tuple(Violation(e.field or "", e.reason) for e in parsed.errors)
            raise ValidationFailed(
                f"{entity} refused by {tm.name}: " + "; ".join(map(str, violations)),
                violations=violations,
            )
        return parsed.record

    def _guarded(self, conn: sa.Connection, write: Callable[[], _T], what: str) -> _T:
        """``write()`` inside a savepoint: refused by the database, only it is undone."""
        try:
            with conn.begin_nested():
                return write()
        except sa.exc.DBAPIError as error:
            if error.connection_invalidated:
                self.conn = None
                raise self._db.failure(
                    "the connection broke, uncommitted writes are lost", error
                ) from None
            raise ValidationFailed(self._db.scrub(f"{what}: {_first_line(error)}")) from None
        except ValueRefused as error:
            raise ValidationFailed(f"{what}: {error}") from None


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _bound(bind: Callable[[Scalar], object], value: Scalar, name: str) -> object:
    try:
        return bind(value)
    except ValueRefused as error:
        raise ValidationFailed(
            f"{name}: {error}", violations=(Violation(name, str(error)),)
        ) from None


def _canonical(tm: TableMap, entity: EntityKind, name: str, value: Scalar) -> Scalar:
    field = next((f for f in tm.fields[entity] if f.name == name), None)
    if field is None:
        return None
    try:
        return normalize_value(field.spec, value)
    except NormalizationError:
        return None


def _cells(tm: TableMap, entity: EntityKind, values: Mapping[str, Scalar]) -> dict[str, Any]:
    """Column name -> value to store, for the values this table carries; refuses values
    that have no canonical form or that their column cannot hold (`ValidationFailed`)."""
    by_name = {field.name: field for field in tm.fields[entity]}
    cells: dict[str, Any] = {}
    violations: list[Violation] = []
    for name, value in values.items():
        if name not in SCHEMAS[entity]:
            violations.append(Violation(name, f"not a field of {entity}"))
            continue
        field = by_name.get(name)
        if field is None:
            continue
        try:
            canonical = value if field.verbatim else normalize_value(field.spec, value)
            cells[field.column.name] = field.column.bind(canonical)
        except NormalizationError as error:
            violations.append(Violation(name, error.reason))
        except ValueRefused as error:
            violations.append(Violation(name, f"column {field.column.name}: {error}"))
    if violations:
        raise ValidationFailed(
            f"{entity} refused by table {tm.name}: " + "; ".join(map(str, violations)),
            violations=tuple(violations),
        )
    return cells
