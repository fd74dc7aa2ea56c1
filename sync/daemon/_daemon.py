"""The daemon's heart: which sync runs when, what happened last, and whether we are healthy.

Each configured sync has a trigger (cron when set, else its interval). A tick runs the sync
through the same path as ``flowtly-sync run``; the store lock keeps one run per sync across
processes, so a tick that finds it held is skipped, not queued. A run that fails is logged
and retried on the next tick; repeated failures skip 1, 3, 7, ... ticks (capped), so a
broken credential does not hammer Flowtly. Nothing a run raises stops the daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connectors.http import RequestStats
from sync.config import Settings
from sync.daemon._metrics import DaemonMetrics
from sync.daemon._runner import Runner, run_job, secrets_of
from sync.daemon._webhook import WebhookVerifier
from sync.engine.run import RunResult
from sync.errors import LockHeld
from sync.privacy.redact import Scrubber
from sync.store import Store

__all__ = ["Daemon", "Health", "SyncState", "TickOutcome", "TickReason", "backoff_ticks"]

log = structlog.get_logger("sync.daemon")


class TickOutcome(StrEnum):
    """What a tick did: a run's outcome, or why it started none."""

    OK = "ok"
    PARTIAL = "partial"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    LOCK_HELD = "lock_held"
    BUSY = "busy"
    BACKOFF = "backoff"
    STOPPING = "stopping"


_RAN = frozenset({TickOutcome.OK, TickOutcome.PARTIAL, TickOutcome.INTERRUPTED})


class TickReason(StrEnum):
    """What started a tick."""

    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


def backoff_ticks(failures: int, cap: int) -> int:
    """Ticks to skip after ``failures`` consecutive failures: 0, 1, 3, 7, ... at most ``cap``."""
    if failures <= 1 or cap <= 0:
        return 0
    # Past 2**31 the cap has long won; clamping keeps the number small.
    exponent: int = min(failures - 1, 31)
    return min((1 << exponent) - 1, cap)


@dataclass
class SyncState:
    """One sync as the daemon sees it."""

    name: str
    settings: Settings
    trigger: BaseTrigger | None
    running: bool = False
    rerun: bool = False
    """A webhook arrived while running: run once more afterwards."""
    failures: int = 0
    """Consecutive failed runs."""
    skip: int = 0
    """Scheduled ticks still to skip (backoff)."""
    last_outcome: TickOutcome | None = None
    last_error: str | None = None
    last_success: float | None = None
    """Unix time at which the last run that did not fail ended."""
    run_started: float | None = None
    """Monotonic time at which the run in flight started (None when none is)."""


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of ``/healthz``."""

    healthy: bool
    reason: str | None
    syncs: dict[str, dict[str, str | int | bool | None]] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON body (raw JSON at the HTTP edge)."""
        body: dict[str, Any] = {"status": "ok" if self.healthy else "unavailable"}
        if self.reason is not None:
            body["reason"] = self.reason
        body["syncs"] = self.syncs
        return body


def _trigger(settings: Settings, name: str, named: bool) -> BaseTrigger | None:
    cfg = settings.sync
    if cfg.cron:
        return CronTrigger.from_crontab(cfg.cron)  # validated when the configuration loaded
    seconds = cfg.interval_seconds()
    if not seconds:
        return None
    return IntervalTrigger(seconds=seconds)


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


