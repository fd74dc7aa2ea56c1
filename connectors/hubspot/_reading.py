"""Reading HubSpot: complete listings and incremental searches, page by page.

A complete listing pages ``GET /crm/v3/objects/{type}`` 100 at a time through the kit's
`Paginator` (so `ListingAudit` decides whether it is whole), with only the mapped
properties and the company associations inline. Its cursor is the latest modification
it saw, for the incremental reads that follow.

An incremental read searches on the modification property (``hs_lastmodifieddate``,
contacts ``lastmodifieddate``) ascending, 200 a page, from the cursor minus an overlap:
HubSpot's search index lags behind writes, and a record changed just before the last
read may only now be searchable. A query pages through 10,000 results at most, so before
that cap the query restarts from the last timestamp seen; ids already read are skipped.
Archived objects never appear in search: deletes come from complete listings only.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import ChangeBatch, Cursor
from connectors.http import Page, Paginator
from connectors.hubspot._api import BATCH_SIZE, HUBSPOT, SEARCH_CAP, SEARCH_PAGE, HubSpotApi
from connectors.hubspot._properties import ObjectType, object_type
from connectors.hubspot._records import (
    Parsed,
    RecordCodec,
    associated_company,
    modified_at,
    v4_company,
)
from sync.errors import ConnectorError, RecordError
from sync.model import EntityKind, Record

__all__ = ["Reader"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _results(answer: Any) -> list[Mapping[str, Any]]:
    results = answer.get("results") if isinstance(answer, Mapping) else None
    return [item for item in results or () if isinstance(item, Mapping)]


def _next_after(answer: Any) -> str | None:
    paging = answer.get("paging") if isinstance(answer, Mapping) else None
    following = paging.get("next") if isinstance(paging, Mapping) else None
    after = following.get("after") if isinstance(following, Mapping) else None
    return str(after) if after not in (None, "") else None


class _Latest:
    """The latest (modification time, id) seen: where the next incremental read starts."""

    def __init__(self, start: Cursor | None) -> None:
        self.cursor = start

    def see(self, kind: ObjectType, item: Mapping[str, Any]) -> None:
        moment = modified_at(kind, item)
        if moment is None:
            return
        current = self.cursor.timestamp if self.cursor is not None else None
        if current is None or moment >= current:
            self.cursor = Cursor(moment, str(item.get("id")))


@dataclass(frozen=True, slots=True)
class _Sibling:
    """What a complete companies listing saw of the other company entity."""

    entity: EntityKind
    items: list[Mapping[str, Any]]
    others: list[str]
    """Ids of the companies that are not ``entity`` (its left ids)."""
    cursor: Cursor
    verdict: str | None
    at: float


class Reader:
    """Listings and searches of one connector (its API and its codec).

    Clients and suppliers are both HubSpot companies, so one complete listing of the
    companies serves both: what a listing of one saw of the other is kept and replayed
    for the other's listing if it comes within `SIBLING_TTL` and no company was written
    meanwhile (`forget`), halving the requests of a full scan of the companies.
    """

    SIBLING_TTL = 600.0

    def __init__(
        self,
        api: HubSpotApi,
        codec: RecordCodec,
        overlap: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.codec = codec
        self.overlap = overlap
        self._clock = clock
        self._sibling: _Sibling | None = None

    def forget(self) -> None:
        """Drop the kept companies listing (a company is about to be written)."""
        self._sibling = None

    # -- complete listings ------------------------------------------------------------

    async def listing(self, entity: EntityKind) -> AsyncIterator[ChangeBatch]:
        kind = object_type(entity)
        sibling, self._sibling = self._sibling, None
        if (
            sibling is not None
            and sibling.entity is entity
            and self._clock() - sibling.at < self.SIBLING_TTL
        ):
            async for batch in self._replay(sibling):
                yield batch
            return
        companies = kind is ObjectType.COMPANIES
        other = EntityKind.CLIENT if entity is EntityKind.COUNTERPARTY else EntityKind.COUNTERPARTY
        # A companies listing asks for every company property, so it serves both kinds.
        properties = self.codec.wanted(entity)
        if companies:
            properties = list(dict.fromkeys([*properties, *self.codec.wanted(other)]))
        associations = ["companies"] if entity.parent is not None else []
        latest = _Latest(None)
        kept: list[Mapping[str, Any]] = []
        others: list[str] = []

        async def fetch(after: str | None) -> Page[str]:
            answer = await self.api.list_page(kind, after, properties, associations)
            if not isinstance(answer, Mapping) or not isinstance(answer.get("results"), list):
                return Page((), broken="is not a listing page (no 'results' list)")
            return Page(_results(answer), next=_next_after(answer))

        def id_of(item: Mapping[str, Any]) -> str | None:
            raw = item.get("id")
            return str(raw) if raw not in (None, "") else None

        pages = Paginator(HUBSPOT, f"/crm/v3/objects/{kind}", fetch, id_of)
        chunk: list[Mapping[str, Any]] = []
        pending: ChangeBatch | None = None
        async for item in pages.members():
            latest.see(kind, item)
            chunk.append(item)
            if companies:
                if self.codec.entity_of(entity, item) is other:
                    kept.append(item)
                elif item.get("id") is not None:
                    others.append(str(item["id"]))
            if len(chunk) >= BATCH_SIZE:
                if pending is not None:
                    yield pending
                pending = self._batch(entity, chunk, inline=True)
                chunk = []
        if chunk or pending is None:
            if pending is not None:
                yield pending
            pending = self._batch(entity, chunk, inline=True)
        # An empty account still gives a cursor: the next read searches from the start.
        cursor = latest.cursor or Cursor(_EPOCH, None)
        if companies:
            self._sibling = _Sibling(other, kept, others, cursor, pages.verdict, self._clock())
        yield ChangeBatch(
            entity,
            records=pending.records,
            rejected=pending.rejected,
            present_ids=pending.present_ids,
            left_ids=pending.left_ids,
            cursor=cursor,
            incomplete=pages.verdict,
        )

    async def _replay(self, sibling: _Sibling) -> AsyncIterator[ChangeBatch]:
        items = sibling.items
        chunks = [items[start : start + BATCH_SIZE] for start in range(0, len(items), BATCH_SIZE)]
        *before, final = chunks or [[]]
        for chunk in before:
            yield self._batch(sibling.entity, chunk, inline=True)
        last = self._batch(sibling.entity, final, inline=True)
        yield ChangeBatch(
            sibling.entity,
            records=last.records,
            rejected=last.rejected,
            present_ids=last.present_ids,
            left_ids=[*last.left_ids, *sibling.others],
            cursor=sibling.cursor,
            incomplete=sibling.verdict,
        )

    # -- incremental reads -----------------------------------------------------------

    async def changes(self, entity: EntityKind, since: Cursor) -> AsyncIterator[ChangeBatch]:
        kind = object_type(entity)
        start = (since.timestamp or _EPOCH) - self.overlap
        properties = self.codec.wanted(entity)
        latest = _Latest(since)
        seen: set[str] = set()
        window_start = start
        after = 0
        while True:
            answer = await self.api.search(kind, self._query(kind, window_start, after, properties))
            items = [item for item in _results(answer) if str(item.get("id")) not in seen]
            last_moment: datetime | None = None
            for item in _results(answer):
                last_moment = modified_at(kind, item) or last_moment
            for item in items:
                seen.add(str(item.get("id")))
                latest.see(kind, item)
            companies = await self._companies(kind, items) if entity.parent is not None else {}
            batch = self._batch(entity, items, companies=companies)
            yield ChangeBatch(
                entity,
                records=batch.records,
                rejected=batch.rejected,
                present_ids=batch.present_ids,
                left_ids=batch.left_ids,
                cursor=latest.cursor,
            )
            following = _next_after(answer)
            if following is None:
                return
            after = int(following) if following.isdigit() else after + SEARCH_PAGE
            if after + SEARCH_PAGE > SEARCH_CAP:
                # The query cannot page further: the same search again from the last
                # timestamp it reached (ids already read are skipped).
                if last_moment is None or last_moment <= window_start:
                    raise ConnectorError(
                        f"HubSpot search of {kind}: more than {SEARCH_CAP} objects changed "
                        f"at {window_start.isoformat()}; the search cannot page past them. "
                        "A complete listing reads them ([sync] full_scan, or clear the "
                        "cursor with a full run)"
                    )
                window_start, after = last_moment, 0

    def _query(
        self, kind: ObjectType, start: datetime, after: int, properties: Sequence[str]
    ) -> dict[str, object]:
        modified = kind.modified_property
        return {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": modified, "operator": "GTE", "value": _millis(start)}
                    ]
                }
            ],
            "sorts": [{"propertyName": modified, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": SEARCH_PAGE,
            "after": str(after),
        }

    async def _companies(
        self, kind: ObjectType, items: Sequence[Mapping[str, Any]]
    ) -> dict[str, str | None]:
        """Each object's company, through the v4 associations batch read."""
        ids = self.codec.record_ids(items)
        found: dict[str, str | None] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            answer = await self.api.associations_read(
                kind, ObjectType.COMPANIES, ids[start : start + BATCH_SIZE]
            )
            for result in _results(answer):
                source = result.get("from")
                if isinstance(source, Mapping) and source.get("id") is not None:
                    found[str(source["id"])] = v4_company(kind, result)
        return found

    async def records(self, entity: EntityKind, ids: Sequence[str]) -> dict[str, Record]:
        """The records with ``ids`` that exist and are of ``entity`` (batch reads)."""
        kind = object_type(entity)
        properties = self.codec.wanted(entity)
        found: dict[str, Record] = {}
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = list(ids[start : start + BATCH_SIZE])
            items = _results(await self.api.batch_read(kind, chunk, properties))
            companies = await self._companies(kind, items) if entity.parent is not None else {}
            for item in items:
                parsed = self._parse(entity, item, companies)
                if parsed.record is not None:
                    found[parsed.record.id] = parsed.record
        return found

    # -- shared ----------------------------------------------------------------------

    def _parse(
        self,
        entity: EntityKind,
        item: Mapping[str, Any],
        companies: Mapping[str, str | None] | None = None,
        *,
        inline: bool = False,
    ) -> Parsed:
        company: str | None = None
        if entity.parent is not None:
            kind = object_type(entity)
            if inline:
                company = associated_company(kind, item)
            elif companies is not None:
                company = companies.get(str(item.get("id")))
        return self.codec.parse(entity, item, company)

    def _batch(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Any]],
        *,
        companies: Mapping[str, str | None] | None = None,
        inline: bool = False,
    ) -> ChangeBatch:
        records: list[Record] = []
        rejected: list[RecordError] = []
        present: list[str] = []
        left: list[str] = []
        for item in items:
            parsed = self._parse(entity, item, companies, inline=inline)
            if parsed.object_id is None:
                continue
            if parsed.entity is not entity:
                left.append(parsed.object_id)
            elif parsed.record is not None:
                records.append(parsed.record)
                present.append(parsed.object_id)
            else:
                rejected.extend(parsed.errors)
                present.append(parsed.object_id)
        return ChangeBatch(
            entity, records=records, rejected=rejected, present_ids=present, left_ids=left
        )
