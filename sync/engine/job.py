"""A configured sync as the engine runs it (`SyncJob`), and what a run did (`RunResult`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from connectors.base import Connector
from sync.engine.inputs import Gate
from sync.engine.ops import Action, Operation
from sync.engine.spool import OperationSpool
from sync.engine.status import Status
from sync.errors import RecordError
from sync.model import EntityKind, Side
from sync.policy import SyncPolicy
from sync.settings_base import DEFAULT_CONCURRENCY

__all__ = ["LAST_FULL_SCAN", "RunResult", "SyncJob"]

LAST_FULL_SCAN = "last_full_scan"
"""Key of the stored cursor JSON holding when that side and entity was last read whole."""


@dataclass(slots=True)
class SyncJob:
    """One configured sync: its two sides, its store and its policy."""

    name: str
    crm: Connector
    flowtly: Connector
    store: Status
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    concurrency: int = DEFAULT_CONCURRENCY
    """Writes in flight at once (``[sync] concurrency``)."""
    full_scan: timedelta | None = timedelta(hours=24)
    """How long an incremental side reads only changes before a complete listing again
    (``[sync] full_scan``); None: only when it has no cursor."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    gate: Gate | None = None
    """Data-quality checks run on every record before it is written (`sync.quality.gates`)."""
    after_run: Callable[[RunResult], Awaitable[None]] | None = None
    """Called after a complete, real run, under its lock, before it is recorded as
    finished; may add warnings to the result (`sync.extras.after_run.AfterRun`)."""


@dataclass(slots=True, repr=False)
class RunResult:
    """What a run did (or, dry, would do).

    Its repr names the sync and counts what it holds instead of listing it: ``asyncio.run``
    builds the repr of its main task's result (a `signal.getsignal` lookup fails on the
    handler that names the task, and the failure's message holds the task's repr), and the
    generated repr of every operation of a first sync was the run's largest allocation.
    """

    sync: str
    dry_run: bool
    run_id: int | None = None
    operations: Sequence[Operation] = field(default_factory=OperationSpool)
    """In the order they happened; a run's own are an `OperationSpool` (on disk, streamed)."""
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    waiting: dict[EntityKind, int] = field(default_factory=dict)
    seen: dict[tuple[EntityKind, Side], int] = field(default_factory=dict)
    interrupted: bool = False
    """A stop was requested; steps not started were left for the next run."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"RunResult(sync={self.sync!r}, dry_run={self.dry_run}, run_id={self.run_id}, "
            f"operations={len(self.operations)}, errors={len(self.errors)}, "
            f"warnings={len(self.warnings)}, interrupted={self.interrupted})"
        )

    @property
    def conflicts(self) -> list[Operation]:
        if isinstance(self.operations, OperationSpool):
            return self.operations.conflicts()
        return [op for op in self.operations if op.action is Action.CONFLICT]

    @property
    def clean(self) -> bool:
        return not self.errors and not self.conflicts

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per entity and action; failed operations count once, as errors."""
        ops = self.operations
        done = (
            ops.counts()
            if isinstance(ops, OperationSpool)
            else Counter((str(op.entity), str(op.action)) for op in ops if op.outcome != "error")
        )
        counts: dict[str, dict[str, int]] = {}
        for (entity, action), count in done.items():
            counts.setdefault(entity, {})[action] = count
        for error in self.errors:
            per = counts.setdefault(error.entity, {})
            per["error"] = per.get("error", 0) + 1
        return counts
