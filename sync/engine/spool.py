"""A run's operations kept on disk as they happen, read back in order for the report.

A first sync creates every record, and the report lists every operation: held in memory,
they made a run's memory grow with the account. `OperationSpool` is the sequence of a
run's operations (`RunResult.operations`): appended to as steps finish, written in
chunks to the run's private scratch file (`sync.engine.scratch`), and streamed back by
whoever reads it, in the order they were appended.

Operations that carry a message (failed writes, with the side's own words, and parked
conflicts) stay in memory and are never written: a side's text may hold a secret until
the report scrubs it (`with_kept`), and the scratch file holds only what the store does.
The counts behind a run's summary and its conflicts are kept as operations arrive, so
neither needs a pass over the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from sync.engine.ops import Action, FieldChange, Operation
from sync.engine.scratch import ScratchFile, ScratchSequence
from sync.model import EntityKind, Scalar, Side

__all__ = ["SPOOL_CHUNK", "OperationSpool"]

SPOOL_CHUNK = 1024
"""Operations held in memory before they are written out as one chunk."""

_Change = tuple[str, Scalar, Scalar, bool]
_Encoded = tuple[str, str, str | None, str | None, str | None, tuple[_Change, ...], str]


def _encode(op: Operation) -> _Encoded:
    # Plain tuples: unpickled several times faster than the frozen dataclasses.
    return (
        op.entity.value,
        op.action.value,
        None if op.target is None else op.target.value,
        op.crm_id,
        op.flowtly_id,
        tuple((c.field, c.old, c.new, c.conflict) for c in op.changes),
        op.outcome,
    )


def _decode(row: _Encoded) -> Operation:
    entity, action, target, crm_id, flowtly_id, changes, outcome = row
    return Operation(
        EntityKind(entity),
        Action(action),
        None if target is None else Side(target),
        crm_id,
        flowtly_id,
        tuple(FieldChange(*change) for change in changes),
        None,
        outcome,
    )


def _count_key(op: Operation) -> tuple[str, str] | None:
    """What ``op`` counts as in the summary, (entity, action); a failed one counts not."""
    return None if op.outcome == "error" else (str(op.entity), str(op.action))


def _kept_in_memory(op: Operation) -> bool:
    return op.message is not None or op.action is Action.CONFLICT


class OperationSpool(ScratchSequence[Operation]):
    """A run's operations, in the order appended; see the module docstring.

    The scratch file is closed when the last spool that reads it is collected.
    """

    def __init__(self, chunk: int = SPOOL_CHUNK) -> None:
        super().__init__(chunk)
        self._kept: dict[int, Operation] = {}
        self._counts: Counter[tuple[str, str]] = Counter()

    def append(self, op: Operation) -> None:
        if _kept_in_memory(op):
            self._kept[self._length] = op
        key = _count_key(op)
        if key is not None:
            self._counts[key] += 1
        self._add(op)

    def extend(self, ops: Iterable[Operation]) -> None:
        if isinstance(ops, OperationSpool) and ops is not self and ops._shares_file(self):
            self._adopt(ops)
            return
        for op in ops:
            self.append(op)

    def sibling(self) -> OperationSpool:
        """An empty spool writing to this spool's scratch file (opened with the first chunk
        either writes): extending this spool with it takes its written chunks over as they
        are, without reading them back."""
        if self._scratch is None:
            self._scratch = ScratchFile()
        other = OperationSpool(self._chunk)
        other._scratch = self._scratch
        return other

    def _shares_file(self, other: OperationSpool) -> bool:
        return self._scratch is not None and self._scratch is other._scratch

    def _adopt(self, other: OperationSpool) -> None:
        """Append ``other``'s operations: its written chunks by reference to the shared
        file, the ones it holds in memory as any others (a short spool stays in memory)."""
        written = other._written()
        if written:
            self._flush()
            base = self._length
            self._offsets.extend(other._offsets)
            self._starts.extend(base + start for start in other._starts)
            self._kept.update(
                {base + index: op for index, op in other._kept.items() if index < written}
            )
            self._counts.update(other._counts)
            self._counts.subtract(k for k in map(_count_key, other._tail) if k is not None)
            self._length += written
        for op in other._tail:
            self.append(op)

    def __iadd__(self, ops: Iterable[Operation]) -> OperationSpool:
        self.extend(ops)
        return self

    def _encode(self, start: int, items: list[Operation]) -> list[_Encoded | None]:
        return [
            None if start + index in self._kept else _encode(op) for index, op in enumerate(items)
        ]

    def _decode(self, start: int, rows: list[_Encoded | None]) -> list[Operation]:
        return [
            self._kept[start + index] if row is None else _decode(row)
            for index, row in enumerate(rows)
        ]

    def _item(self, index: int) -> Operation:
        kept = self._kept.get(index)
        return super()._item(index) if kept is None else kept

    def held(self) -> int:
        """How many operations are held in memory: the chunk not written yet, and those
        with a message."""
        return len(self._tail) + sum(1 for index in self._kept if index < self._written())

    def counts(self) -> Counter[tuple[str, str]]:
        """Operations by (entity, action), failed ones left out: the summary's counts."""
        return Counter(self._counts)

    def conflicts(self) -> list[Operation]:
        return [op for _, op in sorted(self._kept.items()) if op.action is Action.CONFLICT]

    def with_kept(self, change: Callable[[Operation], Operation]) -> OperationSpool:
        """The same operations with ``change`` applied to those kept in memory (the ones
        with a message); the written chunks are shared, not copied. ``change`` must keep an
        operation's entity, action and outcome, which the counts are made of."""
        self._flush()
        other = OperationSpool(self._chunk)
        other._scratch = self._scratch
        other._offsets = list(self._offsets)
        other._starts = list(self._starts)
        other._kept = {index: change(op) for index, op in self._kept.items()}
        other._counts = Counter(self._counts)
        other._length = self._length
        return other
