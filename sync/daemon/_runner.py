"""What one tick runs: the same ``open_job`` + ``run_sync`` path as ``flowtly-sync run``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from connectors.http import RequestStats
from sync.config import Settings
from sync.engine.run import RunResult, run_sync
from sync.store import Store
from sync.wiring import open_job

__all__ = ["Runner", "run_job", "secrets_of"]

Runner = Callable[[Settings, Store, Callable[[], bool]], Awaitable[RunResult]]
"""Runs one sync once: ``(settings of that sync, store, stopping) -> result``; raises when
the run cannot proceed (`sync.errors.LockHeld` when another process holds the sync)."""


async def run_job(
    settings: Settings,
    store: Store,
    stopping: Callable[[], bool],
    *,
    on_requests: Callable[[RequestStats], None] | None = None,
) -> RunResult:
    """Run ``settings``' sync once; ``on_requests`` gets the Flowtly side's request
    counters afterwards, whether the run succeeded or not."""
    stats: RequestStats | None = None
    try:
        async with open_job(settings, store) as job:
            stats = job.flowtly.request_stats()
            return await run_sync(job, stopping=stopping, run_timeout=settings.sync.run_timeout)
    finally:
        if on_requests is not None and stats is not None:
            on_requests(stats)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the configuration holds: the values log redaction must know."""
    return settings.secrets()
