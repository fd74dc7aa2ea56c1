"""Canonical records both sides translate to.

A record is an entity kind, the record's id on its own side, and its field values in
canonical, normalized form. Which fields exist, their type and how they normalize is
declared once here (`SCHEMAS`); `Record` refuses field names its entity does not declare,
so the field mapping flowing through the engine is checked, not free-form.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar, final, overload

__all__ = [
    "SCHEMAS",
    "SCHEMA_SENSITIVE",
    "EntityKind",
    "FieldSpec",
    "FieldType",
    "FieldValues",
    "Record",
    "Scalar",
    "Side",
]

Scalar = str | int | bool | None
"""A canonical field value. Decimals travel as strings (Flowtly emits Doctrine decimals so)."""


class Side(StrEnum):
    """The two sides of a sync."""

    CRM = "crm"
    FLOWTLY = "flowtly"

    @property
    def other(self) -> Side:
        return Side.FLOWTLY if self is Side.CRM else Side.CRM


class EntityKind(StrEnum):
    """What a record is. Companies are a client or a counterparty, decided by their kind."""

    CLIENT = "client"
    COUNTERPARTY = "counterparty"
    CONTACT = "contact"
    NOTE = "note"

    @property
    def parent(self) -> EntityKind | None:
        """The entity a record of this kind belongs to, through its ``company_id``."""
        return EntityKind.CLIENT if self in (EntityKind.CONTACT, EntityKind.NOTE) else None


class FieldType(StrEnum):
    """How a field normalizes and compares."""

    TEXT = "text"
    EMAIL = "email"
    COUNTRY = "country"
    CURRENCY = "currency"
    TAX_ID = "tax_id"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    REFERENCE = "reference"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One canonical field. ``sensitive`` fields are masked in logs and reports.

    ``repeats`` marks a field whose values many records share (a status, a city, a title,
    the parent's id under each contact): its normalized text is interned, so a run that
    holds many records keeps one copy of each value. Values mostly unique (names, e-mail
    addresses, phones) are not: interning them would only add to the table of interned text.
    """

    name: str
    type: FieldType = FieldType.TEXT
    sensitive: bool = False
    repeats: bool = False


