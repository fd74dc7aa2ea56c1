"""Planning: a pure function from what both sides hold to the steps a run would take.

No I/O happens here. The inputs are the two `SideView` values from detection, the links
and bases from the store, and the policy; the output is a `Plan`. A dry run renders it; a
real run hands it to `apply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sync.engine.detect import PARENT_FIELD, TOMBSTONE, listing_warning, waiting_for_company
from sync.engine.guard import ALLOW_HINT, DeleteCount, refusal
from sync.engine.inputs import (
    Gate,
    GateProblem,
    LinkState,
    PlanInput,
    SideRules,
    StoredRejection,
)
from sync.engine.left import plan_left
from sync.engine.match import match_new, record_key
from sync.engine.merge import merge_fields
from sync.engine.ops import Action, FieldChange, ParkedConflict, Plan, Step, Write
from sync.errors import RecordError
from sync.model import EntityKind, Record, Scalar, Side
from sync.normalize import fingerprint

__all__ = [
    "Gate",
    "GateProblem",
    "LinkState",
    "PlanInput",
    "SideRules",
    "StoredRejection",
    "plan_entity",
]


def _changes(
    values: Mapping[str, Scalar], old: Mapping[str, Scalar], conflicts: Iterable[str] = ()
) -> tuple[FieldChange, ...]:
    conflicted = set(conflicts)
    return tuple(
        FieldChange(name, old.get(name), value, name in conflicted)
        for name, value in sorted(values.items())
        if value is not None or old.get(name) is not None
    )


class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.steps: list[Step] = []
        self.errors: list[RecordError] = [*inp.crm.rejected, *inp.flowtly.rejected]
        self.warnings: list[RecordError] = []
        self.held_creates = {Side.CRM: 0, Side.FLOWTLY: 0}
        self.waiting = inp.crm.waiting + inp.flowtly.waiting
        self.waiting_records = [*inp.crm.waiting_records, *inp.flowtly.waiting_records]
        self.crm_of_flowtly = {link.flowtly_id: crm_id for crm_id, link in inp.links.items()}
        self.rechecked: set[tuple[Side, str]] = set()

    # -- helpers -----------------------------------------------------------------------
    def _add(self, step: Step) -> None:
        """Keep ``step`` unless a data-quality gate rejects what it would write."""
        gate = self.inp.gate
        written = [w for w in step.writes if w.action in (Action.CREATE, Action.UPDATE)]
        if gate is None or not written:
            self.steps.append(step)
            return
        rejected = False
        for write in written:
            for problem in gate(self.inp.entity, step.base, write.target):
                source = write.target.other
                source_id = (step.crm_id if source is Side.CRM else step.flowtly_id) or "?"
                value = None if problem.value is None else str(problem.value)
                verdict = "rejected" if problem.rejects else "warning"
                finding = RecordError(
                    str(self.inp.entity),
                    str(source),
                    source_id,
                    f"{verdict}: {problem.reason}",
                    field=problem.field,
                    value=value,
                )
                if problem.rejects:
                    rejected = True
                    self.errors.append(finding)
                else:
                    self.warnings.append(finding)
        if not rejected:
            self.steps.append(step)

    def _restrict(self, record: Record) -> dict[str, Scalar]:
        return {name: record.fields.get(name) for name in self.inp.names}

    def _to_flowtly_space(self, values: Mapping[str, Scalar]) -> dict[str, Scalar] | None:
        """Values with the parent reference as Flowtly knows it; None if not linked yet."""
        if self.inp.parent_links is None or values.get(PARENT_FIELD) is None:
            return dict(values)
        parent = self.inp.parent_links.get(str(values[PARENT_FIELD]))
        if parent is None:
            return None
        return {**values, PARENT_FIELD: parent}

    def _wait(self, side: Side, record_id: str, values: Mapping[str, Scalar]) -> None:
        """``record_id`` waits for its company to be linked: counted, and named."""
        self.waiting += 1
        self.waiting_records.append(
            waiting_for_company(self.inp.entity, side, record_id, values.get(PARENT_FIELD))
        )

    def _error(self, side: Side, record_id: str, reason: str) -> None:
        self.errors.append(RecordError(str(self.inp.entity), str(side), record_id, reason))

    def _still_rejected(self, side: Side, record_id: str, fp: str) -> bool:
        rejected = self.inp.rejections.get((side, record_id))
        if rejected is None or rejected.fp != fp:
            return False
        self.errors.append(
            RecordError(
                str(self.inp.entity),
                str(side),
                record_id,
                f"still rejected until it changes: {rejected.reason}",
                field=rejected.field,
                value=rejected.value,
            )
        )
        return True

    def _guard_deletes(self, side: Side, deleted: set[str]) -> set[str]:
        """``deleted``, or nothing when the mass-delete guard refuses them (`guard`)."""
        inp = self.inp
        view = inp.crm if side is Side.CRM else inp.flowtly
        own = DeleteCount(len(deleted), inp.linked)
        listed_none = view.complete and (view.seen == 0 or own.deleted >= own.linked)
        reason = refusal(
            inp.policy,
            inp.entity,
            side,
            own,
            listed_none=listed_none,
            sibling=inp.sibling_deletes.get(side),
        )
        if reason is None:
            return deleted
        if inp.policy.allow_mass_delete:
            self.warnings.append(
                RecordError(
                    str(inp.entity),
                    str(side),
                    "*",
                    f"mass-delete guard overridden by --allow-mass-delete: {reason}; deleting",
                )
            )
            return deleted
        self._error(
            side,
            "*",
            f"mass-delete guard: {reason}; refusing to delete any (a truncated listing or "
            f"a wrong account looks the same); {ALLOW_HINT}",
        )
        return set()

    # -- linked records ------------------------------------------------------------------
    def plan_linked(self) -> None:
        inp = self.inp
        crm_deleted = self._guard_deletes(Side.CRM, set(inp.crm.deleted))
        fl_deleted = self._guard_deletes(
            Side.FLOWTLY, {self.crm_of_flowtly[f] for f in inp.flowtly.deleted}
        )
        touched = set(inp.crm.changed) | crm_deleted | fl_deleted
        touched.update(self.crm_of_flowtly[f] for f in inp.flowtly.changed)
        left = {Side.CRM: set(inp.crm.left)}
        left[Side.FLOWTLY] = {self.crm_of_flowtly[f] for f in inp.flowtly.left}
        touched |= left[Side.CRM] | left[Side.FLOWTLY]
        for crm_id in sorted(touched):
            link = inp.links[crm_id]
            if crm_id in inp.crm.unseen or link.flowtly_id in inp.flowtly.unseen:
                # Missing from an incomplete listing: whatever that side holds now is
                # unknown, so a write there could overwrite an edit this run never saw.
                continue
            base = inp.bases.get(crm_id, {})
            crm_rec = inp.crm.changed.get(crm_id)
            fl_rec = inp.flowtly.changed.get(link.flowtly_id)
            gone = crm_id in crm_deleted or crm_id in fl_deleted
            detached = plan_left(inp.entity, link, base, left, gone, crm_rec, fl_rec)
            if detached is not None:
                self.warnings.extend(detached.warnings)
                if detached.step is not None:
                    self._add(detached.step)
                continue
            if crm_id in crm_deleted and crm_id in fl_deleted:
                self._add(Step(inp.entity, crm_id, link.flowtly_id, unlink=True))
            elif crm_id in crm_deleted or (link.crm_fp == TOMBSTONE and crm_rec is None):
                self._deleted_on(Side.CRM, link, base, fl_rec)
            elif crm_id in fl_deleted or (link.flowtly_fp == TOMBSTONE and fl_rec is None):
                self._deleted_on(Side.FLOWTLY, link, base, crm_rec)
            else:
                self._merge(link, base, crm_rec, fl_rec)

    def _deleted_on(
        self, gone: Side, link: LinkState, base: Mapping[str, Scalar], other: Record | None
    ) -> None:
        inp, keep = self.inp, gone.other
        keep_view = inp.flowtly if keep is Side.FLOWTLY else inp.crm
        keep_id = link.flowtly_id if keep is Side.FLOWTLY else link.crm_id
        if other is not None:
            # Deleted on one side, changed on the other: the change wins, recreate it.
            values = self._restrict(other)
            fp = keep_view.fps[other.id]
            if gone is Side.FLOWTLY:
                target_values = self._to_flowtly_space(values)
                if target_values is None:
                    self._wait(Side.CRM, other.id, values)
                    return
                self._add(
                    Step(
                        inp.entity,
                        link.crm_id,
                        None,
                        (Write(Side.FLOWTLY, Action.CREATE, None, _changes(target_values, {})),),
                        base=values,
                        crm_fp=fp,
                        link=True,
                        natural_key=record_key(other),
                    )
                )
            else:
                self._add(
                    Step(
                        inp.entity,
                        None,
                        link.flowtly_id,
                        (Write(Side.CRM, Action.CREATE, None, _changes(values, {})),),
                        base=values,
                        flowtly_fp=fp,
                        link=True,
                        natural_key=record_key(other),
                        replaces=link.crm_id,
                    )
                )
            return
        if (link.crm_fp if gone is Side.CRM else link.flowtly_fp) == TOMBSTONE:
            return  # handled by an earlier run; nothing changed since
        if not inp.policy.propagate_deletes:
            self._add(Step(inp.entity, link.crm_id, link.flowtly_id, unlink=True))
            return
        rules = inp.flowtly_rules if keep is Side.FLOWTLY else inp.crm_rules
        crm_fp = TOMBSTONE if gone is Side.CRM else link.crm_fp
        fl_fp = TOMBSTONE if gone is Side.FLOWTLY else link.flowtly_fp
        if rules.can_delete:
            self._add(
                Step(
                    inp.entity,
                    link.crm_id,
                    link.flowtly_id,
                    (Write(keep, Action.DELETE, keep_id),),
                    unlink=True,
                )
            )
        elif rules.archive_status is not None:
            status = rules.archive_status
            writes: tuple[Write, ...] = ()
            if base.get("status") != status:
                writes = (
                    Write(
                        keep,
                        Action.ARCHIVE,
                        keep_id,
                        (FieldChange("status", base.get("status"), status),),
                    ),
                )
            self._add(
                Step(
                    inp.entity,
                    link.crm_id,
                    link.flowtly_id,
                    writes,
                    base={**base, "status": status} if "status" in inp.names else base,
                    crm_fp=crm_fp,
                    flowtly_fp=fl_fp,
                )
            )
        else:
            self._add(
                Step(
                    inp.entity,
                    link.crm_id,
                    link.flowtly_id,
                    base=base,
                    crm_fp=crm_fp,
                    flowtly_fp=fl_fp,
                )
            )

    def _merge(
        self,
        link: LinkState,
        base: Mapping[str, Scalar],
        crm_rec: Record | None,
        fl_rec: Record | None,
    ) -> None:
        inp = self.inp
        crm_fp = inp.crm.fps[crm_rec.id] if crm_rec else link.crm_fp
        fl_fp = inp.flowtly.fps[fl_rec.id] if fl_rec else link.flowtly_fp
        if (crm_rec and self._still_rejected(Side.CRM, crm_rec.id, crm_fp)) or (
            fl_rec and self._still_rejected(Side.FLOWTLY, fl_rec.id, fl_fp)
        ):
            return
        crm_values = self._restrict(crm_rec) if crm_rec else dict(base)
        fl_values = self._restrict(fl_rec) if fl_rec else dict(base)
        result = merge_fields(sorted(inp.names), base, crm_values, fl_values, inp.policy)
        conflicted = [d.field for d in result.decisions if d.is_conflict]
        writes: list[Write] = []
        if result.to_flowtly:
            target = self._to_flowtly_space(result.to_flowtly)
            old = self._to_flowtly_space(fl_values) or fl_values
            if target is None:
                self._wait(Side.CRM, link.crm_id, result.to_flowtly)
                return
            writes.append(
                Write(
                    Side.FLOWTLY, Action.UPDATE, link.flowtly_id, _changes(target, old, conflicted)
                )
            )
        if result.to_crm:
            writes.append(
                Write(
                    Side.CRM,
                    Action.UPDATE,
                    link.crm_id,
                    _changes(result.to_crm, crm_values, conflicted),
                )
            )
        parked = tuple(ParkedConflict(d.field, d.base, d.crm, d.flowtly) for d in result.parked)
        self._add(
            Step(
                inp.entity,
                link.crm_id,
                link.flowtly_id,
                tuple(writes),
                base=result.base,
                crm_fp=crm_fp,
                flowtly_fp=fl_fp,
                conflicts=parked,
            )
        )

    # -- new records ---------------------------------------------------------------------
    def plan_new(self) -> None:
        inp = self.inp
        matching = match_new(
            inp.entity,
            inp.crm.new,
            inp.flowtly.new,
            crm_intents=inp.crm_intents,
            flowtly_intents=inp.flowtly_intents,
        )
        for key, (crm_ids, fl_ids) in sorted(matching.ambiguous.items()):
            who = ", ".join([f"crm {i}" for i in crm_ids] + [f"flowtly {i}" for i in fl_ids])
            reason = f"ambiguous match: {who} share the key {key!r}; linking or creating none"
            for crm_id in crm_ids:
                self._error(Side.CRM, crm_id, reason)
                self.rechecked.add((Side.CRM, crm_id))
            for fl_id in fl_ids:
                self._error(Side.FLOWTLY, fl_id, reason)
                self.rechecked.add((Side.FLOWTLY, fl_id))
        for crm_id, fl_id in matching.pairs:
            crm_rec, fl_rec = inp.crm.new[crm_id], inp.flowtly.new[fl_id]
            self._link(crm_rec, fl_rec)
        for crm_id in matching.crm_only:
            self._create(Side.FLOWTLY, inp.crm.new[crm_id], inp.crm.fps[crm_id])
        for fl_id in matching.flowtly_only:
            self._create(Side.CRM, inp.flowtly.new[fl_id], inp.flowtly.fps[fl_id])

    def _link(self, crm_rec: Record, fl_rec: Record) -> None:
        inp = self.inp
        crm_values, fl_values = self._restrict(crm_rec), self._restrict(fl_rec)
        result = merge_fields(sorted(inp.names), None, crm_values, fl_values, inp.policy)
        conflicted = [d.field for d in result.decisions if d.is_conflict]
        writes: list[Write] = []
        if result.to_flowtly:
            target = self._to_flowtly_space(result.to_flowtly)
            if target is not None:
                writes.append(
                    Write(
                        Side.FLOWTLY,
                        Action.UPDATE,
                        fl_rec.id,
                        _changes(
                            target, self._to_flowtly_space(fl_values) or fl_values, conflicted
                        ),
                    )
                )
        if result.to_crm:
            writes.append(
                Write(
                    Side.CRM,
                    Action.UPDATE,
                    crm_rec.id,
                    _changes(result.to_crm, crm_values, conflicted),
                )
            )
        parked = tuple(ParkedConflict(d.field, d.base, d.crm, d.flowtly) for d in result.parked)
        self._add(
            Step(
                inp.entity,
                crm_rec.id,
                fl_rec.id,
                tuple(writes),
                base=result.base,
                crm_fp=inp.crm.fps[crm_rec.id],
                flowtly_fp=inp.flowtly.fps[fl_rec.id],
                conflicts=parked,
                link=True,
            )
        )

    def _create(self, target: Side, source: Record, fp: str) -> None:
        inp = self.inp
        if not inp.policy.may_create(target):
            return
        if (inp.crm if target is Side.CRM else inp.flowtly).incomplete is not None:
            # Its twin may be on the part of the listing that never arrived: creating it
            # now could duplicate it.
            self.held_creates[target] += 1
            return
        if self._still_rejected(target.other, source.id, fp):
            return
        values = self._restrict(source)
        if target is Side.FLOWTLY:
            sent = self._to_flowtly_space(values)
            if sent is None:
                self._wait(Side.CRM, source.id, values)
                return
            self._add(
                Step(
                    inp.entity,
                    source.id,
                    None,
                    (Write(Side.FLOWTLY, Action.CREATE, None, _changes(sent, {})),),
                    base=values,
                    crm_fp=fp,
                    link=True,
                    natural_key=record_key(source),
                )
            )
        else:
            self._add(
                Step(
                    inp.entity,
                    None,
                    source.id,
                    (Write(Side.CRM, Action.CREATE, None, _changes(values, {})),),
                    base=values,
                    flowtly_fp=fp,
                    link=True,
                    natural_key=record_key(source),
                )
            )


def plan_entity(inp: PlanInput) -> Plan:
    """Plan one entity kind: linked records first, then new ones (match, else create)."""
    planner = _Planner(inp)
    planner.plan_linked()
    planner.plan_new()
    listings = (
        listing_warning(view, planner.held_creates[view.side]) for view in (inp.crm, inp.flowtly)
    )
    return Plan(
        inp.entity,
        tuple(planner.steps),
        tuple(planner.errors),
        planner.waiting,
        (*(warning for warning in listings if warning), *planner.warnings),
        frozenset(planner.rechecked),
        tuple(planner.waiting_records),
    )


def payload_fingerprint(entity: EntityKind, values: Mapping[str, Scalar]) -> str:
    """The fingerprint an intent stores for the values of a create (CRM id space)."""
    return fingerprint(entity, values, frozenset(values))
