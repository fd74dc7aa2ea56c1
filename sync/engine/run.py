"""One run of one sync: read both sides, detect, plan, then render or apply.

Entities go parents first (clients, counterparties, then contacts and notes), so that a
contact's company is linked before the contact is planned. ``run_sync`` is the single code
path behind ``flowtly-sync run``, ``diff`` and the daemon's ticks.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence, Set
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from connectors.base import Capability, Connector, Cursor
from sync.engine.apply import ApplyContext, ApplyResult, apply_plan
from sync.engine.binding import check_binding
from sync.engine.detect import SideView, add_records, read_side
from sync.engine.guard import DeleteCount, siblings
from sync.engine.match import PendingIntent
from sync.engine.ops import Action, Operation, Plan
from sync.engine.plan import Gate, PlanInput, SideRules, StoredRejection, plan_entity
from sync.engine.policy import SyncPolicy
from sync.errors import CursorExpired, DeadlineExceeded, RecordError
from sync.model import EntityKind, Side
from sync.store import LinkColumn, RunOutcome, Store

__all__ = ["ENTITY_ORDER", "RunResult", "SyncJob", "run_sync"]

LAST_FULL_SCAN = "last_full_scan"
"""Key of the stored cursor JSON holding when that side and entity was last read whole."""

EXTRA_PASSES = 2
"""How many times an entity is read and planned again after writes failed transiently."""

ENTITY_ORDER = (EntityKind.CLIENT, EntityKind.COUNTERPARTY, EntityKind.CONTACT, EntityKind.NOTE)

log = structlog.get_logger("sync.engine")


@dataclass(slots=True)
class SyncJob:
    """One configured sync: its two sides, its store and its policy."""

    name: str
    crm: Connector
    flowtly: Connector
    store: Store
    policy: SyncPolicy = field(default_factory=SyncPolicy)
    concurrency: int = 8
    """Writes in flight at once (``[sync] concurrency``)."""
    full_scan: timedelta | None = timedelta(hours=24)
    """How long an incremental side reads only changes before a complete listing again
    (``[sync] full_scan``); None: only when it has no cursor."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    gate: Gate | None = None
    """Data-quality checks run on every record before it is written (`sync.quality`)."""
    after_run: Callable[[RunResult], Awaitable[None]] | None = None
    """Called after a complete, real run, under its lock, before it is recorded as
    finished; may add warnings to the result (`sync.finance.hooks.AfterRun`)."""


