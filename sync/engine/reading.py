"""Reading one entity of both sides, and what the store remembers of it, into a plan's input.

The run's lifecycle (`sync.engine.run`) asks `PlanReader.plan_input` for each pass and
plans and applies what it gets. The reader keeps what a run learns while reading: the
parent links children are planned against, when each side last had a complete listing,
the first read's delete counts the mass-delete guard weighs, and views read ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime

import structlog

from connectors.base import Capability, Connector, Cursor
from sync.engine.detect import (
    PARENT_FIELD,
    PARENT_GONE,
    TOMBSTONE,
    SideView,
    add_records,
    read_side,
)
from sync.engine.guard import DeleteCount, siblings
from sync.engine.inputs import PlanInput, SideRules, StoredRejection
from sync.engine.job import LAST_FULL_SCAN, SyncJob
from sync.engine.match import PendingIntent
from sync.engine.ops import Plan
from sync.errors import CursorExpired, RecordError
from sync.model import EntityKind, Side
from sync.store.rows import LinkColumn

__all__ = ["PlanReader"]

log = structlog.get_logger("sync.engine")


def _rules(side: Connector, entity: EntityKind) -> SideRules:
    return SideRules(side.can_delete(entity), side.archive_status(entity))


class PlanReader:
    """Reads plan inputs for one run of ``job`` (see the module docstring)."""

    def __init__(
        self,
        job: SyncJob,
        *,
        dry_run: bool,
        now: datetime,
        progress: Callable[[str, int], None] | None,
        seen: dict[tuple[EntityKind, Side], int],
    ) -> None:
        self.job = job
        self.dry_run = dry_run
        self.now = now
        self.progress = progress
        self.seen = seen
        # CRM company id -> Flowtly company id; dry runs add the creates they plan.
        self.planned_parents: dict[str, str] = {}
        # (side, entity) -> when its last complete listing was, as stored with its cursor.
        self.full_scans: dict[tuple[Side, EntityKind], str] = {}
        # (side, entity) read completely this run: its deletes are known, none unseen.
        self.read_whole: set[tuple[Side, EntityKind]] = set()
        self.parent_links: dict[EntityKind, dict[str, str]] = {}
        self.parents_by_flowtly_id: dict[EntityKind, dict[str, str]] = {}
        # The mass-delete guard's counts per entity and side, and views read ahead for it.
        self.first_deletes: dict[tuple[EntityKind, Side], DeleteCount] = {}
        self.prefetched: dict[EntityKind, tuple[SideView, SideView]] = {}

    async def plan_input(self, entity: EntityKind, names: frozenset[str]) -> PlanInput:
        """Both sides' views of ``entity`` and what the store remembers of it: links and
        bases of the records that changed, pending creates, rejections, deletes counted
        for the mass-delete guard."""
        job = self.job
        parents = self.parents(entity)
        ahead = self.prefetched.pop(entity, None)
        crm_view, fl_view = ahead if ahead is not None else await self.views(entity, names)
        await self._confirm_parents(entity, fl_view)
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
        sent = job.store.load_sent(job.name, entity, touched) if touched else {}
        intents = list(self._intents(entity, names))
        flowtly_parents = (
            self.parents_by_flowtly_id[entity.parent] if entity.parent is not None else None
        )
        await self._fetch_sources(entity, names, intents, (crm_view, fl_view), flowtly_parents)
        rejections = {
            (Side(r.side), r.record_id): StoredRejection(r.source_fp, r.reason, r.field, r.value)
            for r in job.store.rejections(job.name, entity)
        }
        return PlanInput(
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
            sent=sent,
        )

    def parents(self, entity: EntityKind) -> dict[str, str] | None:
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
            fps = self.job.store.link_map(
                self.job.name, parent, LinkColumn.CRM_ID, LinkColumn.CRM_FP
            )
            self.parents_by_flowtly_id[parent] = {
                fl: PARENT_GONE if fps.get(crm) == TOMBSTONE else crm for crm, fl in links.items()
            }
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
        self.seen[(entity, side)] = view.seen
        if view.complete:
            self.read_whole.add((side, entity))
        return view

    async def views(self, entity: EntityKind, names: frozenset[str]) -> tuple[SideView, SideView]:
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
                ahead = await self.views(sibling, names)
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

    async def _confirm_parents(self, entity: EntityKind, fl_view: SideView) -> None:
        """Hold back new Flowtly children whose CRM company is gone, though still linked.

        A company deleted in the CRM shows as deleted only in a complete listing (or a
        deletes feed); after a read of its changes alone, its link still stands, and a
        contact added to its Flowtly twin would be created in the CRM under the deleted
        id, where nothing moves it later. So when the parent's CRM read this run was not
        complete, the companies of the children about to be created there are looked up
        (`Connector.absent`); a child whose company the CRM does not hold is not created
        there (`SideView.held`) but still matched, so a twin is linked and never created
        twice; it waits, named in a warning, and is read and tried again by the next run.
        When the CRM cannot tell (a listing that arrived incomplete), they wait too: under a
        company that may be gone, a contact would stay there, and after a lost store its
        Flowtly twin, matched within its company, would be created once more.
        """
        parent = entity.parent
        if parent is None or (Side.CRM, parent) in self.read_whole:
            return
        wanted = {
            str(company)
            for record in fl_view.new.values()
            if (company := record.get(PARENT_FIELD)) is not None
        }
        # Created this run (dry runs plan them): there is nothing to confirm.
        wanted -= self.planned_parents.keys()
        if not wanted:
            return
        gone = await self.job.crm.absent(parent, sorted(wanted))
        if gone is None:
            fl_view.warnings.append(
                RecordError(
                    str(parent),
                    str(Side.CRM),
                    "*",
                    f"incomplete listing while confirming {len(wanted)} company(ies) that new "
                    f"{entity} records go under: they are not created in the CRM this run",
                )
            )
            held, why = (
                wanted,
                "the CRM could not confirm it holds its company {} (its client's CRM twin): "
                "a listing that arrived incomplete; tried again next run",
            )
        else:
            held, why = (
                gone,
                "the CRM does not hold its company {} (its client's CRM twin), deleted there "
                "since the last complete listing or unreadable there (see its error); tried "
                "again next run",
            )
        for record_id, record in fl_view.new.items():
            company = record.get(PARENT_FIELD)
            if company is None or str(company) not in held:
                continue
            # Still matched (a CRM twin is linked); not created, and it waits: the cursor
            # stays, so an incremental read brings it again.
            fl_view.held[record_id] = RecordError(
                str(entity),
                str(Side.FLOWTLY),
                record_id,
                f"not synced: {why.format(company)}",
                PARENT_FIELD,
                str(company),
            )
        if held:
            log.info("parent_not_confirmed", entity=str(parent), ids=sorted(held))

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

    def cursor_json(self, view: SideView) -> dict[str, str | None]:
        """The cursor to store, with when the side last had a complete listing."""
        assert view.cursor is not None
        last = self.full_scans.get((view.side, view.entity))
        if view.complete:
            last = self.now.isoformat()
        return {**view.cursor.to_json(), LAST_FULL_SCAN: last}

    def remember_planned(self, plan: Plan) -> None:
        if plan.entity is not EntityKind.CLIENT:
            return
        for step in plan.steps:
            if step.crm_id is not None and step.flowtly_id is None:
                self.planned_parents[step.crm_id] = f"(new:{step.crm_id})"
            elif step.crm_id is None and step.flowtly_id is not None:
                self.planned_parents[f"(new:{step.flowtly_id})"] = step.flowtly_id
