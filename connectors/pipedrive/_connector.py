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
from typing import Any, ClassVar

import httpx

from connectors.base import (
    Capability,
    ChangeBatch,
    Connector,
    ConnectorSettings,
    Cursor,
)
from connectors.http import ApiClient, HttpLimits, RequestStats, is_loopback, network_transport
from connectors.pipedrive._api import PIPEDRIVE, PIPEDRIVE_ERRORS, PipedriveApi
from connectors.pipedrive._budget import PipedriveLimits, TokenMeter
from connectors.pipedrive._codec import Codec, item_id
from connectors.pipedrive._fields import FieldCatalog, field_of
from connectors.pipedrive._reads import PATHS, Reader
from connectors.pipedrive._settings import PipedriveSettings
from connectors.pipedrive._setup import FieldSetup
from connectors.pipedrive._slots import Binding, Group, bind
from connectors.setup import CustomField
from sync.errors import (
    AuthenticationError,
    ConnectorError,
    NotFound,
    TransportSecurityError,
)
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind, Record, Scalar

__all__ = ["PipedriveConnector"]

_FIELD_PATHS: Mapping[Group, str] = {
    Group.ORGANIZATION: "/api/v2/organizationFields",
    Group.PERSON: "/api/v2/personFields",
}


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
    uses_transport = True

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
        self._reader = Reader(self._api, self.limits)

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
        groups = (Group.ORGANIZATION, Group.PERSON)
        return self._setup.listed([self._binding(group) for group in groups], self._layout)

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        created = await self._setup.create(missing)
        await self._load_catalogs()
        return created

    # -- reading -----------------------------------------------------------------------

    def read(self, entity: EntityKind, since: Cursor | None = None) -> AsyncIterator[ChangeBatch]:
        return self._reader.read(self._codec(entity), self._layout, entity, since)

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
            data = await self._api.call("GET", f"{PATHS[Group.of(entity)]}/{record_id}")
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
        data = await self._api.call("POST", PATHS[Group.of(entity)], body=body)
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
        data = await self._api.call(method, f"{PATHS[group]}/{record_id}", body=body)
        return self._written(codec, entity, data)

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        if not record_id.isdigit():
            raise NotFound(f"{entity} {record_id} not found in pipedrive", status=404)
        await self._api.call("DELETE", f"{PATHS[Group.of(entity)]}/{record_id}")

    def _written(self, codec: Codec, entity: EntityKind, data: object) -> Record:
        if not isinstance(data, Mapping) or item_id(data) is None:
            raise ConnectorError(f"Pipedrive answered a {entity} write without the record")
        record, errors = codec.record(entity, data)
        if record is None:
            raise ConnectorError("; ".join(str(error) for error in errors))
        return record
