"""HubSpot's request limits, kept on the way out and read on the way back.

HubSpot counts requests in a rolling 10-second window per account (100 for a private
app on a free portal, up to 250 with the capacity pack) and search requests at 5 per
second, and it says where an account stands in ``X-HubSpot-RateLimit-*`` headers (search
answers carry none). `Pacing` wraps the transport under the `ApiClient`: before a request
it waits until the window has room, after the answer it adopts the window the headers
state. A 429 names its policy in the body: ``TEN_SECONDLY_ROLLING`` and the secondly limit
are waited out (a ``Retry-After`` is supplied when HubSpot sends none, so the kit's retry
waits the window, not a short backoff); ``DAILY`` cannot be waited out within a run, so
it raises `BudgetExhausted` and the run stops with the store as the last commit left it.

Clock and sleep are injected so tests and the benchmark run on simulated time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from sync.errors import BudgetExhausted

__all__ = ["Pacing", "RollingWindow"]

# Headers that described the body as it travelled; the copy made here is already decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

_MARGIN = 0.05
"""Seconds a request waits beyond the moment the window has room."""

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class RollingWindow:
    """At most ``limit`` requests in any ``seconds``-long window."""

    limit: int
    seconds: float
    sent: deque[float]

    @classmethod
    def of(cls, limit: int, seconds: float) -> RollingWindow:
        return cls(limit, seconds, deque())

    def wait_for(self, now: float) -> float:
        """Seconds until one more request fits (0 when it fits now)."""
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        # A little past the window's end: HubSpot's clock and ours never agree exactly.
        return self.sent[len(self.sent) - self.limit] + self.seconds + _MARGIN - now

    def record(self, now: float) -> None:
        self.sent.append(now)


def _header_int(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


class Pacing(httpx.AsyncBaseTransport):
    """A transport that keeps HubSpot's windows (see the module docstring)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        per_window: int,
        window_seconds: float = 10.0,
        search_per_second: int = 5,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self.window = RollingWindow.of(per_window, window_seconds)
        self.search = RollingWindow.of(search_per_second, 1.0)
        self._configured = per_window
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._held_until = float("-inf")
        self.daily_remaining: int | None = None
        """What HubSpot last said is left of the day's budget (None: not stated)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._turn(request.url.path.endswith("/search"))
        response = await self._inner.handle_async_request(request)
        self._learn(response)
        if response.status_code == 429:
            return await self._rate_limited(request, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _turn(self, search: bool) -> None:
        # One request decides at a time, so concurrent callers queue for the window.
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._held_until - now, self.window.wait_for(now))
                if search:
                    wait = max(wait, self.search.wait_for(now))
                if wait <= 0:
                    break
                await self._sleep(wait)
            self.window.record(now)
            if search:
                self.search.record(now)

    def _learn(self, response: httpx.Response) -> None:
        stated = _header_int(response, "X-HubSpot-RateLimit-Max")
        interval = _header_int(response, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if stated:
            self.window.limit = stated
        if interval:
            self.window.seconds = interval / 1000
        remaining = _header_int(response, "X-HubSpot-RateLimit-Remaining")
        if remaining == 0:
            # Other apps of the account share the window: hold until it has rolled on.
            self._held_until = max(self._held_until, self._clock() + self.window.seconds)
        daily = _header_int(response, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None:
            self.daily_remaining = daily

    async def _rate_limited(
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Response:
        body = await response.aread()
        await response.aclose()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        policy = document.get("policyName") if isinstance(document, dict) else None
        message = document.get("message") if isinstance(document, dict) else None
        if policy == "DAILY":
            raise BudgetExhausted(
                f"{request.method} {request.url.path}: HubSpot's daily API limit is used up "
                f"({message or 'policy DAILY'}); the run stops here and the next run continues "
                "from the last stored state once the limit resets (midnight in the HubSpot "
                "account's time zone)",
                method=request.method,
                url=request.url.path,
                status=429,
                detail=message,
                side="hubspot",
            )
        headers = httpx.Headers(
            [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
        )
        if "Retry-After" not in headers:
            said = str(message or "").lower()
            rolling = policy == "TEN_SECONDLY_ROLLING" or "ten_secondly" in said
            secondly = not rolling and (policy == "SECONDLY" or "secondly" in said)
            wait = 1.0 if secondly else self.window.seconds
            headers["Retry-After"] = f"{wait:g}"
        return httpx.Response(429, headers=headers, content=body, request=request)
