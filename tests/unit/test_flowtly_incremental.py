"""FlowtlySide reading contacts and notes from a cursor (``[flowtly] incremental``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.base import Capability, ChangeBatch, Cursor
from sync.config import FlowtlyConfig
from sync.engine.detect import read_side
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Side
from sync.sandbox import SandboxSettings, create_app
from tests.clocks import SettableClock

CLIENT = EntityKind.CLIENT
CONTACT = EntityKind.CONTACT
NOTE = EntityKind.NOTE
COUNTERPARTY = EntityKind.COUNTERPARTY
# Flowtly's clock, years from ours: a cursor taken from the local clock would show.
START = datetime(2021, 3, 1, 8, 0, 0, tzinfo=UTC)
OVERLAP = timedelta(minutes=5)


class _Queries(httpx.AsyncBaseTransport):
    """Passes requests on and remembers each GET's path and decoded query."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.gets: list[tuple[str, dict[str, list[str]]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.gets.append((request.url.path, parse_qs(request.url.query.decode("ascii"))))
        return await self.inner.handle_async_request(request)


@dataclass
class Env:
    side: FlowtlySide
    clock: SettableClock
    transport: _Queries
    company: str


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = SettableClock(START)
    app = create_app(SandboxSettings(clock=clock, seed=5))
    transport = _Queries(httpx.ASGITransport(app=app))
    client = FlowtlyClient("http://sandbox", "t", rate_limit=0, transport=transport)
    async with client:
        side = FlowtlySide(client, Defaults(currency="PLN"), incremental_overlap=OVERLAP)
        company = await side.create(CLIENT, {"name": "ACME", "country": "PL"})
        yield Env(side, clock, transport, company.id)
    app.state.sandbox.close()


async def _read(side: FlowtlySide, entity: EntityKind, since: Cursor | None) -> list[ChangeBatch]:
    return [batch async for batch in side.read(entity, since)]


def _ids(batches: list[ChangeBatch]) -> list[str]:
    return [record.id for batch in batches for record in batch.records]


def _cursor(batches: list[ChangeBatch]) -> Cursor | None:
    assert all(batch.cursor is None for batch in batches[:-1]), "the last batch has the cursor"
    return batches[-1].cursor


async def _contacts(env: Env, count: int) -> list[str]:
    ids = []
    for n in range(count):
        env.clock.now += timedelta(minutes=10)
        created = await env.side.create(
            CONTACT, {"company_id": env.company, "name": f"C{n}", "email": f"c{n}@acme.example"}
        )
        ids.append(created.id)
    return ids


def test_only_collections_with_updated_at_are_incremental(env: Env) -> None:
    for entity in (CONTACT, NOTE):
        assert Capability.INCREMENTAL in env.side.capabilities_for(entity)
    for entity in (CLIENT, COUNTERPARTY):
        assert Capability.INCREMENTAL not in env.side.capabilities_for(entity)
    assert Capability.INCREMENTAL not in FlowtlySide.capabilities


def test_off_by_default_and_on_through_the_settings(env: Env) -> None:
    client = env.side._client  # the same client, other settings
    off = FlowtlySide.over(client, FlowtlyConfig())
    on = FlowtlySide.over(client, FlowtlyConfig(incremental=True, incremental_overlap="2m"))
    assert all(Capability.INCREMENTAL not in off.capabilities_for(e) for e in EntityKind)
    assert Capability.INCREMENTAL in on.capabilities_for(CONTACT)
    assert FlowtlyConfig(incremental_overlap="2m").incremental_overlap_delta == timedelta(minutes=2)


async def test_a_complete_listing_gives_a_cursor_of_flowtly_time(env: Env) -> None:
    ids = await _contacts(env, 3)
    batches = await _read(env.side, CONTACT, None)
    assert _ids(batches) == ids
    assert _cursor(batches) == Cursor(START + timedelta(minutes=30))
    path, query = env.transport.gets[-1]
    assert path == "/client-contacts"
    assert not any(key.startswith("updatedAt") for key in query)


async def test_an_incremental_read_lists_only_what_changed(env: Env) -> None:
    ids = await _contacts(env, 4)
    start = _cursor(await _read(env.side, CONTACT, None))
    assert start is not None
    assert start.timestamp is not None
    env.clock.now += timedelta(hours=1)
    await env.side.update(CONTACT, ids[1], {"name": "Changed"})
    batches = await _read(env.side, CONTACT, start)
    # The contact stamped at the cursor is read again (inclusive, and within the overlap).
    assert _ids(batches) == [ids[1], ids[3]]
    assert [r.get("name") for b in batches for r in b.records] == ["Changed", "C3"]
    assert _cursor(batches) == Cursor(env.clock.now)
    _path, query = env.transport.gets[-1]
    assert query["updatedAt[after]"] == [(start.timestamp - OVERLAP).isoformat()]


async def test_the_overlap_rereads_late_stamps_and_the_cursor_never_goes_back(env: Env) -> None:
    [early, late] = await _contacts(env, 2)
    start = _cursor(await _read(env.side, CONTACT, None))
    assert start is not None
    assert start.timestamp is not None
    # The later contact is stamped within the overlap before the cursor: read again.
    batches = await _read(env.side, CONTACT, Cursor(start.timestamp + timedelta(minutes=3)))
    assert _ids(batches) == [late]
    assert _cursor(batches) == Cursor(start.timestamp + timedelta(minutes=3))
    assert early not in _ids(batches)


async def test_nothing_changed_keeps_the_cursor(env: Env) -> None:
    await _contacts(env, 2)
    start = _cursor(await _read(env.side, CONTACT, None))
    assert start is not None
    assert start.timestamp is not None
    later = Cursor(start.timestamp + timedelta(hours=2))
    batches = await _read(env.side, CONTACT, later)
    assert _ids(batches) == []
    assert _cursor(batches) == later


async def test_a_cursor_in_another_zone_is_sent_in_utc(env: Env) -> None:
    await _contacts(env, 1)
    warsaw = timezone(timedelta(hours=2))
    since = Cursor(datetime(2021, 3, 1, 12, 30, 15, 250_000, tzinfo=warsaw))
    await _read(env.side, CONTACT, since)
    _path, query = env.transport.gets[-1]
    # 12:30:15.25+02:00 less 5 minutes, in UTC, rounded down to the second.
    assert query["updatedAt[after]"] == ["2021-03-01T10:25:15+00:00"]


async def test_an_incremental_read_never_infers_deletes(env: Env) -> None:
    ids = await _contacts(env, 3)
    start = _cursor(await _read(env.side, CONTACT, None))
    await env.side.delete(CONTACT, ids[0])
    stored = dict.fromkeys(ids, "fingerprint")
    names = frozenset({"name"})
    increment = await read_side(env.side, Side.FLOWTLY, CONTACT, names, stored, since=start)
    assert increment.deleted == set()
    assert not increment.complete
    complete = await read_side(env.side, Side.FLOWTLY, CONTACT, names, stored)
    assert complete.deleted == {ids[0]}


async def test_clients_are_listed_whole_even_with_a_cursor(env: Env) -> None:
    batches = await _read(env.side, CLIENT, Cursor(START + timedelta(days=1)))
    assert _ids(batches) == [env.company]
    assert batches[-1].cursor is None
    _path, query = env.transport.gets[-1]
    assert not any(key.startswith("updatedAt") for key in query)
