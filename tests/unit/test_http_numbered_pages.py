"""The kit's listings by page number: pages fetched concurrently within a window, yielded
in page order, audited like any listing, cancelled when the reader stops."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from connectors.http import Page, Paginator, Side, last_page_of, numbered_pages
from sync.errors import ApiError

SIDE = Side("test", "Test", "test", protocol_error=ApiError)


class Pages:
    """A listing of ``total`` members, ``size`` a page, that records how many pages are in
    flight at once; ``totals`` overrides the total a page states."""

    def __init__(self, total: int, size: int, totals: Mapping[int, int] | None = None) -> None:
        self.total, self.size, self.totals = total, size, dict(totals or {})
        self.in_flight = 0
        self.most_in_flight = 0
        self.asked: list[int] = []

    async def fetch(self, number: int) -> Page[Any]:
        self.asked.append(number)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        # Later pages answer sooner, so an order kept is the reader's doing, not luck.
        for _ in range(10 - number % 10):
            await asyncio.sleep(0)
        self.in_flight -= 1
        start = (number - 1) * self.size
        ids = range(start + 1, min(start + self.size, self.total) + 1)
        last = last_page_of(self.total, self.size)
        return Page([{"id": i} for i in ids], total=self.totals.get(number, self.total), last=last)

    async def first(self, token: str | None) -> Page[str]:
        assert token is None
        page = await self.fetch(1)
        return Page(page.members, next="2", total=page.total, last=page.last)


def _id(member: Mapping[str, Any]) -> str | None:
    return str(member["id"])


def test_last_page_of() -> None:
    assert last_page_of(61, 30) == 3
    assert last_page_of(60, 30) == 2
    assert last_page_of(0, 30) == 1
    assert last_page_of(None, 30) is None


async def test_pages_come_in_order_with_at_most_a_window_in_flight() -> None:
    pages = Pages(total=95, size=10)
    seen = [
        member["id"]
        async for page in numbered_pages(pages.fetch, 1, 10, 3)
        for member in page.members
    ]
    assert seen == list(range(1, 96))
    assert 1 < pages.most_in_flight <= 3


async def test_a_reader_that_stops_early_leaves_no_page_in_flight() -> None:
    pages = Pages(total=1000, size=10)
    stream = numbered_pages(pages.fetch, 1, 100, 4)
    first = await anext(stream)
    await stream.aclose()
    assert first.members[0]["id"] == 1
    assert len(pages.asked) <= 5
    assert pages.in_flight == 0


async def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        await anext(numbered_pages(Pages(1, 1).fetch, 1, 1, 0))


async def test_paginator_reads_the_rest_by_number_when_the_first_page_names_the_last() -> None:
    pages = Pages(total=45, size=10)
    listing = Paginator(SIDE, "/things", pages.first, _id, fetch_number=pages.fetch, window=2)
    ids = [member["id"] async for member in listing.members()]
    assert ids == list(range(1, 46))
    assert sorted(pages.asked) == [1, 2, 3, 4, 5]
    assert listing.verdict is None


async def test_paginator_without_a_last_page_follows_next() -> None:
    async def fetch(token: str | None) -> Page[str]:
        number = int(token or "1")
        return Page([{"id": number}], next=str(number + 1) if number < 3 else None)

    async def never(number: int) -> Page[Any]:
        raise AssertionError("no page number was given")

    listing = Paginator(SIDE, "/things", fetch, _id, fetch_number=never, window=4)
    assert [member["id"] async for member in listing.members()] == [1, 2, 3]
    assert listing.verdict is None


async def test_a_listing_whose_total_changes_while_read_is_incomplete() -> None:
    pages = Pages(total=45, size=10, totals={4: 44})
    listing = Paginator(SIDE, "/things", pages.first, _id, fetch_number=pages.fetch, window=3)
    _ = [member async for member in listing.members()]
    assert "the collection changed while it was read" in (listing.verdict or "")
