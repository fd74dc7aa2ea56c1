"""The Flowtly side of a sync: the `Connector` protocol over `FlowtlyClient`.

Reads are complete listings, streamed in batches; contacts come from ``/client-contacts``
rather than from the clients that embed them, which is simpler and complete. With
``[flowtly] incremental``, contacts and notes (whose items carry ``updatedAt``) are read
from a cursor instead: only what changed since it (see `FlowtlySide.read`).

Writes are single requests: POST to create, a JSON Merge Patch with only the changed
fields to update, DELETE where Flowtly has one. Clients have no DELETE: they are archived
through their status (`archive_status`).

Flowtly's refusals (400/422) surface as `sync.errors.ValidationFailed`, which the engine
records as a rejected record; a canonical code Flowtly does not know (a currency missing
from the account) is refused the same way, before any request is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, Self

import httpx

from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from connectors.http import RequestStats
from connectors.listing import ListingAudit
from sync.errors import (
    FlowtlyError,
    MethodNotAllowed,
    NotFound,
    RecordError,
    ValidationFailed,
    Violation,
)
from sync.flowtly.assumptions import (
    ARCHIVED_CLIENT_STATUS,
    CLIENT_SEARCH_PARAM,
    COUNTERPARTY_CREATE_PATH,
    EMPLOYEE_ORGANIZATION_FIELD,
    ENRICH_BATCH_KEY,
    ID_ORDER_PARAM,
    MAX_ITEMS_PER_PAGE,
    MERGE_SOURCES_KEY,
    UPDATED_AFTER_PARAM,
    UPDATED_AT,
    UPDATED_AT_COLLECTIONS,
)
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.documents import ClientDocument, parse_document
from sync.flowtly.refs import Refs, UnknownReference, id_of
from sync.flowtly.resources import Defaults, fields_of, item_id, to_payload, to_record
from sync.flowtly.settings import FlowtlyConfig, FlowtlyDefaults
from sync.flowtly.stamps import aware, filter_value, later
from sync.model import SCHEMAS, EntityKind, Record, Scalar, Side
from sync.normalize import NormalizationError

__all__ = ["BATCH_SIZE", "FlowtlySide", "client_of", "defaults_of"]

BATCH_SIZE: Final = 500
"""Records per `ChangeBatch` of a listing."""

_ALL: Final = frozenset(EntityKind)
_NEEDS_REFS: Final = frozenset({EntityKind.CLIENT, EntityKind.COUNTERPARTY})


@dataclass(frozen=True, slots=True)
class _Routes:
    """Where an entity lives on Flowtly's API."""

    collection: str
    create: str
    patch: str
    """Prefix of the merge-patch route (``/counterparty`` for counterparties)."""
    deletable: bool


_ROUTES: Final[Mapping[EntityKind, _Routes]] = {
    EntityKind.CLIENT: _Routes("/clients", "/clients", "/clients", deletable=False),
    EntityKind.CONTACT: _Routes(
        "/client-contacts", "/client-contacts", "/client-contacts", deletable=True
    ),
    EntityKind.NOTE: _Routes("/client-notes", "/client-notes", "/client-notes", deletable=True),
    EntityKind.COUNTERPARTY: _Routes(
        "/counterparties", COUNTERPARTY_CREATE_PATH, COUNTERPARTY_CREATE_PATH, deletable=True
    ),
}


