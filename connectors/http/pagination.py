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
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from connectors.http.statuses import Side
from connectors.listing import ListingAudit

__all__ = ["Page", "Paginator", "next_offset"]

Token = TypeVar("Token", bound=str | int)
"""Where a page starts: a next link or cursor (str) or an offset (int)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[Token]):
    """One page of a listing as a connector read it.

    ``next`` is where the following page starts (None on the last page); ``total`` the size
    of the whole listing when the API states one; ``broken`` says why the answer is not a
    listing page although it parsed (``{}``, no members key): its members cannot be trusted.
    """

    members: Sequence[Mapping[str, Any]]
    next: Token | None = None
    total: int | None = None
    broken: str | None = None


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
    """

    def __init__(
        self,
        side: Side,
        listing: str,
        fetch: Callable[[Token | None], Awaitable[Page[Token]]],
        id_of: Callable[[Mapping[str, Any]], str | None],
        *,
        total_name: str = "total",
    ) -> None:
        self._side = side
        self._listing = listing
        self._fetch = fetch
        self._id_of = id_of
        self.audit = ListingAudit(listing, total_name=total_name)

    async def members(self) -> AsyncIterator[Mapping[str, Any]]:
        """Every member of every page, in the API's order."""
        seen: set[Token] = set()
        token: Token | None = None
        while True:
            page = await self._fetch(token)
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
                yield member
            if page.next is None:
                return
            if page.next in seen:
                raise self._side.protocol_error(
                    f"{self._listing}: pagination loops back to {page.next!r}, a page already read",
                    side=self._side.name,
                )
            seen.add(page.next)
            token = page.next

    @property
    def verdict(self) -> str | None:
        """None when the listing read was complete, else why it was not."""
        return self.audit.verdict()
