"""Options of the Flowtly sandbox (token, latency, rate limit, faults, persistence, clock)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SandboxSettings"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """How a sandbox behaves. The defaults give a fast, fault-free, in-memory Flowtly.

    ``token``: the only bearer token accepted; ``None`` accepts any non-empty bearer.
    ``latency_ms``: how long every answer takes, through ``sleep`` (timed by ``monotonic``);
    the sandbox's own handling is done within it, as a distant API's is.
    ``rate_limit``: requests per second (token bucket, burst of one second); 0 disables.
    ``fail_rate``: fraction of requests answered 500 or 503, drawn from ``random.Random(seed)``.
    ``seed``: makes fault injection and note UUIDs reproducible.
    ``db``: SQLite file that survives restarts, or ``None`` for memory.
    ``clock``: source of ``createdAt``/``updatedAt``; ``monotonic`` feeds the rate limiter
    and times the latency.
    ``base_path``: route prefix, e.g. ``"/api"`` for the old Flowtly docs layout.
    """

    token: str | None = None
    latency_ms: float = 0.0
    rate_limit: float = 0.0
    fail_rate: float = 0.0
    seed: int | None = None
    db: Path | str | None = None
    clock: Callable[[], datetime] = _utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic
    base_path: str = ""

    def __post_init__(self) -> None:
        if self.token is not None and not self.token.strip():
            raise ValueError("token must be non-blank or None")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.base_path and (not self.base_path.startswith("/") or self.base_path.endswith("/")):
            raise ValueError("base_path must start with '/' and not end with '/'")
