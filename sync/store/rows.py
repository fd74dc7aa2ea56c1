"""What the store hands back: frozen rows, typed, with JSON already decoded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TypeAlias

from sync.model import EntityKind, Scalar, Side

__all__ = [
    "BindingRow",
    "ChangeLike",
    "ConflictResolution",
    "ConflictRow",
    "EventOutcome",
    "EventValues",
    "IntentRow",
    "JSONInput",
    "JSONValue",
    "LinkColumn",
    "LinkRow",
    "LinkValues",
    "RecordedChange",
    "RejectionRow",
    "RunEventRow",
    "RunOutcome",
    "RunRow",
    "SentValues",
]

JSONValue: TypeAlias = "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
"""A decoded JSON value, as read back from the store."""

JSONInput: TypeAlias = (
    "str | int | float | bool | Sequence[JSONInput] | Mapping[str, JSONInput] | None"
)
"""Anything the store accepts for a JSON column."""

SentValues: TypeAlias = Mapping[Side, Mapping[str, tuple[Scalar, ...]]]
"""Per target side, per field, the values updates sent there since a link's base was
stored (oldest first): what a run that stopped before storing the link may have left."""


class LinkColumn(StrEnum):
    """The columns of a link `sync.store.Store.link_map` can key or return."""

    CRM_ID = "crm_id"
    FLOWTLY_ID = "flowtly_id"
    CRM_FP = "crm_fp"
    FLOWTLY_FP = "flowtly_fp"


class ConflictResolution(StrEnum):
    """How a parked conflict was settled: one side's value won, or a value was given."""

    CRM = "crm"
    FLOWTLY = "flowtly"
    VALUE = "value"


class RunOutcome(StrEnum):
    """Where a run ended; ``running`` until `Store.finish_run`."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """Its process ended without finishing it (killed); marked by the next run of the sync."""


class EventOutcome(StrEnum):
    """What became of one operation of a run."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"


class ChangeLike(Protocol):
    """Any value describing one changed field (the engine's own change type fits)."""

    @property
    def field(self) -> str: ...

    @property
    def old(self) -> Scalar: ...

    @property
    def new(self) -> Scalar: ...


@dataclass(frozen=True, slots=True)
class RecordedChange:
    """One changed field of an operation, as recorded in the audit trail."""

    field: str
    old: Scalar
    new: Scalar


@dataclass(frozen=True, slots=True)
class LinkValues:
    """What `StoreTx.save_links` writes for one link."""

    crm_id: str
    flowtly_id: str
    base: Mapping[str, Scalar]
    crm_fp: str
    flowtly_fp: str


@dataclass(frozen=True, slots=True)
class IntentValues:
    """What `StoreTx.add_intents` writes for one create about to be sent."""

    target: Side
    source_id: str
    natural_key: str | None
    payload_fp: str


@dataclass(frozen=True, slots=True)
class EventValues:
    """What `StoreTx.add_events` writes for one operation."""

    action: str
    target: Side | None
    crm_id: str | None
    flowtly_id: str | None
    outcome: EventOutcome
    changes: Sequence[ChangeLike]
    message: str | None


@dataclass(frozen=True, slots=True)
class LinkRow:
    """A linked pair without its base (see `Store.load_bases`)."""

    id: int
    entity: EntityKind
    crm_id: str
    flowtly_id: str
    crm_fp: str
    flowtly_fp: str


@dataclass(frozen=True, slots=True)
class IntentRow:
    """A create that was about to be sent; pending until its link is stored."""

    id: int
    sync: str
    entity: EntityKind
    target: Side
    source_id: str
    natural_key: str | None
    payload_fp: str
    run_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """A parked field conflict; open while ``resolved_at`` is None."""

    id: int
    sync: str
    entity: EntityKind
    crm_id: str
    flowtly_id: str
    field: str
    base_value: Scalar
    crm_value: Scalar
    flowtly_value: Scalar
    detected_at: datetime
    resolved_at: datetime | None
    resolution: ConflictResolution | None
    resolved_value: Scalar
    resolved_by: str | None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True, slots=True)
class RejectionRow:
    """A record the target refused; retried when the source fingerprint changes."""

    id: int
    sync: str
    entity: EntityKind
    side: Side
    record_id: str
    field: str | None
    value: str | None
    reason: str
    source_fp: str
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run of a sync."""

    id: int
    sync: str
    started_at: datetime
    finished_at: datetime | None
    dry_run: bool
    outcome: RunOutcome
    summary: dict[str, JSONValue]
    error: str | None
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class RunEventRow:
    """One operation of a run, with its before/after values and outcome."""

    id: int
    run_id: int
    at: datetime
    entity: EntityKind
    action: str
    target: Side | None
    crm_id: str | None
    flowtly_id: str | None
    outcome: EventOutcome
    changes: tuple[RecordedChange, ...]
    message: str | None


@dataclass(frozen=True, slots=True)
class BindingRow:
    """The side a sync's store is bound to: its identity text, and since when."""

    sync: str
    side: Side
    identity: str
    recorded_at: datetime
