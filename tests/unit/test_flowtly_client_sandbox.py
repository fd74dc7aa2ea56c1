"""FlowtlyClient against the sandbox in-process (httpx.ASGITransport): the real protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from sync.errors import AuthenticationError, MethodNotAllowed, NotFound, ValidationFailed
from sync.flowtly.assumptions import CLIENT_REQUIRED, CONTACT_REQUIRED
from sync.flowtly.client import FlowtlyClient
from sync.sandbox.app import create_app
from sync.sandbox.settings import SandboxSettings

TOKEN = "sandbox-token-0f3a"


class FakeTime:
    """One fake clock shared by the client (sleep/clock) and the sandbox (rate limiter)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sandbox_client(
    settings: SandboxSettings, base_url: str = "http://sandbox", token: str = TOKEN, **kw: Any
) -> FlowtlyClient:
    kw.setdefault("rate_limit", 0)
    transport = httpx.ASGITransport(app=create_app(settings))
    return FlowtlyClient(base_url, token, transport=transport, **kw)


@pytest.fixture
async def client() -> AsyncIterator[FlowtlyClient]:
    async with sandbox_client(SandboxSettings(token=TOKEN)) as flowtly:
        yield flowtly


async def refs(flowtly: FlowtlyClient) -> dict[str, str]:
    """IRIs of a country and a currency, found the way a caller would."""
    found: dict[str, str] = {}
    for name, path in (("country", "/countries"), ("currency", "/currencies")):
        async for member in flowtly.iterate(path, page_size=1):
            found[name] = member["@id"]
            break
    return found


async def new_client(flowtly: FlowtlyClient, name: str, **extra: object) -> dict[str, Any]:
    body = {"name": name, "status": "active", "tinType": "vat", **await refs(flowtly), **extra}
    return await flowtly.post("/clients", body)


async def test_create_get_patch_and_merge_patch_null(client: FlowtlyClient) -> None:
    created = await new_client(client, "ACME Sp. z o.o.", vatNumber="PL46584837")
    assert created["@id"] == client.iri("clients", created["id"])
    assert FlowtlyClient.id_from_iri(created) == str(created["id"])

    fetched = await client.get(created["@id"])
    assert fetched["name"] == "ACME Sp. z o.o."
    assert fetched["vatNumber"] == "PL46584837"

    patched = await client.patch(created["@id"], {"name": "ACME S.A.", "vatNumber": None})
    assert patched["name"] == "ACME S.A."
    assert "vatNumber" not in patched  # null clears, and null properties are omitted
    assert (await client.get(f"clients/{created['id']}"))["name"] == "ACME S.A."
    assert client.stats.by_status[201] == 1
    assert client.stats.by_method["PATCH"] == 1


async def test_contact_create_delete_then_not_found(client: FlowtlyClient) -> None:
    owner = await new_client(client, "Owner")
    contact = await client.post(
        "/client-contacts",
        {"client": owner["@id"], "type": "main", "email": "ann@example.com", "name": "Ann"},
    )
    embedded = (await client.get(owner["@id"]))["clientContacts"]
    assert [FlowtlyClient.id_from_iri(c) for c in embedded] == [str(contact["id"])]

    await client.delete(contact["@id"])
    assert client.stats.by_status[204] == 1
    with pytest.raises(NotFound, match=rf"^GET /client-contacts/{contact['id']} failed: HTTP 404"):
        await client.get(contact["@id"])
    with pytest.raises(NotFound):
        await client.delete(contact["@id"])


async def test_clients_cannot_be_deleted(client: FlowtlyClient) -> None:
    created = await new_client(client, "Kept")
    with pytest.raises(MethodNotAllowed, match="Method Not Allowed") as caught:
        await client.delete(created["@id"])
    assert caught.value.status == 405


async def test_iterate_75_records_over_3_pages(client: FlowtlyClient) -> None:
    for i in range(75):
        await new_client(client, f"Client {i:02d}")
    gets_before = client.stats.by_method["GET"]
    names = [m["name"] async for m in client.iterate("/clients")]
    assert names == [f"Client {i:02d}" for i in range(75)]
    assert client.stats.by_method["GET"] - gets_before == 3  # 30 + 30 + 15


