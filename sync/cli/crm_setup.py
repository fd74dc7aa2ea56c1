"""``flowtly-sync crm setup``: the custom fields the CRM's mapping needs, created on request."""

from __future__ import annotations

from typing import TextIO

from connectors.base import Connector
from connectors.mapped import MappingConnector
from connectors.setup import CustomField, SupportsSetup, missing_fields
from sync.config import Settings
from sync.wiring import build_crm

__all__ = ["setup_crm", "setup_target"]


def setup_target(connector: Connector) -> SupportsSetup | None:
    """The connector that knows its custom fields, under a mapping wrapper if any."""
    inner = connector.inner if isinstance(connector, MappingConnector) else connector
    return inner if isinstance(inner, SupportsSetup) else None


def _line(field: CustomField) -> str:
    kind = field.type + (f" ({', '.join(field.options)})" if field.options else "")
    state = "present" if field.present else "MISSING"
    return f"  {field.entity:<8} {field.name:<32} {kind:<28} <- {field.canonical:<20} {state}\n"


async def setup_crm(settings: Settings, out: TextIO, *, apply: bool) -> bool:
    """Print the custom fields of ``[crm]``; with ``apply``, create the missing ones.

    True when none is missing at the end (nothing to do, or all created).
    """
    crm = build_crm(settings)
    async with crm:
        target = setup_target(crm)
        if target is None:
            out.write(f"{crm.describe()}: the {crm.name} connector needs no custom fields\n")
            return True
        fields = await target.custom_fields()
        missing = missing_fields(fields)
        out.write(f"{crm.describe()}: {len(fields)} custom field(s), {len(missing)} missing\n")
        for field in fields:
            out.write(_line(field))
        if not missing:
            return True
        if not apply:
            how = (
                "run `flowtly-sync crm setup --apply` to create them"
                if target.creates_fields()
                else "create them in the CRM's setup (its API cannot); until then they are "
                "not synced"
            )
            out.write(f"{len(missing)} missing: {how}\n")
            return False
        if not target.creates_fields():
            out.write(
                f"{len(missing)} missing: the {crm.name} API cannot create fields; create "
                "them in the CRM's setup as listed above\n"
            )
            return False
        created = await target.create_fields(missing)
        for field in created:
            out.write(f"created {field.entity} {field.name}\n")
        still = missing_fields(await target.custom_fields())
        if still:
            names = ", ".join(f"{field.entity} {field.name}" for field in still)
            out.write(f"still missing after --apply: {names}\n")
            return False
        out.write("every custom field is present\n")
        return True
