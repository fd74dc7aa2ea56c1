"""The HTTP client every API side is built on: Flowtly's and each CRM's.

One `ApiClient` per connector holds one connection pool and keeps the side within its
API's limits: a request-rate throttle with a shared cool-down after 429s, a bound on
requests in flight, retries of what is safe to retry (idempotent requests; a POST only
when it provably never left), Retry-After capped, each attempt and each request bounded
in time and each answer in size. Failures are sorted at this edge into the errors of
:mod:`sync.errors` (`connectors.http.statuses`), with the vendor's error documents read by
the `ErrorReader` it is given. Tokens travel only over HTTPS (plain HTTP only to loopback)
and never appear in messages, logs or reprs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random as _random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

import httpx
import structlog

from connectors.http.answer import AnswerLimits, read_answer
from connectors.http.limits import RequestBudget, RequestStats, RetryPolicy, RetryScope, Throttle
from connectors.http.statuses import (
    ErrorReader,
    Side,
    deadline_passed,
    error_from_response,
    error_from_transport,
    retry_after_too_long,
)
from connectors.http.transport import network_transport
from sync.errors import ApiError, NotFound, RateLimited, TransientError, TransportSecurityError
from sync.settings_base import DEFAULT_CONCURRENCY

__all__ = ["ApiClient", "HttpLimits", "QueryParams", "display_url", "is_loopback"]

QueryParams: TypeAlias = Mapping[str, str | int | Sequence[str | int]]
"""Query parameters; a sequence value repeats the key (``status[]=a&status[]=b``)."""

_log = structlog.get_logger("connectors.http")
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout)
_KNOWN_URLS = 1024
"""How many resolved paths a client keeps (`ApiClient._url`)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (plain HTTP is allowed only there)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def display_url(url: httpx.URL) -> str:
    """The URL without credentials or query, safe for messages and logs."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How hard one side may press its API, and how long and how much it waits.

    ``concurrency`` bounds requests in flight; ``rate_limit`` is requests per second (0 =
    unlimited); ``timeout`` bounds each connect and read; ``request_timeout`` one attempt
    as a whole; ``request_deadline`` a request's attempts and backoff together; a
    Retry-After beyond ``max_retry_after`` stops the run; an answer beyond
    ``max_response_bytes`` is not read further.
    """

    concurrency: int = DEFAULT_CONCURRENCY
    rate_limit: float = 10.0
    timeout: float = 30.0
    max_retries: int = 5
    request_timeout: float = 45.0
    request_deadline: float = 90.0
    max_retry_after: float = 300.0
    max_response_bytes: int = 50_000_000

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if (
            min(
                self.request_timeout,
                self.request_deadline,
                self.max_retry_after,
                self.max_response_bytes,
            )
            <= 0
        ):
            raise ValueError("request time and size limits must be > 0")


def _secret_pattern(secrets: Collection[str]) -> re.Pattern[str] | None:
    """Whole-token occurrences of any secret (so a short test token does not garble words)."""
    kept = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not kept:
        return None
    alternatives = "|".join(re.escape(s) for s in kept)
    return re.compile(rf"(?<![\w.~+/=-])(?:{alternatives})(?![\w.~+/=-])")


