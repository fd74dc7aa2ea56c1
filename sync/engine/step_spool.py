"""A plan's steps kept on disk while it is drawn, read back chunk by chunk as it is applied.

A first sync plans a create for every record of an entity, each step holding the values
it writes: held in memory beside the records they were planned from, they made the
planning of the largest entity the peak of a run's memory. `StepSpool` is the sequence
of a plan's steps (`Plan.steps`): past its first chunk, steps are written in chunks to
a private scratch file (`sync.engine.scratch`) as they are planned, so planning holds
the records and one chunk of steps; `StepQueue` hands them to `apply_plan` one by one,
one chunk in memory at a time. A plan of fewer steps than a chunk never touches disk.

Steps hold records' values and bases, which the store holds too, never a side's
messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sync.engine.ops import Step, Write
from sync.engine.scratch import ScratchSequence
from sync.model import FieldValues, Scalar

__all__ = ["STEP_CHUNK", "StepQueue", "StepSpool"]

STEP_CHUNK = 2048
"""Steps held in memory before they are written out as one chunk."""

_SAME_AS_BASE = True
"""A write's encoded payload when it is the step's ``base`` itself (a create's usually
is): the object is shared again when loaded, not loaded twice."""


def _values(values: Mapping[str, Scalar]) -> Mapping[str, Scalar]:
    # `FieldValues` and dicts pickle as they are; any other mapping (a read-only view) as
    # a dict of the same items.
    return values if type(values) in (FieldValues, dict) else dict(values)


def _encode(step: Step) -> tuple[Any, ...]:
    # Plain tuples: pickled twice as fast as the frozen dataclasses themselves.
    base = step.base
    writes = tuple(
        (
            write.target,
            write.action,
            write.record_id,
            write.field_changes,
            None
            if write.payload is None
            else _SAME_AS_BASE
            if write.payload is base
            else _values(write.payload),
            write.overrides,
        )
        for write in step.writes
    )
    return (
        step.entity,
        step.crm_id,
        step.flowtly_id,
        writes,
        _values(base),
        step.crm_fp,
        step.flowtly_fp,
        step.conflicts,
        step.link,
        step.unlink,
        step.tombstone,
        step.natural_key,
        step.key_from_base,
        step.replaces,
        step.sent,
    )


def _decode(row: tuple[Any, ...]) -> Step:
    entity, crm_id, flowtly_id, writes, base, *rest = row
    return Step(
        entity,
        crm_id,
        flowtly_id,
        tuple(
            Write(
                target,
                action,
                record_id,
                changes,
                base if payload is _SAME_AS_BASE else payload,
                overrides,
            )
            for target, action, record_id, changes, payload, overrides in writes
        ),
        base,
        *rest,
    )


class StepSpool(ScratchSequence[Step]):
    """A plan's steps, in the order appended; see the module docstring. The scratch file
    is closed when the spool (and every `StepQueue` reading it) is collected."""

    def __init__(self, chunk: int | None = None) -> None:
        super().__init__(STEP_CHUNK if chunk is None else chunk)

    def append(self, step: Step) -> None:
        self._add(step)

    def _encode(self, start: int, items: list[Step]) -> list[tuple[Any, ...]]:
        return [_encode(step) for step in items]

    def _decode(self, start: int, rows: list[tuple[Any, ...]]) -> list[Step]:
        return [_decode(row) for row in rows]

    def held(self) -> int:
        """How many steps are held in memory: the chunk not written yet."""
        return len(self._tail)


class StepQueue:
    """A plan's steps taken off one by one as they are applied (`apply_plan`).

    Reads ``steps`` in order, so a spooled plan is loaded one chunk at a time and each step
    is let go once taken; ``len`` is how many are left.
    """

    __slots__ = ("_left", "_steps")

    def __init__(self, steps: Sequence[Step]) -> None:
        self._left = len(steps)
        self._steps = iter(steps)

    def popleft(self) -> Step:
        if not self._left:
            raise IndexError("no steps left")
        self._left -= 1
        return next(self._steps)

    def __len__(self) -> int:
        return self._left

    def __bool__(self) -> bool:
        return self._left > 0
