"""Reading Pipedrive: complete listings, increments since a cursor, and the deletes
``/v1/recents`` reports.

Listings are sorted by ``update_time``; with a cursor only what changed since it
(``updated_since`` is inclusive, so the record at the cursor comes again: an overlap,
never a gap). Organizations and persons page by cursor (keyset), which a change cannot
make skip a record (a changed one comes again, which the audit notices); notes page by
offset, which skips one when another is deleted between two pages, so a complete notes
listing asks recents whether any note changed since its first page was served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from connectors.base import ChangeBatch, Cursor
from connectors.pipedrive._api import PIPEDRIVE, PipedriveApi
from connectors.pipedrive._budget import PipedriveLimits
from connectors.pipedrive._codec import Codec, item_id
from connectors.pipedrive._slots import Group
from connectors.pipedrive._time import parse_time, rfc3339, v1_time
from sync.errors import RecordError
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind, Record

__all__ = ["PATHS", "Reader"]

_BATCH: Final = 500
_MARGIN: Final = timedelta(seconds=2)
"""How far before the server's time (its ``Date``) a read looks: Pipedrive's stamps have
whole seconds, and a concurrent read may have moved the last ``Date`` seen on a little."""
PATHS: Mapping[Group, str] = {
    Group.ORGANIZATION: "/api/v2/organizations",
    Group.PERSON: "/api/v2/persons",
    Group.NOTE: "/api/v1/notes",
}
_RECENT_ITEMS: Mapping[Group, str] = {
    Group.ORGANIZATION: "organization",
    Group.PERSON: "person",
    Group.NOTE: "note",
}


class Reader:
    """Reads one account through ``api``; ``limits`` knows the server's time."""

    def __init__(self, api: PipedriveApi, limits: PipedriveLimits) -> None:
        self._api = api
        self.limits = limits

    async def read(
        self, codec: Codec, layout: FieldLayout, entity: EntityKind, since: Cursor | None
    ) -> AsyncIterator[ChangeBatch]:
        """The batches of one read of ``entity`` (see the connector's docstring)."""
        group = Group.of(entity)
        params: dict[str, str | int] = {}
        if group is Group.NOTE:
            params["sort"] = "update_time ASC"
        else:
            params.update(sort_by="update_time", sort_direction="asc")
        if since is not None and since.timestamp is not None:
            params["updated_since"] = rfc3339(since.timestamp)
        if group is Group.NOTE:
            listing = self._api.offset_listing(PATHS[group], params)
        else:
            listing = self._api.cursor_listing(PATHS[group], params)
        # Offset paging over notes skips one when another changes after the first page:
        # the server's time of that page lets recents tell whether any did.
        offset_paged = group is Group.NOTE
        listed_from: datetime | None = None
        cursor = since or Cursor()
        seen: set[str] = set()
        records: list[Record] = []
        rejected: list[RecordError] = []
        present: list[str] = []
        left: list[str] = []
        pending: ChangeBatch | None = None
        async for item in listing.members():
            if offset_paged and listed_from is None:
                listed_from = self.limits.server_time
            record_id = item_id(item)
            if record_id is None or record_id in seen:
                continue  # the audit counts it; the listing is then incomplete
            seen.add(record_id)
            if item.get("is_deleted") is True or item.get("active_flag") is False:
                continue
            cursor = _later(cursor, item, record_id)
            self._take(codec, layout, entity, item, record_id, records, rejected, present, left)
            if len(records) + len(rejected) + len(left) >= _BATCH:
                if pending is not None:
                    yield pending
                pending = ChangeBatch(entity, records, (), rejected, present, cursor, left_ids=left)
                records, rejected, present, left = [], [], [], []
        if cursor.timestamp is None and self.limits.server_time is not None:
            # Nothing listed to take a time from: the server's time of the listing is
            # where the next read starts (what is made later has a later update_time).
            cursor = Cursor(self.limits.server_time - _MARGIN, None)
        deleted: list[str] = []
        if since is not None and since.timestamp is not None:
            recent = await self._recent(group, since.timestamp)
            deleted = _deleted(recent)
            if offset_paged and seen and _changed_after(recent, listed_from):
                cursor = since  # a note may have been skipped: the next read covers it again
        incomplete = listing.verdict
        if offset_paged and since is None and seen:
            incomplete = (
                "; ".join(
                    reason
                    for reason in (incomplete, await self._notes_moved(listed_from))
                    if reason
                )
                or None
            )
        if pending is not None:
            yield pending
        yield ChangeBatch(
            entity,
            records,
            deleted,
            rejected,
            present,
            cursor,
            left_ids=left,
            incomplete=incomplete,
        )

    async def _notes_moved(self, listed_from: datetime | None) -> str | None:
        """Why the notes just listed may have missed one (None: none changed meanwhile)."""
        if listed_from is None:
            return (
                "Pipedrive gave no server time (Date), so changes during the notes listing "
                "cannot be ruled out"
            )
        changed = await self._recent(Group.NOTE, listed_from - _MARGIN)
        if not changed:
            return None
        return (
            f"{len(changed)} note(s) changed while the notes were listed (offset paging may "
            "have skipped one); no deletes are inferred from this listing"
        )

    @staticmethod
    def _take(
        codec: Codec,
        layout: FieldLayout,
        entity: EntityKind,
        item: Mapping[str, Any],
        record_id: str,
        records: list[Record],
        rejected: list[RecordError],
        present: list[str],
        left: list[str],
    ) -> None:
        """Sort one listed item into the batch being built."""
        if entity is EntityKind.NOTE and not isinstance(item.get("org_id"), int):
            return  # a note of a deal, lead or person only: no company's note to sync
        of, unreadable = codec.entity_of(item)
        if of is None:
            present.append(record_id)
            if entity is EntityKind.CLIENT:  # reported once, with the clients
                kinds = ", ".join(layout.kind_names())
                rejected.append(
                    RecordError(
                        "client",
                        PIPEDRIVE.name,
                        record_id,
                        f"unknown kind {unreadable!r} (expected one of {kinds})",
                        field="kind",
                        value=unreadable,
                    )
                )
            return
        if of is not entity:
            left.append(record_id)
            return
        record, errors = codec.record(entity, item)
        present.append(record_id)
        if record is not None:
            records.append(record)
        rejected.extend(errors)

    async def _recent(self, group: Group, since: datetime) -> list[Mapping[str, Any]]:
        """What ``/v1/recents`` reports of ``group`` since ``since`` (one ``items`` a call)."""
        params = {"since_timestamp": v1_time(since), "items": _RECENT_ITEMS[group]}
        listing = self._api.offset_listing("/api/v1/recents", params)
        return [
            entry
            async for entry in listing.members()
            if item_id(entry) is not None and entry.get("item") == _RECENT_ITEMS[group]
        ]


