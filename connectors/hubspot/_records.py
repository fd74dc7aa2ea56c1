"""HubSpot objects <-> canonical records.

An object's ``properties`` are strings; each carried canonical field is read from its
property (`PropertyMap.read_value`), and a value that has no canonical form rejects the
record with the property, the field and the reason (its id still counts as present, so
it is never taken for a deleted record). A contact's or note's company is the associated
company: the primary association of a contact, the note-to-company association of a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from connectors.hubspot._properties import (
    NAME_PARTS,
    ObjectType,
    PropertyMap,
    join_name,
    object_type,
    split_name,
)
from sync.errors import RecordError, Violation
from sync.model import EntityKind, Record, Scalar, Side
from sync.normalize import NormalizationError

__all__ = [
    "COMPANY_ASSOCIATION",
    "INLINE_COMPANY_TYPES",
    "Parsed",
    "RecordCodec",
    "associated_company",
    "modified_at",
    "v4_company",
]

COMPANY_ASSOCIATION: Final[Mapping[ObjectType, int]] = {
    ObjectType.CONTACTS: 1,  # contact -> company, primary (HUBSPOT_DEFINED)
    ObjectType.NOTES: 190,  # note -> company (HUBSPOT_DEFINED)
}
"""The association type id that makes a company *the* company of a contact or a note."""

INLINE_COMPANY_TYPES: Final[Mapping[ObjectType, str]] = {
    ObjectType.CONTACTS: "contact_to_company",
    ObjectType.NOTES: "note_to_company",
}
"""How a listing's inline associations name the same association types."""


def modified_at(kind: ObjectType, item: Mapping[str, Any]) -> datetime | None:
    """When HubSpot last changed an object (its modification property, else ``updatedAt``)."""
    properties = item.get("properties")
    text = properties.get(kind.modified_property) if isinstance(properties, Mapping) else None
    text = text or item.get("updatedAt")
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def associated_company(kind: ObjectType, item: Mapping[str, Any]) -> str | None:
    """The company of a listed contact or note, from its inline associations."""
    associations = item.get("associations")
    companies = associations.get("companies") if isinstance(associations, Mapping) else None
    results = companies.get("results") if isinstance(companies, Mapping) else None
    wanted = INLINE_COMPANY_TYPES[kind]
    ids = [
        str(one.get("id"))
        for one in results or ()
        if isinstance(one, Mapping) and one.get("type") == wanted and one.get("id") is not None
    ]
    return min(ids, key=lambda text: (len(text), text)) if ids else None


def v4_company(kind: ObjectType, result: Mapping[str, Any]) -> str | None:
    """The company in one result of a v4 associations batch read."""
    wanted = COMPANY_ASSOCIATION[kind]
    ids = [
        str(target.get("toObjectId"))
        for target in result.get("to") or ()
        if isinstance(target, Mapping)
        and any(
            isinstance(t, Mapping) and t.get("typeId") == wanted
            for t in target.get("associationTypes") or ()
        )
    ]
    return min(ids, key=lambda text: (len(text), text)) if ids else None


@dataclass(frozen=True, slots=True)
class Parsed:
    """One object read: its record (None when rejected or of another entity)."""

    entity: EntityKind
    object_id: str | None
    record: Record | None = None
    errors: tuple[RecordError, ...] = ()


class RecordCodec:
    """Turns objects into records and canonical values into properties (one mapping)."""

    def __init__(self, properties: PropertyMap, present: Mapping[ObjectType, frozenset[str]]):
        self.map = properties
        self.present = present

    def carried(self, entity: EntityKind) -> frozenset[str]:
        return self.map.carried(entity, self.present.get(object_type(entity), frozenset()))

    def wanted(self, entity: EntityKind) -> list[str]:
        return self.map.wanted(entity, self.present.get(object_type(entity), frozenset()))

    def entity_of(self, entity: EntityKind, item: Mapping[str, Any]) -> EntityKind:
        """The entity an object is: a company's kind decides client or counterparty."""
        if object_type(entity) is not ObjectType.COMPANIES:
            return entity
        properties = item.get("properties")
        value = properties.get(self.map.kind_property) if isinstance(properties, Mapping) else None
        return self.map.kind_of(value if isinstance(value, str) else None)

    def parse(
        self, entity: EntityKind, item: Mapping[str, Any], company_id: str | None = None
    ) -> Parsed:
        raw_id = item.get("id")
        object_id = str(raw_id) if raw_id not in (None, "") else None
        actual = self.entity_of(entity, item)
        if object_id is None or actual is not entity:
            return Parsed(actual, object_id)
        properties = item.get("properties")
        if not isinstance(properties, Mapping):
            properties = {}
        fields: dict[str, Scalar] = {}
        errors: list[RecordError] = []
        for canonical in self.carried(entity):
            if canonical == "company_id":
                fields[canonical] = company_id
                continue
            if canonical == "name" and self.map.splits_name(entity):
                first, last = (properties.get(part) for part in NAME_PARTS)
                fields[canonical] = join_name(first, last)
                continue
            name = self.map.specs(entity)[canonical].name
            text = properties.get(name)
            try:
                fields[canonical] = self.map.read_value(
                    entity, canonical, text if isinstance(text, str) else None
                )
            except NormalizationError as error:
                errors.append(
                    RecordError(
                        str(entity),
                        Side.CRM,
                        object_id,
                        f"HubSpot property {name!r}: {error.reason}",
                        canonical,
                        str(text),
                    )
                )
        if errors:
            return Parsed(entity, object_id, errors=tuple(errors))
        return Parsed(entity, object_id, Record(entity, object_id, fields))

    def properties_of(
        self, entity: EntityKind, values: Mapping[str, Scalar]
    ) -> tuple[dict[str, str], list[Violation]]:
        """The property texts for canonical ``values`` (``company_id`` aside), and the
        values refused (with the reason) before anything is sent."""
        carried = self.carried(entity)
        specs = self.map.specs(entity)
        properties: dict[str, str] = {}
        violations: list[Violation] = []
        for canonical, value in values.items():
            if canonical == "company_id" or canonical not in carried:
                continue
            if canonical == "name" and self.map.splits_name(entity):
                first, last = split_name(str(value or ""))
                properties.update(zip(NAME_PARTS, (first, last), strict=True))
                continue
            try:
                properties[specs[canonical].name] = self.map.write_value(entity, canonical, value)
            except NormalizationError as error:
                violations.append(Violation(canonical, error.reason))
        return properties, violations

    def record_ids(self, items: Iterable[Mapping[str, Any]]) -> list[str]:
        return [str(item["id"]) for item in items if item.get("id") is not None]
