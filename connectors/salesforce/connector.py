"""The Salesforce connector: Accounts (clients and suppliers), Contacts and notes.

Reads are SOQL through ``/query`` and its ``nextRecordsUrl`` pages, ordered by
``SystemModstamp, Id``: a complete listing without a cursor (audited, so only a whole one
infers deletes), else the records with ``SystemModstamp >=`` the cursor minus an overlap,
plus the ids ``/sobjects/{T}/deleted/`` reports since then. When Salesforce's delete log
no longer reaches back to the cursor (15 days, or purged earlier) the read raises
`CursorExpired` and the engine lists the entity completely instead.

Writes go through sObject Collections, 200 records a call, ``allOrNone: false``: each
SaveResult becomes that record's result. Updates answer without the records, so every
write is followed by one read of the records written (collections GET), and what is
stored is what Salesforce holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.base import (
    BatchConnector,
    Capability,
    ChangeBatch,
    Cursor,
    ItemResult,
)
from connectors.http import RequestStats
from connectors.salesforce._api import COLLECTION_SIZE, SalesforceApi, chunks
from connectors.salesforce._fields import Described, ObjectLayout, account_layout, contact_layout
from connectors.salesforce._notes import NoteObject
from connectors.salesforce._records import parse
from connectors.salesforce._settings import SalesforceSettings
from connectors.salesforce._soql import is_record_id, parse_datetime, replication_datetime, select
from connectors.salesforce._writes import CollectionWrites
from connectors.setup import CustomField
from sync.errors import (
    ConnectorError,
    CursorExpired,
    RecordError,
    ValidationFailed,
)
from sync.mapping.layout import FieldLayout, fold
from sync.model import EntityKind, Record, Scalar

__all__ = ["SalesforceConnector"]

DELETE_LOG = timedelta(days=15)
"""How far back ``/deleted`` reaches at most."""

SETTLED = timedelta(hours=1)
"""Changes older than this before a read are taken as committed: a read ends on a cursor
no earlier than its start minus this (or ``overlap_seconds``, if longer), so an entity
nobody edits does not keep its cursor at its last change until the delete log has
passed it (and every read would be a complete one)."""

_ALL = frozenset(
    {
        Capability.READ,
        Capability.WRITE,
        Capability.DELETE,
        Capability.INCREMENTAL,
        Capability.DELETES_FEED,
    }
)
_COMPANIES = (EntityKind.CLIENT, EntityKind.COUNTERPARTY)


class SalesforceConnector(BatchConnector):
    """A Salesforce org over its REST API (see the module docstring)."""

    name = "salesforce"
    write_batch = COLLECTION_SIZE
    capabilities = _ALL
    settings_model = SalesforceSettings
    uses_transport = True

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.api = SalesforceApi(settings, transport=transport, sleep=sleep)
        self._now = now
        self._layout = FieldLayout()
        self._objects: dict[str, ObjectLayout] = {}
        self.notes = NoteObject(self.api, settings.notes)
        self._writes = CollectionWrites(self.api, self.notes, self._object, self.get_many)

    def use_layout(self, layout: FieldLayout) -> None:
        """Take the user's ``[mapping.*]`` field names and kind values (before `open`)."""
        self._layout = layout

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Sign in and describe Account and Contact to learn which fields the org has."""
        await self.api.start()
        account, contact = await asyncio.gather(
            self._described("Account"), self._described("Contact")
        )
        self._objects = {
            "Account": account_layout(account, self._layout),
            "Contact": contact_layout(contact, self._layout),
        }

    async def _described(self, sobject: str) -> dict[str, Described]:
        body = await self.api.describe(sobject)
        found: dict[str, Described] = {}
        for item in body.get("fields") or []:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                name = item["name"]
                found[fold(name)] = Described(
                    name, str(item.get("type", "")), bool(item.get("updateable", True))
                )
        return found

    async def close(self) -> None:
        await self.api.aclose()

    def describe(self) -> str:
        return f"salesforce:{self.settings.instance_url}"

    def request_stats(self) -> RequestStats | None:
        return self.api.stats

    # -- declarations ------------------------------------------------------------------

    def _object(self, entity: EntityKind) -> ObjectLayout:
        if not self._objects:
            raise ConnectorError(f"{self.describe()}: not open")
        return self._objects["Account" if entity in _COMPANIES else "Contact"]

    def entities(self) -> frozenset[EntityKind]:
        """Clients, contacts, notes; suppliers when Accounts have a kind field."""
        kinds = {EntityKind.CLIENT, EntityKind.CONTACT, EntityKind.NOTE}
        account = self._objects.get("Account")
        if account is not None and account.kind is not None and account.kind.present:
            kinds.add(EntityKind.COUNTERPARTY)
        return frozenset(kinds)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        if entity is EntityKind.NOTE:
            return frozenset({"company_id", "body"})
        return self._object(entity).carried(entity)

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """ContentNote has no delete log: its deletes show in complete listings only."""
        if entity is EntityKind.NOTE and self.notes.content:
            return _ALL - {Capability.DELETES_FEED}
        return _ALL

    # -- setup -------------------------------------------------------------------------

    def creates_fields(self) -> bool:
        """Custom fields need the Metadata API: ``crm setup`` prints what to create."""
        return False

    async def custom_fields(self) -> list[CustomField]:
        return [
            *self._object(EntityKind.CLIENT).custom_fields(),
            *self._object(EntityKind.CONTACT).custom_fields(),
        ]

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        raise ConnectorError(
            "Salesforce custom fields are created in Setup > Object Manager (the REST API "
            "cannot): " + ", ".join(f"{field.entity} {field.name}" for field in missing)
        )

    # -- reads -------------------------------------------------------------------------

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """A complete listing, or the changes and deletes since ``since`` (inclusive)."""
        started = self._now()
        overlap = timedelta(seconds=self.settings.overlap_seconds)
        sobject = self.notes.sobject if entity is EntityKind.NOTE else self._object(entity).sobject
        start: datetime | None = None
        deleted: list[str] = []
        if since is not None:
            start = (since.timestamp or started - DELETE_LOG) - overlap
            if Capability.DELETES_FEED in self.capabilities_for(entity):
                deleted = await self._deleted(sobject, start, started)
        fields = self.notes.select() if entity is EntityKind.NOTE else self._object(entity).select()
        pages = self.api.query(select(fields, sobject, since=start), f"{sobject} query")
        cursor = since or Cursor(started)
        pending: ChangeBatch | None = None
        chunk: list[Mapping[str, Any]] = []
        members = pages.members()
        while True:
            member = await anext(members, None)
            if member is not None:
                chunk.append(member)
                if len(chunk) < self.settings.query_batch_size:
                    continue
            if chunk or pending is None:
                batch = await self._batch(entity, chunk, cursor)
                cursor = batch.cursor or cursor
                if pending is not None:
                    yield pending
                pending = batch
                chunk = []
            if member is None:
                break
        assert pending is not None
        # An increment that lost a page must not pass for whole either.
        verdict = pages.verdict
        yield ChangeBatch(
            entity,
            records=pending.records,
            deleted_ids=deleted,
            rejected=pending.rejected,
            present_ids=pending.present_ids,
            cursor=_settled(pending.cursor, started - max(SETTLED, overlap)),
            left_ids=pending.left_ids,
            incomplete=verdict,
        )

    async def _batch(
        self, entity: EntityKind, raws: Sequence[Mapping[str, Any]], cursor: Cursor
    ) -> ChangeBatch:
        rows = [raw for raw in raws if isinstance(raw.get("Id"), str)]
        if rows:
            last = rows[-1]
            stamp = last.get("SystemModstamp")
            if isinstance(stamp, str):
                cursor = Cursor(parse_datetime(stamp), str(last["Id"]))
        if entity is EntityKind.NOTE:
            notes = await self.notes.records(rows)
            return ChangeBatch(
                entity, records=notes, present_ids=[n.id for n in notes], cursor=cursor
            )
        obj = self._object(entity)
        records: list[Record] = []
        rejected: list[RecordError] = []
        present: list[str] = []
        left: list[str] = []
        for raw in rows:
            kind = obj.entity_of(raw)
            if kind is not entity:
                if kind is not None:
                    left.append(str(raw["Id"]))
                elif entity is EntityKind.CLIENT:
                    present.append(str(raw["Id"]))
                    value = raw.get(obj.kind.api) if obj.kind else None
                    rejected.append(
                        RecordError(
                            str(entity),
                            "crm",
                            str(raw["Id"]),
                            f"Account kind {value!r} is none of "
                            + ", ".join(obj.layout.kind_names()),
                            field="kind",
                            value=None if value is None else str(value),
                        )
                    )
                continue
            present.append(str(raw["Id"]))
            parsed = parse(obj, entity, raw)
            if isinstance(parsed, Record):
                records.append(parsed)
            else:
                rejected.append(parsed)
        return ChangeBatch(
            entity,
            records=records,
            rejected=rejected,
            present_ids=present,
            cursor=cursor,
            left_ids=left,
        )

    async def _deleted(self, sobject: str, start: datetime, now: datetime) -> list[str]:
        """Ids deleted since ``start``; `CursorExpired` when the log does not reach back."""
        if now - start > DELETE_LOG:
            raise CursorExpired(
                f"{self.describe()}: {sobject} deletes are kept 15 days; the cursor "
                f"{start.isoformat()} is older"
            )
        # Salesforce ignores the seconds: ending a minute on covers the current one.
        end = max(now, start) + timedelta(minutes=1)
        try:
            body = await self.api.deleted(
                sobject, replication_datetime(start), replication_datetime(end)
            )
        except ValidationFailed as error:
            if "INVALID_REPLICATION_DATE" in (error.detail or ""):
                raise CursorExpired(f"{self.describe()}: {error.detail}") from None
            raise
        earliest = body.get("earliestDateAvailable")
        if isinstance(earliest, str) and parse_datetime(earliest) > start:
            raise CursorExpired(
                f"{self.describe()}: the {sobject} delete log starts at {earliest}, after the "
                f"cursor {start.isoformat()}"
            )
        return [
            str(item["id"])
            for item in body.get("deletedRecords") or []
            if isinstance(item, Mapping) and isinstance(item.get("id"), str)
        ]

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        """The records asked for, by collections GET (notes by one query), in order."""
        wanted = [one for one in dict.fromkeys(ids) if is_record_id(one)]
        found: dict[str, Record] = {}
        for chunk in chunks(wanted):
            for record in await self._fetch(entity, chunk):
                found[record.id] = record
        return [found[one] for one in dict.fromkeys(ids) if one in found]

    async def _fetch(self, entity: EntityKind, ids: Sequence[str]) -> list[Record]:
        if entity is EntityKind.NOTE:
            soql = select(self.notes.select(), self.notes.sobject, ids=ids, ordered=False)
            rows = [row async for row in self.api.query_all(soql)]
            return await self.notes.records(rows)
        obj = self._object(entity)
        raws = await self.api.retrieve(obj.sobject, ids, obj.select())
        found = []
        for raw in raws:
            if raw is None or obj.entity_of(raw) is not entity:
                continue
            parsed = parse(obj, entity, raw)
            if isinstance(parsed, Record):
                found.append(parsed)
        return found

    async def fetch(self, entity: EntityKind, record_id: str) -> Record | None:
        found = await self.get_many(entity, [record_id])
        return found[0] if found else None

    # -- writes ------------------------------------------------------------------------

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        return await self._writes.create_many(entity, items)

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        return await self._writes.update_many(entity, items)

    async def delete_many(
        self,
        entity: EntityKind,
        ids: Sequence[str],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        return await self._writes.delete_many(entity, ids)


def _settled(cursor: Cursor | None, horizon: datetime) -> Cursor:
    """``cursor``, or ``horizon`` where that is later (everything before it was read)."""
    if cursor is None or cursor.timestamp is None or cursor.timestamp < horizon:
        return Cursor(horizon)
    return cursor
