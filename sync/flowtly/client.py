"""The async HTTP client every part of flowtly-sync uses to talk to Flowtly.

It speaks API Platform's JSON-LD dialect (Hydra collections, merge-patch updates, IRIs)
over the HTTP kit's `ApiClient`, which maps failures to :mod:`sync.errors`, retries what
is safe to retry and keeps a run within the API's budget. Raw vendor JSON
(:data:`JsonObject`) stops at the callers of this module (the resource mappers).
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, NamedTuple, TypeAlias, cast

import httpx
from pydantic import SecretStr

from connectors.http import (
    ApiClient,
    HttpLimits,
    Page,
    Paginator,
    QueryParams,
    RequestStats,
    RetryScope,
    Side,
)
from connectors.listing import ListingAudit
from sync import __version__
from sync.errors import FlowtlyError
from sync.flowtly._http_errors import FLOWTLY_ERRORS
from sync.settings_base import DEFAULT_CONCURRENCY

__all__ = [
    "FLOWTLY",
    "PAGE_SIZE_PARAM",
    "FlowtlyClient",
    "JsonObject",
    "QueryParams",
    "RequestStats",
]

JsonObject: TypeAlias = dict[str, Any]
"""A raw Flowtly JSON object; only the client and the resource mappers handle it."""

LD_JSON: Final = "application/ld+json"
MERGE_PATCH_JSON: Final = "application/merge-patch+json"
PAGE_SIZE_PARAM: Final = "itemsPerPage"
PAGE_PARAM: Final = "page"

FLOWTLY: Final = Side(
    "flowtly",
    "Flowtly",
    "flowtly",
    protocol_error=FlowtlyError,
    credentials="the token, [flowtly] token or FLOWTLY_SYNC_FLOWTLY__TOKEN",
)
"""The Flowtly side as the HTTP kit names it: in errors, messages and setting keys."""


class _Collection(NamedTuple):
    """One answer of a collection listing, as `FlowtlyClient.iterate` reads it."""

    members: list[JsonObject]
    next: str | None
    last: str | None
    """``view.last``: the link to the last page, absent with partial pagination."""
    total: int | None
    """``totalItems``: the size of the whole collection, absent with partial pagination."""
    problem: str | None
    """Why the answer is not a collection page, though it parsed (``{}``, no members)."""


def _link_of(view: Any, name: str, where: str) -> str | None:
    if not isinstance(view, dict):
        return None
    found = view.get(name) or view.get(f"hydra:{name}")
    if found is not None and not isinstance(found, str):
        raise FlowtlyError(f"GET {where}: the {name} link is not a string")
    return found or None


def _members(body: Any, where: str) -> _Collection:
    """Members, ``next`` and ``last`` links and stated total of a Hydra collection
    (prefixed or not) or a bare list.

    An object without ``member`` is no collection page: it has no members, and `problem`
    says so, because taking it for an empty page would make the records it should have
    listed look deleted.
    """
    problem = None
    total: Any = None
    view: Any = None
    if isinstance(body, list):
        raw: Any = body
    elif isinstance(body, dict):
        key = "member" if "member" in body else "hydra:member"
        if key not in body:
            problem = "answered {} instead of a collection" if not body else "had no members"
        raw = body.get(key, [])
        view = body.get("view") or body.get("hydra:view")
        total = body.get("totalItems", body.get("hydra:totalItems"))
    else:
        raise FlowtlyError(f"GET {where}: expected a collection, got {type(body).__name__}")
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise FlowtlyError(f"GET {where}: collection members are not JSON objects")
    if total is not None and (type(total) is not int or total < 0):
        raise FlowtlyError(f"GET {where}: totalItems is not a count: {total!r}")
    return _Collection(
        raw, _link_of(view, "next", where), _link_of(view, "last", where), total, problem
    )


def _page_number(link: str | None) -> int | None:
    """The ``page`` a ``view.last`` link names, or None when it names none."""
    if link is None:
        return None
    number = httpx.URL(link).params.get(PAGE_PARAM, "")
    return int(number) if number.isascii() and number.isdigit() else None


class FlowtlyClient(ApiClient):
    """Async client for Flowtly's REST API (API Platform, JSON-LD).

    ``base_url`` may carry a path prefix (``https://host/api``): relative paths are joined
    under it, while ``next`` links and ``@id`` IRIs (which already include the prefix) are
    resolved against the origin. Paths passed to :meth:`get` that already start with the
    prefix are taken as IRIs, so ``client.get(item["@id"])`` works.

    Plain ``http://`` is refused unless the host is loopback or ``transport`` is given (an
    in-process sandbox). The limits are the HTTP kit's (`HttpLimits`); a Retry-After longer
    than ``max_retry_after`` and a request past its deadline raise
    `sync.errors.DeadlineExceeded`, which stops a run.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr | None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limit: float = 10.0,
        timeout: float = 30.0,
        max_retries: int = 5,
        request_timeout: float = 45.0,
        request_deadline: float = 90.0,
        max_retry_after: float = 300.0,
        max_response_bytes: int = 50_000_000,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: _random.Random | None = None,
    ) -> None:
        secret = (token.get_secret_value() if isinstance(token, SecretStr) else token) or None
        headers = {"Accept": LD_JSON, "User-Agent": f"flowtly-sync/{__version__}"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        super().__init__(
            base_url,
            FLOWTLY,
            FLOWTLY_ERRORS,
            headers=headers,
            secrets=(secret,) if secret else (),
            limits=HttpLimits(
                concurrency=concurrency,
                rate_limit=rate_limit,
                timeout=timeout,
                max_retries=max_retries,
                request_timeout=request_timeout,
                request_deadline=request_deadline,
                max_retry_after=max_retry_after,
                max_response_bytes=max_response_bytes,
            ),
            transport=transport,
            sleep=sleep,
            clock=clock,
            random=random,
        )

    # -- IRIs --------------------------------------------------------------------------

    def iri(self, resource: str, id: str | int) -> str:
        """The IRI of an item, e.g. ``iri("clients", 5)`` -> ``"/clients/5"`` (or ``/api/...``)."""
        return f"{self._prefix}/{resource.strip('/')}/{id}"

    @staticmethod
    def id_from_iri(iri_or_obj: str | Mapping[str, Any]) -> str:
        """The id at the end of an IRI or of an embedded object's ``@id`` (``id`` as fallback).

        ``"/clients/5"`` -> ``"5"``; ``{"@id": "/api/clients/5", ...}`` -> ``"5"``.
        """
        if isinstance(iri_or_obj, Mapping):
            ref = iri_or_obj.get("@id")
            if ref is None and iri_or_obj.get("id") is not None:
                return str(iri_or_obj["id"])
            if not isinstance(ref, str):
                raise ValueError("object has neither an '@id' IRI nor an 'id'")
            iri_or_obj = ref
        last = httpx.URL(iri_or_obj).path.rstrip("/").rsplit("/", 1)[-1]
        if not last:
            raise ValueError(f"not an item IRI: {iri_or_obj!r}")
        return last

    # -- requests ----------------------------------------------------------------------

    async def get(self, path: str, params: QueryParams | None = None) -> JsonObject:
        """GET one JSON object (an item, or a collection document as is)."""
        response = await self._request("GET", self._url(path, params), RetryScope.IDEMPOTENT)
        return self._object(response, "GET")

    async def iterate(
        self,
        path: str,
        params: QueryParams | None = None,
        *,
        page_size: int | None = None,
        audit: ListingAudit | None = None,
    ) -> AsyncIterator[JsonObject]:
        """Stream a collection's members in the server's order.

        When the first page links its last one (``view.last``, full pagination), pages
        2..last are fetched concurrently (up to twice the client's concurrency ahead of
        the reader), page N being the first request with ``page=N`` (API Platform's own
        rule for its links); otherwise, and past the last page if it still links a
        ``next``, ``next`` links are followed one page at a time. ``page_size`` is sent as
        ``itemsPerPage``; the server may ignore or clamp it.

        ``audit`` is told of every page before its members are yielded (its size and
        ``totalItems``, or why it is not a collection page: ``{}``, an empty body); the
        caller tells it the members' ids. Audited or not, a listing that runs past the
        pages its ``totalItems`` allows (`ListingAudit.overrun`) or links back to a page
        already read stops with `FlowtlyError`.
        """
        query: dict[str, Any] = dict(params or {})
        if page_size is not None:
            query[PAGE_SIZE_PARAM] = page_size
        first = self._url(path, query)
        unnumbered = first.copy_remove_param(PAGE_PARAM)

        async def fetch(token: str | None) -> Page[str]:
            url = first if token is None else self._url(token)
            response = await self._request("GET", url, RetryScope.IDEMPOTENT)
            return self._page(response, url)

        def page_token(number: int) -> str:
            return str(unnumbered.copy_add_param(PAGE_PARAM, str(number)))

        pages = Paginator(
            FLOWTLY,
            path,
            fetch,
            None,
            total_name="totalItems",
            audit=audit,
            first=str(first),
            page_token=page_token,
            window=2 * self.limits.concurrency,
        )
        async for member in pages.members():
            yield cast(JsonObject, member)

    def _page(self, response: httpx.Response, url: httpx.URL) -> Page[str]:
        body = self._json(response, "GET")
        found = _members(body, url.path)
        following = None if found.next is None else str(self._link(response.url, found.next))
        broken = found.problem
        if not response.content:
            broken = f"answered HTTP {response.status_code} with an empty body"
        return Page(
            found.members,
            next=following,
            total=found.total,
            broken=broken,
            last=_page_number(found.last),
        )

    async def post(self, path: str, body: JsonObject, *, idempotent: bool = False) -> JsonObject:
        """POST a JSON-LD body; returns the created item (``{}`` for an empty answer).

        Retried after any retryable failure only if ``idempotent``; otherwise only when the
        server provably did not act on it (429, connection refused).
        """
        scope = RetryScope.IDEMPOTENT if idempotent else RetryScope.UNSENT_ONLY
        response = await self._request(
            "POST", self._url(path), scope, body=body, content_type=LD_JSON
        )
        return self._object(response, "POST")

    async def patch(self, path: str, body: JsonObject) -> JsonObject:
        """JSON Merge Patch (RFC 7386): absent keys untouched, ``None`` clears a field."""
        response = await self._request(
            "PATCH",
            self._url(path),
            RetryScope.IDEMPOTENT,
            body=body,
            content_type=MERGE_PATCH_JSON,
        )
        return self._object(response, "PATCH")

    async def delete(self, path: str) -> None:
        """DELETE an item. A 404 after an attempt that may have landed counts as done."""
        await self._request("DELETE", self._url(path), RetryScope.IDEMPOTENT)
