"""The HubSpot connector against the fake: limits, search windows, partial failures,
values, and the fake's answers checked against the official SDK's models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fakes.hubspot import FakeHubSpot, Limits, hubspot_app
from fakes.hubspot.models import ShapeDrift, check
from pydantic import SecretStr

from connectors.base import ChangeBatch, Cursor
from connectors.hubspot import HubSpotConnector, HubSpotSettings
from connectors.setup import missing_fields
from sync.errors import AuthenticationError, BudgetExhausted, NotFound, ValidationFailed
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind


class Clock:
    """Simulated time shared by the fake and the connector; sleeping moves it on."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def _connector(state: FakeHubSpot, clock: Clock, **options: object) -> HubSpotConnector:
    settings = HubSpotSettings(
        base_url="https://api.hubapi.test", token=SecretStr(state.token), **options
    )
    transport = httpx.ASGITransport(app=hubspot_app(state))
    return HubSpotConnector(settings, transport=transport, clock=clock, sleep=clock.sleep)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> FakeHubSpot:
    return FakeHubSpot(clock=clock)


@pytest.fixture
async def hubspot(state: FakeHubSpot, clock: Clock) -> AsyncIterator[HubSpotConnector]:
    async with _connector(state, clock) as connector:
        await connector.create_fields(missing_fields(await connector.custom_fields()))
        yield connector


async def _all(
    connector: HubSpotConnector, entity: EntityKind, since: Cursor | None = None
) -> list[ChangeBatch]:
    return [batch async for batch in connector.read(entity, since)]


def _ids(batches: list[ChangeBatch]) -> list[str]:
    return [record.id for batch in batches for record in batch.records]


