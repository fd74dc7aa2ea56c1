"""A run's operations kept on disk as they happen, read back in order for the report.

A first sync creates every record, and the report lists every operation: held in memory,
they made a run's memory grow with the account. `OperationSpool` is the sequence of a
run's operations (`RunResult.operations`): appended to as steps finish, written in
chunks to a private scratch file (`sync.privacy.files.private_temporary_file`), and
streamed back by whoever reads it, in the order they were appended.

Operations that carry a message (failed writes, with the side's own words, and parked
conflicts) stay in memory and are never written: a side's text may hold a secret until
the report scrubs it (`with_kept`), and the scratch file holds only what the store does.
The counts behind a run's summary and its conflicts are kept as operations arrive, so
neither needs a pass over the file.
"""

from __future__ import annotations

import bisect
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, overload

from sync.engine.ops import Action, FieldChange, Operation
from sync.model import EntityKind, Scalar, Side
from sync.privacy.files import private_temporary_file

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


class _Scratch:
    """The scratch file, shared by the spools that read it and closed with the last of them
    (explicitly: a file left to the collector would warn about it)."""

    __slots__ = ("file",)

    def __init__(self) -> None:
        self.file: BinaryIO = private_temporary_file()

    def __del__(self) -> None:
        self.file.close()


def _kept_in_memory(op: Operation) -> bool:
    return op.message is not None or op.action is Action.CONFLICT


class OperationSpool(Sequence[Operation]):
    """A run's operations, in the order appended; see the module docstring.

        Compares equal to any sequence of the same operations (a list included), so code that
        held a list reads it the same way. The scratch file is opened on the first full chunk
        (a run with few operations never touches the disk) and closed when the last spool that
    reads it is collected.
    """

    def __init__(self, chunk: int = SPOOL_CHUNK) -> None:
        self._chunk = chunk
        self._scratch: _Scratch | None = None
        self._offsets: list[int] = []
        """Where each written chunk starts in the file."""
        self._starts: list[int] = []
        """The position (in the sequence) of each written chunk's first operation."""
        self._tail: list[Operation] = []
        self._kept: dict[int, Operation] = {}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._length = 0

    def append(self, op: Operation) -> None:
        if _kept_in_memory(op):
            self._kept[self._length] = op
        if op.outcome != "error":
            self._counts[str(op.entity), str(op.action)] += 1
        self._tail.append(op)
        self._length += 1
        if len(self._tail) >= self._chunk:
            self._flush()

    def extend(self, ops: Iterable[Operation]) -> None:
        for op in ops:
            self.append(op)

    def __iadd__(self, ops: Iterable[Operation]) -> OperationSpool:
        self.extend(ops)
        return self

    def _flush(self) -> None:
        if not self._tail:
            return
        start = self._length - len(self._tail)
        rows = [
            None if start + index in self._kept else _encode(op)
            for index, op in enumerate(self._tail)
        ]
        if self._scratch is None:
            self._scratch = _Scratch()
        file = self._scratch.file
        # Other spools may share the file (`with_kept`): every chunk goes at its end.
        offset = file.seek(0, 2)
        pickle.dump(rows, file, protocol=pickle.HIGHEST_PROTOCOL)
        self._offsets.append(offset)
        self._starts.append(start)
        self._tail = []

    def _chunk_at(self, number: int) -> list[Operation]:
        assert self._scratch is not None
        file = self._scratch.file
        file.seek(self._offsets[number])
        rows: list[_Encoded | None] = pickle.load(file)  # noqa: S301 - our own file, written above
        start = self._starts[number]
        return [
            self._kept[start + index] if row is None else _decode(row)
            for index, row in enumerate(rows)
        ]

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[Operation]:
        # Chunks written later (while this is read) are read too: the count is taken per step.
        number = 0
        while number < len(self._offsets):
            yield from self._chunk_at(number)
            number += 1
        yield from list(self._tail)

    @overload
    def __getitem__(self, index: int) -> Operation: ...

    @overload
    def __getitem__(self, index: slice) -> list[Operation]: ...

    def __getitem__(self, index: int | slice) -> Operation | list[Operation]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("operation index out of range")
        kept = self._kept.get(index)
        if kept is not None:
            return kept
        written = self._written()
        if index >= written:
            return self._tail[index - written]
        number = bisect.bisect_right(self._starts, index) - 1
        return self._chunk_at(number)[index - self._starts[number]]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"OperationSpool({self._length} operations)"

    def held(self) -> int:
        """How many operations are held in memory: the chunk not written yet, and those
        with a message."""
        return len(self._tail) + sum(1 for index in self._kept if index < self._written())

    def _written(self) -> int:
        return self._length - len(self._tail)

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
