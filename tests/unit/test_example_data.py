"""The example CRM shipped in examples/crm is consistent and loads through the files connector."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pycountry
import pytest
from stdnum.eu import vat

from connectors.files import FilesConnector, FilesSettings
from sync.model import EntityKind

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "crm"

COMPANY_COLUMNS = [
    "id",
    "kind",
    "name",
    "country",
    "currency",
    "status",
    "tin_type",
    "tin",
    "vat_number",
    "due_days",
    "city",
    "post_code",
    "street_line",
    "building_number",
    "phone",
    "website",
    "segment",
]
CONTACT_COLUMNS = ["id", "company_id", "name", "email", "phone", "title", "type"]
NOTE_COLUMNS = ["id", "company_id", "body", "created_at"]

CURRENCIES = {"PL": "PLN", "CZ": "CZK", "SE": "SEK", "DK": "DKK"}
"""Countries outside the euro area the example uses; every other one pays in EUR."""


def _read(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (EXAMPLE / name).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def companies() -> list[dict[str, str]]:
    header, rows = _read("companies.csv")
    assert header == COMPANY_COLUMNS
    return rows


@pytest.fixture(scope="module")
def contacts() -> list[dict[str, str]]:
    header, rows = _read("contacts.csv")
    assert header == CONTACT_COLUMNS
    return rows


@pytest.fixture(scope="module")
def notes() -> list[dict[str, str]]:
    header, rows = _read("notes.csv")
    assert header == NOTE_COLUMNS
    return rows


@pytest.mark.parametrize("name", ["companies.csv", "contacts.csv", "notes.csv"])
def test_files_are_utf8_with_plain_newlines(name: str) -> None:
    data = (EXAMPLE / name).read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    assert b"\r" not in data
    assert data.endswith(b"\n")
    data.decode("utf-8")


def test_sizes(
    companies: list[dict[str, str]], contacts: list[dict[str, str]], notes: list[dict[str, str]]
) -> None:
    kinds = Counter(row["kind"] for row in companies)
    assert len(companies) == 36
    assert kinds["supplier"] >= 5
    assert kinds["client"] >= 25
    assert 60 <= len(contacts) <= 80
    assert 15 <= len(notes) <= 25


@pytest.mark.parametrize("name", ["companies.csv", "contacts.csv", "notes.csv"])
def test_ids_are_unique_and_present(name: str) -> None:
    _, rows = _read(name)
    ids = [row["id"] for row in rows]
    assert all(ids)
    assert len(set(ids)) == len(ids)


def test_kinds_statuses_and_terms(companies: list[dict[str, str]]) -> None:
    for row in companies:
        assert row["kind"] in {"client", "supplier"}, row["id"]
        assert row["status"] in {"active", "prospect"}, row["id"]
        assert row["tin_type"] == "vat", row["id"]
        assert row["due_days"] in {"14", "30", "45", "60"}, row["id"]
        assert row["name"].strip() == row["name"] != "", row["id"]
        assert re.fullmatch(r"https://[a-z0-9-]+\.example", row["website"]), row["id"]
        assert re.fullmatch(r"\+\d{2,3}( \d{1,8})+", row["phone"]), row["id"]
        assert row["segment"], row["id"]
    assert any(row["status"] == "prospect" for row in companies)


def test_countries_and_currencies(companies: list[dict[str, str]]) -> None:
    for row in companies:
        country = pycountry.countries.get(alpha_2=row["country"])
        assert country is not None, row["id"]
        assert row["currency"] == CURRENCIES.get(row["country"], "EUR"), row["id"]
    assert len({row["country"] for row in companies}) >= 8


def test_vat_numbers_are_valid(companies: list[dict[str, str]]) -> None:
    numbers = [row["vat_number"] for row in companies]
    assert len(set(numbers)) == len(numbers)
    for row in companies:
        number = row["vat_number"]
        assert number == vat.compact(number), row["id"]
        assert number.startswith(row["country"]), row["id"]
        assert vat.is_valid(number), f"{row['id']}: {number}"


def test_tin_only_on_a_few_and_consistent(companies: list[dict[str, str]]) -> None:
    with_tin = [row for row in companies if row["tin"]]
    assert 1 <= len(with_tin) <= 3
    for row in with_tin:
        assert row["vat_number"] == row["country"] + row["tin"], row["id"]


def test_contacts_belong_to_companies(
    companies: list[dict[str, str]], contacts: list[dict[str, str]]
) -> None:
    clients = {row["id"] for row in companies if row["kind"] == "client"}
    per_company = Counter(row["company_id"] for row in contacts)
    # Flowtly keeps contacts for clients only, so suppliers ship without any.
    assert set(per_company) == clients, "every client has a contact, no supplier has one"
    assert all(1 <= count <= 3 for count in per_company.values())


def test_contact_emails_and_types(contacts: list[dict[str, str]]) -> None:
    emails: dict[str, set[str]] = {}
    first: set[str] = set()
    for row in contacts:
        email = row["email"]
        assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9-]+\.example", email), row["id"]
        seen = emails.setdefault(row["company_id"], set())
        assert email not in seen, f"{row['id']}: {email} repeated within {row['company_id']}"
        seen.add(email)
        assert row["name"], row["id"]
        assert row["title"], row["id"]
        if row["company_id"] in first:
            assert row["type"] in {"billing", "other"}, row["id"]
        else:
            assert row["type"] == "main", row["id"]
            first.add(row["company_id"])


def test_contact_domains_match_company_websites(
    companies: list[dict[str, str]], contacts: list[dict[str, str]]
) -> None:
    websites = {row["id"]: row["website"] for row in companies}
    for row in contacts:
        domain = row["email"].split("@", 1)[1]
        assert websites[row["company_id"]] == f"https://{domain}", row["id"]


def test_notes_belong_to_clients(
    companies: list[dict[str, str]], notes: list[dict[str, str]]
) -> None:
    clients = {row["id"] for row in companies if row["kind"] == "client"}
    for row in notes:
        assert row["company_id"] in clients, row["id"]
        assert row["body"].strip(), row["id"]
        created = datetime.fromisoformat(row["created_at"])
        assert created.utcoffset() == timedelta(0), row["id"]
        assert created.isoformat() == row["created_at"], row["id"]


async def test_files_connector_reads_every_row(
    companies: list[dict[str, str]], contacts: list[dict[str, str]], notes: list[dict[str, str]]
) -> None:
    expected = {
        EntityKind.CLIENT: sum(row["kind"] == "client" for row in companies),
        EntityKind.COUNTERPARTY: sum(row["kind"] == "supplier" for row in companies),
        EntityKind.CONTACT: len(contacts),
        EntityKind.NOTE: len(notes),
    }
    connector = FilesConnector(FilesSettings(path=EXAMPLE))
    async with connector:
        for entity, count in expected.items():
            records = []
            async for batch in connector.read(entity):
                assert not batch.rejected, batch.rejected
                records.extend(batch.records)
            assert len(records) == count, entity
