"""Whole runs against a hostile Flowtly (the sandbox behind a tampering transport) whose
contact listing arrives broken: no CRM record is deleted because of it, the report says
why, and creates and updates still go through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.listing import SLACK_PAGES
from connectors.memory import MemoryConnector
from sync.engine.ops import Action
from sync.engine.run import RunResult, SyncJob, run_sync
from sync.errors import FlowtlyError
from sync.flowtly.client import FlowtlyClient
from sync.flowtly.resources import Defaults
from sync.flowtly.side import FlowtlySide
from sync.model import EntityKind, Record, Side
from sync.report.render import OutputFormat, render
from sync.sandbox import Sandbox, SandboxSettings, create_app
from sync.sandbox._resources import Resource
from sync.store import Store

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
TOKEN = "listing-token"
PAGE_SIZE = 2
CONTACTS = 6  # three pages of two
Doc = dict[str, Any]
Tamper = Callable[[int, Doc, dict[int, Doc]], Doc | bytes]
"""(page number, the page as Flowtly answered it, pages answered before) -> the answer."""


class HostileFlowtly(httpx.AsyncBaseTransport):
    """The sandbox, whose ``/client-contacts`` pages are small and rewritten by ``tamper``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.tamper: Tamper | None = None
        self.contact_pages: list[int] = []
        self._answered: dict[int, Doc] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET" or request.url.path != "/client-contacts":
            return await self.inner.handle_async_request(request)
        request.url = request.url.copy_set_param("itemsPerPage", str(PAGE_SIZE))
        response = await self.inner.handle_async_request(request)
        number = int(request.url.params.get("page", "1"))
        self.contact_pages.append(number)
        if self.tamper is None:
            return response
        doc = json.loads(await response.aread())
        answer = self.tamper(number, doc, self._answered)
        self._answered[number] = doc
        body = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return httpx.Response(
            200, content=body, headers={"Content-Type": "application/ld+json; charset=utf-8"}
        )


@dataclass
class World:
    crm: MemoryConnector
    side: FlowtlySide
    sandbox: Sandbox
    transport: HostileFlowtly
    store: Store
    emails: list[str] = field(default_factory=list)
    """The contacts' e-mails in Flowtly id order: two by two, the pages they are listed on."""

    def run(self) -> RunResult:
        job = SyncJob("listing", self.crm, self.side, self.store, concurrency=2)
        return asyncio.run(run_sync(job))

    def crm_contact(self, email: str) -> Record:
        return next(r for r in self.crm.records(CONTACT) if r.get("email") == email)

    def flowtly_titles(self) -> dict[str, object]:
        return {c["email"]: c.get("title") for c in self.sandbox.records(Resource.CONTACTS)}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    app = create_app(SandboxSettings(token=TOKEN, seed=3))
    transport = HostileFlowtly(httpx.ASGITransport(app=app))
    client = FlowtlyClient("http://sandbox", TOKEN, rate_limit=0, transport=transport)
    side = FlowtlySide(client, Defaults(currency="PLN", country="PL"), entities=_ENTITIES)
    crm = MemoryConnector(entities=_ENTITIES, fields=_FIELDS, id_prefix="c")
    crm.put(Record(CLIENT, "c-acme", {"name": "ACME", "country": "PL", "vat_number": "PL1"}))
    for n in range(1, CONTACTS + 1):
        crm.put(Record(CONTACT, f"c-p{n}", _contact(f"p{n}@acme.example")))
    store = Store.open(f"sqlite:///{tmp_path}/state.db")
    world = World(crm, side, app.state.sandbox, transport, store)
    first = world.run()
    assert first.clean, first.errors
    assert len(world.sandbox.records(Resource.CONTACTS)) == CONTACTS
    world.emails = [c["email"] for c in world.sandbox.records(Resource.CONTACTS)]
    yield world
    store.close()
    asyncio.run(client.aclose())


_ENTITIES = frozenset({CLIENT, CONTACT})
_FIELDS = {CLIENT: ("name", "country", "vat_number"), CONTACT: ("company_id", "name", "email")}
_FIELDS[CONTACT] += ("title",)


def _contact(email: str, title: str | None = None) -> dict[str, object]:
    return {"company_id": "c-acme", "name": "Ann", "email": email, "title": title}


def _without_ids(page: int) -> Tamper:
    def tamper(number: int, doc: Doc, _: dict[int, Doc]) -> Doc:
        if number == page:
            for member in doc["member"]:
                del member["@id"], member["id"]
        return doc

    return tamper


def _shifted(number: int, doc: Doc, earlier: dict[int, Doc]) -> Doc:
    # Offsets moved while paging: page 3 lists page 1's members again.
    return {**doc, "member": earlier[1]["member"]} if number == 3 else doc