class Daemon:
    """Schedules every configured sync on one shared store.

    ``runner`` replaces the real run (tests); ``clock`` gives Unix time (webhook timestamps,
    last success) and ``monotonic`` measures durations.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        runner: Runner | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        secrets: Iterable[str] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = DaemonMetrics()
        self._runner: Runner = runner or self._run_job
        self._clock = clock
        self._monotonic = monotonic
        known = secrets_of(settings) if secrets is None else secrets
        self._secrets = tuple(s for s in known if s)
        self._scrubber = Scrubber(self._secrets)
        named = bool(settings.syncs)
        self._states: dict[str, SyncState] = {}
        for name in settings.sync_names():
            one = settings.for_sync(name)
            self._states[name] = SyncState(name, one, _trigger(one, name, named))
        cfg = settings.daemon
        self.webhooks = WebhookVerifier(cfg.webhook_secret, cfg.webhook_tolerance, clock)
        self._stopping = False
        self._tasks: set[asyncio.Task[TickOutcome]] = set()
        self._scheduler: AsyncIOScheduler | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The syncs this daemon schedules."""
        return list(self._states)

    def state(self, name: str) -> SyncState:
        """The daemon's view of sync ``name`` (KeyError when not configured)."""
        return self._states[name]

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested (runs in flight finish their current operation)."""
        return self._stopping

    @property
    def tasks(self) -> frozenset[asyncio.Task[TickOutcome]]:
        """Ticks in flight."""
        return frozenset(self._tasks)

    def scrub(self, text: str) -> str:
        """``text`` without any configured secret, nor a credential recognisable by form."""
        return self._scrubber(text)

    def health(self) -> Health:
        """Healthy while the scheduler lives, no run is past its deadline and no sync's last
        run failed."""
        syncs = {
            s.name: {
                "running": s.running,
                "last_outcome": s.last_outcome.value if s.last_outcome else None,
                "last_success": _iso(s.last_success),
                "consecutive_failures": s.failures,
            }
            for s in self._states.values()
        }
        if self._stopping:
            return Health(False, "shutting down", syncs)
        if self._scheduler is None or not self._scheduler.running:
            return Health(False, "scheduler not running", syncs)
        problems = [
            f"sync {s.name}: {late}" for s in self._states.values() if (late := self._overdue(s))
        ]
        problems += [
            f"sync {s.name}: last run failed: {s.last_error}"
            for s in self._states.values()
            if s.last_outcome is TickOutcome.FAILED
        ]
        if problems:
            return Health(False, "; ".join(problems), syncs)
        return Health(True, None, syncs)

    def _overdue(self, state: SyncState) -> str | None:
        """Why the run in flight of ``state`` is past its deadline, if it is.

        The run stops itself at ``sync.run_timeout``; one still going after it is stuck
        somewhere a cancellation does not reach, and must not look healthy meanwhile.
        """
        if state.run_started is None:
            return None
        limit = state.settings.sync.run_timeout
        elapsed = self._monotonic() - state.run_started
        if elapsed <= limit:
            return None
        return f"run in flight for {elapsed:.1f} s, past sync.run_timeout ({limit:g} s)"

    def refresh_gauges(self, name: str) -> None:
        """Read open conflicts and rejected records of ``name`` from the store."""
        try:
            conflicts = len(self.store.open_conflicts(name))
            rejected = len(self.store.rejections(name))
        except Exception as exc:  # a store hiccup must not end the daemon
            log.warning("gauges_not_refreshed", sync=name, error=self.scrub(str(exc)))
            return
        self.metrics.conflicts.labels(name).set(conflicts)
        self.metrics.rejected.labels(name).set(rejected)

    # -- ticks ---------------------------------------------------------------------------

    async def tick(self, name: str, reason: TickReason = TickReason.SCHEDULE) -> TickOutcome:
        """Run sync ``name`` now unless it is running, backing off or the daemon stops."""
        state = self._states[name]
        with structlog.contextvars.bound_contextvars(sync=name, trigger=reason.value):
            if self._stopping:
                return TickOutcome.STOPPING
            if state.running:
                if reason is TickReason.WEBHOOK:
                    state.rerun = True
                return self._skipped(state, TickOutcome.BUSY)
            if state.skip > 0:
                # Only scheduled ticks count down: a burst of webhooks cannot end a backoff.
                if reason is TickReason.SCHEDULE:
                    state.skip -= 1
                return self._skipped(state, TickOutcome.BACKOFF, ticks_left=state.skip)
            state.running = True
            try:
                outcome = await self._run(state)
                while state.rerun and outcome in _RAN and not self._stopping:
                    state.rerun = False
                    outcome = await self._run(state)
            finally:
                state.running = False
                state.rerun = False
                state.run_started = None
            return outcome

    def request_run(self, name: str, reason: TickReason = TickReason.WEBHOOK) -> None:
        """Start a tick of ``name`` in the background (KeyError when not configured)."""
        if name not in self._states:
            raise KeyError(name)
        task = asyncio.get_running_loop().create_task(self.tick(name, reason), name=f"tick {name}")
        self._tasks.add(task)
        task.add_done_callback(self._tick_done)

    def _tick_done(self, task: asyncio.Task[TickOutcome]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("tick_crashed", error=self.scrub(f"{type(exc).__name__}: {exc}"))

    def _skipped(self, state: SyncState, outcome: TickOutcome, **details: Any) -> TickOutcome:
        self.metrics.skipped.labels(state.name, outcome.value).inc()
        log.info("tick_skipped", reason=outcome.value, **details)
        return outcome

    async def _run_job(
        self, settings: Settings, store: Store, stopping: Callable[[], bool]
    ) -> RunResult:
        name = settings.sync.name

        def count(stats: RequestStats) -> None:
            self.metrics.record_requests(name, stats)

        return await run_job(settings, store, stopping, on_requests=count)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def _run(self, state: SyncState) -> TickOutcome:
        name = state.name
        started = state.run_started = self._monotonic()
        try:
            result = await self._runner(state.settings, self.store, self._is_stopping)
        except LockHeld as exc:
            return self._skipped(state, TickOutcome.LOCK_HELD, holder=exc.holder)
        except Exception as exc:
            self.metrics.duration.labels(name).observe(self._monotonic() - started)
            return self._failed(state, exc)
        self.metrics.duration.labels(name).observe(self._monotonic() - started)
        if result.interrupted:
            outcome = TickOutcome.INTERRUPTED
        else:
            outcome = TickOutcome.OK if result.clean else TickOutcome.PARTIAL
        state.failures = state.skip = 0
        state.last_outcome, state.last_error = outcome, None
        state.last_success = self._clock()
        self.metrics.runs.labels(name, outcome.value).inc()
        self.metrics.record_result(name, result)
        self.metrics.last_success.labels(name).set(state.last_success)
        self.refresh_gauges(name)
        log.info(
            "tick_finished",
            outcome=outcome.value,
            run_id=result.run_id,
            operations=len(result.operations),
            errors=len(result.errors),
        )
        return outcome

    def _failed(self, state: SyncState, exc: Exception) -> TickOutcome:
        state.failures += 1
        state.skip = backoff_ticks(state.failures, self.settings.daemon.backoff_max_skip)
        state.last_outcome = TickOutcome.FAILED
        state.last_error = self.scrub(f"{type(exc).__name__}: {exc}")
        self.metrics.runs.labels(state.name, TickOutcome.FAILED.value).inc()
        log.error(
            "run_failed",
            error=state.last_error,
            error_type=type(exc).__name__,
            consecutive_failures=state.failures,
            skipping_ticks=state.skip,
        )
        return TickOutcome.FAILED

    # -- scheduling and stopping ---------------------------------------------------------

    def start_scheduler(self, *, paused: bool = False) -> None:
        """Schedule every sync on the running loop; interval syncs tick at once."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        now = datetime.now(UTC)
        for state in self._states.values():
            if state.trigger is None:
                log.warning("sync_unscheduled", sync=state.name, reason="no interval or cron")
                continue
            options: dict[str, Any] = {}
            if isinstance(state.trigger, IntervalTrigger):
                options["next_run_time"] = now
            scheduler.add_job(
                self._fire,
                state.trigger,
                args=[state.name],
                id=state.name,
                name=f"sync {state.name}",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
                **options,
            )
        scheduler.start(paused=paused)
        self._scheduler = scheduler

    async def _fire(self, name: str) -> None:
        # Returns at once: the scheduler must never count a long run as a job in flight.
        self.request_run(name, TickReason.SCHEDULE)

    def next_run(self, name: str) -> datetime | None:
        """When the scheduler ticks ``name`` next (None when not scheduled)."""
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(name)
        return None if job is None else job.next_run_time

    def stop(self) -> None:
        """Stop scheduling; runs in flight finish their current operation and commit."""
        self._stopping = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def cancel(self) -> None:
        """Cancel the runs in flight (a second signal): each records its run as failed."""
        self.stop()
        for task in self._tasks:
            task.cancel()

    async def drain(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the ticks in flight; True when all ended."""
        pending = set(self._tasks)
        if not pending:
            return True
        _, still = await asyncio.wait(pending, timeout=seconds)
        return not still
