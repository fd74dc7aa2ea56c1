"""The sql connector: a CRM kept in the user's own database tables.

See docs/connectors/sql.md. Tables are checked at `SqlConnector.open` (`_schema`); reads
stream (`_queries.Stream`); writes wait in one transaction until `SqlConnector.commit`
(`_writing`). Everything touching the database runs on the worker thread of `_database`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.base import Capability, ChangeBatch, Connector, Cursor
from connectors.listing import ListingAudit
from connectors.sql import _queries as q
from connectors.sql._database import Database
from connectors.sql._rows import ParsedRow, parse_row
from connectors.sql._schema import Group, TableMap, reflect
from connectors.sql._settings import SqlSettings, TableSettings, public_url
from connectors.sql._writing import Writer
from sync.errors import ConnectorError, RecordError
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind, Record, Scalar, Side

__all__ = ["SqlConnector"]

_ID_CHUNK = 500


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Collected:
    """One partition of a read, sorted into what a `ChangeBatch` carries."""

    records: list[Record] = field(default_factory=list)
    rejected: list[RecordError] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


class SqlConnector(Connector):
    """A CRM held in SQL tables (PostgreSQL, MySQL/MariaDB, SQLite; any SQLAlchemy URL)."""

    name = "sql"
    capabilities = frozenset({Capability.READ, Capability.WRITE, Capability.DELETE})
    settings_model = SqlSettings

    def __init__(self, settings: SqlSettings, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.settings = settings
        self._db = Database(settings)
        self._writer = Writer(self._db, clock)
        self._layout = FieldLayout()
        self._reflected: dict[Group, sa.Table] = {}
        self._maps: dict[Group, TableMap] = {}

    def use_layout(self, layout: FieldLayout) -> None:
        """Read and write the tables under the CRM's own column names and kind values."""
        self._layout = layout
        if self._reflected:
            self._build_maps()

    # -- configuration -------------------------------------------------------------------

    def _configured(self) -> dict[Group, TableSettings]:
        tables = self.settings.tables
        found = {
            Group.COMPANY: tables.company,
            Group.CONTACT: tables.contact,
            Group.NOTE: tables.note,
        }
        return {group: table for group, table in found.items() if table is not None}

    def _build_maps(self) -> None:
        sqlite = self._db.dialect == "sqlite"
        configured = self._configured()
        self._maps = {
            group: TableMap.build(
                group,
                configured[group],
                table,
                self._layout,
                self.settings.zone,
                sqlite_rowid=sqlite,
            )
            for group, table in self._reflected.items()
        }

    def _map(self, entity: EntityKind) -> TableMap:
        tm = self._maps.get(Group.of(entity))
        if tm is None or entity not in tm.entities:
            if not self._maps:
                raise ConnectorError(f"{self.describe()}: not open")
            raise ConnectorError(f"{self.describe()} holds no {entity} records")
        return tm

    # -- protocol ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and check every configured table (`ConfigError` naming the key)."""
        await self._db.run(self._reflect)

    def _reflect(self) -> None:
        conn = self._db.connect()
        try:
            self._reflected = {
                group: reflect(conn, f"crm.tables.{group}", table.table, self.settings.db_schema)
                for group, table in self._configured().items()
            }
        except sa.exc.DBAPIError as error:
            raise self._db.failure("cannot read the tables", error) from None
        finally:
            conn.close()
        self._build_maps()

    async def close(self) -> None:
        """Drop writes not committed, close the connections and the worker thread."""
        await self._db.run(self._writer.rollback)
        await self._db.shutdown()

    def describe(self) -> str:
        """``sql:<URL without password>``."""
        return f"sql:{self._db.public}"

    async def identity(self) -> str:
        """The database (URL without password or driver), the schema and the tables."""
        url = self._db.url
        plain = make_url(public_url(url)).set(drivername=url.get_backend_name())
        tables = ",".join(f"{group}={table.table}" for group, table in self._configured().items())
        schema = self.settings.db_schema or ""
        shown = plain.render_as_string(hide_password=False)
        return f"sql:{shown} schema={schema} tables={tables}"

    def entities(self) -> frozenset[EntityKind]:
        """Clients (and counterparties with a kind column), contacts and notes as configured."""
        if not self._maps:
            raise ConnectorError(f"{self.describe()}: not open")
        return frozenset(entity for tm in self._maps.values() for entity in tm.entities)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical fields ``entity``'s table has a column for."""
        return frozenset(field.name for field in self._map(entity).fields[entity])

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """Incremental with ``updated_at``; a deletes feed with ``deleted_at`` as well."""
        table = self._configured().get(Group.of(entity))
        found = set(self.capabilities)
        if table is not None and table.updated_at is not None:
            found.add(Capability.INCREMENTAL)
            if table.deleted_at is not None:
                found.add(Capability.DELETES_FEED)
        return frozenset(found)

    # -- reading ------------------------------------------------------------------------

    def _stream(self, statement: sa.Executable) -> q.Stream:
        writing = self._writer.conn
        conn = writing if writing is not None else self._db.connect()
        try:
            return q.Stream(conn, statement, self.settings.batch_size, owned=writing is None)
        except sa.exc.DBAPIError as error:
            raise self._db.failure("cannot read", error) from None

    def _fetch(self, stream: q.Stream) -> list[sa.RowMapping]:
        try:
            return stream.fetch()
        except sa.exc.DBAPIError as error:
            stream.close()
            raise self._db.failure("reading failed", error) from None

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """A complete listing by id, or with ``since`` the rows changed from the cursor
        moved back by the overlap (see the module docstring of `_queries`)."""
        tm = self._map(entity)
        incremental = since is not None and tm.updated_at is not None
        start = start_id = None
        if incremental:
            assert since is not None
            if since.timestamp is not None:
                start = since.timestamp - self.settings.overlap_delta
                start_id = None if since.id is None else tm.id.key(since.id)
            statement = q.changes(tm, start, start_id)
        else:
            statement = q.complete(tm)
        audit = (
            None if tm.unique_ids or incremental else ListingAudit(f"table {tm.name}", noun="row")
        )
        best: tuple[datetime, Any] | None = None
        stream = await self._db.run(self._stream, statement)
        pending: ChangeBatch | None = None
        # The worker fetches the next partition while this one is parsed here.
        fetching = asyncio.ensure_future(self._db.run(self._fetch, stream))
        try:
            while rows := await fetching:
                fetching = asyncio.ensure_future(self._db.run(self._fetch, stream))
                part = _Collected()
                for row in rows:
                    parsed = parse_row(tm, self._layout, row, entity)
                    if audit is not None and not audit.member(
                        parsed.record_id, f"id {parsed.record_id}"
                    ):
                        parsed = _repeated(tm, parsed)
                    best = _later(best, parsed)
                    self._sort(tm, entity, parsed, part)
                if pending is not None:
                    yield pending
                pending = self._batch(entity, part, self._cursor(best, since))
        finally:
            # Closed only once the fetch in flight is over (it failed, or is not wanted).
            with contextlib.suppress(Exception):
                await fetching
            await self._db.run(stream.close)
        deleted: list[str] = []
        if incremental and tm.deleted_at is not None:
            deleted = await self._db.run(self._soft_deleted, tm, start)
        last = pending or ChangeBatch(
            entity, cursor=self._cursor(best, since) if incremental else None
        )
        yield ChangeBatch(
            entity,
            records=last.records,
            deleted_ids=[*last.deleted_ids, *deleted],
            rejected=last.rejected,
            present_ids=last.present_ids,
            cursor=last.cursor if tm.updated_at is not None else None,
            left_ids=last.left_ids,
            incomplete=None if audit is None else audit.verdict(),
        )

    def _sort(self, tm: TableMap, entity: EntityKind, parsed: ParsedRow, part: _Collected) -> None:
        record_id = parsed.record_id
        if parsed.deleted:
            if record_id is not None:
                part.deleted.append(record_id)
            return
        if parsed.record is not None:
            part.records.append(parsed.record)
            part.present.append(parsed.record.id)
            return
        if parsed.errors:
            if record_id is not None:
                part.present.append(record_id)
            # A row whose kind is unreadable is reported once, with the first entity.
            if parsed.entity is entity or (parsed.entity is None and entity is tm.entities[0]):
                part.rejected.extend(parsed.errors)
            return
        if record_id is not None:
            # Of this table but another entity (a company whose kind is supplier): not a
            # delete when it was linked as a client.
            part.left.append(record_id)

    def _batch(self, entity: EntityKind, part: _Collected, cursor: Cursor | None) -> ChangeBatch:
        return ChangeBatch(
            entity,
            records=part.records,
            deleted_ids=part.deleted,
            rejected=part.rejected,
            present_ids=part.present,
            cursor=cursor,
            left_ids=part.left,
        )

    @staticmethod
    def _cursor(best: tuple[datetime, Any] | None, since: Cursor | None) -> Cursor | None:
        if best is None:
            return since
        moment, raw_id = best
        moment = moment.astimezone(UTC)
        # Never back: the row at the cursor may have gone, leaving only older ones.
        if since is not None and since.timestamp is not None and since.timestamp > moment:
            return since
        return Cursor(moment, str(raw_id))

    def _soft_deleted(self, tm: TableMap, start: datetime | None) -> list[str]:
        conn = self._writer.conn or self._db.connect()
        try:
            rows = conn.execute(q.soft_deleted(tm, start)).scalars().all()
        except sa.exc.DBAPIError as error:
            raise self._db.failure("cannot read soft deletes", error) from None
        finally:
            if conn is not self._writer.conn:
                conn.close()
        return [text for text in (tm.id.record_id(raw) for raw in rows) if text is not None]

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        """The live records with these ids, in the order asked (``WHERE id IN``)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        tm = self._map(entity)
        found: dict[str, Record] = {}
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            found.update(await self._db.run(self._by_ids, tm, entity, chunk))
        return [found[record_id] for record_id in wanted if record_id in found]

    async def absent(self, entity: EntityKind, ids: Sequence[str]) -> set[str] | None:
        # `get_many` reads by id: an id it does not return is not held (or not readable).
        return await self.absent_by_id(entity, ids)

    def _by_ids(self, tm: TableMap, entity: EntityKind, ids: Sequence[str]) -> dict[str, Record]:
        keys = [key for key in (tm.id.key(record_id) for record_id in ids) if key is not None]
        if not keys:
            return {}
        conn = self._writer.conn or self._db.connect()
        try:
            rows = conn.execute(q.by_ids(tm, keys)).mappings().all()
        except sa.exc.DBAPIError as error:
            raise self._db.failure("cannot read", error) from None
        finally:
            if conn is not self._writer.conn:
                conn.close()
        parsed = (parse_row(tm, self._layout, row, entity) for row in rows)
        return {p.record.id: p.record for p in parsed if p.record is not None}

    # -- writing ------------------------------------------------------------------------

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """Insert a row; its id comes from the database, or is generated of its type."""
        return await self._db.run(
            self._writer.create, self._map(entity), self._layout, entity, values
        )

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Write the columns whose values change (and ``updated_at``); others stay."""
        tm = self._map(entity)
        return await self._db.run(self._writer.update, tm, self._layout, entity, record_id, changes)

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """Delete the row, or set its ``deleted_at`` when the table soft-deletes."""
        await self._db.run(self._writer.delete, self._map(entity), self._layout, entity, record_id)

    async def commit(self) -> None:
        """Commit the writes since the last commit, in one transaction."""
        await self._db.run(self._writer.commit)


def _later(best: tuple[datetime, Any] | None, parsed: ParsedRow) -> tuple[datetime, Any] | None:
    """The larger of ``best`` and the row's ``(updated_at, id)``."""
    if parsed.moment is None or parsed.raw_id is None:
        return best
    mine = (parsed.moment, parsed.raw_id)
    if best is None:
        return mine
    try:
        return mine if mine > best else best
    except TypeError:  # ids of mixed types (SQLite's dynamic typing): compared as text
        return mine if (mine[0], str(mine[1])) > (best[0], str(best[1])) else best


def _repeated(tm: TableMap, parsed: ParsedRow) -> ParsedRow:
    """A row whose id an earlier row of the listing had: rejected, the first one kept
    (the listing is then incomplete, so nothing is taken for deleted)."""
    if parsed.record_id is None:
        return parsed
    error = RecordError(
        str(parsed.entity or tm.entities[0]),
        Side.CRM,
        parsed.record_id,
        f"table {tm.name} id {parsed.record_id}: duplicate id; the first row with it is kept",
        "id",
        parsed.record_id,
    )
    return replace(parsed, record=None, errors=(error,))
