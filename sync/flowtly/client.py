"""The async HTTP client every part of flowtly-sync uses to talk to Flowtly.

It speaks API Platform's JSON-LD dialect (Hydra collections, merge-patch updates), maps
failures to :mod:`sync.errors`, retries what is safe to retry with jittered backoff, and
keeps a run under the API's budget with a request-rate throttle, a shared cool-down after
429s and a bound on requests in flight. Raw vendor JSON (:data:`JsonObject`) stops at the
callers of this module (the resource mappers).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random as _random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, TypeAlias

import httpx
import structlog
from pydantic import SecretStr

from connectors.listing import ListingAudit
from sync import __version__
from sync.errors import (
    FlowtlyError,
    NotFound,
    RateLimited,
    TransientError,
    TransportSecurityError,
)
from sync.flowtly._asyncio_net import AsyncioTransport
from sync.flowtly._http_errors import error_from_response, error_from_transport
from sync.flowtly._limits import RequestStats, RetryPolicy, RetryScope, Throttle

__all__ = ["FlowtlyClient", "JsonObject", "QueryParams", "RequestStats"]

JsonObject: TypeAlias = dict[str, Any]
"""A raw Flowtly JSON object; only the client and the resource mappers handle it."""

QueryParams: TypeAlias = Mapping[str, str | int | Sequence[str | int]]
"""Query parameters; a sequence value repeats the key (``status[]=a&status[]=b``)."""

LD_JSON: Final = "application/ld+json"
MERGE_PATCH_JSON: Final = "application/merge-patch+json"
PAGE_SIZE_PARAM: Final = "itemsPerPage"

_log = structlog.get_logger("sync.flowtly")
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display(url: httpx.URL) -> str:
    """The URL without credentials or query, safe for messages and logs."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


class _Page(NamedTuple):
    """One answer of a collection listing, as `FlowtlyClient.iterate` needs it."""

    members: list[JsonObject]
    next: str | None
    total: int | None
    """``totalItems``: the size of the whole collection, absent with partial pagination."""
    problem: str | None
    """Why the answer is not a collection page, though it parsed (``{}``, no members)."""


def _members(body: Any, where: str) -> _Page:
    """Members, ``next`` link and stated total of a Hydra collection (prefixed or not) or a
    bare list.

    An object without ``member`` is no collection page: it has no members, and `problem`
    says so, because taking it for an empty page would make the records it should have
    listed look deleted.
    """
    problem = None
    total: Any = None
    if isinstance(body, list):
        raw: Any = body
        nxt: Any = None
    elif isinstance(body, dict):
        key = "member" if "member" in body else "hydra:member"
        if key not in body:
            problem = "answered {} instead of a collection" if not body else "had no members"
        raw = body.get(key, [])
        view = body.get("view") or body.get("hydra:view") or {}
        nxt = (view.get("next") or view.get("hydra:next")) if isinstance(view, dict) else None
        total = body.get("totalItems", body.get("hydra:totalItems"))
    else:
        raise FlowtlyError(f"GET {where}: expected a collection, got {type(body).__name__}")
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        raise FlowtlyError(f"GET {where}: collection members are not JSON objects")
    if nxt is not None and not isinstance(nxt, str):
        raise FlowtlyError(f"GET {where}: the next link is not a string")
    if total is not None and (type(total) is not int or total < 0):
        raise FlowtlyError(f"GET {where}: totalItems is not a count: {total!r}")
    return _Page(raw, nxt or None, total, problem)


