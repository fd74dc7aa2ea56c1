"""Which HubSpot property carries which canonical field, and how values cross over.

HubSpot holds every property value as a string (dates and numbers included). Companies
have standard properties for a name, an address and a country; every other canonical
company field lives in a custom property ``flowtly_<canonical>`` in the property group
``flowtly`` (created by ``flowtly-sync crm setup --apply``). A contact's name is two
properties (``firstname`` + ``lastname``); a note's body is HTML (`connectors.hubspot._html`).

The user's ``[mapping.*]`` tables rename properties through a `FieldLayout`; a property
the account does not have is left out of the carried fields (not synced), never an
error per record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from connectors.hubspot._html import html_from_text, text_from_html
from sync.mapping.countries import country_from_name
from sync.mapping.layout import FieldLayout, fold
from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Scalar
from sync.normalize import NormalizationError, normalize_value

__all__ = [
    "COMPANY_KIND_PROPERTY",
    "CUSTOM_GROUP",
    "CUSTOM_PREFIX",
    "NAME_PARTS",
    "ObjectType",
    "PropertyMap",
    "PropertySpec",
    "join_name",
    "object_type",
    "split_name",
]

CUSTOM_GROUP = "flowtly"
"""The property group the custom properties live in."""
CUSTOM_PREFIX = "flowtly_"
COMPANY_KIND_PROPERTY = "type"
VENDOR = "VENDOR"
NAME_PARTS = ("firstname", "lastname")
"""The contact properties a canonical ``name`` is split across."""


class ObjectType(StrEnum):
    """HubSpot's CRM object types this connector reads and writes."""

    COMPANIES = "companies"
    CONTACTS = "contacts"
    NOTES = "notes"

    @property
    def modified_property(self) -> str:
        """The property search filters and sorts on: contacts name it differently."""
        return "lastmodifieddate" if self is ObjectType.CONTACTS else "hs_lastmodifieddate"


def object_type(entity: EntityKind) -> ObjectType:
    if entity in (EntityKind.CLIENT, EntityKind.COUNTERPARTY):
        return ObjectType.COMPANIES
    return ObjectType.CONTACTS if entity is EntityKind.CONTACT else ObjectType.NOTES


