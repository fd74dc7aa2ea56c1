"""The mass-delete guard: when a side suddenly lists far fewer linked records, refuse.

A truncated listing, an emptied export or a connector pointed at the wrong account looks
exactly like mass deletion, so deletes inferred from one side are refused when:

- a complete listing holds none of an entity's linked records (however few there are);
- more than ``mass_delete_ratio`` of an entity's linked records went missing, counted once
  at least ``mass_delete_min`` would go;
- the same holds for clients and counterparties counted together: most CRMs keep both in
  one companies table told apart by a kind column, so a file losing 60 % of its rows is
  one event even when each kind alone stays under the threshold.

A refusal holds back every delete of that entity on that side; creates and updates go on.
``allow_mass_delete`` (one explicit ``flowtly-sync run --allow-mass-delete``) lets it
through, and the run still warns about what the guard would have refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sync.model import EntityKind, Side
from sync.policy import SyncPolicy

__all__ = ["ALLOW_HINT", "COMPANY_KINDS", "DeleteCount", "refusal", "siblings"]

COMPANY_KINDS = (EntityKind.CLIENT, EntityKind.COUNTERPARTY)
"""The entities that share one companies table in the CRM, so count together."""

ALLOW_HINT = "to delete them on purpose, run once with `flowtly-sync run --allow-mass-delete`"


@dataclass(frozen=True, slots=True)
class DeleteCount:
    """How many linked records of an entity one side no longer lists, of how many."""

    deleted: int = 0
    linked: int = 0

    def __add__(self, other: DeleteCount) -> DeleteCount:
        return DeleteCount(self.deleted + other.deleted, self.linked + other.linked)


def siblings(entity: EntityKind) -> tuple[EntityKind, ...]:
    """The entities counted together with ``entity`` by the guard, itself excluded."""
    if entity not in COMPANY_KINDS:
        return ()
    return tuple(kind for kind in COMPANY_KINDS if kind is not entity)


def _too_many(policy: SyncPolicy, count: DeleteCount) -> bool:
    return (
        count.deleted >= policy.mass_delete_min
        and count.deleted > policy.mass_delete_ratio * count.linked
    )


def refusal(
    policy: SyncPolicy,
    entity: EntityKind,
    side: Side,
    own: DeleteCount,
    *,
    listed_none: bool,
    sibling: DeleteCount | None = None,
) -> str | None:
    """Why the guard refuses ``own.deleted`` deletes of ``entity`` seen on ``side``.

    ``listed_none``: the side's complete listing holds none of the entity's linked
    records. ``sibling``: the other company entities' counts on the same side. None
    when the deletes may go ahead; the reason does not depend on ``allow_mass_delete``.
    """
    if own.deleted == 0:
        return None
    missing = (
        f"{own.deleted} of {own.linked} linked {entity} records are missing on the {side} side"
    )
    if listed_none:
        return f"{missing} (it lists none of them)"
    if _too_many(policy, own):
        return missing
    if sibling is not None and sibling.linked:
        total = own + sibling
        if _too_many(policy, total):
            return (
                f"{missing}, {total.deleted} of {total.linked} linked companies (clients and "
                "counterparties together)"
            )
    return None
