"""The CLI end to end with HubSpot as the CRM: ``crm setup``, ``check``, ``run``, ``diff``
against the HubSpot fake served on 127.0.0.1 and the Flowtly sandbox, both over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    TOKEN,
    FlowtlyApi,
    SandboxProcess,
    new_flowtly_client,
    run_cli,
    start_sandbox,
    store_text,
)
from fakes.hubspot import FakeHubSpot
from fakes.hubspot.server import serve

pytestmark = pytest.mark.slow

HUBSPOT_TOKEN = "pat-eu1-5d2c1f0e-e2e-secret-token"
WRITES = ("/batch/create", "/batch/update", "/batch/archive")


def _config(
    folder: Path,
    sandbox: SandboxProcess,
    hubspot: str,
    *,
    token: str = HUBSPOT_TOKEN,
    sync: str = "",
) -> Path:
    """``folder/config.toml`` for the sandbox and the HubSpot fake; the store beside it."""
    path, store, flowtly = folder / "config.toml", folder / "state.db", sandbox.url
    path.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps(flowtly)}\n"
        f"token = {json.dumps(TOKEN)}\n"
        "rate_limit = 0\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(store))}\n"
        "[crm]\n"
        'type = "hubspot"\n'
        f"base_url = {json.dumps(hubspot)}\n"
        f"token = {json.dumps(token)}\n"
        f"[sync]\n{sync}"
        "[logging]\n"
        'format = "json"\n'
        'level = "info"\n',
        encoding="utf-8",
    )
    return path


def _seed(state: FakeHubSpot) -> dict[str, str]:
    acme = state.create(
        "companies",
        {"name": "Acme Sp. z o.o.", "country": "Poland", "city": "Warszawa", "zip": "00-001"},
    )
    vendor = state.create("companies", {"name": "Supplies Ltd", "country": "GBR", "type": "VENDOR"})
    jan = state.create(
        "contacts",
        {
            "firstname": "Jan",
            "lastname": "Kowalski",
            "email": "jan@acme.example",
            "jobtitle": "CFO",
        },
    )
    state.associate("contacts", jan.id, acme.id, 1)
    note = state.create(
        "notes",
        {
            "hs_note_body": "<p>Called about <b>invoice 7</b>.</p>",
            "hs_timestamp": "2024-01-02T03:04:05.000Z",
        },
    )
    state.associate("notes", note.id, acme.id, 190)
    return {"acme": acme.id, "vendor": vendor.id, "jan": jan.id, "note": note.id}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    started = start_sandbox(tmp_path, db=tmp_path / "flowtly.db")
    yield started
    started.stop()


def _flowtly(sandbox: SandboxProcess, collection: str) -> list[dict[str, Any]]:
    api = FlowtlyApi(sandbox.url)
    try:
        return api.members(collection)
    finally:
        api.close()


def _writes(state: FakeHubSpot, since: int) -> list[tuple[str, str]]:
    return [r for r in state.requests[since:] if r[1].endswith(WRITES)]


def test_setup_check_run_and_a_second_run_that_writes_nothing(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    state = FakeHubSpot(token=HUBSPOT_TOKEN)
    ids = _seed(state)
    store = tmp_path / "state.db"
    with serve(state) as url:
        config = _config(tmp_path, sandbox, url)
        listed = run_cli("crm", "setup", config=config)
        assert "MISSING" in listed.stdout, listed.stderr
        assert "flowtly_vat_number" in listed.stdout
        applied = run_cli("crm", "setup", "--apply", config=config)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "flowtly_vat_number" in state.properties["companies"]
        assert "every custom field is present" in applied.stdout

        checked = run_cli("check", config=config)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        first = run_cli("run", "--output", "json", config=config)
        assert first.returncode == 0, first.stdout + first.stderr
        report = json.loads(first.stdout)
        assert report["errors"] == []
        clients = _flowtly(sandbox, "/clients")
        assert {c["name"] for c in clients} >= {"Acme Sp. z o.o."}
        counterparties = _flowtly(sandbox, "/counterparties")
        assert "Supplies Ltd" in json.dumps(counterparties), counterparties
        assert len(_flowtly(sandbox, "/client-contacts")) == 1
        [note] = _flowtly(sandbox, "/client-notes")
        assert "Called about invoice 7." in json.dumps(note)

        before = len(state.requests)
        second = run_cli("run", "--output", "json", config=config)
        assert second.returncode == 0, second.stdout + second.stderr
        assert _writes(state, before) == []
        listings = [r for r in state.requests[before:] if r[0] == "GET" and "/objects/" in r[1]]
        assert listings == [], "a no-op run re-listed HubSpot before full_scan was due"

        # An edit in HubSpot reaches Flowtly through the incremental search.
        acme_object = state.objects["companies"][ids["acme"]]
        acme_object.properties["city"] = "Kraków"
        state.stamp("companies", acme_object)
        third = run_cli("run", "--output", "json", config=config)
        assert third.returncode == 0, third.stdout + third.stderr
        [acme] = [c for c in _flowtly(sandbox, "/clients") if c["name"] == "Acme Sp. z o.o."]
        assert "Kraków" in json.dumps(acme, ensure_ascii=False)

        diffed = run_cli("diff", config=config)
        assert diffed.returncode == 0, diffed.stdout + diffed.stderr

        outputs = [listed, applied, checked, first, second, third, diffed]
    for result in outputs:
        assert HUBSPOT_TOKEN not in result.stdout + result.stderr
    assert all(HUBSPOT_TOKEN not in text for _, _, text in store_text(store))


def test_a_wrong_token_exits_1_at_once_with_one_line_and_writes_nothing(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    state = FakeHubSpot(token=HUBSPOT_TOKEN)
    _seed(state)
    wrong = "pat-eu1-revoked-0000-token"
    with serve(state) as url:
        config = _config(tmp_path, sandbox, url, token=wrong)
        result = run_cli("run", config=config, timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stdout + result.stderr
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1, result.stderr
    assert "HubSpot refused the private app token" in said[0]
    assert state.requests == [], "nothing may be read or written with a refused token"
    assert _flowtly(sandbox, "/clients") == []


def test_the_daily_limit_ends_the_run_with_exit_1_and_the_next_run_completes(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    state = FakeHubSpot(token=HUBSPOT_TOKEN)
    _seed(state)
    for n in range(250):
        state.create("companies", {"name": f"Company {n}", "country": "PL"})
    with serve(state) as url:
        config = _config(tmp_path, sandbox, url)
        # Enough for open and the first listing pages, not for the whole run.
        state.limits.daily = 6
        stopped = run_cli("run", "--output", "json", config=config)
        assert stopped.returncode == 1, stopped.stdout + stopped.stderr
        assert "daily API limit" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        state.limits.daily = 250_000  # midnight in the portal's time zone
        resumed = run_cli("run", "--output", "json", config=config)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert json.loads(resumed.stdout)["errors"] == []
    names = [c["name"] for c in _flowtly(sandbox, "/clients")]
    assert len(names) == len(set(names)) == 251


def test_both_ways_a_bad_record_alone_rejected_and_a_delete_at_the_full_scan(
    tmp_path: Path, sandbox: SandboxProcess
) -> None:
    state = FakeHubSpot(token=HUBSPOT_TOKEN)
    ids = _seed(state)
    bad = state.create("companies", {"name": "Nowhere Inc", "country": "Atlantis"})
    for n in range(3):  # the one supplier archived below is a quarter of them
        state.create("companies", {"name": f"Vendor {n}", "country": "DE", "type": "VENDOR"})
    api = FlowtlyApi(sandbox.url)
    try:
        new_flowtly_client(api, "Nordlicht Medien GmbH", "DE845721337", "Hamburg")
    finally:
        api.close()
    with serve(state) as url:
        # Every run reads HubSpot whole: deletes show only in complete listings.
        config = _config(tmp_path, sandbox, url, sync='full_scan = "1s"\n')
        unset = run_cli("check", config=config)
        assert "custom fields missing" in unset.stdout + unset.stderr
        assert "flowtly_vat_number" in unset.stdout + unset.stderr
        assert run_cli("crm", "setup", "--apply", config=config).returncode == 0

        first = run_cli("run", "--output", "json", config=config)
        report = json.loads(first.stdout)
        [error] = [e for e in report["errors"] if bad.id in json.dumps(e)]
        assert "country" in json.dumps(error)
        assert "Atlantis" not in {c["name"] for c in _flowtly(sandbox, "/clients")}
        assert "Acme Sp. z o.o." in {c["name"] for c in _flowtly(sandbox, "/clients")}
        [created] = [
            o
            for o in state.objects["companies"].values()
            if o.properties.get("name") == "Nordlicht Medien GmbH"
        ]
        assert created.properties["country"] == "DE"
        assert created.properties["flowtly_vat_number"] == "DE845721337"
        assert created.properties["city"] == "Hamburg"

        # The supplier archived in HubSpot: the next complete listing no longer has it.
        state.objects["companies"][ids["vendor"]].archived = True
        second = run_cli("run", "--output", "json", config=config)
        operations = json.loads(second.stdout)["operations"]
        assert [
            (op["entity"], op["action"], op["target"])
            for op in operations
            if op["target"] == "flowtly"
        ] == [("counterparty", "delete", "flowtly")], second.stdout
        names = json.dumps(_flowtly(sandbox, "/counterparties"))
        assert "Supplies Ltd" not in names
        assert "Vendor 0" in names
