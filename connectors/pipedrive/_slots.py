"""Where each canonical field sits in a Pipedrive record: the default mapping and the
user's renames (`FieldLayout`) resolved against the account's field definitions.

Organizations carry ``name``, ``website`` and the ``address`` parts as standard fields;
every other canonical company field lives in a custom field named ``Flowtly <canonical>``
(``Flowtly vat_number``), and the company's kind in the enum ``Flowtly kind`` (options
``client`` / ``supplier``). Persons carry ``name``, the primary ``emails[]`` / ``phones[]``
entry, ``job_title`` and ``org_id``; notes ``content``, ``org_id`` and ``add_time``.

A ``[mapping.*]`` rename names a Pipedrive field by its key (``job_title``, a custom
field's hash) or its name (``Tax ID``); it replaces the default for its canonical field. A
custom field the account lacks is left out (`Binding.missing`): that canonical field is
not synced, and ``crm setup`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from connectors.pipedrive._fields import FieldCatalog, PipedriveField
from sync.mapping.layout import FieldLayout, fold
from sync.model import SCHEMAS, EntityKind

__all__ = [
    "COMPANY_CANONICAL",
    "KIND",
    "Binding",
    "Group",
    "Slot",
    "Wanted",
    "Where",
    "bind",
    "custom_name",
]

KIND: Final = "kind"
_PREFIX: Final = "Flowtly "


class Group(Enum):
    """The Pipedrive entity an engine entity lives in."""

    ORGANIZATION = "organization"
    PERSON = "person"
    NOTE = "note"

    @classmethod
    def of(cls, entity: EntityKind) -> Group:
        if entity is EntityKind.CONTACT:
            return cls.PERSON
        if entity is EntityKind.NOTE:
            return cls.NOTE
        return cls.ORGANIZATION


class Where(Enum):
    """How a field's value is held."""

    TOP = "top"  # a plain top-level property (name, website, job_title)
    ADDRESS = "address"  # one part of the organization's address
    CUSTOM = "custom"  # custom_fields[code]
    EMAIL = "email"  # the primary emails[] entry
    PHONE = "phone"  # the primary phones[] entry
    ORG = "org"  # org_id, the id of an organization
    HTML = "html"  # a note's HTML content
    TIME = "time"  # a v1 timestamp


@dataclass(frozen=True, slots=True)
class Slot:
    """One canonical field's place: ``key`` is the property, address part or field code."""

    canonical: str
    where: Where
    key: str
    field: PipedriveField | None = None
    """The definition of a custom field (its type and options)."""


def custom_name(canonical: str) -> str:
    """The name of the custom field that holds ``canonical`` by default."""
    return f"{_PREFIX}{canonical}"


COMPANY_CANONICAL: Final = tuple(
    dict.fromkeys([*SCHEMAS[EntityKind.CLIENT], *SCHEMAS[EntityKind.COUNTERPARTY]])
)
"""Every canonical company field, clients' first, then the counterparty extras."""

_ADDRESS_PARTS: Final = (
    "route",
    "street_number",
    "subpremise",
    "locality",
    "sublocality",
    "admin_area_level_1",
    "admin_area_level_2",
    "postal_code",
    "country",
)

# The properties a rename may name, per group: key -> (where, key).
_STANDARD: Mapping[Group, Mapping[str, tuple[Where, str]]] = MappingProxyType(
    {
        Group.ORGANIZATION: MappingProxyType(
            {
                "name": (Where.TOP, "name"),
                "website": (Where.TOP, "website"),
                "linkedin": (Where.TOP, "linkedin"),
                **{part: (Where.ADDRESS, part) for part in _ADDRESS_PARTS},
                **{f"address.{part}": (Where.ADDRESS, part) for part in _ADDRESS_PARTS},
            }
        ),
        Group.PERSON: MappingProxyType(
            {
                "name": (Where.TOP, "name"),
                "job_title": (Where.TOP, "job_title"),
                "emails": (Where.EMAIL, "emails"),
                "email": (Where.EMAIL, "emails"),
                "phones": (Where.PHONE, "phones"),
                "phone": (Where.PHONE, "phones"),
                "org_id": (Where.ORG, "org_id"),
            }
        ),
        Group.NOTE: MappingProxyType(
            {
                "content": (Where.HTML, "content"),
                "org_id": (Where.ORG, "org_id"),
                "add_time": (Where.TIME, "add_time"),
            }
        ),
    }
)

