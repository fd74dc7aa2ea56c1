"""One run of one sync: read both sides, detect, plan, then render or apply.

Entities go parents first (clients, counterparties, then contacts and notes), so that a
contact's company is linked before the contact is planned. ``run_sync`` is the single code
path behind ``flowtly-sync run``, ``diff`` and the daemon's ticks.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping, Set
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from sync.engine.apply import ApplyContext, ApplyResult, apply_plan
from sync.engine.binding import check_binding
from sync.engine.detect import SideView
from sync.engine.job import RunResult, SyncJob
from sync.engine.ops import Plan
from sync.engine.plan import plan_entity
from sync.engine.reading import PlanReader
from sync.engine.spool import OperationSpool
from sync.engine.step_spool import StepQueue
from sync.errors import DeadlineExceeded
from sync.model import EntityKind, Side
from sync.store.rows import RunOutcome

__all__ = ["ENTITY_ORDER", "RunResult", "SyncJob", "run_sync"]


EXTRA_PASSES = 2
"""How many times an entity is read and planned again after writes failed transiently."""

ENTITY_ORDER = (EntityKind.CLIENT, EntityKind.COUNTERPARTY, EntityKind.CONTACT, EntityKind.NOTE)

log = structlog.get_logger("sync.engine")


class _Run:
    def __init__(
        self,
        job: SyncJob,
        dry_run: bool,
        crash: Callable[[str], None] | None,
        progress: Callable[[str, int], None] | None,
        stopping: Callable[[], bool] | None = None,
        run_timeout: float | None = None,
        expect: Callable[[str, int], None] | None = None,
    ) -> None:
        self.expect = expect
        self.stopping = stopping
        self.run_timeout = run_timeout
        self.job = job
        self.dry_run = dry_run
        self.crash = crash
        self.progress = progress
        self.operations = OperationSpool()
        self.result = RunResult(job.name, dry_run, operations=self.operations)
        self.reader = PlanReader(
            job, dry_run=dry_run, now=job.clock(), progress=progress, seen=self.result.seen
        )

    async def entity(self, entity: EntityKind) -> None:
        """Sync one entity kind; passes again while writes failed for passing reasons.

        A create answered 5xx or timed out may or may not have landed, so it is never
        blindly re-sent. Another pass re-reads both sides instead: a create that landed is
        found and linked through its intent, one that did not is sent again.
        """
        for attempt in range(1 + EXTRA_PASSES):
            final = attempt == EXTRA_PASSES
            if await self._pass(entity, final=final):
                return
            log.info("entity_pass_again", entity=str(entity), attempt=attempt + 1)

    async def _pass(self, entity: EntityKind, *, final: bool) -> bool:
        """One read-plan-apply pass; False when it should be repeated (nothing reported)."""
        job = self.job
        names = job.crm.fields(entity) & job.flowtly.fields(entity)
        inp = await self.reader.plan_input(entity, names)
        crm_view, fl_view, rejections = inp.crm, inp.flowtly, inp.rejections
        pending_intents = bool(inp.crm_intents or inp.flowtly_intents)
        plan = plan_entity(inp)
        # The plan holds what it writes: the records read and the links and bases loaded
        # for them are let go before applying, so they are never held beside the plan.
        del inp
        crm_view.release_records()
        fl_view.release_records()
        if self.dry_run:
            self._report(plan, None)
            self.reader.remember_planned(plan)
            self.operations.extend(plan.operations())
            return True
        self._remember_rejections(
            entity, plan, {Side.CRM: crm_view, Side.FLOWTLY: fl_view}, rejections.keys()
        )
        written = f"write {entity}"
        if self.expect is not None:
            self.expect(written, len(plan.steps))
        progress = self.progress
        # Applying takes the steps off one by one; the plan keeps the rest of its findings.
        steps = StepQueue(plan.steps)
        plan = replace(plan, steps=())
        applied = await apply_plan(
            entity,
            steps,
            ApplyContext(
                job.name,
                self.result.run_id or 0,
                job.store,
                {Side.CRM: job.crm, Side.FLOWTLY: job.flowtly},
                names,
                concurrency=job.concurrency,
                crash=self.crash,
                stopping=self.stopping,
                rejected=frozenset(rejections),
                pending_intents=pending_intents,
                report_to=self.operations,
                on_step=None if progress is None else lambda: progress(written, 1),
            ),
        )
        if applied.retryable and not final and not applied.skipped:
            # Keep what succeeded; the failures are tried again by the next pass.
            self.operations.extend(op for op in applied.operations if op.outcome == "ok")
            return False
        self._report(plan, applied)
        if not plan.errors and not plan.waiting and not plan.held_creates and not applied.errors:
            self._advance_cursors(entity, crm_view, fl_view)
        return True

    def _report(self, plan: Plan, applied: ApplyResult | None) -> None:
        self.result.waiting[plan.entity] = plan.waiting
        self.result.errors.extend(plan.errors)
        self.result.warnings.extend(plan.warnings)
        self.result.warnings.extend(plan.waiting_records)
        if applied is not None:
            if applied.skipped:
                self.result.interrupted = True
            self.operations.extend(applied.operations)
            self.result.errors.extend(applied.errors)

    def _remember_rejections(
        self,
        entity: EntityKind,
        plan: Plan,
        views: Mapping[Side, SideView],
        existing: Set[tuple[Side, str]],
    ) -> None:
        """Keep the store's rejected records (``existing``, as loaded for planning) equal
        to what this run still rejects.

        Records rejected earlier and reported again keep their first reason and fingerprint
        (so "retry when the source changes" holds); the rest are forgotten.
        """
        name = self.job.name
        current = {
            (Side(e.side), e.record_id): e
            for e in plan.errors
            if e.record_id not in ("*", "?") and (Side(e.side), e.record_id) not in plan.rechecked
        }
        # Records waiting for their company are kept too, for `status` to name them, with
        # no fingerprint: a rejection is skipped while its record is unchanged, and these
        # must be planned again every run (they sync once their company is linked).
        waiting = {(Side(w.side), w.record_id): w for w in plan.waiting_records}
        current = {**waiting, **current}
        with self.job.store.transaction() as tx:
            for side, record_id in existing - current.keys():
                tx.clear_rejection(name, entity, side, record_id)
            for (side, record_id), error in current.items():
                if (side, record_id) not in existing:
                    fp = "" if (side, record_id) in waiting else views[side].fps.get(record_id, "")
                    tx.record_rejection(
                        name, entity, side, record_id, error.field, error.value, error.reason, fp
                    )

    def _advance_cursors(self, entity: EntityKind, *views: SideView) -> None:
        """Move incremental cursors past what this run fully handled.

        A record that was rejected, ambiguous, waiting for its company or held back from a
        create (the other side's listing was incomplete) would fall behind the cursor and
        never be read again, so any of those keeps the cursor where it was. A held record
        left behind would look missing to the next run, which would then create its twin
        back on its own side: a duplicate.
        """
        with self.job.store.transaction() as tx:
            for view in views:
                if view.cursor is not None:
                    tx.set_cursor(self.job.name, view.side, entity, self.reader.cursor_json(view))

    async def run(self) -> RunResult:
        job = self.job
        entities = [
            e for e in ENTITY_ORDER if e in job.crm.entities() and e in job.flowtly.entities()
        ]
        lock: AbstractContextManager[None] = (
            nullcontext() if self.dry_run else job.store.lock(job.name)
        )
        with lock:
            if not self.dry_run:
                self.result.run_id = job.store.start_run(job.name, False)
            bound = structlog.contextvars.bound_contextvars(
                sync=job.name, run_id=self.result.run_id, dry_run=self.dry_run
            )
            with bound:
                deadline = asyncio.timeout(self.run_timeout)
                try:
                    async with deadline:
                        # Before anything is read: links of other sides would pair strangers.
                        await check_binding(
                            job.name, job.crm, job.flowtly, job.store, dry_run=self.dry_run
                        )
                        for entity in entities:
                            if self.stopping is not None and self.stopping():
                                self.result.interrupted = True
                                break
                            await self.entity(entity)
                        finished = not self.dry_run and not self.result.interrupted
                        if job.after_run is not None and finished:
                            await job.after_run(self.result)
                except BaseException as exc:
                    failure = self._timed_out(deadline, exc)
                    self._finish(RunOutcome.FAILED, f"{type(failure).__name__}: {failure}")
                    if failure is exc:
                        raise
                    raise failure from None
                self._finish(RunOutcome.OK if self.result.clean else RunOutcome.PARTIAL, None)
        return self.result

    def _timed_out(self, deadline: asyncio.Timeout, exc: BaseException) -> BaseException:
        """`DeadlineExceeded` when ``exc`` is the run's own deadline passing, else ``exc``.

        The store stays consistent: every write is committed as it lands, the run is
        recorded as failed and the lock is released on the way out.
        """
        if not (isinstance(exc, TimeoutError) and deadline.expired()):
            return exc
        return DeadlineExceeded(
            "sync.run_timeout",
            f"sync {self.job.name}: the run was still going after {self.run_timeout:g} s "
            "(sync.run_timeout) and was stopped; what it finished is kept, the next run "
            "goes on from there",
        )

    def _finish(self, outcome: RunOutcome, error: str | None) -> None:
        self.result.finished_at = datetime.now(UTC)
        if self.result.run_id is not None:
            summary: dict[str, Any] = {
                "operations": self.result.summary(),
                "errors": len(self.result.errors),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
            self.job.store.finish_run(self.result.run_id, outcome, summary, error)
        log.info(
            "run_finished",
            outcome=outcome,
            operations=len(self.result.operations),
            errors=len(self.result.errors),
        )


async def run_sync(
    job: SyncJob,
    *,
    dry_run: bool = False,
    crash: Callable[[str], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
    stopping: Callable[[], bool] | None = None,
    run_timeout: float | None = None,
    expect: Callable[[str, int], None] | None = None,
) -> RunResult:
    """Run ``job`` once. A dry run reads both sides and writes nothing anywhere.

    ``progress(description, count)`` is told of records read (``read crm client``) and
    written (``write client``); before writing, ``expect(description, count)`` says how
    many steps a write pass is about to take (a pass again adds its own).

    ``stopping`` is polled between entities and before each write: once it returns True
    the run finishes what is in flight, commits, and returns with ``interrupted`` set.
    A run still going after ``run_timeout`` seconds is cancelled, recorded as failed, and
    raises `DeadlineExceeded`.
    """
    return await _Run(job, dry_run, crash, progress, stopping, run_timeout, expect).run()
