"""The Pipedrive connector: organizations (clients and suppliers), persons and notes.

Organizations and persons go through API v2, notes through API v1 (v2 has none). Reads
walk a listing sorted by ``update_time``; with a cursor only what changed since it
(``updated_since`` is inclusive, so the record at the cursor comes again: an overlap,
never a gap), plus the deletes ``/v1/recents`` reports (deleted items carry
``active_flag: false``). A complete listing is audited (`connectors.listing`) before the
engine may infer deletes from it. Writes are v2 POST / PATCH / DELETE and v1 POST / PUT /
DELETE; each returns the record as Pipedrive now holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

import httpx

from connectors._mapping import FieldLayout
from connectors.base import (
    RUN_STOPPING_ERRORS,
    Capability,
    ChangeBatch,
    Connector,
    ConnectorSettings,
    Cursor,
    ItemResult,
)
from connectors.http import ApiClient, HttpLimits, RequestStats, is_loopback, network_transport
from connectors.pipedrive._api import PIPEDRIVE, PIPEDRIVE_ERRORS, PipedriveApi
from connectors.pipedrive._budget import PipedriveLimits, TokenMeter
from connectors.pipedrive._codec import Codec, item_id
from connectors.pipedrive._fields import FieldCatalog, field_of
from connectors.pipedrive._settings import PipedriveSettings
from connectors.pipedrive._setup import FieldSetup
from connectors.pipedrive._slots import Binding, Group, bind
from connectors.pipedrive._time import parse_time, rfc3339, v1_time
from connectors.setup import CustomField
from sync.errors import (
    AuthenticationError,
    BudgetExhausted,
    ConnectorError,
    NotFound,
    RecordError,
    TransportSecurityError,
)
from sync.model import EntityKind, Record, Scalar

__all__ = ["PipedriveConnector"]

_BATCH = 500
_PATHS: Mapping[Group, str] = {
    Group.ORGANIZATION: "/api/v2/organizations",
    Group.PERSON: "/api/v2/persons",
    Group.NOTE: "/api/v1/notes",
}
_RECENT_ITEMS: Mapping[Group, str] = {
    Group.ORGANIZATION: "organization",
    Group.PERSON: "person",
    Group.NOTE: "note",
}
_FIELD_PATHS: Mapping[Group, str] = {
    Group.ORGANIZATION: "/api/v2/organizationFields",
    Group.PERSON: "/api/v2/personFields",
}
# A spent budget fails every later call alike: it stops the run, like a refused token.
_STOPS_RUN = (*RUN_STOPPING_ERRORS, BudgetExhausted)


class PipedriveConnector(Connector):
    """A company's Pipedrive (see the module docstring)."""

    name: ClassVar[str] = "pipedrive"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.READ,
            Capability.WRITE,
            Capability.DELETE,
            Capability.INCREMENTAL,
            Capability.DELETES_FEED,
        }
    )
    settings_model: ClassVar[type[ConnectorSettings]] = PipedriveSettings

    def __init__(
        self,
        settings: PipedriveSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        url = httpx.URL(settings.base_url)
        if url.scheme != "https" and transport is None and not is_loopback(url.host):
            raise TransportSecurityError(
                f"refusing plain http:// for crm.base_url {settings.base_url!r}: the token "
                "would travel unencrypted; use https://",
                side=PIPEDRIVE.name,
            )
        pool = httpx.Limits(
            max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
        )
        self.limits = PipedriveLimits(
            transport or network_transport(pool),
            reserve=settings.token_reserve,
            clock=clock,
            sleep=sleep,
        )
        token = settings.token.get_secret_value()
        client = ApiClient(
            settings.base_url,
            PIPEDRIVE,
            PIPEDRIVE_ERRORS,
            headers={"x-api-token": token, "Accept": "application/json"},
            secrets=[token],
            limits=HttpLimits(
                concurrency=settings.concurrency,
                rate_limit=settings.rate_limit,
                timeout=settings.timeout,
                max_retries=settings.max_retries,
            ),
            transport=self.limits,
            sleep=sleep,
            clock=clock,
        )
        self._api = PipedriveApi(client, settings.page_size)
        self._layout = FieldLayout()
        self._catalogs: dict[Group, FieldCatalog] = {}
        self._bindings: dict[Group, Binding] = {}
        self._setup = FieldSetup(self._api)

    @classmethod
    def from_settings(
        cls, settings: ConnectorSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> Self:
        if not isinstance(settings, PipedriveSettings):
            raise TypeError(f"expected PipedriveSettings, got {type(settings).__name__}")
        return cls(settings, transport=transport)

    def use_layout(self, layout: FieldLayout) -> None:
        """Read and write under the user's ``[mapping.*]`` field names and kind values."""
        self._layout = layout
        if self._catalogs:
            self._bind()

    @property
    def meter(self) -> TokenMeter:
        """Requests and API tokens spent so far, and the day's remaining tokens."""
        return self.limits.meter

    def request_stats(self) -> RequestStats:
        return self._api.client.stats

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Read the field definitions (which also proves the token) and bind the mapping."""
        try:
            await self._load_catalogs()
        except AuthenticationError as error:
            raise AuthenticationError(
                f"Pipedrive refused the API token (crm.token) at {self.settings.base_url}: {error}",
                method=error.method,
                url=error.url,
                status=error.status,
                side=PIPEDRIVE.name,
            ) from None

    async def close(self) -> None:
        await self._api.client.aclose()

    async def _load_catalogs(self) -> None:
        for group, path in _FIELD_PATHS.items():
            listing = self._api.cursor_listing(path, {})
            fields = [field_of(member) async for member in listing.members()]
            self._catalogs[group] = FieldCatalog(one for one in fields if one is not None)
        self._catalogs[Group.NOTE] = FieldCatalog()
        self._bind()

    def _bind(self) -> None:
        for group in Group:
            self._bindings[group] = bind(group, self._layout, self._catalogs[group])

    def _binding(self, group: Group) -> Binding:
        binding = self._bindings.get(group)
        if binding is None:
            raise ConnectorError("the Pipedrive connector is used before open()")
        return binding

    def _codec(self, entity: EntityKind) -> Codec:
        return Codec(self._binding(Group.of(entity)), self._layout)

    def describe(self) -> str:
        """``pipedrive:<company domain>`` (with a port when the URL names one)."""
        url = httpx.URL(self.settings.base_url)
        return f"pipedrive:{url.host}" + (f":{url.port}" if url.port else "")

    def entities(self) -> frozenset[EntityKind]:
        kinds = {EntityKind.CLIENT, EntityKind.CONTACT, EntityKind.NOTE}
        if self._binding(Group.ORGANIZATION).kind is not None:
            kinds.add(EntityKind.COUNTERPARTY)
        return frozenset(kinds)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        return self._binding(Group.of(entity)).fields(entity)

    # -- crm setup ---------------------------------------------------------------------

    def creates_fields(self) -> bool:
        return True

    async def custom_fields(self) -> list[CustomField]:
        return self._setup.listed(self._binding(Group.ORGANIZATION), self._layout)

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        created = await self._setup.create(missing)
        await self._load_catalogs()
        return created

    # -- reading -----------------------------------------------------------------------

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        group = Group.of(entity)
        codec = self._codec(entity)
        params: dict[str, str | int] = {}
        if group is Group.NOTE:
            params["sort"] = "update_time ASC"
        else:
            params.update(sort_by="update_time", sort_direction="asc")
        if since is not None and since.timestamp is not None:
            params["updated_since"] = rfc3339(since.timestamp)
        if group is Group.NOTE:
            listing = self._api.offset_listing(_PATHS[group], params)
        else:
            listing = self._api.cursor_listing(_PATHS[group], params)
        # Offset paging over notes skips one when another is deleted after the first
        # page: the server's time of that page lets recents tell whether any changed.
        audit_notes = group is Group.NOTE and since is None
        listed_from: datetime | None = None
        cursor = since or Cursor()
        seen: set[str] = set()
        records: list[Record] = []
        rejected: list[RecordError] = []
        present: list[str] = []
        left: list[str] = []
        pending: ChangeBatch | None = None
        async for item in listing.members():
            if audit_notes and listed_from is None:
                listed_from = self.limits.server_time
            record_id = item_id(item)
            if record_id is None or record_id in seen:
                continue  # the audit counts it; the listing is then incomplete
            seen.add(record_id)
            if item.get("is_deleted") is True or item.get("active_flag") is False:
                continue
            cursor = _later(cursor, item, record_id)
            self._take(codec, entity, item, record_id, records, rejected, present, left)
            if len(records) + len(rejected) + len(left) >= _BATCH:
                if pending is not None:
                    yield pending
                pending = ChangeBatch(entity, records, (), rejected, present, cursor, left_ids=left)
                records, rejected, present, left = [], [], [], []
        deleted: list[str] = []
        if since is not None and since.timestamp is not None:
            deleted = await self._deleted(group, since.timestamp)
        incomplete = listing.verdict
        if group is Group.NOTE and since is None:
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
        # Whole seconds, and a Date a concurrent read may have moved on a little: two
        # seconds earlier covers both.
        changed = await self._recent(Group.NOTE, listed_from - timedelta(seconds=2))
        if not changed:
            return None
        return (
            f"{len(changed)} note(s) changed while the notes were listed (offset paging may "
            "have skipped one); no deletes are inferred from this listing"
        )

    def _take(
        self,
        codec: Codec,
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
                kinds = ", ".join(self._layout.kind_names())
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

    async def _deleted(self, group: Group, since: datetime) -> list[str]:
        """Ids ``/v1/recents`` reports deleted since ``since`` (``active_flag: false``)."""
        deleted: list[str] = []
        for entry in await self._recent(group, since):
            data = entry.get("data")
            if not isinstance(data, Mapping) or data.get("active_flag") is False:
                deleted.append(str(item_id(entry)))
        return list(dict.fromkeys(deleted))

    async def fetch(self, entity: EntityKind, record_id: str) -> Record | None:
        """One record by id; None when it is not there (or is another kind)."""
        item = await self._item(entity, record_id)
        if item is None:
            return None
        codec = self._codec(entity)
        if codec.entity_of(item)[0] is not entity:
            return None
        record, _ = codec.record(entity, item)
        return record

    async def _item(self, entity: EntityKind, record_id: str) -> Mapping[str, Any] | None:
        if not record_id.isdigit():
            return None
        try:
            data = await self._api.call("GET", f"{_PATHS[Group.of(entity)]}/{record_id}")
        except NotFound:
            return None
        if not isinstance(data, Mapping):
            return None
        if data.get("is_deleted") is True or data.get("active_flag") is False:
            return None
        return data

    # -- writing -----------------------------------------------------------------------

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        codec = self._codec(entity)
        body = codec.body(entity, values, creating=True)
        data = await self._api.call("POST", _PATHS[Group.of(entity)], body=body)
        return self._written(codec, entity, data)

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        codec = self._codec(entity)
        if not record_id.isdigit():
            raise NotFound(f"{entity} {record_id} not found in pipedrive", status=404)
        current: Mapping[str, Any] | None = None
        if codec.needs_current(changes):
            # The address and the emails / phones lists are replaced whole: the parts
            # not changed are sent as they are.
            current = await self._item(entity, record_id)
            if current is None or codec.entity_of(current)[0] is not entity:
                raise NotFound(f"{entity} {record_id} not found in pipedrive", status=404)
        body = codec.body(entity, changes, current=current)
        if not body:
            current = current or await self._item(entity, record_id)
            if current is None:
                raise NotFound(f"{entity} {record_id} not found in pipedrive", status=404)
            return self._written(codec, entity, current)
        group = Group.of(entity)
        method = "PUT" if group is Group.NOTE else "PATCH"
        data = await self._api.call(method, f"{_PATHS[group]}/{record_id}", body=body)
        return self._written(codec, entity, data)

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        if not record_id.isdigit():
            raise NotFound(f"{entity} {record_id} not found in pipedrive", status=404)
        await self._api.call("DELETE", f"{_PATHS[Group.of(entity)]}/{record_id}")

    def _written(self, codec: Codec, entity: EntityKind, data: object) -> Record:
        if not isinstance(data, Mapping) or item_id(data) is None:
            raise ConnectorError(f"Pipedrive answered a {entity} write without the record")
        record, errors = codec.record(entity, data)
        if record is None:
            raise ConnectorError("; ".join(str(error) for error in errors))
        return record

    # -- batches: a spent budget stops them at once ---------------------------------------

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        return _stopping(await super().create_many(entity, items, limit=limit))

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        return _stopping(await super().update_many(entity, items, limit=limit))

    async def delete_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[ItemResult]:
        return _stopping(await super().delete_many(entity, ids, limit=limit))


def _stopping(results: list[ItemResult]) -> list[ItemResult]:
    """The results, unless one is a run-stopping failure: that one is raised."""
    for result in results:
        if isinstance(result.error, _STOPS_RUN):
            raise result.error
    return results


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
