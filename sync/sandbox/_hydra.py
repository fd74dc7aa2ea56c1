"""Hydra collections with API Platform's exact pagination and ``view`` rules, and responses."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starlette.responses import Response

from sync.flowtly import assumptions as a
from sync.sandbox._errors import Problem
from sync.sandbox._json import JsonObject, JsonValue, encode
from sync.sandbox._query import QueryTree, build_query, php_int

__all__ = [
    "LD_TYPE",
    "Paging",
    "collection_document",
    "ld_response",
    "link",
    "paging",
    "search_template",
]

LD_TYPE = "application/ld+json; charset=utf-8"
_PAGE = "page"
_ENABLED = "pagination"
_ITEMS_PER_PAGE = "itemsPerPage"


@dataclass(frozen=True, slots=True)
class Paging:
    """The requested page (1-based) and page size (0..30)."""

    page: int
    limit: int

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.limit

    def last_page(self, total: int) -> int:
        """``ceil(total / limit)``, and 1 for an empty collection or a zero limit."""
        if self.limit <= 0:
            return 1
        return max(1, math.ceil(total / self.limit))


def paging(query: QueryTree) -> Paging:
    """Read ``page``/``itemsPerPage`` with PHP int casts; 400 on the values API Platform rejects."""
    page = php_int(query[_PAGE]) if _PAGE in query else 1
    if page < 1:
        raise Problem(400, "Page should not be less than 1")
    limit = a.DEFAULT_ITEMS_PER_PAGE
    if _ITEMS_PER_PAGE in query:
        limit = php_int(query[_ITEMS_PER_PAGE])
        if limit < 0:
            raise Problem(400, "Limit should not be less than 0")
        limit = min(limit, a.MAX_ITEMS_PER_PAGE)
        if limit == 0 and page > 1:
            raise Problem(400, "Page should not be greater than 1 if limit is equal to 0")
    return Paging(page, limit)


def link(path: str, params: QueryTree, page: int | None) -> str:
    """A view link: the original parameters without ``page``, then ``page=N`` last."""
    query = dict(params)
    query.pop(_PAGE, None)
    if page is not None:
        query[_PAGE] = str(page)
    built = build_query(query)
    return f"{path}?{built}" if built else path


def _view(path: str, query: QueryTree, current: int, last: int) -> JsonObject | None:
    paginated = last != 1
    applied = {k: v for k, v in query.items() if k not in (_PAGE, _ENABLED)}
    if not applied and not paginated:
        return None
    view: JsonObject = {
        "@id": link(path, query, current if paginated else None),
        "@type": "PartialCollectionView",
    }
    if not paginated:
        return view
    view["first"] = link(path, query, 1)
    view["last"] = link(path, query, last)
    if current != 1:
        view["previous"] = link(path, query, current - 1)
    if current < last:
        view["next"] = link(path, query, current + 1)
    return view


def collection_document(
    *,
    context: str,
    collection_id: str,
    path: str,
    query: QueryTree,
    members: Sequence[JsonObject],
    total: int,
    pages: Paging,
    search: JsonObject | None = None,
) -> JsonObject:
    """A Hydra ``Collection`` (unprefixed, API Platform 4) for one page of ``members``."""
    doc: JsonObject = {
        "@context": context,
        "@id": collection_id,
        "@type": "Collection",
        "totalItems": total,
        "member": list(members),
    }
    view = _view(path, query, pages.page, pages.last_page(total))
    if view is not None:
        doc["view"] = view
    if search is not None:
        doc["search"] = search
    return doc


def search_template(path: str, variables: Sequence[tuple[str, str]]) -> JsonObject:
    """A Hydra ``IriTemplate`` describing the collection's filters."""
    names = ",".join(v for v, _p in variables)
    mapping: list[JsonValue] = [
        {"@type": "IriTemplateMapping", "variable": v, "property": p, "required": False}
        for v, p in variables
    ]
    return {
        "@type": "IriTemplate",
        "template": f"{path}{{?{names}}}",
        "variableRepresentation": "BasicRepresentation",
        "mapping": mapping,
    }


def ld_response(
    doc: JsonValue,
    *,
    status: int = 200,
    method: str = "GET",
    docs_url: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON-LD success answer with API Platform's standard headers (ETag on reads)."""
    body = encode(doc)
    all_headers = {
        "Vary": "Accept",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "deny",
        "Link": f'<{docs_url}>; rel="http://www.w3.org/ns/hydra/core#apiDocumentation"',
    }
    if method in ("GET", "HEAD"):
        all_headers["ETag"] = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    all_headers.update(headers or {})
    return Response(body, status, headers=all_headers, media_type=LD_TYPE)
