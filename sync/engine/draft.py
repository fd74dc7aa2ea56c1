"""A plan being drawn: the steps, findings and counts planning collects for one entity.

`PlanDraft` holds what every part of planning adds to (steps pass the data-quality gate
on the way in) and the small reads of the input they share; `sync.engine.plan_linked`
plans the records both sides know, `sync.engine.plan` the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.engine.detect import PARENT_FIELD, waiting_for_company
from sync.engine.inputs import PlanInput
from sync.engine.match import PendingIntent, landed_create, record_key
from sync.engine.merge import MergeResult, merge_fields
from sync.engine.ops import Action, ParkedConflict, Step, Write, changes_of
from sync.engine.step_spool import StepSpool
from sync.errors import RecordError
from sync.model import FieldValues, Record, Scalar, Side

__all__ = ["PlanDraft"]


class PlanDraft:
    """The plan of one entity while it is drawn."""

    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.steps = StepSpool()
        self.errors: list[RecordError] = [*inp.crm.rejected, *inp.flowtly.rejected]
        self.warnings: list[RecordError] = [*inp.crm.warnings, *inp.flowtly.warnings]
        self.held_creates = {Side.CRM: 0, Side.FLOWTLY: 0}
        self.waiting = inp.crm.waiting + inp.flowtly.waiting
        self.waiting_records = [*inp.crm.waiting_records, *inp.flowtly.waiting_records]
        self.crm_of_flowtly = {link.flowtly_id: crm_id for crm_id, link in inp.links.items()}
        self.rechecked: set[tuple[Side, str]] = set()
        # New records already linked to a twin by a pending create (`_landed_twin`).
        self.claimed: dict[Side, set[str]] = {Side.CRM: set(), Side.FLOWTLY: set()}
        # Pending creates by (target, source id): a landed create is looked for per
        # record (`_landed_twin`, `_landed_base`), and most records have none.
        self._intents: dict[tuple[Side, str], list[PendingIntent]] = {}
        for target, intents in ((Side.CRM, inp.flowtly_intents), (Side.FLOWTLY, inp.crm_intents)):
            for intent in intents:
                self._intents.setdefault((target, intent.source_id), []).append(intent)

    # helpers -----------------------------------------------------------------------
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

    def _restrict(self, record: Record) -> Mapping[str, Scalar]:
        """``record``'s values of the synced fields, empty ones as None.

        A record carrying exactly those fields is its own read-only mapping, shared rather
        than copied: a create's step keeps it as ``base`` for the whole apply.
        """
        if record.fields.keys() == self.inp.names:
            return record.fields
        # Compact like a record's own values (`FieldValues`): a step holds it until applied.
        return FieldValues({name: record.fields.get(name) for name in self.inp.names})

    def _flowtly_reference(
        self, values: Mapping[str, Scalar]
    ) -> tuple[tuple[str, Scalar], ...] | None:
        """The parent reference of ``values`` as Flowtly knows it (none to translate: empty);
        None if the parent is not linked yet."""
        if self.inp.parent_links is None or values.get(PARENT_FIELD) is None:
            return ()
        parent = self.inp.parent_links.get(str(values[PARENT_FIELD]))
        if parent is None:
            return None
        # Not shared between creates by parent: a large plan's steps wait on disk, and a
        # reference per company held for the whole plan cost more than it saved.
        return ((PARENT_FIELD, parent),)

    def _to_flowtly_space(self, values: Mapping[str, Scalar]) -> Mapping[str, Scalar] | None:
        """Values with the parent reference as Flowtly knows it; None if not linked yet."""
        reference = self._flowtly_reference(values)
        if reference is None:
            return None
        return {**values, **dict(reference)} if reference else values

    def _flowtly_create(self, values: Mapping[str, Scalar]) -> Write | None:
        """The create of ``values`` in Flowtly; None while their parent is not linked.

        The payload is ``values`` itself, the step's ``base``: a translated parent
        reference rides beside it instead of a copy of every field.
        """
        reference = self._flowtly_reference(values)
        if reference is None:
            return None
        return Write.create(Side.FLOWTLY, values, reference)

    @staticmethod
    def _intent_key(source: Record, values: Mapping[str, Scalar]) -> tuple[str | None, bool]:
        """The natural key a create's step holds for its intent, and whether it is derived
        from the step's ``base`` instead (when that is ``source``'s own values)."""
        if values is source.fields:
            return None, True
        return record_key(source), False

    def _create_linked(
        self,
        target: Side,
        source: Record,
        values: Mapping[str, Scalar],
        fp: str,
        *,
        replaces: str | None = None,
    ) -> None:
        """Plan creating ``source`` (as ``values``) on ``target``, linked to it; a Flowtly
        create whose parent is not linked yet waits. ``replaces``: the CRM id whose link
        the new CRM record's link takes over."""
        entity = self.inp.entity
        key, key_from_base = self._intent_key(source, values)
        if target is Side.FLOWTLY:
            create = self._flowtly_create(values)
            if create is None:
                self._wait(Side.CRM, source.id, values)
                return
            self._add(
                Step(
                    entity,
                    source.id,
                    None,
                    (create,),
                    base=values,
                    crm_fp=fp,
                    link=True,
                    natural_key=key,
                    key_from_base=key_from_base,
                )
            )
        else:
            self._add(
                Step(
                    entity,
                    None,
                    source.id,
                    (Write.create(Side.CRM, values),),
                    base=values,
                    flowtly_fp=fp,
                    link=True,
                    natural_key=key,
                    key_from_base=key_from_base,
                    replaces=replaces,
                )
            )

    def _update_writes(
        self,
        result: MergeResult,
        crm_id: str,
        flowtly_id: str,
        crm_values: Mapping[str, Scalar],
        fl_values: Mapping[str, Scalar],
    ) -> tuple[list[Write], bool]:
        """The updates merge ``result`` makes on each side, and whether its Flowtly update
        was left out because a parent it names is not linked yet."""
        conflicted = [d.field for d in result.decisions if d.is_conflict]
        writes: list[Write] = []
        unlinked_parent = False
        if result.to_flowtly:
            target = self._to_flowtly_space(result.to_flowtly)
            if target is None:
                unlinked_parent = True
            else:
                old = self._to_flowtly_space(fl_values) or fl_values
                changes = changes_of(target, old, conflicted)
                writes.append(Write(Side.FLOWTLY, Action.UPDATE, flowtly_id, changes))
        if result.to_crm:
            changes = changes_of(result.to_crm, crm_values, conflicted)
            writes.append(Write(Side.CRM, Action.UPDATE, crm_id, changes))
        return writes, unlinked_parent

    def _link(
        self,
        crm_rec: Record,
        fl_rec: Record,
        *,
        replaces: str | None = None,
        base: Mapping[str, Scalar] | None = None,
    ) -> None:
        """Plan linking two records found to be twins, merged against ``base`` (none: a
        conflict goes by the policy). ``replaces``: the CRM id whose link this one takes
        over."""
        inp = self.inp
        crm_values, fl_values = self._restrict(crm_rec), self._restrict(fl_rec)
        result = merge_fields(sorted(inp.names), base, crm_values, fl_values, inp.policy)
        writes, _ = self._update_writes(result, crm_rec.id, fl_rec.id, crm_values, fl_values)
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
                replaces=replaces,
            )
        )

    def _landed_base(self, crm_rec: Record, fl_rec: Record) -> Mapping[str, Scalar] | None:
        """The base of twins one of which a pending create of the other made and that is
        unchanged since (it still holds the create's payload): its own values, which both
        sides agreed on when the create was sent. None if neither is such a create.

        Merged against it, an edit made since on the source side alone is carried over
        instead of taken for a conflict.
        """
        for target, source, made in ((Side.CRM, fl_rec, crm_rec), (Side.FLOWTLY, crm_rec, fl_rec)):
            pending = self._intents.get((target, source.id))
            if pending and landed_create(self.inp.entity, pending, source, {made.id: made}):
                return self._restrict(made)
        return None

    def _unclaimed(self, side: Side) -> Mapping[str, Record]:
        """``side``'s new records not linked by `_landed_twin`: the view's own mapping while
        none is (a first sync has hundreds of thousands, not to be copied for nothing)."""
        view = self.inp.crm if side is Side.CRM else self.inp.flowtly
        claimed = self.claimed[side]
        if not claimed:
            return view.new
        return {i: r for i, r in view.new.items() if i not in claimed}

    def _landed_twin(self, target: Side, source: Record) -> Record | None:
        """The record on ``target`` that a pending create of ``source`` made, when that
        create landed but the run that sent it stopped before linking it (a crash).

        Such a record is new on ``target``; it is claimed here, so that matching new
        records does not take it for one to create on the other side.
        """
        inp = self.inp
        view = inp.crm if target is Side.CRM else inp.flowtly
        pending = self._intents.get((target, source.id))
        if not pending:
            return None
        found = landed_create(inp.entity, pending, source, self._unclaimed(target))
        if found is None:
            return None
        self.claimed[target].add(found)
        return view.new[found]

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
