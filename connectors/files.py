"""The files connector: a folder of CSV files stands for the CRM (the embedded default).

Layout (docs/reference.md): ``companies.csv`` (clients and suppliers, told apart by the
``kind`` column), ``contacts.csv`` and ``notes.csv``, each with a header row of canonical
column names. Only the canonical columns present in a header are carried; any other
column is kept untouched on write-back, as is the order of the rows. A CRM export with
its own headers and kind values is read through a `FieldLayout` (`use_layout`, set from
the ``[mapping.*]`` tables by `connectors.mapped`).

Reading always lists a whole file. A row with a bad value is rejected with its file and
line (its id still counts as present, so it is never taken for a deleted record); a row
without an id, or repeating one, is rejected too and makes the listing incomplete (no
deletes are inferred from the file that run); a file that cannot be parsed as a whole
raises `InputError`. Writes are buffered in memory and `FilesConnector.commit` replaces
each changed file atomically.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path

from pydantic import field_validator

from connectors._csv import (
    CsvFile,
    CsvRow,
    RowStream,
    Signature,
    encodes,
    file_signature,
    line_terminator,
    no_rows,
    read_csv,
    stream_csv,
    write_csv,
)
from connectors._files_table import (
    Source,
    Table,
    parse_row,
    row_entity,
    serialize,
)
from connectors.base import Capability, ChangeBatch, Connector, ConnectorSettings, Cursor
from connectors.listing import ListingAudit
from sync.errors import (
    ConnectorError,
    InputError,
    NotFound,
    RecordError,
    ValidationFailed,
    Violation,
)
from sync.mapping.layout import FieldLayout
from sync.model import SCHEMAS, EntityKind, FieldSpec, Record, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = ["FilesConnector", "FilesSettings", "Source"]

_BATCH = 5000


def _take(rows: RowStream, count: int) -> list[CsvRow]:
    return list(itertools.islice(rows, count))


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
        """Whole files, loaded for writing (reads stream from disk unless one is here)."""
        self._headers: dict[Source, Table] = {}
        """Header-only tables: columns for `fields`, parsing of streamed rows."""
        self._read_signatures: dict[Source, Signature | None] = {}
        """Each file as the last read saw it; a write must not build on a later version."""
        self._layout = FieldLayout()

    def use_layout(self, layout: FieldLayout) -> None:
        """Read and write the files under the CRM's own column names and kind values."""
        self._layout = layout
        self._tables.clear()
        self._headers.clear()

    # -- protocol ---------------------------------------------------------------------

    async def open(self) -> None:
        """Check the folder and read the headers; raise `InputError` if unusable."""
        await asyncio.to_thread(self._header, Source.COMPANIES)

    def describe(self) -> str:
        """``files:<folder>``."""
        return f"files:{self.settings.path}"

    async def identity(self) -> str:
        """``files:<folder>`` with the folder absolute and resolved, however it was written."""
        return f"files:{self.settings.path.resolve()}"

    def entities(self) -> frozenset[EntityKind]:
        """Clients, contacts and notes; counterparties when companies have a ``kind``."""
        kinds = {EntityKind.CLIENT, EntityKind.CONTACT, EntityKind.NOTE}
        if "kind" in self._header(Source.COMPANIES).columns:
            kinds.add(EntityKind.COUNTERPARTY)
        return frozenset(kinds)

    def fields(self, entity: EntityKind) -> frozenset[str]:
        """The canonical columns of ``entity``'s file header."""
        return self._header(_SOURCES[entity]).fields(entity)

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        """A complete listing of ``entity`` (``since`` is ignored: files have no feed).

        Rows stream from disk in batches, so memory does not grow with the file; a file
        with writes not yet committed is read from memory, writes included.
        """
        # Opened here, not in a worker thread: a read cancelled while a thread opens the
        # file would leave it open. Only the header is read now; rows come in batches.
        table, rows = self._rows(_SOURCES[entity])
        try:
            async for batch in self._batches(entity, table, rows):
                yield batch
        finally:
            rows.close()

    async def _batches(
        self, entity: EntityKind, table: Table, rows: RowStream
    ) -> AsyncIterator[ChangeBatch]:
        # Every row counts, whatever its kind: a row that lost its id may be of any kind.
        # The audit's ids are the ids of earlier rows a repeated id is rejected by.
        audit = ListingAudit(table.file.path.name, noun="row")
        # Each batch waits for the next chunk, so the last one can carry the verdict.
        pending: ChangeBatch | None = None
        while chunk := await asyncio.to_thread(_take, rows, _BATCH):
            records: list[Record] = []
            rejected: list[RecordError] = []
            present: list[str] = []
            for row in chunk:
                parsed = parse_row(table, row, audit, entity)
                audit.member(parsed.record_id, f"line {row.line}")
                if parsed.record is not None:
                    if parsed.entity is entity:
                        records.append(parsed.record)
                        present.append(parsed.record.id)
                    continue
                if not parsed.errors:
                    continue
                if parsed.record_id is not None:
                    present.append(parsed.record_id)
                # A row whose kind is unreadable is reported once, with the clients.
                if parsed.entity is entity or (
                    parsed.entity is None and entity is EntityKind.CLIENT
                ):
                    rejected.extend(parsed.errors)
            if pending is not None:
                yield pending
            pending = ChangeBatch(entity, records=records, rejected=rejected, present_ids=present)
        if pending is not None:
            yield replace(pending, incomplete=audit.verdict())

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

    def _current(self, source: Source) -> Table | None:
        """The loaded file of ``source`` if it has pending writes or is as on disk."""
        cached = self._tables.get(source)
        if cached is not None and (
            cached.dirty or cached.file.signature == file_signature(self._path(source))
        ):
            return cached
        return None

    def _table(self, source: Source) -> Table:
        """The whole file of ``source``, for writing; re-read when it changed on disk and
        has no pending writes (a user may edit it between runs)."""
        cached = self._current(source)
        if cached is not None:
            return cached
        path = self._path(source)
        if self._exists(source):
            file = read_csv(
                path, delimiter=self.settings.delimiter, encoding=self.settings.encoding
            )
        else:
            file = self._missing(source)
        if source in self._read_signatures:
            # Written back only if the file is still what the run read and planned on.
            file.signature = self._read_signatures[source]
        table = Table.build(source, file, self._layout)
        self._tables[source] = table
        return table

    def _header(self, source: Source) -> Table:
        """``source``'s columns, from its header line alone (cached while unchanged)."""
        loaded = self._current(source)
        if loaded is not None:
            return loaded
        cached = self._headers.get(source)
        if cached is not None and cached.file.signature == file_signature(self._path(source)):
            return cached
        table, rows = self._stream(source)
        rows.close()
        return table

    def _rows(self, source: Source) -> tuple[Table, RowStream]:
        """The table to parse ``source``'s rows with, and its rows, as a read sees them."""
        loaded = self._current(source)
        if loaded is not None:
            self._read_signatures[source] = loaded.file.signature
            return loaded, RowStream(iter(list(loaded.file.rows)), None)
        table, rows = self._stream(source)
        self._read_signatures[source] = table.file.signature
        return table, rows

    def _stream(self, source: Source) -> tuple[Table, RowStream]:
        if self._exists(source):
            header, rows = stream_csv(
                self._path(source),
                delimiter=self.settings.delimiter,
                encoding=self.settings.encoding,
            )
        else:
            header, rows = self._missing(source), no_rows()
        try:
            table = Table.build(source, header, self._layout)
        except BaseException:
            rows.close()
            raise
        self._headers[source] = table
        return table, rows

    def _exists(self, source: Source) -> bool:
        """Whether ``source``'s file is there; `InputError` if the folder is not."""
        if not self.settings.path.is_dir():
            raise InputError(str(self.settings.path), "not a folder (files connector 'path')")
        return self._path(source).exists()

    def _missing(self, source: Source) -> CsvFile:
        """The empty file a missing optional ``source`` stands for (companies are required)."""
        path = self._path(source)
        if source is Source.COMPANIES:
            raise InputError(str(path), "the file is missing; it is required")
        # A new file follows the line ending and delimiter of the (required) companies file.
        return CsvFile(
            path,
            list(source.default_columns),
            self._header(Source.COMPANIES).file.delimiter,
            self.settings.encoding,
            bom=codecs.lookup(self.settings.encoding).name == "utf-8-sig",
            terminator=line_terminator(self._path(Source.COMPANIES)),
        )

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
        parsed = parse_row(table, row, ())
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
            # Written: later reads stream from disk again, and memory stays flat.
            del self._tables[source]
            self._read_signatures[source] = table.file.signature