_DEFAULTS: Mapping[Group, Mapping[str, str]] = MappingProxyType(
    {
        Group.ORGANIZATION: MappingProxyType(
            {
                "name": "name",
                "website": "website",
                "street_line": "route",
                "building_number": "street_number",
                "city": "locality",
                "post_code": "postal_code",
                "country": "country",
            }
        ),
        Group.PERSON: MappingProxyType(
            {
                "name": "name",
                "email": "emails",
                "phone": "phones",
                "title": "job_title",
                "company_id": "org_id",
            }
        ),
        Group.NOTE: MappingProxyType(
            {"body": "content", "company_id": "org_id", "created_at": "add_time"}
        ),
    }
)
"""Canonical field -> standard property, before any rename."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """A custom field the mapping needs: its name, what it carries, whether it exists."""

    name: str
    canonical: str
    present: bool
    enum: bool = False


@dataclass(frozen=True, slots=True)
class Binding:
    """Every carried canonical field of one group, and the custom fields wanted."""

    group: Group
    slots: Mapping[str, Slot]
    kind: Slot | None = None
    wanted: tuple[Wanted, ...] = ()

    def fields(self, entity: EntityKind) -> frozenset[str]:
        schema = SCHEMAS[entity]
        return frozenset(name for name in self.slots if name in schema)


def _standard(group: Group, name: str) -> tuple[Where, str] | None:
    return _STANDARD[group].get(fold(name))


def _slot(group: Group, canonical: str, name: str, catalog: FieldCatalog) -> Slot | None:
    """Where the Pipedrive field ``name`` (a key or a name) is; None if the account
    has no such field."""
    standard = _standard(group, name)
    if standard is not None:
        return Slot(canonical, standard[0], standard[1])
    found = catalog.find(name)
    if found is None:
        return None
    if not found.custom:
        standard = _standard(group, found.code)
        return Slot(canonical, standard[0], standard[1]) if standard is not None else None
    return Slot(canonical, Where.CUSTOM, found.code, found)


def _schema_of(group: Group) -> tuple[str, ...]:
    if group is Group.ORGANIZATION:
        return COMPANY_CANONICAL
    return tuple(SCHEMAS[EntityKind.CONTACT if group is Group.PERSON else EntityKind.NOTE])


def bind(group: Group, layout: FieldLayout, catalog: FieldCatalog) -> Binding:
    """The binding of ``group`` under ``layout`` in the account ``catalog`` describes."""
    entity = {
        Group.ORGANIZATION: EntityKind.CLIENT,
        Group.PERSON: EntityKind.CONTACT,
        Group.NOTE: EntityKind.NOTE,
    }[group]
    renames = {
        canonical: crm
        for crm, canonical in layout.aliases.get(entity, {}).items()
        if canonical != "id"
    }
    slots: dict[str, Slot] = {}
    wanted: list[Wanted] = []
    kind: Slot | None = None
    defaults = _DEFAULTS[group]
    custom_defaults = group is Group.ORGANIZATION
    names = [*_schema_of(group), KIND] if custom_defaults else list(_schema_of(group))
    for canonical in names:
        if canonical in renames:
            name = renames[canonical]
        elif canonical in defaults:
            name = defaults[canonical]
        elif custom_defaults:
            name = custom_name(canonical)
        else:
            continue
        slot = _slot(group, canonical, name, catalog)
        if slot is None or slot.where is Where.CUSTOM:
            named = slot.field.name if slot is not None and slot.field is not None else name
            wanted.append(Wanted(named, canonical, slot is not None, enum=canonical == KIND))
        if slot is None:
            continue
        if canonical == KIND:
            kind = slot
        else:
            slots[canonical] = slot
    return Binding(group, MappingProxyType(slots), kind, tuple(wanted))