class FlowtlyClient:
    """Async client for Flowtly's REST API (API Platform, JSON-LD).

    ``base_url`` may carry a path prefix (``https://host/api``): relative paths are joined
    under it, while ``next`` links and ``@id`` IRIs (which already include the prefix) are
    resolved against the origin. Paths passed to :meth:`get` that already start with the
    prefix are taken as IRIs, so ``client.get(item["@id"])`` works.

    Plain ``http://`` is refused unless the host is loopback or ``transport`` is given (an
    in-process sandbox). ``rate_limit`` is requests per second (0 = unlimited);
    ``concurrency`` bounds requests in flight; both also pace retries. ``sleep``, ``clock``
    and ``random`` are injectable so tests run on fake time.
    """

    def __init__(
        self,
        base_url: str,
        token: str | SecretStr | None,
        *,
        concurrency: int = 8,
        rate_limit: float = 10.0,
        timeout: float = 30.0,
        max_retries: int = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: _random.Random | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        self._base_display = _display(url)
        if url.scheme not in ("http", "https") or not url.host:
            raise TransportSecurityError(
                f"Flowtly base URL {self._base_display!r} is not an http(s) URL with a host"
            )
        if url.scheme == "http" and transport is None and not _is_loopback(url.host):
            raise TransportSecurityError(
                f"refusing plain http:// for Flowtly base URL {self._base_display!r}: the "
                "token would travel unencrypted; use https:// (http is allowed only for "
                "loopback hosts)"
            )
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self._origin_url = url.copy_with(path="/", query=None, fragment=None)
        self._origin = str(self._origin_url).rstrip("/")
        self._prefix = url.path.rstrip("/")
        secret = token.get_secret_value() if isinstance(token, SecretStr) else token
        self._secret = secret or None
        self._secret_pattern = (
            re.compile(rf"(?<![\w.~+/=-]){re.escape(self._secret)}(?![\w.~+/=-])")
            if self._secret
            else None
        )
        headers = {"Accept": LD_JSON, "User-Agent": f"flowtly-sync/{__version__}"}
        if self._secret:
            headers["Authorization"] = f"Bearer {self._secret}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport or AsyncioTransport(limits=limits),
            limits=limits,
            follow_redirects=False,  # a redirect could carry the token to another host
        )
        self._concurrency = concurrency
        self._rate_limit = rate_limit
        self._semaphore = asyncio.Semaphore(concurrency)
        self._throttle = Throttle(rate_limit, clock=clock, sleep=sleep)
        self._policy = RetryPolicy(max_retries=max_retries)
        self._sleep = sleep
        self._clock = clock
        self._random = random or _random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = RequestStats()

    def __repr__(self) -> str:
        return (
            f"FlowtlyClient(base_url={self._base_display!r}, concurrency={self._concurrency}, "
            f"rate_limit={self._rate_limit})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (and the transport)."""
        await self._http.aclose()

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
        """Stream a collection's members, fetching the next page only once this one is used.

        Follows ``next`` links until there is none; never computes page numbers, since the
        server may ignore or clamp ``page_size`` (sent as ``itemsPerPage``).

        ``audit`` is told of every page before its members are yielded (its size and
        ``totalItems``, or why it is not a collection page: ``{}``, an empty body); the
        caller tells it the members' ids. Audited or not, a listing that runs past the
        pages its ``totalItems`` allows (`ListingAudit.overrun`) stops with `FlowtlyError`.
        """
        query: dict[str, Any] = dict(params or {})
        if page_size is not None:
            query[PAGE_SIZE_PARAM] = page_size
        url: httpx.URL | None = self._url(path, query)
        audit = audit if audit is not None else ListingAudit(path, total_name="totalItems")
        visited: set[str] = set()
        while url is not None:
            visited.add(str(url))
            response = await self._request("GET", url, RetryScope.IDEMPOTENT)
            page = _members(self._json(response, "GET"), url.path)
            if not response.content:
                audit.broken(f"answered HTTP {response.status_code} with an empty body")
            elif page.problem is not None:
                audit.broken(page.problem)
            else:
                audit.page(len(page.members), total=page.total)
            overrun = audit.overrun()
            if overrun is not None:
                raise FlowtlyError(
                    f"GET {url.path}: {overrun}; stopped reading it",
                    method="GET",
                    url=url.path,
                )
            for member in page.members:
                yield member
            url = None
            if page.next is not None:
                url = self._link(response.url, page.next)
                if str(url) in visited:
                    raise FlowtlyError(
                        f"GET {url.path}: pagination loops back to a page already read",
                        method="GET",
                        url=url.path,
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

    # -- internals ---------------------------------------------------------------------

    def _url(self, path: str, params: QueryParams | None = None) -> httpx.URL:
        target = httpx.URL(path)
        if target.is_absolute_url:
            url = self._same_origin(target)
        elif (
            path.startswith("/")
            and self._prefix
            and (target.path == self._prefix or target.path.startswith(self._prefix + "/"))
        ):
            url = httpx.URL(self._origin + path)
        else:
            # Concatenating a known origin is a third of the cost of an RFC 3986 join.
            url = httpx.URL(f"{self._origin}{self._prefix}/{path.lstrip('/')}")
        return url.copy_merge_params(params) if params else url

    def _link(self, current: httpx.URL, link: str) -> httpx.URL:
        """Resolve a ``next``/``@id`` link: absolute paths go against the origin."""
        if link.startswith("/") and not link.startswith("//"):
            return httpx.URL(self._origin + link)  # the usual case, without a full join
        return self._same_origin(current.join(link))

    def _same_origin(self, url: httpx.URL) -> httpx.URL:
        origin = self._origin_url
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise FlowtlyError(
                f"refusing to follow {_display(url)!r}: not on the Flowtly origin "
                f"{_display(self._origin_url)!r}"
            )
        return url

    def _json(self, response: httpx.Response, method: str) -> Any:
        if not response.content:
            return {}
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise FlowtlyError(
                f"{method} {response.url.path}: HTTP {response.status_code} answer is not JSON",
                method=method,
                url=response.url.path,
                status=response.status_code,
            ) from exc

    def _object(self, response: httpx.Response, method: str) -> JsonObject:
        body = self._json(response, method)
        if not isinstance(body, dict):
            raise FlowtlyError(
                f"{method} {response.url.path}: expected a JSON object, got {type(body).__name__}",
                method=method,
                url=response.url.path,
                status=response.status_code,
            )
        return body

    def _redact(self, error: FlowtlyError) -> FlowtlyError:
        """Blank the token out of a message, should a server ever echo it back.

        Only whole-token occurrences count, so a short test token does not garble words.
        """
        if self._secret_pattern is not None:
            text = self._secret_pattern.sub("***", str(error))
            if text != str(error):
                error.args = (text,)
            if error.detail:
                error.detail = self._secret_pattern.sub("***", error.detail)
        return error

    async def _request(
        self,
        method: str,
        url: httpx.URL,
        scope: RetryScope,
        *,
        body: JsonObject | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = {"Content-Type": content_type} if content_type else None
        path = url.path
        maybe_landed = False
        attempt = 0
        while True:
            sent = True
            async with self._semaphore:
                self.stats.waited += await self._throttle.acquire()
                started = self._clock()
                self.stats.by_method[method] += 1
                try:
                    response = await self._http.request(
                        method, url, content=content, headers=headers
                    )
                except httpx.TransportError as exc:
                    self.stats.transport_errors += 1
                    sent = not isinstance(exc, _UNSENT)
                    error: FlowtlyError = error_from_transport(method, path, exc)
                    status: int | None = None
                else:
                    status = response.status_code
                    self.stats.by_status[status] += 1
            elapsed_ms = round((self._clock() - started) * 1000, 1)
            _log.debug(
                "flowtly.request",
                method=method,
                path=path,
                status=status,
                elapsed_ms=elapsed_ms,
                attempt=attempt,
            )
            if status is not None:
                if response.is_success:
                    return response
                error = error_from_response(method, path, response)
                if isinstance(error, RateLimited):
                    self.stats.rate_limited += 1
                    if error.retry_after:
                        self._throttle.cool_down(error.retry_after)
                if method == "DELETE" and isinstance(error, NotFound) and maybe_landed:
                    return response  # an earlier attempt deleted it; the answer was lost
            if not self._policy.should_retry(error, attempt=attempt, scope=scope, sent=sent):
                raise self._redact(error)
            maybe_landed = maybe_landed or (isinstance(error, TransientError) and sent)
            retry_after = error.retry_after if isinstance(error, RateLimited) else None
            delay = self._policy.delay(attempt, self._random, retry_after)
            _log.warning(
                "flowtly.retry",
                method=method,
                path=path,
                status=status,
                error=type(error).__name__,
                attempt=attempt,
                delay_s=round(delay, 3),
            )
            self.stats.retries += 1
            self.stats.waited += delay
            await self._sleep(delay)
            attempt += 1