def _schema(*specs: FieldSpec) -> Mapping[str, FieldSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


_COMPANY_FIELDS = (
    FieldSpec("name"),
    FieldSpec("country", FieldType.COUNTRY),
    FieldSpec("currency", FieldType.CURRENCY),
    FieldSpec("status", repeats=True),
    FieldSpec("tin_type", repeats=True),
    FieldSpec("tin", FieldType.TAX_ID, sensitive=True),
    FieldSpec("tin_country", FieldType.COUNTRY),
    FieldSpec("vat_number", FieldType.TAX_ID, sensitive=True),
    FieldSpec("due_days", FieldType.INTEGER),
    FieldSpec("documents_language", repeats=True),
    FieldSpec("invoice_comment", repeats=True),
    FieldSpec("default_tax_rate", FieldType.DECIMAL),
    FieldSpec("external_payment_customer_id"),
    FieldSpec("phone"),
    FieldSpec("city", repeats=True),
    FieldSpec("post_code", repeats=True),
    FieldSpec("street_line", repeats=True),
    FieldSpec("building_number", repeats=True),
    FieldSpec("locale_number", repeats=True),
    FieldSpec("address_country", FieldType.COUNTRY),
    FieldSpec("website"),
    FieldSpec("logo_url"),
)

SCHEMAS: Mapping[EntityKind, Mapping[str, FieldSpec]] = MappingProxyType(
    {
        EntityKind.CLIENT: _schema(*_COMPANY_FIELDS),
        EntityKind.COUNTERPARTY: _schema(
            *_COMPANY_FIELDS,
            FieldSpec("counterparty_type", repeats=True),
            FieldSpec("require_attachment", FieldType.BOOLEAN),
            FieldSpec("cyclic", FieldType.BOOLEAN),
            FieldSpec("budget_neutral", FieldType.BOOLEAN),
        ),
        EntityKind.CONTACT: _schema(
            FieldSpec("company_id", FieldType.REFERENCE, repeats=True),
            FieldSpec("type", repeats=True),
            FieldSpec("name"),
            FieldSpec("email", FieldType.EMAIL),
            FieldSpec("phone"),
            FieldSpec("title", repeats=True),
            FieldSpec("position", FieldType.INTEGER),
        ),
        EntityKind.NOTE: _schema(
            FieldSpec("company_id", FieldType.REFERENCE, repeats=True),
            FieldSpec("body"),
            FieldSpec("author", repeats=True),
            FieldSpec("created_at", FieldType.DATETIME),
        ),
    }
)


_T = TypeVar("_T")

_LAYOUTS: dict[tuple[str, ...], Mapping[str, int]] = {}
"""The position of each name, shared by every `FieldValues` with the same names in the
same order (a connector's records all have one or a few layouts)."""

_LAYOUT_LIMIT = 4096
"""Layouts kept for sharing; past this (names in ever new orders) each gets its own."""


def _layout(names: tuple[str, ...]) -> Mapping[str, int]:
    layout = _LAYOUTS.get(names)
    if layout is None:
        layout = {name: position for position, name in enumerate(names)}
        if len(_LAYOUTS) < _LAYOUT_LIMIT:
            _LAYOUTS[names] = layout
    return layout


@final
class FieldValues(Mapping[str, Scalar]):
    """A record's field values: an immutable mapping, compact because a sync holds many.

    A dict of a record's seven fields takes about 270 bytes; this takes a tuple of the
    values and a reference to an index of the names shared by all records of the same
    layout, about 140. A first sync holds every new record of an entity at once.
    """

    __slots__ = ("_index", "_values")

    _index: Mapping[str, int]
    _values: tuple[Scalar, ...]

    def __init__(self, values: Mapping[str, Scalar]) -> None:
        if isinstance(values, FieldValues):
            self._index, self._values = values._index, values._values
            return
        self._index = _layout(tuple(values))
        self._values = tuple(values.values())

    def __getitem__(self, name: str) -> Scalar:
        return self._values[self._index[name]]

    @overload
    def get(self, name: str, /) -> Scalar: ...
    @overload
    def get(self, name: str, default: Scalar, /) -> Scalar: ...
    @overload
    def get(self, name: str, default: _T, /) -> Scalar | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        # Mapping.get is written in Python over __getitem__ and KeyError: this is the hot
        # path of fingerprints and planning, one lookup instead.
        position = self._index.get(name)
        return default if position is None else self._values[position]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> ItemsView[str, Scalar]:
        return dict(zip(self._index, self._values, strict=True)).items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FieldValues) and other._index is self._index:
            return self._values == other._values
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # mutable-looking like dict: unhashable

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    @property
    def layout(self) -> Mapping[str, int]:
        """Each name's position: one object shared by the values of the same names in the
        same order (those of one connector's records, mostly)."""
        return self._index

    @property
    def ordered(self) -> tuple[Scalar, ...]:
        """The values, in the order of `layout`."""
        return self._values

    @classmethod
    def with_layout(cls, layout: Mapping[str, int], values: tuple[Scalar, ...]) -> FieldValues:
        """Values laid out as ``layout`` (another's `layout`), neither copied nor checked."""
        made = cls.__new__(cls)
        made._index, made._values = layout, values
        return made

    def __reduce__(self) -> tuple[Callable[..., FieldValues], tuple[object, ...]]:
        # Pickled as names and values, loaded back onto the shared index of its layout
        # (a run's scratch file holds a large plan's steps).
        return _field_values, (tuple(self._index), self._values)


def _field_values(names: tuple[str, ...], values: tuple[Scalar, ...]) -> FieldValues:
    return FieldValues.with_layout(_layout(names), values)


@dataclass(frozen=True, slots=True)
class Record:
    """One record as one side holds it, in canonical form.

    ``id`` is the record's id on its own side. ``fields`` holds only the fields that side
    carries; a field absent from ``fields`` is unknown to that side, a field present with
    ``None`` is known to be empty.
    """

    entity: EntityKind
    id: str
    fields: Mapping[str, Scalar]

    def __post_init__(self) -> None:
        schema = SCHEMAS[self.entity]
        unknown = [name for name in self.fields if name not in schema]
        if unknown:
            raise ValueError(f"{self.entity} has no field(s) {', '.join(sorted(unknown))}")
        if type(self.fields) is not FieldValues:
            object.__setattr__(self, "fields", FieldValues(self.fields))

    def get(self, name: str) -> Scalar:
        """The value of ``name``, ``None`` when empty or not carried."""
        return self.fields.get(name)

    def __iter__(self) -> Iterator[tuple[str, Scalar]]:
        return iter(self.fields.items())

    def replace(self, **changes: Scalar) -> Record:
        """A copy with some fields changed."""
        return Record(self.entity, self.id, {**self.fields, **changes})


SCHEMA_SENSITIVE: frozenset[str] = frozenset(
    name for schema in SCHEMAS.values() for name, spec in schema.items() if spec.sensitive
)
"""Fields the model marks sensitive (tax ids): always masked in logs and reports."""
