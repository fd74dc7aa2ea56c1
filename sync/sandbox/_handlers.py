"""Operation handlers: generic CRUD plus Flowtly's custom operations."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from starlette.responses import Response

from sync.flowtly import assumptions as a
from sync.sandbox._date_filter import updated_at_filters
from sync.sandbox._errors import Problem
from sync.sandbox._hydra import collection_document, ld_response, paging, search_template
from sync.sandbox._json import JsonObject, JsonValue, type_name
from sync.sandbox._query import QueryTree
from sync.sandbox._resources import SPECS, Field, Kind, Resource
from sync.sandbox._state import Sandbox
from sync.sandbox._store import Where, name_or_tax_id, parent_is

__all__ = [
    "PATCHABLE",
    "Call",
    "Handler",
    "client_documents",
    "client_search",
    "create",
    "delete",
    "employee_me",
    "enrich_batch",
    "enrich_one",
    "get_item",
    "list_collection",
    "merge",
    "patch",
]

PATCHABLE = frozenset(
    {
        Resource.CLIENTS,
        Resource.CONTACTS,
        Resource.NOTES,
        Resource.COUNTERPARTIES,
        Resource.WEBHOOKS,
    }
)
_FILTERS: Mapping[Resource, str] = {Resource.CONTACTS: "client", Resource.NOTES: "client"}
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Call:
    """One routed request, reduced to what handlers need."""

    sandbox: Sandbox
    method: str
    path: str
    query: QueryTree
    params: Mapping[str, str]
    body: JsonObject | None
    token: str
    docs_url: str


Handler = Callable[[Call], Response]


def _item(call: Call, resource: Resource, record: JsonObject, status: int = 200) -> Response:
    doc = call.sandbox.render(resource, record, context=True)
    iri = str(doc["@id"])
    headers: dict[str, str] = {}
    if resource in PATCHABLE:
        headers["Accept-Patch"] = "application/merge-patch+json"
    if status == 201:
        headers["Location"] = iri
    if call.method not in ("GET", "HEAD"):
        headers["Content-Location"] = f"{iri}.jsonld"
    return ld_response(
        doc, status=status, method=call.method, docs_url=call.docs_url, headers=headers
    )


def _collection(
    call: Call,
    resource: Resource,
    collection_id: str,
    wheres: Sequence[Where] = (),
    search: JsonObject | None = None,
    context_name: str | None = None,
) -> Response:
    pages = paging(call.query)
    sandbox = call.sandbox
    found = sandbox.page(
        resource, pages.offset, pages.limit, wheres, descending=_id_descending(call.query)
    )
    doc = collection_document(
        context=sandbox.context(context_name or SPECS[resource].short_name),
        collection_id=collection_id,
        path=call.path,
        query=call.query,
        members=sandbox.render_many(resource, found.items),
        total=found.total,
        pages=pages,
        search=search,
    )
    return ld_response(doc, method=call.method, docs_url=call.docs_url)


def _id_descending(query: QueryTree) -> bool:
    """OrderFilter on ``id``: ``order[id]=desc`` (any case) reverses the default ascending
    order; any other value is ignored, as API Platform ignores it."""
    order = query.get(a.ORDER_PARAM)
    direction = order.get("id") if isinstance(order, dict) else None
    return isinstance(direction, str) and direction.lower() == "desc"


def _parent_filter(value: str | QueryTree) -> Where:
    # SearchFilter on a relation takes an IRI or a bare id; an unusable value matches nothing.
    tail = value.rsplit("/", 1)[-1] if isinstance(value, str) else ""
    return parent_is(int(tail) if tail.isascii() and tail.isdigit() else -1)


def list_collection(resource: Resource) -> Handler:
    """GET on a collection route, with the ``client`` filter where Flowtly would have one
    and ``updatedAt[...]`` where its items carry that date."""

    def handle(call: Call) -> Response:
        filtered = _FILTERS.get(resource)
        wheres: list[Where] = updated_at_filters(resource, call.query)
        search = None
        if filtered is not None:
            if filtered in call.query:
                wheres.append(_parent_filter(call.query[filtered]))
            search = search_template(call.path, [(filtered, filtered)])
        collection_id = call.sandbox.collection_iri(resource)
        return _collection(call, resource, collection_id, wheres, search)

    return handle


def get_item(resource: Resource) -> Handler:
    """GET on an item route."""

    def handle(call: Call) -> Response:
        _seq, _key, record = call.sandbox.require(resource, call.params["id"])
        return _item(call, resource, record)

    return handle


def create(resource: Resource) -> Handler:
    """POST on a collection route: 201 with Location and Content-Location."""

    def handle(call: Call) -> Response:
        record = call.sandbox.create(resource, call.body or {})
        return _item(call, resource, record, 201)

    return handle


def patch(resource: Resource) -> Handler:
    """PATCH (merge-patch) on an item route."""

    def handle(call: Call) -> Response:
        record = call.sandbox.update(resource, call.params["id"], call.body or {})
        return _item(call, resource, record)

    return handle


def delete(resource: Resource) -> Handler:
    """DELETE on an item route: 204, empty body."""

    def handle(call: Call) -> Response:
        call.sandbox.remove(resource, call.params["id"])
        return Response(status_code=204)

    return handle


def client_search(call: Call) -> Response:
    """``GET /clients/search?query=X``: name contains X or VAT/TIN equals X (>= 3 chars)."""
    raw = call.query.get(a.CLIENT_SEARCH_PARAM)
    term = raw.strip() if isinstance(raw, str) else ""
    if len(term) < 3:
        raise Problem(
            400, f'The "{a.CLIENT_SEARCH_PARAM}" parameter must be at least 3 characters long.'
        )
    collection_id = f"{call.sandbox.collection_iri(Resource.CLIENTS)}/search"
    return _collection(call, Resource.CLIENTS, collection_id, [name_or_tax_id(term)])


def client_documents(call: Call) -> Response:
    """``GET /clients/{id}/documents``: the client's documents as a Hydra collection."""
    sandbox = call.sandbox
    _seq, key, _record = sandbox.require(Resource.CLIENTS, call.params["id"])
    collection_id = f"{sandbox.iri(Resource.CLIENTS, key)}/documents"
    return _collection(call, Resource.DOCUMENTS, collection_id, [parent_is(int(key))])


