"""Planning: a pure function from what both sides hold to the steps a run would take.

No I/O happens here. The inputs are the two `SideView` values from detection, the links
and bases from the store, and the policy; the output is a `Plan`. A dry run renders it; a
real run hands it to `apply`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sync.engine.detect import listing_warning
from sync.engine.inputs import PlanInput
from sync.engine.match import match_new
from sync.engine.ops import Plan
from sync.engine.plan_linked import LinkedPlanning
from sync.model import EntityKind, Record, Scalar, Side
from sync.normalize import fingerprint

__all__ = ["payload_fingerprint", "plan_entity"]


class _Planner(LinkedPlanning):
    """Planning of one entity: the linked records (`LinkedPlanning`), then the new ones."""

    # -- new records ---------------------------------------------------------------------
    def plan_new(self) -> None:
        inp = self.inp
        # A record a recreate's pending create made is linked already (`_landed_twin`).
        matching = match_new(
            inp.entity,
            self._unclaimed(Side.CRM),
            self._unclaimed(Side.FLOWTLY),
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
            self._link(crm_rec, fl_rec, base=self._landed_base(crm_rec, fl_rec))
        for crm_id in matching.crm_only:
            self._create(Side.FLOWTLY, inp.crm.new[crm_id], inp.crm.fps[crm_id])
        for fl_id in matching.flowtly_only:
            self._create(Side.CRM, inp.flowtly.new[fl_id], inp.flowtly.fps[fl_id])

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
        held = (inp.flowtly if target is Side.CRM else inp.crm).held.get(source.id)
        if held is not None:
            self.waiting += 1
            self.waiting_records.append(held)
            return
        self._create_linked(target, source, self._restrict(source), fp)


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
        planner.steps,
        tuple(planner.errors),
        planner.waiting,
        (*(warning for warning in listings if warning), *planner.warnings),
        frozenset(planner.rechecked),
        tuple(planner.waiting_records),
        sum(planner.held_creates.values()),
    )


def payload_fingerprint(entity: EntityKind, values: Mapping[str, Scalar]) -> str:
    """The fingerprint an intent stores for the values of a create (CRM id space)."""
    return fingerprint(entity, values, frozenset(values))