def _last_page(answer: Doc | bytes) -> Tamper:
    return lambda number, doc, _: answer if number == 3 else doc


def _one_lost(number: int, doc: Doc, _: dict[int, Doc]) -> Doc:
    return {**doc, "member": doc["member"][:-1]} if number == 2 else doc


def _endless(number: int, doc: Doc, _: dict[int, Doc]) -> Doc:
    return {**doc, "view": {**doc.get("view", {}), "next": f"{doc['@id']}?page={number + 1}"}}


BROKEN: list[tuple[str, Tamper, str, int]] = [
    (
        "members-without-id",
        _without_ids(2),
        "page 2 of /client-contacts had 2 members without an id",
        2,
    ),
    ("repeated-ids", _shifted, "page 3 of /client-contacts repeated 2 ids listed before", 3),
    (
        "last-page-empty-object",
        _last_page({}),
        "page 3 of /client-contacts answered {} instead of a collection",
        3,
    ),
    (
        "last-page-empty-body",
        _last_page(b""),
        "page 3 of /client-contacts answered HTTP 200 with an empty body",
        3,
    ),
    (
        "total-mismatch",
        _one_lost,
        f"/client-contacts stated totalItems {CONTACTS} but its pages held 5 members",
        None,
    ),
]


@pytest.mark.parametrize(
    ("tamper", "reason", "lost_page"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_a_broken_contact_listing_deletes_nothing_and_says_why(
    world: World, tamper: Tamper, reason: str, lost_page: int | None
) -> None:
    first_page, lost = world.emails[:2], world.emails[2 * (lost_page or 3) - 2 :][:2]
    edited = world.crm_contact(first_page[0])
    world.crm.put(edited.replace(title="Head of finance"))
    renamed = next(
        c for c in world.sandbox.records(Resource.CONTACTS) if c["email"] == first_page[1]
    )
    world.sandbox.update(Resource.CONTACTS, str(renamed["id"]), {"name": "Renamed on Flowtly"})
    if lost_page is not None:
        held = world.crm_contact(lost[0])
        world.crm.put(held.replace(title="Edited where Flowtly lost it"))
    world.crm.put(Record(CONTACT, "c-new", _contact("new@acme.example")))
    world.transport.tamper = tamper

    result = world.run()

    assert not [op for op in result.operations if op.action is Action.DELETE]
    assert len(world.crm.records(CONTACT)) == CONTACTS + 1
    (warning,) = [w for w in result.warnings if w.entity == "contact"]
    assert (warning.side, warning.record_id) == (str(Side.FLOWTLY), "*")
    assert warning.reason.startswith("incomplete listing, no deletes inferred from it this run")
    assert reason in warning.reason
    assert reason in render(result, OutputFormat.TEXT, width=1000)
    (shown,) = json.loads(render(result, OutputFormat.JSON))["warnings"]
    assert (shown["entity"], shown["side"], shown["reason"]) == (
        "contact",
        "flowtly",
        warning.reason,
    )
    # Updates of records both sides listed go through, both ways.
    titles = world.flowtly_titles()
    assert titles[edited.get("email")] == "Head of finance"
    assert world.crm_contact(first_page[1]).get("name") == "Renamed on Flowtly"
    # A new CRM contact waits: its twin could be in what Flowtly did not list.
    assert "new@acme.example" not in titles
    assert "1 new record(s) are not created on this side" in warning.reason
    if lost_page is not None:
        # Its Flowtly copy was not seen: an update now could overwrite an unseen edit.
        assert titles[lost[0]] is None
        assert "2 linked record(s) missing from it are left as they are" in warning.reason

    world.transport.tamper = None
    healed = world.run()
    assert healed.clean
    assert not healed.warnings
    assert not [op for op in healed.operations if op.action is Action.DELETE]
    titles = world.flowtly_titles()
    assert "new@acme.example" in titles
    if lost_page is not None:
        assert titles[lost[0]] == "Edited where Flowtly lost it"


def test_members_without_id_are_rejected_records_too(world: World) -> None:
    world.transport.tamper = _without_ids(2)
    result = world.run()
    rejected = [e for e in result.errors if e.entity == "contact" and e.side == "flowtly"]
    assert len(rejected) == 2
    assert all("without an id" in e.reason for e in rejected)


def test_an_endless_next_chain_ends_the_run_soon_with_an_error(world: World) -> None:
    world.transport.tamper = _endless
    world.transport.contact_pages.clear()
    with pytest.raises(FlowtlyError, match="/client-contacts runs past 6 pages"):
        world.run()
    allowed = CONTACTS // PAGE_SIZE + SLACK_PAGES
    assert world.transport.contact_pages == list(range(1, allowed + 2))
    assert len(world.crm.records(CONTACT)) == CONTACTS
