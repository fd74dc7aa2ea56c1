"""When a listing can be trusted to say what is *not* there.

A record missing from a complete listing is taken as deleted on that side, so a listing
that silently lost records would delete their twins on the other side. `ListingAudit`
decides, the same way for every connector, whether a listing is complete: every page was
read as a collection, every member has an id, no id repeats, and the number of members
equals the total the source stated (when it states one). Anything else yields a reason,
which the connector puts on its last `ChangeBatch` (``incomplete``) so the engine infers
no deletes from that listing.

The connector feeds the audit as it reads: `ListingAudit.page` (or `ListingAudit.broken`)
for each page, then `ListingAudit.member` for each of the page's members, in order. A
source without pages (a file) only calls `ListingAudit.member`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["SLACK_PAGES", "ListingAudit"]

SLACK_PAGES: Final = 3
"""Pages a listing may run past what its stated total allows (records created while it is
read) before it counts as runaway (`ListingAudit.overrun`)."""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


@dataclass(slots=True)
class _PageTally:
    """Id problems of the page being read, turned into one reason when it ends."""

    place: str
    missing: int = 0
    missing_at: str | None = None
    repeated: int = 0
    first_repeat: str | None = None
    repeat_at: str | None = None


class ListingAudit:
    """Whether one listing is complete, and if not, why (see the module docstring).

    ``listing`` names what is listed in messages (``/clients``, ``contacts.csv``); ``noun``
    is what it holds (``member``, ``row``); ``total_name`` is how the source calls its
    stated total (``totalItems``).
    """

    def __init__(self, listing: str, *, noun: str = "member", total_name: str = "total") -> None:
        self.listing = listing
        self._noun = noun
        self._total_name = total_name
        self._ids: set[str] = set()
        self._problems: list[str] = []
        self._pages = 0
        self._members = 0
        self._first_page_size: int | None = None
        self._total: int | None = None
        self._largest_total = 0
        self._tally = _PageTally(listing)

    @property
    def pages(self) -> int:
        """Pages read so far (broken ones included)."""
        return self._pages

    def page(self, members: int, *, total: int | None = None) -> None:
        """The next page arrived with ``members`` members, stating ``total`` for the whole
        listing (None when the source states none)."""
        self._next_page()
        self._members += members
        if self._first_page_size is None:
            self._first_page_size = members
        if total is None:
            return
        self._largest_total = max(self._largest_total, total)
        if self._total is None:
            self._total = total
        elif total != self._total:
            # Offset paging over a collection that changed meanwhile skips or repeats
            # records; which ones cannot be told from here.
            self._problems.append(
                f"{self._tally.place} stated {self._total_name} {total} where an earlier "
                f"page stated {self._total} (the collection changed while it was read)"
            )
            self._total = total

    def broken(self, reason: str) -> None:
        """The next page arrived but is not a collection page (``reason`` says what it was)."""
        self._next_page()
        self._problems.append(f"{self._tally.place} {reason}")

    def __contains__(self, record_id: object) -> bool:
        """Whether a member counted so far had ``record_id``: a reader that rejects a
        repeated id asks here rather than keep a second set of every id."""
        return record_id in self._ids

    def member(self, record_id: str | None, where: str | None = None) -> bool:
        """Count one member; True when its id is usable (present and not listed before).

        ``where`` locates the member for messages (``line 7``).
        """
        tally = self._tally
        if not record_id:
            tally.missing += 1
            tally.missing_at = tally.missing_at or where
            return False
        if record_id in self._ids:
            tally.repeated += 1
            if tally.first_repeat is None:
                tally.first_repeat, tally.repeat_at = record_id, where
            return False
        self._ids.add(record_id)
        return True

    def overrun(self, slack: int = SLACK_PAGES) -> str | None:
        """Why reading on would be pointless: more pages than the stated total allows.

        A source whose ``next`` links never end would otherwise be read forever. None
        while within bounds, or when no total was stated.
        """
        if self._total is None or self._first_page_size is None:
            return None
        size = self._first_page_size
        expected = math.ceil(self._largest_total / size) if size else 1
        allowed = max(expected, 1) + slack
        if self._pages <= allowed:
            return None
        return (
            f"{self.listing} runs past {_count(allowed, 'page')} ({self._total_name} "
            f"{self._largest_total}, {_count(size, self._noun)} a page, {slack} pages of slack)"
        )

    def verdict(self) -> str | None:
        """None when the listing is complete, else why it is not (all reasons, joined)."""
        self._close_page()
        problems = list(self._problems)
        if self._total is not None and self._members != self._total and not problems:
            problems.append(
                f"{self.listing} stated {self._total_name} {self._total} but its pages held "
                f"{_count(self._members, self._noun)}"
            )
        return "; ".join(problems) or None

    # -- internals ---------------------------------------------------------------------

    def _next_page(self) -> None:
        self._close_page()
        self._pages += 1
        self._tally = _PageTally(f"page {self._pages} of {self.listing}")

    def _close_page(self) -> None:
        tally = self._tally
        if tally.missing:
            at = f" (first at {tally.missing_at})" if tally.missing_at else ""
            self._problems.append(
                f"{tally.place} had {_count(tally.missing, self._noun)} without an id{at}"
            )
        if tally.repeated:
            at = f" at {tally.repeat_at}" if tally.repeat_at else ""
            self._problems.append(
                f"{tally.place} repeated {_count(tally.repeated, 'id')} listed before "
                f"(first {tally.first_repeat!r}{at})"
            )
        self._tally = _PageTally(tally.place)
