"""The Salesforce connector against the fake org: sessions, the API budget, per-record
refusals, incremental reads and the delete log, kinds, setup, and request shapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.salesforce import Org, SaveError, parse_query, transport
from fakes.salesforce._soql import SoqlError
from pydantic import SecretStr
from vendor_specs import vendor_spec

from connectors.base import Cursor
from connectors.salesforce import SalesforceConnector, SalesforceSettings
from connectors.testing import by_id, read_all
from sync.config import load_settings
from sync.errors import (
    AuthenticationError,
    BudgetExhausted,
    CursorExpired,
    NotFound,
    ValidationFailed,
)
from sync.mapping.layout import FieldLayout
from sync.model import EntityKind

CLIENT, SUPPLIER, CONTACT = EntityKind.CLIENT, EntityKind.COUNTERPARTY, EntityKind.CONTACT


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def no_sleep(seconds: float) -> None:
    return None


def connector(org: Org, clock: Clock, **extra: Any) -> SalesforceConnector:
    settings = SalesforceSettings(
        instance_url="http://salesforce.test",
        client_id=org.client_id,
        client_secret=SecretStr(extra.pop("secret", org.client_secret)),
        rate_limit=0,
        overlap_seconds=0,
        **extra,
    )
    return SalesforceConnector(settings, transport=transport(org), now=clock, sleep=no_sleep)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def org(clock: Clock) -> Org:
    return Org(clock=clock)


async def test_an_expired_session_is_renewed_once_and_the_call_repeated(
    org: Org, clock: Clock
) -> None:
    async with connector(org, clock) as side:
        await side.create(CLIENT, {"name": "Acme"})
        org.expire_sessions()
        assert len(await by_id(side, CLIENT)) == 1
        assert org.token_requests == 2


async def test_wrong_credentials_say_salesforce_s_reason_and_never_the_secret(
    org: Org, clock: Clock
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        async with connector(org, clock, secret="wrong-secret-9f8e7d"):
            pass
    assert "invalid client credentials" in str(caught.value)
    assert "wrong-secret-9f8e7d" not in str(caught.value)


async def test_a_ready_token_that_expired_is_not_refreshed(org: Org, clock: Clock) -> None:
    token = org.issue_token()
    settings = SalesforceSettings(
        instance_url="http://salesforce.test", access_token=SecretStr(token), rate_limit=0
    )
    side = SalesforceConnector(settings, transport=transport(org), now=clock, sleep=no_sleep)
    async with side:
        org.expire_sessions()
        with pytest.raises(AuthenticationError, match="INVALID_SESSION_ID"):
            await by_id(side, CLIENT)
    assert org.token_requests == 0


async def test_the_run_stops_before_the_reserve_of_the_daily_budget(org: Org, clock: Clock) -> None:
    org.api_limit = 100
    async with connector(org, clock) as side:
        org.api_used = 94
        await by_id(side, CLIENT)  # 95 of 100 used now: the last 5 % stay untouched
        sent = len(org.requests)
        with pytest.raises(BudgetExhausted, match="95 of 100"):
            await by_id(side, CLIENT)
        assert len(org.requests) == sent


async def test_request_limit_exceeded_ends_the_run_as_budget_exhausted(
    org: Org, clock: Clock
) -> None:
    async with connector(org, clock, budget_reserve=0) as side:
        org.api_used = org.api_limit
        with pytest.raises(BudgetExhausted, match="REQUEST_LIMIT_EXCEEDED"):
            await side.create(CLIENT, {"name": "Acme"})


async def test_unavailable_is_retried_with_backoff(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        record = await side.create(CLIENT, {"name": "Acme"})
        org.fail_next = 2
        assert (await by_id(side, CLIENT))[record.id] == record
        assert side.api.stats.retries >= 2


async def test_collections_refuse_records_one_by_one_with_salesforce_s_code(
    org: Org, clock: Clock
) -> None:
    org.refuse = lambda sobject, fields: (
        SaveError("DUPLICATES_DETECTED", "Use one of these records?", ["Name"])
        if fields.get("Name") == "Dupe"
        else None
    )
    async with connector(org, clock) as side:
        results = await side.create_many(
            CLIENT, [{"name": "Good"}, {"name": "Dupe"}, {"name": "x" * 300}, {"country": "Narnia"}]
        )
    assert [r.ok for r in results] == [True, False, False, False]
    assert "DUPLICATES_DETECTED: Use one of these records?" in str(results[1].error)
    assert "STRING_TOO_LONG" in str(results[2].error)
    assert isinstance(results[3].error, ValidationFailed)
    assert results[3].error.violations[0].property_path == "country"
    posts = [body for method, path, body in org.requests if method == "POST"]
    assert len(posts) == 1
    assert len(posts[0]["records"]) == 3
    assert posts[0]["allOrNone"] is False


async def test_an_update_stores_what_salesforce_holds_read_back(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        created = await side.create(CLIENT, {"name": "Acme", "country": "Poland", "city": "Łódź"})
        updated = await side.update(CLIENT, created.id, {"city": "  Gdańsk "})
        assert updated.get("city") == "Gdańsk"
        assert updated.get("country") == "PL"
    row = org.records["Account"][created.id]
    assert row["BillingCountry"] == "Poland"
    assert row["BillingCity"] == "Gdańsk"
    methods = [method for method, path, _ in org.requests if "composite/sobjects" in path]
    assert methods == ["POST", "GET", "PATCH", "GET"]


async def test_one_word_contact_names_go_to_last_name(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        company = await side.create(CLIENT, {"name": "Acme"})
        one = await side.create(CONTACT, {"name": "Madonna", "company_id": company.id})
        two = await side.create(CONTACT, {"name": "Jan Maria Kowalski", "company_id": company.id})
        assert one.get("name") == "Madonna"
        assert two.get("name") == "Jan Maria Kowalski"
    rows = org.records["Contact"]
    assert (rows[one.id]["FirstName"], rows[one.id]["LastName"]) == (None, "Madonna")
    assert (rows[two.id]["FirstName"], rows[two.id]["LastName"]) == ("Jan Maria", "Kowalski")


async def test_incremental_reads_follow_system_modstamp_and_the_delete_log(
    org: Org, clock: Clock
) -> None:
    async with connector(org, clock, query_batch_size=200) as side:
        made = await side.create_many(CLIENT, [{"name": f"C{n}"} for n in range(450)])
        clock.advance(minutes=1)
        last = await side.create(CLIENT, {"name": "Last"})
        full = await read_all(side, CLIENT)
        assert [len(batch.records) for batch in full] == [200, 200, 51]
        assert full[-1].incomplete is None
        cursor = full[-1].cursor
        assert cursor is not None
        clock.advance(minutes=5)
        kept, gone = made[0].record, made[1].record
        assert kept is not None
        assert gone is not None
        await side.update(CLIENT, kept.id, {"name": "Changed"})
        await side.delete(CLIENT, gone.id)
        changes = await read_all(side, CLIENT, cursor)
    # Inclusive: the record at the cursor comes again.
    assert [r.id for b in changes for r in b.records] == [last.id, kept.id]
    assert [i for b in changes for i in b.deleted_ids] == [gone.id]
    queries = [path for method, path, _ in org.requests if "/query" in path]
    assert any("/query/" in path for path in queries), "queryMore pages were followed"


async def test_a_cursor_older_than_the_delete_log_expires(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        await side.create(CLIENT, {"name": "Acme"})
        cursor = (await read_all(side, CLIENT))[-1].cursor
        assert cursor is not None
        clock.advance(hours=2)
        org.log_purged_until = clock.now - timedelta(hours=1)
        with pytest.raises(CursorExpired, match="delete log starts"):
            await read_all(side, CLIENT, cursor)
        with pytest.raises(CursorExpired, match="15 days"):
            await read_all(side, CLIENT, Cursor(clock.now - timedelta(days=16)))


async def test_kinds_split_accounts_and_a_kind_change_is_no_delete(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        client = await side.create(CLIENT, {"name": "Buyer"})
        supplier = await side.create(SUPPLIER, {"name": "Seller", "cyclic": True})
        assert set(await by_id(side, CLIENT)) == {client.id}
        assert (await by_id(side, SUPPLIER))[supplier.id].get("cyclic") is True
        org.records["Account"][client.id]["Flowtly_kind__c"] = "supplier"
        [batch] = await read_all(side, CLIENT)
        assert client.id in batch.left_ids
        assert not batch.records


async def test_missing_custom_fields_are_left_out_and_listed_for_setup(clock: Clock) -> None:
    org = Org(clock=clock, custom={"Account": {"Flowtly_vat_number__c"}, "Contact": set()})
    async with connector(org, clock) as side:
        assert "vat_number" in side.fields(CLIENT)
        assert "currency" not in side.fields(CLIENT)
        assert SUPPLIER not in side.entities()
        fields = {f.name: f for f in await side.custom_fields()}
        assert side.creates_fields() is False
    assert fields["Flowtly_vat_number__c"].present
    assert not fields["Flowtly_currency__c"].present
    assert fields["Flowtly_kind__c"].options == ("client", "supplier")


async def test_country_picklists_write_iso_codes(clock: Clock) -> None:
    org = Org(clock=clock, country_picklists=True)
    async with connector(org, clock) as side:
        created = await side.create(CLIENT, {"name": "Acme", "country": "DE"})
    assert created.get("country") == "DE"
    assert org.records["Account"][created.id]["BillingCountryCode"] == "DE"


async def test_content_notes_are_linked_and_read_through_their_content(
    org: Org, clock: Clock
) -> None:
    async with connector(org, clock) as side:
        company = await side.create(CLIENT, {"name": "Acme"})
        note = await side.create(
            EntityKind.NOTE, {"company_id": company.id, "body": 'Said "<soon>" & left'}
        )
        assert note.get("body") == 'Said "<soon>" & left'
        other = await side.create(CLIENT, {"name": "Other"})
        [result] = await side.update_many(EntityKind.NOTE, [(note.id, {"company_id": other.id})])
        assert isinstance(result.error, ValidationFailed)
    [link] = org.records["ContentDocumentLink"].values()
    assert link["LinkedEntityId"] == company.id
    assert org.content[note.id] == b"Said &quot;&lt;soon&gt;&quot; &amp; left"


async def test_unknown_ids_are_not_found_without_a_call(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        sent = len(org.requests)
        with pytest.raises(NotFound):
            await side.update(CLIENT, "no-such-id", {"name": "x"})
        assert len(org.requests) == sent
        with pytest.raises(NotFound):
            await side.delete(CLIENT, "001000000000999AAA")


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Account WHERE",
        "SELECT Id, FROM Account",
        "SELECT Id FROM Account GROUP BY Name",
        "SELECT COUNT() FROM Account",
        "SELECT Id FROM Account LIMIT ten",
    ],
)
def test_the_fake_refuses_soql_outside_its_subset(soql: str) -> None:
    with pytest.raises(SoqlError) as caught:
        parse_query(soql)
    assert caught.value.code == "MALFORMED_QUERY"


def test_the_fake_parses_what_the_connector_sends() -> None:
    query = parse_query(
        "SELECT Id, Name FROM Account WHERE SystemModstamp >= 2026-03-02T09:00:00Z "
        "ORDER BY SystemModstamp, Id LIMIT 5"
    )
    assert query.fields == ("Id", "Name")
    assert query.limit == 5
    assert query.where is not None
    assert query.where({"SystemModstamp": datetime(2026, 3, 2, 10, tzinfo=UTC)})
    assert not query.where({"SystemModstamp": datetime(2026, 3, 1, tzinfo=UTC)})


# -- request shapes against Salesforce's Postman collection ---------------------------------


def _template(name: str) -> dict[str, Any]:
    path: Path = vendor_spec("salesforce", f"postman-collection-2021/{name}.json")
    template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return template


def _template_path(template: dict[str, Any]) -> list[str]:
    url = str(template["url"]).split("?")[0].replace("{{_endpoint}}", "")
    return [part for part in url.split("/") if part]


def _matches(template: list[str], path: str, version: str = "62.0") -> bool:
    parts = [part for part in path.split("?")[0].split("/") if part]
    if len(parts) != len(template):
        return False
    for want, got in zip(template, parts, strict=True):
        if want.startswith("<") or (want == "v{{version}}" and got == f"v{version}"):
            continue
        if want != got:
            return False
    return True


async def test_requests_follow_the_postman_templates(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        made = await side.create(CLIENT, {"name": "Acme"})
        await side.update(CLIENT, made.id, {"name": "Acme 2"})
        cursor = (await read_all(side, CLIENT))[-1].cursor
        assert cursor is not None
        await read_all(side, CLIENT, cursor)
        await side.delete(CLIENT, made.id)
    sent = {(method, path.split("?")[0]): (path, body) for method, path, body in org.requests}
    shapes = {
        "rest__query": "GET",
        "rest__sobject_describe": "GET",
        "rest__sobject_get_deleted": "GET",
        "composite__sobject_collections_create": "POST",
        "composite__sobject_collections_retrieve": "GET",
    }
    for name, method in shapes.items():
        template = _template(name)
        assert template["method"] == method
        pattern = _template_path(template)
        hits = [key for key in sent if key[0] == method and _matches(pattern, key[1])]
        assert hits, f"no request matches {name} {template['url']}"
        params = {q["key"] for q in template.get("queryParams") or [] if q.get("enabled", True)}
        for key in hits:
            query = sent[key][0].partition("?")[2]
            assert params <= {part.split("=")[0] for part in query.split("&") if part}, name
        if template.get("rawModeData"):
            shape = json.loads(template["rawModeData"])
            assert set(shape) <= set(sent[hits[0]][1]), name
    # Update and delete: the collection's 2021 templates add a type segment that the REST
    # reference's PATCH/DELETE /composite/sobjects do without (records carry their type).
    for name, method in (
        ("composite__sobject_collections_update", "PATCH"),
        ("composite__sobject_collections_delete", "DELETE"),
    ):
        template = _template(name)
        assert template["method"] == method
        pattern = _template_path(template)
        assert pattern[-1].startswith("<")
        assert any(k[0] == method and _matches(pattern[:-1], k[1]) for k in sent), name
    patch = next(body for (method, _), (_, body) in sent.items() if method == "PATCH")
    assert set(
        json.loads(_template("composite__sobject_collections_update")["rawModeData"])
    ) <= set(patch)
    assert all(
        record["attributes"]["type"] == "Account" and record["id"] for record in patch["records"]
    )


async def test_the_user_s_field_names_and_kind_values_replace_the_defaults(
    org: Org, clock: Clock
) -> None:
    layout = FieldLayout(
        aliases={
            entity: {"type": "kind", "accountnumber": "vat_number"} for entity in (CLIENT, SUPPLIER)
        },
        verbatim={entity: frozenset({"vat_number"}) for entity in (CLIENT, SUPPLIER)},
        kinds={"customer": CLIENT, "vendor": SUPPLIER},
        kind_labels={CLIENT: "Customer", SUPPLIER: "Vendor"},
    )
    side = connector(org, clock)
    side.use_layout(layout)
    async with side:
        made = await side.create(SUPPLIER, {"name": "Seller", "vat_number": " pl 123 "})
        names = {field.name for field in await side.custom_fields()}
        assert made.get("vat_number") == "pl 123"
        assert set(await by_id(side, SUPPLIER)) == {made.id}
    row = org.records["Account"][made.id]
    assert row["Type"] == "Vendor"
    assert row["AccountNumber"] == " pl 123 "
    assert row["Flowtly_kind__c"] is None
    assert "Flowtly_kind__c" not in names
    assert "Flowtly_vat_number__c" not in names


def test_settings_secrets_name_the_client_secret_and_a_token(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[crm]\ntype = "salesforce"\ninstance_url = "https://acme.my.salesforce.com"\n'
        'client_id = "id"\nclient_secret = "s3cret-client-value"\n'
        'access_token = "00D-token-value"\n',
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert {"s3cret-client-value", "00D-token-value"} <= set(settings.secrets())


async def test_the_fake_keeps_deleted_records_in_its_recycle_bin_and_logs(
    org: Org, clock: Clock
) -> None:
    kept = org.create("Account", {"Name": "Kept"})
    gone = org.create("Account", {"Name": "Gone"})
    child = org.create("Contact", {"LastName": "Child", "AccountId": gone})
    clock.advance(minutes=2)
    org.delete(gone)
    token = org.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    base = "http://salesforce.test/services/data/v62.0"
    window = {"start": "2026-03-02T08:00:00+00:00", "end": "2026-03-02T10:00:00+00:00"}
    async with httpx.AsyncClient(transport=transport(org), headers=headers) as http:
        live = (await http.get(f"{base}/query", params={"q": "SELECT Id FROM Account"})).json()
        every = await http.get(
            f"{base}/queryAll", params={"q": "SELECT Id, IsDeleted FROM Account"}
        )
        updated = (await http.get(f"{base}/sobjects/Account/updated/", params=window)).json()
        deleted = (await http.get(f"{base}/sobjects/Contact/deleted/", params=window)).json()
    assert [r["Id"] for r in live["records"]] == [kept]
    assert {(r["Id"], r["IsDeleted"]) for r in every.json()["records"]} == {
        (kept, False),
        (gone, True),
    }
    assert every.headers["Sforce-Limit-Info"] == f"api-usage={org.api_used - 2}/100000"
    assert updated["ids"] == [kept]
    assert [d["id"] for d in deleted["deletedRecords"]] == [child]


async def test_a_quiet_entity_s_cursor_moves_on_so_it_never_expires(org: Org, clock: Clock) -> None:
    async with connector(org, clock) as side:
        await side.create(CLIENT, {"name": "Acme"})
        clock.advance(days=10)
        cursor = (await read_all(side, CLIENT))[-1].cursor
        assert cursor is not None
        assert cursor.timestamp == clock.now - timedelta(hours=1)
        clock.advance(days=10)
        batches = await read_all(side, CLIENT, cursor)
    assert [r for b in batches for r in b.records] == []


async def test_a_note_whose_link_is_refused_is_deleted_again(org: Org, clock: Clock) -> None:
    org.refuse = lambda sobject, fields: (
        SaveError("INSUFFICIENT_ACCESS_OR_READONLY", "no access to the record")
        if sobject == "ContentDocumentLink"
        else None
    )
    async with connector(org, clock) as side:
        company = await side.create(CLIENT, {"name": "Acme"})
        [result] = await side.create_many(
            EntityKind.NOTE, [{"company_id": company.id, "body": "Hello"}]
        )
    assert "INSUFFICIENT_ACCESS_OR_READONLY" in str(result.error)
    assert org.records["ContentNote"] == {}