_STANDARD: Mapping[ObjectType, Mapping[str, str]] = MappingProxyType(
    {
        ObjectType.COMPANIES: {
            "name": "name",
            "website": "website",
            "phone": "phone",
            "street_line": "address",
            "city": "city",
            "post_code": "zip",
            "country": "country",
        },
        ObjectType.CONTACTS: {"email": "email", "phone": "phone", "title": "jobtitle"},
        ObjectType.NOTES: {"body": "hs_note_body", "created_at": "hs_timestamp"},
    }
)


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """A HubSpot property the mapping needs, as ``crm setup`` would create it."""

    name: str
    canonical: str
    type: str
    """HubSpot's property type: ``string``, ``number``, ``bool``."""
    field_type: str
    """HubSpot's field type (how the UI shows it): ``text``, ``number``, ``booleancheckbox``."""
    custom: bool

    def create_body(self) -> dict[str, object]:
        """The body of ``POST /crm/v3/properties/{type}`` creating this property."""
        body: dict[str, object] = {
            "name": self.name,
            "label": f"Flowtly {self.canonical.replace('_', ' ')}",
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": CUSTOM_GROUP,
        }
        if self.type == "bool":
            body["options"] = [
                {"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False},
            ]
        return body


def _hubspot_type(spec: FieldSpec) -> tuple[str, str]:
    if spec.type in (FieldType.INTEGER, FieldType.DECIMAL):
        return "number", "number"
    if spec.type is FieldType.BOOLEAN:
        return "bool", "booleancheckbox"
    return "string", "text"


@dataclass(frozen=True, slots=True)
class PropertyMap:
    """Canonical field <-> HubSpot property, per entity, after the user's renames."""

    by_entity: Mapping[EntityKind, Mapping[str, PropertySpec]]
    kind_property: str = COMPANY_KIND_PROPERTY
    layout: FieldLayout = field(default_factory=FieldLayout)

    @classmethod
    def build(cls, layout: FieldLayout) -> PropertyMap:
        by_entity: dict[EntityKind, Mapping[str, PropertySpec]] = {}
        kind_property = COMPANY_KIND_PROPERTY
        for entity in EntityKind:
            schema = SCHEMAS[entity]
            kind = object_type(entity)
            standard = _STANDARD[kind]
            specs: dict[str, PropertySpec] = {}
            for canonical, spec in schema.items():
                hs_type, field_type = _hubspot_type(spec)
                if canonical in standard:
                    specs[canonical] = PropertySpec(
                        standard[canonical], canonical, hs_type, field_type, custom=False
                    )
                elif kind is ObjectType.COMPANIES:
                    specs[canonical] = PropertySpec(
                        CUSTOM_PREFIX + canonical, canonical, hs_type, field_type, custom=True
                    )
            for crm_name, canonical in layout.aliases.get(entity, {}).items():
                if canonical == "kind":
                    kind_property = crm_name
                elif canonical in schema and canonical != "company_id":
                    hs_type, field_type = _hubspot_type(schema[canonical])
                    specs[canonical] = PropertySpec(
                        crm_name, canonical, hs_type, field_type, custom=True
                    )
            by_entity[entity] = MappingProxyType(specs)
        return cls(MappingProxyType(by_entity), kind_property, layout)

    def specs(self, entity: EntityKind) -> Mapping[str, PropertySpec]:
        return self.by_entity[entity]

    def splits_name(self, entity: EntityKind) -> bool:
        """Whether ``name`` is carried as ``firstname`` + ``lastname`` (a contact's,
        unless the user mapped ``name`` to one property)."""
        return entity is EntityKind.CONTACT and "name" not in self.by_entity[entity]

    def wanted(self, entity: EntityKind, present: frozenset[str]) -> list[str]:
        """The properties to ask HubSpot for (those the account has)."""
        names = [s.name for s in self.by_entity[entity].values() if s.name in present]
        if object_type(entity) is ObjectType.COMPANIES:
            names.append(self.kind_property)
        if self.splits_name(entity):
            names.extend(NAME_PARTS)
        names.append(object_type(entity).modified_property)
        return list(dict.fromkeys(names))

    def carried(self, entity: EntityKind, present: frozenset[str]) -> frozenset[str]:
        """The canonical fields carried: those whose property the account has."""
        names = {c for c, s in self.by_entity[entity].items() if s.name in present}
        if self.splits_name(entity):
            names.add("name")
        if entity.parent is not None:
            names.add("company_id")
        return frozenset(names)

    # -- kinds ---------------------------------------------------------------------------

    def kind_of(self, value: str | None) -> EntityKind:
        """The entity of a company whose kind property holds ``value``."""
        text = fold(value or "")
        configured = self.layout.kinds.get(text)
        if configured is not None:
            return configured
        return EntityKind.COUNTERPARTY if text in ("vendor", "supplier") else EntityKind.CLIENT

    def kind_value(self, entity: EntityKind) -> str | None:
        """The kind property's value for a new company of ``entity`` (None: leave empty)."""
        for text, kind in self.layout.kinds.items():
            if kind is entity:
                return self.layout.kind_label(entity) or text
        return VENDOR if entity is EntityKind.COUNTERPARTY else None

    # -- values --------------------------------------------------------------------------

    def read_value(self, entity: EntityKind, canonical: str, text: str | None) -> Scalar:
        """The canonical value of property text; `NormalizationError` when it has none."""
        spec = SCHEMAS[entity][canonical]
        if text is None or not text.strip():
            return None
        if self.layout.is_verbatim(entity, canonical):
            return text.strip()
        if entity is EntityKind.NOTE and canonical == "body":
            return text_from_html(text) or None
        if spec.type is FieldType.COUNTRY:
            try:
                return normalize_value(spec, text)
            except NormalizationError:
                code = country_from_name(text)
                if code is None:
                    raise
                return code
        if spec.type is FieldType.INTEGER and text.strip().endswith(".0"):
            text = text.strip()[:-2]  # number properties may come back as "14.0"
        return normalize_value(spec, text)

    def write_value(self, entity: EntityKind, canonical: str, value: Scalar) -> str:
        """The property text for a canonical value (``""`` clears the property)."""
        spec = SCHEMAS[entity][canonical]
        if value is None:
            return ""
        if self.layout.is_verbatim(entity, canonical):
            return str(value)
        normalized = normalize_value(spec, value)
        if normalized is None:
            return ""
        if entity is EntityKind.NOTE and canonical == "body":
            return html_from_text(str(normalized))
        if spec.type is FieldType.DATETIME:
            moment = datetime.fromisoformat(str(normalized)).astimezone(UTC)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if isinstance(normalized, bool):
            return "true" if normalized else "false"
        return str(normalized)


def split_name(name: str) -> tuple[str, str]:
    """``firstname``, ``lastname`` of a full name: split at the last space."""
    first, _, last = name.strip().rpartition(" ")
    return (first, last) if first else (last, "")


def join_name(first: str | None, last: str | None) -> str | None:
    joined = " ".join(part.strip() for part in (first, last) if part and part.strip())
    return joined or None
