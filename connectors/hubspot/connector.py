"""The HubSpot connector: companies (clients and suppliers), contacts and notes.

Configured in ``[crm]`` with ``type = "hubspot"``, a private app ``token`` and optionally
``base_url``; see docs/connectors/hubspot.md for the default mapping and the behaviour.
Reads come from `connectors.hubspot._reading`, writes go through the batch endpoints
(`connectors.hubspot._writing`), HubSpot's limits are kept by `connectors.hubspot._pacing`
under the HTTP kit's `ApiClient`. Writes reach HubSpot when they are sent, so `commit`
has nothing to do.
"""

from __future__ import annotations

import asyncio
import time
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
from connectors.http import ApiClient, RequestStats, is_loopback, network_transport
from connectors.hubspot._api import BATCH_SIZE, HUBSPOT, HubSpotApi, error_reader
from connectors.hubspot._associations import association_to, move_to_companies
from connectors.hubspot._pacing import Pacing
from connectors.hubspot._properties import ObjectType, PropertyMap, object_type
from connectors.hubspot._reading import Reader
from connectors.hubspot._records import RecordCodec
from connectors.hubspot._settings import HubSpotSettings
from connectors.hubspot._setup import create_properties, listed_fields
from connectors.hubspot._writing import send_in_batches
from connectors.setup import CustomField
from sync.errors import (
    AuthenticationError,
    ConnectorError,
    NotFound,
    TransportSecurityError,
    ValidationFailed,
)
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind, Record, Scalar

__all__ = ["HubSpotConnector"]

