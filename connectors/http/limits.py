"""Pacing for an API client: a request-rate throttle, the retry/backoff policy, the
time budget of one request, and the counters of what they did.

The throttle and the policy take the clock, the sleep function and the random generator
from the caller, so tests run on fake time and fake randomness.
"""

from __future__ import annotations

import random as _random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from sync.errors import ApiError, RateLimited, TransientError

__all__ = ["RequestBudget", "RequestStats", "RetryPolicy", "RetryScope", "Throttle"]

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass
class RequestStats:
    """What the client did so far: attempts per method and status, retries and waits."""

    by_method: Counter[str] = field(default_factory=Counter)
    """Attempts sent, retries included, per HTTP method."""
    by_status: Counter[int] = field(default_factory=Counter)
    """Responses received per status code."""
    transport_errors: int = 0
    """Attempts that got no response (timeouts, refused or dropped connections)."""
    retries: int = 0
    rate_limited: int = 0
    """429 answers received."""
    waited: float = 0.0
    """Seconds spent waiting: rate-limit slots, shared cool-downs and retry backoff."""

    @property
    def requests(self) -> int:
        """Attempts sent in total."""
        return sum(self.by_method.values())


class Throttle:
    """Evenly spaced request slots (``rate`` per second, 0 = unlimited) plus a shared cool-down.

    Each caller reserves the next free slot, so concurrent callers queue up one interval apart
    instead of bursting. A cool-down (after a 429 with ``Retry-After``) holds every caller,
    including those already waiting for a slot, until it ends.
    """

    def __init__(self, rate: float, *, clock: Clock, sleep: Sleep) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self._interval = 1.0 / rate if rate else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._cooldown_until = float("-inf")

    @property
    def cooldown_until(self) -> float:
        """Clock time before which no request starts (``-inf`` when none is pending)."""
        return self._cooldown_until

    def cool_down(self, seconds: float) -> None:
        """Hold every request for ``seconds`` from now (never shortens a longer cool-down)."""
        self._cooldown_until = max(self._cooldown_until, self._clock() + seconds)

    async def acquire(self) -> float:
        """Wait for this request's turn; return the seconds waited."""
        waited = 0.0
        while True:
            now = self._clock()
            start = max(now, self._cooldown_until)
            if self._interval:
                start = max(start, self._next_slot)
                self._next_slot = start + self._interval
            if start <= now:
                return waited
            await self._sleep(start - now)
            waited += start - now
            # A cool-down that began while we slept outranks the slot we reserved.
            if self._cooldown_until <= self._clock():
                return waited


class RetryScope(Enum):
    """Which failures a request may be retried after."""

    IDEMPOTENT = "idempotent"
    """GET, DELETE, PATCH, and POST declared idempotent: every retryable failure."""
    UNSENT_ONLY = "unsent_only"
    """A plain POST: only failures that prove the server did not act on it (429, no connection)."""


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` waits ``uniform(0, min(cap, base*2^n))``.

    A server's ``Retry-After`` is a floor: the wait is never shorter than it. One longer
    than ``max_retry_after`` is not waited for at all (`too_long`).
    """

    max_retries: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    def too_long(self, retry_after: float | None) -> bool:
        """Whether the server asks for a longer wait than we accept to sit through."""
        return retry_after is not None and retry_after > self.max_retry_after

    def delay(self, attempt: int, rng: _random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
        jittered = rng.uniform(0.0, min(self.cap, self.base * 2.0**attempt))
        return max(jittered, retry_after or 0.0)

    def should_retry(self, error: ApiError, *, attempt: int, scope: RetryScope, sent: bool) -> bool:
        """Whether to try again after ``error`` on attempt ``attempt`` (0-based).

        ``sent`` is False when the request provably never reached the server (the
        connection could not be opened), which makes even a plain POST safe to repeat.
        """
        if attempt >= self.max_retries:
            return False
        if isinstance(error, RateLimited):
            return True  # refused before processing, so repeating cannot duplicate
        if not isinstance(error, TransientError):
            return False
        if not sent:
            return True
        if scope is not RetryScope.IDEMPOTENT:
            return False
        return error.status is None or error.status in RETRY_STATUSES


@dataclass(slots=True)
class RequestBudget:
    """The time one request may take: each attempt at most ``per_attempt`` seconds as a
    whole, and its attempts plus our own backoff at most ``total``.

    Waits the server asked for (Retry-After) are not charged: `RetryPolicy.max_retry_after`
    bounds each of them, and charging them would let one long but honest wait exhaust the
    budget. Time spent queueing for a request slot is not charged either: a request only
    starts its clock once it is sent.
    """

    per_attempt: float
    total: float
    spent: float = 0.0

    def attempt_limit(self) -> float:
        """Seconds the next attempt may take: its own limit or what is left, if less."""
        return max(0.0, min(self.per_attempt, self.total - self.spent))

    @property
    def cut_short(self) -> bool:
        """Whether the next attempt gets less than ``per_attempt`` (the total runs out first)."""
        return self.total - self.spent < self.per_attempt

    def charge(self, seconds: float) -> None:
        """Count ``seconds`` of an attempt or of our own backoff."""
        self.spent += max(0.0, seconds)

    def allows(self, backoff: float) -> bool:
        """Whether waiting ``backoff`` still leaves time for another attempt."""
        return self.spent + max(0.0, backoff) < self.total