class FlowtlySide(Connector):
    """Clients, contacts, notes and counterparties of one Flowtly account.

    ``defaults`` fill Flowtly-required fields when creating records that lack them
    (a note without an author is written by the employee behind the token unless
    ``defaults.note_author`` names one). ``entities`` limits what this side syncs.
    Registered as the connector ``flowtly``: `from_settings` builds it, with its own
    client, from the ``[flowtly]`` table (`sync.config.FlowtlyConfig`).

    With ``authors_by_email`` a note's canonical ``author`` is its employee's e-mail (the
    id when the employee has none), so a CRM that names authors by e-mail compares equal
    and a Flowtly-side edit never rewrites the CRM's author; writes accept either form.

    With an ``incremental_overlap``, entities whose collection filters by ``updatedAt``
    are read incrementally (`Capability.INCREMENTAL`), each read starting that long
    before its cursor; without one, every read is a complete listing.
    """

    name: ClassVar[str] = "flowtly"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.READ, Capability.WRITE, Capability.DELETE}
    )
    settings_model: ClassVar[type[ConnectorSettings]] = FlowtlyConfig

    def __init__(
        self,
        client: FlowtlyClient,
        defaults: Defaults,
        *,
        entities: frozenset[EntityKind] = _ALL,
        refs: Refs | None = None,
        authors_by_email: bool = False,
        incremental_overlap: timedelta | None = None,
    ) -> None:
        unknown = entities - _ALL
        if unknown:
            raise ValueError(f"not entity kinds: {sorted(unknown)}")
        self._client = client
        self._defaults = defaults
        self._entities = frozenset(EntityKind(entity) for entity in entities)
        self._refs = refs if refs is not None else Refs(client)
        self._authors_by_email = authors_by_email
        self._overlap = incremental_overlap
        self._owns_client = False

    @classmethod
    def from_settings(
        cls, settings: ConnectorSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> Self:
        """The Flowtly side of ``[flowtly]``, over a client of its own (closed with it).

        See `over` for what it compares and fills in.
        """
        if not isinstance(settings, FlowtlyConfig):
            raise TypeError(f"expected FlowtlyConfig, got {type(settings).__name__}")
        side = cls.over(client_of(settings, transport=transport), settings)
        side._owns_client = True
        return side

    @classmethod
    def over(cls, client: FlowtlyClient, settings: FlowtlyConfig) -> Self:
        """The side of ``[flowtly]`` over ``client`` (the caller's, not closed with it):
        its defaults fill required fields, note authors are compared by e-mail, the form
        a CRM names people in, and ``incremental`` reads start ``incremental_overlap``
        before their cursor."""
        return cls(
            client,
            defaults_of(settings.defaults),
            authors_by_email=True,
            incremental_overlap=(
                settings.incremental_overlap_delta if settings.incremental else None
            ),
        )

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def request_stats(self) -> RequestStats:
        return self._client.stats

    @property
    def refs(self) -> Refs:
        """The reference tables of this side (loaded on first need)."""
        return self._refs

    def entities(self) -> frozenset[EntityKind]:
        """The entity kinds this side syncs."""
        return self._entities

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical fields Flowtly carries for ``entity``."""
        return fields_of(entity)

    def capabilities_for(self, entity: EntityKind) -> frozenset[Capability]:
        """`Capability.INCREMENTAL` too for what this side reads from a cursor."""
        if self._incremental(entity):
            return self.capabilities | {Capability.INCREMENTAL}
        return self.capabilities

    def _incremental(self, entity: EntityKind) -> bool:
        return self._overlap is not None and _ROUTES[entity].collection in UPDATED_AT_COLLECTIONS

    def can_delete(self, entity: EntityKind) -> bool:
        """Contacts, notes and counterparties can be deleted; clients only archived."""
        return _ROUTES[entity].deletable

    def archive_status(self, entity: EntityKind) -> str | None:
        """The client status that stands for a deleted client."""
        return ARCHIVED_CLIENT_STATUS if entity is EntityKind.CLIENT else None

    def describe(self) -> str:
        """``flowtly:`` and the API's base URL (never the token)."""
        # The client exposes its (credential-free) base URL as ``base_url`` when it has one;
        # its repr names the same URL and is guaranteed token-free.
        base_url = getattr(self._client, "base_url", None)
        return f"{self.name}:{base_url if isinstance(base_url, str) else repr(self._client)}"

    async def identity(self) -> str:
        """``flowtly:<host><organization IRI>``: the account behind the token, and where.

        The host tells deployments apart whose organization ids might coincide; scheme and
        port are left out, so a sandbox restarted on another port stays the same account.
        Without an organization in ``/employees/me`` the employee's own IRI stands in:
        stricter (another token of the same account reads as another identity), never laxer.
        """
        me = await self._client.get("/employees/me")
        organization = me.get(EMPLOYEE_ORGANIZATION_FIELD)
        iri = _as_iri(organization, "organizations", self._client.iri) or _as_iri(
            me, "employees", self._client.iri
        )
        if iri is None:
            raise FlowtlyError(
                "GET /employees/me names neither an organization nor an employee: cannot "
                "tell which Flowtly account the token belongs to",
                method="GET",
                url="/employees/me",
            )
        return f"{self.name}:{httpx.URL(self._client.base_url).host}{httpx.URL(iri).path}"

    def _routes(self, entity: EntityKind) -> _Routes:
        if entity not in self._entities:
            raise ValueError(f"this Flowtly side does not sync {entity} records")
        return _ROUTES[entity]

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """``entity`` in batches of up to `BATCH_SIZE` items: all of it, or what changed.

        When ``entity`` is read incrementally (see the class docstring), ``since`` lists
        only items updated at or after its time less the overlap, and every read's last
        batch carries the cursor of the next: the latest ``updatedAt`` Flowtly stamped on
        an item seen (its clock, never ours), and never earlier than ``since``. Otherwise
        ``since`` is ignored: a complete listing is a superset of any increment.

        Items that do not map are in ``rejected`` (and their ids in ``present_ids``, so they
        never look deleted). A listing that cannot be trusted to be whole (members without
        an id, repeated ids, a page that is no collection, a count other than
        ``totalItems``) says why in the last batch's ``incomplete``; of a repeated id, the
        first copy is kept.
        """
        routes = self._routes(entity)
        if entity in _NEEDS_REFS:
            await self._refs.load()
        refs = self._refs
        shown = self._authors_by_email and entity is EntityKind.NOTE
        incremental = self._incremental(entity)
        params: dict[str, str] = {ID_ORDER_PARAM: "asc"}
        latest: datetime | None = None
        if incremental and since is not None and since.timestamp is not None:
            latest = aware(since.timestamp)
            assert self._overlap is not None, "an incremental entity has an overlap"
            params[UPDATED_AFTER_PARAM] = filter_value(latest - self._overlap)
        audit = ListingAudit(routes.collection, total_name="totalItems")
        records: list[Record] = []
        rejected: list[RecordError] = []
        present: list[str] = []
        sent_any = False
        async for item in self._client.iterate(
            routes.collection, params, page_size=MAX_ITEMS_PER_PAGE, audit=audit
        ):
            found = item_id(item)
            if not audit.member(found) and found is not None:
                continue  # listed on an earlier page too (the collection shifted meanwhile)
            if incremental:
                latest = later(latest, item.get(UPDATED_AT))
            try:
                record = to_record(entity, item, refs)
                if shown:
                    record = await self._shown(record)
                records.append(record)
            except (NormalizationError, UnknownReference) as error:
                rejected.append(_rejection(entity, item, error))
                if found is not None:
                    present.append(found)
            if len(records) + len(rejected) >= BATCH_SIZE:
                yield ChangeBatch(entity, records, rejected=rejected, present_ids=present)
                sent_any = True
                records, rejected, present = [], [], []
        incomplete = audit.verdict()
        cursor = None if latest is None else Cursor(latest)
        if records or rejected or incomplete or cursor or not sent_any:
            yield ChangeBatch(
                entity,
                records,
                rejected=rejected,
                present_ids=present,
                cursor=cursor,
                incomplete=incomplete,
            )

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """POST a new record; returns it as Flowtly stored it (with its new id)."""
        routes = self._routes(entity)
        values = dict(values)
        if entity is EntityKind.NOTE:
            values["author"] = await self._author(values.get("author"))
        body = await self._payload(entity, values, create=True, method="POST", path=routes.create)
        item = await self._client.post(routes.create, body)
        return await self._shown(self._mapped(entity, item, "POST", routes.create))

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Merge-patch the changed fields (``None`` clears); returns the updated record.

        When none of ``changes`` is a field Flowtly carries, nothing is sent and the
        record is read back as it is.
        """
        routes = self._routes(entity)
        path = f"{routes.patch}/{record_id}"
        if entity is EntityKind.NOTE and "author" in changes:
            # Flowtly requires an employee: a cleared author falls back like a new note's.
            changes = {**changes, "author": await self._author(changes["author"])}
        body = await self._payload(entity, changes, create=False, method="PATCH", path=path)
        if body:
            item = await self._client.patch(path, body)
            return await self._shown(self._mapped(entity, item, "PATCH", path))
        path = f"{routes.collection}/{record_id}"
        return await self._shown(self._mapped(entity, await self._client.get(path), "GET", path))

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """DELETE a contact, note or counterparty; one already gone counts as deleted.

        Clients cannot be deleted on Flowtly: raises `MethodNotAllowed` without sending.
        """
        routes = self._routes(entity)
        path = f"{routes.collection}/{record_id}"
        if not routes.deletable:
            raise MethodNotAllowed(
                f"DELETE {path}: Flowtly cannot delete {entity} records; archive them "
                f"with status {ARCHIVED_CLIENT_STATUS!r}",
                method="DELETE",
                url=path,
            )
        try:
            await self._client.delete(path)
        except NotFound:
            return

    # -- finance operations --------------------------------------------------------------

    async def fetch(self, entity: EntityKind, record_id: str) -> Record | None:
        """One record read live, or None when Flowtly has no such record."""
        path = f"{self._routes(entity).collection}/{record_id}"
        if entity in _NEEDS_REFS:
            await self._refs.load()
        try:
            item = await self._client.get(path)
        except NotFound:
            return None
        return await self._shown(self._mapped(entity, item, "GET", path))

    async def search_clients(self, term: str) -> list[Record]:
        """Clients ``GET /clients/search`` finds for ``term`` (name part, or VAT/TIN).

        Terms shorter than 3 characters are refused by Flowtly, so they find nothing here
        without a request. Items that do not map to records are skipped.
        """
        text = term.strip()
        if len(text) < 3:
            return []
        await self._refs.load()
        found: list[Record] = []
        params = {CLIENT_SEARCH_PARAM: text}
        async for item in self._client.iterate(
            "/clients/search", params, page_size=MAX_ITEMS_PER_PAGE
        ):
            try:
                found.append(to_record(EntityKind.CLIENT, item, self._refs))
            except (NormalizationError, UnknownReference):
                continue
        return found

    async def client_documents(self, client_id: str) -> list[ClientDocument]:
        """Every document of client ``client_id`` (``GET /clients/{id}/documents``)."""
        await self._refs.load()
        path = f"/clients/{client_id}/documents"
        return [
            parse_document(item, self._refs)
            async for item in self._client.iterate(path, page_size=MAX_ITEMS_PER_PAGE)
        ]

    async def merge_counterparties(self, keep_id: str, other_ids: Sequence[str]) -> Record:
        """Merge ``other_ids`` into ``keep_id`` (Flowtly deletes them); the kept record."""
        path = f"/counterparties/{keep_id}/merge"
        iris = [self._client.iri("counterparties", other) for other in other_ids]
        await self._refs.load()
        item = await self._client.post(path, {MERGE_SOURCES_KEY: iris})
        return self._mapped(EntityKind.COUNTERPARTY, item, "POST", path)

    async def enrich_branding(self, ids: Sequence[str]) -> None:
        """Queue branding enrichment: one request for one id, the batch route for more."""
        if not ids:
            return
        if len(ids) == 1:
            await self._client.post(
                f"/counterparties/{ids[0]}/enrich-branding-ai", {}, idempotent=True
            )
            return
        iris = [self._client.iri("counterparties", one) for one in ids]
        await self._client.post(
            "/counterparties/enrich-branding-ai", {ENRICH_BATCH_KEY: iris}, idempotent=True
        )

    async def _shown(self, record: Record) -> Record:
        """``record`` with a note's author as configured (see the class docstring)."""
        if not self._authors_by_email or record.entity is not EntityKind.NOTE:
            return record
        author = record.get("author")
        if author is None:
            return record
        try:
            employee = await self._refs.employee(str(id_of(author)))
        except UnknownReference:
            return record
        return record.replace(author=employee.email) if employee.email else record

    async def _author(self, author: Scalar) -> str:
        """The employee id a new note is written by: given, configured, or the token's."""
        wanted = author if author is not None else self._defaults.note_author
        if wanted is None:
            return (await self._refs.me()).id
        text = str(wanted).strip()
        if "@" in text:
            try:
                return (await self._refs.employee_by_email(text)).id
            except UnknownReference as error:
                raise ValidationFailed(
                    f"POST /client-notes: {error}",
                    violations=(Violation("employee", error.reason),),
                    method="POST",
                    url="/client-notes",
                ) from None
        return text

    async def _payload(
        self,
        entity: EntityKind,
        values: Mapping[str, Scalar],
        *,
        create: bool,
        method: str,
        path: str,
    ) -> dict[str, Any]:
        if entity in _NEEDS_REFS:
            await self._refs.load()
        try:
            return to_payload(entity, values, self._refs, create=create, defaults=self._defaults)
        except UnknownReference as error:
            raise ValidationFailed(
                f"{method} {path}: {error}",
                violations=(Violation(error.field, error.reason),),
                method=method,
                url=path,
            ) from None

    def _mapped(
        self, entity: EntityKind, item: Mapping[str, Any], method: str, path: str
    ) -> Record:
        try:
            return to_record(entity, item, self._refs)
        except (NormalizationError, UnknownReference) as error:
            # The write landed; only its answer is unreadable, which is not the record's fault.
            raise FlowtlyError(
                f"{method} {path}: Flowtly's answer does not map back: {error.reason}",
                method=method,
                url=path,
            ) from None


def _as_iri(value: object, resource: str, iri: Callable[[str, str], str]) -> str | None:
    """An IRI, an embedded object's ``@id`` or a bare id of ``resource``, as an IRI."""
    if isinstance(value, Mapping):
        value = value.get("@id") or value.get("id")
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    if not text:
        return None
    return text if "/" in text else iri(resource, text)


def _rejection(
    entity: EntityKind, item: Mapping[str, Any], error: NormalizationError | UnknownReference
) -> RecordError:
    spec = SCHEMAS[entity].get(error.field)
    shown = None if spec is None or spec.sensitive or error.value is None else str(error.value)
    return RecordError(
        entity=entity.value,
        side=Side.FLOWTLY.value,
        record_id=item_id(item) or str(item.get("@id") or "?"),
        reason=error.reason,
        field=error.field,
        value=shown,
    )


def client_of(
    cfg: FlowtlyConfig, *, transport: httpx.AsyncBaseTransport | None = None
) -> FlowtlyClient:
    """A Flowtly client with the limits of ``[flowtly]`` (``cfg``)."""
    return FlowtlyClient(
        cfg.base_url,
        cfg.token,
        concurrency=cfg.concurrency,
        rate_limit=cfg.rate_limit,
        timeout=cfg.timeout,
        max_retries=cfg.max_retries,
        request_timeout=cfg.request_timeout,
        request_deadline=cfg.request_deadline,
        max_retry_after=cfg.max_retry_after,
        max_response_bytes=cfg.max_response_bytes,
        transport=transport,
    )


def defaults_of(cfg: FlowtlyDefaults) -> Defaults:
    """The values ``[flowtly.defaults]`` fills into records that lack a required field."""
    return Defaults(
        currency=cfg.currency,
        status=cfg.status,
        tin_type=cfg.tin_type,
        documents_language=cfg.documents_language,
        contact_type=cfg.contact_type,
        counterparty_type=cfg.counterparty_type,
        note_author=cfg.employee,
    )
