"""Planning the records both sides know: merge their changes, carry deletes over, and
refuse deletes the mass-delete guard does not trust."""

from __future__ import annotations

from collections.abc import Mapping

from sync.engine.detect import TOMBSTONE
from sync.engine.draft import PlanDraft
from sync.engine.guard import ALLOW_HINT, DeleteCount, refusal
from sync.engine.inputs import LinkState
from sync.engine.left import plan_left
from sync.engine.merge import merge_fields
from sync.engine.ops import Action, FieldChange, ParkedConflict, Step, Write
from sync.engine.sent import noted_sent, settled_base
from sync.errors import RecordError
from sync.model import Record, Scalar, Side

__all__ = ["LinkedPlanning"]


class LinkedPlanning(PlanDraft):
    """The part of planning that handles linked records."""

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
        rules = inp.flowtly_rules if keep is Side.FLOWTLY else inp.crm_rules
        if other is not None and not self._archived_since(rules.archive_status, base, other):
            # Deleted on one side, changed on the other: the change wins, recreate it,
            # unless an earlier run's recreate landed and only its link was lost.
            twin = self._landed_twin(gone, other)
            if twin is not None:
                crm_rec, fl_rec = (twin, other) if gone is Side.CRM else (other, twin)
                replaces = link.crm_id if gone is Side.CRM else None
                # The recreate still holds what was sent: an edit made since is merged.
                self._link(crm_rec, fl_rec, replaces=replaces, base=self._restrict(twin))
                return
            self._create_linked(
                gone, other, self._restrict(other), keep_view.fps[other.id], replaces=link.crm_id
            )
            return
        if (link.crm_fp if gone is Side.CRM else link.flowtly_fp) == TOMBSTONE:
            return  # handled by an earlier run; nothing changed since
        if not inp.policy.propagate_deletes:
            self._add(Step(inp.entity, link.crm_id, link.flowtly_id, unlink=True))
            return
        kept_fp = link.crm_fp if keep is Side.CRM else link.flowtly_fp
        if other is not None:
            kept_fp = keep_view.fps[other.id]
        crm_fp = TOMBSTONE if gone is Side.CRM else kept_fp
        fl_fp = TOMBSTONE if gone is Side.FLOWTLY else kept_fp
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
            if (base if other is None else other.fields).get("status") != status:
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

    def _archived_since(
        self, archive_status: str | None, base: Mapping[str, Scalar], record: Record
    ) -> bool:
        """Whether ``record``'s only change since ``base`` is being archived: what its
        twin's delete leads to anyway. An earlier run archived it and stopped (a crash)
        before storing so, or a person archived it too; neither is an edit that should
        bring the deleted twin back."""
        if archive_status is None or record.get("status") != archive_status:
            return False
        values = self._restrict(record)
        return all(values.get(name) == base.get(name) for name in self.inp.names - {"status"})

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
        sent = inp.sent.get(link.crm_id)
        # A value an earlier run sent and never stored as agreed is no edit of its side.
        agreed = settled_base(base, sent, {Side.CRM: crm_values, Side.FLOWTLY: fl_values})
        result = merge_fields(sorted(inp.names), agreed, crm_values, fl_values, inp.policy)
        writes, unlinked_parent = self._update_writes(
            result, link.crm_id, link.flowtly_id, crm_values, fl_values
        )
        if unlinked_parent:
            self._wait(Side.CRM, link.crm_id, result.to_flowtly)
            return
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
                sent=noted_sent(sent, {Side.CRM: result.to_crm, Side.FLOWTLY: result.to_flowtly}),
            )
        )
