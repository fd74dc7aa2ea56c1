"""Per-resource field specs, write-body denormalisation and validation (API Platform rules)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType

from sync.flowtly import assumptions as a
from sync.sandbox._errors import (
    EMAIL_CODE,
    NOT_BLANK_CODE,
    NOT_NULL_CODE,
    Problem,
    Violation,
)
from sync.sandbox._json import JsonObject, JsonValue, type_name

__all__ = ["SPECS", "Field", "Kind", "Resource", "ResourceSpec", "denormalize", "validate"]


class Resource(StrEnum):
    """A stored resource, named by its collection route segment."""

    CLIENTS = "clients"
    CONTACTS = "client-contacts"
    NOTES = "client-notes"
    COUNTERPARTIES = "counterparties"
    WEBHOOKS = "webhooks"
    WEBHOOK_LOGS = "webhook-logs"
    COUNTRIES = "countries"
    CURRENCIES = "currencies"
    EMPLOYEES = "employees"
    ORGANIZATIONS = "organizations"
    DOCUMENTS = "client-documents"


class Kind(Enum):
    """The JSON type a property accepts on write."""

    STRING = "string"
    INTEGER = "int"
    BOOLEAN = "bool"
    IRI = "iri"
    STRING_LIST = "array"
    JSON = "mixed"


@dataclass(frozen=True, slots=True)
class Field:
    """One property. ``target``: the resource an IRI must point to (None: any item IRI)."""

    name: str
    kind: Kind = Kind.STRING
    target: Resource | None = None
    writable: bool = True
    readable: bool = True
    nullable: bool = True
    email: bool = False


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """How one resource is written, validated and read back."""

    resource: Resource
    short_name: str
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    defaults: Mapping[str, JsonValue] = field(default_factory=dict)
    string_id: bool = False
    parent: str | None = None
    """The IRI property whose id is indexed for per-client lookups (contacts, notes, documents)."""
    timestamps: bool = False

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        order = [n for n in names if n in self.required]
        if order != list(self.required):
            raise ValueError(f"{self.short_name}: required not in declaration order")


def _s(name: str, *, writable: bool = True, readable: bool = True) -> Field:
    return Field(name, Kind.STRING, writable=writable, readable=readable)


def _iri(name: str, target: Resource | None) -> Field:
    return Field(name, Kind.IRI, target)


_ID = Field("id", Kind.INTEGER, writable=False)
_ID_STR = Field("id", Kind.STRING, writable=False)
_TIMES = (Field("createdAt", writable=False), Field("updatedAt", writable=False))
_ADDRESS = ("PhoneNumber", "City", "PostCode", "StreetLine", "BuildingNumber", "LocaleNumber")

CLIENT = ResourceSpec(
    Resource.CLIENTS,
    "Client",
    (
        _ID,
        _iri("country", Resource.COUNTRIES),
        _iri("currency", Resource.CURRENCIES),
        _iri("defaultCost", None),
        _s("status"),
        _iri("attributeSet", None),
        _s("name"),
        Field("dueDays", Kind.INTEGER),
        _s("tinType"),
        _s("tinCountry"),
        _s("tin"),
        _s("externalPaymentCustomerId"),
        _s("invoiceComment"),
        _s("defaultTaxRate"),
        _s("documentsLanguage"),
        *(_s(f"address{part}") for part in _ADDRESS),
        _iri("addressCountry", Resource.COUNTRIES),
        Field("clientContacts", Kind.JSON, writable=False),
        _s("vatNumber"),
    ),
    a.CLIENT_REQUIRED,
)
CONTACT = ResourceSpec(
    Resource.CONTACTS,
    "ClientContact",
    (
        _ID,
        _iri("client", Resource.CLIENTS),
        _s("type"),
        Field("position", Kind.INTEGER),
        Field("email", email=True),
        _s("name"),
        _s("title"),
        _s("phone"),
        *_TIMES,
    ),
    a.CONTACT_REQUIRED,
    parent="client",
    timestamps=True,
)
NOTE = ResourceSpec(
    Resource.NOTES,
    "ClientNote",
    (
        _ID_STR,
        _iri("client", Resource.CLIENTS),
        _iri("employee", Resource.EMPLOYEES),
        _s("note"),
        *_TIMES,
    ),
    a.NOTE_REQUIRED,
    string_id=True,
    parent="client",
    timestamps=True,
)
_EXTRA_KINDS = {"country": Field("country", Kind.IRI, Resource.COUNTRIES)}
COUNTERPARTY = ResourceSpec(
    Resource.COUNTERPARTIES,
    "Counterparty",
    (
        _ID,
        _s("type"),
        Field("requireAttachment", Kind.BOOLEAN, nullable=False),
        Field("cyclic", Kind.BOOLEAN, nullable=False),
        Field("budgetNeutral", Kind.BOOLEAN, nullable=False),
        _s("logoUrl"),
        _s("corporateWebsiteUrl"),
        _s("displayName"),
        _s("costGroupIcon", writable=False),
        *(_EXTRA_KINDS.get(n, _s(n)) for n in a.COUNTERPARTY_EXTRA_FIELDS),
    ),
    a.COUNTERPARTY_REQUIRED,
    defaults=MappingProxyType(
        {"requireAttachment": False, "cyclic": False, "budgetNeutral": False}
    ),
)
_WEBHOOK_KINDS = {
    "events": Field("events", Kind.STRING_LIST),
    "active": Field("active", Kind.BOOLEAN, nullable=False),
    # A signing secret is accepted but, like any credential, never echoed back.
    "secret": Field("secret", readable=False),
}
WEBHOOK = ResourceSpec(
    Resource.WEBHOOKS,
    "Webhook",
    (_ID, *(_WEBHOOK_KINDS.get(n, _s(n)) for n in a.WEBHOOK_FIELDS), *_TIMES),
    ("url",),
    defaults=MappingProxyType({"events": [], "active": True}),
    timestamps=True,
)
WEBHOOK_LOG = ResourceSpec(
    Resource.WEBHOOK_LOGS,
    "WebhookLog",
    (
        _ID_STR,
        _s("url"),
        _s("event"),
        Field("statusCode", Kind.INTEGER),
        Field("responseTime", Kind.INTEGER),
        _s("response"),
    ),
    string_id=True,
)
_REFERENCE = (_ID, _s(a.REFERENCE_CODE_FIELD), _s("name"))
COUNTRY = ResourceSpec(Resource.COUNTRIES, "Country", _REFERENCE)
CURRENCY = ResourceSpec(Resource.CURRENCIES, "Currency", _REFERENCE)
EMPLOYEE = ResourceSpec(
    Resource.EMPLOYEES, "Employee", tuple(Field(n, Kind.JSON) for n in a.EMPLOYEE_FIELDS)
)
ORGANIZATION = ResourceSpec(
    Resource.ORGANIZATIONS,
    "Organization",
    tuple(Field(n, Kind.JSON) for n in a.ORGANIZATION_FIELDS),
    string_id=True,
)
DOCUMENT = ResourceSpec(
    Resource.DOCUMENTS,
    "ClientDocument",
    (
        *(Field(n, Kind.JSON) for n in a.DOCUMENT_FIELDS),
        Field("client", Kind.IRI, Resource.CLIENTS, readable=False),
    ),
    parent="client",
)

SPECS: Mapping[Resource, ResourceSpec] = MappingProxyType(
    {
        spec.resource: spec
        for spec in (
            CLIENT,
            CONTACT,
            NOTE,
            COUNTERPARTY,
            WEBHOOK,
            WEBHOOK_LOG,
            COUNTRY,
            CURRENCY,
            EMPLOYEE,
            ORGANIZATION,
            DOCUMENT,
        )
    }
)
"""Every resource the sandbox stores."""

IriResolver = Callable[[Field, str], str]
"""Checks an IRI for a relation property and returns its canonical path (raises Problem)."""

_EXPECTED_ARRAY_OR_IRI = '"array" (nested document) or "string" (IRI)'
# Symfony's Email constraint, default "html5" mode.
_EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+\\/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)


def _type_error(name: str, expected: str, value: JsonValue) -> Problem:
    return Problem(
        400, f'The type of the "{name}" attribute must be "{expected}", "{type_name(value)}" given.'
    )


def _check(spec_field: Field, value: JsonValue, resolve: IriResolver) -> JsonValue:
    name, kind = spec_field.name, spec_field.kind
    if value is None:
        if spec_field.nullable:
            return None
        raise _type_error(name, kind.value, value)
    if kind is Kind.STRING:
        if not isinstance(value, str):
            raise _type_error(name, "string", value)
    elif kind is Kind.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(name, "int", value)
    elif kind is Kind.BOOLEAN:
        if not isinstance(value, bool):
            raise _type_error(name, "bool", value)
    elif kind is Kind.STRING_LIST:
        if not isinstance(value, list):
            raise _type_error(name, "array", value)
        for item in value:
            if not isinstance(item, str):
                raise _type_error(f"{name}[]", "string", item)
    elif kind is Kind.IRI:
        if isinstance(value, dict | list):
            raise Problem(
                400, f'Nested documents for attribute "{name}" are not allowed. Use IRIs instead.'
            )
        if not isinstance(value, str):
            raise Problem(
                400,
                f'The type of the "{name}" attribute must be {_EXPECTED_ARRAY_OR_IRI}, '
                f'"{type_name(value)}" given.',
            )
        return resolve(spec_field, value)
    return value


def _writable(spec: ResourceSpec) -> Mapping[str, Field]:
    return {f.name: f for f in spec.fields if f.writable}


def denormalize(spec: ResourceSpec, body: JsonObject, resolve: IriResolver) -> JsonObject:
    """The writable properties of ``body``, type-checked, IRIs resolved.

    Read-only, unknown and JSON-LD keys are ignored, as Symfony's serializer does.
    """
    # Symfony walks the body in its own key order, so the first bad key is the one reported.
    by_name = _writable(spec)
    changes: JsonObject = {}
    for key, value in body.items():
        spec_field = by_name.get(key)
        if spec_field is not None:
            changes[key] = _check(spec_field, value, resolve)
    return changes


def validate(spec: ResourceSpec, merged: Mapping[str, JsonValue]) -> None:
    """Raise a 422 Problem listing every violation of ``merged``, in declaration order."""
    violations: list[Violation] = []
    for spec_field in spec.fields:
        value = merged.get(spec_field.name)
        if spec_field.name in spec.required and (value is None or value == ""):
            if spec_field.kind is Kind.IRI:
                violations.append(
                    Violation(spec_field.name, "This value should not be null.", NOT_NULL_CODE)
                )
            else:
                violations.append(
                    Violation(spec_field.name, "This value should not be blank.", NOT_BLANK_CODE)
                )
        elif spec_field.email and isinstance(value, str) and value and not _EMAIL.match(value):
            violations.append(
                Violation(spec_field.name, "This value is not a valid email address.", EMAIL_CODE)
            )
    if violations:
        raise Problem(422, "Validation failed", violations=violations)
