"""Canonical records <-> Flowtly JSON, per entity: pure functions over precomputed tables.

Each entity has one table of `_Field` rows (Flowtly key, canonical name, how the value
crosses). `to_record` walks the table once per item and `to_payload` once per write: no
per-item models or lookups beyond a dictionary access, so a 300k-item listing maps in
seconds. References travel as IRIs on Flowtly and as ISO codes or ids in canonical form
(`sync.flowtly.refs`).

What Flowtly carries (`fields_of`) is exactly what the engine compares. Computed and
volatile properties (``@id``, ``id``, ``updatedAt``, ``possibleTypes``, ``costGroup*``,
embedded ``clientContacts``) are never read into records. A note's ``createdAt`` is read
into ``created_at`` for information but is not carried: it is never compared or written.

Counterparty ``name`` (an assumed extra property, see `assumptions.COUNTERPARTY_EXTRA_FIELDS`)
maps to nothing: ``displayName`` is the published, authoritative name, and writing an
unpublished property whose meaning we do not know could overwrite someone's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from sync.flowtly.assumptions import FREE_ENUMS
from sync.flowtly.client import JsonObject
from sync.flowtly.refs import Refs, id_of
from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Record, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "Defaults",
    "fields_of",
    "item_id",
    "to_payload",
    "to_record",
]


class _Via(Enum):
    """How a value crosses between canonical form and Flowtly JSON."""

    VALUE = "value"
    COUNTRY = "country"
    CURRENCY = "currency"
    CLIENT = "client"
    EMPLOYEE = "employee"


@dataclass(frozen=True, slots=True)
class _Field:
    key: str
    name: str
    via: _Via
    spec: FieldSpec
    carried: bool = True
    """False for read-only, informational fields (note ``created_at``)."""


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values sent on create when a Flowtly-required field is missing or empty.

    Canonical values: ISO codes for ``currency``/``country``; for ``note_author`` an
    employee id or its IRI (`FlowtlySide` also resolves an e-mail address). ``None`` means
    "no default": Flowtly then refuses the record (422) and the engine reports it; a
    ``note_author`` of None lets the side use ``/employees/me``.
    """

    currency: str | None = None
    country: str | None = None
    status: str = FREE_ENUMS["Client.status"]
    tin_type: str = FREE_ENUMS["Client.tinType"]
    documents_language: str = FREE_ENUMS["Client.documentsLanguage"]
    contact_type: str = FREE_ENUMS["ClientContact.type"]
    counterparty_type: str = FREE_ENUMS["Counterparty.type"]
    note_author: str | None = None

    def for_entity(self, entity: EntityKind) -> dict[str, Scalar]:
        """The canonical ``name -> default`` pairs that apply to creating ``entity``."""
        if entity is EntityKind.CLIENT:
            values: dict[str, Scalar] = {
                "status": self.status,
                "tin_type": self.tin_type,
                "documents_language": self.documents_language,
                "currency": self.currency,
                "country": self.country,
            }
        elif entity is EntityKind.CONTACT:
            values = {"type": self.contact_type}
        elif entity is EntityKind.COUNTERPARTY:
            values = {"counterparty_type": self.counterparty_type}
        else:
            values = {"author": self.note_author}
        return {name: value for name, value in values.items() if value is not None}


def _table(
    entity: EntityKind, *rows: tuple[str, str] | tuple[str, str, _Via]
) -> tuple[_Field, ...]:
    schema = SCHEMAS[entity]
    fields = []
    for row in rows:
        key, name = row[0], row[1]
        via = row[2] if len(row) == 3 else _Via.VALUE
        fields.append(_Field(key, name, via, schema[name]))
    return tuple(fields)


_CLIENT = _table(
    EntityKind.CLIENT,
    ("name", "name"),
    ("status", "status"),
    ("tinType", "tin_type"),
    ("tin", "tin"),
    ("tinCountry", "tin_country"),
    ("vatNumber", "vat_number"),
    ("dueDays", "due_days"),
    ("documentsLanguage", "documents_language"),
    ("invoiceComment", "invoice_comment"),
    ("defaultTaxRate", "default_tax_rate"),
    ("externalPaymentCustomerId", "external_payment_customer_id"),
    ("addressPhoneNumber", "phone"),
    ("addressCity", "city"),
    ("addressPostCode", "post_code"),
    ("addressStreetLine", "street_line"),
    ("addressBuildingNumber", "building_number"),
    ("addressLocaleNumber", "locale_number"),
    ("addressCountry", "address_country", _Via.COUNTRY),
    ("country", "country", _Via.COUNTRY),
    ("currency", "currency", _Via.CURRENCY),
)

_COUNTERPARTY = _table(
    EntityKind.COUNTERPARTY,
    ("displayName", "name"),
    ("type", "counterparty_type"),
    ("requireAttachment", "require_attachment"),
    ("cyclic", "cyclic"),
    ("budgetNeutral", "budget_neutral"),
    ("logoUrl", "logo_url"),
    ("corporateWebsiteUrl", "website"),
    ("vatNumber", "vat_number"),
    ("tin", "tin"),
    ("country", "country", _Via.COUNTRY),
)

_CONTACT = _table(
    EntityKind.CONTACT,
    ("client", "company_id", _Via.CLIENT),
    ("type", "type"),
    ("name", "name"),
    ("email", "email"),
    ("phone", "phone"),
    ("title", "title"),
    ("position", "position"),
)

_NOTE = (
    *_table(
        EntityKind.NOTE,
        ("client", "company_id", _Via.CLIENT),
        ("note", "body"),
        ("employee", "author", _Via.EMPLOYEE),
    ),
    _Field("createdAt", "created_at", _Via.VALUE, SCHEMAS[EntityKind.NOTE]["created_at"], False),
)

