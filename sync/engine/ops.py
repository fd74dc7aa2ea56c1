"""The plan as data: frozen values that say what a run would do, and nothing else.

A `Step` gathers everything planned for one entity (one CRM record, one Flowtly record, or
a pair): the writes to each side, the link to store afterwards, and the conflicts to park.
Applying a step is all-or-nothing for its link row; the report flattens steps into
operations (`Step.operations`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sync.errors import RecordError
from sync.model import EntityKind, Scalar, Side
from sync.store.rows import SentValues

__all__ = [
    "Action",
    "FieldChange",
    "Operation",
    "ParkedConflict",
    "Plan",
    "Step",
    "Write",
    "changes_of",
]


class Action(StrEnum):
    """What an operation does; the report's ACTION values."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ARCHIVE = "archive"
    LINK = "link"
    UNLINK = "unlink"
    CONFLICT = "conflict"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's old and new value on the target; ``conflict`` when a policy decided it."""

    field: str
    old: Scalar
    new: Scalar
    conflict: bool = False


def changes_of(
    values: Mapping[str, Scalar], old: Mapping[str, Scalar], conflicts: Iterable[str] = ()
) -> tuple[FieldChange, ...]:
    """The field changes from ``old`` to ``values`` (both empty: left out), conflicts marked."""
    conflicted = set(conflicts)
    return tuple(
        FieldChange(name, old.get(name), value, name in conflicted)
        for name, value in sorted(values.items())
        if value is not None or old.get(name) is not None
    )


@dataclass(frozen=True, slots=True)
class Write:
    """A write to one side. ``record_id`` is the target's id (None for a create).

    A create keeps only its ``payload`` (often the step's ``base`` itself): its changes
    all start from nothing, so they are derived when asked for instead of being held as
    one `FieldChange` per field for every create of an entity while it is applied.
    """

    target: Side
    action: Action
    record_id: str | None
    field_changes: tuple[FieldChange, ...] = ()
    payload: Mapping[str, Scalar] | None = None
    overrides: tuple[tuple[str, Scalar], ...] = ()
    """Fields of ``payload`` sent with another value (a parent reference in the target's
    id space), so a child's create need not copy its whole payload to change one field."""

    @classmethod
    def create(
        cls,
        target: Side,
        values: Mapping[str, Scalar],
        overrides: tuple[tuple[str, Scalar], ...] = (),
    ) -> Write:
        """A create on ``target`` of ``values`` (not copied: they must not change)."""
        return cls(target, Action.CREATE, None, payload=values, overrides=overrides)

    @property
    def changes(self) -> tuple[FieldChange, ...]:
        if self.payload is None:
            return self.field_changes
        if self.overrides:
            return changes_of({**self.payload, **dict(self.overrides)}, {})
        return changes_of(self.payload, {})

    def values(self) -> dict[str, Scalar]:
        return {change.field: change.new for change in self.changes}


@dataclass(frozen=True, slots=True)
class ParkedConflict:
    """A field both sides changed differently, left for a person to decide."""

    field: str
    base: Scalar
    crm: Scalar
    flowtly: Scalar


@dataclass(frozen=True, slots=True)
class Step:
    """Everything planned for one entity.

    After the writes succeed the link (crm id, flowtly id) is stored with ``base``; ``unlink``
    drops it instead. ``crm_fp``/``flowtly_fp`` are each side's fingerprint before the writes
    (None where the record does not exist yet); a written side's fingerprint afterwards comes
    from the record the write returns. ``natural_key`` is
    the correlation key an intent carries for creates; with ``key_from_base`` it is not
    held but derived from ``base`` when the intent is written (``base`` is then the source
    record's own values, so the key is the same, and a first sync does not hold one key
    per record while it applies). ``crm_parent``/``flowtly_parent`` hold
    the parent company ids for contacts and notes, to translate references.
    """

    entity: EntityKind
    crm_id: str | None
    flowtly_id: str | None
    writes: tuple[Write, ...] = ()
    base: Mapping[str, Scalar] = field(default_factory=dict)
    crm_fp: str | None = None
    flowtly_fp: str | None = None
    conflicts: tuple[ParkedConflict, ...] = ()
    link: bool = False
    unlink: bool = False
    tombstone: Side | None = None
    natural_key: str | None = None
    key_from_base: bool = False
    replaces: str | None = None
    """A CRM id whose link this step's new link replaces (a record recreated in the CRM)."""
    sent: SentValues | None = None
    """What this step's updates send (with what earlier runs sent and never stored), noted
    beside the link before they go out (`sync.engine.sent`)."""

    @property
    def has_effects(self) -> bool:
        return bool(self.writes or self.conflicts or self.link or self.unlink)

    def operations(self) -> Iterator[Operation]:
        """The report's view of this step."""
        for write in self.writes:
            yield Operation(
                self.entity,
                write.action,
                write.target,
                self.crm_id,
                self.flowtly_id
                if write.target is not Side.FLOWTLY or write.action is not Action.CREATE
                else None,
                write.changes,
            )
        if self.link and not any(w.action is Action.CREATE for w in self.writes):
            yield Operation(self.entity, Action.LINK, None, self.crm_id, self.flowtly_id)
        for conflict in self.conflicts:
            yield Operation(
                self.entity,
                Action.CONFLICT,
                None,
                self.crm_id,
                self.flowtly_id,
                (FieldChange(conflict.field, conflict.crm, conflict.flowtly),),
                message=f"both sides changed {conflict.field}",
            )


@dataclass(frozen=True, slots=True)
class Operation:
    """One line of a report: an entity, an action on a target, and the changed fields."""

    entity: EntityKind
    action: Action
    target: Side | None
    crm_id: str | None
    flowtly_id: str | None
    changes: tuple[FieldChange, ...] = ()
    message: str | None = None
    outcome: str = "planned"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one entity kind's run would do: steps, plus records that cannot be planned."""

    entity: EntityKind
    steps: Sequence[Step] = ()
    """In order; a large plan's are on disk until read (`sync.engine.step_spool`)."""
    errors: tuple[RecordError, ...] = ()
    waiting: int = 0
    """Records whose parent company is not linked yet; they sync once it is."""
    warnings: tuple[RecordError, ...] = ()
    """Data-quality findings that did not stop a write (gates set to ``warn``)."""
    rechecked: frozenset[tuple[Side, str]] = frozenset()
    """Records whose error depends on other records (an ambiguous match): planned afresh
    every run, never remembered as rejected until they change."""
    waiting_records: tuple[RecordError, ...] = ()
    """What ``waiting`` counts, each record named with the company it waits for."""
    held_creates: int = 0
    """New records not created because the side they would be created on had an
    incomplete listing (their twin may be in what it lacked); they are planned again."""

    def operations(self) -> Iterator[Operation]:
        for step in self.steps:
            yield from step.operations()
