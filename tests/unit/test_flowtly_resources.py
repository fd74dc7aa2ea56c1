"""Canonical <-> Flowtly JSON mapping (sync.flowtly.resources) and reference tables (refs)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.flowtly.refs import Refs, UnknownReference, id_of
from sync.flowtly.resources import Defaults, fields_of, item_id, to_payload, to_record
from sync.model import SCHEMAS, EntityKind, Scalar
from sync.normalize import NormalizationError

CLIENT = EntityKind.CLIENT
CONTACT = EntityKind.CONTACT
NOTE = EntityKind.NOTE
COUNTERPARTY = EntityKind.COUNTERPARTY


@pytest.fixture
def refs() -> Refs:
    return Refs.from_tables(
        {"PL": "/countries/1", "DE": "/countries/2", "FR": "/countries/3"},
        {"PLN": "/currencies/7", "EUR": "/currencies/8"},
    )


CLIENT_VALUES: dict[str, Scalar] = {
    "name": "ACME Sp. z o.o.",
    "status": "active",
    "tin_type": "vat",
    "tin": "5260250274",
    "tin_country": "PL",
    "vat_number": "PL5260250274",
    "due_days": 14,
    "documents_language": "pl",
    "invoice_comment": "Pay on time",
    "default_tax_rate": "23",
    "external_payment_customer_id": "cus_123",
    "phone": "+48 22 100 20 30",
    "city": "Warszawa",
    "post_code": "00-001",
    "street_line": "Marszalkowska",
    "building_number": "10",
    "locale_number": "5",
    "address_country": "PL",
    "country": "PL",
    "currency": "PLN",
}

COUNTERPARTY_VALUES: dict[str, Scalar] = {
    "name": "Paper Supplies GmbH",
    "counterparty_type": "supplier",
    "require_attachment": True,
    "cyclic": False,
    "budget_neutral": True,
    "logo_url": "https://paper.example/logo.png",
    "website": "https://paper.example",
    "vat_number": "DE123456789",
    "tin": "12345678",
    "country": "DE",
}

CONTACT_VALUES: dict[str, Scalar] = {
    "company_id": "5",
    "type": "billing",
    "name": "Ann Smith",
    "email": "ann@acme.example",
    "phone": "+48 600 100 200",
    "title": "Ms",
    "position": 2,
}

NOTE_VALUES: dict[str, Scalar] = {"company_id": "5", "body": "Called about invoice", "author": "3"}

ROUND_TRIPS = [
    (CLIENT, CLIENT_VALUES, "/clients/42"),
    (COUNTERPARTY, COUNTERPARTY_VALUES, "/counterparties/9"),
    (CONTACT, CONTACT_VALUES, "/client-contacts/11"),
    (NOTE, NOTE_VALUES, "/client-notes/0b5c3c1e-6b0e-4a57-9f69-5f0d5a3e2a10"),
]


def _as_served(payload: dict[str, Any], iri: str, **computed: Any) -> dict[str, Any]:
    """What Flowtly answers for a stored payload: @id/@type/id, computed fields, no nulls."""
    served = {"@id": iri, "@type": "Thing", "id": iri.rsplit("/", 1)[1], **computed}
    served.update({key: value for key, value in payload.items() if value is not None})
    return served


@pytest.mark.parametrize(("entity", "values", "iri"), ROUND_TRIPS)
def test_round_trip_record_payload_item_record(
    entity: EntityKind, values: dict[str, Scalar], iri: str, refs: Refs
) -> None:
    payload = to_payload(entity, values, refs, create=True)
    item = _as_served(payload, iri, updatedAt="2024-05-01T10:00:00+00:00", possibleTypes="x")
    record = to_record(entity, item, refs)
    assert record.id == iri.rsplit("/", 1)[1]
    assert {name: record.get(name) for name in values} == values
    assert set(record.fields) - {"created_at"} == fields_of(entity)


def test_client_payload_uses_flowtly_keys_and_iris(refs: Refs) -> None:
    payload = to_payload(CLIENT, CLIENT_VALUES, refs, create=False)
    assert payload["country"] == "/countries/1"
    assert payload["addressCountry"] == "/countries/1"
    assert payload["currency"] == "/currencies/7"
    assert payload["tinCountry"] == "PL"  # a plain ISO code, not a relation
    assert payload["addressPhoneNumber"] == "+48 22 100 20 30"
    assert payload["dueDays"] == 14
    assert payload["defaultTaxRate"] == "23"
    assert "address_country" not in payload
    assert "phone" not in payload


def test_counterparty_payload_maps_name_to_display_name_only(refs: Refs) -> None:
    payload = to_payload(COUNTERPARTY, COUNTERPARTY_VALUES, refs, create=True)
    assert payload["displayName"] == "Paper Supplies GmbH"
    assert "name" not in payload
    assert payload["type"] == "supplier"
    assert payload["corporateWebsiteUrl"] == "https://paper.example"
    assert payload["logoUrl"] == "https://paper.example/logo.png"
    assert payload["country"] == "/countries/2"
    assert payload["requireAttachment"] is True
    assert payload["cyclic"] is False


def test_contact_and_note_relations_are_iris(refs: Refs) -> None:
    contact = to_payload(CONTACT, CONTACT_VALUES, refs, create=True)
    assert contact["client"] == "/clients/5"
    note = to_payload(NOTE, NOTE_VALUES, refs, create=True)
    assert note == {
        "client": "/clients/5",
        "note": "Called about invoice",
        "employee": "/employees/3",
    }


def test_iris_keep_a_base_path_prefix() -> None:
    refs = Refs.from_tables({"PL": "/api/countries/1"}, {"PLN": "/api/currencies/7"}, prefix="/api")
    payload = to_payload(CONTACT, {"company_id": "5"}, refs, create=False)
    assert payload == {"client": "/api/clients/5"}
    item = {"@id": "/api/clients/5", "id": 5, "country": "/api/countries/1"}
    assert to_record(CLIENT, item, refs).get("country") == "PL"


def test_create_omits_nulls_and_update_sends_null(refs: Refs) -> None:
    values: dict[str, Scalar] = {"name": "ACME", "city": None, "vat_number": None}
    created = to_payload(CLIENT, values, refs, create=True, defaults=Defaults(currency="EUR"))
    assert "addressCity" not in created
    assert "vatNumber" not in created
    assert None not in created.values()
    updated = to_payload(CLIENT, {"city": None, "country": None}, refs, create=False)
    assert updated == {"addressCity": None, "country": None}


def test_update_sends_only_the_given_fields(refs: Refs) -> None:
    assert to_payload(CLIENT, {"due_days": 30}, refs, create=False) == {"dueDays": 30}
    assert to_payload(CONTACT, {"email": "b@x.example"}, refs, create=False) == {
        "email": "b@x.example"
    }


def test_defaults_fill_required_fields_on_create_only(refs: Refs) -> None:
    defaults = Defaults(
        currency="EUR",
        country="FR",
        status="prospect",
        tin_type="nip",
        documents_language="de",
        contact_type="main",
        counterparty_type="counterparty",
        note_author="4",
    )
    client = to_payload(CLIENT, {"name": "X", "status": None}, refs, create=True, defaults=defaults)
    assert client == {
        "name": "X",
        "status": "prospect",
        "tinType": "nip",
        "documentsLanguage": "de",
        "currency": "/currencies/8",
        "country": "/countries/3",
    }
    given = to_payload(
        CLIENT, {"name": "X", "currency": "PLN"}, refs, create=True, defaults=defaults
    )
    assert given["currency"] == "/currencies/7"
    update = to_payload(CLIENT, {"name": "X"}, refs, create=False, defaults=defaults)
    assert update == {"name": "X"}
    contact = to_payload(CONTACT, {"email": "a@b.example"}, refs, create=True, defaults=defaults)
    assert contact["type"] == "main"
    party = to_payload(COUNTERPARTY, {"name": "P"}, refs, create=True, defaults=defaults)
    assert party["type"] == "counterparty"
    note = to_payload(NOTE, {"company_id": "1", "body": "b"}, refs, create=True, defaults=defaults)
    assert note["employee"] == "/employees/4"


def test_default_defaults_use_the_assumed_enum_values(refs: Refs) -> None:
    payload = to_payload(CLIENT, {"name": "X"}, refs, create=True)
    assert payload == {"name": "X", "status": "active", "tinType": "vat", "documentsLanguage": "en"}
    note = to_payload(NOTE, {"company_id": "1", "body": "b"}, refs, create=True)
    assert "employee" not in note  # no configured author: the side asks /employees/me


def test_uncarried_fields_are_left_out_and_unknown_names_refused(refs: Refs) -> None:
    payload = to_payload(
        CLIENT, {"name": "X", "website": "https://x.example", "logo_url": "l"}, refs, create=False
    )
    assert payload == {"name": "X"}
    note = to_payload(NOTE, {"created_at": "2024-01-01T00:00:00+00:00"}, refs, create=False)
    assert note == {}
    with pytest.raises(ValueError, match="no field"):
        to_payload(CLIENT, {"nmae": "X"}, refs, create=False)


def test_unknown_codes_name_the_field_and_value(refs: Refs) -> None:
    with pytest.raises(UnknownReference) as caught:
        to_payload(CLIENT, {"currency": "XTS"}, refs, create=False)
    assert caught.value.field == "currency"
    assert caught.value.value == "XTS"
    assert "currency" in str(caught.value)
    assert "XTS" in str(caught.value)
    with pytest.raises(UnknownReference) as caught:
        to_payload(CLIENT, {"address_country": "ZZ"}, refs, create=False)
    assert caught.value.field == "address_country"


def test_unknown_iri_on_read_is_refused(refs: Refs) -> None:
    with pytest.raises(UnknownReference) as caught:
        to_record(CLIENT, {"id": 1, "country": "/countries/999"}, refs)
    assert caught.value.field == "country"
    assert caught.value.value == "/countries/999"


def test_fields_of_lists_exactly_what_flowtly_carries() -> None:
    client = fields_of(CLIENT)
    assert "website" not in client
    assert "logo_url" not in client
    assert client == frozenset(CLIENT_VALUES)
    assert fields_of(COUNTERPARTY) == frozenset(COUNTERPARTY_VALUES)
    assert "status" not in fields_of(COUNTERPARTY)
    assert fields_of(CONTACT) == frozenset(CONTACT_VALUES)
    assert fields_of(NOTE) == frozenset({"company_id", "body", "author"})
    for entity in EntityKind:
        assert fields_of(entity) <= frozenset(SCHEMAS[entity])


def test_read_ignores_computed_fields_and_treats_missing_as_null(refs: Refs) -> None:
    item = {
        "@context": "/contexts/Client",
        "@id": "/clients/42",
        "@type": "Client",
        "id": 42,
        "name": "  ACME  ",
        "country": "/countries/1",
        "currency": "/currencies/7",
        "updatedAt": "2024-01-01T00:00:00+00:00",
        "costGroup": ["x"],
        "costGroupIcon": "icon",
        "clientContacts": [{"@id": "/client-contacts/1", "id": 1, "email": "a@b.example"}],
        "defaultCost": "/costs/1",
    }
    record = to_record(CLIENT, item, refs)
    assert record.id == "42"
    assert record.get("name") == "ACME"
    assert record.fields["city"] is None
    assert "city" in record.fields
    assert set(record.fields) == fields_of(CLIENT)


def test_read_normalizes_values(refs: Refs) -> None:
    client = to_record(
        CLIENT,
        {
            "id": 1,
            "vatNumber": "pl 526-025-02-74",
            "defaultTaxRate": "23.00",
            "dueDays": "14",
            "tinCountry": "pl",
            "addressCity": "",
        },
        refs,
    )
    assert client.get("vat_number") == "PL5260250274"
    assert client.get("default_tax_rate") == "23"
    assert client.get("due_days") == 14
    assert client.get("tin_country") == "PL"
    assert client.get("city") is None
    contact = to_record(CONTACT, {"id": 3, "email": " Ann@ACME.example ", "client": 5}, refs)
    assert contact.get("email") == "ann@acme.example"
    assert contact.get("company_id") == "5"


def test_read_accepts_embedded_relations(refs: Refs) -> None:
    item = {
        "id": 7,
        "client": {"@id": "/clients/5", "@type": "Client", "name": "ACME"},
        "type": "main",
    }
    assert to_record(CONTACT, item, refs).get("company_id") == "5"
    client = to_record(CLIENT, {"id": 1, "country": {"@id": "/countries/2", "code": "DE"}}, refs)
    assert client.get("country") == "DE"


def test_note_created_at_is_read_but_never_carried_or_written(refs: Refs) -> None:
    item = {
        "@id": "/client-notes/abc",
        "id": "abc",
        "client": "/clients/5",
        "employee": "/employees/3",
        "note": "Hello",
        "createdAt": "2024-03-01T12:00:00+01:00",
    }
    record = to_record(NOTE, item, refs)
    assert record.id == "abc"
    assert record.get("created_at") == "2024-03-01T11:00:00+00:00"
    assert record.get("author") == "3"
    assert "created_at" not in fields_of(NOTE)
    assert "createdAt" not in to_payload(NOTE, dict(record.fields), refs, create=True)


def test_bad_values_raise_a_field_error(refs: Refs) -> None:
    with pytest.raises(NormalizationError) as caught:
        to_record(CLIENT, {"id": 1, "dueDays": "soon"}, refs)
    assert caught.value.field == "due_days"
    with pytest.raises(NormalizationError):
        to_record(CLIENT, {"name": "no id"}, refs)


def test_item_id_and_id_of() -> None:
    assert item_id({"@id": "/clients/5"}) == "5"
    assert item_id({"id": 6, "@id": "/clients/5"}) == "6"
    assert item_id({}) is None
    assert id_of("https://api.flowtly.eu/api/clients/9") == "9"
    assert id_of({"@id": "/employees/3"}) == "3"
    assert id_of(4) == "4"
    assert id_of("") is None
    assert id_of(None) is None
    with pytest.raises(ValueError, match="IRI"):
        id_of(True)


def test_refs_need_loading_before_lookups() -> None:
    refs = Refs(None)
    assert not refs.loaded
    with pytest.raises(RuntimeError, match="load"):
        refs.country_iri("PL")
