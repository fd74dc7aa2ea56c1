"""Walking a paged listing, in the three styles vendor APIs use, under one safety rule.

A connector describes how to fetch one page (`Page`: its members, where the next one
starts, the total the API states) and `Paginator` does the rest for every style:

- **next link**: the page names the URL of the next one (Hydra ``view.next``);
- **cursor**: the page carries an opaque token for the next one (HubSpot ``paging.next.after``,
  Pipedrive v2 ``additional_data.next_cursor``, Salesforce ``nextRecordsUrl``);
- **offset**: the next page starts where this one ended (Pipedrive v1 ``start``).

Every page and every member's id goes through a `connectors.listing.ListingAudit`, so a
listing is *complete* (may infer deletes) only when every page parsed, every member had
an id, none repeated and the stated total was met; the `verdict` says why not otherwise.
A token or offset that repeats (a loop) or a listing running past its stated total is an
error: reading on would never end.

Where pages are **numbered** and the first one says how many there are (Hydra
``view.last``, or a stated total and a page size), the rest need not wait for each other:
given ``fetch_number``, `Paginator` fetches them concurrently through `numbered_pages`, a
bounded window at a time (the client's own bound on requests in flight still applies), and
yields them in page order. A listing that changes meanwhile states another total on a
later page, which the audit takes as incomplete.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from connectors.http.statuses import Side
from connectors.listing import ListingAudit

__all__ = ["Page", "Paginator", "last_page_of", "next_offset", "numbered_pages"]

Token = TypeVar("Token", bound=str | int)
"""Where a page starts: a next link or cursor (str) or an offset (int)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[Token]):
    """One page of a listing as a connector read it.

    ``next`` is where the following page starts (None on the last page); ``total`` the size
    of the whole listing when the API states one; ``broken`` says why the answer is not a
    listing page although it parsed (``{}``, no members key): its members cannot be trusted.
    ``last`` is the number of the last page (1-based) when the API says how many pages the
    listing has: the rest can then be fetched by number, concurrently.
    """

    members: Sequence[Mapping[str, Any]]
    next: Token | None = None
    total: int | None = None
    broken: str | None = None
    last: int | None = None


def last_page_of(total: int | None, page_size: int) -> int | None:
    """How many pages ``total`` members make at ``page_size`` a page (None without a total)."""
    if total is None or page_size <= 0:
        return None
    return max(1, -(-total // page_size))


async def numbered_pages(
    fetch: Callable[[int], Awaitable[Page[Any]]], first: int, last: int, window: int
) -> AsyncGenerator[Page[Any], None]:
    """Pages ``first`` to ``last`` fetched concurrently, yielded in page order.

    At most ``window`` pages are asked for or waiting to be consumed at a time, so memory
    stays bounded whatever the listing's size; a page is asked for only when an earlier
    one has been taken. Pages still in flight are cancelled when the consumer stops early
    or a fetch fails.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    numbers = iter(range(first, last + 1))
    pending: deque[asyncio.Task[Page[Any]]] = deque()

    def ask_next() -> None:
        number = next(numbers, None)
        if number is not None:
            pending.append(asyncio.ensure_future(fetch(number)))

    try:
        for _ in range(window):
            ask_next()
        while pending:
            page = await pending.popleft()
            ask_next()
            yield page
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def next_offset(start: int, page: Sequence[object], limit: int, more: bool | None) -> int | None:
    """The offset of the page after one that began at ``start``, or None after the last.

    ``more`` is the API's own "more items" flag when it gives one; otherwise a short page
    is the last.
    """
    if more is False or not page:
        return None
    if more is None and len(page) < limit:
        return None
    return start + len(page)


class Paginator(Generic[Token]):
    """Reads every page of one listing through ``fetch`` and yields its members.

    ``fetch(token)`` returns the page starting at ``token`` (None: the first page).
    ``id_of`` finds a member's id (None when it has none: the member is still yielded,
    but the listing is no longer complete). After the members are consumed, `verdict`
    is None for a complete listing, else the reason.

    ``fetch_number(n)`` (optional) returns page ``n`` (1-based) of the same listing: when
    the first page states its ``last``, pages 2 to ``last`` are fetched through it,
    ``window`` at a time, instead of following ``next`` one after another.
    """

    def __init__(
        self,
        side: Side,
        listing: str,
        fetch: Callable[[Token | None], Awaitable[Page[Token]]],
        id_of: Callable[[Mapping[str, Any]], str | None],
        *,
        total_name: str = "total",
        fetch_number: Callable[[int], Awaitable[Page[Any]]] | None = None,
        window: int = 1,
    ) -> None:
        self._side = side
        self._listing = listing
        self._fetch = fetch
        self._id_of = id_of
        self._fetch_number = fetch_number
        self._window = window
        self.audit = ListingAudit(listing, total_name=total_name)

    async def members(self) -> AsyncIterator[Mapping[str, Any]]:
        """Every member of every page, in the API's order."""
        seen: set[Token] = set()
        token: Token | None = None
        first = True
        while True:
            page = await self._fetch(token)
            for member in self._take(page):
                yield member
            if first and self._fetch_number is not None and page.last is not None:
                async for numbered in numbered_pages(
                    self._fetch_number, 2, page.last, self._window
                ):
                    for member in self._take(numbered):
                        yield member
                return
            first = False
            if page.next is None:
                return
            if page.next in seen:
                raise self._side.protocol_error(
                    f"{self._listing}: pagination loops back to {page.next!r}, a page already read",
                    side=self._side.name,
                )
            seen.add(page.next)
            token = page.next

    def _take(self, page: Page[Any]) -> list[Mapping[str, Any]]:
        """Audit ``page`` and its members' ids; its members, to be yielded."""
        if page.broken is not None:
            self.audit.broken(page.broken)
        else:
            self.audit.page(len(page.members), total=page.total)
        overrun = self.audit.overrun()
        if overrun is not None:
            raise self._side.protocol_error(
                f"{self._listing}: {overrun}; stopped reading it", side=self._side.name
            )
        for position, member in enumerate(page.members):
            self.audit.member(self._id_of(member), f"member {position + 1}")
        return list(page.members)

    @property
    def verdict(self) -> str | None:
        """None when the listing read was complete, else why it was not."""
        return self.audit.verdict()
