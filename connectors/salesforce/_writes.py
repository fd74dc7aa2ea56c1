"""Writes through sObject Collections: 200 records a call, ``allOrNone: false``.

Each SaveResult becomes that record's `ItemResult`. Every record created or updated is
read back in one collections GET per chunk (``PATCH`` answers without it), so what the
engine stores is what Salesforce holds. Records refused before sending (a value with no
canonical form) and ids that are no Salesforce ids fail alone, without a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from connectors.base import ItemResult
from connectors.salesforce._api import SalesforceApi, chunks
from connectors.salesforce._fields import ObjectLayout
from connectors.salesforce._notes import NoteObject
from connectors.salesforce._records import payload, refusal
from connectors.salesforce._soql import is_record_id
from sync.errors import ConnectorError, NotFound, ValidationFailed
from sync.model import EntityKind, Record, Scalar

__all__ = ["CollectionWrites"]


class CollectionWrites:
    """Creates, updates and deletes of one connector (see the module docstring)."""

    def __init__(
        self,
        api: SalesforceApi,
        notes: NoteObject,
        object_of: Callable[[EntityKind], ObjectLayout],
        fetch: Callable[[EntityKind, Sequence[str]], Awaitable[list[Record]]],
    ) -> None:
        """``fetch`` reads the records with some ids, in order (any number of them)."""
        self.api = api
        self.notes = notes
        self._object_of = object_of
        self._fetch = fetch

    def _attributes(self, entity: EntityKind) -> dict[str, str]:
        sobject = (
            self.notes.sobject if entity is EntityKind.NOTE else self._object_of(entity).sobject
        )
        return {"type": sobject}

    def _fields_for(
        self, entity: EntityKind, values: Mapping[str, Scalar], *, creating: bool
    ) -> dict[str, Any]:
        if entity is EntityKind.NOTE:
            return self.notes.fields_for(values, creating=creating)
        return payload(self._object_of(entity), entity, values, creating=creating)

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
    ) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        outgoing: list[tuple[int, dict[str, Any]]] = []
        for index, values in enumerate(items):
            try:
                body = self._fields_for(entity, values, creating=True)
            except ValidationFailed as error:
                results[index] = ItemResult(error=error)
                continue
            outgoing.append((index, {"attributes": self._attributes(entity), **body}))
        for chunk in chunks(outgoing):
            saved = await self.api.create([record for _, record in chunk])
            made: dict[int, str] = {}
            for (index, _), result in zip(chunk, saved, strict=True):
                if result.get("success") and isinstance(result.get("id"), str):
                    made[index] = result["id"]
                else:
                    results[index] = ItemResult(error=refusal(entity, None, result))
            if entity is EntityKind.NOTE and self.notes.content and made:
                await self._link(made, items, results)
            await self._read_back(entity, made, results)
        return [result or ItemResult(error=ConnectorError("not written")) for result in results]

    async def _link(
        self,
        made: dict[int, str],
        items: Sequence[Mapping[str, Scalar]],
        results: list[ItemResult | None],
    ) -> None:
        """Put new ContentNotes under their Accounts; a note whose link is refused is
        deleted again (unlinked, no run would ever find it)."""
        order = list(made)
        links = [self.notes.link(made[i], str(items[i].get("company_id") or "")) for i in order]
        saved = await self.api.create(links)
        orphans = []
        for index, result in zip(order, saved, strict=True):
            if not result.get("success"):
                results[index] = ItemResult(error=refusal(EntityKind.NOTE, made[index], result))
                orphans.append(made.pop(index))
        if orphans:
            await self.api.delete(orphans)

    async def _read_back(
        self, entity: EntityKind, written: dict[int, str], results: list[ItemResult | None]
    ) -> None:
        if not written:
            return
        found = {r.id: r for r in await self._fetch(entity, list(written.values()))}
        for index, record_id in written.items():
            record = found.get(record_id)
            results[index] = ItemResult(
                record=record,
                error=None
                if record is not None
                else NotFound(f"{entity} {record_id} not found after writing it", status=404),
            )

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
    ) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        outgoing: list[tuple[int, str, dict[str, Any]]] = []
        current: dict[str, Record] = {}
        if entity is EntityKind.NOTE:
            known = [record_id for record_id, _ in items if is_record_id(record_id)]
            current = {r.id: r for r in await self._fetch(entity, known)}
        for index, (record_id, changes) in enumerate(items):
            if not is_record_id(record_id):
                results[index] = ItemResult(error=not_found(entity, record_id))
                continue
            try:
                if entity is EntityKind.NOTE:
                    if record_id not in current:
                        results[index] = ItemResult(error=not_found(entity, record_id))
                        continue
                    self.notes.check_move(current[record_id], changes)
                    changes = {**current[record_id].fields, **changes}
                body = self._fields_for(entity, changes, creating=False)
            except ValidationFailed as error:
                results[index] = ItemResult(error=error)
                continue
            record = {"attributes": self._attributes(entity), "id": record_id, **body}
            outgoing.append((index, record_id, record))
        for chunk in chunks(outgoing):
            saved = await self.api.update([record for _, _, record in chunk])
            done: dict[int, str] = {}
            for (index, record_id, _), result in zip(chunk, saved, strict=True):
                if result.get("success"):
                    done[index] = record_id
                else:
                    results[index] = ItemResult(error=refusal(entity, record_id, result))
            await self._read_back(entity, done, results)
        return [result or ItemResult(error=ConnectorError("not written")) for result in results]

    async def delete_many(
        self,
        entity: EntityKind,
        ids: Sequence[str],
    ) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(ids)
        outgoing: list[tuple[int, str]] = []
        for index, record_id in enumerate(ids):
            if is_record_id(record_id):
                outgoing.append((index, record_id))
            else:
                results[index] = ItemResult(error=not_found(entity, record_id))
        for chunk in chunks(outgoing):
            saved = await self.api.delete([record_id for _, record_id in chunk])
            for (index, record_id), result in zip(chunk, saved, strict=True):
                codes = {str(e.get("statusCode")) for e in result.get("errors") or []}
                if result.get("success") or codes == {"ENTITY_IS_DELETED"}:
                    results[index] = ItemResult()
                else:
                    results[index] = ItemResult(error=refusal(entity, record_id, result))
        return [result or ItemResult(error=ConnectorError("not deleted")) for result in results]


def not_found(entity: EntityKind, record_id: str) -> NotFound:
    return NotFound(f"{entity} {record_id!r} is no Salesforce record id", status=404)
