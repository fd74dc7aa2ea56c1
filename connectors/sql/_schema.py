"""The configured tables checked against the database: which column is what.

`reflect` reads a table's columns with SQLAlchemy reflection; `TableMap.build` then names
every column's role (id, kind, ``updated_at``, ``deleted_at``, a canonical field under its
own or its mapped name) or fails with a `ConfigError` naming the key at fault and the name
that is missing. Columns that are none of these are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from enum import StrEnum

import sqlalchemy as sa

from connectors.sql._settings import TableSettings
from connectors.sql._values import Category, Column
from sync.errors import ConfigError
from sync.mapping.layout import FieldLayout, fold
from sync.model import SCHEMAS, EntityKind, FieldSpec

__all__ = ["FieldColumn", "Group", "IdSource", "TableMap", "reflect"]

_SHOWN = 12


class Group(StrEnum):
    """The tables of ``[crm.tables]``."""

    COMPANY = "company"
    CONTACT = "contact"
    NOTE = "note"

    @property
    def entities(self) -> tuple[EntityKind, ...]:
        if self is Group.COMPANY:
            return (EntityKind.CLIENT, EntityKind.COUNTERPARTY)
        return (EntityKind(self.value),)

    @classmethod
    def of(cls, entity: EntityKind) -> Group:
        if entity in (EntityKind.CLIENT, EntityKind.COUNTERPARTY):
            return cls.COMPANY
        return cls(entity.value)


_REQUIRED: Mapping[Group, tuple[str, ...]] = {
    Group.COMPANY: ("name",),
    Group.CONTACT: ("email",),
    Group.NOTE: (),
}


class IdSource(StrEnum):
    """Where the id of a new row comes from."""

    DATABASE = "database"
    """An identity, serial, auto-increment or default of the column."""
    NEXT_NUMBER = "next_number"
    """One more than the largest id (an integer column without a default)."""
    RANDOM = "random"
    """A random UUID, or its hex text cut to the column's length."""


@dataclass(frozen=True, slots=True)
class FieldColumn:
    """A column holding a canonical field."""

    name: str
    column: Column
    spec: FieldSpec
    verbatim: bool


