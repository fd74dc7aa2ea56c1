"""The sandbox's ``updatedAt`` DateFilter: bounds inclusive and strict, offsets, bad values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource
from sync.sandbox._store import updated_since
from tests.clocks import SettableClock

LD = {"Content-Type": "application/ld+json"}
START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]]]:
    """Three contacts of one client, updated at 12:00:00, 12:00:10 and 12:00:20 UTC."""
    clock = SettableClock(START)
    app = create_app(SandboxSettings(clock=clock, seed=3))
    sandbox: Sandbox = app.state.sandbox
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": "Bearer t", "Accept": "application/ld+json"},
    ) as http:
        client = sandbox.insert(Resource.CLIENTS, {"name": "ACME"})
        ids: list[int] = []
        for n in range(3):
            clock.now = START + timedelta(seconds=10 * n)
            contact = sandbox.insert(
                Resource.CONTACTS,
                {
                    "client": f"/clients/{client['id']}",
                    "type": "main",
                    "email": f"c{n}@example.com",
                    "name": f"C{n}",
                },
            )
            ids.append(int(str(contact["id"])))
        yield sandbox, http, clock, ids
    sandbox.close()


async def _ids(
    http: httpx.AsyncClient, query: dict[str, str], path: str = "/client-contacts"
) -> list[object]:
    response = await http.get(path, params=query)
    assert response.status_code == 200, response.text
    doc = response.json()
    members = [m["id"] for m in doc["member"]]
    assert doc["totalItems"] == len(members)
    return members


async def test_after_is_inclusive_and_strictly_after_is_not(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    _sandbox, http, _clock, ids = setup
    assert await _ids(http, {"updatedAt[after]": "2024-05-01T12:00:10+00:00"}) == ids[1:]
    assert await _ids(http, {"updatedAt[strictly_after]": "2024-05-01T12:00:10Z"}) == ids[2:]
    assert await _ids(http, {"updatedAt[before]": "2024-05-01T12:00:10Z"}) == ids[:2]
    assert await _ids(http, {"updatedAt[strictly_before]": "2024-05-01T12:00:10Z"}) == ids[:1]
    both = {"updatedAt[after]": "2024-05-01T12:00:05Z", "updatedAt[before]": "2024-05-01T12:00:15Z"}
    assert await _ids(http, both) == ids[1:2]


async def test_offsets_and_fractions_compare_as_moments(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    _sandbox, http, _clock, ids = setup
    # 14:00:10 in Warsaw's summer time is 12:00:10 UTC.
    assert await _ids(http, {"updatedAt[after]": "2024-05-01T14:00:10+02:00"}) == ids[1:]
    # A value without an offset is in the server's zone, UTC.
    assert await _ids(http, {"updatedAt[after]": "2024-05-01T12:00:10"}) == ids[1:]
    # A fraction past a whole second leaves that second's record out.
    assert await _ids(http, {"updatedAt[after]": "2024-05-01T12:00:10.5Z"}) == ids[2:]
    assert await _ids(http, {"updatedAt[after]": "2024-05-02"}) == []


async def test_unusable_values_are_ignored_like_api_platform(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    _sandbox, http, _clock, ids = setup
    assert await _ids(http, {"updatedAt[after]": "not a date"}) == ids
    assert await _ids(http, {"updatedAt[sometime]": "2024-05-01T12:00:10Z"}) == ids
    assert await _ids(http, {"updatedAt": "2024-05-01T12:00:10Z"}) == ids
    assert await _ids(http, {"updatedAt[after][]": "2024-05-01T12:00:10Z"}) == ids
    # An unencoded '+' arrives as a space: PHP cannot parse that either.
    response = await http.get("/client-contacts?updatedAt[after]=2024-05-01T12:00:10+00:00")
    assert [m["id"] for m in response.json()["member"]] == ids


async def test_an_update_moves_a_record_into_the_window(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    _sandbox, http, clock, ids = setup
    clock.now = START + timedelta(minutes=5)
    response = await http.patch(
        f"/client-contacts/{ids[0]}",
        json={"name": "Renamed"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    assert await _ids(http, {"updatedAt[after]": "2024-05-01T12:01:00Z"}) == ids[:1]


async def test_collections_without_the_date_ignore_it(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    http = setup[1]
    assert len(await _ids(http, {"updatedAt[after]": "2099-01-01"}, "/clients")) == 1


def test_a_page_is_picked_from_the_index(
    setup: tuple[Sandbox, httpx.AsyncClient, SettableClock, list[int]],
) -> None:
    sandbox = setup[0]
    where = updated_since(Resource.CONTACTS.value, ">=", START)
    # The query plan is what is tested here: it reaches into the store's connection.
    query = f"SELECT seq, body FROM records WHERE resource = ? AND ({where.sql}) ORDER BY seq"  # noqa: S608 - the condition binds its values
    plan = sandbox.store._db.execute(
        "EXPLAIN QUERY PLAN " + query, (Resource.CONTACTS.value, *where.args)
    ).fetchall()
    steps = " | ".join(str(row[-1]) for row in plan)
    assert "records_updated" in steps, steps
    assert "(resource=?)" not in steps, steps  # no walk over every record of the resource
