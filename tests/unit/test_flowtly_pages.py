"""Flowtly listings over numbered pages against the in-process sandbox: pages fetched ahead
of the reader, in id order either way (``order[id]``), under a base path too; and the
complete listings of `FlowtlySide.read` asking for that stable order."""

from __future__ import annotations

import httpx
import pytest

from connectors.listing import ListingAudit
from sync.flowtly.assumptions import ID_ORDER_PARAM
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource

TOKEN = "pages-token"
CLIENTS = 70  # pages of 30, 30 and 10


class _Pages(httpx.AsyncBaseTransport):
    """The sandbox, noting which page of ``/clients`` each GET asked for."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.pages: list[int] = []
        self.queries: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/clients"):
            self.pages.append(int(request.url.params.get("page", "1")))
            self.queries.append(request.url.query.decode())
        return await self.inner.handle_async_request(request)


def _world(base_path: str = "") -> tuple[FlowtlyClient, _Pages, Sandbox]:
    app = create_app(SandboxSettings(token=TOKEN, base_path=base_path))
    sandbox: Sandbox = app.state.sandbox
    for n in range(CLIENTS):
        sandbox.insert(Resource.CLIENTS, {"name": f"Client {n:02d}"})
    transport = _Pages(httpx.ASGITransport(app=app))
    client = FlowtlyClient(f"http://sandbox{base_path}", TOKEN, rate_limit=0, transport=transport)
    return client, transport, sandbox


@pytest.mark.parametrize("base_path", ["", "/api"])
async def test_pages_after_the_first_are_fetched_ahead_and_listed_in_order(
    base_path: str,
) -> None:
    client, transport, _ = _world(base_path)
    audit = ListingAudit("/clients", total_name="totalItems")
    async with client:
        stream = client.iterate("/clients", page_size=30, audit=audit)
        ids = [(await anext(stream))["id"] for _ in range(31)]
        # Reading page 2 means pages 2 and 3 were both asked for at once.
        assert transport.pages == [1, 2, 3]
        ids += [member["id"] async for member in stream]
    assert ids == list(range(1, CLIENTS + 1))
    for member_id in ids:
        audit.member(str(member_id))
    assert audit.verdict() is None
    assert transport.pages == [1, 2, 3]


async def test_descending_id_order_lists_every_client_once_highest_first() -> None:
    client, transport, _ = _world()
    async with client:
        ids = [m["id"] async for m in client.iterate("/clients", {ID_ORDER_PARAM: "desc"})]
    assert ids == list(range(CLIENTS, 0, -1))
    assert sorted(transport.pages) == [1, 2, 3]


@pytest.mark.parametrize(("order", "descending"), [("DESC", True), ("asc", False), ("up", False)])
async def test_the_sandbox_orders_by_id_as_api_platform_does(order: str, descending: bool) -> None:
    client, _, _ = _world()
    async with client:
        first = await client.get("/clients", {ID_ORDER_PARAM: order, "itemsPerPage": 3})
    ids = [m["id"] for m in first["member"]]
    assert ids == ([CLIENTS, CLIENTS - 1, CLIENTS - 2] if descending else [1, 2, 3])
    assert first["view"]["next"].endswith(f"order%5Bid%5D={order}&itemsPerPage=3&page=2")


async def test_complete_listings_ask_for_ascending_ids() -> None:
    client, transport, _ = _world()
    side = FlowtlySide(
        client, Defaults(currency="PLN", country="PL"), entities=frozenset({EntityKind.CLIENT})
    )
    async with client:
        batches = [batch async for batch in side.read(EntityKind.CLIENT)]
    assert sum(len(b.records) for b in batches) == CLIENTS
    assert batches[-1].incomplete is None
    assert transport.queries
    assert all(
        f"{ID_ORDER_PARAM.replace('[', '%5B').replace(']', '%5D')}=asc" in q
        for q in transport.queries
    )