def employee_me(call: Call) -> Response:
    """``GET /employees/me``: the employee behind the bearer token."""
    record = call.sandbox.me(call.token)
    if record is None:
        raise Problem(404, "Not Found")
    return _item(call, Resource.EMPLOYEES, record)


_SOURCE = Field(a.MERGE_SOURCES_KEY, Kind.IRI, Resource.COUNTERPARTIES)


def _counterparty_iris(call: Call, key: str) -> list[str]:
    body = call.body or {}
    value: JsonValue = body.get(key)
    if not isinstance(value, list):
        raise Problem(
            400, f'The type of the "{key}" attribute must be "array", "{type_name(value)}" given.'
        )
    iris: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise Problem(
                400,
                f'The type of the "{key}" attribute must be "array" (nested document) or '
                f'"string" (IRI), "{type_name(item)}" given.',
            )
        iris.append(call.sandbox.resolve(_SOURCE, item))
    return iris


def merge(call: Call) -> Response:
    """Merge the listed counterparties into ``{id}``: gaps filled from sources, sources deleted."""
    sandbox = call.sandbox
    seq, key, kept = sandbox.require(Resource.COUNTERPARTIES, call.params["id"])
    kept_iri = sandbox.iri(Resource.COUNTERPARTIES, key)
    sources = [iri for iri in _counterparty_iris(call, a.MERGE_SOURCES_KEY) if iri != kept_iri]
    for iri in dict.fromkeys(sources):
        source_key = iri.rsplit("/", 1)[-1]
        source = sandbox.find(Resource.COUNTERPARTIES, source_key)
        if source is None:
            continue
        for name, value in source.items():
            kept.setdefault(name, value)
        sandbox.remove(Resource.COUNTERPARTIES, source_key)
    record = sandbox.replace(Resource.COUNTERPARTIES, seq, key, kept)
    return _item(call, Resource.COUNTERPARTIES, record)


def _enrich(sandbox: Sandbox, raw_key: str) -> JsonObject:
    seq, key, record = sandbox.require(Resource.COUNTERPARTIES, raw_key)
    name = record.get("displayName") or record.get("name") or f"counterparty-{key}"
    slug = _SLUG.sub("-", str(name).casefold()).strip("-") or f"counterparty-{key}"
    record.setdefault("logoUrl", f"https://logos.example.com/{slug}.png")
    record.setdefault("corporateWebsiteUrl", f"https://www.{slug}.example.com")
    return sandbox.replace(Resource.COUNTERPARTIES, seq, key, record)


def enrich_one(call: Call) -> Response:
    """``POST /counterparties/{id}/enrich-branding-ai``: 202; enrichment applied at once."""
    record = _enrich(call.sandbox, call.params["id"])
    return _item(call, Resource.COUNTERPARTIES, record, 202)


def enrich_batch(call: Call) -> Response:
    """``POST /counterparties/enrich-branding-ai``: 202 with the enriched counterparties."""
    sandbox = call.sandbox
    iris = _counterparty_iris(call, a.ENRICH_BATCH_KEY)
    records = [_enrich(sandbox, iri.rsplit("/", 1)[-1]) for iri in dict.fromkeys(iris)]
    doc: JsonObject = {
        "@context": sandbox.context("Counterparty"),
        "@id": sandbox.collection_iri(Resource.COUNTERPARTIES),
        "@type": "Collection",
        "totalItems": len(records),
        "member": list(sandbox.render_many(Resource.COUNTERPARTIES, records)),
    }
    return ld_response(doc, status=202, method=call.method, docs_url=call.docs_url)