def reflect(conn: sa.Connection, key: str, name: str, schema: str | None) -> sa.Table:
    """The table ``name`` as the database describes it; `ConfigError` on ``key.table``
    naming it (and the tables there are) when there is none."""
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=conn, schema=schema)
    except sa.exc.NoSuchTableError:
        found = sorted(sa.inspect(conn).get_table_names(schema=schema))
        shown = ", ".join(found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
        where = f"schema {schema!r}" if schema else "the database"
        raise ConfigError(
            f"{key}.table",
            f"no table {name!r} in {where} (tables there: {shown or 'none'})",
        ) from None


def _find(table: sa.Table, name: str) -> sa.Column[object] | None:
    """The column ``name``: exactly as written, else the one that matches ignoring case."""
    if name in table.columns:
        return table.columns[name]
    matches = [column for column in table.columns if fold(column.name) == fold(name)]
    return matches[0] if len(matches) == 1 else None


def _unique(table: sa.Table, column: sa.Column[object]) -> bool:
    if list(table.primary_key.columns) == [column]:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and list(constraint.columns) == [column]:
            return True
    return any(index.unique and list(index.columns) == [column] for index in table.indexes)


@dataclass(frozen=True, slots=True)
class TableMap:
    """One configured table and the role of each of its columns."""

    group: Group
    key: str
    """``crm.tables.<group>``, for messages."""
    table: sa.Table
    id: Column
    id_source: IdSource
    unique_ids: bool
    kind: Column | None
    updated_at: Column | None
    deleted_at: Column | None
    fields: Mapping[EntityKind, tuple[FieldColumn, ...]]

    @property
    def name(self) -> str:
        return self.table.name

    entities: tuple[EntityKind, ...] = ()
    """The entity kinds held here (companies without a kind column are clients)."""

    def __post_init__(self) -> None:
        lone = self.group is Group.COMPANY and self.kind is None
        held = (EntityKind.CLIENT,) if lone else self.group.entities
        # Computed once: every row read asks for it.
        object.__setattr__(self, "entities", held)

    def column(self, name: str) -> sa.Column[object]:
        return self.table.columns[name]

    @classmethod
    def build(
        cls,
        group: Group,
        settings: TableSettings,
        table: sa.Table,
        layout: FieldLayout,
        zone: tzinfo,
        *,
        sqlite_rowid: bool = False,
    ) -> TableMap:
        """Check ``table`` against ``settings`` and ``layout`` (see the module)."""
        key = f"crm.tables.{group}"
        entity = group.entities[0]

        def named(setting: str, name: str | None) -> sa.Column[object] | None:
            if name is None:
                return None
            found = _find(table, name)
            if found is None:
                raise ConfigError(
                    f"{key}.{setting}", f"table {table.name!r} has no column {name!r}"
                )
            return found

        id_column = named("id", settings.id)
        assert id_column is not None
        updated = named("updated_at", settings.updated_at)
        deleted = named("deleted_at", settings.deleted_at)
        for setting, column in (("updated_at", updated), ("deleted_at", deleted)):
            if column is not None and not Column.of(column, zone).timed:
                raise ConfigError(
                    f"{key}.{setting}",
                    f"column {column.name!r} of {table.name!r} is {column.type}, "
                    "not a date or date-time",
                )
        reserved = {c.name for c in (id_column, updated, deleted) if c is not None}
        for crm_name, target in layout.aliases.get(entity, {}).items():
            if target != "id" and _find(table, crm_name) is None:
                raise ConfigError(
                    f"mapping.{group}.fields.{crm_name}",
                    f"table {table.name!r} has no column {crm_name!r}",
                )
        explicit = layout.aliases.get(entity, {})
        mapped = layout.mapped_names(entity)
        roles: dict[str, sa.Column[object]] = {}
        for column in table.columns:
            if column.name in reserved:
                continue
            name = layout.canonical_name(entity, column.name)
            if name in mapped and fold(column.name) not in explicit:
                continue  # shadowed by the column mapped to that name: left alone
            if name in roles:
                raise ConfigError(
                    f"{key}.table",
                    f"columns {roles[name].name!r} and {column.name!r} of {table.name!r} "
                    f"both stand for {name!r}",
                )
            roles[name] = column
        kind = roles.pop("kind", None) if group is Group.COMPANY else None
        for required in _REQUIRED[group]:
            if required not in roles:
                raise ConfigError(
                    f"{key}.table",
                    f"table {table.name!r} has no column for the required field {required!r}",
                )
        fields = {
            kind_of: tuple(
                FieldColumn(
                    name,
                    Column.of(column, zone),
                    FieldSpec(name)
                    if layout.is_verbatim(kind_of, name)
                    else SCHEMAS[kind_of][name],
                    layout.is_verbatim(kind_of, name),
                )
                for name, column in roles.items()
                if name in SCHEMAS[kind_of]
            )
            for kind_of in group.entities
        }
        id_info = Column.of(id_column, zone)
        source = cls._id_source(table, id_column, id_info, key, sqlite_rowid=sqlite_rowid)
        return cls(
            group,
            key,
            table,
            id_info,
            source,
            _unique(table, id_column),
            None if kind is None else Column.of(kind, zone),
            None if updated is None else Column.of(updated, zone),
            None if deleted is None else Column.of(deleted, zone),
            fields,
        )

    @staticmethod
    def _id_source(
        table: sa.Table,
        column: sa.Column[object],
        info: Column,
        key: str,
        *,
        sqlite_rowid: bool,
    ) -> IdSource:
        if (
            column.identity is not None
            or column.server_default is not None
            or column.autoincrement is True
        ):
            return IdSource.DATABASE
        # SQLite numbers a lone INTEGER PRIMARY KEY itself (it is the rowid).
        lone_key = list(table.primary_key.columns) == [column]
        if sqlite_rowid and lone_key and str(column.type).upper() == "INTEGER":
            return IdSource.DATABASE
        if info.category is Category.INTEGER:
            return IdSource.NEXT_NUMBER
        if info.category in (Category.TEXT, Category.UUID):
            if info.length is not None and info.length < 8:
                raise ConfigError(
                    f"{key}.id",
                    f"column {column.name!r} holds {info.length} characters: too short "
                    "for a generated id, and the database gives it none",
                )
            return IdSource.RANDOM
        raise ConfigError(
            f"{key}.id",
            f"column {column.name!r} is {column.type} without a default: new rows "
            "need an id the database gives (identity, serial, auto-increment) or text",
        )
