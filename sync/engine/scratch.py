"""A run's scratch file, and the sequences kept in it: chunks pickled to a private
temporary file and loaded back.

What a run must keep in order but not in memory (the report's operations, the steps of a
large plan) goes here in chunks, each loaded back whole by its offset. The file holds
only what the store holds too (values and bases of records, never a side's messages),
is readable by its owner alone (`sync.privacy.files.private_temporary_file`) and is
gone once closed. It is closed explicitly with the last object that reads it: a file
left to the collector would warn about it.
"""

from __future__ import annotations

import bisect
import pickle
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, TypeVar, overload

from sync.privacy.files import private_temporary_file

__all__ = ["ScratchFile", "ScratchSequence"]

_T = TypeVar("_T")


class ScratchFile:
    """Chunks appended at the end of one private temporary file, read back by offset.

    Several readers may share one (`OperationSpool.with_kept`): every chunk goes at the
    end, wherever another reader left the file position.
    """

    __slots__ = ("_file",)

    def __init__(self) -> None:
        # Opened with its first chunk: sequences sharing one that stay short never touch
        # the disk.
        self._file: BinaryIO | None = None

    def append(self, chunk: Any) -> int:
        """Write ``chunk`` (anything pickle takes) and return the offset to load it by."""
        if self._file is None:
            self._file = private_temporary_file()
        offset = self._file.seek(0, 2)
        pickle.dump(chunk, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        return offset

    def load(self, offset: int) -> Any:
        """The chunk written at ``offset``."""
        assert self._file is not None, "a chunk is loaded only once written"
        self._file.seek(offset)
        return pickle.load(self._file)  # noqa: S301 - our own private file, written above

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()


class ScratchSequence(Sequence[_T]):
    """Items in the order appended: past each full chunk, written to a `ScratchFile` and
    read back when asked for, one chunk in memory at a time.

    Compares equal to any sequence of the same items (a list or tuple included), so code
    that held one reads this the same way. The file is opened on the first full chunk (a
    short sequence never touches the disk). Subclasses say how a chunk is written
    (`_encode`) and read (`_decode`): plain tuples load several times faster than frozen
    dataclasses.
    """

    def __init__(self, chunk: int) -> None:
        self._chunk = chunk
        self._scratch: ScratchFile | None = None
        self._offsets: list[int] = []
        """Where each written chunk starts in the file."""
        self._starts: list[int] = []
        """The position (in the sequence) of each written chunk's first item."""
        self._tail: list[_T] = []
        self._length = 0

    @abstractmethod
    def _encode(self, start: int, items: list[_T]) -> Any:
        """What is written for ``items``, the chunk starting at position ``start``."""

    @abstractmethod
    def _decode(self, start: int, rows: Any) -> list[_T]:
        """The items of the chunk at ``start`` from what `_encode` wrote."""

    def _add(self, item: _T) -> None:
        self._tail.append(item)
        self._length += 1
        if len(self._tail) >= self._chunk:
            self._flush()

    def _flush(self) -> None:
        if not self._tail:
            return
        start = self._length - len(self._tail)
        if self._scratch is None:
            self._scratch = ScratchFile()
        self._offsets.append(self._scratch.append(self._encode(start, self._tail)))
        self._starts.append(start)
        self._tail = []

    def _chunk_at(self, number: int) -> list[_T]:
        assert self._scratch is not None
        return self._decode(self._starts[number], self._scratch.load(self._offsets[number]))

    def _written(self) -> int:
        return self._length - len(self._tail)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[_T]:
        # Chunks written later (while this is read) are read too: the count is taken per step.
        number = 0
        while number < len(self._offsets):
            yield from self._chunk_at(number)
            number += 1
        yield from list(self._tail)

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._item(index)

    def _item(self, index: int) -> _T:
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
        return f"{type(self).__name__}({self._length} items)"
