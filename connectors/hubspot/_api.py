"""HubSpot's CRM endpoints this connector uses, over the HTTP kit's `ApiClient`.

Every call returns HubSpot's JSON as parsed; turning it into records is the connector's
business. Read-only POSTs (search, batch/read) are declared idempotent so the kit may
retry them; writes are retried only when they provably never left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from connectors.http import ApiClient, ErrorReader, RetryScope, Side
from connectors.hubspot._properties import ObjectType
from sync.errors import Violation

__all__ = [
    "BATCH_SIZE",
    "HUBSPOT",
    "LIST_PAGE",
    "SEARCH_CAP",
    "SEARCH_PAGE",
    "HubSpotApi",
    "error_reader",
]

HUBSPOT: Final = Side("hubspot", "HubSpot", "crm")
LIST_PAGE: Final = 100
SEARCH_PAGE: Final = 200
SEARCH_CAP: Final = 10_000
"""Results one search query pages through at most; paging past it is refused (400)."""
BATCH_SIZE: Final = 100


def _message(body: object) -> str | None:
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return None


def _violations(body: object) -> tuple[Violation, ...]:
    if not isinstance(body, Mapping):
        return ()
    found: list[Violation] = []
    for error in body.get("errors") or ():
        if not isinstance(error, Mapping):
            continue
        context = error.get("context")
        names = context.get("propertyName") if isinstance(context, Mapping) else None
        name = names[0] if isinstance(names, list) and names else ""
        found.append(Violation(str(name), str(error.get("message") or ""), error.get("code")))
    return tuple(found)


error_reader: Final = ErrorReader(_message, _violations)


class HubSpotApi:
    """The endpoints, by what they do (see the module docstring)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def account(self) -> dict[str, Any]:
        answer: dict[str, Any] = await self.client.send("GET", "/account-info/v3/details")
        return answer

    async def properties(self, kind: ObjectType) -> list[dict[str, Any]]:
        answer = await self.client.send("GET", f"/crm/v3/properties/{kind}")
        results = answer.get("results") if isinstance(answer, dict) else None
        return [item for item in results or () if isinstance(item, dict)]

    async def create_group(self, kind: ObjectType, name: str, label: str) -> None:
        await self.client.send(
            "POST",
            f"/crm/v3/properties/{kind}/groups",
            body={"name": name, "label": label, "displayOrder": -1},
        )

    async def create_property(self, kind: ObjectType, body: Mapping[str, object]) -> None:
        await self.client.send("POST", f"/crm/v3/properties/{kind}", body=dict(body))

    async def list_page(
        self,
        kind: ObjectType,
        after: str | None,
        properties: Sequence[str],
        associations: Sequence[str],
    ) -> Any:
        params: dict[str, str | int] = {
            "limit": LIST_PAGE,
            "properties": ",".join(properties),
            "archived": "false",
        }
        if associations:
            params["associations"] = ",".join(associations)
        if after is not None:
            params["after"] = after
        return await self.client.send("GET", f"/crm/v3/objects/{kind}", params=params)

    async def search(self, kind: ObjectType, body: Mapping[str, object]) -> Any:
        return await self.client.send(
            "POST", f"/crm/v3/objects/{kind}/search", body=dict(body), scope=RetryScope.IDEMPOTENT
        )

    async def batch_read(
        self, kind: ObjectType, ids: Sequence[str], properties: Sequence[str]
    ) -> Any:
        return await self.client.send(
            "POST",
            f"/crm/v3/objects/{kind}/batch/read",
            params={"archived": "false"},
            body={"inputs": [{"id": one} for one in ids], "properties": list(properties)},
            scope=RetryScope.IDEMPOTENT,
        )

    async def batch_write(
        self, kind: ObjectType, action: str, inputs: Sequence[Mapping[str, object]]
    ) -> Any:
        """``batch/create``, ``batch/update`` or ``batch/archive``: 100 inputs at most.

        An update and an archive set absolute values, so repeating them is harmless and
        the kit may retry them; a create is sent again only when it never left.
        """
        scope = RetryScope.UNSENT_ONLY if action == "create" else RetryScope.IDEMPOTENT
        return await self.client.send(
            "POST",
            f"/crm/v3/objects/{kind}/batch/{action}",
            body={"inputs": [dict(one) for one in inputs]},
            scope=scope,
        )

    async def associations_read(
        self, source: ObjectType, target: ObjectType, ids: Sequence[str]
    ) -> Any:
        return await self.client.send(
            "POST",
            f"/crm/v4/associations/{source}/{target}/batch/read",
            body={"inputs": [{"id": one} for one in ids]},
            scope=RetryScope.IDEMPOTENT,
        )

    async def associations_write(
        self,
        source: ObjectType,
        target: ObjectType,
        action: str,
        inputs: Sequence[Mapping[str, object]],
    ) -> Any:
        """v4 ``batch/create`` (labelled associations) or ``batch/archive``."""
        return await self.client.send(
            "POST",
            f"/crm/v4/associations/{source}/{target}/batch/{action}",
            body={"inputs": [dict(one) for one in inputs]},
            scope=RetryScope.IDEMPOTENT,
        )