NOTE_TIMESTAMP = "hs_timestamp"


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class HubSpotConnector(BatchConnector):
    """A HubSpot portal as the CRM side (see the module docstring)."""

    name = "hubspot"
    write_batch = BATCH_SIZE
    capabilities = frozenset(
        {Capability.READ, Capability.WRITE, Capability.DELETE, Capability.INCREMENTAL}
    )
    settings_model = HubSpotSettings
    uses_transport = True

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        url = httpx.URL(settings.base_url)
        if transport is None and url.scheme == "http" and not is_loopback(url.host):
            raise TransportSecurityError(
                f"refusing plain http:// for HubSpot base URL {settings.base_url!r}: the token "
                "would travel unencrypted; use https:// (http only for loopback hosts)",
                side=HUBSPOT.name,
            )
        limits = settings.http_limits()
        inner = transport or network_transport(httpx.Limits(max_connections=limits.concurrency))
        self.pacing = Pacing(
            inner,
            per_window=settings.rate_limit,
            search_per_second=settings.search_rate,
            clock=clock,
            sleep=sleep,
        )
        token = settings.token.get_secret_value()
        self.client = ApiClient(
            settings.base_url,
            HUBSPOT,
            error_reader,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            secrets=[token],
            limits=limits,
            transport=self.pacing,
            sleep=sleep,
            clock=clock,
        )
        self.api = HubSpotApi(self.client)
        self._present: dict[ObjectType, frozenset[str]] = {}
        self._portal: str | None = None
        self.codec = RecordCodec(PropertyMap.build(FieldLayout()), self._present)
        self.reader = Reader(
            self.api, self.codec, timedelta(seconds=settings.search_overlap), clock
        )

    def use_layout(self, layout: FieldLayout) -> None:
        """Read and write under the user's property names and kind values."""
        self.codec.map = PropertyMap.build(layout)

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Check the token (one call names the portal) and learn which properties exist."""
        try:
            account = await self.api.account()
            portal = account.get("portalId")
            self._portal = str(portal) if portal is not None else None
            await self._load_properties()
        except AuthenticationError as refused:
            await self.client.aclose()
            raise AuthenticationError(
                "HubSpot refused the private app token (crm.token, or FLOWTLY_SYNC_CRM__TOKEN): "
                f"{refused}",
                method=refused.method,
                url=refused.url,
                status=refused.status,
                detail=refused.detail,
                side=HUBSPOT.name,
            ) from None
        except BaseException:
            await self.client.aclose()  # no __aexit__ follows a failed open
            raise

    async def close(self) -> None:
        await self.client.aclose()

    async def _load_properties(self) -> None:
        for kind in ObjectType:
            found = await self.api.properties(kind)
            self._present[kind] = frozenset(str(p.get("name")) for p in found if p.get("name"))

    def describe(self) -> str:
        return f"hubspot:{self.client.base_url}"

    async def identity(self) -> str:
        """The portal (account) id: links belong to the records of one portal."""
        if self._portal is None:
            account = await self.api.account()
            self._portal = str(account.get("portalId"))
        return f"hubspot:portal {self._portal}"

    def request_stats(self) -> RequestStats | None:
        return self.client.stats

    # -- protocol ----------------------------------------------------------------------

    def entities(self) -> frozenset[EntityKind]:
        return frozenset(EntityKind)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The mapped fields whose property the portal has (a missing custom property is
        simply not synced; `crm setup` creates it)."""
        return self.codec.carried(entity)

    def read(self, entity: EntityKind, since: Cursor | None = None) -> AsyncIterator[ChangeBatch]:
        if since is None:
            return self.reader.listing(entity)
        return self.reader.changes(entity, since)

    async def get_many(
        self, entity: EntityKind, ids: Sequence[str], *, limit: asyncio.Semaphore | None = None
    ) -> list[Record]:
        wanted = list(dict.fromkeys(ids))
        found = await self.reader.records(entity, wanted)
        return [found[one] for one in wanted if one in found]

    async def absent(self, entity: EntityKind, ids: Sequence[str]) -> set[str] | None:
        # `get_many` reads by id: an id it does not return is not held (or not readable).
        return await self.absent_by_id(entity, ids)

    # -- batch writes ------------------------------------------------------------------

    async def create_many(
        self,
        entity: EntityKind,
        items: Sequence[Mapping[str, Scalar]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        kind = object_type(entity)
        self._before_write(kind)
        results: dict[str, ItemResult] = {}
        inputs: list[tuple[str, Mapping[str, object]]] = []
        companies: dict[str, str | None] = {}
        for position, values in enumerate(items):
            key = str(position)
            properties, refused = self.codec.properties_of(entity, values)
            if refused:
                results[key] = ItemResult(error=_refusal(entity, refused))
                continue
            if kind is ObjectType.NOTES and not properties.get(NOTE_TIMESTAMP):
                # HubSpot requires one; a note without a date is dated when it is written.
                properties[NOTE_TIMESTAMP] = self.codec.map.write_value(
                    entity, "created_at", datetime.now(UTC).isoformat()
                )
            if kind is ObjectType.COMPANIES:
                label = self.codec.map.kind_value(entity)
                if label is not None:
                    properties[self.codec.map.kind_property] = label
            payload: dict[str, object] = {"properties": properties, "objectWriteTraceId": key}
            company = values.get("company_id") if entity.parent is not None else None
            if company:
                companies[key] = str(company)
                payload["associations"] = [association_to(kind, str(company))]
            inputs.append((key, payload))
        outcome = await send_in_batches(
            "create",
            inputs,
            lambda chunk: self.api.batch_write(kind, "create", chunk),
            lambda item: _text(item.get("objectWriteTraceId")),
        )
        for key, error in outcome.errors.items():
            results[key] = ItemResult(error=error)
        for key, item in outcome.objects.items():
            parsed = self.codec.parse(entity, item, companies.get(key))
            if parsed.record is not None:
                results[key] = ItemResult(record=parsed.record)
            else:
                reasons = "; ".join(error.reason for error in parsed.errors)
                results[key] = ItemResult(
                    error=ConnectorError(f"HubSpot created {parsed.object_id}: {reasons}")
                )
        return [results[str(position)] for position in range(len(items))]

    async def update_many(
        self,
        entity: EntityKind,
        items: Sequence[tuple[str, Mapping[str, Scalar]]],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        kind = object_type(entity)
        self._before_write(kind)
        errors: dict[str, ItemResult] = {}
        inputs: list[tuple[str, Mapping[str, object]]] = []
        moves: dict[str, str | None] = {}
        for record_id, changes in items:
            properties, refused = self.codec.properties_of(entity, changes)
            if refused:
                errors[record_id] = ItemResult(error=_refusal(entity, refused))
                continue
            if entity.parent is not None and "company_id" in changes:
                company = changes["company_id"]
                moves[record_id] = str(company) if company else None
            if properties:
                inputs.append((record_id, {"id": record_id, "properties": properties}))
        outcome = await send_in_batches(
            "update",
            inputs,
            lambda chunk: self.api.batch_write(kind, "update", chunk),
            lambda item: _text(item.get("id")),
        )
        for record_id, error in outcome.errors.items():
            errors[record_id] = ItemResult(error=error)
        if moves:
            await move_to_companies(
                self.api, kind, {k: v for k, v in moves.items() if k not in errors}
            )
        wanted = [record_id for record_id, _ in items if record_id not in errors]
        found = await self.reader.records(entity, wanted)
        results: list[ItemResult] = []
        for record_id, _ in items:
            if record_id in errors:
                results.append(errors[record_id])
            elif record_id in found:
                results.append(ItemResult(record=found[record_id]))
            else:
                results.append(ItemResult(error=_not_found(entity, record_id)))
        return results

    async def delete_many(
        self,
        entity: EntityKind,
        ids: Sequence[str],
        *,
        limit: asyncio.Semaphore | None = None,
    ) -> list[ItemResult]:
        """Archive the records (HubSpot keeps archived objects restorable for 90 days).

        HubSpot's archive answers 204 for ids it does not have, so the ids are read first:
        one that is not there (or is of another entity) is reported NotFound.
        """
        kind = object_type(entity)
        self._before_write(kind)
        existing = await self.reader.records(entity, list(dict.fromkeys(ids)))
        outcome = await send_in_batches(
            "archive",
            [(one, {"id": one}) for one in dict.fromkeys(ids) if one in existing],
            lambda chunk: self.api.batch_write(kind, "archive", chunk),
            lambda item: _text(item.get("id")),
        )
        results: list[ItemResult] = []
        for one in ids:
            if one not in existing:
                results.append(ItemResult(error=_not_found(entity, one)))
            elif one in outcome.errors:
                results.append(ItemResult(error=outcome.errors[one]))
            else:
                results.append(ItemResult())
        return results

    def _before_write(self, kind: ObjectType) -> None:
        if kind is ObjectType.COMPANIES:
            self.reader.forget()  # a kept listing of the companies would miss this write

    # -- setup -------------------------------------------------------------------------

    def creates_fields(self) -> bool:
        return True

    async def custom_fields(self) -> list[CustomField]:
        """The ``flowtly_*`` company properties (and properties the mapping names that the
        portal lacks), each with whether the portal has it."""
        await self._load_properties()
        return listed_fields(self.codec.map, self._present)

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        """Create the ``flowtly`` group where needed, then each missing property."""
        created = await create_properties(self.api, self.codec.map, missing)
        await self._load_properties()
        return created


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _refusal(entity: EntityKind, violations: Sequence[Any]) -> ValidationFailed:
    return ValidationFailed(
        f"{entity} refused before sending to HubSpot: "
        + "; ".join(str(violation) for violation in violations),
        violations=tuple(violations),
        side=HUBSPOT.name,
    )


def _not_found(entity: EntityKind, record_id: str) -> NotFound:
    return NotFound(f"{entity} {record_id} not found in HubSpot", status=404, side=HUBSPOT.name)
