"""Rows as records: what a selected row is (entity, id) and its canonical values.

Every column is selected raw (`selection`), and `parse_row` converts it cell by cell, so
a bad value rejects its row alone, naming the table, the id, the column and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from connectors.sql._schema import TableMap
from connectors.sql._values import ValueRefused, as_text
from sync.errors import RecordError
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind, Record, Scalar, Side
from sync.normalize import NormalizationError, normalize_value

__all__ = ["ParsedRow", "parse_row", "selection"]

_SHOWN_VALUE = 200


def selection(tm: TableMap) -> list[sa.ColumnElement[Any]]:
    """Every column a read needs, raw (no result processing), under its own name."""
    names = [tm.id.name]
    for column in (tm.kind, tm.updated_at, tm.deleted_at):
        if column is not None:
            names.append(column.name)
    for fields in tm.fields.values():
        names.extend(field.column.name for field in fields)
    unique = list(dict.fromkeys(names))
    return [sa.type_coerce(tm.column(name), sa.types.NullType()).label(name) for name in unique]


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """What a row turned out to be: a record of ``entity``, or the errors rejecting it."""

    entity: EntityKind | None
    record_id: str | None
    raw_id: object
    record: Record | None = None
    errors: tuple[RecordError, ...] = ()
    moment: datetime | None = None
    """Its ``updated_at``, as an aware moment (None without one, or unreadable)."""
    deleted: bool = False
    """Its ``deleted_at`` is set (soft-deleted)."""


def _shown(raw: object) -> str | None:
    if raw is None:
        return None
    try:
        text = as_text(raw)
    except ValueRefused:
        return "<binary>"
    return text[:_SHOWN_VALUE]


def parse_row(
    tm: TableMap, layout: FieldLayout, row: sa.RowMapping, want: EntityKind | None
) -> ParsedRow:
    """Turn ``row`` into a record of its entity. Rows of another entity than ``want``
    (when given) are only identified, not parsed."""
    raw_id = row[tm.id.name]
    record_id = tm.id.record_id(raw_id)
    moment = None
    if tm.updated_at is not None:
        try:
            moment = tm.updated_at.moment(row[tm.updated_at.name])
        except ValueRefused:
            moment = None
    deleted = tm.deleted_at is not None and row[tm.deleted_at.name] is not None
    entity: EntityKind | None = tm.entities[0]
    kind_error = None
    if tm.kind is not None:
        cell = row[tm.kind.name]
        text = "" if cell is None else _shown(cell) or ""
        entity = layout.kind_of(text)
        if entity is None:
            expected = " or ".join(layout.kind_names())
            kind_error = f"unknown kind {text!r} (expected {expected})"
    label = str(entity or tm.entities[0])
    where = f"table {tm.name} id {record_id}"
    if record_id is None:
        error = RecordError(
            label, Side.CRM, f"table {tm.name}", f"table {tm.name}: a row without an id", "id"
        )
        return ParsedRow(entity, None, raw_id, errors=(error,), moment=moment, deleted=deleted)
    if kind_error is not None:
        assert tm.kind is not None
        error = RecordError(
            label,
            Side.CRM,
            record_id,
            f"{where}, column {tm.kind.name}: {kind_error}",
            "kind",
            _shown(row[tm.kind.name]),
        )
        return ParsedRow(None, record_id, raw_id, errors=(error,), moment=moment, deleted=deleted)
    assert entity is not None
    if want is not None and entity is not want:
        return ParsedRow(entity, record_id, raw_id, moment=moment, deleted=deleted)
    values: dict[str, Scalar] = {}
    errors: list[RecordError] = []
    for field in tm.fields[entity]:
        raw = row[field.column.name]
        try:
            values[field.name] = normalize_value(
                field.spec, field.column.read(raw, verbatim=field.verbatim)
            )
        except (ValueRefused, NormalizationError) as error:
            reason = error.reason if isinstance(error, NormalizationError) else str(error)
            errors.append(
                RecordError(
                    label,
                    Side.CRM,
                    record_id,
                    f"{where}, column {field.column.name}: {reason}",
                    field.name,
                    _shown(raw),
                )
            )
    if errors:
        return ParsedRow(
            entity, record_id, raw_id, errors=tuple(errors), moment=moment, deleted=deleted
        )
    record = Record(entity, record_id, MappingProxyType(values))
    return ParsedRow(entity, record_id, raw_id, record, moment=moment, deleted=deleted)
