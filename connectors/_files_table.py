"""One CSV file of the files connector as a table of records: header checks, the id
index, and turning a row into a canonical `Record` (or the reasons it cannot be one).

Header names are resolved through a `FieldLayout` (CRM column -> canonical name); a column
explicitly mapped to a canonical name wins over a column that merely carries that name,
which is then kept untouched like any unknown column."""

from __future__ import annotations

import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from connectors._csv import CsvFile, CsvRow
from sync.errors import InputError, RecordError
from sync.mapping.layout import DEFAULT_KIND_LABELS, FieldLayout, fold
from sync.model import SCHEMAS, EntityKind, FieldSpec, Record, Scalar, Side
from sync.normalize import NormalizationError, normalize_value

__all__ = ["COMPANY_KINDS", "ParsedRow", "Source", "Table", "parse_row", "row_entity", "serialize"]


class Source(StrEnum):
    """The three files of the folder."""

    COMPANIES = "companies"
    CONTACTS = "contacts"
    NOTES = "notes"

    @property
    def entities(self) -> tuple[EntityKind, ...]:
        """The entity kinds whose rows live in this file."""
        return _SOURCE_ENTITIES[self]

    @property
    def default_columns(self) -> tuple[str, ...]:
        """The header of a file this connector creates (docs/reference.md)."""
        return _DEFAULT_COLUMNS[self]


_SOURCE_ENTITIES: Mapping[Source, tuple[EntityKind, ...]] = {
    Source.COMPANIES: (EntityKind.CLIENT, EntityKind.COUNTERPARTY),
    Source.CONTACTS: (EntityKind.CONTACT,),
    Source.NOTES: (EntityKind.NOTE,),
}
_COMPANY_COLUMNS = [
    "id",
    "kind",
    "name",
    "country",
    "currency",
    "status",
    "tin_type",
    "tin",
    "vat_number",
    "due_days",
    "city",
    "post_code",
    "street_line",
    "building_number",
    "phone",
    "website",
]
_DEFAULT_COLUMNS: Mapping[Source, tuple[str, ...]] = {
    Source.COMPANIES: tuple(_COMPANY_COLUMNS),
    Source.CONTACTS: ("id", "company_id", "name", "email", "phone", "title", "type"),
    Source.NOTES: ("id", "company_id", "body", "created_at"),
}
_REQUIRED: Mapping[Source, tuple[str, ...]] = {
    Source.COMPANIES: ("id", "name"),
    Source.CONTACTS: ("id", "email"),
    Source.NOTES: ("id",),
}
COMPANY_KINDS: Mapping[EntityKind, str] = DEFAULT_KIND_LABELS


def serialize(value: Scalar) -> str:
    """The cell text of a canonical value (booleans as ``true``/``false``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _numeric(record_id: str) -> bool:
    return record_id.isascii() and record_id.isdigit()


@dataclass(slots=True)
class Table:
    """A parsed file: column positions by canonical name, and the first row of each id."""

    source: Source
    file: CsvFile
    columns: dict[str, int]
    carried: dict[EntityKind, tuple[tuple[str, int, FieldSpec], ...]]
    layout: FieldLayout = field(default_factory=FieldLayout)
    index: dict[str, CsvRow] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    numeric_max: int | None = None
    all_numeric: bool = True
    dirty: bool = False

    @classmethod
    def build(cls, source: Source, file: CsvFile, layout: FieldLayout | None = None) -> Table:
        """Check the header (`InputError` naming file and column) and index the rows."""
        layout = layout or FieldLayout()
        entity = source.entities[0]
        mapped = layout.mapped_names(entity)
        explicit = layout.aliases.get(entity, {})
        columns: dict[str, int] = {}
        seen: set[str] = set()
        for position, raw in enumerate(file.header):
            folded = fold(raw)
            name = layout.canonical_name(entity, raw)
            shadowed = name in mapped and folded not in explicit
            if folded in seen or (not shadowed and name in columns):
                raise InputError(
                    str(file.path), "duplicate column in the header", line=1, column=raw
                )
            seen.add(folded)
            if not shadowed:
                # A column that merely carries a name some other column is mapped to is
                # kept untouched, like an unknown column, instead of competing with it.
                columns[name] = position
        for name in _REQUIRED[source]:
            if name not in columns:
                raise InputError(
                    str(file.path),
                    "required column missing from the header"
                    + _mapped_from(layout, entity, name)
                    + _delimiter_hint(file),
                    line=1,
                    column=name,
                )
        carried = {
            kind: tuple(
                (name, position, _spec(layout, kind, name))
                for name, position in columns.items()
                if name in SCHEMAS[kind]
            )
            for kind in source.entities
        }
        table = cls(source, file, columns, carried, layout)
        id_column = columns["id"]
        for row in file.rows:
            record_id = row.cells[id_column].strip() if id_column < len(row.cells) else ""
            if record_id:
                table.index.setdefault(record_id, row)
                table.track(record_id)
        return table

    def track(self, record_id: str) -> None:
        """Count ``record_id`` as taken (ids are never handed out twice)."""
        self.ids.add(record_id)
        if _numeric(record_id):
            self.numeric_max = max(self.numeric_max or 0, int(record_id))
        else:
            self.all_numeric = False

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical fields of ``entity`` this file has a column for."""
        return frozenset(name for name, _, _ in self.carried[entity])

    def new_id(self) -> str:
        """The next number when every id is a number, else ``fs-`` and a random token."""
        if self.all_numeric and self.numeric_max is not None:
            return str(self.numeric_max + 1)
        while True:
            candidate = "fs-" + uuid.uuid4().hex[:12]
            if candidate not in self.ids:
                return candidate

    def next_line(self) -> int:
        """The line a row appended now would start on (for messages only)."""
        return self.file.rows[-1].line + 1 if self.file.rows else 2

    def append(self, record_id: str, row: CsvRow) -> None:
        """Add a new row at the end."""
        self.file.rows.append(row)
        self.index[record_id] = row
        self.track(record_id)
        self.dirty = True

    def remove(self, record_id: str, row: CsvRow) -> None:
        """Remove ``row`` (found by identity: equal rows may exist)."""
        for position, candidate in enumerate(self.file.rows):
            if candidate is row:
                del self.file.rows[position]
                break
        if self.index.get(record_id) is row:
            del self.index[record_id]
        self.dirty = True


