"""The Salesforce REST resources the connector uses, over one `ApiClient` of the HTTP kit.

Each call first checks the daily API budget (`ApiUsage.check`), so a run stops before
the reserve instead of in the middle of it. A ``401 INVALID_SESSION_ID`` gets a new token
once and the call is repeated; ``403 REQUEST_LIMIT_EXCEEDED`` becomes `BudgetExhausted`.
Error documents are Salesforce's JSON arrays of ``{message, errorCode, fields}``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from connectors.http import (
    ApiClient,
    ErrorReader,
    HttpLimits,
    Page,
    Paginator,
    QueryParams,
    RequestStats,
    Side,
    network_transport,
)
from connectors.salesforce._session import ApiUsage, SessionTransport, TokenSource
from connectors.salesforce._settings import SalesforceSettings
from sync.errors import ApiError, AuthenticationError, BudgetExhausted, Violation

__all__ = ["COLLECTION_SIZE", "SALESFORCE", "SalesforceApi", "SaveResult", "chunks"]

COLLECTION_SIZE = 200
"""Records per sObject Collections call (Salesforce's bound)."""


def chunks(items: Sequence[Any], size: int = COLLECTION_SIZE) -> list[Sequence[Any]]:
    """``items`` in runs of ``size`` (one collections call each)."""
    return [items[start : start + size] for start in range(0, len(items), size)]


SALESFORCE = Side("salesforce", "Salesforce", "crm")

SaveResult = Mapping[str, Any]
"""``{"id": ..., "success": bool, "errors": [{"statusCode", "message", "fields"}]}``."""


def _items(body: object) -> list[Mapping[str, Any]]:
    if isinstance(body, list):
        return [item for item in body if isinstance(item, Mapping)]
    if isinstance(body, Mapping):
        return [body]
    return []


def _message(body: object) -> str | None:
    said = []
    for item in _items(body):
        code = item.get("errorCode") or item.get("error")
        text = item.get("message") or item.get("error_description")
        if code or text:
            said.append(": ".join(str(part) for part in (code, text) if part))
    return "; ".join(said) or None


def _violations(body: object) -> tuple[Violation, ...]:
    found = []
    for item in _items(body):
        fields = item.get("fields") or [""]
        for name in fields:
            found.append(Violation(str(name), str(item.get("message", "")), item.get("errorCode")))
    return tuple(found)


ERRORS = ErrorReader(_message, _violations)


class SalesforceApi:
    """Calls against one org (``/services/data/v{api_version}``) with one session."""

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        limits = HttpLimits(
            concurrency=settings.concurrency,
            rate_limit=settings.rate_limit,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
        )
        pool = httpx.Limits(
            max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
        )
        self.usage = ApiUsage(settings.budget_reserve)
        self._session = SessionTransport(transport or network_transport(pool), self.usage)
        self.tokens = TokenSource(
            settings.instance_url,
            self._session,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            access_token=settings.access_token,
            timeout=settings.timeout,
        )
        self.prefix = f"/services/data/v{settings.api_version}"
        self._client = ApiClient(
            settings.instance_url + self.prefix,
            SALESFORCE,
            ERRORS,
            headers={
                "Accept": "application/json",
                "Sforce-Query-Options": f"batchSize={settings.query_batch_size}",
            },
            secrets=settings.secrets(),
            limits=limits,
            transport=self._session,
            sleep=sleep,
            clock=clock,
            random=rng,
        )
        self._refresh = asyncio.Lock()

    @property
    def stats(self) -> RequestStats:
        return self._client.stats

    async def start(self) -> None:
        """Sign in (a token from the token endpoint, or the configured one)."""
        self.usage.check()
        self._session.token = await self.tokens.token()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- calls -------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        body: Any = None,
    ) -> Any:
        """One JSON call under the session; see the module docstring for what it adds."""
        return await self._guarded(
            lambda: self._client.send(method, path, params=params, body=body)
        )

    async def content(self, path: str) -> bytes:
        """The raw body at ``path`` (a note's ``Content``)."""
        body: bytes = await self._guarded(lambda: self._client.send_for_bytes(path))
        return body

    async def _guarded(self, send: Callable[[], Awaitable[Any]]) -> Any:
        self.usage.check()
        token = self._session.token
        try:
            return await send()
        except AuthenticationError as error:
            if error.status == 401 and self.tokens.refreshable:
                await self._renew(token)
                self.usage.check()
                try:
                    return await send()
                except AuthenticationError as again:
                    raise _budget_or(again) from None
            raise _budget_or(error) from None

    async def _renew(self, expired: object) -> None:
        """A new token, once for all the calls that found the same one expired."""
        async with self._refresh:
            if self._session.token is expired:
                self._session.token = await self.tokens.token()

    # -- resources ---------------------------------------------------------------------

    async def describe(self, sobject: str) -> Mapping[str, Any]:
        return _mapping(await self.call("GET", f"sobjects/{sobject}/describe"), sobject)

    def query(self, soql: str, listing: str) -> Paginator[str]:
        """A `Paginator` over ``GET /query`` and its ``nextRecordsUrl`` pages."""

        async def fetch(token: str | None) -> Page[str]:
            if token is None:
                body = await self.call("GET", "query", params={"q": soql})
            else:
                body = await self.call("GET", token)
            records = body.get("records") if isinstance(body, Mapping) else None
            if not isinstance(records, list):
                return Page([], broken="is not a query result (no records)")
            done = bool(body.get("done", True))
            link = body.get("nextRecordsUrl")
            total = body.get("totalSize")
            return Page(
                [r for r in records if isinstance(r, Mapping)],
                next=None if done or not isinstance(link, str) else link,
                total=total if isinstance(total, int) else None,
            )

        def id_of(member: Mapping[str, Any]) -> str | None:
            found = member.get("Id")
            return found if isinstance(found, str) and found else None

        return Paginator(SALESFORCE, listing, fetch, id_of, total_name="totalSize")

    async def query_all(self, soql: str) -> AsyncIterator[Mapping[str, Any]]:
        """Every record of a query whose completeness does not decide deletes."""
        async for member in self.query(soql, "query").members():
            yield member

    async def create(self, records: Sequence[Mapping[str, Any]]) -> list[SaveResult]:
        body = {"allOrNone": False, "records": list(records)}
        return _results(await self.call("POST", "composite/sobjects", body=body), len(records))

    async def update(self, records: Sequence[Mapping[str, Any]]) -> list[SaveResult]:
        body = {"allOrNone": False, "records": list(records)}
        return _results(await self.call("PATCH", "composite/sobjects", body=body), len(records))

    async def delete(self, ids: Sequence[str]) -> list[SaveResult]:
        params = {"ids": ",".join(ids), "allOrNone": "false"}
        return _results(await self.call("DELETE", "composite/sobjects", params=params), len(ids))

    async def retrieve(
        self, sobject: str, ids: Sequence[str], fields: Sequence[str]
    ) -> list[Mapping[str, Any] | None]:
        """The records with ``ids`` in order, None where one does not exist."""
        params = {"ids": ",".join(ids), "fields": ",".join(fields)}
        body = await self.call("GET", f"composite/sobjects/{sobject}", params=params)
        if not isinstance(body, list) or len(body) != len(ids):
            raise SALESFORCE.protocol_error(
                f"GET composite/sobjects/{sobject}: expected {len(ids)} records in order",
                side=SALESFORCE.name,
            )
        return [item if isinstance(item, Mapping) else None for item in body]

    async def deleted(self, sobject: str, start: str, end: str) -> Mapping[str, Any]:
        path = f"sobjects/{sobject}/deleted/"
        return _mapping(await self.call("GET", path, params={"start": start, "end": end}), path)


def _budget_or(error: AuthenticationError) -> ApiError:
    """``403 REQUEST_LIMIT_EXCEEDED`` is the daily allowance, not the credentials."""
    if error.status == 403 and "REQUEST_LIMIT_EXCEEDED" in (error.detail or ""):
        return BudgetExhausted(
            f"Salesforce refused {error.method} {error.url}: the org's daily API request "
            f"limit is exceeded ({error.detail}); the run stops and resumes once the rolling "
            "24-hour usage drops",
            method=error.method,
            url=error.url,
            status=403,
            detail=error.detail,
            side=SALESFORCE.name,
        )
    return error


def _mapping(body: object, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise SALESFORCE.protocol_error(f"{what}: expected a JSON object", side=SALESFORCE.name)
    return body


def _results(body: object, count: int) -> list[SaveResult]:
    if not isinstance(body, list) or len(body) != count:
        raise SALESFORCE.protocol_error(
            f"composite/sobjects: expected {count} SaveResults in order", side=SALESFORCE.name
        )
    return [item if isinstance(item, Mapping) else {"success": False} for item in body]