async def test_a_refused_token_fails_at_open(state: FakeHubSpot, clock: Clock) -> None:
    settings = HubSpotSettings(base_url="https://api.hubapi.test", token=SecretStr("pat-wrong"))
    connector = HubSpotConnector(
        settings,
        transport=httpx.ASGITransport(app=hubspot_app(state)),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(AuthenticationError) as refused:
        await connector.open()
    assert "pat-wrong" not in str(refused.value)
    await connector.close()


async def test_a_missing_custom_property_is_simply_not_synced(
    state: FakeHubSpot, clock: Clock
) -> None:
    state.create("companies", {"name": "Acme", "country": "PL"})
    async with _connector(state, clock) as connector:
        carried = connector.fields(EntityKind.CLIENT)
        assert {"name", "country", "city"} <= carried
        assert "vat_number" not in carried
        missing = {f.name for f in missing_fields(await connector.custom_fields())}
        assert "flowtly_vat_number" in missing
        batches = await _all(connector, EntityKind.CLIENT)
        assert [e for b in batches for e in b.rejected] == []
        [record] = [r for b in batches for r in b.records]
        assert "vat_number" not in record.fields
        [made] = await connector.create_many(
            EntityKind.CLIENT, [{"name": "Beta", "vat_number": "PL5260250274"}]
        )
        assert made.record is not None
        assert "flowtly_vat_number" not in state.objects["companies"][made.record.id].properties


async def test_values_are_read_from_hubspot_text(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    poland = state.create(
        "companies", {"name": "Acme", "country": "Poland", "flowtly_due_days": "14.0"}
    )
    germany = state.create("companies", {"name": "Beta", "country": "Deutschland"})
    vendor = state.create("companies", {"name": "Gamma", "country": "FRA", "type": "VENDOR"})
    bad = state.create("companies", {"name": "Delta", "country": "Atlantis"})
    batches = await _all(hubspot, EntityKind.CLIENT)
    records = {r.id: r for b in batches for r in b.records}
    assert records[poland.id].get("country") == "PL"
    assert records[poland.id].get("due_days") == 14
    assert records[germany.id].get("country") == "DE"
    assert vendor.id in {i for b in batches for i in b.left_ids}
    [rejected] = [e for b in batches for e in b.rejected]
    assert (rejected.record_id, rejected.field) == (bad.id, "country")
    assert "'country'" in rejected.reason
    assert bad.id in {i for b in batches for i in b.present_ids}
    suppliers = await _all(hubspot, EntityKind.COUNTERPARTY)
    assert _ids(suppliers) == [vendor.id]
    assert suppliers[-1].records[0].get("country") == "FR"


async def test_names_are_split_at_the_last_space_and_notes_are_html(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    company = await hubspot.create(EntityKind.CLIENT, {"name": "Acme"})
    contact = await hubspot.create(
        EntityKind.CONTACT, {"name": "Jan Maria Kowalski", "company_id": company.id}
    )
    stored = state.objects["contacts"][contact.id].properties
    assert (stored["firstname"], stored["lastname"]) == ("Jan Maria", "Kowalski")
    assert 1 in state.companies_of("contacts", contact.id)[company.id]
    note = await hubspot.create(
        EntityKind.NOTE, {"body": "Line <1>\nLine 2", "company_id": company.id}
    )
    assert (
        state.objects["notes"][note.id].properties["hs_note_body"]
        == "<p>Line &lt;1&gt;<br>Line 2</p>"
    )
    listed = {r.id: r for b in await _all(hubspot, EntityKind.NOTE) for r in b.records}
    assert listed[note.id].get("body") == "Line <1>\nLine 2"
    assert listed[note.id].get("company_id") == company.id


async def test_a_company_change_moves_the_association(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    first = await hubspot.create(EntityKind.CLIENT, {"name": "First"})
    second = await hubspot.create(EntityKind.CLIENT, {"name": "Second"})
    contact = await hubspot.create(EntityKind.CONTACT, {"name": "Jan", "company_id": first.id})
    other = await hubspot.create(EntityKind.CLIENT, {"name": "Also related"})
    state.associate("contacts", contact.id, other.id, 279)  # added by a HubSpot user
    moved = await hubspot.update(EntityKind.CONTACT, contact.id, {"company_id": second.id})
    assert moved.get("company_id") == second.id
    assert state.companies_of("contacts", contact.id) == {other.id: [279], second.id: [1, 279]}
    cleared = await hubspot.update(EntityKind.CONTACT, contact.id, {"company_id": None})
    assert cleared.get("company_id") is None
    assert set(state.companies_of("contacts", contact.id)) == {other.id}


async def test_a_batch_refusal_rejects_only_the_inputs_at_fault(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    company = await hubspot.create(EntityKind.CLIENT, {"name": "Acme"})
    # A property deleted in HubSpot after the connector looked: HubSpot refuses the batch.
    del state.properties["companies"]["flowtly_currency"]
    results = await hubspot.create_many(
        EntityKind.CLIENT,
        [{"name": "One"}, {"name": "Two", "currency": "EUR"}, {"name": "Three"}],
    )
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, ValidationFailed)
    assert "flowtly_currency" in str(results[1].error)
    updated = await hubspot.update_many(
        EntityKind.CLIENT, [(company.id, {"city": "Kraków"}), ("999999", {"city": "X"})]
    )
    assert updated[0].record is not None
    assert updated[0].record.get("city") == "Kraków"
    assert isinstance(updated[1].error, NotFound)


async def test_creates_without_trace_ids_are_paired_by_content_never_by_position(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    state.echo_trace_ids = False
    results = await hubspot.create_many(
        EntityKind.CLIENT, [{"name": "Twin"}, {"name": "Twin"}, {"name": "Single"}]
    )
    single = results[2].record
    assert single is not None
    assert state.objects["companies"][single.id].properties["name"] == "Single"
    # Two inputs fit either result: which is which cannot be told, so neither is claimed.
    assert [r.ok for r in results[:2]] == [False, False]


async def test_a_taken_email_rejects_that_contact_alone(
    hubspot: HubSpotConnector, state: FakeHubSpot
) -> None:
    company = await hubspot.create(EntityKind.CLIENT, {"name": "Acme"})
    await hubspot.create(EntityKind.CONTACT, {"name": "Jan", "email": "jan@acme.example"})
    results = await hubspot.create_many(
        EntityKind.CONTACT,
        [
            {"name": "Anna Nowak", "email": "anna@acme.example", "company_id": company.id},
            {"name": "Jan Again", "email": "JAN@acme.example", "company_id": company.id},
        ],
    )
    assert results[0].ok
    assert results[1].error is not None
    assert "Contact already exists" in str(results[1].error)
    note = await hubspot.create(EntityKind.NOTE, {"body": "undated", "company_id": company.id})
    assert note.get("created_at") is not None


async def test_one_companies_listing_serves_clients_and_suppliers(
    hubspot: HubSpotConnector, state: FakeHubSpot, clock: Clock
) -> None:
    for n in range(250):
        state.create("companies", {"name": f"C{n}", "type": "VENDOR" if n % 5 == 0 else ""})

    def listings() -> int:
        return sum(1 for m, p in state.requests if m == "GET" and p.endswith("/companies"))

    clients = _ids(await _all(hubspot, EntityKind.CLIENT))
    first = listings()
    suppliers = await _all(hubspot, EntityKind.COUNTERPARTY)
    assert listings() == first, "the suppliers came from the clients' listing"
    assert len(clients) == 200
    assert len(_ids(suppliers)) == 50
    assert set(suppliers[-1].left_ids) == set(clients)
    assert suppliers[-1].cursor is not None
    # A company written in between, or too long a pause, and the suppliers are listed anew.
    await _all(hubspot, EntityKind.CLIENT)
    await hubspot.create(EntityKind.COUNTERPARTY, {"name": "New vendor"})
    assert len(_ids(await _all(hubspot, EntityKind.COUNTERPARTY))) == 51
    await _all(hubspot, EntityKind.CLIENT)
    clock.now += 3600
    before = listings()
    await _all(hubspot, EntityKind.COUNTERPARTY)
    assert listings() > before


async def test_search_delay_is_covered_by_the_overlap(state: FakeHubSpot, clock: Clock) -> None:
    state.search_delay = 5.0
    async with _connector(state, clock, search_overlap=30) as connector:
        early = state.create("companies", {"name": "Early"})
        clock.now += 60
        start = (await _all(connector, EntityKind.CLIENT))[-1].cursor
        assert start is not None
        late = state.create("companies", {"name": "Late"})
        clock.now += 1  # changed, but not searchable yet
        assert late.id not in _ids(await _all(connector, EntityKind.CLIENT, start))
        clock.now += 10
        assert late.id in _ids(await _all(connector, EntityKind.CLIENT, start))
        assert early.id in _ids(await _all(connector, EntityKind.CLIENT))


async def test_an_increment_past_the_search_cap_restarts_the_query(
    state: FakeHubSpot, clock: Clock
) -> None:
    state.validate = False  # volume, not shapes: those are checked in the other tests
    async with _connector(state, clock, search_overlap=0) as connector:
        start = (await _all(connector, EntityKind.CLIENT))[-1].cursor
        assert start is not None
        for n in range(10_450):
            state.create("companies", {"name": f"Company {n}"})
            if n % 7 == 0:
                clock.now += 0.001
        clock.now += 1
        requests = len(state.requests)
        found = _ids(await _all(connector, EntityKind.CLIENT, start))
        assert len(found) == len(set(found)) == 10_450
        searches = [r for r in state.requests[requests:] if r[1].endswith("/search")]
        assert len(searches) >= 53  # 10,450 / 200 pages, plus the restart's overlap
        assert state.rejected_429 == 0


async def test_requests_stay_within_the_rolling_window(state: FakeHubSpot, clock: Clock) -> None:
    state.validate = False
    async with _connector(state, clock) as connector:
        for n in range(2_500):
            state.create("companies", {"name": f"Company {n}"})
        begun = clock.now
        records = _ids(await _all(connector, EntityKind.CLIENT))
        assert len(records) == 2_500
        elapsed = clock.now - begun
    assert state.rejected_429 == 0
    # 25 pages plus 4 calls from open, at most 100 per 10 s.
    assert elapsed >= 0
    assert len(state.requests) <= 100 * (elapsed / 10 + 1)


async def test_another_apps_burst_is_waited_out(state: FakeHubSpot, clock: Clock) -> None:
    async with _connector(state, clock) as connector:
        while state.admit(search=False) is None:
            pass  # another app of the portal uses the window up
        state.rejected_429 = 0
        state.create("companies", {"name": "Acme"})
        assert len(_ids(await _all(connector, EntityKind.CLIENT))) == 1
    assert state.rejected_429 == 1
    assert clock.slept >= 10


async def test_the_daily_limit_stops_the_run(state: FakeHubSpot, clock: Clock) -> None:
    state.limits = Limits(daily=4)  # open takes four
    async with _connector(state, clock) as connector:
        with pytest.raises(BudgetExhausted, match="daily API limit"):
            await _all(connector, EntityKind.CLIENT)


async def test_renamed_properties_come_from_the_layout(state: FakeHubSpot, clock: Clock) -> None:
    state.properties["companies"]["legal_name"] = dict(
        state.properties["companies"]["name"], name="legal_name"
    )
    connector = _connector(state, clock)
    connector.use_layout(FieldLayout(aliases={EntityKind.CLIENT: {"legal_name": "name"}}))
    async with connector:
        made = state.create("companies", {"name": "Shown", "legal_name": "Acme S.A."})
        [record] = [r for b in await _all(connector, EntityKind.CLIENT) for r in b.records]
    assert (record.id, record.get("name")) == (made.id, "Acme S.A.")


def test_the_fake_is_held_to_the_official_models() -> None:
    good = {
        "id": "1",
        "properties": {"name": "Acme"},
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "archived": False,
    }
    check("companies", "SimplePublicObject", json.dumps(good).encode())
    for drifted in (
        {k: v for k, v in good.items() if k != "properties"},  # a required key missing
        {**good, "archivedOn": "2024-01-01"},  # a key HubSpot does not have
        {**good, "archived": "no"},  # a value of the wrong type
    ):
        with pytest.raises(ShapeDrift):
            check("companies", "SimplePublicObject", json.dumps(drifted).encode())
