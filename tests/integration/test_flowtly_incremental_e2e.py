"""Incremental Flowtly reads through the real command line, against the sandbox over HTTP:
a no-op second run asks for contacts and notes changed since the cursor only, an edit in
Flowtly after the cursor reaches the CRM, a delete in Flowtly is found by the periodic
complete listing (and only by it), and ``[flowtly] incremental = false`` lists everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from e2e_support import (
    CountingProxy,
    FlowtlyApi,
    SandboxProcess,
    read_csv,
    run_cli,
    small_crm,
    start_sandbox,
    write_config,
    write_crm,
)

pytestmark = pytest.mark.slow


class RecordingProxy(CountingProxy):
    """A counting proxy that also keeps the path and query of every GET it forwards."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.gets: list[str] = []

    def client(self) -> httpx.Client:
        client = super().client()
        if not client.event_hooks["request"]:
            client.event_hooks = {"request": [self._record]}
        return client

    def _record(self, request: httpx.Request) -> None:
        if request.method == "GET":
            self.gets.append(unquote(str(request.url.raw_path, "ascii")))


class Setup:
    def __init__(self, root: Path, sandbox: SandboxProcess) -> None:
        self.root, self.sandbox = root, sandbox
        self.crm = write_crm(root / "crm", small_crm())
        self.api = FlowtlyApi(sandbox.url)

    def configure(self, base_url: str, **flowtly: str) -> Path:
        return write_config(
            self.root / "config.toml",
            base_url=base_url,
            crm=self.crm,
            store=self.root / "state.db",
            sync={"full_scan": flowtly.pop("full_scan", "86400")},
            flowtly=flowtly,
        )

    def run(self, proxy: RecordingProxy | None = None, **flowtly: str) -> dict[str, object]:
        config = self.configure(proxy.url if proxy else self.sandbox.url, **flowtly)
        ran = run_cli("run", "--output", "json", config=config)
        assert ran.returncode == 0, ran.stderr
        report: dict[str, object] = json.loads(ran.stdout)
        return report


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[Setup]:
    sandbox = start_sandbox(tmp_path, db=tmp_path / "flowtly.db")
    try:
        setup = Setup(tmp_path, sandbox)
        setup.run()
        yield setup
        setup.api.close()
    finally:
        sandbox.stop()


def _listings(gets: list[str], collection: str) -> list[str]:
    return [g for g in gets if g.split("?")[0] == collection]


def test_a_no_op_second_run_asks_only_for_changes_of_contacts_and_notes(synced: Setup) -> None:
    with RecordingProxy(synced.sandbox.url) as proxy:
        report = synced.run(proxy)
    assert report["operations"] == []
    assert proxy.writes() == 0
    for collection in ("/client-contacts", "/client-notes"):
        listed = _listings(proxy.gets, collection)
        assert listed, f"{collection} was not read"
        assert all("updatedAt[after]=" in g for g in listed), listed
    clients = _listings(proxy.gets, "/clients")
    assert clients
    assert not any("updatedAt" in g for g in clients)
    assert all("order[id]=asc" in g for g in clients)

    with RecordingProxy(synced.sandbox.url) as whole:
        synced.run(whole, incremental="false")
    assert not any("updatedAt" in g for g in whole.gets)
    assert _listings(whole.gets, "/client-contacts")


def test_an_edit_in_flowtly_after_the_cursor_reaches_the_crm(synced: Setup) -> None:
    synced.run()  # the cursor now comes from an increment too
    contact = synced.api.members("/client-contacts")[0]
    synced.api.patch(contact["@id"], {"name": "Renamed In Flowtly"})
    with RecordingProxy(synced.sandbox.url) as proxy:
        report = synced.run(proxy)
    assert all("updatedAt[after]=" in g for g in _listings(proxy.gets, "/client-contacts"))
    _, rows = read_csv(synced.crm / "contacts.csv")
    assert [r["email"] for r in rows if r["name"] == "Renamed In Flowtly"] == [contact["email"]]
    assert report["operations"]


def test_a_delete_in_flowtly_is_found_by_the_periodic_complete_listing(synced: Setup) -> None:
    contact = synced.api.members("/client-contacts")[0]
    response = synced.api.http.delete(contact["@id"])
    assert response.status_code == 204
    synced.run()  # an increment: a delete does not show in it
    _, rows = read_csv(synced.crm / "contacts.csv")
    assert contact["email"] in {r["email"] for r in rows}
    with RecordingProxy(synced.sandbox.url) as proxy:
        # A second is long past since the setup's complete listing: one is due.
        synced.run(proxy, full_scan="1")
    assert not any("updatedAt" in g for g in _listings(proxy.gets, "/client-contacts"))
    _, rows = read_csv(synced.crm / "contacts.csv")
    assert contact["email"] not in {r["email"] for r in rows}
