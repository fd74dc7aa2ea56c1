"""Support for the in-memory connector: its state, its write log, failure injection
(of operations, and of listings that arrive broken)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sync.errors import TransientError
from sync.model import EntityKind, Record, Scalar

__all__ = ["FaultPlan", "ListingFault", "MemoryCall", "MemoryState", "Op", "Predicate", "garble"]


class Op(StrEnum):
    """The operations a fault can be attached to."""

    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    COMMIT = "commit"


class ListingFault(StrEnum):
    """How a complete listing can arrive broken, as a paged API delivers it."""

    DROP_PAGE = "drop_page"
    """The last page arrives without its members (it still states the total)."""
    REPEAT_ID = "repeat_id"
    """The last record is replaced by a second copy of the first (offsets shifted)."""


def garble(pages: list[list[Record]], fault: ListingFault) -> list[list[Record]]:
    """``pages`` of a listing as ``fault`` delivers them (a listing too small for the
    fault arrives whole)."""
    garbled = [list(page) for page in pages]
    if fault is ListingFault.DROP_PAGE and garbled[-1]:
        garbled[-1] = []
    elif fault is ListingFault.REPEAT_ID and sum(map(len, garbled)) >= 2:
        garbled[-1][-1] = garbled[0][0]
    return garbled


Predicate = Callable[
    [Op, EntityKind | None, str | None, Mapping[str, Scalar]], BaseException | None
]
"""Called before every operation with (op, entity, record id, values); a returned
exception is raised by the operation (after applying it when the fault says so)."""


@dataclass(slots=True)
class _Fault:
    op: Op
    entity: EntityKind | None
    exc: BaseException
    remaining: int
    after: bool


class FaultPlan:
    """Queued one-shot faults plus optional predicates, checked in that order."""

    def __init__(self) -> None:
        self._faults: list[_Fault] = []
        self._predicates: list[tuple[Predicate, bool]] = []
        self.listings: dict[EntityKind, ListingFault] = {}
        """Entities whose complete listings arrive broken, until cleared."""
        self.garbled = 0
        """How many broken complete listings were served (incremental reads are not)."""

    def add(
        self, op: Op, entity: EntityKind | None, exc: BaseException | None, times: int, after: bool
    ) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        error = exc if exc is not None else TransientError(f"injected failure on {op}")
        self._faults.append(_Fault(op, entity, error, times, after))

    def add_predicate(self, predicate: Predicate, after: bool) -> None:
        self._predicates.append((predicate, after))

    def clear(self) -> None:
        self._faults.clear()
        self._predicates.clear()
        self.listings.clear()

    def pending(self) -> int:
        """How many queued one-shot failures have not fired yet."""
        return sum(fault.remaining for fault in self._faults)

    def take(
        self, op: Op, entity: EntityKind | None, record_id: str | None, values: Mapping[str, Scalar]
    ) -> tuple[BaseException, bool] | None:
        """The exception the operation must raise and whether it applies first, if any."""
        for fault in self._faults:
            if fault.op is op and (fault.entity is None or fault.entity is entity):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.exc, fault.after
        for predicate, after in self._predicates:
            exc = predicate(op, entity, record_id, values)
            if exc is not None:
                return exc, after
        return None


@dataclass(frozen=True, slots=True)
class MemoryCall:
    """One write the connector accepted, in order, for tests to assert on."""

    op: Op
    entity: EntityKind
    record_id: str
    values: Mapping[str, Scalar]


@dataclass(slots=True)
class MemoryState:
    """Everything a memory side holds; copied whole to model durable commits."""

    records: dict[EntityKind, dict[str, Record]]
    stamps: dict[EntityKind, dict[str, datetime]]
    tombstones: dict[EntityKind, dict[str, datetime]]
    next_id: int
    tick: int
    left: dict[EntityKind, dict[str, datetime]] = field(default_factory=dict)
    """Ids that moved to another entity kind, with when (see `MemoryConnector.move`)."""

    def copy(self) -> MemoryState:
        return MemoryState(
            {entity: dict(rows) for entity, rows in self.records.items()},
            {entity: dict(rows) for entity, rows in self.stamps.items()},
            {entity: dict(rows) for entity, rows in self.tombstones.items()},
            self.next_id,
            self.tick,
            {entity: dict(rows) for entity, rows in self.left.items()},
        )
