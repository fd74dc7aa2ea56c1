"""The mass-delete guard end to end: an emptied companies file deletes nothing in Flowtly
until one run is told to, with ``--allow-mass-delete``."""

from __future__ import annotations

import json

import pytest
from e2e_support import COMPANY_COLUMNS, Env, pl_vat, read_csv, write_csv

pytestmark = pytest.mark.slow


def _statuses(env: Env) -> list[str]:
    return sorted(str(c["status"]) for c in env.api.members("/clients"))


def test_header_only_companies_file_deletes_nothing_until_allowed(synced_env: Env) -> None:
    suppliers = len(synced_env.api.members("/counterparties"))
    assert suppliers == 1
    assert _statuses(synced_env) == ["active"] * 5
    write_csv(synced_env.crm / "companies.csv", COMPANY_COLUMNS, [])

    refused = synced_env.run("run")
    assert refused.returncode == 3, refused.stderr
    assert "mass-delete guard: 5 of 5 linked client records" in refused.stdout
    assert "mass-delete guard: 1 of 1 linked counterparty records" in refused.stdout
    assert "--allow-mass-delete" in refused.stdout
    assert _statuses(synced_env) == ["active"] * 5
    assert len(synced_env.api.members("/counterparties")) == suppliers

    again = synced_env.run("run", "--output", "json")
    assert again.returncode == 3
    report = json.loads(again.stdout)
    assert {e["entity"] for e in report["errors"] if e["id"] == "*"} == {"client", "counterparty"}
    assert not {"delete", "archive"} & {op["action"] for op in report["operations"]}

    allowed = synced_env.run("run", "--allow-mass-delete", "--output", "json")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    summary = json.loads(allowed.stdout)["summary"]
    assert summary["client"] == {"archive": 5}
    assert summary["counterparty"] == {"delete": 1}
    assert _statuses(synced_env) == ["archived"] * 5
    assert synced_env.api.members("/counterparties") == []


def _row(kind: str, number: int) -> dict[str, str]:
    return {
        "id": f"X{number:03d}",
        "kind": kind,
        "name": f"Firma {kind} {number:02d} sp. z o.o.",
        "country": "PL",
        "currency": "PLN",
        "status": "active",
        "tin_type": "vat",
        "vat_number": pl_vat(1000 + number),
        "due_days": "14",
        "city": "Poznań",
    }


def test_a_companies_file_losing_60_percent_of_its_rows_deletes_no_supplier(
    synced_env: Env,
) -> None:
    companies = synced_env.crm / "companies.csv"
    header, rows = read_csv(companies)
    extra = [_row("client", n) for n in range(5)] + [_row("supplier", n) for n in range(5, 10)]
    write_csv(companies, header, rows + extra)
    grown = synced_env.run("run")
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert len(synced_env.api.members("/counterparties")) == 6

    # 10 clients and 6 suppliers; the file keeps 2 clients and 4 suppliers (10 of 16 gone).
    # Two suppliers of six alone would pass the guard; as part of the file they must not.
    clients = [r for r in rows + extra if r["kind"] == "client"]
    suppliers = [r for r in rows + extra if r["kind"] == "supplier"]
    write_csv(companies, header, clients[:2] + suppliers[:4])
    refused = synced_env.run("run", "--output", "json")
    assert refused.returncode == 3, refused.stderr
    reasons = {e["entity"]: e["reason"] for e in json.loads(refused.stdout)["errors"]}
    assert "8 of 10 linked client records" in reasons["client"]
    assert (
        "10 of 16 linked companies (clients and counterparties together)"
        in (reasons["counterparty"])
    )
    assert len(synced_env.api.members("/counterparties")) == 6
    assert _statuses(synced_env).count("active") == 10
