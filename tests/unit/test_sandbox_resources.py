"""Resources of the sandbox: CRUD, merge-patch, relations, custom operations, reference data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import pycountry
import pytest

from sync.flowtly import assumptions as a
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource

LD = {"Content-Type": "application/ld+json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
CLIENT = {
    "name": "ACME Sp. z o.o.",
    "country": "/countries/1",
    "currency": "/currencies/1",
    "status": "active",
    "tinType": "vat",
}


class Clock:
    """A settable clock: each call returns the current instant."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app_http(clock: Clock) -> AsyncIterator[tuple[Sandbox, httpx.AsyncClient]]:
    app = create_app(SandboxSettings(clock=clock, seed=7))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={"Authorization": "Bearer t", "Accept": "application/ld+json"},
    ) as http:
        yield app.state.sandbox, http
    app.state.sandbox.close()


@pytest.fixture
def http(app_http: tuple[Sandbox, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_http[1]


@pytest.fixture
def sandbox(app_http: tuple[Sandbox, httpx.AsyncClient]) -> Sandbox:
    return app_http[0]


async def _create(
    http: httpx.AsyncClient, path: str, body: Mapping[str, object]
) -> dict[str, object]:
    response = await http.post(path, json=body, headers=LD)
    assert response.status_code == 201, response.text
    doc: dict[str, object] = response.json()
    return doc


async def test_client_create_get_patch(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/clients",
        json={**CLIENT, "id": 99, "costGroup": [], "bogus": 1, "@id": "/x/1"},
        headers=LD,
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/clients/1"
    assert response.headers["content-location"] == "/clients/1.jsonld"
    assert response.headers["accept-patch"] == "application/merge-patch+json"
    created = response.json()
    assert created == {
        "@context": "/contexts/Client",
        "@id": "/clients/1",
        "@type": "Client",
        "id": 1,
        **CLIENT,
        "clientContacts": [],
    }
    fetched = await http.get("/clients/1")
    assert fetched.json() == created
    assert "content-location" not in fetched.headers
    assert fetched.headers["etag"].startswith('"')
    patched = await http.patch(
        "/clients/1", json={"dueDays": 30, "vatNumber": "PL123", "name": "New"}, headers=MERGE
    )
    assert patched.status_code == 200
    assert patched.headers["content-location"] == "/clients/1.jsonld"
    body = patched.json()
    assert (body["dueDays"], body["vatNumber"], body["name"]) == (30, "PL123", "New")
    assert body["country"] == "/countries/1"


async def test_merge_patch_null_clears_and_omits(http: httpx.AsyncClient) -> None:
    await _create(http, "/clients", {**CLIENT, "addressCity": "Kraków", "dueDays": 14})
    patched = await http.patch("/clients/1", json={"addressCity": None}, headers=MERGE)
    assert patched.status_code == 200
    assert "addressCity" not in patched.json()
    assert patched.json()["dueDays"] == 14
    assert "addressCity" not in (await http.get("/clients/1")).json()


async def test_client_has_no_delete_and_ignores_read_only(http: httpx.AsyncClient) -> None:
    await _create(http, "/clients", CLIENT)
    response = await http.delete("/clients/1")
    assert response.status_code == 405
    patched = await http.patch("/clients/1", json={"id": 5, "clientContacts": [1]}, headers=MERGE)
    assert patched.json()["id"] == 1
    assert patched.json()["clientContacts"] == []


async def test_php_escaping_on_the_wire(http: httpx.AsyncClient) -> None:
    await _create(http, "/clients", {**CLIENT, "name": "A&B <x> 'q' \"d\" \\ ł"})
    raw = (await http.get("/clients/1")).content.decode()
    assert '"name":"A\\u0026B \\u003Cx\\u003E \\u0027q\\u0027 \\u0022d\\u0022 \\\\ ł"' in raw
    assert '"@id":"\\/clients\\/1"' in raw
    assert (await http.get("/clients/1")).json()["name"] == "A&B <x> 'q' \"d\" \\ ł"


async def test_contacts_crud_and_embedding(http: httpx.AsyncClient, clock: Clock) -> None:
    await _create(http, "/clients", CLIENT)
    contact = await _create(
        http,
        "/client-contacts",
        {
            "client": "/clients/1",
            "type": "main",
            "email": "ann@acme.pl",
            "name": "Ann",
            "position": 2,
            "possibleTypes": "ignored",
        },
    )
    assert contact["createdAt"] == contact["updatedAt"] == "2024-05-01T12:00:00+00:00"
    assert "possibleTypes" not in contact
    embedded = (await http.get("/clients/1")).json()["clientContacts"]
    assert embedded == [{k: v for k, v in contact.items() if k != "@context"}]
    clock.now += timedelta(hours=1)
    patched = await http.patch("/client-contacts/1", json={"phone": "+48 1"}, headers=MERGE)
    assert patched.json()["updatedAt"] == "2024-05-01T13:00:00+00:00"
    assert patched.json()["createdAt"] == "2024-05-01T12:00:00+00:00"
    deleted = await http.delete("/client-contacts/1")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert "content-type" not in deleted.headers
    assert (await http.get("/client-contacts/1")).status_code == 404
    assert (await http.get("/clients/1")).json()["clientContacts"] == []


async def test_contact_filter_by_client(http: httpx.AsyncClient) -> None:
    await _create(http, "/clients", CLIENT)
    await _create(http, "/clients", CLIENT)
    for client in (1, 2, 2):
        await _create(
            http,
            "/client-contacts",
            {"client": f"/clients/{client}", "type": "main", "email": "a@b.pl", "name": "A"},
        )
    doc = (await http.get("/client-contacts?client=/clients/2")).json()
    assert [m["id"] for m in doc["member"]] == [2, 3]
    assert doc["view"] == {
        "@id": "/client-contacts?client=%2Fclients%2F2",
        "@type": "PartialCollectionView",
    }
    assert doc["search"]["template"] == "/client-contacts{?client}"
    by_id = (await http.get("/client-contacts?client=1")).json()
    assert [m["id"] for m in by_id["member"]] == [1]
    assert (await http.get("/client-contacts?client=zz")).json()["totalItems"] == 0


async def test_notes_have_deterministic_uuid_ids(http: httpx.AsyncClient) -> None:
    await _create(http, "/clients", CLIENT)
    body = {"client": "/clients/1", "employee": "/employees/1", "note": "Called."}
    first = await _create(http, "/client-notes", body)
    second = await _create(http, "/client-notes", body)
    assert uuid.UUID(str(first["id"])).version == 4
    assert first["id"] != second["id"]
    assert first["@id"] == f"/client-notes/{first['id']}"
    other = create_app(SandboxSettings(seed=7))
    other.state.sandbox.create(Resource.CLIENTS, CLIENT)
    replay = other.state.sandbox.create(Resource.NOTES, body)
    assert replay["id"] == first["id"]
    other.state.sandbox.close()
    assert (await http.get(f"/client-notes/{first['id']}")).json()["note"] == "Called."
    patched = await http.patch(
        f"/client-notes/{first['id']}", json={"note": "Again"}, headers=MERGE
    )
    assert patched.json()["note"] == "Again"
    assert (await http.delete(f"/client-notes/{second['id']}")).status_code == 204
    assert (await http.get("/client-notes")).json()["totalItems"] == 1


async def test_note_requires_its_relations(http: httpx.AsyncClient) -> None:
    response = await http.post("/client-notes", json={"note": ""}, headers=LD)
    assert response.status_code == 422
    assert [(v["propertyPath"], v["message"]) for v in response.json()["violations"]] == [
        ("client", "This value should not be null."),
        ("employee", "This value should not be null."),
        ("note", "This value should not be blank."),
    ]
    missing = await http.post(
        "/client-notes",
        json={"client": "/clients/1", "employee": "/employees/1", "note": "x"},
        headers=LD,
    )
    assert missing.status_code == 400
    assert missing.json()["detail"] == 'Item not found for "/clients/1".'


async def test_free_enums_accept_any_non_blank_string(http: httpx.AsyncClient) -> None:
    created = await _create(
        http,
        "/clients",
        {**CLIENT, "status": "whatever", "tinType": "x", "documentsLanguage": "zz"},
    )
    assert created["status"] == "whatever"
    blank = await http.post("/clients", json={**CLIENT, "status": ""}, headers=LD)
    assert blank.status_code == 422


async def test_counterparty_routes(http: httpx.AsyncClient) -> None:
    created = await _create(
        http,
        "/counterparties",
        {"type": "supplier", "displayName": "Bolt Ltd", "country": "/countries/2", "tin": "1"},
    )
    assert created["requireAttachment"] is False
    assert created["cyclic"] is False
    assert created["budgetNeutral"] is False
    assert created["country"] == "/countries/2"
    via_singular = await http.post(
        a.COUNTERPARTY_CREATE_PATH, json={"type": "counterparty", "displayName": "Zed"}, headers=LD
    )
    assert via_singular.status_code == 201
    assert via_singular.headers["location"] == "/counterparties/2"
    patched = await http.patch("/counterparty/2", json={"cyclic": True}, headers=MERGE)
    assert patched.status_code == 200
    assert patched.json()["cyclic"] is True
    nulled = await http.patch("/counterparties/2", json={"cyclic": None}, headers=MERGE)
    assert nulled.status_code == 400
    missing = await http.post("/counterparties", json={"cyclic": True}, headers=LD)
    assert [v["propertyPath"] for v in missing.json()["violations"]] == list(
        a.COUNTERPARTY_REQUIRED
    )
    assert (await http.delete("/counterparties/2")).status_code == 204
    assert (await http.get("/counterparties")).json()["totalItems"] == 1


async def test_counterparty_merge(http: httpx.AsyncClient) -> None:
    await _create(http, "/counterparties", {"type": "supplier", "displayName": "Kept"})
    await _create(
        http, "/counterparties", {"type": "supplier", "displayName": "Dup", "vatNumber": "PL1"}
    )
    await _create(http, "/counterparties", {"type": "supplier", "displayName": "Dup2", "tin": "9"})
    response = await http.post(
        "/counterparties/1/merge",
        json={a.MERGE_SOURCES_KEY: ["/counterparties/2", "/counterparties/3", "/counterparties/1"]},
        headers=LD,
    )
    assert response.status_code == 200
    kept = response.json()
    assert (kept["id"], kept["displayName"], kept["vatNumber"], kept["tin"]) == (
        1,
        "Kept",
        "PL1",
        "9",
    )
    assert response.headers["content-location"] == "/counterparties/1.jsonld"
    listed = (await http.get("/counterparties")).json()
    assert [m["id"] for m in listed["member"]] == [1]
    bad = await http.post(
        "/counterparties/1/merge", json={a.MERGE_SOURCES_KEY: ["/clients/1"]}, headers=LD
    )
    assert bad.status_code == 400
    assert bad.json()["detail"] == 'Invalid IRI "/clients/1".'
    wrong = await http.post("/counterparties/1/merge", json={a.MERGE_SOURCES_KEY: "x"}, headers=LD)
    assert wrong.status_code == 400
    gone = await http.post("/counterparties/9/merge", json={a.MERGE_SOURCES_KEY: []}, headers=LD)
    assert gone.status_code == 404


async def test_counterparty_enrichment(http: httpx.AsyncClient) -> None:
    await _create(http, "/counterparties", {"type": "supplier", "displayName": "Bolt & Co."})
    await _create(
        http,
        "/counterparties",
        {"type": "supplier", "displayName": "Zed", "logoUrl": "https://x/l"},
    )
    single = await http.post("/counterparties/1/enrich-branding-ai")
    assert single.status_code == 202
    assert single.json()["logoUrl"] == "https://logos.example.com/bolt-co.png"
    assert single.json()["corporateWebsiteUrl"] == "https://www.bolt-co.example.com"
    batch = await http.post(
        "/counterparties/enrich-branding-ai",
        json={a.ENRICH_BATCH_KEY: ["/counterparties/2"]},
        headers=LD,
    )
    assert batch.status_code == 202
    assert batch.json()["member"][0]["logoUrl"] == "https://x/l"
    stored = (await http.get("/counterparties/2")).json()
    assert stored["corporateWebsiteUrl"] == "https://www.zed.example.com"
    missing = await http.post("/counterparties/enrich-branding-ai", json={}, headers=LD)
    assert missing.status_code == 400


async def test_client_search(http: httpx.AsyncClient) -> None:
    await _create(
        http, "/clients", {**CLIENT, "name": "Łódzka Piekarnia", "vatNumber": "PL 111-222"}
    )
    await _create(http, "/clients", {**CLIENT, "name": "Other", "tin": "5260001246"})
    await _create(http, "/clients", {**CLIENT, "name": "Nothing"})
    names = (await http.get("/clients/search?query=ŁÓDZ")).json()
    assert [m["id"] for m in names["member"]] == [1]
    assert names["@id"] == "/clients/search"
    assert names["view"]["@id"] == "/clients/search?query=%C5%81%C3%93DZ"
    vat = (await http.get("/clients/search?query=pl111222")).json()
    assert [m["id"] for m in vat["member"]] == [1]
    tin = (await http.get("/clients/search?query=526-000-12-46")).json()
    assert [m["id"] for m in tin["member"]] == [2]
    none = (await http.get("/clients/search?query=zzz")).json()
    assert none["totalItems"] == 0


async def test_client_documents(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await _create(http, "/clients", CLIENT)
    await _create(http, "/clients", CLIENT)
    sandbox.add_document(
        1,
        {
            "type": "invoice",
            "number": "FV/1/2024",
            "issueDate": "2024-01-02",
            "currency": "PLN",
            "totalGross": "123.00",
            "status": "paid",
            "secret": "dropped",
        },
    )
    sandbox.add_document(2, {"type": "invoice", "number": "FV/2/2024"})
    doc = (await http.get("/clients/1/documents")).json()
    assert doc["@id"] == "/clients/1/documents"
    assert doc["totalItems"] == 1
    assert doc["member"] == [
        {
            "@id": "/client-documents/1",
            "@type": "ClientDocument",
            "id": 1,
            "type": "invoice",
            "number": "FV/1/2024",
            "issueDate": "2024-01-02",
            "currency": "PLN",
            "totalGross": "123.00",
            "status": "paid",
        }
    ]
    assert set(doc["member"][0]) - {"@id", "@type"} == set(a.DOCUMENT_FIELDS)
    assert (await http.get("/clients/3/documents")).status_code == 404
    with pytest.raises(KeyError):
        sandbox.add_document(3, {})


async def test_employees_and_me(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    listed = (await http.get("/employees")).json()
    assert listed["totalItems"] >= 3
    assert set(listed["member"][0]) == {"@id", "@type", *a.EMPLOYEE_FIELDS}
    me = (await http.get("/employees/me")).json()
    assert me["@id"] == "/employees/1"
    added = sandbox.add_employee("Kate", "Bush", "kate@example.com")
    sandbox.bind_token("kate-token", int(str(added["id"])))
    kate = await http.get("/employees/me", headers={"Authorization": "Bearer kate-token"})
    assert kate.json()["email"] == "kate@example.com"
    assert (await http.get(f"/employees/{added['id']}")).json()["firstName"] == "Kate"


async def test_reference_data_covers_pycountry(http: httpx.AsyncClient) -> None:
    countries = (await http.get("/countries")).json()
    assert countries["totalItems"] == len(pycountry.countries)
    codes = [m[a.REFERENCE_CODE_FIELD] for m in countries["member"]]
    assert codes == sorted(codes)
    assert countries["member"][0] == {
        "@id": "/countries/1",
        "@type": "Country",
        "id": 1,
        "code": "AD",
        "name": "Andorra",
    }
    currencies = (await http.get("/currencies")).json()
    assert currencies["totalItems"] == len(pycountry.currencies)
    pln = [
        m
        for p in range(1, 8)
        for m in (await http.get(f"/currencies?page={p}")).json()["member"]
        if m["code"] == "PLN"
    ]
    assert pln[0]["name"] == "Zloty"
    assert (await http.get(f"/currencies/{pln[0]['id']}")).json()["code"] == "PLN"


async def test_webhooks_and_logs(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    created = await _create(
        http,
        "/webhooks",
        {"url": "https://crm.example/hook", "events": ["invoice.paid"], "secret": "s3cr3t"},
    )
    assert created["active"] is True
    assert created["events"] == ["invoice.paid"]
    assert "secret" not in created
    assert sandbox.records(Resource.WEBHOOKS)[0]["secret"] == "s3cr3t"
    patched = await http.patch("/webhooks/1", json={"active": False, "events": []}, headers=MERGE)
    assert (patched.json()["active"], patched.json()["events"]) == (False, [])
    bad = await http.patch("/webhooks/1", json={"events": [1]}, headers=MERGE)
    assert bad.status_code == 400
    assert (await http.post("/webhooks", json={}, headers=LD)).status_code == 422
    assert (await http.get("/webhook-logs")).json()["totalItems"] == 0
    log = sandbox.add_webhook_log(
        {
            "url": "https://crm.example/hook",
            "event": "invoice.paid",
            "statusCode": 200,
            "responseTime": 12,
            "response": "ok",
        }
    )
    fetched = (await http.get(f"/webhook-logs/{log['id']}")).json()
    assert fetched["statusCode"] == 200
    assert (await http.delete("/webhooks/1")).status_code == 204
    assert (await http.get("/webhooks/1")).status_code == 404


async def test_ids_are_not_reused_after_delete(http: httpx.AsyncClient) -> None:
    body = {"type": "main", "email": "a@b.pl", "name": "A"}
    await _create(http, "/client-contacts", body)
    assert (await http.delete("/client-contacts/1")).status_code == 204
    again = await _create(http, "/client-contacts", body)
    assert again["id"] == 2
