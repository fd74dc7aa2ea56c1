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
    report_to: OperationSpool | None = None
    """The run's operations: what is applied is spooled to the same scratch file, so the
    run takes it over without reading it back (`OperationSpool.sibling`)."""


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
    failure: tuple[Write, ConnectorError, RecordError] | None = None
    """The write that failed, why, and the error reported; stored with the step's chunk."""


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
        report_to = ctx.report_to
        self.result = ApplyResult(OperationSpool() if report_to is None else report_to.sibling())
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

    def _failed(self, done: _Done, write: Write, exc: ConnectorError) -> None:
        """Note a failed write on its step; what it leaves in the store is written with
        the step's chunk."""
        reason, field_name = _reason(exc)
        _, source_id, _ = _source_of(write, done.step)
        error = RecordError(
            str(self.entity),
            str(write.target),
            source_id or "?",
            f"{write.action} on {write.target} refused: {reason}"
            if isinstance(exc, ValidationFailed)
            else f"{write.action} on {write.target} failed: {reason}",
            field=field_name,
        )
        self.result.errors.append(error)
        if isinstance(exc, RetryableError):
            self.result.retryable += 1
        done.failure = (write, exc, error)

    def _write_failure(self, tx: StatusTx, done: _Done) -> list[Operation]:
        """Store a failed step's rejection and audit events; its operations, to report."""
        assert done.failure is not None
        write, exc, error = done.failure
        ops = [
            replace(op, outcome="error", message=error.reason)
            for op in done.step.operations()
            if op.target is write.target
        ]
        if isinstance(exc, ValidationFailed):
            source, source_id, source_fp = _source_of(write, done.step)
            if source_id is not None and source_fp is not None:
                tx.record_rejection(
                    self.ctx.sync,
                    self.entity,
                    source,
                    source_id,
                    error.field,
                    None,
                    _reason(exc)[0],
                    source_fp,
                )
            if done.intent_id is not None and write.action is Action.CREATE:
                tx.clear_intent(done.intent_id)
        return ops

    def _write_links(self, tx: StatusTx, finished: Sequence[_Done]) -> list[Operation]:
        """Write what finished steps leave in the store (links, conflicts, audit events,
        the failures of those that failed); their operations, to report once the
        transaction commits."""
        sync, entity = self.ctx.sync, self.entity
        links: list[LinkValues] = []
        events: list[EventValues] = []
        all_ops: list[Operation] = []
        if finished:
            for done in finished:
                step = done.step
                if done.failure is not None:
                    failed_ops = self._write_failure(tx, done)
                    all_ops.extend(failed_ops)
                    events.extend(_event_values(op) for op in failed_ops)
                    continue
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
            tx.clear_intents(
                d.intent_id for d in finished if d.intent_id is not None and d.failure is None
            )
            tx.add_events(self.ctx.run_id, entity, events)
        return all_ops

    async def _send(
        self, steps: Sequence[Step], intents: Mapping[int, int], semaphore: asyncio.Semaphore
    ) -> list[_Done]:
        """Send a chunk's writes (its intents are committed); its steps, each finished or
        failed (`_Done.failure`).

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
        round_ = 0
        while True:
            due = [
                done for done in alive if round_ < len(done.step.writes) and done.failure is None
            ]
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
                            self._send_batch(target, kind, members, round_, semaphore)
                        )
            except BaseExceptionGroup as failures:
                # Per-record failures are results; what is raised is fatal for the run.
                raise failures.exceptions[0] from None
            round_ += 1
        if self.ctx.on_step is not None:
            for _ in steps:
                self.ctx.on_step()
        return alive

    async def _send_batch(
        self,
        target: Side,
        kind: _Kind,
        members: Sequence[_Done],
        round_: int,
        semaphore: asyncio.Semaphore,
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
                self._failed(done, write, error)
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
        """The steps whose outcome may be stored now; the rest wait for the CRM side's
        `Connector.commit` (`deferred`): those that wrote to the CRM."""
        storable: list[_Done] = []
        for done in finished:
            wrote_crm = done.failure is None and any(w.target is Side.CRM for w in done.step.writes)
            (self.deferred if wrote_crm else storable).append(done)
        return storable

    def _transact(
        self, stored: Sequence[_Done], chunk: Sequence[Step]
    ) -> tuple[list[Operation], dict[int, int]]:
        """One transaction: what ``stored`` leaves in the store, and ``chunk``'s intents and
        what its updates send.

        Runs in a worker thread, touching nothing but the store: the event loop goes on
        taking answers and sending requests while the database works and syncs to disk.
        """
        with self.ctx.store.transaction() as tx:
            ops = self._write_links(tx, stored)
            intents = self._add_intents(tx, chunk)
            # What the chunk's updates send is noted before they go out (`sync.engine.sent`).
            sent = [(s.crm_id, s.sent) for s in chunk if s.sent and s.crm_id is not None]
            if sent:
                tx.note_sent(self.ctx.sync, self.entity, sent)
        return ops, intents

    async def _commit(self, stored: Sequence[_Done], chunk: Sequence[Step]) -> dict[int, int]:
        """Store the outcome of the ``stored`` steps and add ``chunk``'s intents, in one
        durable commit made off the event loop; the intents' ids by ``id(step)``.

        Both are durable before ``chunk`` is sent, as two commits would leave them; one
        commit per chunk instead of two, and made in a thread, keeps the loop free for the
        answers (a chunk's commit held the loop for 10-20 ms, with every request slot
        waiting behind it).
        """
        if not stored and not chunk:
            return {}
        ops, intents = await asyncio.to_thread(self._transact, stored, chunk)
        self.result.operations.extend(ops)
        linked = [d for d in stored if d.failure is None and not d.step.unlink]
        for done in linked:
            assert done.crm_id is not None
            assert done.flowtly_id is not None
            self.result.new_links[done.crm_id] = done.flowtly_id
        if linked:
            self._crash("after_store")
        if chunk:
            self._crash("after_intent")
        return intents

    async def run(self) -> ApplyResult:
        """Apply the plan chunk by chunk, each chunk's intents committed before it is sent.

        Two chunks are in flight at a time: once the older one finishes, its outcome is
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
                    await self._commit(self._storable(finished), ())
                    break
                chunk = [steps.popleft() for _ in range(min(size, len(steps)))]
                intents = await self._commit(self._storable(finished), chunk)
                flying.append(asyncio.create_task(self._send(chunk, intents, semaphore)))
            while flying:
                await self._commit(self._storable(await flying[0]), ())
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
            deferred, self.deferred = self.deferred, []
            for start in range(0, len(deferred), size):
                await self._commit(deferred[start : start + size], ())
        return self.result


async def apply_plan(entity: EntityKind, steps: StepQueue, ctx: ApplyContext) -> ApplyResult:
    """Carry out an entity's planned ``steps``, taking each off ``steps`` as it is sent;
    per-record failures are collected, fatal ones raised.

    A plan's steps hold the values they write: an initial sync's plan is every record of
    the entity, and letting each go once applied keeps it from being held beside what the
    apply adds (new ids, stored links) until the whole entity is done.
    """
    return await _Applier(entity, steps, ctx).run()
