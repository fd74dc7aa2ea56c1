"""The Salesforce session under the HTTP kit: the bearer token and the daily API budget.

Every request of the connector's `ApiClient` passes through `SessionTransport`, which puts
the current access token on it (so a refreshed token applies to the retry at once) and
reads ``Sforce-Limit-Info: api-usage=N/MAX`` off every answer, errors included, so the
connector always knows how much of the org's daily allowance is used.

`TokenSource` gets tokens with the OAuth 2.0 client credentials flow: one form POST to
``{instance_url}/services/oauth2/token`` sent straight through the transport (the kit's
client speaks JSON; the token endpoint takes a form). Its refusals carry Salesforce's
own ``error_description``, never the secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from sync.errors import AuthenticationError, BudgetExhausted, TransientError

__all__ = ["ApiUsage", "SessionTransport", "TokenSource"]

_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")
_TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a URL path, not a password


@dataclass(slots=True)
class ApiUsage:
    """The org's daily API requests as the last answer stated them."""

    reserve: float
    """The share of ``limit`` never to be used (``[crm] budget_reserve``)."""
    used: int | None = None
    limit: int | None = None
    answers: int = 0
    """Answers that stated the usage."""

    def observe(self, header: str | None) -> None:
        """Take ``Sforce-Limit-Info`` of one answer."""
        if not header:
            return
        match = _USAGE.search(header)
        if match is None:
            return
        self.used, self.limit = int(match.group(1)), int(match.group(2))
        self.answers += 1

    @property
    def stop_at(self) -> int | None:
        """The usage at which no further request is sent."""
        if self.limit is None:
            return None
        return int(self.limit * (1 - self.reserve))

    def check(self) -> None:
        """Raise `BudgetExhausted` when the next request would eat into the reserve."""
        stop_at = self.stop_at
        if self.used is None or stop_at is None or self.used < stop_at:
            return
        raise BudgetExhausted(
            f"Salesforce daily API budget: {self.used:,} of {self.limit:,} requests used "
            f"today; the run stops before the last {self.reserve:.0%} "
            f"(crm.budget_reserve) so the org's other integrations keep working. It resumes "
            "once the rolling 24-hour usage drops.",
            side="salesforce",
            status=None,
        )


class SessionTransport(httpx.AsyncBaseTransport):
    """Adds the bearer token to each request and records the API usage of each answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, usage: ApiUsage) -> None:
        self.inner = inner
        self.usage = usage
        self.token: SecretStr | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        response = await self.inner.handle_async_request(request)
        self.usage.observe(response.headers.get("Sforce-Limit-Info"))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class TokenSource:
    """Access tokens for the client credentials flow (or the one configured token)."""

    def __init__(
        self,
        instance_url: str,
        transport: SessionTransport,
        *,
        client_id: str | None,
        client_secret: SecretStr | None,
        access_token: SecretStr | None,
        timeout: float,
    ) -> None:
        self._url = instance_url + _TOKEN_PATH
        self._transport = transport
        self._client_id = client_id
        self._client_secret = client_secret
        self._fixed = access_token
        self._timeout = timeout
        self.fetched = 0
        """Tokens obtained from the token endpoint so far."""

    @property
    def refreshable(self) -> bool:
        """Whether a new token can be had (not with a configured ``access_token``)."""
        return self._client_secret is not None

    async def token(self) -> SecretStr:
        """A fresh token from the token endpoint, or the configured one."""
        if self._client_secret is None or self._client_id is None:
            assert self._fixed is not None  # the settings demand one or the other
            return self._fixed
        request = httpx.Request(
            "POST",
            self._url,
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret.get_secret_value(),
            },
            headers={"Accept": "application/json"},
            extensions={"timeout": httpx.Timeout(self._timeout).as_dict()},
        )
        try:
            response = await self._transport.inner.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise TransientError(
                f"POST {_TOKEN_PATH} failed: {type(exc).__name__}",
                method="POST",
                url=_TOKEN_PATH,
                side="salesforce",
            ) from None
        self._transport.usage.observe(response.headers.get("Sforce-Limit-Info"))
        document = _json(body)
        token = document.get("access_token")
        if response.status_code == 200 and isinstance(token, str) and token:
            self.fetched += 1
            return SecretStr(token)
        said = document.get("error_description") or document.get("error") or "no detail"
        error_type = AuthenticationError if response.status_code < 500 else TransientError
        raise error_type(
            f"Salesforce refused the client credentials of crm.client_id at POST {_TOKEN_PATH} "
            f"(HTTP {response.status_code}): {said}",
            method="POST",
            url=_TOKEN_PATH,
            status=response.status_code,
            detail=str(said),
            side="salesforce",
        )


def _json(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
