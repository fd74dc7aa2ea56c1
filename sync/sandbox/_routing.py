"""The route table: Flowtly's paths, their methods, and Symfony-style matching."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from sync.sandbox import _handlers as h
from sync.sandbox._resources import Resource

__all__ = ["ROUTES", "Body", "Endpoint", "Match", "Route", "match"]


class Body(Enum):
    """Whether an operation reads a JSON request body."""

    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A handler and how its request body is read."""

    handler: h.Handler
    body: Body = Body.NONE


@dataclass(frozen=True, slots=True)
class Route:
    """A path pattern (``{id}`` = one segment) and its operations by method."""

    pattern: re.Pattern[str]
    operations: Mapping[str, Endpoint]


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of routing: an operation, or the methods the path allows (405)."""

    operation: Endpoint | None
    params: Mapping[str, str]
    allowed: Sequence[str]


def _route(template: str, **operations: Endpoint) -> Route:
    regex = re.escape(template).replace(r"\{id\}", "(?P<id>[^/]+)")
    return Route(re.compile(f"^{regex}$"), operations)


def _crud(resource: Resource, *, post: bool, delete: bool) -> list[Route]:
    base = f"/{resource.value}"
    collection = {"GET": Endpoint(h.list_collection(resource))}
    if post:
        collection["POST"] = Endpoint(h.create(resource), Body.REQUIRED)
    item = {"GET": Endpoint(h.get_item(resource))}
    if resource in h.PATCHABLE:
        item["PATCH"] = Endpoint(h.patch(resource), Body.REQUIRED)
    if delete:
        item["DELETE"] = Endpoint(h.delete(resource))
    return [_route(base, **collection), _route(f"{base}/{{id}}", **item)]


def _read_only(resource: Resource) -> list[Route]:
    return _crud(resource, post=False, delete=False)


_CP = Resource.COUNTERPARTIES
ROUTES: tuple[Route, ...] = (
    _route("/clients/search", GET=Endpoint(h.client_search)),
    _route("/clients/{id}/documents", GET=Endpoint(h.client_documents)),
    *_crud(Resource.CLIENTS, post=True, delete=False),
    *_crud(Resource.CONTACTS, post=True, delete=True),
    *_crud(Resource.NOTES, post=True, delete=True),
    _route("/counterparties/enrich-branding-ai", POST=Endpoint(h.enrich_batch, Body.REQUIRED)),
    _route("/counterparties/{id}/merge", POST=Endpoint(h.merge, Body.REQUIRED)),
    _route("/counterparties/{id}/enrich-branding-ai", POST=Endpoint(h.enrich_one, Body.OPTIONAL)),
    *_crud(_CP, post=True, delete=True),
    _route("/counterparty", POST=Endpoint(h.create(_CP), Body.REQUIRED)),
    _route("/counterparty/{id}", PATCH=Endpoint(h.patch(_CP), Body.REQUIRED)),
    *_crud(Resource.WEBHOOKS, post=True, delete=True),
    *_read_only(Resource.WEBHOOK_LOGS),
    *_read_only(Resource.COUNTRIES),
    *_read_only(Resource.CURRENCIES),
    _route("/employees/me", GET=Endpoint(h.employee_me)),
    *_read_only(Resource.EMPLOYEES),
    # Only the item: Flowtly's GET /organizations answers configuration values, not a list.
    _route("/organizations/{id}", GET=Endpoint(h.get_item(Resource.ORGANIZATIONS))),
)
"""Every route, in Symfony's matching order (static paths before ``{id}`` ones)."""


def match(path: str, method: str) -> Match | None:
    """The first route whose path and method match; else the allowed methods; else None."""
    wanted = "GET" if method == "HEAD" else method
    allowed: list[str] = []
    for route in ROUTES:
        found = route.pattern.match(path)
        if found is None:
            continue
        operation = route.operations.get(wanted)
        if operation is not None:
            return Match(operation, found.groupdict(), ())
        allowed.extend(m for m in route.operations if m not in allowed)
    return Match(None, {}, allowed) if allowed else None
