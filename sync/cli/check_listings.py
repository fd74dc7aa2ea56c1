"""The probes of ``check`` for how listings are read: pages by number, the order by id and
the modification-time filter (`sync.flowtly.assumptions`). All read-only.

Each returns what it saw, None when the account holds too little to tell, and raises
`Contradiction` when Flowtly answered otherwise than assumed.
"""

from __future__ import annotations

from typing import Any

import httpx

from sync.flowtly.assumptions import (
    ORDER_FIELD,
    ORDER_PARAM,
    STABLE_ORDER,
    UPDATED_AFTER_PARAM,
    UPDATED_FIELD,
)
from sync.flowtly.client import FlowtlyClient

__all__ = ["Contradiction", "order_by_id", "page_numbers", "updated_after"]

_FAR_FUTURE = "9999-01-01T00:00:00+00:00"


class Contradiction(Exception):
    """The API answered, but not as assumed."""


def _members(body: dict[str, Any]) -> list[dict[str, Any]]:
    members = body.get("member", body.get("hydra:member"))
    if not isinstance(members, list):
        raise Contradiction("collection has no 'member' (or 'hydra:member') list")
    return [m for m in members if isinstance(m, dict)]


def _ids(body: dict[str, Any]) -> list[int]:
    return [m["id"] for m in _members(body) if isinstance(m.get("id"), int)]


async def page_numbers(client: FlowtlyClient) -> str | None:
    """``/countries`` one a page: view.last names page N, and page N answers by number."""
    body = await client.get("/countries", {"itemsPerPage": 1})
    total = body.get("totalItems")
    if not isinstance(total, int) or total < 2:
        return None
    view = body.get("view") or {}
    last_link = view.get("last") if isinstance(view, dict) else None
    if not isinstance(last_link, str):
        raise Contradiction(f"a first page of {total} without view.last")
    number = httpx.URL(last_link).params.get("page", "")
    if number != str(total):
        raise Contradiction(f"view.last is {last_link!r}, not page {total}")
    last = await client.get("/countries", {"itemsPerPage": 1, "page": total})
    if len(_members(last)) != 1:
        raise Contradiction(f"page {total} of {total} held {len(_members(last))} members")
    return f"view.last names page {total} of {total}; page {total} answered by number"


async def order_by_id(client: FlowtlyClient) -> str | None:
    """``/clients`` two a page sorted by id, ascending and descending."""
    param = f"{ORDER_PARAM}[{ORDER_FIELD}]"
    rising = _ids(await client.get("/clients", {"itemsPerPage": 2, **STABLE_ORDER}))
    falling = _ids(await client.get("/clients", {"itemsPerPage": 2, param: "desc"}))
    if len(rising) < 2 or len(falling) < 2:
        return None
    if not (rising[0] < rising[1] and falling[0] > falling[1] and falling[0] > rising[0]):
        raise Contradiction(f"{param}=asc listed ids {rising}, {param}=desc listed {falling}")
    return f"{param}=asc lists {rising}, desc lists {falling}"


async def updated_after(client: FlowtlyClient) -> str | None:
    """``/client-contacts`` filtered by a contact's own ``updatedAt`` and by a far future."""
    first = _members(await client.get("/client-contacts", {"itemsPerPage": 1, **STABLE_ORDER}))
    stamp = first[0].get(UPDATED_FIELD) if first else None
    if not isinstance(stamp, str):
        return None
    since = await client.get("/client-contacts", {"itemsPerPage": 30, UPDATED_AFTER_PARAM: stamp})
    stamps = [m.get(UPDATED_FIELD) for m in _members(since)]
    if not stamps or any(not isinstance(s, str) for s in stamps):
        raise Contradiction(f"{UPDATED_AFTER_PARAM}={stamp} left out the contact stamped {stamp}")
    future = await client.get("/client-contacts", {UPDATED_AFTER_PARAM: _FAR_FUTURE})
    if _members(future) or future.get("totalItems") not in (0, None):
        raise Contradiction(f"{UPDATED_AFTER_PARAM}={_FAR_FUTURE} still listed contacts")
    return f"{UPDATED_AFTER_PARAM}={stamp} lists {since.get('totalItems')}; the far future none"
