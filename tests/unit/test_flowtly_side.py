"""FlowtlySide against the in-process sandbox (httpx.ASGITransport): reads, writes, errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from connectors.base import Capability, ChangeBatch
from sync.errors import MethodNotAllowed, NotFound, ValidationFailed
from sync.flowtly import side as side_module
from sync.flowtly.assumptions import ARCHIVED_CLIENT_STATUS
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.refs import Refs, UnknownReference
from sync.flowtly.resources import Defaults, fields_of, to_payload, to_record
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Record, Scalar
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource

CLIENT = EntityKind.CLIENT
CONTACT = EntityKind.CONTACT
NOTE = EntityKind.NOTE
COUNTERPARTY = EntityKind.COUNTERPARTY
TOKEN = "t-secret-token"


class _Recording(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox and remembers (method, path, query) of each."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.url.query.decode("ascii")))
        return await self.inner.handle_async_request(request)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p == path)


@dataclass
class Env:
    side: FlowtlySide
    client: FlowtlyClient
    transport: _Recording
    sandbox: Sandbox


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    app = create_app(SandboxSettings(token=TOKEN, seed=7))
    transport = _Recording(httpx.ASGITransport(app=app))
    client = FlowtlyClient("http://sandbox", TOKEN, rate_limit=0, transport=transport)
    async with client:
        side = FlowtlySide(client, Defaults(currency="PLN", country="PL"))
        yield Env(side, client, transport, app.state.sandbox)


async def _all(side: FlowtlySide, entity: EntityKind) -> list[ChangeBatch]:
    return [batch async for batch in side.read(entity)]


async def _records(side: FlowtlySide, entity: EntityKind) -> dict[str, Record]:
    return {r.id: r for batch in await _all(side, entity) for r in batch.records}


CLIENT_VALUES: dict[str, Scalar] = {
    "name": "ACME Sp. z o.o.",
    "status": "active",
    "tin_type": "vat",
    "tin": "5260250274",
    "tin_country": "PL",
    "vat_number": "PL5260250274",
    "due_days": 14,
    "documents_language": "pl",
    "invoice_comment": "Net 14",
    "default_tax_rate": "23",
    "external_payment_customer_id": "cus_1",
    "phone": "+48 22 100 20 30",
    "city": "Warszawa",
    "post_code": "00-001",
    "street_line": "Marszalkowska",
    "building_number": "10",
    "locale_number": "5",
    "address_country": "DE",
    "country": "PL",
    "currency": "EUR",
}

COUNTERPARTY_VALUES: dict[str, Scalar] = {
    "name": "Paper GmbH",
    "counterparty_type": "supplier",
    "require_attachment": True,
    "cyclic": True,
    "budget_neutral": False,
    "logo_url": "https://paper.example/logo.png",
    "website": "https://paper.example",
    "vat_number": "DE123456789",
    "tin": "12345678",
    "country": "DE",
}


def test_declares_capabilities_fields_and_archiving(env: Env) -> None:
    side = env.side
    assert side.name == "flowtly"
    assert side.capabilities == {Capability.READ, Capability.WRITE, Capability.DELETE}
    assert side.entities() == frozenset(EntityKind)
    assert not side.can_delete(CLIENT)
    assert side.archive_status(CLIENT) == ARCHIVED_CLIENT_STATUS
    for entity in (CONTACT, NOTE, COUNTERPARTY):
        assert side.can_delete(entity)
        assert side.archive_status(entity) is None
        assert side.fields(entity) == fields_of(entity)
    assert "http://sandbox" in side.describe()
    assert TOKEN not in side.describe()


async def test_client_create_read_update_archive(env: Env) -> None:
    side = env.side
    created = await side.create(CLIENT, CLIENT_VALUES)
    assert {n: created.get(n) for n in CLIENT_VALUES} == CLIENT_VALUES
    assert env.transport.count("POST", "/clients") == 1

    listed = await _records(side, CLIENT)
    assert listed[created.id] == created

    updated = await side.update(
        CLIENT, created.id, {"city": "Kraków", "invoice_comment": None, "due_days": 30}
    )
    assert updated.get("city") == "Kraków"
    assert updated.get("invoice_comment") is None
    assert updated.get("due_days") == 30
    assert updated.get("name") == CLIENT_VALUES["name"]
    patches = [r for r in env.transport.requests if r[0] == "PATCH"]
    assert patches == [("PATCH", f"/clients/{created.id}", "")]

    archived = await side.update(CLIENT, created.id, {"status": side.archive_status(CLIENT)})
    assert archived.get("status") == ARCHIVED_CLIENT_STATUS


async def test_client_create_fills_defaults(env: Env) -> None:
    created = await env.side.create(CLIENT, {"name": "Minimal", "website": "https://m.example"})
    assert created.get("status") == "active"
    assert created.get("tin_type") == "vat"
    assert created.get("documents_language") == "en"
    assert created.get("currency") == "PLN"
    assert created.get("country") == "PL"
    assert "website" not in created.fields


async def test_client_delete_is_not_offered(env: Env) -> None:
    created = await env.side.create(CLIENT, {"name": "Keep me"})
    with pytest.raises(MethodNotAllowed, match="archive"):
        await env.side.delete(CLIENT, created.id)
    assert not [r for r in env.transport.requests if r[0] == "DELETE"]
    assert created.id in await _records(env.side, CLIENT)


async def test_contact_create_read_update_delete(env: Env) -> None:
    side = env.side
    company = await side.create(CLIENT, {"name": "ACME"})
    values: dict[str, Scalar] = {
        "company_id": company.id,
        "name": "Ann Smith",
        "email": "Ann@ACME.example",
        "phone": "+48 600 100 200",
        "title": "Ms",
        "position": 1,
    }
    created = await side.create(CONTACT, values)
    assert created.get("company_id") == company.id
    assert created.get("email") == "ann@acme.example"
    assert created.get("type") == "main"  # Defaults.contact_type

    listed = await _records(side, CONTACT)
    assert listed == {created.id: created}
    assert env.transport.count("GET", "/client-contacts") == 1

    updated = await side.update(CONTACT, created.id, {"title": None, "name": "Ann Jones"})
    assert updated.get("title") is None
    assert updated.get("name") == "Ann Jones"

    await side.delete(CONTACT, created.id)
    assert await _records(side, CONTACT) == {}
    await side.delete(CONTACT, created.id)  # already gone: still deleted, no error


async def test_note_create_uses_the_token_employee_and_round_trips(env: Env) -> None:
    side = env.side
    company = await side.create(CLIENT, {"name": "ACME"})
    created = await side.create(NOTE, {"company_id": company.id, "body": "Called them"})
    me = await env.client.get("/employees/me")
    assert created.get("author") == str(me["id"])
    assert created.get("company_id") == company.id
    assert isinstance(created.get("created_at"), str)
    assert len(created.id) == 36  # a UUID, not an integer

    listed = await _records(side, NOTE)
    assert listed[created.id] == created

    updated = await side.update(NOTE, created.id, {"body": "Called them twice"})
    assert updated.get("body") == "Called them twice"
    await side.delete(NOTE, created.id)
    assert await _records(side, NOTE) == {}


async def test_note_author_from_defaults_or_values(env: Env) -> None:
    company = await env.side.create(CLIENT, {"name": "ACME"})
    side = FlowtlySide(env.client, Defaults(note_author="2"))
    by_default = await side.create(NOTE, {"company_id": company.id, "body": "a"})
    assert by_default.get("author") == "2"
    explicit = await side.create(NOTE, {"company_id": company.id, "body": "b", "author": "3"})
    assert explicit.get("author") == "3"
    assert env.transport.count("GET", "/employees/me") == 0

    by_iri = FlowtlySide(env.client, Defaults(note_author="/employees/3"))
    note = await by_iri.create(NOTE, {"company_id": company.id, "body": "c"})
    assert note.get("author") == "3"
    by_email = FlowtlySide(env.client, Defaults(note_author="Grace.Hopper@example.com"))
    note = await by_email.create(NOTE, {"company_id": company.id, "body": "d"})
    assert note.get("author") == "2"
    nobody = FlowtlySide(env.client, Defaults(note_author="nobody@example.com"))
    with pytest.raises(ValidationFailed, match=re.escape("nobody@example.com")):
        await nobody.create(NOTE, {"company_id": company.id, "body": "e"})


async def test_counterparty_create_read_update_delete(env: Env) -> None:
    side = env.side
    created = await side.create(COUNTERPARTY, COUNTERPARTY_VALUES)
    assert {n: created.get(n) for n in COUNTERPARTY_VALUES} == COUNTERPARTY_VALUES
    assert env.transport.count("POST", "/counterparty") == 1

    listed = await _records(side, COUNTERPARTY)
    assert listed == {created.id: created}

    updated = await side.update(COUNTERPARTY, created.id, {"name": "Paper AG", "tin": None})
    assert updated.get("name") == "Paper AG"
    assert updated.get("tin") is None
    assert env.transport.count("PATCH", f"/counterparty/{created.id}") == 1

    await side.delete(COUNTERPARTY, created.id)
    assert env.transport.count("DELETE", f"/counterparties/{created.id}") == 1
    assert await _records(side, COUNTERPARTY) == {}


async def test_update_without_carried_fields_sends_no_patch(env: Env) -> None:
    created = await env.side.create(CLIENT, {"name": "ACME"})
    same = await env.side.update(CLIENT, created.id, {"website": "https://acme.example"})
    assert same == created
    assert not [r for r in env.transport.requests if r[0] == "PATCH"]


async def test_422_propagates_as_validation_failed(env: Env) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await env.side.create(CLIENT, {"tin_type": "vat"})
    assert caught.value.status == 422
    assert [v.property_path for v in caught.value.violations] == ["name"]

    company = await env.side.create(CLIENT, {"name": "ACME"})
    with pytest.raises(ValidationFailed) as caught:
        await env.side.create(CONTACT, {"company_id": company.id, "name": "A", "email": "nope"})
    assert caught.value.violations[0].property_path == "email"

    with pytest.raises(ValidationFailed) as caught:
        await env.side.update(CLIENT, company.id, {"name": None})
    assert caught.value.status == 422


async def test_400_bad_reference_propagates_as_validation_failed(env: Env) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await env.side.create(CONTACT, {"company_id": "999", "name": "A", "email": "a@b.example"})
    assert caught.value.status == 400
    assert "999" in str(caught.value)


async def test_unknown_code_is_refused_before_sending(env: Env) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await env.side.create(CLIENT, {"name": "ACME", "currency": "XXQ"})
    assert [v.property_path for v in caught.value.violations] == ["currency"]
    assert "XXQ" in str(caught.value)
    assert env.transport.count("POST", "/clients") == 0


async def test_missing_record_on_update_is_not_found(env: Env) -> None:
    with pytest.raises(NotFound):
        await env.side.update(CONTACT, "424242", {"name": "X"})


async def test_listing_75_clients_over_3_pages(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(75):
        await env.side.create(CLIENT, {"name": f"Client {n:02d}"})
    env.transport.requests.clear()
    monkeypatch.setattr(side_module, "BATCH_SIZE", 40)

    batches = await _all(env.side, CLIENT)

    assert [len(b.records) for b in batches] == [40, 35]
    names = [r.get("name") for b in batches for r in b.records]
    assert names == [f"Client {n:02d}" for n in range(75)]
    pages = [q for m, p, q in env.transport.requests if p == "/clients"]
    assert len(pages) == 3
    assert all("itemsPerPage=30" in q for q in pages)


async def test_empty_listing_yields_one_empty_batch(env: Env) -> None:
    batches = await _all(env.side, COUNTERPARTY)
    assert len(batches) == 1
    assert batches[0].entity is COUNTERPARTY
    assert not batches[0].records
    assert not batches[0].rejected


async def test_unmappable_items_are_rejected_but_present(env: Env) -> None:
    good = await env.side.create(CLIENT, {"name": "Good"})
    # The seeding API stores without validation: items a real API might still serve.
    bad = env.sandbox.insert(
        Resource.CLIENTS, {"name": "Bad", "country": "/countries/99999", "vatNumber": "PL1"}
    )
    odd = env.sandbox.insert(Resource.CLIENTS, {"name": "Odd", "dueDays": "soon"})
    secret = env.sandbox.insert(Resource.CLIENTS, {"name": "Secret", "vatNumber": True})

    batches = await _all(env.side, CLIENT)

    assert [r.id for b in batches for r in b.records] == [good.id]
    rejected = {e.record_id: e for b in batches for e in b.rejected}
    assert set(rejected) == {str(bad["id"]), str(odd["id"]), str(secret["id"])}
    assert rejected[str(bad["id"])].field == "country"
    assert rejected[str(bad["id"])].value == "/countries/99999"
    assert rejected[str(bad["id"])].side == "flowtly"
    assert rejected[str(odd["id"])].field == "due_days"
    assert rejected[str(odd["id"])].value == "soon"
    assert rejected[str(secret["id"])].field == "vat_number"
    assert rejected[str(secret["id"])].value is None  # a sensitive field: never shown
    present = [i for b in batches for i in b.present_ids]
    assert sorted(present) == sorted(rejected)


async def test_entities_can_be_limited(env: Env) -> None:
    side = FlowtlySide(env.client, Defaults(), entities=frozenset({CLIENT}))
    assert side.entities() == {CLIENT}
    with pytest.raises(ValueError, match="does not sync"):
        await side.create(NOTE, {"body": "x"})
    with pytest.raises(ValueError, match="not entity kinds"):
        FlowtlySide(env.client, Defaults(), entities=frozenset({"invoice"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entity", "values", "create_path"),
    [
        (CLIENT, CLIENT_VALUES, "/clients"),
        (COUNTERPARTY, COUNTERPARTY_VALUES, "/counterparty"),
    ],
)
async def test_mapping_round_trip_through_the_sandbox(
    env: Env, entity: EntityKind, values: dict[str, Scalar], create_path: str
) -> None:
    refs = Refs(env.client)
    await refs.load()
    item = await env.client.post(create_path, to_payload(entity, values, refs, create=True))
    stored = await env.client.get(item["@id"])
    record = to_record(entity, stored, refs)
    assert {n: record.get(n) for n in values} == values
    assert set(record.fields) == fields_of(entity)


async def test_contact_and_note_round_trip_through_the_sandbox(env: Env) -> None:
    refs = Refs(env.client)
    company = await env.side.create(CLIENT, {"name": "ACME"})
    contact: dict[str, Scalar] = {
        "company_id": company.id,
        "type": "billing",
        "name": "Bo",
        "email": "bo@acme.example",
        "phone": "+1 555",
        "title": "Dr",
        "position": 3,
    }
    item = await env.client.post(
        "/client-contacts", to_payload(CONTACT, contact, refs, create=True)
    )
    assert dict(to_record(CONTACT, item, refs).fields) == contact
    note: dict[str, Scalar] = {"company_id": company.id, "body": "Hi", "author": "1"}
    item = await env.client.post("/client-notes", to_payload(NOTE, note, refs, create=True))
    back = to_record(NOTE, item, refs)
    assert {n: back.get(n) for n in note} == note


async def test_refs_load_once_and_resolve_both_ways(env: Env) -> None:
    refs = Refs(env.client)
    await refs.load()
    await refs.load()
    assert env.transport.count("GET", "/countries") >= 1
    first_pass = len(env.transport.requests)
    await refs.load()
    assert len(env.transport.requests) == first_pass
    iri = refs.country_iri("PL")
    assert refs.country_code(iri) == "PL"
    assert refs.currency_code(refs.currency_iri("pln")) == "PLN"
    with pytest.raises(UnknownReference, match="address_country"):
        refs.country_iri("QQ", "address_country")


async def test_refs_employees(env: Env) -> None:
    refs = Refs(env.client)
    me = await refs.me()
    assert me.email == "ada.lovelace@example.com"
    assert me.iri == f"/employees/{me.id}"
    assert (await refs.employee_by_email("GRACE.HOPPER@example.com")).last_name == "Hopper"
    assert (await refs.employee(me.id)) == me
    with pytest.raises(UnknownReference, match="author"):
        await refs.employee("999")
    with pytest.raises(UnknownReference, match=re.escape("nobody@example.com")):
        await refs.employee_by_email("nobody@example.com")
