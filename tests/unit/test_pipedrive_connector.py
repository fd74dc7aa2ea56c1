"""The Pipedrive connector against the fake: values, incremental reads and deletes,
renames, custom fields, a wrong token, and the traffic checked against the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from connectors.base import ChangeBatch, Cursor
from connectors.pipedrive import PipedriveConnector, PipedriveSettings
from connectors.setup import missing_fields
from connectors.testing import read_all
from sync.config import Settings
from sync.errors import AuthenticationError, TransportSecurityError, ValidationFailed
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind
from tests.fakes.pipedrive import TOKEN, FakeTime, PipedriveFake, connector_for, provision

pytestmark = pytest.mark.asyncio

CLIENT, SUPPLIER = EntityKind.CLIENT, EntityKind.COUNTERPARTY
CONTACT, NOTE = EntityKind.CONTACT, EntityKind.NOTE


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fake(time: FakeTime) -> Iterator[PipedriveFake]:
    server = PipedriveFake(clock=time.clock)
    provision(server)
    yield server
    assert server.asgi.checked > 0
    assert server.violations == []


@pytest_asyncio.fixture
async def crm(fake: PipedriveFake, time: FakeTime) -> AsyncIterator[PipedriveConnector]:
    async with connector_for(fake, time) as connector:
        yield connector


def _org(fake: PipedriveFake, **item: Any) -> int:
    return fake.state.put("organization", **item)


def _records(batches: list[ChangeBatch]) -> dict[str, dict[str, object]]:
    return {r.id: dict(r.fields) for batch in batches for r in batch.records}


async def test_address_country_and_custom_fields_read_as_canonical(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    vat = fake.state.field_code("organization", "Flowtly vat_number")
    kind = fake.state.field_code("organization", "Flowtly kind")
    supplier = fake.state.option_id("organization", "Flowtly kind", "supplier")
    assert vat
    assert kind
    assert supplier
    address = {"route": "Marszałkowska", "street_number": "1", "locality": "Warszawa"}
    address |= {"postal_code": "00-001", "country": "Poland", "value": "x"}
    org = _org(fake, name="Acme", address=address, custom_fields={vat: "PL5260250274"})
    bare = _org(fake, name="Bare")  # no address, no website, no custom fields at all
    other = _org(fake, name="Supplies", custom_fields={kind: supplier})
    records = _records(await read_all(crm, CLIENT))
    assert records[str(org)]["country"] == "PL"
    assert records[str(org)]["street_line"] == "Marszałkowska"
    assert records[str(org)]["post_code"] == "00-001"
    assert records[str(org)]["vat_number"] == "PL5260250274"
    assert records[str(bare)]["city"] is None
    assert records[str(bare)]["website"] is None
    assert str(other) not in records
    suppliers = _records(await read_all(crm, SUPPLIER))
    assert set(suppliers) == {str(other)}


async def test_a_bad_value_rejects_its_record_only_naming_the_field(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    good = _org(fake, name="Good")
    bad = _org(fake, name="Bad", address={"country": "Narnia"})
    batches = await read_all(crm, CLIENT)
    [error] = [e for batch in batches for e in batch.rejected]
    assert (error.record_id, error.field) == (str(bad), "country")
    assert str(bad) in {i for batch in batches for i in batch.present_ids}
    assert str(good) in _records(batches)


async def test_an_unknown_kind_is_rejected_once_and_never_taken_for_a_delete(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    kind = fake.state.field_code("organization", "Flowtly kind")
    assert kind
    odd = _org(fake, name="Odd", custom_fields={kind: 99})
    clients = await read_all(crm, CLIENT)
    [error] = [e for batch in clients for e in batch.rejected]
    assert (error.record_id, error.field) == (str(odd), "kind")
    assert [e for batch in await read_all(crm, SUPPLIER) for e in batch.rejected] == []


async def test_a_client_turned_supplier_leaves_the_clients(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    created = await crm.create(CLIENT, {"name": "Acme"})
    start = (await read_all(crm, CLIENT))[-1].cursor
    kind = fake.state.field_code("organization", "Flowtly kind")
    supplier = fake.state.option_id("organization", "Flowtly kind", "supplier")
    assert kind
    assert supplier
    item = fake.state.organizations[int(created.id)]
    item["custom_fields"][kind] = supplier
    item["update_time"] = fake.state.tick().strftime("%Y-%m-%dT%H:%M:%SZ")
    batches = await read_all(crm, CLIENT, start)
    assert created.id in [i for batch in batches for i in batch.left_ids]
    assert created.id not in _records(batches)


async def test_an_increment_asks_for_changes_since_the_cursor_and_recents_for_deletes(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    kept = await crm.create(CONTACT, {"name": "Kept", "email": "kept@acme.example"})
    gone = await crm.create(CONTACT, {"name": "Gone"})
    cursor = (await read_all(crm, CONTACT))[-1].cursor
    assert cursor is not None
    assert cursor.timestamp is not None
    await crm.delete(CONTACT, gone.id)
    fake.queries.clear()
    batches = await read_all(crm, CONTACT, cursor)
    assert [i for batch in batches for i in batch.deleted_ids] == [gone.id]
    assert gone.id not in _records(batches)
    assert kept.id not in [i for batch in batches for i in batch.deleted_ids]
    listing, recents = fake.queries
    assert listing[1] == "/api/v2/persons"
    assert listing[2]["updated_since"] == cursor.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (listing[2]["sort_by"], listing[2]["limit"]) == ("update_time", "500")
    assert recents[1] == "/api/v1/recents"
    assert recents[2]["items"] == "person"
    assert recents[2]["since_timestamp"] == cursor.timestamp.strftime("%Y-%m-%d %H:%M:%S")


async def test_notes_are_html_in_pipedrive_and_text_in_canonical_form(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    org = await crm.create(CLIENT, {"name": "Acme"})
    body = 'Said "<soon>" & left.\nCall back.'
    note = await crm.create(
        NOTE, {"company_id": org.id, "body": body, "created_at": "2024-01-02T03:04:05+00:00"}
    )
    stored = fake.state.notes[int(note.id)]
    assert stored["content"] == 'Said "&lt;soon&gt;" &amp; left.<br>Call back.'
    assert stored["add_time"] == "2024-01-02 03:04:05"
    assert note.get("body") == body
    stored["content"] = "<p>First</p><p>Second &amp; last</p>"
    [read] = [r for b in await read_all(crm, NOTE) for r in b.records if r.id == note.id]
    assert read.get("body") == "First\nSecond & last"
    assert read.get("created_at") == "2024-01-02T03:04:05+00:00"


async def test_a_patch_of_the_address_sends_every_part(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    org = await crm.create(CLIENT, {"name": "Acme", "city": "Kraków", "post_code": "30-001"})
    fake.state.organizations[int(org.id)]["address"]["admin_area_level_1"] = "Małopolska"
    updated = await crm.update(CLIENT, org.id, {"city": "Gdańsk"})
    address = fake.state.organizations[int(org.id)]["address"]
    assert address["locality"] == "Gdańsk"
    assert address["postal_code"] == "30-001"
    assert address["admin_area_level_1"] == "Małopolska"  # a part we do not map, kept
    assert updated.get("post_code") == "30-001"


async def test_clearing_what_pipedrive_cannot_hold_is_refused_naming_the_field(
    crm: PipedriveConnector,
) -> None:
    org = await crm.create(CLIENT, {"name": "Acme"})
    person = await crm.create(CONTACT, {"name": "Jan", "company_id": org.id})
    with pytest.raises(ValidationFailed) as refused:
        await crm.update(CONTACT, person.id, {"company_id": None})
    assert refused.value.violations[0].property_path == "company_id"
    with pytest.raises(ValidationFailed) as nameless:
        await crm.create(CLIENT, {"city": "Kraków"})
    assert nameless.value.violations[0].property_path == "name"


async def test_missing_custom_fields_are_left_out_and_listed_then_created(
    time: FakeTime,
) -> None:
    fake = PipedriveFake(clock=time.clock)
    async with connector_for(fake, time) as crm:
        assert "vat_number" not in crm.fields(CLIENT)
        assert SUPPLIER not in crm.entities()
        missing = missing_fields(await crm.custom_fields())
        assert {f.name for f in missing} >= {"Flowtly vat_number", "Flowtly kind"}
        [kind] = [f for f in missing if f.canonical == "kind"]
        assert (kind.type, kind.options) == ("enum", ("client", "supplier"))
        await crm.create_fields(missing)
        assert missing_fields(await crm.custom_fields()) == []
        assert "vat_number" in crm.fields(CLIENT)
        assert SUPPLIER in crm.entities()
    assert fake.violations == []


async def test_a_rename_reads_and_writes_a_field_of_the_users_own(
    fake: PipedriveFake, time: FakeTime
) -> None:
    code = fake.state.add_field("organization", "Tax ID", "varchar", [])["field_code"]
    layout = FieldLayout(
        aliases={CLIENT: {"tax id": "vat_number"}}, verbatim={CLIENT: frozenset({"vat_number"})}
    )
    async with connector_for(fake, time) as crm:
        crm.use_layout(layout)
        created = await crm.create(CLIENT, {"name": "Acme", "vat_number": "PL123"})
        assert fake.state.organizations[int(created.id)]["custom_fields"][code] == "PL123"
        assert created.get("vat_number") == "PL123"


async def test_a_wrong_token_fails_at_open_in_one_line_without_the_token(
    fake: PipedriveFake, time: FakeTime
) -> None:
    wrong = "pd-wrong-token-77aa"
    crm = connector_for(fake, time, token=wrong)
    with pytest.raises(AuthenticationError) as refused:
        await crm.open()
    await crm.close()
    message = str(refused.value)
    assert "crm.token" in message
    assert "\n" not in message
    assert wrong not in message
    assert TOKEN not in message
    assert fake.writes() == 0


async def test_the_token_is_a_secret_of_the_configuration() -> None:
    settings = Settings.model_validate(
        {"crm": {"type": "pipedrive", "base_url": "https://acme.pipedrive.com", "token": "s3"}}
    )
    assert "s3" in settings.secrets()


async def test_reading_from_an_empty_cursor_lists_everything(crm: PipedriveConnector) -> None:
    first = await crm.create(CLIENT, {"name": "A"})
    assert first.id in _records(await read_all(crm, CLIENT, Cursor()))


async def test_a_note_deleted_while_notes_are_listed_infers_no_deletes(
    fake: PipedriveFake, time: FakeTime
) -> None:
    async with connector_for(fake, time, page_size=2) as crm:
        org = await crm.create(CLIENT, {"name": "Acme"})
        notes = [
            await crm.create(NOTE, {"company_id": org.id, "body": f"Note {n}"}) for n in range(5)
        ]

        def delete_the_first(method: str, path: str) -> None:
            if path == "/api/v1/notes" and fake.after_answer is not None:
                fake.after_answer = None
                first = fake.state.notes[int(notes[0].id)]
                first["active_flag"] = False
                fake.state.tick()
                fake.state.record("note", int(notes[0].id))

        fake.after_answer = delete_the_first
        batches = await read_all(crm, NOTE)
        listed = {r.id for batch in batches for r in batch.records}
        assert len(listed) < 5  # offset paging skipped one
        assert batches[-1].incomplete is not None
        assert "changed while the notes were listed" in batches[-1].incomplete
        await time.sleep(5)  # a quiet while: nothing changes during the next listing
        quiet = await read_all(crm, NOTE)
        assert quiet[-1].incomplete is None


async def test_kind_values_of_the_users_own_enum_field(fake: PipedriveFake, time: FakeTime) -> None:
    made = fake.state.add_field("organization", "Customer type", "enum", ["Customer", "Vendor"])
    layout = FieldLayout(
        aliases={CLIENT: {"customer type": "kind"}, SUPPLIER: {"customer type": "kind"}},
        kinds={"customer": CLIENT, "vendor": SUPPLIER},
        kind_labels={CLIENT: "Customer", SUPPLIER: "Vendor"},
    )
    async with connector_for(fake, time) as crm:
        crm.use_layout(layout)
        [kind] = [f for f in await crm.custom_fields() if f.canonical == "kind"]
        assert (kind.name, kind.present, kind.options) == (
            "Customer type",
            True,
            ("Customer", "Vendor"),
        )
        supplier = await crm.create(SUPPLIER, {"name": "Supplies"})
        stored = fake.state.organizations[int(supplier.id)]["custom_fields"][made["field_code"]]
        assert stored == fake.state.option_id("organization", "Customer type", "Vendor")
        assert supplier.id in _records(await read_all(crm, SUPPLIER))
        assert supplier.id not in _records(await read_all(crm, CLIENT))


async def test_notes_of_no_organization_are_not_synced(
    crm: PipedriveConnector, fake: PipedriveFake
) -> None:
    fake.state.put("note", content="<p>About a deal</p>", deal_id=7)
    org = await crm.create(CLIENT, {"name": "Acme"})
    kept = await crm.create(NOTE, {"company_id": org.id, "body": "About Acme"})
    batches = await read_all(crm, NOTE)
    assert set(_records(batches)) == {kept.id}


async def test_an_increment_of_notes_changed_meanwhile_keeps_its_cursor(
    fake: PipedriveFake, time: FakeTime
) -> None:
    async with connector_for(fake, time, page_size=2) as crm:
        org = await crm.create(CLIENT, {"name": "Acme"})
        start = (await read_all(crm, NOTE))[-1].cursor
        assert start is not None
        notes = [
            await crm.create(NOTE, {"company_id": org.id, "body": f"Note {n}"}) for n in range(5)
        ]

        def edit_the_first(method: str, path: str) -> None:
            if path == "/api/v1/notes" and fake.after_answer is not None:
                fake.after_answer = None
                first = fake.state.notes[int(notes[0].id)]
                first["update_time"] = fake.state.tick().strftime("%Y-%m-%d %H:%M:%S")
                fake.state.record("note", int(notes[0].id))

        fake.after_answer = edit_the_first
        batches = await read_all(crm, NOTE, start)
        assert batches[-1].cursor == start  # a note may have been skipped: read it again
        await time.sleep(5)
        again = await read_all(crm, NOTE, start)
        assert {r.id for b in again for r in b.records} == {n.id for n in notes}
        assert again[-1].cursor != start


async def test_plain_http_is_refused_off_loopback() -> None:
    settings = PipedriveSettings(base_url="http://acme.pipedrive.com", token="t")
    with pytest.raises(TransportSecurityError, match="https"):
        PipedriveConnector(settings)


async def test_the_company_domain_is_taken_without_an_api_path() -> None:
    settings = PipedriveSettings(base_url="https://acme.pipedrive.com/api/v2/", token="t")
    assert settings.base_url == "https://acme.pipedrive.com"


async def test_a_renamed_contact_field_the_account_lacks_is_created_for_persons(
    fake: PipedriveFake, time: FakeTime
) -> None:
    layout = FieldLayout(
        aliases={CONTACT: {"department": "type"}}, verbatim={CONTACT: frozenset({"type"})}
    )
    async with connector_for(fake, time) as crm:
        crm.use_layout(layout)
        assert "type" not in crm.fields(CONTACT)
        [wanted] = [f for f in missing_fields(await crm.custom_fields()) if f.entity is CONTACT]
        assert (wanted.name, wanted.canonical) == ("department", "type")
        await crm.create_fields([wanted])
        assert "type" in crm.fields(CONTACT)
        person = await crm.create(CONTACT, {"name": "Jan", "type": "billing"})
        code = fake.state.field_code("person", "department")
        assert code is not None
        assert fake.state.persons[int(person.id)]["custom_fields"][code] == "billing"
