"""CSV files as people make them, through ``flowtly-sync run`` with the default config:
a spreadsheet export (``;``, BOM, CRLF), a row cut short, a quote left open."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from e2e_support import (
    COMPANY_COLUMNS,
    CONTACT_COLUMNS,
    NOTE_COLUMNS,
    Row,
    run_cli,
    small_crm,
    write_config,
)


def _excel(path: Path, header: list[str], rows: list[Row]) -> None:
    """What a spreadsheet in a ``;`` locale saves as "CSV UTF-8": BOM, ``;``, CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    path.write_bytes(codecs.BOM_UTF8 + buffer.getvalue().encode("utf-8"))


def _exported(tmp_path: Path) -> tuple[Path, Path]:
    crm = tmp_path / "crm"
    crm.mkdir()
    data = small_crm()
    _excel(crm / "companies.csv", COMPANY_COLUMNS, data.companies)
    _excel(crm / "contacts.csv", CONTACT_COLUMNS, data.contacts)
    _excel(crm / "notes.csv", NOTE_COLUMNS, data.notes)
    config = write_config(
        tmp_path / "config.toml",
        base_url=f"sandbox://{tmp_path / 'flowtly.db'}",
        crm=crm,
        store=tmp_path / "state.db",
    )
    return crm, config


def test_an_excel_export_syncs_with_the_default_config(tmp_path: Path) -> None:
    crm, config = _exported(tmp_path)
    before = (crm / "companies.csv").read_bytes()
    result = run_cli("run", "--output", "json", config=config)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["client"]["create"] == 5
    assert summary["counterparty"]["create"] == 1
    assert summary["contact"]["create"] == 10
    assert summary["note"]["create"] == 2
    assert (crm / "companies.csv").read_bytes() == before
    again = run_cli("run", config=config)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout


def test_a_row_cut_short_is_rejected_with_its_line(tmp_path: Path) -> None:
    crm, config = _exported(tmp_path)
    with (crm / "companies.csv").open("ab") as handle:
        handle.write(b"C099;client;Only A Name Ltd\r\n")
    result = run_cli("run", "--output", "json", config=config)
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    [error] = [e for e in report["errors"] if e["id"] == "C099"]
    assert "line 8" in error["reason"]
    assert "3 cells but the header has 17" in error["reason"]
    assert report["summary"]["client"]["create"] == 5


def test_an_unterminated_quote_is_reported_at_the_line_it_opens(tmp_path: Path) -> None:
    crm, config = _exported(tmp_path)
    lines = (crm / "companies.csv").read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b";Ba", b';"Ba', 1)
    (crm / "companies.csv").write_bytes(b"\r\n".join(lines))
    result = run_cli("run", config=config)
    assert result.returncode != 0
    assert "companies.csv, line 3" in result.stdout + result.stderr
    assert "never closed" in result.stdout + result.stderr