_TABLES: Final[Mapping[EntityKind, tuple[_Field, ...]]] = MappingProxyType(
    {
        EntityKind.CLIENT: _CLIENT,
        EntityKind.COUNTERPARTY: _COUNTERPARTY,
        EntityKind.CONTACT: _CONTACT,
        EntityKind.NOTE: _NOTE,
    }
)

_BY_NAME: Final[Mapping[EntityKind, Mapping[str, _Field]]] = MappingProxyType(
    {
        entity: MappingProxyType({row.name: row for row in rows if row.carried})
        for entity, rows in _TABLES.items()
    }
)

_CARRIED: Final[Mapping[EntityKind, frozenset[str]]] = MappingProxyType(
    {entity: frozenset(by_name) for entity, by_name in _BY_NAME.items()}
)


def fields_of(entity: EntityKind) -> frozenset[str]:
    """The canonical fields Flowtly carries for ``entity`` (the ones compared and written)."""
    return _CARRIED[entity]


def item_id(item: Mapping[str, Any]) -> str | None:
    """The Flowtly id of an item: its ``id``, else the last segment of its ``@id``."""
    try:
        return id_of(item.get("id")) or id_of(item.get("@id"))
    except ValueError:
        return None


# How `to_record` reads a row: small ints in flat tuples keep the per-field loop cheap.
_TEXT, _INT, _BOOL, _NORMALIZE, _COUNTRY, _CURRENCY, _ID = range(7)

_ReadRow = tuple[str, str, int, FieldSpec]


def _read_row(row: _Field) -> _ReadRow:
    if row.via is _Via.COUNTRY:
        mode = _COUNTRY
    elif row.via is _Via.CURRENCY:
        mode = _CURRENCY
    elif row.via is not _Via.VALUE:
        mode = _ID
    elif row.spec.type is FieldType.TEXT:
        mode = _TEXT
    elif row.spec.type is FieldType.INTEGER:
        mode = _INT
    elif row.spec.type is FieldType.BOOLEAN:
        mode = _BOOL
    else:
        mode = _NORMALIZE
    return (row.key, row.name, mode, row.spec)


_READ_ROWS: Final[Mapping[EntityKind, tuple[_ReadRow, ...]]] = MappingProxyType(
    {entity: tuple(_read_row(row) for row in rows) for entity, rows in _TABLES.items()}
)


def to_record(entity: EntityKind, item: Mapping[str, Any], refs: Refs) -> Record:
    """The canonical record of a Flowtly item (missing keys count as null).

    Raises `sync.normalize.NormalizationError` or `sync.flowtly.refs.UnknownReference`
    (both `ValueError`, naming the field) when a value has no canonical form.
    """
    record_id = item_id(item)
    if record_id is None:
        raise NormalizationError("id", item.get("@id"), "a Flowtly item without an id")
    get = item.get
    values: dict[str, Scalar] = {}
    for key, name, mode, spec in _READ_ROWS[entity]:
        raw = get(key)
        if raw is None:
            values[name] = None
        elif mode == _TEXT and type(raw) is str:
            values[name] = raw.strip() or None
        elif (mode == _INT and type(raw) is int) or (mode == _BOOL and type(raw) is bool):
            values[name] = raw
        elif mode == _COUNTRY:
            values[name] = refs.country_code(raw, name)
        elif mode == _CURRENCY:
            values[name] = refs.currency_code(raw, name)
        elif mode == _ID:
            try:
                values[name] = id_of(raw)
            except ValueError:
                raise NormalizationError(name, raw, "not an IRI") from None
        else:
            values[name] = normalize_value(spec, raw)
    return Record(entity, record_id, values)


def _write(row: _Field, value: Scalar, refs: Refs) -> Any:
    if value is None:
        return None
    via = row.via
    if via is _Via.VALUE:
        return value
    if via is _Via.COUNTRY:
        return refs.country_iri(str(value), row.name)
    if via is _Via.CURRENCY:
        return refs.currency_iri(str(value), row.name)
    # An id, or an IRI of it (a configured default author may be written either way).
    key = id_of(value)
    if key is None:
        return None
    return refs.iri("clients" if via is _Via.CLIENT else "employees", key)


def to_payload(
    entity: EntityKind,
    values: Mapping[str, Scalar],
    refs: Refs,
    *,
    create: bool,
    defaults: Defaults | None = None,
) -> JsonObject:
    """The Flowtly JSON body that writes ``values`` (canonical) of ``entity``.

    Only the given fields are sent. Fields Flowtly does not carry (a client's ``website``,
    a note's ``created_at``) are left out; names that are not canonical fields of the entity
    raise `ValueError`. On create, empty values are omitted and Flowtly-required fields
    that are missing or empty get ``defaults`` (`Defaults()` when not given). On update
    (a JSON Merge Patch body), ``None`` is sent as ``null``, which clears the property.
    Raises `sync.flowtly.refs.UnknownReference` for a code Flowtly does not know.
    """
    schema = SCHEMAS[entity]
    unknown = [name for name in values if name not in schema]
    if unknown:
        raise ValueError(f"{entity} has no field(s) {', '.join(sorted(unknown))}")
    by_name = _BY_NAME[entity]
    if create:
        merged = dict(values)
        for name, default in (defaults or Defaults()).for_entity(entity).items():
            if merged.get(name) is None:
                merged[name] = default
        values = merged
    payload: JsonObject = {}
    for name, value in values.items():
        row = by_name.get(name)
        if row is None:
            continue
        if value is None and create:
            continue
        payload[row.key] = _write(row, value, refs)
    return payload
