"""Applying a plan: the only place where the engine has effects.

Each step commits on its own, so a failure costs only that entity. Creates follow the
intent protocol: the intent is committed before the request, and cleared in the same
transaction that stores the link. Writes to a side that buffers them (a CSV folder) are
made durable by `Connector.commit` before their links are stored, so a crash never leaves
a link pointing at a record that was not written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from connectors.base import Connector
from sync.engine.detect import TOMBSTONE
from sync.engine.ops import Action, Operation, Plan, Step, Write
from sync.engine.plan import payload_fingerprint
from sync.errors import (
    AuthenticationError,
    ConnectorError,
    RecordError,
    TransportSecurityError,
    ValidationFailed,
)
from sync.model import Record, Side
from sync.normalize import fingerprint
from sync.store import EventOutcome, Store, StoreTx

__all__ = ["ApplyContext", "ApplyResult", "CrashPoint", "apply_plan"]


class CrashPoint(Exception):
    """Raised by a test's crash hook to stop a run at a named point, like a kill would."""


@dataclass(slots=True)
class ApplyContext:
    """What applying needs besides the plan."""

    sync: str
    run_id: int
    store: Store
    sides: Mapping[Side, Connector]
    names: frozenset[str]
    concurrency: int = 8
    crash: Callable[[str], None] | None = None
    on_step: Callable[[], None] | None = None
    stopping: Callable[[], bool] | None = None
    """Asked before each step; once it answers True, steps not yet started are left for
    the next run (a graceful shutdown finishes only what is in flight)."""


@dataclass(slots=True)
class ApplyResult:
    """Operations as they turned out, and the records that failed."""

    operations: list[Operation] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    new_links: dict[str, str] = field(default_factory=dict)
    skipped: int = 0


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


class _Applier:
    def __init__(self, plan: Plan, ctx: ApplyContext) -> None:
        self.plan = plan
        self.ctx = ctx
        self.entity = plan.entity
        self.result = ApplyResult()
        self.deferred: list[_Done] = []

    def _crash(self, point: str) -> None:
        if self.ctx.crash is not None:
            self.ctx.crash(point)

    def _fp(self, record: Record) -> str:
        return fingerprint(self.entity, record.fields, self.ctx.names)

    async def _write(self, step: Step, done: _Done, write: Write) -> None:
        side = self.ctx.sides[write.target]
        if write.action is Action.CREATE:
            record = await side.create(self.entity, write.values())
            if write.target is Side.FLOWTLY:
                done.flowtly_id, done.flowtly_fp = record.id, self._fp(record)
            else:
                done.crm_id, done.crm_fp = record.id, self._fp(record)
        elif write.action is Action.DELETE:
            assert write.record_id is not None
            await side.delete(self.entity, write.record_id)
        else:
            assert write.record_id is not None
            record = await side.update(self.entity, write.record_id, write.values())
            if write.target is Side.FLOWTLY:
                done.flowtly_fp = self._fp(record)
            else:
                done.crm_fp = self._fp(record)

    def _begin_intent(self, step: Step) -> int | None:
        create = next((w for w in step.writes if w.action is Action.CREATE), None)
        if create is None:
            return None
        source_id = step.crm_id if create.target is Side.FLOWTLY else step.flowtly_id
        assert source_id is not None
        with self.ctx.store.transaction() as tx:
            tx.clear_intents_for(self.ctx.sync, self.entity, create.target, source_id)
            intent_id: int = tx.add_intent(
                self.ctx.sync,
                self.entity,
                create.target,
                source_id,
                step.natural_key,
                payload_fingerprint(self.entity, step.base),
                self.ctx.run_id,
            )
        return intent_id

    async def apply_step(self, step: Step) -> None:
        done = _Done(step, step.crm_id, step.flowtly_id, step.crm_fp, step.flowtly_fp, None)
        done.intent_id = self._begin_intent(step)
        self._crash("after_intent")
        for write in step.writes:
            try:
                await self._write(step, done, write)
            except (AuthenticationError, TransportSecurityError):
                raise
            except ConnectorError as exc:
                self._failed(step, done, write, exc)
                return
            self._crash(f"after_write_{write.target}")
        if any(w.target is Side.CRM for w in step.writes):
            self.deferred.append(done)
        else:
            self._store(done)

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
            for op in ops:
                self._event(tx, op)

    def _event(self, tx: StoreTx, op: Operation) -> None:
        tx.add_event(
            self.ctx.run_id,
            self.entity,
            str(op.action),
            op.target,
            op.crm_id,
            op.flowtly_id,
            EventOutcome(op.outcome),
            op.changes,
            op.message,
        )

    def _store(self, done: _Done) -> None:
        step, sync = done.step, self.ctx.sync
        ops = [
            replace(op, crm_id=done.crm_id, flowtly_id=done.flowtly_id, outcome="ok")
            for op in step.operations()
        ]
        with self.ctx.store.transaction() as tx:
            if step.replaces is not None:
                tx.delete_link(sync, self.entity, step.replaces)
            if step.unlink:
                if done.crm_id is not None:
                    tx.delete_link(sync, self.entity, done.crm_id)
            else:
                assert done.crm_id is not None
                assert done.flowtly_id is not None
                tx.save_link(
                    sync,
                    self.entity,
                    done.crm_id,
                    done.flowtly_id,
                    step.base,
                    done.crm_fp or TOMBSTONE,
                    done.flowtly_fp or TOMBSTONE,
                )
                self.result.new_links[done.crm_id] = done.flowtly_id
                tx.clear_rejection(sync, self.entity, Side.CRM, done.crm_id)
                tx.clear_rejection(sync, self.entity, Side.FLOWTLY, done.flowtly_id)
                if step.link:
                    # A create that landed before a crash is linked by matching, not by
                    # its own step: its intent is settled now as well.
                    tx.clear_intents_for(sync, self.entity, Side.FLOWTLY, done.crm_id)
                    tx.clear_intents_for(sync, self.entity, Side.CRM, done.flowtly_id)
            if done.intent_id is not None:
                tx.clear_intent(done.intent_id)
            for conflict in step.conflicts:
                assert done.crm_id is not None
                assert done.flowtly_id is not None
                tx.record_conflict(
                    sync,
                    self.entity,
                    done.crm_id,
                    done.flowtly_id,
                    conflict.field,
                    conflict.base,
                    conflict.crm,
                    conflict.flowtly,
                )
            for op in ops:
                self._event(tx, op)
        self.result.operations.extend(ops)
        self._crash("after_store")

    async def run(self) -> ApplyResult:
        semaphore = asyncio.Semaphore(max(1, self.ctx.concurrency))

        async def guarded(step: Step) -> None:
            async with semaphore:
                if self.ctx.stopping is not None and self.ctx.stopping():
                    self.result.skipped += 1
                    return
                await self.apply_step(step)
            if self.ctx.on_step is not None:
                self.ctx.on_step()

        try:
            async with asyncio.TaskGroup() as group:
                for step in self.plan.steps:
                    group.create_task(guarded(step))
        except BaseExceptionGroup as failures:
            # Per-record failures never escape apply_step; what does is fatal for the run.
            raise failures.exceptions[0] from None
        if self.deferred:
            self._crash("before_crm_commit")
            await self.ctx.sides[Side.CRM].commit()
            self._crash("after_crm_commit")
            for done in self.deferred:
                self._store(done)
        return self.result


async def apply_plan(plan: Plan, ctx: ApplyContext) -> ApplyResult:
    """Carry out ``plan``; per-record failures are collected, fatal ones raised."""
    return await _Applier(plan, ctx).run()
