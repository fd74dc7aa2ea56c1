"""Applying a plan: the only place where the engine has effects.

Each step commits on its own, so a failure costs only that entity. Creates follow the
intent protocol: the intent is committed before the request, and cleared in the same
transaction that stores the link. Writes to a side that buffers them (a CSV folder) are
made durable by `Connector.commit` before their links are stored, so a crash never leaves
a link pointing at a record that was not written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from connectors.base import RUN_STOPPING_ERRORS, Connector, ItemResult
from sync.engine.detect import TOMBSTONE
from sync.engine.match import values_key
from sync.engine.ops import Action, Operation, Step, Write
from sync.engine.plan import payload_fingerprint
from sync.engine.spool import OperationSpool
from sync.engine.status import Status, StatusTx
from sync.engine.step_spool import StepQueue
from sync.errors import (
    ConnectorError,
    RecordError,
    RetryableError,
    ValidationFailed,
)
from sync.model import EntityKind, Record, Side
from sync.normalize import fingerprint
from sync.settings_base import DEFAULT_CONCURRENCY
from sync.store.rows import EventOutcome, EventValues, IntentValues, LinkValues

__all__ = ["ApplyContext", "ApplyResult", "CrashPoint", "apply_plan"]


_IN_FLIGHT = 2
"""Chunks sent at a time: one finishing while the next is already under way."""


class CrashPoint(Exception):
    """Raised by a test's crash hook to stop a run at a named point, like a kill would."""


@dataclass(slots=True)
class ApplyContext:
    """What applying needs besides the plan."""

    sync: str
    run_id: int
    store: Status
    sides: Mapping[Side, Connector]
    names: frozenset[str]
    concurrency: int = DEFAULT_CONCURRENCY
    crash: Callable[[str], None] | None = None
    on_step: Callable[[], None] | None = None
    stopping: Callable[[], bool] | None = None
    """Asked before each chunk of steps; once it answers True, steps not yet started are
    left for the next run (a graceful shutdown finishes only what is in flight)."""
    rejected: frozenset[tuple[Side, str]] = frozenset()
    """Records with a stored rejection, cleared when they sync (saves a query per record)."""
    pending_intents: bool = False
    """Whether intents from an earlier run are pending (else there is none to settle)."""


@dataclass(slots=True)
class ApplyResult:
    """Operations as they turned out, and the records that failed."""

    operations: OperationSpool = field(default_factory=OperationSpool)
    errors: list[RecordError] = field(default_factory=list)
    new_links: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    retryable: int = 0
    """Writes that failed in a way worth trying again (5xx, timeouts, 429 after retries)."""


