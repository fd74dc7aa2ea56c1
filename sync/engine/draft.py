"""A plan being drawn: the steps, findings and counts planning collects for one entity.

`PlanDraft` holds what every part of planning adds to (steps pass the data-quality gate
on the way in) and the small reads of the input they share; `sync.engine.plan_linked`
plans the records both sides know, `sync.engine.plan` the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.engine.detect import PARENT_FIELD, waiting_for_company
from sync.engine.inputs import PlanInput
from sync.engine.match import record_key
from sync.engine.ops import Action, Step, Write
from sync.errors import RecordError
from sync.model import Record, Scalar, Side

__all__ = ["PlanDraft"]


class PlanDraft:
    """The plan of one entity while it is drawn."""

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
        return {name: record.fields.get(name) for name in self.inp.names}

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
                    natural_key=record_key(source),
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
                    natural_key=record_key(source),
                    replaces=replaces,
                )
            )

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
