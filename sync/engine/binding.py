"""A store's binding to its two sides: recorded by the first real run, checked by every run.

A store's links pair CRM ids with Flowtly ids of one CRM and one Flowtly account. Pointed
at other sides (a configuration copied from the sandbox to the real account, another CRM
folder), the same links would pair unrelated records: updates would overwrite strangers
and every linked record missing from the new side would look deleted. So a run first asks
both sides who they are (`connectors.base.Connector.identity`) and compares the answers
with what the store recorded, before it reads anything else.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from connectors.base import Connector
from sync.engine.status import Status
from sync.errors import BindingMismatch
from sync.model import EntityKind, Side
from sync.store.rows import BindingRow

__all__ = ["check_binding", "current_identities", "mismatch"]

log = structlog.get_logger("sync.engine")


async def current_identities(crm: Connector, flowtly: Connector) -> dict[Side, str]:
    """What the two configured sides say they are."""
    return {Side.CRM: await crm.identity(), Side.FLOWTLY: await flowtly.identity()}


def mismatch(
    sync: str, recorded: Mapping[Side, BindingRow], current: Mapping[Side, str]
) -> BindingMismatch | None:
    """The refusal to raise when a recorded side differs from the current one, else None.

    A side with nothing recorded (a store from before bindings) is not a mismatch.
    """
    if all(row.identity == current[side] for side, row in recorded.items()):
        return None
    return BindingMismatch(
        sync,
        {str(side): row.identity for side, row in recorded.items()},
        {str(side): current[side] for side in recorded},
    )


async def check_binding(
    sync: str, crm: Connector, flowtly: Connector, store: Status, *, dry_run: bool
) -> None:
    """Raise `BindingMismatch` when ``store`` is bound to other sides than these.

    An unbound side is recorded by a real run; a dry run writes nothing, so it only checks.
    """
    current = await current_identities(crm, flowtly)
    recorded = store.binding(sync)
    refusal = mismatch(sync, recorded, current)
    if refusal is not None:
        raise refusal
    missing = {side: identity for side, identity in current.items() if side not in recorded}
    if not missing or dry_run:
        return
    store.bind(sync, missing)
    named = {str(side): identity for side, identity in missing.items()}
    if any(store.link_count(sync, entity) for entity in EntityKind):
        # Made by a version without bindings: nothing to compare with, so say it once.
        log.warning(
            "binding_recorded",
            bound_to=named,
            reason="this store has links but recorded no sides (made before bindings "
            "existed); it is now bound to the sides configured; if its links were made "
            "with others, restore a backup of the store or start a new one",
        )
    else:
        log.info("binding_recorded", bound_to=named)
