"""FlowtlyClient.iterate over hostile collections (httpx.MockTransport): what it tells a
ListingAudit page by page, and a ``next`` chain that never ends."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from connectors.listing import SLACK_PAGES, ListingAudit
from sync.errors import FlowtlyError
from sync.flowtly.client import FlowtlyClient

Answer = Callable[[int], httpx.Response]


def _ld(body: object) -> httpx.Response:
    return httpx.Response(
        200, content=json.dumps(body).encode(), headers={"Content-Type": "application/ld+json"}
    )


def _page(
    ids: list[int], page: int, last: int, total: int | None, *, hydra: bool = False
) -> object:
    prefix = "hydra:" if hydra else ""
    body: dict[str, object] = {
        "@id": "/clients",
        f"{prefix}member": [{"@id": f"/clients/{i}", "id": i} for i in ids],
    }
    if total is not None:
        body[f"{prefix}totalItems"] = total
    if page < last:
        body[f"{prefix}view"] = {f"{prefix}next": f"/clients?page={page + 1}"}
    return body


def _client(answer: Answer, requests: list[int]) -> FlowtlyClient:
    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params.get("page", "1"))
        requests.append(number)
        return answer(number)

    return FlowtlyClient(
        "https://api.flowtly.test", "t", rate_limit=0, transport=httpx.MockTransport(handler)
    )


async def _audited(answer: Answer) -> tuple[list[object], ListingAudit, list[int]]:
    requests: list[int] = []
    audit = ListingAudit("/clients", total_name="totalItems")
    async with _client(answer, requests) as client:
        ids: list[object] = []
        async for member in client.iterate("/clients", audit=audit):
            ids.append(member["id"])
            audit.member(str(member["id"]))
    return ids, audit, requests


@pytest.mark.parametrize("hydra", [False, True], ids=["unprefixed", "hydra-prefixed"])
async def test_a_whole_listing_with_its_total_is_complete(hydra: bool) -> None:
    pages = {1: [1, 2], 2: [3, 4], 3: [5]}
    ids, audit, _ = await _audited(lambda n: _ld(_page(pages[n], n, 3, 5, hydra=hydra)))
    assert ids == [1, 2, 3, 4, 5]
    assert audit.verdict() is None


@pytest.mark.parametrize("hydra", [False, True], ids=["unprefixed", "hydra-prefixed"])
async def test_a_total_the_pages_do_not_add_up_to_is_incomplete(hydra: bool) -> None:
    pages = {1: [1, 2], 2: [3]}
    _, audit, _ = await _audited(lambda n: _ld(_page(pages[n], n, 2, 4, hydra=hydra)))
    assert audit.verdict() == "/clients stated totalItems 4 but its pages held 3 members"


def _broken_last(last: httpx.Response) -> Answer:
    def answer(number: int) -> httpx.Response:
        return last if number == 3 else _ld(_page([2 * number - 1, 2 * number], number, 3, 6))

    return answer


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (_ld({}), "page 3 of /clients answered {} instead of a collection"),
        (httpx.Response(200), "page 3 of /clients answered HTTP 200 with an empty body"),
        (_ld({"@id": "/clients", "totalItems": 6}), "page 3 of /clients had no members"),
    ],
    ids=["empty-object", "empty-body", "no-member-key"],
)
async def test_a_last_page_that_is_no_collection_is_not_an_empty_page(
    last: httpx.Response, reason: str
) -> None:
    ids, audit, requests = await _audited(_broken_last(last))
    assert ids == [1, 2, 3, 4]
    assert requests == [1, 2, 3]
    assert audit.verdict() == reason


async def test_an_endless_next_chain_stops_soon_after_the_total_is_exceeded() -> None:
    # Every page links to one more, repeating the same two members: 2,500 requests before.
    requests: list[int] = []
    allowed = 3 + SLACK_PAGES  # totalItems 6 at 2 a page
    async with _client(lambda n: _ld(_page([1, 2], n, n + 1, 6)), requests) as client:
        with pytest.raises(FlowtlyError, match=r"/clients runs past 6 pages \(totalItems 6"):
            _ = [member async for member in client.iterate("/clients")]
    assert requests == list(range(1, allowed + 2))


async def test_a_total_that_is_not_a_count_is_an_error() -> None:
    requests: list[int] = []
    body = {"member": [{"id": 1}], "totalItems": "many"}
    async with _client(lambda _: _ld(body), requests) as client:
        with pytest.raises(FlowtlyError, match="totalItems is not a count"):
            _ = [member async for member in client.iterate("/clients")]