@dataclass(slots=True)
class RunResult:
    """What a run did (or, dry, would do)."""

    sync: str
    dry_run: bool
    run_id: int | None = None
    operations: list[Operation] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    warnings: list[RecordError] = field(default_factory=list)
    waiting: dict[EntityKind, int] = field(default_factory=dict)
    seen: dict[tuple[EntityKind, Side], int] = field(default_factory=dict)
    interrupted: bool = False
    """A stop was requested; steps not started were left for the next run."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    @property
    def conflicts(self) -> list[Operation]:
        return [op for op in self.operations if op.action is Action.CONFLICT]

    @property
    def clean(self) -> bool:
        return not self.errors and not self.conflicts

    def summary(self) -> dict[str, dict[str, int]]:
        """Counts per entity and action; failed operations count once, as errors."""
        counts: dict[str, dict[str, int]] = {}
        for op in self.operations:
            if op.outcome != "error":
                per = counts.setdefault(str(op.entity), {})
                per[str(op.action)] = per.get(str(op.action), 0) + 1
        for error in self.errors:
            per = counts.setdefault(error.entity, {})
            per["error"] = per.get("error", 0) + 1
        return counts


def _rules(side: Connector, entity: EntityKind) -> SideRules:
    return SideRules(side.can_delete(entity), side.archive_status(entity))


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
        self.result = RunResult(job.name, dry_run)
        # CRM company id -> Flowtly company id; dry runs add the creates they plan.
        self.planned_parents: dict[str, str] = {}
        self.now = job.clock()
        # (side, entity) -> when its last complete listing was, as stored with its cursor.
        self.full_scans: dict[tuple[Side, EntityKind], str] = {}
        self.parent_links: dict[EntityKind, dict[str, str]] = {}
        self.parents_by_flowtly_id: dict[EntityKind, dict[str, str]] = {}
        # The mass-delete guard's counts per entity and side, and views read ahead for it.
        self.first_deletes: dict[tuple[EntityKind, Side], DeleteCount] = {}
        self.prefetched: dict[EntityKind, tuple[SideView, SideView]] = {}

    def _parents(self, entity: EntityKind) -> dict[str, str] | None:
        """CRM company id -> Flowtly company id, for contacts and notes.

        Loaded once per run: children come after their parents in `ENTITY_ORDER`, so the
        parent links no longer change while children are planned, pass after pass.
        """
        parent = entity.parent
        if parent is None:
            return None
        if parent not in self.parent_links:
            links = self.job.store.link_map(
                self.job.name, parent, LinkColumn.CRM_ID, LinkColumn.FLOWTLY_ID
            )
            links.update(self.planned_parents)
            self.parent_links[parent] = links
            self.parents_by_flowtly_id[parent] = {fl: crm for crm, fl in links.items()}
        return self.parent_links[parent]

    def _fingerprints(self, entity: EntityKind, side: Side) -> dict[str, str]:
        """``side``'s id -> stored fingerprint of every linked ``entity`` record."""
        if side is Side.CRM:
            key, value = LinkColumn.CRM_ID, LinkColumn.CRM_FP
        else:
            key, value = LinkColumn.FLOWTLY_ID, LinkColumn.FLOWTLY_FP
        return self.job.store.link_map(self.job.name, entity, key, value)

    def _intents(
        self, entity: EntityKind, names: frozenset[str]
    ) -> Iterator[tuple[Side, PendingIntent]]:
        for row in self.job.store.pending_intents(self.job.name):
            if row.entity == entity:
                yield (
                    Side(row.target),
                    PendingIntent(row.source_id, row.natural_key, row.payload_fp, names),
                )

    async def _read(
        self,
        side: Side,
        entity: EntityKind,
        names: frozenset[str],
        stored: Mapping[str, str],
        parents: Mapping[str, str] | None,
    ) -> SideView:
        connector = self.job.crm if side is Side.CRM else self.job.flowtly

        def tick(count: int) -> None:
            if self.progress is not None:
                self.progress(f"read {side} {entity}", count)

        async def read(since: Cursor | None) -> SideView:
            return await read_side(
                connector,
                side,
                entity,
                names,
                stored,
                parents=parents,
                since=since,
                on_progress=tick,
            )

        since = None
        if Capability.INCREMENTAL in connector.capabilities_for(entity):
            since = self._since(side, entity)
        try:
            view = await read(since)
        except CursorExpired as expired:
            if since is None:
                raise
            # Reading from the start is the only way past a cursor the side gave up on.
            log.warning("cursor_expired", side=str(side), entity=str(entity), reason=str(expired))
            if not self.dry_run:
                with self.job.store.transaction() as tx:
                    tx.clear_cursor(self.job.name, side, entity)
            self.full_scans.pop((side, entity), None)
            view = await read(None)
        self.result.seen[(entity, side)] = view.seen
        return view

    async def _views(self, entity: EntityKind, names: frozenset[str]) -> tuple[SideView, SideView]:
        """Both sides' views of ``entity``, CRM first."""
        # Each side is compared with its stored fingerprints alone (id -> fingerprint),
        # held only while that side is read: a no-op run of 300,000 contacts never has
        # them all as link objects. Only links of records that changed are loaded.
        crm_view = await self._read(
            Side.CRM, entity, names, self._fingerprints(entity, Side.CRM), None
        )
        flowtly_parents = (
            self.parents_by_flowtly_id[entity.parent] if entity.parent is not None else None
        )
        fl_view = await self._read(
            Side.FLOWTLY,
            entity,
            names,
            self._fingerprints(entity, Side.FLOWTLY),
            flowtly_parents,
        )
        return crm_view, fl_view

    async def _count_deletes(
        self, entity: EntityKind, linked: int, *views: SideView
    ) -> dict[Side, DeleteCount]:
        """Per side, the deletes of the entities the guard counts with ``entity``.

        Each entity's deletes are counted from its first read this run, so every pass of
        clients and counterparties weighs the same event. A sibling not read yet (clients
        go before counterparties) is read now and its views kept for its own first pass.
        """
        job = self.job
        for view in views:
            self.first_deletes.setdefault(
                (entity, view.side), DeleteCount(len(view.deleted), linked)
            )
        counts: dict[Side, DeleteCount] = {}
        for sibling in siblings(entity):
            if sibling not in job.crm.entities() or sibling not in job.flowtly.entities():
                continue
            if (sibling, Side.CRM) not in self.first_deletes:
                names = job.crm.fields(sibling) & job.flowtly.fields(sibling)
                ahead = await self._views(sibling, names)
                self.prefetched[sibling] = ahead
                await self._count_deletes(sibling, job.store.link_count(job.name, sibling), *ahead)
            for side in Side:
                counts[side] = counts.get(side, DeleteCount()) + self.first_deletes[(sibling, side)]
        return counts

    def _since(self, side: Side, entity: EntityKind) -> Cursor | None:
        """Where an incremental read starts; None for a complete listing: no cursor yet,
        or `SyncJob.full_scan` passed since the last complete one (deletes show only in
        complete listings of a side without a deletes feed)."""
        saved = self.job.store.get_cursor(self.job.name, side, entity)
        if not saved:
            return None
        last = saved.get(LAST_FULL_SCAN)
        if isinstance(last, str):
            self.full_scans[(side, entity)] = last
        period = self.job.full_scan
        if period is not None and (
            not isinstance(last, str) or self.now - datetime.fromisoformat(last) >= period
        ):
            log.info("full_scan_due", side=str(side), entity=str(entity), last=last)
            return None
        return Cursor.from_json(saved)

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
        parents = self._parents(entity)
        ahead = self.prefetched.pop(entity, None)
        crm_view, fl_view = ahead if ahead is not None else await self._views(entity, names)
        linked = job.store.link_count(job.name, entity)
        sibling_deletes = await self._count_deletes(entity, linked, crm_view, fl_view)
        crm_of = job.store.link_map(
            job.name,
            entity,
            LinkColumn.FLOWTLY_ID,
            LinkColumn.CRM_ID,
            [*fl_view.changed, *fl_view.deleted, *fl_view.left],
        )
        touched = set(crm_view.changed) | crm_view.deleted | set(crm_of.values()) | crm_view.left
        links = job.store.link_index(job.name, entity, touched) if touched else {}
        bases = job.store.load_bases(job.name, entity, touched) if touched else {}
        intents = list(self._intents(entity, names))
        flowtly_parents = (
            self.parents_by_flowtly_id[entity.parent] if entity.parent is not None else None
        )
        await self._fetch_sources(entity, names, intents, (crm_view, fl_view), flowtly_parents)
        rejections = {
            (Side(r.side), r.record_id): StoredRejection(r.source_fp, r.reason, r.field, r.value)
            for r in job.store.rejections(job.name, entity)
        }
        plan = plan_entity(
            PlanInput(
                entity,
                names,
                links,
                linked,
                bases,
                crm_view,
                fl_view,
                job.policy,
                crm_rules=_rules(job.crm, entity),
                flowtly_rules=_rules(job.flowtly, entity),
                sibling_deletes=sibling_deletes,
                parent_links=parents,
                rejections=rejections,
                crm_intents=tuple(i for t, i in intents if t is Side.FLOWTLY),
                flowtly_intents=tuple(i for t, i in intents if t is Side.CRM),
                gate=job.gate,
            )
        )
        if self.dry_run:
            self._report(plan, None)
            self._remember_planned(plan)
            self.result.operations.extend(plan.operations())
            return True
        self._remember_rejections(
            entity, plan, {Side.CRM: crm_view, Side.FLOWTLY: fl_view}, rejections.keys()
        )
        written = f"write {entity}"
        if self.expect is not None:
            self.expect(written, len(plan.steps))
        progress = self.progress
        applied = await apply_plan(
            plan,
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
                pending_intents=bool(intents),
                on_step=None if progress is None else lambda: progress(written, 1),
            ),
        )
        if applied.retryable and not final and not applied.skipped:
            # Keep what succeeded; the failures are tried again by the next pass.
            self.result.operations.extend(op for op in applied.operations if op.outcome == "ok")
            return False
        self._report(plan, applied)
        if not plan.errors and not plan.waiting and not applied.errors:
            self._advance_cursors(entity, crm_view, fl_view)
        return True

    async def _fetch_sources(
        self,
        entity: EntityKind,
        names: frozenset[str],
        intents: Sequence[tuple[Side, PendingIntent]],
        views: Sequence[SideView],
        flowtly_parents: Mapping[str, str] | None,
    ) -> None:
        """Bring the source record of every pending create into its side's view.

        A create that may have landed is found through its source record; a complete
        listing always has it, an incremental read only when it changed since the cursor.
        The others are fetched by id (`Connector.get_many`), not by listing everything.
        """
        for view in views:
            ids = [intent.source_id for target, intent in intents if target is view.side.other]
            if view.complete or not ids:
                continue
            side = self.job.crm if view.side is Side.CRM else self.job.flowtly
            key, value = (
                (LinkColumn.CRM_ID, LinkColumn.CRM_FP)
                if view.side is Side.CRM
                else (LinkColumn.FLOWTLY_ID, LinkColumn.FLOWTLY_FP)
            )
            stored = self.job.store.link_map(self.job.name, entity, key, value, ids)
            parents = flowtly_parents if view.side is Side.FLOWTLY else None
            await add_records(view, side, ids, names, stored, parents=parents)

    def _report(self, plan: Plan, applied: ApplyResult | None) -> None:
        self.result.waiting[plan.entity] = plan.waiting
        self.result.errors.extend(plan.errors)
        self.result.warnings.extend(plan.warnings)
        self.result.warnings.extend(plan.waiting_records)
        if applied is not None:
            if applied.skipped:
                self.result.interrupted = True
            self.result.operations.extend(applied.operations)
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

        A record that was rejected, ambiguous or waiting for its company would fall behind
        the cursor and never be read again, so any of those keeps the cursor where it was.
        """
        with self.job.store.transaction() as tx:
            for view in views:
                if view.cursor is not None:
                    tx.set_cursor(self.job.name, view.side, entity, self._cursor_json(view))

    def _cursor_json(self, view: SideView) -> dict[str, str | None]:
        """The cursor to store, with when the side last had a complete listing."""
        assert view.cursor is not None
        last = self.full_scans.get((view.side, view.entity))
        if view.complete:
            last = self.now.isoformat()
        return {**view.cursor.to_json(), LAST_FULL_SCAN: last}

    def _remember_planned(self, plan: Plan) -> None:
        if plan.entity is not EntityKind.CLIENT:
            return
        for step in plan.steps:
            if step.crm_id is not None and step.flowtly_id is None:
                self.planned_parents[step.crm_id] = f"(new:{step.crm_id})"
            elif step.crm_id is None and step.flowtly_id is not None:
                self.planned_parents[f"(new:{step.flowtly_id})"] = step.flowtly_id

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
