"""Records that left an entity on one side: a company whose kind changed (client to
supplier) is not a delete. Its link is kept with `LEFT` for that side, so the other side's
record is neither deleted nor created back; the new entity's listing brings the record in
as new there (matched, or created) like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from sync.engine.detect import LEFT
from sync.engine.inputs import LinkState
from sync.engine.ops import Step
from sync.errors import RecordError
from sync.model import EntityKind, Record, Scalar, Side

__all__ = ["Detached", "plan_left"]


@dataclass(frozen=True, slots=True)
class Detached:
    """What planning does with a link whose record left: a step (or none), and why."""

    step: Step | None = None
    warnings: tuple[RecordError, ...] = ()


def plan_left(
    entity: EntityKind,
    link: LinkState,
    base: Mapping[str, Scalar],
    left: Mapping[Side, Set[str]],
    gone: bool,
    crm_rec: Record | None,
    fl_rec: Record | None,
) -> Detached | None:
    """Plan a link whose record left ``entity`` on a side; None when it did not.

    ``left`` holds the CRM ids of the links whose record each side reports as left in
    this read; ``gone`` says whether either side deleted the record. A detached record that
    comes back (listed again on its side) is None here: it merges like any linked record.
    Until then the other side's record rests as it is, and a delete of either one drops
    only the link.
    """
    fps = {Side.CRM: link.crm_fp, Side.FLOWTLY: link.flowtly_fp}
    # A complete listing may report the same departure run after run: news only once.
    now = [side for side in Side if link.crm_id in left[side] and fps[side] != LEFT]
    if len(now) == 2:
        return Detached(Step(entity, link.crm_id, link.flowtly_id, unlink=True))
    if now:
        side = now[0]
        side_id = link.crm_id if side is Side.CRM else link.flowtly_id
        kept = link.flowtly_id if side is Side.CRM else link.crm_id
        warning = RecordError(
            str(entity),
            str(side),
            side_id,
            f"no longer a {entity} on the {side} side (its kind changed): its "
            f"{side.other} record {kept} is kept as it is, neither deleted nor synced",
        )
        step = Step(
            entity,
            link.crm_id,
            link.flowtly_id,
            base=base,
            crm_fp=LEFT if side is Side.CRM else link.crm_fp,
            flowtly_fp=LEFT if side is Side.FLOWTLY else link.flowtly_fp,
        )
        return Detached(step, (warning,))
    waiting = (fps[Side.CRM] == LEFT and crm_rec is None) or (
        fps[Side.FLOWTLY] == LEFT and fl_rec is None
    )
    if not waiting:
        return None
    if gone:
        return Detached(Step(entity, link.crm_id, link.flowtly_id, unlink=True))
    return Detached()
