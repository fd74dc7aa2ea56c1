"""A contact whose company is unknown: the report and `status` name it and the company it
waits for; once that company exists it syncs and is no longer listed."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_support import CONTACT_COLUMNS, read_csv, run_cli, small_crm_config, write_csv


def test_a_contact_of_an_unknown_company_is_named_in_the_report_and_status(
    tmp_path: Path,
) -> None:
    config = small_crm_config(tmp_path, f"sandbox://{tmp_path / 'flowtly.db'}")
    contacts = tmp_path / "crm" / "contacts.csv"
    _, rows = read_csv(contacts)
    rows.append({"id": "P999", "company_id": "C999", "name": "Orphan", "email": "o@x.example"})
    write_csv(contacts, CONTACT_COLUMNS, rows)

    ran = run_cli("run", "--output", "json", config=config)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["waiting"] == {"contact": 1}
    [waiting] = [w for w in report["warnings"] if w["id"] == "P999"]
    assert (waiting["entity"], waiting["field"], waiting["value"]) == (
        "contact",
        "company_id",
        "C999",
    )
    assert "C999" in waiting["reason"]

    text = run_cli("diff", config=config)
    assert "P999" in text.stdout, text.stdout
    assert "C999" in text.stdout
    status = run_cli("status", config=config)
    assert status.returncode == 0, status.stderr
    [line] = [line for line in status.stdout.splitlines() if "P999" in line]
    assert "C999" in line

    companies = tmp_path / "crm" / "companies.csv"
    header, company_rows = read_csv(companies)
    company_rows.append(
        {"id": "C999", "kind": "client", "name": "Found Again Ltd", "country": "PL"}
    )
    write_csv(companies, header, company_rows)
    again = run_cli("run", "--output", "json", config=config)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["summary"]["contact"] == {"create": 1}
    after = run_cli("status", config=config)
    assert "P999" not in after.stdout
