"""The kit's paginator over numbered pages: fetched concurrently within a window, yielded in
page order, audited page by page; a ``next`` chain where no last page is stated."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.http import Side
from connectors.http.pagination import Page, Paginator
from sync.errors import ApiError

DEMO = Side("demo", "DemoCRM", "crm")
SIZE = 2


def _id(member: Mapping[str, Any]) -> str | None:
    value = member.get("id")
    return str(value) if value else None


def _page_of(number: int) -> int:
    return number


async def _turns(count: int) -> None:
    """Hand the event loop over ``count`` times: a later page can answer before an earlier."""
    for _ in range(count):
        await asyncio.sleep(0)


@dataclass
class Server:
    """A numbered listing of ``rows`` ids, ``SIZE`` a page; ``answer`` may rewrite a page."""

    rows: int
    answer: Callable[[int, Page[int]], Page[int]] = lambda _number, page: page
    requested: list[int] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    hold: asyncio.Event | None = None
    """When set, pages after 2 wait for it: they stay in flight."""

    @property
    def last(self) -> int:
        return max(1, -(-self.rows // SIZE))

    async def fetch(self, token: int | None) -> Page[int]:
        number = token or 1
        self.requested.append(number)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            # Later pages answer first: members must still come out in page order.
            await _turns(3 * (self.last - number))
            if self.hold is not None and number > 2:
                await self.hold.wait()
            start = (number - 1) * SIZE + 1
            members = [{"id": f"r{n}"} for n in range(start, min(start + SIZE, self.rows + 1))]
            following = number + 1 if number < self.last else None
            page = Page(members, next=following, total=self.rows, last=self.last)
            return self.answer(number, page)
        finally:
            self.in_flight -= 1

    def paginator(self, window: int = 3) -> Paginator[int]:
        return Paginator(DEMO, "/rows", self.fetch, _id, page_token=_page_of, window=window)


async def _ids(paginator: Paginator[int]) -> list[str]:
    return [str(member["id"]) async for member in paginator.members()]


async def test_pages_are_fetched_concurrently_never_beyond_the_window_and_kept_in_order() -> None:
    server = Server(rows=19)
    paginator = server.paginator(window=3)
    assert await _ids(paginator) == [f"r{n}" for n in range(1, 20)]
    assert paginator.verdict is None
    assert server.most_in_flight == 3
    assert sorted(server.requested) == list(range(1, 11))  # each page once


async def test_a_window_of_one_reads_one_page_at_a_time() -> None:
    server = Server(rows=7)
    assert len(await _ids(server.paginator(window=1))) == 7
    assert server.most_in_flight == 1
    assert server.requested == [1, 2, 3, 4]


async def test_a_total_that_changes_between_pages_makes_the_listing_incomplete() -> None:
    def grown(number: int, page: Page[int]) -> Page[int]:
        return Page(page.members, next=page.next, total=20, last=page.last) if number > 3 else page

    server = Server(rows=19, answer=grown)
    paginator = server.paginator()
    await _ids(paginator)
    verdict = paginator.verdict or ""
    assert "page 4 of /rows stated total 20 where an earlier page stated 19" in verdict
    assert "the collection changed while it was read" in verdict


async def test_a_server_that_ignores_the_page_number_repeats_ids_and_is_incomplete() -> None:
    def first_page(_number: int, page: Page[int]) -> Page[int]:
        return Page([{"id": "r1"}, {"id": "r2"}], total=8, last=4)

    server = Server(rows=8, answer=first_page)
    paginator = server.paginator()
    assert await _ids(paginator) == ["r1", "r2"] * 4
    assert "page 2 of /rows repeated 2 ids listed before (first 'r1'" in (paginator.verdict or "")


async def test_a_last_page_offering_next_is_followed_from_there() -> None:
    def one_more(number: int, page: Page[int]) -> Page[int]:
        if number == 3:  # a record created while the listing was read: page 4 appeared
            return Page(page.members, next=4, total=6, last=3)
        if number == 4:
            return Page([{"id": "r7"}], total=7, last=4)
        return Page(page.members, next=page.next, total=6, last=3)

    server = Server(rows=6, answer=one_more)
    paginator = server.paginator()
    assert await _ids(paginator) == [f"r{n}" for n in range(1, 8)]
    assert server.requested[-1] == 4
    assert "stated total 7 where an earlier page stated 6" in (paginator.verdict or "")


async def test_an_endless_next_after_the_last_page_stops_at_the_guard() -> None:
    def endless(number: int, page: Page[int]) -> Page[int]:
        return Page(page.members or [{"id": f"x{number}"}], next=number + 1, total=6, last=3)

    server = Server(rows=6, answer=endless)
    with pytest.raises(ApiError, match="/rows runs past 6 pages"):
        await _ids(server.paginator())
    assert server.requested[3:] == [4, 5, 6, 7]


async def test_a_next_back_to_a_numbered_page_is_a_loop() -> None:
    def back(number: int, page: Page[int]) -> Page[int]:
        return Page(page.members, next=2, total=page.total, last=page.last)

    with pytest.raises(ApiError, match="loops back to 2"):
        await _ids(Server(rows=6, answer=back).paginator())


async def test_a_stated_last_page_far_past_the_total_stops_at_the_guard() -> None:
    def inflated(_number: int, page: Page[int]) -> Page[int]:
        return Page(page.members or [{"id": "extra"}], next=None, total=4, last=10_000)

    server = Server(rows=4, answer=inflated)
    with pytest.raises(ApiError, match="runs past 5 pages"):
        await _ids(server.paginator(window=3))
    assert len(server.requested) <= 6 + 3  # the guard's pages plus one window ahead
    assert server.in_flight == 0  # nothing left running behind the error


async def test_without_a_last_page_the_next_chain_is_read_as_it_is_used() -> None:
    requested: list[int] = []

    async def fetch(token: int | None) -> Page[int]:
        number = token or 1
        requested.append(number)
        members = [{"id": f"r{number}"}]
        return Page(members, next=number + 1 if number < 3 else None, total=3)

    paginator = Paginator(DEMO, "/rows", fetch, _id, page_token=_page_of)
    stream = paginator.members()
    assert (await anext(stream))["id"] == "r1"
    assert requested == [1]  # page 2 not fetched until its member is asked for
    assert [m["id"] async for m in stream] == ["r2", "r3"]
    assert requested == [1, 2, 3]
    assert paginator.verdict is None


async def test_a_caller_that_stops_early_leaves_no_request_running() -> None:
    server = Server(rows=19, hold=asyncio.Event())
    stream = server.paginator(window=3).members()
    for _ in range(3):  # into page 2: pages 3 and 4 are in flight, held
        await anext(stream)
    assert server.in_flight == 2
    await stream.aclose()
    assert server.in_flight == 0