class ApiClient:
    """An async JSON-over-HTTP client for one API side (see the module docstring).

    ``base_url`` may carry a path prefix (``https://host/api``): relative paths are joined
    under it; absolute paths that already start with the prefix, and links an answer
    gives, are resolved against the origin, and nothing off the origin is followed.
    ``headers`` go with every request (the credentials among them); ``secrets`` are blanked
    out of every error message. ``sleep``, ``clock`` and ``random`` are injectable so tests
    run on fake time. ``transport`` replaces the network (an in-process app, a mock).
    """

    def __init__(
        self,
        base_url: str,
        side: Side,
        errors: ErrorReader,
        *,
        headers: Mapping[str, str],
        secrets: Collection[str] = (),
        limits: HttpLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: _random.Random | None = None,
    ) -> None:
        limits = limits or HttpLimits()
        url = httpx.URL(base_url)
        self._side = side
        self._errors = errors
        self._base_display = display_url(url)
        if url.scheme not in ("http", "https") or not url.host:
            raise TransportSecurityError(
                f"{side.label} base URL {self._base_display!r} is not an http(s) URL with a host",
                side=side.name,
            )
        if url.scheme == "http" and transport is None and not is_loopback(url.host):
            raise TransportSecurityError(
                f"refusing plain http:// for {side.label} base URL {self._base_display!r}: the "
                "token would travel unencrypted; use https:// (http is allowed only for "
                "loopback hosts)",
                side=side.name,
            )
        self._origin_url = url.copy_with(path="/", query=None, fragment=None)
        self._origin = str(self._origin_url).rstrip("/")
        self._prefix = url.path.rstrip("/")
        self._secret_pattern = _secret_pattern(secrets)
        pool = httpx.Limits(
            max_connections=limits.concurrency, max_keepalive_connections=limits.concurrency
        )
        self._transport = transport or network_transport(pool)
        # The client gives the default headers and closes the transport; requests go to
        # the transport directly (`connectors.http.answer`), so no cookie an answer sets
        # rides along on later requests: the token is the only credential.
        self._http = httpx.AsyncClient(
            headers=dict(headers),
            timeout=httpx.Timeout(limits.timeout),
            transport=self._transport,
            limits=pool,
            follow_redirects=False,  # a redirect could carry the token to another host
        )
        # Every request carries the same headers but for its body's type: built once per
        # type instead of merged on every request (`httpx.AsyncClient.build_request`).
        self._headers: dict[str | None, httpx.Headers] = {}
        self._timeout = self._http.timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._limits = limits
        self._semaphore = asyncio.Semaphore(limits.concurrency)
        self._throttle = Throttle(limits.rate_limit, clock=clock, sleep=sleep)
        self._policy = RetryPolicy(
            max_retries=limits.max_retries, max_retry_after=limits.max_retry_after
        )
        self._attempt_key = side.key("request_timeout")
        self._deadline_key = side.key("request_deadline")
        self._request_event = f"{side.name}.request"
        self._retry_event = f"{side.name}.retry"
        self._sleep = sleep
        self._clock = clock
        self._random = random or _random.Random()  # noqa: S311 - jitter, not cryptography
        self.stats = RequestStats()

    @property
    def base_url(self) -> str:
        """The base URL without credentials or query, safe for messages."""
        return self._base_display

    @property
    def limits(self) -> HttpLimits:
        return self._limits

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base_display!r}, "
            f"concurrency={self._limits.concurrency}, rate_limit={self._limits.rate_limit})"
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

    # -- requests ----------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        body: Any = None,
        content_type: str = "application/json",
        scope: RetryScope | None = None,
    ) -> Any:
        """One JSON request; returns the parsed answer (``{}`` for an empty one).

        ``scope`` defaults to retrying every retryable failure for all methods but POST,
        which is retried only when it provably never left (`RetryScope.UNSENT_ONLY`).
        """
        if scope is None:
            scope = RetryScope.UNSENT_ONLY if method == "POST" else RetryScope.IDEMPOTENT
        response = await self._request(
            method,
            self._url(path, params),
            scope,
            body=body,
            content_type=content_type if body is not None else None,
        )
        return self._json(response, method)

    async def send_for_bytes(self, path: str, *, params: QueryParams | None = None) -> bytes:
        """One GET whose answer is not JSON (a file, a note's content): its raw body."""
        response = await self._request("GET", self._url(path, params), RetryScope.IDEMPOTENT)
        return response.content

    # -- internals ---------------------------------------------------------------------

    def _url(self, path: str, params: QueryParams | None = None) -> httpx.URL:
        """``path`` under the base URL (an absolute URL must be on its origin)."""
        # Parsing a URL is a tenth of a request's CPU, and a run sends thousands of
        # requests to the same few paths (every create of an entity POSTs to one).
        url = self._urls.get(path)
        if url is None:
            url = self._resolve(path)
            if len(self._urls) >= _KNOWN_URLS:
                self._urls.clear()  # paths naming one record each are rarely asked again
            self._urls[path] = url
        return url.copy_merge_params(params) if params else url

    def _resolve(self, path: str) -> httpx.URL:
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
        return url

    def _link(self, current: httpx.URL, link: str) -> httpx.URL:
        """Resolve a ``next``/``@id`` link: absolute paths go against the origin.

        Not checked against the origin here: a link is followed through `_url`, which
        refuses another origin then (a page's members are used before its link is).
        """
        if link.startswith("/") and not link.startswith("//"):
            return httpx.URL(self._origin + link)  # the usual case, without a full join
        return current.join(link)

    def _same_origin(self, url: httpx.URL) -> httpx.URL:
        origin = self._origin_url
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise self._side.protocol_error(
                f"refusing to follow {display_url(url)!r}: not on the {self._side.label} origin "
                f"{display_url(self._origin_url)!r}",
                side=self._side.name,
            )
        return url

    def _json(self, response: httpx.Response, method: str) -> Any:
        if not response.content:
            return {}
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise self._side.protocol_error(
                f"{method} {response.url.path}: HTTP {response.status_code} answer is not JSON",
                method=method,
                url=response.url.path,
                status=response.status_code,
                side=self._side.name,
            ) from exc
        except RecursionError:
            # No traceback worth keeping: the parser recursed once per level of nesting.
            raise self._side.protocol_error(
                f"{method} {response.url.path}: HTTP {response.status_code} answer is JSON "
                "nested too deeply to read",
                method=method,
                url=response.url.path,
                status=response.status_code,
                side=self._side.name,
            ) from None

    def _object(self, response: httpx.Response, method: str) -> dict[str, Any]:
        body = self._json(response, method)
        if not isinstance(body, dict):
            raise self._side.protocol_error(
                f"{method} {response.url.path}: expected a JSON object, got {type(body).__name__}",
                method=method,
                url=response.url.path,
                status=response.status_code,
                side=self._side.name,
            )
        return body

    def _redact(self, error: ApiError) -> ApiError:
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

    def _headers_with(self, content_type: str | None) -> httpx.Headers:
        """The client's headers with ``content_type`` as the body's type."""
        headers = self._headers.get(content_type)
        if headers is None:
            headers = self._http.headers.copy()
            if content_type is not None:
                headers["Content-Type"] = content_type
            self._headers[content_type] = headers
        return headers

    async def _request(
        self,
        method: str,
        url: httpx.URL,
        scope: RetryScope,
        *,
        body: Any = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body, allow_nan=False).encode()
        headers = self._headers_with(content_type)
        path = url.path
        maybe_landed = False
        attempt = 0
        budget = RequestBudget(self._limits.request_timeout, self._limits.request_deadline)
        while True:
            sent = True
            out_of_time = False  # this attempt was cut short by the request's deadline
            async with self._semaphore:
                self.stats.waited += await self._throttle.acquire()
                started = self._clock()
                self.stats.by_method[method] += 1
                limits = AnswerLimits(
                    self._side,
                    budget.attempt_limit(),
                    self._deadline_key if budget.cut_short else self._attempt_key,
                    self._limits.max_response_bytes,
                )
                request = httpx.Request(
                    method,
                    url,
                    content=content,
                    headers=headers,
                    extensions={"timeout": self._timeout},
                )
                try:
                    response = await read_answer(self._transport, request, limits)
                except httpx.TransportError as exc:
                    self.stats.transport_errors += 1
                    sent = not isinstance(exc, _UNSENT)
                    error: ApiError = error_from_transport(self._side, method, path, exc)
                    status: int | None = None
                except TransientError as exc:  # the attempt's own deadline passed
                    self.stats.transport_errors += 1
                    error, status = exc, None
                    out_of_time = limits.key == self._deadline_key
                else:
                    status = response.status_code
                    self.stats.by_status[status] += 1
            elapsed = self._clock() - started
            budget.charge(elapsed)
            elapsed_ms = round(elapsed * 1000, 1)
            _log.debug(
                self._request_event,
                method=method,
                path=path,
                status=status,
                elapsed_ms=elapsed_ms,
                attempt=attempt,
            )
            if status is not None:
                if response.is_success:
                    return response
                error = error_from_response(self._side, self._errors, method, path, response)
                if isinstance(error, RateLimited):
                    self.stats.rate_limited += 1
                    if self._policy.too_long(error.retry_after):
                        raise retry_after_too_long(
                            self._side,
                            method,
                            path,
                            retry_after=error.retry_after or 0.0,
                            limit=self._policy.max_retry_after,
                            key=self._side.key("max_retry_after"),
                        )
                    if error.retry_after:
                        self._throttle.cool_down(error.retry_after)
                if method == "DELETE" and isinstance(error, NotFound) and maybe_landed:
                    return response  # an earlier attempt deleted it; the answer was lost
            if not out_of_time and not self._policy.should_retry(
                error, attempt=attempt, scope=scope, sent=sent
            ):
                raise self._redact(error)
            maybe_landed = maybe_landed or (isinstance(error, TransientError) and sent)
            retry_after = error.retry_after if isinstance(error, RateLimited) else None
            delay = self._policy.delay(attempt, self._random, retry_after)
            backoff = delay - (retry_after or 0.0)  # ours; the server's wait is not charged
            if out_of_time or not budget.allows(backoff):
                raise deadline_passed(
                    self._side,
                    method,
                    path,
                    seconds=self._limits.request_deadline,
                    key=self._deadline_key,
                    attempts=attempt + 1,
                    last=self._redact(error),
                )
            budget.charge(backoff)
            _log.warning(
                self._retry_event,
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
