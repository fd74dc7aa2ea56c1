"""The custom fields the mapping needs: listed for ``crm setup``, created with ``--apply``
through ``POST /api/v2/organizationFields`` (or ``/personFields`` for a renamed contact
field).

Text fields are ``varchar`` (Pipedrive's 255-character text); the kind is an ``enum``
whose options are the kind labels (``client``, ``supplier`` unless mapped otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.pipedrive._api import PipedriveApi
from connectors.pipedrive._slots import KIND, Binding, Group, Wanted
from connectors.setup import CustomField
from sync.mapping.layout import FieldLayout
from sync.model import SCHEMAS, EntityKind

__all__ = ["FieldSetup"]

_PATHS = {
    EntityKind.CLIENT: "/api/v2/organizationFields",
    EntityKind.COUNTERPARTY: "/api/v2/organizationFields",
    EntityKind.CONTACT: "/api/v2/personFields",
}


def _entity(group: Group, canonical: str) -> EntityKind:
    """Which entity a field is listed under (counterparty extras by theirs)."""
    if group is Group.PERSON:
        return EntityKind.CONTACT
    if canonical == KIND or canonical in SCHEMAS[EntityKind.CLIENT]:
        return EntityKind.CLIENT
    return EntityKind.COUNTERPARTY


class FieldSetup:
    """Lists and creates the custom fields of one account."""

    def __init__(self, api: PipedriveApi) -> None:
        self._api = api

    @staticmethod
    def _options(layout: FieldLayout) -> tuple[str, ...]:
        return (layout.kind_label(EntityKind.CLIENT), layout.kind_label(EntityKind.COUNTERPARTY))

    def listed(self, bindings: Sequence[Binding], layout: FieldLayout) -> list[CustomField]:
        """Every custom field ``bindings`` want, present or not."""
        return [self._field(b.group, one, layout) for b in bindings for one in b.wanted]

    def _field(self, group: Group, wanted: Wanted, layout: FieldLayout) -> CustomField:
        return CustomField(
            entity=_entity(group, wanted.canonical),
            name=wanted.name,
            canonical=wanted.canonical,
            type="enum" if wanted.enum else "varchar",
            present=wanted.present,
            options=self._options(layout) if wanted.enum else (),
        )

    async def create(self, missing: Sequence[CustomField]) -> list[CustomField]:
        """Create each of ``missing``; the ones created, now present."""
        created: list[CustomField] = []
        for field in missing:
            body: dict[str, Any] = {"field_name": field.name, "field_type": field.type}
            if field.options:
                body["options"] = [{"label": label} for label in field.options]
            await self._api.call("POST", _PATHS[field.entity], body=body)
            created.append(
                CustomField(
                    field.entity, field.name, field.canonical, field.type, True, field.options
                )
            )
        return created
