"""Walking a paged listing, in the three styles vendor APIs use, under one safety rule.

A connector describes how to fetch one page (`Page`: its members, where the next one
starts, the total the API states) and `Paginator` does the rest for every style:

- **next link**: the page names the URL of the next one (Hydra ``view.next``);
- **cursor**: the page carries an opaque token for the next one (HubSpot ``paging.next.after``,
  Pipedrive v2 ``additional_data.next_cursor``, Salesforce ``nextRecordsUrl``);
- **offset**: the next page starts where this one ended (Pipedrive v1 ``start``);
- **numbered pages**: the first page states the number of the last one (Hydra ``view.last``)
  and the connector can name page N (``page_token``): pages 2..last are fetched
  concurrently, a bounded window of them in flight, and their members still come out in
  page order. A last page that still offers a ``next`` is followed from there as a chain.

Every page and every member's id goes through a `connectors.listing.ListingAudit`, so a
listing is *complete* (may infer deletes) only when every page parsed, every member had
an id, none repeated and the stated total was met; the `verdict` says why not otherwise.
A token or offset that repeats (a loop) or a listing running past its stated total is an
error: reading on would never end. Pages read concurrently are still audited one after
another in page order, so a stated total that changes between them (the collection
changed while it was read) makes the listing incomplete, as does a server that ignores the
page number (every id repeats).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from connectors.http.statuses import Side
from connectors.listing import ListingAudit

__all__ = ["DEFAULT_WINDOW", "Page", "Paginator", "next_offset"]

DEFAULT_WINDOW: Final = 4
"""Numbered pages in flight at once unless the connector says otherwise; the HTTP client's
own concurrency and rate limits still apply beneath it."""

Token = TypeVar("Token", bound=str | int)
"""Where a page starts: a next link or cursor (str) or an offset (int)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[Token]):
    """One page of a listing as a connector read it.

    ``next`` is where the following page starts (None on the last page); ``total`` the size
    of the whole listing when the API states one; ``last`` the number of its last page
    (pages counted from 1) when the API states it; ``broken`` says why the answer is not a
    listing page although it parsed (``{}``, no members key): its members cannot be trusted.
    """

    members: Sequence[Mapping[str, Any]]
    next: Token | None = None
    total: int | None = None
    broken: str | None = None
    last: int | None = None


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

    ``fetch(token)`` returns the page starting at ``token``; the first call gets ``first``
    (None unless the connector names its first page, which then also counts as read for
    loop detection). ``id_of`` finds a member's id (None when it has none: the member is
    still yielded, but the listing is no longer complete); without ``id_of`` the caller
    tells ``audit`` the ids itself. After the members are consumed, `verdict` is None for
    a complete listing, else the reason.

    With ``page_token`` (the token of page N) and a first page stating `Page.last`, pages
    2..last are fetched concurrently, at most ``window`` of them in flight.
    """

    def __init__(
        self,
        side: Side,
        listing: str,
        fetch: Callable[[Token | None], Awaitable[Page[Token]]],
        id_of: Callable[[Mapping[str, Any]], str | None] | None,
        *,
        total_name: str = "total",
        audit: ListingAudit | None = None,
        first: Token | None = None,
        page_token: Callable[[int], Token] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._side = side
        self._listing = listing
        self._fetch = fetch
        self._id_of = id_of
        self._first = first
        self._page_token = page_token
        self._window = window
        self.audit = audit if audit is not None else ListingAudit(listing, total_name=total_name)

    async def members(self) -> AsyncIterator[Mapping[str, Any]]:
        """Every member of every page, in the API's order."""
        seen: set[Token] = set() if self._first is None else {self._first}
        ahead = _Ahead(self._fetch, self._window)
        try:
            page = await self._fetch(self._first)
            numbered = None
            if self._page_token is not None and page.last is not None and page.broken is None:
                numbered = self._tokens(self._page_token, page.last, seen)
            while True:
                self._audit_page(page)
                for position, member in enumerate(page.members):
                    if self._id_of is not None:
                        self.audit.member(self._id_of(member), f"member {position + 1}")
                    yield member
                if numbered is not None:
                    # Only once the first page is used up: a caller that wanted one member
                    # costs one request.
                    ahead.start(numbered)
                    numbered = None
                following = await ahead.next_page()
                if following is not None:
                    page = following
                    continue
                if page.next is None:
                    return
                if page.next in seen:
                    raise self._side.protocol_error(
                        f"{self._listing}: pagination loops back to {page.next!r}, "
                        "a page already read",
                        side=self._side.name,
                    )
                seen.add(page.next)
                page = await self._fetch(page.next)
        finally:
            # A reader that stops early (an overrun, an error, a consumer gone) leaves no
            # request running behind it.
            await ahead.close()

    @property
    def verdict(self) -> str | None:
        """None when the listing read was complete, else why it was not."""
        return self.audit.verdict()

    # -- internals ---------------------------------------------------------------------

    def _audit_page(self, page: Page[Token]) -> None:
        if page.broken is not None:
            self.audit.broken(page.broken)
        else:
            self.audit.page(len(page.members), total=page.total)
        overrun = self.audit.overrun()
        if overrun is not None:
            raise self._side.protocol_error(
                f"{self._listing}: {overrun}; stopped reading it", side=self._side.name
            )

    @staticmethod
    def _tokens(page_token: Callable[[int], Token], last: int, seen: set[Token]) -> Iterator[Token]:
        """Tokens of pages 2..``last``, each marked read as it is handed out (lazily: a
        stated ``last`` far beyond the total is stopped by the overrun check)."""
        seen.add(page_token(1))
        for number in range(2, last + 1):
            token = page_token(number)
            seen.add(token)
            yield token


class _Ahead(Generic[Token]):
    """Numbered pages fetched ahead of the reader, at most ``window`` in flight, handed
    out in page order however they answer."""

    def __init__(
        self, fetch: Callable[[Token | None], Awaitable[Page[Token]]], window: int
    ) -> None:
        self._fetch = fetch
        self._window = window
        self._tokens: Iterator[Token] = iter(())
        self._in_flight: deque[asyncio.Future[Page[Token]]] = deque()

    def start(self, tokens: Iterator[Token]) -> None:
        self._tokens = tokens
        for token in tokens:
            self._in_flight.append(asyncio.ensure_future(self._fetch(token)))
            if len(self._in_flight) == self._window:
                break

    async def next_page(self) -> Page[Token] | None:
        """The next numbered page, or None after the last."""
        if not self._in_flight:
            return None
        page = await self._in_flight.popleft()
        following = next(self._tokens, None)
        if following is not None:
            self._in_flight.append(asyncio.ensure_future(self._fetch(following)))
        return page

    async def close(self) -> None:
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight.clear()
