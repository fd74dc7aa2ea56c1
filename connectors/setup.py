"""Custom fields a CRM needs before the mapping can carry every canonical field.

An API CRM has standard fields for a name or a city, but none for a VAT number or a
payment term: its connector keeps those in custom fields (HubSpot properties, Pipedrive
organization fields, Salesforce ``__c`` fields) that the account must have. A connector
that implements `SupportsSetup` says which it needs and which exist; ``flowtly-sync crm
setup`` prints that list and, with ``--apply``, asks the connector to create the missing
ones where the vendor's API allows it.

A missing custom field is never an error per record: the connector leaves that canonical
field out of `Connector.fields`, so it is simply not synced, and `check` and ``crm setup``
name it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sync.model import EntityKind

__all__ = ["CustomField", "SupportsSetup", "missing_fields"]


@dataclass(frozen=True, slots=True)
class CustomField:
    """One custom field the mapping needs, as the vendor names it."""

    entity: EntityKind
    name: str
    """The vendor's name of the field (``flowtly_vat_number``, ``Flowtly vat_number``,
    ``Flowtly_vat_number__c``)."""
    canonical: str
    """The canonical field it carries."""
    type: str
    """What it holds, in the vendor's words (``string``, ``enumeration``, ``Text(255)``)."""
    present: bool
    """Whether the account has it now."""
    options: tuple[str, ...] = ()
    """The values of an enumeration field (``client``, ``supplier``)."""


@runtime_checkable
class SupportsSetup(Protocol):
    """A connector that lists (and may create) the custom fields its mapping needs."""

    def creates_fields(self) -> bool:
        """Whether `create_fields` can create fields through the API (Salesforce's need
        the Metadata API: there it is False and ``crm setup`` only prints what to create)."""
        ...

    async def custom_fields(self) -> list[CustomField]:
        """Every custom field the mapping needs, present or not (the connector is open)."""
        ...

    async def create_fields(self, missing: Sequence[CustomField]) -> list[CustomField]:
        """Create ``missing`` (and any group they belong in); return them as they now are.

        Raises `sync.errors.ConnectorError` when the API refuses; fields created before the
        refusal stay created, and a second call creates only what is still missing.
        """
        ...


def missing_fields(fields: Sequence[CustomField]) -> list[CustomField]:
    """The fields of ``fields`` the account does not have."""
    return [field for field in fields if not field.present]
