"""End to end through the command line: a CRM full of bad rows against the in-process sandbox.

Every bad row (bad VAT checksum, unknown country, missing name, invalid e-mail) is reported
with its field and reason, the run exits 3, every good row reaches Flowtly, ``status``
lists the rejected rows, and a fixed row syncs on the next run and leaves ``status``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import cli_env

from sync.report.render import mask
from sync.sandbox import SandboxSettings, create_app

pytestmark = pytest.mark.slow

GOOD_PL = "PL9295973794"
BAD_PL = "PL9205973794"  # GOOD_PL with one digit changed: the NIP checksum fails
GOOD_DE = "DE136695976"
BAD_DE = "DE137695976"

COMPANY_COLUMNS = ["id", "kind", "name", "country", "currency", "vat_number", "phone"]
COMPANIES = [
    ["G1", "client", "Zażółć Druk sp. z o.o.", "PL", "PLN", GOOD_PL, "+48 22 202 15 14"],
    ["G2", "supplier", "Müller Maschinenbau GmbH", "Germany", "EUR", GOOD_DE, ""],
    ["G3", "client", "Société Lyonnaise SAS", "FRA", "EUR", "FR40303265045", "12"],
    ["B1", "client", "Zła Suma Kontrolna sp. z o.o.", "PL", "PLN", BAD_PL, ""],
    ["B2", "client", "Atlantis Trading Ltd", "Atlantis", "EUR", "", ""],
    ["B3", "client", "", "PL", "PLN", "", ""],
    ["B4", "supplier", "Falsch Lieferant GmbH", "DE", "EUR", BAD_DE, ""],
]
CONTACT_COLUMNS = ["id", "company_id", "name", "email"]
CONTACTS = [
    ["P1", "G1", "Joanna Lewandowska", "joanna@zazolc.example"],
    ["P2", "G1", "Paweł Kowalski", "pawel(at)zazolc.example"],
    ["P3", "G3", "Julien Dubois", "julien@tolerie.example"],
]
NOTE_COLUMNS = ["id", "company_id", "body"]
NOTES = [["N1", "G1", "Invoices in PLN, 14-day terms."]]


def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
        env=cli_env(),
        check=False,
    )


async def _flowtly(db: Path) -> dict[str, list[dict[str, Any]]]:
    app = create_app(SandboxSettings(db=db))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer test", "Accept": "application/ld+json"}
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox", headers=headers
        ) as client:
            for collection in ("clients", "counterparties", "client-contacts", "client-notes"):
                response = await client.get(f"/{collection}", params={"itemsPerPage": 30})
                response.raise_for_status()
                found[collection] = response.json()["member"]
    finally:
        app.state.sandbox.close()
    return found


def flowtly(db: Path) -> dict[str, list[dict[str, Any]]]:
    """What Flowtly holds, read through the sandbox app in-process."""
    return asyncio.run(_flowtly(db))


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path, Path]:
    crm = tmp_path / "crm"
    crm.mkdir()
    write(crm / "companies.csv", COMPANY_COLUMNS, COMPANIES)
    write(crm / "contacts.csv", CONTACT_COLUMNS, CONTACTS)
    write(crm / "notes.csv", NOTE_COLUMNS, NOTES)
    db = tmp_path / "fl.db"
    config = tmp_path / "config.toml"
    config.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps('sandbox://' + str(db))}\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(tmp_path / 'state.db'))}\n"
        "[crm]\n"
        'type = "files"\n'
        f"path = {json.dumps(str(crm))}\n"
        "[logging]\n"
        'format = "json"\n'
        'level = "warning"\n',
        encoding="utf-8",
    )
    return config, crm, db


def test_bad_rows_are_reported_good_rows_sync_and_fixed_rows_retry(
    env: tuple[Path, Path, Path],
) -> None:
    config, crm, db = env
    first = cli(config, "run", "--output", "json")
    assert first.returncode == 3, first.stderr
    report = json.loads(first.stdout)
    errors = {(e["entity"], e["id"], e["field"]): e for e in report["errors"]}
    assert errors.keys() == {
        ("client", "B1", "vat_number"),
        ("client", "B2", "country"),
        ("client", "B3", "name"),
        ("counterparty", "B4", "vat_number"),
        ("contact", "P2", "email"),
    }
    for error in errors.values():
        assert error["side"] == "crm"
        assert error["reason"]
    assert "checksum" in errors[("client", "B1", "vat_number")]["reason"]
    assert errors[("client", "B1", "vat_number")]["value"] == mask(BAD_PL)  # masked
    assert "ISO 3166" in errors[("client", "B2", "country")]["reason"]
    assert errors[("client", "B2", "country")]["value"] == "Atlantis"
    assert "requires name" in errors[("client", "B3", "name")]["reason"]
    assert errors[("contact", "P2", "email")]["value"] == "pawel(at)zazolc.example"
    # The phone gate only warns: G3 syncs anyway, and the warning says why.
    assert [(w["id"], w["field"]) for w in report["warnings"]] == [("G3", "phone")]
    assert BAD_PL not in first.stdout + first.stderr

    held = flowtly(db)
    assert sorted(c["name"] for c in held["clients"]) == [
        "Société Lyonnaise SAS",
        "Zażółć Druk sp. z o.o.",
    ]
    (supplier,) = held["counterparties"]
    assert supplier["displayName"] == "Müller Maschinenbau GmbH"
    assert sorted(c["email"] for c in held["client-contacts"]) == [
        "joanna@zazolc.example",
        "julien@tolerie.example",
    ]
    assert len(held["client-notes"]) == 1

    status = cli(config, "status")
    assert status.returncode == 0, status.stderr
    assert "5 rejected record(s)" in status.stdout
    lines = {line.split()[1]: line for line in status.stdout.splitlines() if "(crm)" in line}
    assert lines.keys() == {"B1", "B2", "B3", "B4", "P2"}
    assert "field vat_number" in lines["B1"]
    assert "checksum" in lines["B1"]
    assert BAD_PL not in status.stdout
    assert str(mask(BAD_PL)) in lines["B1"]
    assert "field country value 'Atlantis'" in lines["B2"]
    assert "field name" in lines["B3"]
    assert "field email value 'pawel(at)zazolc.example'" in lines["P2"]

    # Unchanged rows stay rejected; the fixed one syncs and leaves the list.
    rows = [list(row) for row in COMPANIES]
    rows[3][5] = "PL8826286845"
    write(crm / "companies.csv", COMPANY_COLUMNS, rows)
    second = cli(config, "run", "--output", "json")
    assert second.returncode == 3, second.stderr
    again = json.loads(second.stdout)
    assert {(e["entity"], e["id"]) for e in again["errors"]} == {
        ("client", "B2"),
        ("client", "B3"),
        ("counterparty", "B4"),
        ("contact", "P2"),
    }
    created = [
        op for op in again["operations"] if op["action"] == "create" and op["target"] == "flowtly"
    ]
    assert [(op["entity"], op["crm_id"]) for op in created] == [("client", "B1")]
    assert "Zła Suma Kontrolna sp. z o.o." in {c["name"] for c in flowtly(db)["clients"]}

    status = cli(config, "status")
    assert "4 rejected record(s)" in status.stdout
    assert " B1 " not in status.stdout
