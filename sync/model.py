"""Canonical records both sides translate to.

A record is an entity kind, the record's id on its own side, and its field values in
canonical, normalized form. Which fields exist, their type and how they normalize is
declared once here (`SCHEMAS`); `Record` refuses field names its entity does not declare,
so the field mapping flowing through the engine is checked, not free-form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "SCHEMAS",
    "SCHEMA_SENSITIVE",
    "EntityKind",
    "FieldSpec",
    "FieldType",
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
    """One canonical field. ``sensitive`` fields are masked in logs and reports."""

    name: str
    type: FieldType = FieldType.TEXT
    sensitive: bool = False


def _schema(*specs: FieldSpec) -> Mapping[str, FieldSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


_COMPANY_FIELDS = (
    FieldSpec("name"),
    FieldSpec("country", FieldType.COUNTRY),
    FieldSpec("currency", FieldType.CURRENCY),
    FieldSpec("status"),
    FieldSpec("tin_type"),
    FieldSpec("tin", FieldType.TAX_ID, sensitive=True),
    FieldSpec("tin_country", FieldType.COUNTRY),
    FieldSpec("vat_number", FieldType.TAX_ID, sensitive=True),
    FieldSpec("due_days", FieldType.INTEGER),
    FieldSpec("documents_language"),
    FieldSpec("invoice_comment"),
    FieldSpec("default_tax_rate", FieldType.DECIMAL),
    FieldSpec("external_payment_customer_id"),
    FieldSpec("phone"),
    FieldSpec("city"),
    FieldSpec("post_code"),
    FieldSpec("street_line"),
    FieldSpec("building_number"),
    FieldSpec("locale_number"),
    FieldSpec("address_country", FieldType.COUNTRY),
    FieldSpec("website"),
    FieldSpec("logo_url"),
)

SCHEMAS: Mapping[EntityKind, Mapping[str, FieldSpec]] = MappingProxyType(
    {
        EntityKind.CLIENT: _schema(*_COMPANY_FIELDS),
        EntityKind.COUNTERPARTY: _schema(
            *_COMPANY_FIELDS,
            FieldSpec("counterparty_type"),
            FieldSpec("require_attachment", FieldType.BOOLEAN),
            FieldSpec("cyclic", FieldType.BOOLEAN),
            FieldSpec("budget_neutral", FieldType.BOOLEAN),
        ),
        EntityKind.CONTACT: _schema(
            FieldSpec("company_id", FieldType.REFERENCE),
            FieldSpec("type"),
            FieldSpec("name"),
            FieldSpec("email", FieldType.EMAIL),
            FieldSpec("phone"),
            FieldSpec("title"),
            FieldSpec("position", FieldType.INTEGER),
        ),
        EntityKind.NOTE: _schema(
            FieldSpec("company_id", FieldType.REFERENCE),
            FieldSpec("body"),
            FieldSpec("author"),
            FieldSpec("created_at", FieldType.DATETIME),
        ),
    }
)


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
        if not isinstance(self.fields, MappingProxyType):
            object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

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
