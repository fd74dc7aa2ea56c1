"""`Store`: the sync's memory (links, intents, cursors, conflicts, rejections, audit trail)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import ColumnElement, Select, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from sync.errors import StoreError
from sync.model import SCHEMA_SENSITIVE, EntityKind, Scalar, Side
from sync.privacy.redact import NO_SECRETS, Redaction, Scrubber
from sync.store._binding import read_binding, replace_binding
from sync.store._convert import to_conflict, to_event, to_intent, to_rejection, to_run
from sync.store._engine import WRITE, Database, connect_database
from sync.store._json import decode_object, decode_scalar_map, decode_sent, encode
from sync.store._lock import MemoryLocks, hold_lock
from sync.store._migrate import current_revision, head_revision, migrate
from sync.store.rows import (
    BindingRow,
    ConflictResolution,
    ConflictRow,
    IntentRow,
    JSONInput,
    JSONValue,
    LinkColumn,
    LinkRow,
    RejectionRow,
    RunEventRow,
    RunOutcome,
    RunRow,
    SentValues,
)
from sync.store.tables import (
    conflict_table,
    cursor_table,
    intent_table,
    link_table,
    rejection_table,
    run_event_table,
    run_table,
)
from sync.store.tx import StoreTx

__all__ = ["Clock", "LinkColumn", "Store"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""

_CHUNK = 500  # ids per IN (...) query: under SQLite's bound-parameter limit everywhere
_STREAM = 10_000  # rows fetched at a time from a large result (server-side on PostgreSQL)


_link = link_table
_intent = intent_table
_cursor = cursor_table
_conflict = conflict_table
_rejection = rejection_table
_run = run_table
_event = run_event_table


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The state store. Open with `Store.open`; every write commits on its own.

    Thread use: one `Store` may be shared, each call takes its own connection (an in-memory
    SQLite store shares one connection and so suits tests and single-threaded use).
    """

    def __init__(self, db: Database, clock: Clock, redaction: Redaction | None = None) -> None:
        self._db = db
        self._clock = clock
        self._memory_locks = MemoryLocks()
        self._redaction = redaction or Redaction(sensitive=SCHEMA_SENSITIVE)

    @classmethod
    def open(
        cls,
        url: str,
        *,
        clock: Clock = _utc_now,
        scrubber: Scrubber = NO_SECRETS,
        sensitive: Iterable[str] = (),
    ) -> Store:
        """Connect to ``url`` (any SQLAlchemy URL) and migrate it to the current schema.

        For a SQLite file the parent directory is created (private to its owner, as the
        files are). Texts are stored scrubbed by ``scrubber``; audit values of the model's
        sensitive fields and of ``sensitive`` are stored masked. Raises `StoreError` when
        the database cannot be reached or migrated.
        """
        db = connect_database(url)
        try:
            migrate(db)
        except BaseException:
            db.engine.dispose()
            raise
        return cls(db, clock, Redaction(scrubber, SCHEMA_SENSITIVE | frozenset(sensitive)))

    def close(self) -> None:
        """Release all connections."""
        self._db.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """The store's URL, password hidden."""
        return self._db.safe_url

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._db.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._db.engine.execution_options(**{WRITE: True}).begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[StoreTx]:
        with self._write() as conn:
            tx = StoreTx(conn, self._clock, self._redaction)
            try:
                yield tx
            finally:
                tx._close()

    def transaction(self) -> AbstractContextManager[StoreTx]:
        """One operation's writes: committed when the block ends, rolled back on exception."""
        return self._transaction()

    def lock(self, sync: str) -> AbstractContextManager[None]:
        """Hold ``sync``'s run lock for a ``with`` block.

        Raises `sync.errors.LockHeld` naming the holder (host, pid, since) when another
        process (or another block of this process) holds it.
        """
        return hold_lock(self._db, self._memory_locks, sync, self._clock)

    def integrity_check(self) -> str:
        """``"ok"``, or what is wrong: SQLite's integrity check, and the schema revision."""
        with self._read() as conn:
            problems: list[str] = []
            if self._db.is_sqlite:
                rows = conn.exec_driver_sql("PRAGMA integrity_check").scalars().all()
                problems += [str(row) for row in rows if row != "ok"]
            revision, head = current_revision(conn), head_revision()
            if revision != head:
                problems.append(f"schema at revision {revision}, expected {head}")
        return "\n".join(problems) or "ok"

    # -- binding -------------------------------------------------------------------------

    def binding(self, sync: str) -> dict[Side, BindingRow]:
        """The sides ``sync``'s links belong to, as recorded; empty before the first run."""
        with self._read() as conn:
            return read_binding(conn, sync)

    def bind(self, sync: str, identities: Mapping[Side, str]) -> None:
        """Bind ``sync`` to ``identities`` (side -> identity text without secrets),
        replacing the recorded identity of each side given."""
        with self._write() as conn:
            replace_binding(conn, sync, identities, self._clock())

    # -- links, intents, cursors ---------------------------------------------------------

    def link_index(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str] | None = None
    ) -> dict[str, LinkRow]:
        """The links of ``sync`` and ``entity`` keyed by CRM id, without the bases: every
        one, or only those of ``crm_ids``."""
        columns = (_link.c.id, _link.c.crm_id, _link.c.flowtly_id, _link.c.crm_fp)
        query = select(*columns, _link.c.flowtly_fp).where(
            _link.c.sync == sync, _link.c.entity == entity.value
        )
        return {
            crm_id: LinkRow(link_id, entity, crm_id, flowtly_id, crm_fp, flowtly_fp)
            for link_id, crm_id, flowtly_id, crm_fp, flowtly_fp in self._rows_of(
                query, _link.c.crm_id, crm_ids
            )
        }

    def link_map(
        self,
        sync: str,
        entity: EntityKind,
        key: LinkColumn,
        value: LinkColumn,
        keys: Iterable[str] | None = None,
    ) -> dict[str, str]:
        """One column of the links of ``sync`` and ``entity`` by another: every link, or
        those whose ``key`` is in ``keys``.

        Two strings per link, where `link_index` builds a row object: the engine reads
        the fingerprints of 300,000 contacts this way in a fraction of the memory.
        """
        key_column, value_column = _link.c[key.value], _link.c[value.value]
        query = select(key_column, value_column).where(
            _link.c.sync == sync, _link.c.entity == entity.value
        )
        return {str(k): str(v) for k, v in self._rows_of(query, key_column, keys)}

    def link_count(self, sync: str, entity: EntityKind) -> int:
        """How many records of ``entity`` are linked."""
        query = (
            select(func.count())
            .select_from(_link)
            .where(_link.c.sync == sync, _link.c.entity == entity.value)
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def _rows_of(
        self, query: Select[Any], column: ColumnElement[str], values: Iterable[str] | None
    ) -> Iterator[Sequence[Any]]:
        """The rows of ``query``, restricted to ``column`` in ``values`` when given
        (asked in chunks: a bound-parameter limit applies), streamed as they come."""
        with self._read() as conn:
            if values is None:
                yield from conn.execute(query.execution_options(yield_per=_STREAM))
                return
            wanted = list(dict.fromkeys(values))
            for start in range(0, len(wanted), _CHUNK):
                yield from conn.execute(query.where(column.in_(wanted[start : start + _CHUNK])))

    def load_bases(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str]
    ) -> dict[str, dict[str, Scalar]]:
        """The agreed base record of each linked ``crm_id`` (ids without a link are absent)."""
        ids = list(dict.fromkeys(crm_ids))
        bases: dict[str, dict[str, Scalar]] = {}
        with self._read() as conn:
            for start in range(0, len(ids), _CHUNK):
                query = select(_link.c.crm_id, _link.c.base).where(
                    _link.c.sync == sync,
                    _link.c.entity == entity.value,
                    _link.c.crm_id.in_(ids[start : start + _CHUNK]),
                )
                for crm_id, base in conn.execute(query):
                    bases[crm_id] = decode_scalar_map(base)
        return bases

    def load_sent(
        self, sync: str, entity: EntityKind, crm_ids: Iterable[str]
    ) -> dict[str, SentValues]:
        """What updates sent to the links of ``crm_ids`` since their base was stored (by a
        run that stopped before storing them); links with nothing sent are absent."""
        query = select(_link.c.crm_id, _link.c.sent).where(
            _link.c.sync == sync, _link.c.entity == entity.value, _link.c.sent.is_not(None)
        )
        return {
            crm_id: decode_sent(sent)
            for crm_id, sent in self._rows_of(query, _link.c.crm_id, crm_ids)
        }

    def pending_intents(self, sync: str) -> list[IntentRow]:
        """Creates that were started but never linked, oldest first."""
        query = select(_intent).where(_intent.c.sync == sync).order_by(_intent.c.id)
        with self._read() as conn:
            return [to_intent(row) for row in conn.execute(query)]

    def get_cursor(self, sync: str, side: Side, entity: EntityKind) -> dict[str, JSONValue] | None:
        """The stored cursor of a side and entity, None before the first complete read."""
        query = select(_cursor.c.value).where(
            _cursor.c.sync == sync, _cursor.c.side == side.value, _cursor.c.entity == entity.value
        )
        with self._read() as conn:
            value = conn.execute(query).scalar()
        return decode_object(value) if value is not None else None

    # -- conflicts and rejections --------------------------------------------------------

    def open_conflicts(self, sync: str, entity: EntityKind | None = None) -> list[ConflictRow]:
        """Unresolved conflicts, oldest first."""
        query = select(_conflict).where(_conflict.c.sync == sync, _conflict.c.resolved_at.is_(None))
        if entity is not None:
            query = query.where(_conflict.c.entity == entity.value)
        with self._read() as conn:
            return [to_conflict(row) for row in conn.execute(query.order_by(_conflict.c.id))]

    def get_conflict(self, conflict_id: int) -> ConflictRow | None:
        """One conflict, open or resolved."""
        with self._read() as conn:
            row = conn.execute(select(_conflict).where(_conflict.c.id == conflict_id)).first()
        return to_conflict(row) if row is not None else None

    def resolve_conflict(
        self, conflict_id: int, resolution: ConflictResolution, value: Scalar, by: str
    ) -> None:
        """Settle an open conflict; the winning value is kept in ``resolved_value``.

        ``value`` is used only with `ConflictResolution.VALUE`; otherwise the chosen side's
        recorded value wins. Raises `StoreError` if the conflict is unknown or resolved.
        """
        with self._write() as conn:
            row = conn.execute(select(_conflict).where(_conflict.c.id == conflict_id)).first()
            if row is None:
                raise StoreError(f"no conflict with id {conflict_id}")
            conflict = to_conflict(row)
            if not conflict.is_open:
                raise StoreError(
                    f"conflict {conflict_id} was already resolved ({conflict.resolution} "
                    f"by {conflict.resolved_by})"
                )
            chosen = {
                ConflictResolution.CRM: conflict.crm_value,
                ConflictResolution.FLOWTLY: conflict.flowtly_value,
                ConflictResolution.VALUE: value,
            }[resolution]
            conn.execute(
                update(_conflict)
                .where(_conflict.c.id == conflict_id)
                .values(
                    resolved_at=self._clock(),
                    resolution=resolution.value,
                    resolved_value=encode(chosen),
                    resolved_by=by,
                )
            )

    def rejections(self, sync: str, entity: EntityKind | None = None) -> list[RejectionRow]:
        """Records a target refused, by entity and record id."""
        query = select(_rejection).where(_rejection.c.sync == sync)
        if entity is not None:
            query = query.where(_rejection.c.entity == entity.value)
        query = query.order_by(_rejection.c.entity, _rejection.c.side, _rejection.c.record_id)
        with self._read() as conn:
            return [to_rejection(row) for row in conn.execute(query)]

    def rejection_fps(self, sync: str, entity: EntityKind, side: Side) -> dict[str, str]:
        """Rejected record id -> source fingerprint it was rejected at (retry on change)."""
        query = select(_rejection.c.record_id, _rejection.c.source_fp).where(
            _rejection.c.sync == sync,
            _rejection.c.entity == entity.value,
            _rejection.c.side == side.value,
        )
        with self._read() as conn:
            return dict(conn.execute(query).all())

    # -- runs ----------------------------------------------------------------------------

    def start_run(self, sync: str, dry_run: bool) -> int:
        """Record a run as started (outcome ``running``); returns its id.

        Called with ``sync``'s lock held, so no earlier run of it can still be going: one
        still ``running`` lost its process (SIGKILL, a crash) and is marked ``abandoned``.
        """
        with self._write() as conn:
            conn.execute(
                update(_run)
                .where(_run.c.sync == sync, _run.c.outcome == RunOutcome.RUNNING.value)
                .values(
                    outcome=RunOutcome.ABANDONED.value,
                    error="its process ended before the run finished (killed, or crashed); "
                    "marked when the next run took the lock",
                )
            )
            result = conn.execute(
                insert(_run).values(
                    sync=sync,
                    started_at=self._clock(),
                    dry_run=dry_run,
                    outcome=RunOutcome.RUNNING.value,
                    summary=encode({}),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )
            key = result.inserted_primary_key
        if key is None or not isinstance(key[0], int):
            raise StoreError("the database did not return the new run's id")
        return key[0]

    def finish_run(
        self,
        run_id: int,
        outcome: RunOutcome,
        summary: Mapping[str, JSONInput],
        error: str | None,
    ) -> None:
        """Record how a run ended."""
        with self._write() as conn:
            result = conn.execute(
                update(_run)
                .where(_run.c.id == run_id)
                .values(
                    finished_at=self._clock(),
                    outcome=outcome.value,
                    summary=encode(summary),
                    error=self._redaction.scrub(error),
                )
            )
            if result.rowcount == 0:
                raise StoreError(f"no run with id {run_id}")

    def recent_runs(self, sync: str | None = None, limit: int = 10) -> list[RunRow]:
        """The latest runs, newest first."""
        query = select(_run)
        if sync is not None:
            query = query.where(_run.c.sync == sync)
        query = query.order_by(_run.c.started_at.desc(), _run.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [to_run(row) for row in conn.execute(query)]

    def run_events(self, run_id: int) -> list[RunEventRow]:
        """A run's operations in the order they happened."""
        query = select(_event).where(_event.c.run_id == run_id).order_by(_event.c.id)
        with self._read() as conn:
            return [to_event(row) for row in conn.execute(query)]
