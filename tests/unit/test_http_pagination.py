"""The kit's paginator: next-link, cursor and offset listings under the listing rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from connectors.http import Side
from connectors.http.pagination import Page, Paginator, next_offset
from sync.errors import ApiError

DEMO = Side("demo", "DemoCRM", "crm")
ROWS = [{"id": str(n), "name": f"Co {n}"} for n in range(1, 8)]


def _id(member: Mapping[str, Any]) -> str | None:
    value = member.get("id")
    return str(value) if value else None


async def _all(paginator: Paginator[Any]) -> list[Mapping[str, Any]]:
    return [member async for member in paginator.members()]


async def test_cursor_listing_is_complete_when_the_total_is_met() -> None:
    async def fetch(cursor: str | None) -> Page[str]:
        start = int(cursor or 0)
        chunk = ROWS[start : start + 3]
        more = start + 3 < len(ROWS)
        return Page(chunk, next=str(start + 3) if more else None, total=len(ROWS))

    paginator: Paginator[str] = Paginator(DEMO, "/companies", fetch, _id)
    assert [m["id"] for m in await _all(paginator)] == [r["id"] for r in ROWS]
    assert paginator.verdict is None


async def test_offset_listing_with_a_repeated_id_is_incomplete() -> None:
    pages = {0: ROWS[:3], 3: [ROWS[2], *ROWS[3:5]], 6: ROWS[5:]}

    async def fetch(offset: int | None) -> Page[int]:
        start = offset or 0
        chunk = pages[start]
        return Page(chunk, next=next_offset(start, chunk, 3, more=start < 6))

    paginator: Paginator[int] = Paginator(DEMO, "/persons", fetch, _id)
    await _all(paginator)
    assert paginator.verdict is not None
    assert "repeated 1 id listed before (first '3'" in paginator.verdict


async def test_members_without_id_and_a_broken_page_make_it_incomplete() -> None:
    answers: Sequence[Page[str]] = [
        Page([ROWS[0], {"name": "no id"}], next="/p2"),
        Page([], broken="answered {} instead of a collection"),
    ]

    async def fetch(link: str | None) -> Page[str]:
        return answers[0 if link is None else 1]

    paginator: Paginator[str] = Paginator(DEMO, "/orgs", fetch, _id)
    assert len(await _all(paginator)) == 2  # still yielded: updates may use them
    verdict = paginator.verdict or ""
    assert "page 1 of /orgs had 1 member without an id" in verdict
    assert "page 2 of /orgs answered {}" in verdict


async def test_a_loop_and_an_endless_listing_are_errors() -> None:
    async def looping(link: str | None) -> Page[str]:
        return Page([ROWS[0]] if link is None else [ROWS[1]], next="/same")

    with pytest.raises(ApiError, match="loops back"):
        await _all(Paginator(DEMO, "/loop", looping, _id))

    calls = 0

    async def endless(cursor: str | None) -> Page[str]:
        nonlocal calls
        calls += 1
        return Page([{"id": f"n{calls}"}], next=f"c{calls}", total=2)

    with pytest.raises(ApiError, match="runs past"):
        await _all(Paginator(DEMO, "/endless", endless, _id))
    assert calls < 10


def test_next_offset() -> None:
    assert next_offset(0, [1, 2, 3], 3, None) == 3
    assert next_offset(3, [1, 2], 3, None) is None
    assert next_offset(3, [1, 2, 3], 3, False) is None
    assert next_offset(3, [1], 3, True) == 4
    assert next_offset(3, [], 3, True) is None