def _spec(layout: FieldLayout, entity: EntityKind, name: str) -> FieldSpec:
    # A verbatim field is read as text: the mapping, not this file, gives it its canonical form.
    if layout.is_verbatim(entity, name):
        return FieldSpec(name)
    return SCHEMAS[entity][name]


def _delimiter_hint(file: CsvFile) -> str:
    if len(file.header) != 1:
        return ""
    return (
        f"; the header reads as the single column {file.header[0]!r}: the delimiter is "
        f"probably wrong (the files connector's `delimiter` is {file.delimiter!r})"
    )


def _mapped_from(layout: FieldLayout, entity: EntityKind, name: str) -> str:
    names = [crm for crm, canonical in layout.aliases.get(entity, {}).items() if canonical == name]
    return f" (mapped from {', '.join(repr(crm) for crm in names)})" if names else ""


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """What a row turned out to be: a record, or the errors that reject it."""

    entity: EntityKind | None
    record_id: str | None
    record: Record | None = None
    errors: tuple[RecordError, ...] = ()


def row_entity(table: Table, row: CsvRow) -> tuple[EntityKind | None, str | None]:
    """The entity of ``row`` and, when its ``kind`` is unreadable, the reason."""
    if table.source is not Source.COMPANIES:
        return table.source.entities[0], None
    position = table.columns.get("kind")
    if position is None or position >= len(row.cells):
        return EntityKind.CLIENT, None
    entity = table.layout.kind_of(row.cells[position])
    if entity is None:
        expected = " or ".join(table.layout.kind_names())
        return None, f"unknown kind {row.cells[position]!r} (expected {expected})"
    return entity, None


def parse_row(
    table: Table, row: CsvRow, seen: Container[str], want: EntityKind | None = None
) -> ParsedRow:
    """Turn ``row`` into a record. ``seen`` holds the ids of earlier rows (a repeated id
    is rejected, the first row keeps it); the caller adds this row's id to it (a listing's
    `ListingAudit` counts every row). Rows of an entity other than ``want`` (when given)
    are not parsed: only their id is returned."""
    cells = row.cells
    id_column = table.columns["id"]
    record_id = cells[id_column].strip() if id_column < len(cells) else ""
    entity, kind_error = row_entity(table, row)
    if want is not None and entity is not None and entity is not want and record_id:
        if record_id in seen:
            # Still reported, so the id counts as present for the entity being read.
            return ParsedRow(entity, record_id, errors=(_duplicate(table, row, entity, record_id),))
        return ParsedRow(entity, record_id)
    label = str(entity or EntityKind.CLIENT)
    where = f"file {table.file.path.name} line {row.line}"
    if not record_id:
        error = RecordError(label, Side.CRM, where, f"{where}: the id is empty", "id")
        return ParsedRow(entity, None, errors=(error,))
    if record_id in seen:
        return ParsedRow(entity, record_id, errors=(_duplicate(table, row, entity, record_id),))
    errors: list[RecordError] = []
    if kind_error is not None:
        errors.append(
            RecordError(
                label,
                Side.CRM,
                record_id,
                f"{where}: {kind_error}",
                "kind",
                cells[table.columns["kind"]],
            )
        )
        return ParsedRow(None, record_id, errors=tuple(errors))
    assert entity is not None
    if len(cells) != len(table.file.header):
        # Fewer cells than columns is a row cut short (a lost delimiter, a bad export):
        # reading the missing cells as empty would sync a company with only a name.
        errors.append(
            RecordError(
                label,
                Side.CRM,
                record_id,
                f"{where}: {len(cells)} cells but the header has {len(table.file.header)}",
            )
        )
    values: dict[str, Scalar] = {}
    for name, position, spec in table.carried[entity]:
        raw = cells[position] if position < len(cells) else ""
        try:
            values[name] = normalize_value(spec, raw)
        except NormalizationError as error:
            errors.append(
                RecordError(label, Side.CRM, record_id, f"{where}: {error.reason}", name, raw)
            )
    if errors:
        return ParsedRow(entity, record_id, errors=tuple(errors))
    return ParsedRow(entity, record_id, Record(entity, record_id, MappingProxyType(values)))


def _duplicate(table: Table, row: CsvRow, entity: EntityKind | None, record_id: str) -> RecordError:
    where = f"file {table.file.path.name} line {row.line}"
    reason = f"{where}: duplicate id {record_id!r}; the first row with it is kept"
    return RecordError(
        str(entity or EntityKind.CLIENT), Side.CRM, record_id, reason, "id", record_id
    )
