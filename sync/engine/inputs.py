"""What planning decides from: the plan's inputs and the protocols they rely on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from sync.engine.detect import SideView
from sync.engine.guard import DeleteCount
from sync.engine.match import PendingIntent
from sync.model import EntityKind, Scalar, Side
from sync.policy import SyncPolicy
from sync.store.rows import SentValues

__all__ = [
    "Gate",
    "GateProblem",
    "LinkState",
    "PlanInput",
    "SideRules",
    "StoredRejection",
]


class GateProblem(Protocol):
    """One data-quality finding about a value about to be written."""

    @property
    def field(self) -> str: ...
    @property
    def value(self) -> Scalar: ...
    @property
    def reason(self) -> str: ...
    @property
    def rejects(self) -> bool: ...


Gate = Callable[[EntityKind, Mapping[str, Scalar], Side], Sequence[GateProblem]]
"""Checks the record a write would leave on the target side; see `sync.quality.gates`."""


class LinkState(Protocol):
    """What planning needs of a stored link."""

    @property
    def crm_id(self) -> str: ...
    @property
    def flowtly_id(self) -> str: ...
    @property
    def crm_fp(self) -> str: ...
    @property
    def flowtly_fp(self) -> str: ...


class StoredRejection(NamedTuple):
    """A refusal remembered by the store: retried only once the source record changes."""

    fp: str
    reason: str
    field: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class SideRules:
    """What a side allows for the entity being planned."""

    can_delete: bool = True
    archive_status: str | None = None


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything `plan_entity` decides from.

    ``parent_links`` maps CRM company ids to Flowtly company ids (contacts and notes).
    ``rejections`` maps (side, id) to what was stored when a target or a gate refused it.
    """

    entity: EntityKind
    names: frozenset[str]
    links: Mapping[str, LinkState]
    """The links of the records that changed on either side (more do no harm)."""
    linked: int
    """How many records of the entity are linked in all (the mass-delete guard's base)."""
    bases: Mapping[str, Mapping[str, Scalar]]
    crm: SideView
    flowtly: SideView
    policy: SyncPolicy
    crm_rules: SideRules = SideRules()
    flowtly_rules: SideRules = SideRules()
    sibling_deletes: Mapping[Side, DeleteCount] = field(default_factory=dict)
    """Per side, the deletes of the entities the guard counts with this one (`guard`)."""
    parent_links: Mapping[str, str] | None = None
    rejections: Mapping[tuple[Side, str], StoredRejection] = field(default_factory=dict)
    crm_intents: tuple[PendingIntent, ...] = ()
    flowtly_intents: tuple[PendingIntent, ...] = ()
    gate: Gate | None = None
    sent: Mapping[str, SentValues] = field(default_factory=dict)
    """What updates sent to the links of ``bases`` since those were stored, by CRM id
    (`sync.engine.sent`)."""
