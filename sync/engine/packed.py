"""Records kept packed: each record's values as one bytes object until it is asked for.

A first sync holds every new record of the entity being planned: 300,000 contacts at
100,000 companies. As objects (a `Record`, its `FieldValues`, their tuple, a string per
value) a contact takes about 500 bytes; its values marshalled into one bytes object take
about half. `PackedRecords` is the mapping a `SideView` keeps its new records in: stored
packed as they are read, a `Record` made again each time one is asked for (equal to the
one stored, not the same object). Planning asks for each a few times, in listing order
or by id, so nothing here depends on the order of access.

`marshal` takes every `Scalar` (text, integers, booleans, None) and is the fastest
serializer of plain tuples; what it writes never leaves the process.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Mapping, MutableMapping

from sync.model import EntityKind, FieldValues, Record

__all__ = ["PackedRecords"]


class PackedRecords(MutableMapping[str, Record]):
    """Records of one entity by id, each packed (see the module docstring)."""

    __slots__ = ("_entity", "_layout_numbers", "_layouts", "_packed")

    def __init__(self, records: Mapping[str, Record] | None = None) -> None:
        self._entity: EntityKind | None = None
        self._layouts: list[Mapping[str, int]] = []
        # Keyed by the layout object itself (its id): records of one layout share it, and
        # the list above keeps every one alive, so no id is reused meanwhile.
        self._layout_numbers: dict[int, int] = {}
        self._packed: dict[str, bytes] = {}
        if records:
            self.update(records)

    def __setitem__(self, record_id: str, record: Record) -> None:
        if record_id != record.id:
            raise ValueError(f"record {record.id!r} stored as {record_id!r}")
        if self._entity is None:
            self._entity = record.entity
        elif record.entity is not self._entity:
            raise ValueError(f"a {record.entity} among {self._entity} records")
        values = FieldValues(record.fields)
        layout = values.layout
        number = self._layout_numbers.get(id(layout))
        if number is None:
            number = self._layout_numbers[id(layout)] = len(self._layouts)
            self._layouts.append(layout)
        self._packed[record_id] = marshal.dumps((number, *values.ordered))

    def __getitem__(self, record_id: str) -> Record:
        number, *values = marshal.loads(self._packed[record_id])  # noqa: S302 - packed above
        assert self._entity is not None  # a record is stored
        return Record(
            self._entity, record_id, FieldValues.with_layout(self._layouts[number], tuple(values))
        )

    def __delitem__(self, record_id: str) -> None:
        del self._packed[record_id]

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._packed

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __repr__(self) -> str:
        return f"PackedRecords({dict(self.items())!r})"
