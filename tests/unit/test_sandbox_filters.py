"""The sandbox's OrderFilter on id and DateFilter on updatedAt, the Flowtly client's
listings read by page number over them, and the ``check`` probes of both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors.listing import ListingAudit
from sync.cli import check_listings
from sync.flowtly.client import FlowtlyClient
from sync.sandbox.app import create_app
from sync.sandbox.settings import SandboxSettings

TOKEN = "sandbox-token-filters"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _client(settings: SandboxSettings, **kw: Any) -> FlowtlyClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return FlowtlyClient("http://sandbox", TOKEN, transport=transport, rate_limit=0, **kw)


async def _seed(flowtly: FlowtlyClient, clients: int, contacts_each: int = 0) -> None:
    country = (await flowtly.get("/countries", {"itemsPerPage": 1}))["member"][0]["@id"]
    currency = (await flowtly.get("/currencies", {"itemsPerPage": 1}))["member"][0]["@id"]
    for n in range(clients):
        body = {"name": f"C{n}", "status": "active", "tinType": "vat"}
        made = await flowtly.post("/clients", {**body, "country": country, "currency": currency})
        for c in range(contacts_each):
            await flowtly.post(
                "/client-contacts",
                {"client": made["@id"], "type": "main", "email": f"{n}.{c}@x.pl", "name": "A"},
            )


async def test_order_by_id_descending_and_ascending() -> None:
    async with _client(SandboxSettings(token=TOKEN)) as flowtly:
        await _seed(flowtly, 5)
        down = await flowtly.get("/clients", {"order[id]": "desc", "itemsPerPage": 2})
        up = await flowtly.get("/clients", {"order[id]": "asc", "itemsPerPage": 2, "page": 2})
        ignored = await flowtly.get("/clients", {"order[id]": "sideways"})
    assert [m["id"] for m in down["member"]] == [5, 4]
    assert [m["id"] for m in up["member"]] == [3, 4]
    assert [m["id"] for m in ignored["member"]] == [1, 2, 3, 4, 5]


async def test_updated_after_keeps_records_modified_at_or_after_the_moment() -> None:
    clock = Clock()
    async with _client(SandboxSettings(token=TOKEN, clock=clock)) as flowtly:
        await _seed(flowtly, 1, contacts_each=2)
        clock.now += timedelta(hours=1)
        await flowtly.patch("/client-contacts/1", {"name": "B"})
        moment = clock.now.isoformat()
        after = await flowtly.get("/client-contacts", {"updatedAt[after]": moment})
        strictly = await flowtly.get("/client-contacts", {"updatedAt[strictly_after]": moment})
        unreadable = await flowtly.get("/client-contacts", {"updatedAt[after]": "soon"})
    assert [m["id"] for m in after["member"]] == [1]
    assert after["totalItems"] == 1
    assert strictly["member"] == []
    assert unreadable["totalItems"] == 2


async def test_a_long_listing_is_read_by_number_in_order_and_complete() -> None:
    async with _client(SandboxSettings(token=TOKEN), concurrency=4) as flowtly:
        await _seed(flowtly, 100)
        audit = ListingAudit("/clients", total_name="totalItems")
        ids = []
        async for member in flowtly.iterate(
            "/clients", {"order[id]": "asc"}, page_size=30, audit=audit
        ):
            ids.append(member["id"])
            audit.member(str(member["id"]))
    assert ids == list(range(1, 101))
    assert audit.verdict() is None
    assert audit.pages == 4


async def test_a_listing_that_shrinks_while_read_is_incomplete() -> None:
    deleted = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal deleted
        page = int(request.url.params.get("page", "1"))
        total = 5 if deleted else 6
        deleted = True  # a record goes after the first page was served
        ids = list(range(2 * page - 1, min(2 * page, total) + 1))
        body = {
            "member": [{"@id": f"/clients/{i}", "id": i} for i in ids],
            "totalItems": total,
            "view": {"last": "/clients?itemsPerPage=2&page=3", "next": "/clients?page=2"},
        }
        return httpx.Response(200, json=body)

    flowtly = FlowtlyClient(
        "https://api.flowtly.test", "t", rate_limit=0, transport=httpx.MockTransport(handler)
    )
    audit = ListingAudit("/clients", total_name="totalItems")
    async with flowtly:
        async for member in flowtly.iterate("/clients", page_size=2, audit=audit):
            audit.member(str(member["id"]))
    assert "the collection changed while it was read" in (audit.verdict() or "")


async def test_check_probes_confirm_the_sandbox() -> None:
    async with _client(SandboxSettings(token=TOKEN)) as flowtly:
        assert await check_listings.order_by_id(flowtly) is None  # no clients to sort yet
        assert await check_listings.updated_after(flowtly) is None
        await _seed(flowtly, 3, contacts_each=1)
        assert "view.last names page" in (await check_listings.page_numbers(flowtly) or "")
        assert "desc lists [3, 2]" in (await check_listings.order_by_id(flowtly) or "")
        assert "the far future none" in (await check_listings.updated_after(flowtly) or "")


async def test_check_probes_contradicted_by_an_api_without_the_filters() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        # Ignores every filter and order; one page of everything.
        members = [
            {"@id": f"/x/{i}", "id": i, "updatedAt": "2026-01-01T00:00:00+00:00"} for i in (1, 2)
        ]
        return httpx.Response(200, json={"member": members, "totalItems": 2})

    flowtly = FlowtlyClient(
        "https://api.flowtly.test", "t", rate_limit=0, transport=httpx.MockTransport(handler)
    )
    async with flowtly:
        for probe in (
            check_listings.order_by_id,
            check_listings.updated_after,
            check_listings.page_numbers,
        ):
            try:
                await probe(flowtly)
            except check_listings.Contradiction:
                continue
            raise AssertionError(f"{probe.__name__} was not contradicted")
