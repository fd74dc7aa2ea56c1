"""`StoreTx`: the writes of one operation, committed together by `Store.transaction`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from sync.errors import StoreError
from sync.model import EntityKind, Scalar, Side
from sync.privacy.redact import Redaction
from sync.store._json import encode
from sync.store.rows import (
    ChangeLike,
    EventOutcome,
    EventValues,
    IntentValues,
    JSONInput,
    LinkValues,
    SentValues,
)
from sync.store.tables import (
    conflict_table,
    cursor_table,
    intent_table,
    link_table,
    rejection_table,
    run_event_table,
)

__all__ = ["StoreTx"]

_link = link_table
_intent = intent_table
_cursor = cursor_table
_conflict = conflict_table
_rejection = rejection_table
_event = run_event_table


class StoreTx:
    """Writes inside one open transaction; usable only within its ``with`` block."""

    def __init__(
        self,
        connection: Connection,
        clock: Callable[[], datetime],
        redaction: Redaction | None = None,
    ) -> None:
        self._conn: Connection | None = connection
        self._clock = clock
        # Texts a side wrote (messages, reasons) lose any secret they echo; the audit
        # trail keeps sensitive values masked (links and conflicts keep theirs in clear:
        # the sync compares and restores them).
        self._hide = redaction if redaction is not None else Redaction()

    def _close(self) -> None:
        self._conn = None

    @property
    def _c(self) -> Connection:
        if self._conn is None:
            raise StoreError("store transaction used after its block ended")
        return self._conn

    def save_link(
        self,
        sync: str,
        entity: EntityKind,
        crm_id: str,
        flowtly_id: str,
        base: Mapping[str, Scalar],
        crm_fp: str,
        flowtly_fp: str,
    ) -> None:
        """Insert or update the link of ``crm_id``.

        Raises `StoreError` when ``flowtly_id`` is already linked to another CRM record of
        the same sync and entity: linking it twice would make two records one.
        """
        c = self._c
        where = (_link.c.sync == sync, _link.c.entity == entity.value)
        holder = c.execute(
            select(_link.c.crm_id).where(
                *where, _link.c.flowtly_id == flowtly_id, _link.c.crm_id != crm_id
            )
        ).scalar()
        if holder is not None:
            raise StoreError(
                f"sync {sync!r}: {entity} flowtly id {flowtly_id!r} is already linked to "
                f"crm id {holder!r}, cannot link it to {crm_id!r}"
            )
        now = self._clock()
        values = {
            "flowtly_id": flowtly_id,
            "base": encode(base),
            "crm_fp": crm_fp,
            "flowtly_fp": flowtly_fp,
            "updated_at": now,
            "sent": None,  # the base stored now covers whatever was sent before
        }
        updated = c.execute(update(_link).where(*where, _link.c.crm_id == crm_id).values(values))
        if updated.rowcount == 0:
            c.execute(
                insert(_link).values(
                    sync=sync, entity=entity.value, crm_id=crm_id, created_at=now, **values
                )
            )

    def save_links(self, sync: str, entity: EntityKind, links: Iterable[LinkValues]) -> None:
        """Insert or update many links in one statement (the fast path of a run's chunk).

        A Flowtly id already linked to another CRM record violates the unique constraint
        and fails the whole transaction with `StoreError`, as `save_link` would for one.
        """
        links = list(links)
        if not links:
            return
        dialect = self._c.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            for link in links:
                self.save_link(
                    sync,
                    entity,
                    link.crm_id,
                    link.flowtly_id,
                    link.base,
                    link.crm_fp,
                    link.flowtly_fp,
                )
            return
        now = self._clock()
        rows = [
            {
                "sync": sync,
                "entity": entity.value,
                "crm_id": link.crm_id,
                "flowtly_id": link.flowtly_id,
                "base": encode(link.base),
                "crm_fp": link.crm_fp,
                "flowtly_fp": link.flowtly_fp,
                "created_at": now,
                "updated_at": now,
                "sent": None,
            }
            for link in links
        ]
        upsert = sqlite_insert(_link) if dialect == "sqlite" else pg_insert(_link)
        changed = {
            name: upsert.excluded[name]
            for name in ("flowtly_id", "base", "crm_fp", "flowtly_fp", "updated_at", "sent")
        }
        statement = upsert.on_conflict_do_update(
            index_elements=["sync", "entity", "crm_id"], set_=changed
        )
        try:
            self._c.execute(statement, rows)
        except IntegrityError as exc:
            raise StoreError(f"sync {sync!r}: {entity} links clash: {exc.orig}") from None

    def note_sent(
        self, sync: str, entity: EntityKind, sent: Iterable[tuple[str, SentValues]]
    ) -> None:
        """Record, per linked CRM id, what its updates are about to send (with what earlier
        runs sent and never stored), before they go out; `save_links` clears it."""
        rows = [
            {
                "crm": crm_id,
                "noted": encode(
                    {
                        side.value: {name: list(sent_there) for name, sent_there in fields.items()}
                        for side, fields in values.items()
                    }
                ),
            }
            for crm_id, values in sent
        ]
        if not rows:
            return
        statement = (
            update(_link)
            .where(
                _link.c.sync == sync,
                _link.c.entity == entity.value,
                _link.c.crm_id == bindparam("crm"),
            )
            .values(sent=bindparam("noted"))
        )
        self._c.execute(statement, rows)

    def clear_intents(self, intent_ids: Iterable[int]) -> None:
        """Drop several intents at once."""
        ids = list(intent_ids)
        if ids:
            self._c.execute(delete(_intent).where(_intent.c.id.in_(ids)))

    def add_events(self, run_id: int, entity: EntityKind, events: Iterable[EventValues]) -> None:
        """Append many operations to the run's audit trail in one statement; values of
        sensitive fields are kept masked, messages scrubbed of secrets."""
        now = self._clock()
        hide = self._hide
        rows = [
            {
                "run_id": run_id,
                "at": now,
                "entity": entity.value,
                "action": str(event.action),
                "target": event.target.value if event.target is not None else None,
                "crm_id": event.crm_id,
                "flowtly_id": event.flowtly_id,
                "outcome": event.outcome.value,
                "changes": encode(
                    [
                        {
                            "field": ch.field,
                            "old": hide.value(ch.field, ch.old),
                            "new": hide.value(ch.field, ch.new),
                        }
                        for ch in event.changes
                    ]
                ),
                "message": hide.scrub(event.message),
            }
            for event in events
        ]
        if rows:
            self._c.execute(insert(_event), rows)

    def delete_link(self, sync: str, entity: EntityKind, crm_id: str) -> None:
        """Drop the link of ``crm_id`` (no error when there is none)."""
        self._c.execute(
            delete(_link).where(
                _link.c.sync == sync, _link.c.entity == entity.value, _link.c.crm_id == crm_id
            )
        )

    def add_intent(
        self,
        sync: str,
        entity: EntityKind,
        target: Side,
        source_id: str,
        natural_key: str | None,
        payload_fp: str,
        run_id: int,
    ) -> int:
        """Record a create about to be sent to ``target``; returns the intent id."""
        intent = IntentValues(target, source_id, natural_key, payload_fp)
        return self.add_intents(sync, entity, run_id, [intent])[0]

    def add_intents(
        self, sync: str, entity: EntityKind, run_id: int, intents: Sequence[IntentValues]
    ) -> list[int]:
        """Record many creates about to be sent, in one statement; their ids, in order."""
        if not intents:
            return []
        now = self._clock()
        rows = [
            {
                "sync": sync,
                "entity": entity.value,
                "target": intent.target.value,
                "source_id": intent.source_id,
                "natural_key": intent.natural_key,
                "payload_fp": intent.payload_fp,
                "run_id": run_id,
                "created_at": now,
            }
            for intent in intents
        ]
        statement = insert(_intent).returning(_intent.c.id, sort_by_parameter_order=True)
        ids = list(self._c.execute(statement, rows).scalars())
        if len(ids) != len(intents):
            raise StoreError("the database did not return the ids of the new intents")
        return ids

    def clear_intent(self, intent_id: int) -> None:
        """Drop one intent (its create is linked, or known not to have happened)."""
        self._c.execute(delete(_intent).where(_intent.c.id == intent_id))

    def clear_intents_for(
        self, sync: str, entity: EntityKind, target: Side, source_id: str
    ) -> None:
        """Drop every intent to create ``source_id`` on ``target``."""
        self._c.execute(
            delete(_intent).where(
                _intent.c.sync == sync,
                _intent.c.entity == entity.value,
                _intent.c.target == target.value,
                _intent.c.source_id == source_id,
            )
        )

    def set_cursor(
        self, sync: str, side: Side, entity: EntityKind, cursor_json: Mapping[str, JSONInput]
    ) -> None:
        """Advance a side's cursor, in the transaction that commits the batch it covers."""
        where = (
            _cursor.c.sync == sync,
            _cursor.c.side == side.value,
            _cursor.c.entity == entity.value,
        )
        values = {"value": encode(cursor_json), "updated_at": self._clock()}
        if self._c.execute(update(_cursor).where(*where).values(values)).rowcount == 0:
            self._c.execute(
                insert(_cursor).values(sync=sync, side=side.value, entity=entity.value, **values)
            )

    def clear_cursor(self, sync: str, side: Side, entity: EntityKind) -> None:
        """Forget a side's cursor (it expired): the next read of it is complete."""
        self._c.execute(
            delete(_cursor).where(
                _cursor.c.sync == sync,
                _cursor.c.side == side.value,
                _cursor.c.entity == entity.value,
            )
        )

    def record_conflict(
        self,
        sync: str,
        entity: EntityKind,
        crm_id: str,
        flowtly_id: str,
        field: str,
        base_value: Scalar,
        crm_value: Scalar,
        flowtly_value: Scalar,
    ) -> int:
        """Park a field conflict; a re-detected open conflict is updated, not duplicated.

        Returns the conflict id. ``detected_at`` stays the first detection.
        """
        c = self._c
        values = {
            "flowtly_id": flowtly_id,
            "base_value": encode(base_value),
            "crm_value": encode(crm_value),
            "flowtly_value": encode(flowtly_value),
        }
        open_id = c.execute(
            select(_conflict.c.id).where(
                _conflict.c.sync == sync,
                _conflict.c.entity == entity.value,
                _conflict.c.crm_id == crm_id,
                _conflict.c.field == field,
                _conflict.c.resolved_at.is_(None),
            )
        ).scalar()
        if isinstance(open_id, int):
            c.execute(update(_conflict).where(_conflict.c.id == open_id).values(values))
            return open_id
        result = c.execute(
            insert(_conflict).values(
                sync=sync,
                entity=entity.value,
                crm_id=crm_id,
                field=field,
                detected_at=self._clock(),
                **values,
            )
        )
        key = result.inserted_primary_key
        if key is None or not isinstance(key[0], int):
            raise StoreError("the database did not return the new conflict's id")
        return key[0]

    def record_rejection(
        self,
        sync: str,
        entity: EntityKind,
        side: Side,
        record_id: str,
        field: str | None,
        value: str | None,
        reason: str,
        source_fp: str,
    ) -> None:
        """Record (or refresh) that ``side`` refused ``record_id``, at source ``source_fp``.

        ``reason`` and ``value`` are kept scrubbed of secrets. ``value`` stays unmasked:
        the run reports it again ("still rejected"), masked or not as the report asks.
        """
        where = (
            _rejection.c.sync == sync,
            _rejection.c.entity == entity.value,
            _rejection.c.side == side.value,
            _rejection.c.record_id == record_id,
        )
        values = {
            "field": field,
            "value": self._hide.scrub(value),
            "reason": self._hide.scrub(reason),
            "source_fp": source_fp,
            "detected_at": self._clock(),
        }
        if self._c.execute(update(_rejection).where(*where).values(values)).rowcount == 0:
            self._c.execute(
                insert(_rejection).values(
                    sync=sync, entity=entity.value, side=side.value, record_id=record_id, **values
                )
            )

    def clear_rejection(self, sync: str, entity: EntityKind, side: Side, record_id: str) -> None:
        """Forget a rejection (the record went through, or is gone)."""
        self._c.execute(
            delete(_rejection).where(
                _rejection.c.sync == sync,
                _rejection.c.entity == entity.value,
                _rejection.c.side == side.value,
                _rejection.c.record_id == record_id,
            )
        )

    def add_event(
        self,
        run_id: int,
        entity: EntityKind,
        action: str,
        target: Side | None,
        crm_id: str | None,
        flowtly_id: str | None,
        outcome: EventOutcome,
        changes: Iterable[ChangeLike],
        message: str | None,
    ) -> None:
        """Append one operation to the run's audit trail."""
        event = EventValues(action, target, crm_id, flowtly_id, outcome, list(changes), message)
        self.add_events(run_id, entity, [event])
