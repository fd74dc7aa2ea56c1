"""A contact's or note's company, written through associations v4.

The company of a contact is its primary company (association type 1), that of a note its
note-to-company association (type 190). Moving one to another company archives the
association to the company that defined it and creates the new one with the defining
type; associations the user added to other companies are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.hubspot._api import HubSpotApi
from connectors.hubspot._properties import ObjectType
from connectors.hubspot._records import COMPANY_ASSOCIATION

__all__ = ["association_to", "move_to_companies"]

_CATEGORY = "HUBSPOT_DEFINED"


def _types(kind: ObjectType) -> list[dict[str, object]]:
    return [{"associationCategory": _CATEGORY, "associationTypeId": COMPANY_ASSOCIATION[kind]}]


def association_to(kind: ObjectType, company: str) -> dict[str, object]:
    """The ``associations`` entry of a create making ``company`` the object's company."""
    return {"to": {"id": company}, "types": _types(kind)}


def _defining(kind: ObjectType, result: Mapping[str, Any]) -> list[str]:
    """The companies a v4 result associates through the defining type."""
    wanted = COMPANY_ASSOCIATION[kind]
    return [
        str(target.get("toObjectId"))
        for target in result.get("to") or ()
        if any(t.get("typeId") == wanted for t in target.get("associationTypes") or ())
    ]


async def move_to_companies(
    api: HubSpotApi, kind: ObjectType, moves: Mapping[str, str | None]
) -> None:
    """Point each object id of ``moves`` at its company (None: at none)."""
    if not moves:
        return
    current: dict[str, list[str]] = {}
    answer = await api.associations_read(kind, ObjectType.COMPANIES, list(moves))
    for result in answer.get("results") or ():
        source = str((result.get("from") or {}).get("id"))
        current[source] = _defining(kind, result)
    stale = [
        {"from": {"id": one}, "to": [{"id": c} for c in current[one] if c != target]}
        for one, target in moves.items()
        if any(c != target for c in current.get(one, ()))
    ]
    if stale:
        await api.associations_write(kind, ObjectType.COMPANIES, "archive", stale)
    fresh = [
        {"from": {"id": one}, "to": {"id": target}, "types": _types(kind)}
        for one, target in moves.items()
        if target is not None and target not in current.get(one, ())
    ]
    if fresh:
        await api.associations_write(kind, ObjectType.COMPANIES, "create", fresh)
