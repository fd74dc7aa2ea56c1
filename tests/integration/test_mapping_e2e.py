"""End to end through the command line: a CRM export with its own headers and values.

The CSV says "Company Name", "Lifecycle" (``Customer - Active``), "Land" (``Deutschland``)
and "Type" (``Customer``/``Vendor``); the ``[mapping]`` tables translate them. Clients
and suppliers reach the in-process sandbox with canonical values, a second run has
nothing else to do, a Flowtly edit of a status is written back as the CRM's own value, a
supplier's counterparty flags land in Flowtly, and a counterparty created in Flowtly
comes back as a ``Vendor`` row.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import cli_env

from sync.sandbox import SandboxSettings, create_app

pytestmark = pytest.mark.slow

HEADER = [
    "ID", "Type", "Company Name", "Lifecycle", "Land", "Web", "require_attachment", "cyclic",
    "budget_neutral", "logo_url", "counterparty_type", "Owner",
]  # fmt: skip
ROWS = [
    ["C1", "Customer", "Nordwind GmbH", "Customer - Active", "Deutschland", "", "", "", "", "",
     "", "anna"],
    ["C2", "Customer", "Lumière SARL", "Customer - Lost", "France", "", "", "", "", "", "",
     "ben"],
    ["S1", "Vendor", "Papier Polska sp. z o.o.", "", "Polen", "https://papier.example", "yes",
     "true", "no", "https://papier.example/logo.png", "", "carl"],
]  # fmt: skip

MAPPING = """
[mapping.company]
kinds = { "Customer" = "client", "Vendor" = "supplier" }
[mapping.company.fields."Type"]
field = "kind"
[mapping.company.fields."Company Name"]
field = "name"
[mapping.company.fields."Lifecycle"]
field = "status"
values = { "Customer - Active" = "active", "Customer - Lost" = "archived" }
[mapping.company.fields."Land"]
field = "country"
[mapping.company.fields."Web"]
field = "website"
[mapping.company.constants]
documents_language = "de"
[mapping.company.defaults]
currency = "EUR"
"""

Flowtly = Callable[[httpx.AsyncClient], Awaitable[Any]]


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


def with_flowtly(db: Path, action: Flowtly) -> Any:
    """Run ``action`` against the sandbox database, in-process, as an API user would."""

    async def run() -> Any:
        app = create_app(SandboxSettings(db=db))
        headers = {"Authorization": "Bearer test", "Accept": "application/ld+json"}
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=headers
            ) as client:
                return await action(client)
        finally:
            app.state.sandbox.close()

    return asyncio.run(run())


async def _listing(client: httpx.AsyncClient) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for collection, key in (("clients", "name"), ("counterparties", "displayName")):
        response = await client.get(f"/{collection}", params={"itemsPerPage": 30})
        response.raise_for_status()
        items = response.json()["member"]
        for item in items:
            for ref in ("country", "currency"):
                if isinstance(item.get(ref), str):
                    code = await client.get(item[ref])
                    code.raise_for_status()
                    item[ref] = code.json()["code"]
        found[collection] = {item[key]: item for item in items}
    return found


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["ID"]: row for row in csv.DictReader(handle)}


@pytest.fixture
def env(tmp_path: Path) -> tuple[Path, Path, Path]:
    crm = tmp_path / "crm"
    crm.mkdir()
    with (crm / "companies.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(ROWS)
    db = tmp_path / "fl.db"
    config = tmp_path / "config.toml"
    config.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps('sandbox://' + str(db))}\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(tmp_path / 'state.db'))}\n"
        "[crm]\n"
        'type = "files"\n'
        'path = "crm"\n'
        "[logging]\n"
        'format = "json"\n'
        'level = "warning"\n' + MAPPING,
        encoding="utf-8",
    )
    return config, crm, db


def nothing_to_do(config: Path) -> None:
    diff = cli(config, "diff", "--output", "json")
    assert diff.returncode == 0, diff.stderr
    report = json.loads(diff.stdout)
    assert report["operations"] == []
    assert report["errors"] == []


def test_mapped_crm_syncs_both_ways_with_canonical_values(env: tuple[Path, Path, Path]) -> None:
    config, crm, db = env
    first = cli(config, "run", "--output", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["errors"] == []

    flowtly = with_flowtly(db, _listing)
    clients, suppliers = flowtly["clients"], flowtly["counterparties"]
    assert set(clients) == {"Nordwind GmbH", "Lumière SARL"}
    nordwind, lumiere = clients["Nordwind GmbH"], clients["Lumière SARL"]
    assert (nordwind["status"], nordwind["country"], nordwind["currency"]) == (
        "active",
        "DE",
        "EUR",
    )
    assert nordwind["documentsLanguage"] == "de"
    assert (lumiere["status"], lumiere["country"]) == ("archived", "FR")
    papier = suppliers["Papier Polska sp. z o.o."]
    assert papier["type"] == "supplier"
    assert papier["country"] == "PL"
    assert papier["requireAttachment"] is True
    assert papier["cyclic"] is True
    assert papier["budgetNeutral"] is False
    assert papier["corporateWebsiteUrl"] == "https://papier.example"
    assert papier["logoUrl"] == "https://papier.example/logo.png"

    # Flowtly-side edits: a status (written back as the CRM's value) and a new counterparty.
    async def edit(client: httpx.AsyncClient) -> None:
        patch = await client.patch(
            f"/clients/{nordwind['id']}",
            json={"status": "archived"},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        patch.raise_for_status()
        created = await client.post(
            "/counterparty",
            json={"displayName": "Druckerei Nord AG", "type": "supplier", "cyclic": True},
        )
        created.raise_for_status()

    with_flowtly(db, edit)
    second = cli(config, "run", "--output", "json")
    assert second.returncode == 0, second.stdout + second.stderr
    # Only the two Flowtly edits travel: the mapped values of the first run did not drift.
    operations = json.loads(second.stdout)["operations"]
    assert sorted((op["entity"], op["action"], op["target"]) for op in operations) == [
        ("client", "update", "crm"),
        ("counterparty", "create", "crm"),
    ]
    rows = read_rows(crm / "companies.csv")
    assert rows["C1"]["Lifecycle"] == "Customer - Lost"
    assert rows["C1"]["Land"] == "Deutschland"  # untouched: only the changed field is written
    assert rows["C1"]["Owner"] == "anna"  # an unmapped column is kept
    new = [row for row in rows.values() if row["Company Name"] == "Druckerei Nord AG"]
    assert len(new) == 1
    assert new[0]["Type"] == "Vendor"
    assert new[0]["cyclic"] == "true"
    nothing_to_do(config)
