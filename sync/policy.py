"""How a sync decides what nobody decided: conflict policy, field owners, delete rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from sync.model import Side

__all__ = ["ConflictPolicy", "Direction", "SyncPolicy"]


class ConflictPolicy(StrEnum):
    """Who wins when both sides changed a field to different values."""

    CRM = "crm"
    FLOWTLY = "flowtly"
    MANUAL = "manual"
    """Park the field as a conflict; the rest of the record still syncs."""


class Direction(StrEnum):
    """Which way a field may flow."""

    BOTH = "both"
    CRM_TO_FLOWTLY = "crm_to_flowtly"
    FLOWTLY_TO_CRM = "flowtly_to_crm"

    def allows(self, target: Side) -> bool:
        """Whether a value may be written to ``target``."""
        if self is Direction.BOTH:
            return True
        return target is (Side.FLOWTLY if self is Direction.CRM_TO_FLOWTLY else Side.CRM)


def _frozen(mapping: Mapping[str, Side] | None = None) -> Mapping[str, Side]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """The decisions a sync's configuration makes for the engine.

    ``field_owners`` names, per canonical field, the side whose value wins a conflict.
    ``mass_delete_ratio``/``mass_delete_min``: a run refuses to delete when a side lost more
    than that fraction of its linked records (and at least that many), or lists none of
    them, since a truncated listing or a wrong account looks exactly like mass deletion
    (`sync.engine.guard`). ``allow_mass_delete`` lets one explicit run through.
    """

    conflict_policy: ConflictPolicy = ConflictPolicy.MANUAL
    field_owners: Mapping[str, Side] = field(default_factory=_frozen)
    directions: Mapping[str, Direction] = field(default_factory=lambda: MappingProxyType({}))
    propagate_deletes: bool = True
    create_in_crm: bool = True
    create_in_flowtly: bool = True
    mass_delete_ratio: float = 0.5
    mass_delete_min: int = 3
    allow_mass_delete: bool = False

    def winner(self, field_name: str) -> Side | None:
        """The side that wins a conflict on ``field_name``; None parks it (manual)."""
        owner = self.field_owners.get(field_name)
        if owner is not None:
            return owner
        if self.conflict_policy is ConflictPolicy.CRM:
            return Side.CRM
        if self.conflict_policy is ConflictPolicy.FLOWTLY:
            return Side.FLOWTLY
        return None

    def may_write(self, field_name: str, target: Side) -> bool:
        """Whether ``field_name`` may be written to ``target``."""
        return self.directions.get(field_name, Direction.BOTH).allows(target)

    def may_create(self, target: Side) -> bool:
        """Whether records new on the other side are created on ``target``."""
        return self.create_in_flowtly if target is Side.FLOWTLY else self.create_in_crm
