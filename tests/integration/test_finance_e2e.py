"""Issue 4 part C end to end: the CLI (a child process) against an in-process sandbox.

Suppliers, notes with mapped authors (and notes that wait for their company), documents
summaries in CRM columns and ``status --client``, branding enrichment, and ``merge``.
The sandbox database is seeded and inspected between runs through `Sandbox` on the same
file, as nothing else is running then.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from e2e_support import cli_env, pl_vat, read_csv, write_csv

from sync.sandbox import Sandbox, SandboxSettings
from sync.sandbox._resources import Resource

pytestmark = pytest.mark.slow

TOKEN = "finance-e2e-token"
COMPANY = ["id", "kind", "name", "country", "vat_number", "website", "logo_url"]
NOTE = ["id", "company_id", "body", "author"]


def _config(root: Path, extra: str = "") -> Path:
    path = root / "config.toml"
    path.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps('sandbox://' + str(root / 'fl.db'))}\n"
        f"token = {json.dumps(TOKEN)}\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(root / 'state.db'))}\n"
        "[crm]\n"
        'type = "files"\n'
        f"path = {json.dumps(str(root / 'crm'))}\n"
        "[logging]\n"
        'format = "json"\n'
        'level = "warning"\n' + extra,
        encoding="utf-8",
    )
    return path


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        cwd=config.parent,
        check=False,
    )


def _run(config: Path) -> tuple[int, dict[str, Any]]:
    done = _cli(config, "run", "--output", "json")
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@contextmanager
def _sandbox(root: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(db=root / "fl.db", token=TOKEN))
    try:
        yield sandbox
    finally:
        sandbox.close()


def _by(rows: list[dict[str, str]], key: str = "id") -> dict[str, dict[str, str]]:
    return {row[key]: row for row in rows}


def _crm(
    root: Path,
    companies: list[Mapping[str, str]],
    notes: list[Mapping[str, str]],
    columns: list[str] = COMPANY,
) -> None:
    folder = root / "crm"
    folder.mkdir()
    write_csv(folder / "companies.csv", columns, companies)
    write_csv(folder / "notes.csv", NOTE, notes)


def _ops(report: dict[str, Any], entity: str, action: str) -> list[dict[str, Any]]:
    return [op for op in report["operations"] if (op["entity"], op["action"]) == (entity, action)]


def test_suppliers_notes_documents_and_enrichment(tmp_path: Path) -> None:
    _crm(
        tmp_path,
        [
            {
                "id": "C1",
                "kind": "client",
                "name": "Alpha Druk",
                "country": "PL",
                "vat_number": pl_vat(11),
            },
            {"id": "C2", "kind": "client", "name": "", "country": "PL"},
            {
                "id": "S1",
                "kind": "supplier",
                "name": "Tkacz Biuro",
                "country": "PL",
                "vat_number": pl_vat(12),
                "website": "https://tkacz.example",
            },
            {"id": "S2", "kind": "supplier", "name": "Nowak Transport", "country": "PL"},
        ],
        [
            {
                "id": "N1",
                "company_id": "C1",
                "body": "Invoices in PLN.",
                "author": "grace.hopper@example.com",
            },
            {"id": "N2", "company_id": "C1", "body": "Written by the token's employee."},
            {"id": "N3", "company_id": "C2", "body": "Waits for its company.", "author": "3"},
            {"id": "N4", "company_id": "C1", "body": "Deleted in the CRM later."},
            {"id": "N5", "company_id": "C1", "body": "Deleted in Flowtly later."},
        ],
    )
    config = _config(
        tmp_path,
        '[documents]\nenabled = true\ntotals_field = "documents_total"\n'
        "[enrichment]\nbranding = true\n",
    )
    code, first = _run(config)
    assert code == 3, first
    assert [e["id"] for e in first["errors"]] == ["C2"]
    assert first["waiting"] == {"note": 1}
    assert len(_ops(first, "counterparty", "create")) == 2
    with _sandbox(tmp_path) as sandbox:
        suppliers = sandbox.records(Resource.COUNTERPARTIES)
        assert {s["displayName"]: s["type"] for s in suppliers} == {
            "Tkacz Biuro": "supplier",
            "Nowak Transport": "supplier",
        }
        assert all(s.get("logoUrl") for s in suppliers)  # enrichment queued after the run
        notes = {n["note"]: n["employee"] for n in sandbox.records(Resource.NOTES)}
        assert notes["Invoices in PLN."] == "/employees/2"
        assert notes["Written by the token's employee."] == "/employees/1"
        (alpha,) = sandbox.records(Resource.CLIENTS)
        sandbox.add_document(
            int(alpha["id"]), {"issueDate": "2026-03-02", "currency": "PLN", "totalGross": "100"}
        )
        sandbox.add_document(
            int(alpha["id"]), {"issueDate": "2026-01-15", "currency": "PLN", "totalGross": "23.5"}
        )
    _, companies = read_csv(tmp_path / "crm" / "companies.csv")
    assert _by(companies)["C1"]["documents_count"] == "0"
    rows = [dict(r, name="Beta Serwis") if r["id"] == "C2" else r for r in companies]
    write_csv(tmp_path / "crm" / "companies.csv", list(companies[0]), rows)

    code, second = _run(config)
    assert code == 0, second
    assert second["conflicts"] == []
    logos = _ops(second, "counterparty", "update")
    assert {op["crm_id"] for op in logos} == {"S1", "S2"}
    assert all(op["target"] == "crm" for op in logos)
    _, companies = read_csv(tmp_path / "crm" / "companies.csv")
    by_id = _by(companies)
    assert by_id["S1"]["logo_url"].startswith("https://logos.example.com/")
    assert by_id["S1"]["website"] == "https://tkacz.example"
    assert (by_id["C1"]["documents_count"], by_id["C1"]["latest_document_date"]) == (
        "2",
        "2026-03-02",
    )
    assert by_id["C1"]["documents_total"] == "PLN 123.50"
    assert by_id["C2"]["documents_count"] == "0"

    _, notes_rows = read_csv(tmp_path / "crm" / "notes.csv")
    edited = [
        dict(r, body="Invoices in EUR now.") if r["id"] == "N1" else r
        for r in notes_rows
        if r["id"] != "N4"
    ]
    write_csv(tmp_path / "crm" / "notes.csv", NOTE, edited)
    with _sandbox(tmp_path) as sandbox:
        by_body = {n["note"]: str(n["id"]) for n in sandbox.records(Resource.NOTES)}
        assert by_body["Waits for its company."]  # synced once its company linked
        sandbox.update(
            Resource.NOTES,
            by_body["Written by the token's employee."],
            {"note": "Edited in Flowtly."},
        )
        sandbox.remove(Resource.NOTES, by_body["Deleted in Flowtly later."])
        employee = {n["note"]: n["employee"] for n in sandbox.records(Resource.NOTES)}
        assert employee["Waits for its company."] == "/employees/3"

    code, third = _run(config)
    assert code == 0, third
    assert third["conflicts"] == []
    with _sandbox(tmp_path) as sandbox:
        bodies = sorted(str(n["note"]) for n in sandbox.records(Resource.NOTES))
    assert bodies == ["Edited in Flowtly.", "Invoices in EUR now.", "Waits for its company."]
    _, notes_rows = read_csv(tmp_path / "crm" / "notes.csv")
    crm_notes = _by(notes_rows)
    assert set(crm_notes) == {"N1", "N2", "N3"}
    assert crm_notes["N1"]["author"] == "grace.hopper@example.com"  # never rewritten to an id
    assert crm_notes["N2"]["body"] == "Edited in Flowtly."

    status = _cli(config, "status", "--client", "C1")
    assert status.returncode == 0, status.stderr
    assert "documents: 2" in status.stdout
    assert "latest issue date: 2026-03-02" in status.stdout
    assert "total gross: PLN 123.50" in status.stdout


def test_merge_dry_run_then_apply_then_link(tmp_path: Path) -> None:
    vat = pl_vat(21)
    _crm(
        tmp_path,
        [
            {
                "id": "S1",
                "kind": "supplier",
                "name": "Dup Supplier",
                "country": "PL",
                "vat_number": vat,
            }
        ],
        [],
        # No logo/website columns: the CRM does not see what the merge filled in, so the
        # first link after it has nothing to disagree about.
        ["id", "kind", "name", "country", "vat_number"],
    )
    config = _config(tmp_path)
    with _sandbox(tmp_path) as sandbox:
        pl = next(c for c in sandbox.records(Resource.COUNTRIES) if c["code"] == "PL")
        for name, logo in (
            ("Dup Supplier", None),
            ("DUP SUPPLIER", "https://l.example/d.png"),
            ("Dup Supplier sp. z o.o.", None),
        ):
            sandbox.insert(
                Resource.COUNTERPARTIES,
                {
                    "type": "supplier",
                    "displayName": name,
                    "vatNumber": vat,
                    "country": f"/countries/{pl['id']}",
                    "logoUrl": logo,
                    "requireAttachment": False,
                    "cyclic": False,
                    "budgetNeutral": False,
                },
            )
    dry = _cli(config, "merge")
    assert dry.returncode == 0, dry.stderr
    assert "keep flowtly 1 (lowest id), merge 2, 3" in dry.stdout
    assert vat[2:] not in dry.stdout  # the tax id in the key is masked
    with _sandbox(tmp_path) as sandbox:
        assert len(sandbox.records(Resource.COUNTERPARTIES)) == 3

    applied = _cli(config, "merge", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert "merged flowtly 2, 3 into 1" in applied.stdout
    with _sandbox(tmp_path) as sandbox:
        (kept,) = sandbox.records(Resource.COUNTERPARTIES)
    assert (kept["id"], kept["logoUrl"]) == (1, "https://l.example/d.png")

    code, report = _run(config)
    assert code == 0, (report["errors"], report["conflicts"])
    (link,) = _ops(report, "counterparty", "link")
    assert (link["crm_id"], link["flowtly_id"]) == ("S1", "1")
