"""Canonical normalization, fingerprints and natural keys (table-driven)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from sync.model import SCHEMAS, EntityKind, FieldSpec, FieldType, Record, Scalar
from sync.normalize import (
    NormalizationError,
    compact_tax_id,
    fingerprint,
    natural_key,
    normalize_fields,
    normalize_value,
)

CASES: list[tuple[FieldType, object, Scalar]] = [
    (FieldType.TEXT, "  Acme  Sp. z o.o. ", "Acme  Sp. z o.o."),
    (FieldType.TEXT, "   ", None),
    (FieldType.TEXT, "", None),
    (FieldType.TEXT, None, None),
    (FieldType.TEXT, "Zażółć gęślą jaźń", "Zażółć gęślą jaźń"),
    (FieldType.TEXT, '=HYPERLINK("http://x","y")', '=HYPERLINK("http://x","y")'),
    (FieldType.TEXT, "line 1\nline 2", "line 1\nline 2"),
    (FieldType.TEXT, 42, "42"),
    (FieldType.EMAIL, "  Jan.Kowalski@Example.COM ", "jan.kowalski@example.com"),
    (FieldType.EMAIL, "", None),
    (FieldType.COUNTRY, "pl", "PL"),
    (FieldType.COUNTRY, " POL ", "PL"),
    (FieldType.COUNTRY, "Germany", "DE"),
    (FieldType.COUNTRY, "deu", "DE"),
    (FieldType.COUNTRY, "UK", "GB"),
    (FieldType.COUNTRY, "", None),
    (FieldType.CURRENCY, " pln", "PLN"),
    (FieldType.CURRENCY, "EUR", "EUR"),
    (FieldType.CURRENCY, "", None),
    (FieldType.TAX_ID, "pl 465-848.37/1", "PL465848371"),
    (FieldType.TAX_ID, "  ", None),
    (FieldType.TAX_ID, 12345, "12345"),
    (FieldType.INTEGER, 14, 14),
    (FieldType.INTEGER, "14", 14),
    (FieldType.INTEGER, " 14 ", 14),
    (FieldType.INTEGER, "-3", -3),
    (FieldType.INTEGER, 30.0, 30),
    (FieldType.INTEGER, "", None),
    (FieldType.BOOLEAN, True, True),
    (FieldType.BOOLEAN, "true", True),
    (FieldType.BOOLEAN, "FALSE", False),
    (FieldType.BOOLEAN, "1", True),
    (FieldType.BOOLEAN, "0", False),
    (FieldType.BOOLEAN, " yes ", True),
    (FieldType.BOOLEAN, "no", False),
    (FieldType.BOOLEAN, 1, True),
    (FieldType.BOOLEAN, "", None),
    (FieldType.DECIMAL, "23.00", "23"),
    (FieldType.DECIMAL, "7.50", "7.5"),
    (FieldType.DECIMAL, "100", "100"),
    (FieldType.DECIMAL, "0.00", "0"),
    (FieldType.DECIMAL, "-0", "0"),
    (FieldType.DECIMAL, 8, "8"),
    (FieldType.DECIMAL, 0.1, "0.1"),
    (FieldType.DECIMAL, Decimal("1E+2"), "100"),
    (FieldType.DECIMAL, " 5.250 ", "5.25"),
    (FieldType.DATETIME, "2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05+00:00"),
    (FieldType.DATETIME, "2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
    (FieldType.DATETIME, "2024-01-02T04:04:05+01:00", "2024-01-02T03:04:05+00:00"),
    (FieldType.DATETIME, "2024-01-02 03:04:05", "2024-01-02T03:04:05+00:00"),
    (FieldType.DATETIME, "2024-01-02", "2024-01-02T00:00:00+00:00"),
    (
        FieldType.DATETIME,
        datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "2024-01-02T03:04:05+00:00",
    ),
    (FieldType.DATETIME, date(2024, 1, 2), "2024-01-02T00:00:00+00:00"),
    (FieldType.REFERENCE, 17, "17"),
    (FieldType.REFERENCE, " c-17 ", "c-17"),
    (FieldType.REFERENCE, "", None),
]


@pytest.mark.parametrize(("kind", "raw", "expected"), CASES)
def test_normalize_value(kind: FieldType, raw: object, expected: Scalar) -> None:
    spec = FieldSpec("f", kind)
    value = normalize_value(spec, raw)
    assert value == expected
    assert type(value) is type(expected)
    # Canonical values are fixed points: normalizing twice changes nothing.
    assert normalize_value(spec, value) == expected


INVALID: list[tuple[FieldType, object]] = [
    (FieldType.COUNTRY, "Atlantis"),
    (FieldType.COUNTRY, "XX"),
    (FieldType.COUNTRY, 48),
    (FieldType.CURRENCY, "ZZZ"),
    (FieldType.CURRENCY, "euro"),
    (FieldType.INTEGER, "14.5"),
    (FieldType.INTEGER, "fourteen"),
    (FieldType.INTEGER, True),
    (FieldType.INTEGER, 1.5),
    (FieldType.BOOLEAN, "maybe"),
    (FieldType.BOOLEAN, 2),
    (FieldType.DECIMAL, "1,5"),
    (FieldType.DECIMAL, "NaN"),
    (FieldType.DECIMAL, "abc"),
    (FieldType.DECIMAL, False),
    (FieldType.DATETIME, "yesterday"),
    (FieldType.DATETIME, 12),
    (FieldType.EMAIL, 5),
    (FieldType.REFERENCE, 1.5),
]


@pytest.mark.parametrize(("kind", "raw"), INVALID)
def test_invalid_values_raise_with_field_value_and_reason(kind: FieldType, raw: object) -> None:
    with pytest.raises(NormalizationError) as caught:
        normalize_value(FieldSpec("the_field", kind), raw)
    assert caught.value.field == "the_field"
    assert caught.value.value == raw
    assert caught.value.reason
    assert isinstance(caught.value, ValueError)
    assert "the_field" in str(caught.value)


def test_normalize_fields_reports_bad_fields_and_keeps_good_ones() -> None:
    values, errors = normalize_fields(
        EntityKind.CLIENT,
        {"name": " Acme ", "country": "Narnia", "due_days": "x", "city": "", "bogus": 1},
    )
    assert values == {"name": "Acme", "city": None}
    assert sorted(error.field for error in errors) == ["bogus", "country", "due_days"]


def test_compact_tax_id() -> None:
    assert compact_tax_id(" de 123.456/789-0 ") == "DE1234567890"


FIELDS: dict[str, Scalar] = {"name": "Acme", "country": "PL", "due_days": 14}


def test_fingerprint_is_stable_and_ignores_order_and_missing_none() -> None:
    first = fingerprint(EntityKind.CLIENT, FIELDS)
    assert len(first) == 32
    assert int(first, 16) >= 0
    reordered = dict(reversed(list(FIELDS.items())))
    assert fingerprint(EntityKind.CLIENT, reordered) == first
    assert fingerprint(EntityKind.CLIENT, {**FIELDS, "city": None}) == first


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Acme2"},
        {"due_days": 15},
        {"due_days": "14"},
        {"country": None},
        {"logo_url": "x"},
        {"name": None, "city": "Acme"},
    ],
)
def test_fingerprint_sees_every_canonical_field(change: dict[str, Scalar]) -> None:
    assert fingerprint(EntityKind.CLIENT, {**FIELDS, **change}) != fingerprint(
        EntityKind.CLIENT, FIELDS
    )


def test_fingerprint_over_chosen_names() -> None:
    names = ["name", "country"]
    base = fingerprint(EntityKind.CLIENT, FIELDS, names)
    assert fingerprint(EntityKind.CLIENT, {**FIELDS, "due_days": 99}, names) == base
    assert fingerprint(EntityKind.CLIENT, {**FIELDS, "name": "X"}, names) != base
    assert fingerprint(EntityKind.CLIENT, FIELDS, frozenset(names)) == base
    assert fingerprint(EntityKind.CLIENT, FIELDS, ["name"]) != base
    # The same values under other names are another record.
    assert fingerprint(EntityKind.CLIENT, {"city": "Acme"}, ["city"]) != fingerprint(
        EntityKind.CLIENT, {"name": "Acme"}, ["name"]
    )


def test_fingerprint_is_the_same_in_another_process() -> None:
    code = (
        "from sync.normalize import fingerprint; from sync.model import EntityKind;"
        "print(fingerprint(EntityKind.CLIENT, {'name': 'Zażółć', 'due_days': 14,"
        " 'country': 'PL'}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    local = fingerprint(EntityKind.CLIENT, {"name": "Zażółć", "due_days": 14, "country": "PL"})
    assert out.stdout.strip() == local


NATURAL: list[tuple[EntityKind, dict[str, Scalar], str | None]] = [
    (EntityKind.CLIENT, {"vat_number": "PL46584837", "country": "PL"}, "tax:PL:46584837"),
    (EntityKind.CLIENT, {"tin": "46584837", "country": "PL"}, "tax:PL:46584837"),
    (EntityKind.CLIENT, {"tin": "465-848-37", "country": "PL"}, "tax:PL:46584837"),
    (EntityKind.CLIENT, {"vat_number": "DE123", "country": "PL"}, "tax:PL:DE123"),
    (EntityKind.CLIENT, {"vat_number": "EL0949", "country": "GR"}, "tax:GR:0949"),
    (EntityKind.CLIENT, {"vat_number": "GR0949", "country": "GR"}, "tax:GR:0949"),
    # The same digits in two countries are two companies (seen in generated data at 100k).
    (EntityKind.CLIENT, {"vat_number": "DK40940993", "country": "DK"}, "tax:DK:40940993"),
    (EntityKind.CLIENT, {"vat_number": "FI40940993", "country": "FI"}, "tax:FI:40940993"),
    (EntityKind.CLIENT, {"vat_number": None, "tin": "777", "name": "A"}, "tax:777"),
    (EntityKind.COUNTERPARTY, {"vat_number": "PL1", "country": "PL"}, "tax:PL:1"),
    (
        EntityKind.CLIENT,
        {"name": "  ACME   Sp.  z o.o.", "country": "PL"},
        "name:acme sp. z o.o.|PL",
    ),
    (EntityKind.CLIENT, {"name": "Straße"}, "name:strasse|"),
    (EntityKind.CLIENT, {"country": "PL"}, None),
    (EntityKind.CONTACT, {"email": "a@b.pl", "name": "A"}, "email:a@b.pl"),
    (EntityKind.CONTACT, {"name": "A"}, None),
    (EntityKind.NOTE, {"body": None}, None),
]


@pytest.mark.parametrize(("entity", "fields", "expected"), NATURAL)
def test_natural_key(entity: EntityKind, fields: dict[str, Scalar], expected: str | None) -> None:
    assert natural_key(fields, entity) == expected


def test_natural_key_of_notes_hashes_the_body_and_accepts_records() -> None:
    record = Record(EntityKind.NOTE, "n1", {"body": "Called about invoice 7", "author": "x"})
    key = natural_key(record)
    assert key is not None
    assert key.startswith("note:")
    assert len(key) == len("note:") + 32
    assert key == natural_key({"body": "Called about invoice 7"}, EntityKind.NOTE)
    assert key != natural_key({"body": "Called about invoice 8"}, EntityKind.NOTE)
    with pytest.raises(TypeError):
        natural_key({"body": "x"})


def test_every_field_type_has_a_normalizer() -> None:
    for schema in SCHEMAS.values():
        for spec in schema.values():
            assert normalize_value(spec, "") is None


def test_naive_datetime_is_utc() -> None:
    spec = FieldSpec("at", FieldType.DATETIME)
    assert (
        normalize_value(spec, datetime(2024, 5, 6, 7, 8, 9))
        == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC).isoformat()
    )
