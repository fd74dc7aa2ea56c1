"""Branding enrichment, client search and note authors, against the in-process sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from sync.config import Settings
from sync.engine.merge import Outcome, merge_fields
from sync.engine.ops import Action, Operation
from sync.engine.run import RunResult
from sync.errors import FlowtlyError
from sync.extras.after_run import AfterRun, FinanceOptions
from sync.extras.branding import ENRICH_CHUNK, created_counterparties, enrich_created
from sync.extras.search import find_clients, search_terms
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Record, Side
from sync.policy import Direction
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource
from sync.wiring import policy_of

CP = EntityKind.COUNTERPARTY
CLIENT = EntityKind.CLIENT
NOTE = EntityKind.NOTE
TOKEN = "enrich-token"


class _Recording(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def paths(self, method: str) -> list[str]:
        return [p for m, p in self.requests if m == method]


@dataclass
class Env:
    side: FlowtlySide
    client: FlowtlyClient
    transport: _Recording
    sandbox: Sandbox


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    app = create_app(SandboxSettings(token=TOKEN, seed=5))
    transport = _Recording(httpx.ASGITransport(app=app))
    client = FlowtlyClient("http://sandbox", TOKEN, rate_limit=0, transport=transport)
    async with client:
        side = FlowtlySide(client, Defaults(currency="PLN"), authors_by_email=True)
        yield Env(side, client, transport, app.state.sandbox)


def _created(entity: EntityKind, flowtly_id: str | None, outcome: str = "ok") -> Operation:
    return Operation(entity, Action.CREATE, Side.FLOWTLY, "c", flowtly_id, outcome=outcome)


def test_created_counterparties_takes_only_successful_flowtly_creates() -> None:
    ops = [
        _created(CP, "1"),
        _created(CP, "2", outcome="error"),
        _created(CLIENT, "3"),
        Operation(CP, Action.UPDATE, Side.FLOWTLY, "c", "4", outcome="ok"),
        Operation(CP, Action.CREATE, Side.CRM, None, "5", outcome="ok"),
        _created(CP, "6"),
        _created(CP, "1"),
    ]
    assert created_counterparties(ops) == ["1", "6"]


async def test_one_created_counterparty_uses_the_single_route(env: Env) -> None:
    record = await env.side.create(CP, {"name": "Solo Supplies", "website": "https://solo.eu"})
    env.transport.requests.clear()
    assert await enrich_created(env.side, [_created(CP, record.id)]) == [record.id]
    assert env.transport.paths("POST") == [f"/counterparties/{record.id}/enrich-branding-ai"]
    (stored,) = env.sandbox.records(Resource.COUNTERPARTIES)
    assert stored["logoUrl"] == "https://logos.example.com/solo-supplies.png"
    assert stored["corporateWebsiteUrl"] == "https://solo.eu"  # never overwritten


async def test_several_use_the_batch_route_in_chunks(env: Env) -> None:
    ids = [(await env.side.create(CP, {"name": f"Supplier {n}"})).id for n in range(3)]
    env.transport.requests.clear()
    await enrich_created(env.side, [_created(CP, i) for i in ids])
    assert env.transport.paths("POST") == ["/counterparties/enrich-branding-ai"]
    assert all(r.get("logoUrl") for r in env.sandbox.records(Resource.COUNTERPARTIES))

    class Counting:
        calls: list[int] = []

        async def enrich_branding(self, ids: object) -> None:
            assert isinstance(ids, list)
            self.calls.append(len(ids))

    counting = Counting()
    many = [_created(CP, str(n)) for n in range(ENRICH_CHUNK + 5)]
    await enrich_created(counting, many)
    assert counting.calls == [ENRICH_CHUNK, 5]


async def test_enrichment_failure_is_a_warning_not_a_failed_run(env: Env) -> None:
    class Failing:
        async def enrich_branding(self, ids: object) -> None:
            raise FlowtlyError("503 from Flowtly")

        async def client_documents(self, client_id: str) -> list[object]:
            raise AssertionError("documents are off")

    hook = AfterRun(FinanceOptions(branding=True), "s", None, Failing(), None)  # type: ignore[arg-type]
    result = RunResult("s", dry_run=False, operations=[_created(CP, "1")])
    await hook(result)
    assert result.clean
    assert "branding enrichment not queued" in result.warnings[0].reason


def test_enrichment_makes_logo_url_flow_only_to_the_crm() -> None:
    on = Settings.model_validate({"enrichment": {"branding": True}})
    policy = policy_of(on)
    assert policy.directions["logo_url"] is Direction.FLOWTLY_TO_CRM
    # Flowtly filled the logo while the CRM also set one: Flowtly's wins, no conflict.
    result = merge_fields(
        ["logo_url"], {"logo_url": None}, {"logo_url": "crm.png"}, {"logo_url": "ai.png"}, policy
    )
    assert [d.outcome for d in result.decisions] == [Outcome.TO_CRM]
    assert result.parked == ()
    assert "logo_url" not in policy_of(Settings()).directions
    explicit = Settings.model_validate(
        {"enrichment": {"branding": True}, "sync": {"directions": {"logo_url": "both"}}}
    )
    assert policy_of(explicit).directions["logo_url"] is Direction.BOTH


def test_search_terms_cover_prefixed_and_bare_tax_ids_else_the_name() -> None:
    rec = Record(CLIENT, "C1", {"name": "Acme", "country": "PL", "vat_number": "PL5260250274"})
    assert search_terms(rec) == ["PL5260250274", "5260250274"]
    assert search_terms(Record(CLIENT, "C2", {"name": " Acme Sp. z o.o. "})) == ["Acme Sp. z o.o."]
    assert search_terms(Record(CLIENT, "C3", {"name": "AB"})) == []


async def test_find_clients_searches_for_a_few_and_lists_for_many(env: Env) -> None:
    for name, vat in (("Acme", "5260250274"), ("Acme Holding", None), ("Other", None)):
        await env.side.create(CLIENT, {"name": name, "country": "PL", "vat_number": vat})
    wanted = Record(CLIENT, "C1", {"name": "ACME", "country": "PL", "vat_number": "PL5260250274"})
    by_name = Record(CLIENT, "C2", {"name": "acme holding", "country": "PL"})
    env.transport.requests.clear()
    found = await find_clients(env.side, [wanted, by_name])
    assert [r.get("name") for r in found["C1"]] == ["Acme"]
    assert [r.get("name") for r in found["C2"]] == ["Acme Holding"]
    assert "/clients" not in env.transport.paths("GET")
    assert "/clients/search" in env.transport.paths("GET")
    env.transport.requests.clear()
    listed = await find_clients(env.side, [wanted, by_name], search_limit=1)
    assert {k: [r.id for r in v] for k, v in listed.items()} == {
        k: [r.id for r in v] for k, v in found.items()
    }
    assert "/clients/search" not in env.transport.paths("GET")
    assert await env.side.search_clients("ab") == []


async def test_note_authors_read_and_write_as_emails(env: Env) -> None:
    company = await env.side.create(CLIENT, {"name": "Acme", "country": "PL"})
    by_email = await env.side.create(
        NOTE, {"company_id": company.id, "body": "hi", "author": "grace.hopper@example.com"}
    )
    assert by_email.get("author") == "grace.hopper@example.com"
    by_id = await env.side.create(NOTE, {"company_id": company.id, "body": "yo", "author": "3"})
    assert by_id.get("author") == "alan.turing@example.com"
    nobody = await env.side.create(NOTE, {"company_id": company.id, "body": "me"})
    assert nobody.get("author") == "ada.lovelace@example.com"  # /employees/me
    listed = {
        r.id: r.get("author") for b in [b async for b in env.side.read(NOTE)] for r in b.records
    }
    assert listed[by_email.id] == "grace.hopper@example.com"
    moved = await env.side.update(NOTE, by_email.id, {"author": "alan.turing@example.com"})
    assert moved.get("author") == "alan.turing@example.com"
    stored = {str(n["id"]): n for n in env.sandbox.records(Resource.NOTES)}
    assert stored[by_email.id]["employee"] == "/employees/3"
    cleared = await env.side.update(NOTE, by_email.id, {"author": None, "body": "edited"})
    assert (cleared.get("author"), cleared.get("body")) == ("ada.lovelace@example.com", "edited")