class _Kind(StrEnum):
    """Which batch method carries a write (an archive is an update of ``status``)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


def _kind(action: Action) -> _Kind:
    if action is Action.CREATE:
        return _Kind.CREATE
    if action is Action.DELETE:
        return _Kind.DELETE
    return _Kind.UPDATE


def _id_of(write: Write) -> str:
    assert write.record_id is not None, "updates and deletes name their record"
    return write.record_id


@dataclass(slots=True)
class _Done:
    step: Step
    crm_id: str | None
    flowtly_id: str | None
    crm_fp: str | None
    flowtly_fp: str | None
    intent_id: int | None


def _source_of(write: Write, step: Step) -> tuple[Side, str | None, str | None]:
    source = write.target.other
    if source is Side.CRM:
        return source, step.crm_id, step.crm_fp
    return source, step.flowtly_id, step.flowtly_fp


def _reason(exc: Exception) -> tuple[str, str | None]:
    if isinstance(exc, ValidationFailed) and exc.violations:
        first = exc.violations[0]
        return "; ".join(str(v) for v in exc.violations), first.property_path or None
    return str(exc), None


def _event_values(op: Operation) -> EventValues:
    return EventValues(
        str(op.action),
        op.target,
        op.crm_id,
        op.flowtly_id,
        EventOutcome(op.outcome),
        op.changes,
        op.message,
    )


class _Applier:
    def __init__(self, entity: EntityKind, steps: StepQueue, ctx: ApplyContext) -> None:
        self.steps = steps
        self.ctx = ctx
        self.entity = entity
        self.result = ApplyResult()
        self.deferred: list[_Done] = []

    def _crash(self, point: str) -> None:
        if self.ctx.crash is not None:
            self.ctx.crash(point)

    def _fp(self, record: Record) -> str:
        return fingerprint(self.entity, record.fields, self.ctx.names)

    def _add_intents(self, tx: StatusTx, steps: Sequence[Step]) -> dict[int, int]:
        """Add the intents of every create in ``steps``, to commit before any is sent.

        A chunk of creates costs one durable commit instead of one each. Keyed by
        ``id(step)``.
        """
        creates = [
            (step, write)
            for step in steps
            for write in step.writes
            if write.action is Action.CREATE
        ]
        if not creates:
            return {}
        values: list[IntentValues] = []
        for step, create in creates:
            source_id = step.crm_id if create.target is Side.FLOWTLY else step.flowtly_id
            assert source_id is not None
            payload = payload_fingerprint(self.entity, step.base)
            key = values_key(self.entity, step.base) if step.key_from_base else step.natural_key
            values.append(IntentValues(create.target, source_id, key, payload))
        if self.ctx.pending_intents:
            for intent in values:
                tx.clear_intents_for(self.ctx.sync, self.entity, intent.target, intent.source_id)
        ids = tx.add_intents(self.ctx.sync, self.entity, self.ctx.run_id, values)
        return {id(step): intent_id for (step, _), intent_id in zip(creates, ids, strict=True)}

    def _failed(self, step: Step, done: _Done, write: Write, exc: ConnectorError) -> None:
        reason, field_name = _reason(exc)
        source, source_id, source_fp = _source_of(write, step)
        record_id = source_id or "?"
        error = RecordError(
            str(self.entity),
            str(write.target),
            record_id,
            f"{write.action} on {write.target} refused: {reason}"
            if isinstance(exc, ValidationFailed)
            else f"{write.action} on {write.target} failed: {reason}",
            field=field_name,
        )
        self.result.errors.append(error)
        if isinstance(exc, RetryableError):
            self.result.retryable += 1
        ops = [
            replace(op, outcome="error", message=error.reason)
            for op in step.operations()
            if op.target is write.target
        ]
        self.result.operations.extend(ops)
        with self.ctx.store.transaction() as tx:
            if isinstance(exc, ValidationFailed):
                if source_id is not None and source_fp is not None:
                    tx.record_rejection(
                        self.ctx.sync,
                        self.entity,
                        source,
                        source_id,
                        field_name,
                        None,
                        reason,
                        source_fp,
                    )
                if done.intent_id is not None and write.action is Action.CREATE:
                    tx.clear_intent(done.intent_id)
            tx.add_events(self.ctx.run_id, self.entity, [_event_values(op) for op in ops])

    def _store(self, finished: Sequence[_Done]) -> None:
        """Record finished steps (links, conflicts, audit events) in one transaction."""
        if not finished:
            return
        with self.ctx.store.transaction() as tx:
            ops = self._write_links(tx, finished)
        self.result.operations.extend(ops)
        self._crash("after_store")

    def _write_links(self, tx: StatusTx, finished: Sequence[_Done]) -> list[Operation]:
        """Write what finished steps leave in the store; their operations, to report once
        the transaction commits."""
        sync, entity = self.ctx.sync, self.entity
        links: list[LinkValues] = []
        events: list[EventValues] = []
        all_ops: list[Operation] = []
        if finished:
            for done in finished:
                step = done.step
                if step.replaces is not None:
                    tx.delete_link(sync, entity, step.replaces)
                if step.unlink:
                    if done.crm_id is not None:
                        tx.delete_link(sync, entity, done.crm_id)
                else:
                    assert done.crm_id is not None
                    assert done.flowtly_id is not None
                    links.append(
                        LinkValues(
                            done.crm_id,
                            done.flowtly_id,
                            step.base,
                            done.crm_fp or TOMBSTONE,
                            done.flowtly_fp or TOMBSTONE,
                        )
                    )
                    self.result.new_links[done.crm_id] = done.flowtly_id
                    for side, record_id in (
                        (Side.CRM, done.crm_id),
                        (Side.FLOWTLY, done.flowtly_id),
                    ):
                        if (side, record_id) in self.ctx.rejected:
                            tx.clear_rejection(sync, entity, side, record_id)
                    if step.link and done.intent_id is None and self.ctx.pending_intents:
                        # A create that landed before a crash is linked by matching, not by
                        # its own step: its intent is settled now as well.
                        tx.clear_intents_for(sync, entity, Side.FLOWTLY, done.crm_id)
                        tx.clear_intents_for(sync, entity, Side.CRM, done.flowtly_id)
                for conflict in step.conflicts:
                    assert done.crm_id is not None
                    assert done.flowtly_id is not None
                    tx.record_conflict(
                        sync,
                        entity,
                        done.crm_id,
                        done.flowtly_id,
                        conflict.field,
                        conflict.base,
                        conflict.crm,
                        conflict.flowtly,
                    )
                for op in step.operations():
                    op = replace(op, crm_id=done.crm_id, flowtly_id=done.flowtly_id, outcome="ok")
                    all_ops.append(op)
                    events.append(_event_values(op))
            tx.save_links(sync, entity, links)
            tx.clear_intents(d.intent_id for d in finished if d.intent_id is not None)
            tx.add_events(self.ctx.run_id, entity, events)
        return all_ops

    async def _send(
        self, steps: Sequence[Step], intents: Mapping[int, int], semaphore: asyncio.Semaphore
    ) -> list[_Done]:
        """Send a chunk's writes (its intents are committed); the steps that finished.

        A step's writes go in order: the first write of every step, then the second of
        those whose first succeeded. Each round sends one batch per target side and kind
        of write (`Connector.create_many` and its siblings), so a side with a batch API
        gets one call where single calls would make dozens.
        """
        alive = [
            _Done(
                step,
                step.crm_id,
                step.flowtly_id,
                step.crm_fp,
                step.flowtly_fp,
                intents.get(id(step)),
            )
            for step in steps
        ]
        failed: set[int] = set()
        round_ = 0
        while True:
            due = [done for done in alive if round_ < len(done.step.writes)]
            if not due:
                break
            groups: dict[tuple[Side, _Kind], list[_Done]] = {}
            for done in due:
                write = done.step.writes[round_]
                groups.setdefault((write.target, _kind(write.action)), []).append(done)
            try:
                async with asyncio.TaskGroup() as group:
                    for (target, kind), members in groups.items():
                        group.create_task(
                            self._send_batch(target, kind, members, round_, semaphore, failed)
                        )
            except BaseExceptionGroup as failures:
                # Per-record failures are results; what is raised is fatal for the run.
                raise failures.exceptions[0] from None
            round_ += 1
        if self.ctx.on_step is not None:
            for _ in steps:
                self.ctx.on_step()
        return [done for done in alive if id(done) not in failed]

    async def _send_batch(
        self,
        target: Side,
        kind: _Kind,
        members: Sequence[_Done],
        round_: int,
        semaphore: asyncio.Semaphore,
        failed: set[int],
    ) -> None:
        """One batch call; each item's result lands on its step (or fails it)."""
        side, entity = self.ctx.sides[target], self.entity
        writes = [done.step.writes[round_] for done in members]
        try:
            if kind is _Kind.CREATE:
                results = await side.create_many(
                    entity, [w.values() for w in writes], limit=semaphore
                )
            elif kind is _Kind.DELETE:
                results = await side.delete_many(
                    entity, [_id_of(w) for w in writes], limit=semaphore
                )
            else:
                results = await side.update_many(
                    entity, [(_id_of(w), w.values()) for w in writes], limit=semaphore
                )
        except RUN_STOPPING_ERRORS:
            raise
        except ConnectorError as exc:
            # The batch failed as a whole: every item of it failed the same way.
            results = [ItemResult(error=exc)] * len(members)
        if len(results) != len(members):
            raise ConnectorError(
                f"{side.describe()}: {len(results)} results for a batch of {len(members)} "
                f"{entity} {kind} writes"
            )
        landed = False
        for done, write, result in zip(members, writes, results, strict=True):
            error = result.error
            if error is None and result.record is None and kind is not _Kind.DELETE:
                error = ConnectorError(f"{side.describe()} answered a {kind} without the record")
            if error is not None:
                if isinstance(error, RUN_STOPPING_ERRORS):
                    raise error
                self._failed(done.step, done, write, error)
                failed.add(id(done))
                continue
            landed = True
            if result.record is not None:
                self._landed(done, write, result.record)
        if landed:
            self._crash(f"after_write_{target}")

    def _landed(self, done: _Done, write: Write, record: Record) -> None:
        """Note what a successful create or update left on its target side."""
        fp = self._fp(record)
        if write.target is Side.FLOWTLY:
            if write.action is Action.CREATE:
                done.flowtly_id = record.id
            done.flowtly_fp = fp
        else:
            if write.action is Action.CREATE:
                done.crm_id = record.id
            done.crm_fp = fp

    def _storable(self, finished: Sequence[_Done]) -> list[_Done]:
        """The finished steps whose links may be stored now; the rest wait for the CRM
        side's `Connector.commit` (`deferred`)."""
        to_crm = [any(w.target is Side.CRM for w in d.step.writes) for d in finished]
        self.deferred.extend(d for d, deferred in zip(finished, to_crm, strict=True) if deferred)
        return [d for d, deferred in zip(finished, to_crm, strict=True) if not deferred]

    def _next_chunk(self, finished: Sequence[_Done], chunk: Sequence[Step]) -> dict[int, int]:
        """Store what an earlier chunk finished and add ``chunk``'s intents, in one commit.

        Both are durable before ``chunk`` is sent, as two commits would leave them; one
        durable commit per chunk instead of two keeps the loop free for the answers.
        """
        stored = self._storable(finished)
        with self.ctx.store.transaction() as tx:
            ops = self._write_links(tx, stored)
            intents = self._add_intents(tx, chunk)
        self.result.operations.extend(ops)
        if stored:
            self._crash("after_store")
        self._crash("after_intent")
        return intents

    async def run(self) -> ApplyResult:
        """Apply the plan chunk by chunk, each chunk's intents committed before it is sent.

        Two chunks are in flight at a time: once the older one finishes, its links are
        stored with the intents of the next chunk in one commit and the next is sent, so
        requests stay in flight while the store commits (a commit between chunks with
        nothing in flight cost a fifth of an initial sync's time). Each chunk is taken off
        ``steps`` as it is sent, so a step is let go once it is applied and stored.
        """
        semaphore = asyncio.Semaphore(self.ctx.concurrency)
        steps = self.steps
        # Chunks large enough to keep every request slot busy, and to fill a whole batch
        # call of a side that writes in batches.
        batch = max(side.write_batch for side in self.ctx.sides.values())
        size = max(16, self.ctx.concurrency * 8, batch)
        flying: deque[asyncio.Task[list[_Done]]] = deque()
        try:
            while steps:
                finished: list[_Done] = []
                if len(flying) == _IN_FLIGHT:
                    finished = await flying[0]
                    flying.popleft()
                if self.ctx.stopping is not None and self.ctx.stopping():
                    self.result.skipped += len(steps)
                    self._store(self._storable(finished))
                    break
                chunk = [steps.popleft() for _ in range(min(size, len(steps)))]
                intents = self._next_chunk(finished, chunk)
                flying.append(asyncio.create_task(self._send(chunk, intents, semaphore)))
            while flying:
                self._store(self._storable(await flying[0]))
                flying.popleft()
        finally:
            for sending in flying:
                # A fatal error stopped the run: what is in flight is not waited for.
                sending.cancel()
                with contextlib.suppress(BaseException):
                    await sending
        if self.deferred:
            self._crash("before_crm_commit")
            await self.ctx.sides[Side.CRM].commit()
            self._crash("after_crm_commit")
            for start in range(0, len(self.deferred), size):
                self._store(self.deferred[start : start + size])
        return self.result


async def apply_plan(entity: EntityKind, steps: StepQueue, ctx: ApplyContext) -> ApplyResult:
    """Carry out an entity's planned ``steps``, taking each off ``steps`` as it is sent;
    per-record failures are collected, fatal ones raised.

    A plan's steps hold the values they write: an initial sync's plan is every record of
    the entity, and letting each go once applied keeps it from being held beside what the
    apply adds (new ids, stored links) until the whole entity is done.
    """
    return await _Applier(entity, steps, ctx).run()
