"""Request-level misbehaviour: a token-bucket rate limit and seeded fault injection."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from sync.sandbox._errors import Problem

__all__ = ["FaultInjector", "TokenBucket"]


class TokenBucket:
    """``rate`` requests per second with a burst of one second's worth (at least one)."""

    def __init__(self, rate: float, monotonic: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._monotonic = monotonic
        self._last = monotonic()

    def take(self) -> None:
        """Consume one token or raise a 429 Problem with ``Retry-After`` in whole seconds."""
        now = self._monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        wait = max(1, math.ceil((1.0 - self._tokens) / self._rate))
        raise Problem(429, "Too Many Requests", headers={"Retry-After": str(wait)})


class FaultInjector:
    """Answers a ``fail_rate`` fraction of requests with 500 or 503, reproducibly by seed."""

    _DETAILS = {500: "Internal Server Error", 503: "Service Unavailable"}

    def __init__(self, fail_rate: float, seed: int | None) -> None:
        self._fail_rate = fail_rate
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not cryptography

    def check(self) -> None:
        """Raise a 5xx Problem for this request if the draw says so."""
        if self._fail_rate <= 0.0 or self._random.random() >= self._fail_rate:
            return
        status = self._random.choice((500, 503))
        raise Problem(status, self._DETAILS[status])