async def test_page_size_is_clamped_and_next_links_still_lead_everywhere(
    client: FlowtlyClient,
) -> None:
    for i in range(35):
        await new_client(client, f"C{i}")
    gets_before = client.stats.by_method["GET"]
    ids = [m["id"] async for m in client.iterate("/clients", {"order[id]": "asc"}, page_size=500)]
    assert len(ids) == 35
    assert len(set(ids)) == 35
    assert client.stats.by_method["GET"] - gets_before == 2  # clamped to 30 per page


async def test_api_base_path_prefix() -> None:
    settings = SandboxSettings(token=TOKEN, base_path="/api")
    async with sandbox_client(settings, base_url="http://sandbox/api") as flowtly:
        for i in range(31):
            await new_client(flowtly, f"P{i}")
        members = [m async for m in flowtly.iterate("/clients")]
        assert len(members) == 31
        assert members[0]["@id"] == "/api/clients/1"
        assert flowtly.iri("clients", 1) == "/api/clients/1"
        assert (await flowtly.get(members[30]["@id"]))["name"] == "P30"


async def test_422_violations_in_declaration_order(client: FlowtlyClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await client.post("/clients", {})
    assert caught.value.status == 422
    assert tuple(v.property_path for v in caught.value.violations) == CLIENT_REQUIRED
    assert "name: This value should not be blank." in str(caught.value)

    owner = await new_client(client, "Owner")
    with pytest.raises(ValidationFailed) as bad_email:
        await client.post(
            "/client-contacts",
            {"client": owner["@id"], "type": "main", "email": "nope", "name": "X"},
        )
    assert [v.property_path for v in bad_email.value.violations] == ["email"]
    assert "email" in CONTACT_REQUIRED


async def test_400_invalid_iri_is_validation_failed(client: FlowtlyClient) -> None:
    with pytest.raises(ValidationFailed, match=r'HTTP 400: Invalid IRI "1"\.') as caught:
        await new_client(client, "Bad", country="1")
    assert caught.value.violations == ()


async def test_wrong_token_is_401_and_never_shown() -> None:
    async with sandbox_client(SandboxSettings(token=TOKEN), token="wrong-token-77") as flowtly:
        with capture_logs() as logs, pytest.raises(AuthenticationError) as caught:
            await flowtly.get("/clients")
    assert str(caught.value) == "GET /clients failed: HTTP 401: Unauthorized"
    assert "wrong-token-77" not in repr(logs)
    assert "wrong-token-77" not in repr(flowtly)


async def test_no_token_is_401() -> None:
    async with sandbox_client(SandboxSettings(), token="") as flowtly:
        with pytest.raises(AuthenticationError):
            await flowtly.get("/employees/me")


async def test_sandbox_rate_limit_429_is_retried_after_retry_after() -> None:
    fake = FakeTime()
    settings = SandboxSettings(token=TOKEN, rate_limit=1.0, monotonic=fake.clock)
    async with sandbox_client(settings, sleep=fake.sleep, clock=fake.clock) as flowtly:
        await flowtly.get("/employees/me")
        me = await flowtly.get("/employees/me")  # bucket empty: 429, Retry-After: 1
    assert me["@id"].startswith("/employees/")
    assert flowtly.stats.rate_limited == 1
    assert flowtly.stats.by_status == {200: 2, 429: 1}
    assert fake.sleeps
    assert fake.sleeps[0] >= 1.0


async def test_client_rate_limit_keeps_under_the_sandbox_budget() -> None:
    fake = FakeTime()
    settings = SandboxSettings(token=TOKEN, rate_limit=2.0, monotonic=fake.clock)
    async with sandbox_client(
        settings, sleep=fake.sleep, clock=fake.clock, rate_limit=2.0
    ) as flowtly:
        for _ in range(6):
            await flowtly.get("/employees/me")
    assert flowtly.stats.rate_limited == 0
    assert fake.now - 100.0 >= 5 / 2.0 - 1e-9


async def test_sandbox_faults_are_retried_for_reads() -> None:
    fake = FakeTime()
    settings = SandboxSettings(token=TOKEN, fail_rate=0.5, seed=3)
    async with sandbox_client(settings, sleep=fake.sleep, clock=fake.clock) as flowtly:
        for _ in range(10):
            await flowtly.get("/employees/me")
    assert flowtly.stats.by_status[200] == 10
    assert flowtly.stats.retries == sum(
        n for status, n in flowtly.stats.by_status.items() if status >= 500
    )
    assert flowtly.stats.retries > 0
