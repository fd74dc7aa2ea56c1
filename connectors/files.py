"""The files connector: a folder of CSV files stands for the CRM (the embedded default).

Layout (DESIGN.md section 5): ``companies.csv`` (clients and suppliers, told apart by the
``kind`` column), ``contacts.csv`` and ``notes.csv``, each with a header row of canonical
column names. Only the canonical columns present in a header are carried; any other
column is kept untouched on write-back, as is the order of the rows. A CRM export with
its own headers and kind values is read through a `FieldLayout` (`use_layout`, set from
the ``[mapping.*]`` tables by `sync.mapping`).

Reading always lists a whole file. A row with a bad value is rejected with its file and
line (its id still counts as present, so it is never taken for a deleted record); a file
that cannot be parsed as a whole raises `InputError`. Writes are buffered in memory and
`FilesConnector.commit` replaces each changed file atomically.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from pydantic import field_validator

from connectors._csv import CsvFile, CsvRow, encodes, file_signature, read_csv, write_csv
from connectors._files_table import (
    Source,
    Table,
    parse_row,
    row_entity,
    serialize,
)
from connectors._mapping import FieldLayout
from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from sync.errors import (
    ConnectorError,
    InputError,
    NotFound,
    RecordError,
    ValidationFailed,
    Violation,
)
from sync.model import SCHEMAS, EntityKind, FieldSpec, Record, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = ["FilesConnector", "FilesSettings"]

_BATCH = 5000
_SOURCES: Mapping[EntityKind, Source] = {
    EntityKind.CLIENT: Source.COMPANIES,
    EntityKind.COUNTERPARTY: Source.COMPANIES,
    EntityKind.CONTACT: Source.CONTACTS,
    EntityKind.NOTE: Source.NOTES,
}


class FilesSettings(ConnectorSettings):
    """Where the CSV files are and how they are written."""

    path: Path
    """The folder holding the files."""
    delimiter: str = ","
    encoding: str = "utf-8"
    companies: str = "companies.csv"
    contacts: str = "contacts.csv"
    notes: str = "notes.csv"

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str) -> str:
        if len(value) != 1 or value in '\r\n"':
            raise ValueError("the delimiter must be one character, not a quote or newline")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @field_validator("companies", "contacts", "notes")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or Path(value).name != value:
            raise ValueError("a file name inside the folder, without directories")
        return value


class FilesConnector(Connector):
    """A CRM held in CSV files (see the module docstring for the layout)."""

    name = "files"
    capabilities = frozenset({Capability.READ, Capability.WRITE, Capability.DELETE})
    settings_model = FilesSettings

    def __init__(self, settings: FilesSettings) -> None:
        self.settings = settings
        self._tables: dict[Source, Table] = {}
        self._layout = FieldLayout()

    def use_layout(self, layout: FieldLayout) -> None:
        """Read and write the files under the CRM's own column names and kind values."""
        self._layout = layout
        self._tables.clear()

    # -- protocol ---------------------------------------------------------------------

    async def open(self) -> None:
        """Check the folder and read the headers; raise `InputError` if unusable."""
        await asyncio.to_thread(self._table, Source.COMPANIES)

    def describe(self) -> str:
        """``files:<folder>``."""
        return f"files:{self.settings.path}"

    def entities(self) -> frozenset[EntityKind]:
        """Clients, contacts and notes; counterparties when companies have a ``kind``."""
        kinds = {EntityKind.CLIENT, EntityKind.CONTACT, EntityKind.NOTE}
        if "kind" in self._table(Source.COMPANIES).columns:
            kinds.add(EntityKind.COUNTERPARTY)
        return frozenset(kinds)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical columns of ``entity``'s file header."""
        return self._table(_SOURCES[entity]).fields(entity)

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """A complete listing of ``entity`` (``since`` is ignored: files have no feed)."""
        table = await asyncio.to_thread(self._table, _SOURCES[entity])
        records: list[Record] = []
        rejected: list[RecordError] = []
        rejected_ids: list[str] = []
        seen: set[str] = set()
        for row in table.file.rows:
            parsed = parse_row(table, row, seen, entity)
            if parsed.record is not None:
                if parsed.entity is entity:
                    records.append(parsed.record)
                continue
            if not parsed.errors:
                continue
            if parsed.record_id is not None:
                rejected_ids.append(parsed.record_id)
            # A row whose kind is unreadable is reported once, with the clients.
            if parsed.entity is entity or (parsed.entity is None and entity is EntityKind.CLIENT):
                rejected.extend(parsed.errors)
        for start in range(0, max(len(records), 1), _BATCH):
            chunk = records[start : start + _BATCH]
            present = [record.id for record in chunk]
            first = start == 0
            yield ChangeBatch(
                entity,
                records=chunk,
                rejected=rejected if first else (),
                present_ids=[*present, *rejected_ids] if first else present,
            )

    async def create(self, entity: EntityKind, values: Mapping[str, Scalar]) -> Record:
        """Append a row with a fresh id; values of columns the file lacks are dropped."""
        table = self._writable(entity)
        cells = self._cells(entity, table, values)
        record_id = table.new_id()
        row = CsvRow([""] * len(table.file.header), table.next_line())
        row.cells[table.columns["id"]] = record_id
        if table.source is Source.COMPANIES and "kind" in table.columns:
            row.cells[table.columns["kind"]] = self._layout.kind_label(entity)
        for index, text in cells.items():
            row.cells[index] = text
        table.append(record_id, row)
        return self._reparse(entity, table, row)

    async def update(
        self, entity: EntityKind, record_id: str, changes: Mapping[str, Scalar]
    ) -> Record:
        """Change the given fields of a row; other cells are kept as they are."""
        table = self._writable(entity)
        row = self._row(entity, table, record_id)
        cells = self._cells(entity, table, changes)
        before = list(row.cells)
        for index, text in cells.items():
            while len(row.cells) <= index:
                row.cells.append("")
            row.cells[index] = text
        try:
            record = self._reparse(entity, table, row)
        except ValidationFailed:
            row.cells = before
            raise
        table.dirty = True
        return record

    async def delete(self, entity: EntityKind, record_id: str) -> None:
        """Remove a row."""
        table = self._writable(entity)
        table.remove(record_id, self._row(entity, table, record_id))

    async def write_columns(
        self, entity: EntityKind, record_id: str, values: Mapping[str, str]
    ) -> bool:
        """Set cells of columns that are not synced fields (e.g. a documents summary).

        A column missing from the header is appended to it. Synced columns are refused
        (`ValueError`): they change through `update`. True when a cell changed; like other
        writes, the change reaches the file on `commit`.
        """
        table = self._writable(entity)
        row = self._row(entity, table, record_id)
        synced = {name for name, _, _ in table.carried[entity]} | {"id", "kind"}
        changed = False
        for column, text in values.items():
            name = column.strip().lower()
            index = table.columns.get(name)
            if not name or name in synced:
                raise ValueError(f"{column!r} is a synced column of {table.file.path.name}")
            if not encodes(text, table.file.encoding):
                raise ValidationFailed(
                    f"{column}: cannot be written in {table.file.encoding}",
                    violations=(Violation(column, f"cannot be written in {table.file.encoding}"),),
                )
            if index is None:
                index = len(table.file.header)
                table.file.header.append(column.strip())
                table.columns[name] = index
                table.dirty = True
            while len(row.cells) <= index:
                row.cells.append("")
            if row.cells[index] != text:
                row.cells[index] = text
                changed = True
        if changed:
            table.dirty = True
        return changed

    async def commit(self) -> None:
        """Write every changed file back atomically."""
        await asyncio.to_thread(self._commit)

    # -- internals --------------------------------------------------------------------

    def _path(self, source: Source) -> Path:
        names = {
            Source.COMPANIES: self.settings.companies,
            Source.CONTACTS: self.settings.contacts,
            Source.NOTES: self.settings.notes,
        }
        return self.settings.path / names[source]

    def _table(self, source: Source) -> Table:
        """The file of ``source``, re-read when it changed on disk and has no pending
        writes (a user may edit it between runs)."""
        path = self._path(source)
        cached = self._tables.get(source)
        if cached is not None and (cached.dirty or cached.file.signature == file_signature(path)):
            return cached
        if not self.settings.path.is_dir():
            raise InputError(str(self.settings.path), "not a folder (files connector 'path')")
        if path.exists():
            file = read_csv(
                path, delimiter=self.settings.delimiter, encoding=self.settings.encoding
            )
        elif source is Source.COMPANIES:
            raise InputError(str(path), "the file is missing; it is required")
        else:
            # A new file follows the line ending of the (required) companies file.
            terminator = self._table(Source.COMPANIES).file.terminator
            file = CsvFile(
                path,
                list(source.default_columns),
                self.settings.delimiter,
                self.settings.encoding,
                bom=codecs.lookup(self.settings.encoding).name == "utf-8-sig",
                terminator=terminator,
            )
        table = Table.build(source, file, self._layout)
        self._tables[source] = table
        return table

    def _writable(self, entity: EntityKind) -> Table:
        table = self._table(_SOURCES[entity])
        if entity is EntityKind.COUNTERPARTY and "kind" not in table.columns:
            raise ConnectorError(
                f"{table.file.path} has no 'kind' column, so it holds no counterparties"
            )
        return table

    def _row(self, entity: EntityKind, table: Table, record_id: str) -> CsvRow:
        row = table.index.get(record_id)
        if row is None or row_entity(table, row)[0] is not entity:
            raise NotFound(f"{entity} {record_id} not found in {table.file.path}", status=404)
        return row

    def _cells(
        self, entity: EntityKind, table: Table, values: Mapping[str, Scalar]
    ) -> dict[int, str]:
        """Cell texts by column index for the values the file carries; refuses values
        that have no canonical form or cannot be written in the file's encoding."""
        schema = SCHEMAS[entity]
        cells: dict[int, str] = {}
        violations: list[Violation] = []
        for name, value in values.items():
            spec = schema.get(name)
            if spec is None:
                violations.append(Violation(name, f"not a field of {entity}"))
                continue
            if self._layout.is_verbatim(entity, name):
                spec = FieldSpec(name)
            index = table.columns.get(name)
            if index is None:
                continue
            try:
                text = serialize(normalize_value(spec, value))
            except NormalizationError as error:
                violations.append(Violation(name, error.reason))
                continue
            if not encodes(text, table.file.encoding):
                violations.append(Violation(name, f"cannot be written in {table.file.encoding}"))
                continue
            cells[index] = text
        if violations:
            raise ValidationFailed(
                f"{entity} refused by {self.describe()}: "
                + "; ".join(str(violation) for violation in violations),
                violations=tuple(violations),
            )
        return cells

    def _reparse(self, entity: EntityKind, table: Table, row: CsvRow) -> Record:
        parsed = parse_row(table, row, set())
        if parsed.record is None:
            violations = tuple(
                Violation(error.field or "", error.reason) for error in parsed.errors
            )
            raise ValidationFailed(
                f"{entity} refused by {self.describe()}: "
                + "; ".join(str(violation) for violation in violations),
                violations=violations,
            )
        return parsed.record

    def _commit(self) -> None:
        for source, table in list(self._tables.items()):
            if not table.dirty:
                continue
            if file_signature(table.file.path) != table.file.signature:
                # Someone edited the file since we read it: overwriting would lose that
                # edit, so the buffered writes are dropped and the next read starts over.
                del self._tables[source]
                raise ConnectorError(
                    f"{table.file.path} changed on disk since it was read; "
                    "not overwriting it (the next run will pick the change up)"
                )
            try:
                write_csv(table.file)
            except OSError as error:
                raise ConnectorError(
                    f"cannot write {table.file.path}: {error.strerror or error}"
                ) from error
            table.dirty = False
