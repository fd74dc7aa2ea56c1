"""Pipedrive's limits, kept below the API client: the burst window and the daily tokens.

Pipedrive meters two things: a burst limit per token and 2-second window, told in
``x-ratelimit-limit`` / ``-remaining`` / ``-reset``; and a daily company budget of API
*tokens*, each call costing what the OpenAPI documents say (``x-token-cost``), told in
``x-daily-ratelimit-token-remaining``. Clients that keep
sending into 429s get blocked with 403, so this transport paces before it is told off:
once a window is used up it waits for the window's end, and a call the day's remaining
tokens cannot pay for is not sent at all: `BudgetExhausted` stops the run.

The kit's client learns how long to back off from ``Retry-After``, which Pipedrive does
not send; a 429 gets one here from ``x-ratelimit-reset`` (at least 2 s, a window).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType

import httpx

from sync.errors import BudgetExhausted

__all__ = ["TOKEN_COSTS", "PipedriveLimits", "TokenMeter", "token_cost"]

TOKEN_COSTS: Mapping[tuple[str, str], int] = MappingProxyType(
    {
        ("GET", "/api/v2/organizations"): 10,
        ("POST", "/api/v2/organizations"): 5,
        ("GET", "/api/v2/organizations/{id}"): 1,
        ("PATCH", "/api/v2/organizations/{id}"): 5,
        ("DELETE", "/api/v2/organizations/{id}"): 3,
        ("GET", "/api/v2/persons"): 10,
        ("POST", "/api/v2/persons"): 5,
        ("GET", "/api/v2/persons/{id}"): 1,
        ("PATCH", "/api/v2/persons/{id}"): 5,
        ("DELETE", "/api/v2/persons/{id}"): 3,
        ("GET", "/api/v2/organizationFields"): 10,
        ("POST", "/api/v2/organizationFields"): 5,
        ("GET", "/api/v2/personFields"): 10,
        ("GET", "/api/v1/notes"): 20,
        ("POST", "/api/v1/notes"): 10,
        ("GET", "/api/v1/notes/{id}"): 2,
        ("PUT", "/api/v1/notes/{id}"): 10,
        ("DELETE", "/api/v1/notes/{id}"): 6,
        ("GET", "/api/v1/recents"): 20,
    }
)
"""Tokens per call of every endpoint the connector uses, as Pipedrive's OpenAPI documents
state them (``x-token-cost``; a unit test compares the two)."""

_UNKNOWN_COST = 20  # the dearest list call: an endpoint missing above is not undercounted
_ID = re.compile(r"/\d+(?=/|$)")
_MIN_WAIT = 2.0  # one burst window


def token_cost(method: str, path: str) -> int:
    """The tokens one ``method path`` call costs (ids in ``path`` stand for ``{id}``)."""
    return TOKEN_COSTS.get((method, _ID.sub("/{id}", path)), _UNKNOWN_COST)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class TokenMeter:
    """What the calls so far cost, and what Pipedrive last said is left of the day."""

    requests: int = 0
    tokens: int = 0
    daily_remaining: int | None = None
    """Tokens left today as of the last answer that said (None: not told yet)."""
    daily_limit: int | None = None


class PipedriveLimits(httpx.AsyncBaseTransport):
    """A transport that keeps every request within Pipedrive's limits (module docstring).

    ``reserve`` tokens of the day are never spent. ``clock`` and ``sleep`` are injectable
    so tests pace on fake time.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self.meter = TokenMeter()
        self._window_left: int | None = None
        self._told_left: int | None = None  # what the last answer said, before our own count
        self._window_began = float("inf")
        self._window_ends = float("-inf")
        self.paced = 0.0
        """Seconds waited for a burst window to end."""
        self.server_time: datetime | None = None
        """Pipedrive's clock as of the last answer (its ``Date`` header)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cost = token_cost(request.method, request.url.path)
        self._afford(cost, request)
        await self._wait_for_window()
        if self._window_left is not None:
            self._window_left -= 1
        meter = self.meter
        meter.requests += 1
        meter.tokens += cost
        if meter.daily_remaining is not None:
            meter.daily_remaining -= cost
        response = await self._inner.handle_async_request(request)
        self._observe(response.headers)
        if response.status_code == 429:
            if meter.daily_remaining is not None and meter.daily_remaining <= 0:
                await response.aclose()
                raise self._spent(request, cost)
            if "retry-after" not in response.headers:
                reset = _header_int(response.headers, "x-ratelimit-reset") or 0
                response.headers["Retry-After"] = str(max(float(reset), _MIN_WAIT))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    # -- internals ---------------------------------------------------------------------

    def _afford(self, cost: int, request: httpx.Request) -> None:
        left = self.meter.daily_remaining
        if left is not None and left - cost < self._reserve:
            raise self._spent(request, cost)

    def _spent(self, request: httpx.Request, cost: int) -> BudgetExhausted:
        left = max(self.meter.daily_remaining or 0, 0)
        kept = f", keeping crm.token_reserve = {self._reserve}" if self._reserve else ""
        return BudgetExhausted(
            f"Pipedrive's daily API token budget is spent: {left} token(s) left{kept}, and "
            f"{request.method} {request.url.path} costs {cost}; the run stops here and the "
            "next one continues after the budget resets (midnight, Pipedrive server time)",
            method=request.method,
            url=request.url.path,
            status=429,
            side="pipedrive",
        )

    async def _wait_for_window(self) -> None:
        while self._window_left is not None and self._window_left <= 0:
            wait = self._window_ends - self._clock()
            if wait <= 0:
                self._window_left = None  # a new window: its size comes with the next answer
                return
            self.paced += wait
            await self._sleep(wait)

    def _observe(self, headers: httpx.Headers) -> None:
        date = headers.get("date")
        if date:
            # An unreadable Date only means the server's time is not learnt from it.
            with contextlib.suppress(TypeError, ValueError):
                self.server_time = parsedate_to_datetime(date)
        remaining = _header_int(headers, "x-ratelimit-remaining")
        reset = _header_int(headers, "x-ratelimit-reset")
        if remaining is not None:
            now = self._clock()
            if self._told_left is None or remaining > self._told_left:
                # A fresh window: it began before this answer arrived, so it ends at most
                # one window length from now (``-reset`` is rounded to whole seconds).
                self._window_began = now
            self._told_left = self._window_left = remaining
            window = float(reset) if reset is not None else _MIN_WAIT
            self._window_ends = min(now + max(window, 0.0), self._window_began + _MIN_WAIT)
        daily = _header_int(headers, "x-daily-ratelimit-token-remaining")
        if daily is not None:
            self.meter.daily_remaining = daily
        limit = _header_int(headers, "x-daily-ratelimit-token-limit")
        if limit is not None:
            self.meter.daily_limit = limit
