"""``[flowtly] incremental`` end to end: the CLI (a child process), the files connector and
the sandbox over HTTP behind a proxy that counts requests per path.

Flowtly's records are seeded before the first run with a clock ten minutes apart per
write, in the past, so the cursor a complete listing leaves sits well before edits made
over HTTP now, and the overlap re-reads only what was stamped in its last minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    TOKEN,
    CountingProxy,
    CrmData,
    FlowtlyApi,
    SandboxProcess,
    read_csv,
    run_cli,
    write_config,
    write_crm,
)
from sql_databases import SteppingClock

from sync.sandbox import Sandbox, SandboxSettings
from sync.sandbox._resources import Resource

pytestmark = pytest.mark.slow

COMPANIES = 10
CONTACTS_EACH = 10  # 100 contacts: 4 pages of 30
NOTES_EACH = 7  # 70 notes: 3 pages


def _seed(db: Path) -> None:
    sandbox = Sandbox(SandboxSettings(db=db, token=TOKEN, clock=SteppingClock()))
    try:
        country = next(c for c in sandbox.records(Resource.COUNTRIES) if c["code"] == "PL")
        currency = next(c for c in sandbox.records(Resource.CURRENCIES) if c["code"] == "PLN")
        for n in range(COMPANIES):
            client = sandbox.create(
                Resource.CLIENTS,
                {
                    "name": f"Firma {n:02d}",
                    "country": f"/countries/{country['id']}",
                    "currency": f"/currencies/{currency['id']}",
                    "status": "active",
                    "tinType": "vat",
                },
            )
            iri = f"/clients/{client['id']}"
            for m in range(CONTACTS_EACH):
                sandbox.create(
                    Resource.CONTACTS,
                    {
                        "client": iri,
                        "type": "main",
                        "name": f"Person {n}-{m}",
                        "email": f"p{n}-{m}@firma.example",
                    },
                )
            for m in range(NOTES_EACH):
                sandbox.create(
                    Resource.NOTES,
                    {"client": iri, "employee": "/employees/1", "note": f"Note {n}-{m}"},
                )
    finally:
        sandbox.close()


def _run(config: Path) -> dict[str, Any]:
    done = run_cli("run", "--output", "json", config=config)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _gets(proxy: CountingProxy, path: str) -> int:
    return proxy.paths[("GET", path)]


def test_edits_arrive_from_a_cursor_and_deletes_at_the_full_scan(
    tmp_path: Path, sandbox_factory: Callable[..., SandboxProcess]
) -> None:
    db = tmp_path / "fl.db"
    _seed(db)
    sandbox = sandbox_factory(db=db)
    crm = write_crm(tmp_path / "crm", CrmData([], [], []))

    def configure(base_url: str, **sync: str) -> Path:
        return write_config(
            tmp_path / "config.toml",
            base_url=base_url,
            crm=crm,
            store=tmp_path / "state.db",
            flowtly={"incremental": "true"},
            sync=sync,
        )

    with CountingProxy(sandbox.url) as proxy:
        config = configure(proxy.url)
        _run(config)  # complete listings: everything comes into the CRM
        assert len(read_csv(crm / "contacts.csv")[1]) == COMPANIES * CONTACTS_EACH
        first = {p: _gets(proxy, p) for p in ("/client-contacts", "/client-notes", "/clients")}
        assert first == {"/client-contacts": 4, "/client-notes": 3, "/clients": 1}

        api = FlowtlyApi(sandbox.url)
        try:
            [contact, *_] = api.members("/client-contacts")
            api.patch(f"/client-contacts/{contact['id']}", {"name": "Renamed In Flowtly"})
            [note, *_] = api.members("/client-notes")
            deleted = api.http.delete(f"/client-notes/{note['id']}")
            assert deleted.status_code == 204
        finally:
            api.close()

        proxy.paths.clear()
        second = _run(config)
        # Only what changed since the cursor: one page each, not every page.
        assert _gets(proxy, "/client-contacts") == 1
        assert _gets(proxy, "/client-notes") == 1
        assert _gets(proxy, "/clients") == 1  # clients carry no updatedAt: listed whole
        names = {row["name"] for row in read_csv(crm / "contacts.csv")[1]}
        assert "Renamed In Flowtly" in names
        assert [op["action"] for op in second["operations"]] == ["update"]
        # The note deleted in Flowtly is still in the CRM: an increment proves no delete.
        bodies = [row["body"] for row in read_csv(crm / "notes.csv")[1]]
        assert note["note"] in bodies

        proxy.paths.clear()
        config = configure(proxy.url, full_scan='"0s"')
        third = _run(config)
        assert _gets(proxy, "/client-notes") == 3  # a complete listing again
        deletes = [op for op in third["operations"] if op["action"] == "delete"]
        assert [(op["entity"], op["target"]) for op in deletes] == [("note", "crm")]
        bodies = [row["body"] for row in read_csv(crm / "notes.csv")[1]]
        assert note["note"] not in bodies
        assert len(bodies) == COMPANIES * NOTES_EACH - 1
