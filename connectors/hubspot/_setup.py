"""The custom properties the mapping needs (``flowtly-sync crm setup``).

Every canonical company field without a standard HubSpot property lives in a
``flowtly_<canonical>`` property of the ``flowtly`` group; properties the user's mapping
names are listed too, so a rename to a property the portal lacks shows up as missing.
Creating them is idempotent: HubSpot answers 409 for a group or property that exists.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence

from connectors.hubspot._api import HubSpotApi
from connectors.hubspot._properties import CUSTOM_GROUP, ObjectType, PropertyMap, object_type
from connectors.setup import CustomField
from sync.errors import MethodNotAllowed
from sync.model import EntityKind

__all__ = ["create_properties", "listed_fields"]


def listed_fields(
    properties: PropertyMap, present: Mapping[ObjectType, frozenset[str]]
) -> list[CustomField]:
    """Every custom property of the mapping, each with whether the portal has it."""
    fields: dict[tuple[ObjectType, str], CustomField] = {}
    for entity in EntityKind:
        kind = object_type(entity)
        have = present.get(kind, frozenset())
        for spec in properties.specs(entity).values():
            if not spec.custom or (kind, spec.name) in fields:
                continue
            options = ("true", "false") if spec.type == "bool" else ()
            fields[(kind, spec.name)] = CustomField(
                entity, spec.name, spec.canonical, spec.type, spec.name in have, options
            )
    return list(fields.values())


async def create_properties(
    api: HubSpotApi, properties: PropertyMap, missing: Sequence[CustomField]
) -> list[CustomField]:
    """Create the group where needed, then each of ``missing``; return them as created."""
    created: list[CustomField] = []
    grouped: set[ObjectType] = set()
    for field in missing:
        kind = object_type(field.entity)
        spec = properties.specs(field.entity)[field.canonical]
        if kind not in grouped:
            await _unless_exists(api.create_group(kind, CUSTOM_GROUP, "Flowtly"))
            grouped.add(kind)
        await _unless_exists(api.create_property(kind, spec.create_body()))
        created.append(
            CustomField(field.entity, field.name, field.canonical, field.type, True, field.options)
        )
    return created


async def _unless_exists(call: Awaitable[None]) -> None:
    try:
        await call
    except MethodNotAllowed as error:
        if error.status != 409:  # 409: it exists already, which is what we wanted
            raise