def _deleted(recent: list[Mapping[str, Any]]) -> list[str]:
    """The ids of the ``/v1/recents`` entries that are deletes (``active_flag: false``)."""
    deleted: list[str] = []
    for entry in recent:
        data = entry.get("data")
        if not isinstance(data, Mapping) or data.get("active_flag") is False:
            deleted.append(str(item_id(entry)))
    return list(dict.fromkeys(deleted))


def _changed_after(recent: list[Mapping[str, Any]], moment: datetime | None) -> bool:
    """Whether an entry of ``recent`` changed at ``moment`` (less the margin) or later;
    an entry without a readable time counts as such, and so does every entry when the
    moment is unknown."""
    for entry in recent:
        data = entry.get("data")
        changed = parse_time(data.get("update_time")) if isinstance(data, Mapping) else None
        if moment is None or changed is None or changed >= moment - _MARGIN:
            return True
    return False


def _later(cursor: Cursor, item: Mapping[str, Any], record_id: str) -> Cursor:
    """``cursor`` moved to ``item`` when it changed later (or at the same time, higher id)."""
    moment = parse_time(item.get("update_time"))
    if moment is None:
        return cursor
    if cursor.timestamp is None or (moment, int(record_id)) > (
        cursor.timestamp,
        int(cursor.id) if cursor.id and cursor.id.isdigit() else 0,
    ):
        return Cursor(moment, record_id)
    return cursor
