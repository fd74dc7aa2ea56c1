"""The real CLI against the fake Salesforce org (uvicorn on 127.0.0.1) and the Flowtly
sandbox over HTTP: run, a no-op second run, diff, check, crm setup, wrong credentials,
and the daily API budget."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_support import (
    TOKEN,
    FlowtlyApi,
    SandboxProcess,
    run_cli,
    small_crm,
    start_sandbox,
    store_text,
)
from fakes.salesforce import Org, serve_in_thread

pytestmark = pytest.mark.slow

SECRET = "sf-e2e-client-secret-7c1d"


@dataclass
class SalesforceEnv:
    root: Path
    org: Org
    url: str
    sandbox: SandboxProcess
    config: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, config=self.config)

    def write_config(self, **crm: str) -> None:
        keys = {
            "type": '"salesforce"',
            "instance_url": json.dumps(self.url),
            "client_id": json.dumps(self.org.client_id),
            "client_secret": json.dumps(SECRET),
            "rate_limit": "0",
            "max_retries": "1",
            **crm,
        }
        self.config.write_text(
            "[flowtly]\n"
            f"base_url = {json.dumps(self.sandbox.url)}\n"
            f"token = {json.dumps(TOKEN)}\n"
            "rate_limit = 0\n"
            "[store]\n"
            f"url = {json.dumps('sqlite:///' + str(self.root / 'state.db'))}\n"
            "[crm]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items()) + "[logging]\n"
            'format = "json"\n'
            'level = "info"\n',
            encoding="utf-8",
        )


def _seed(org: Org) -> dict[str, str]:
    """The example CRM as Salesforce Accounts, Contacts and ContentNotes; CRM id -> Id."""
    data = small_crm()
    ids: dict[str, str] = {}
    for row in data.companies:
        ids[row["id"]] = org.create(
            "Account",
            {
                "Name": row["name"],
                "BillingStreet": f"{row['street_line']} {row['building_number']}",
                "BillingCity": row["city"],
                "BillingPostalCode": row["post_code"],
                "BillingCountry": {"PL": "Poland", "DE": "Germany", "FR": "France"}.get(
                    row["country"], "Netherlands"
                ),
                "Phone": row["phone"],
                "Website": row["website"],
                "Flowtly_kind__c": row["kind"],
                "Flowtly_currency__c": row["currency"],
                "Flowtly_vat_number__c": row["vat_number"],
                "Flowtly_due_days__c": float(row["due_days"]),
            },
        )
    for row in data.contacts:
        first, _, last = row["name"].partition(" ")
        org.create(
            "Contact",
            {
                "FirstName": first,
                "LastName": last,
                "Email": row["email"],
                "Phone": row["phone"] or None,
                "Title": row["title"],
                "AccountId": ids[row["company_id"]],
            },
        )
    for note in data.notes:
        note_id = org.create(
            "ContentNote",
            {"Title": "Call", "Content": base64.b64encode(note["body"].encode()).decode()},
        )
        org.create(
            "ContentDocumentLink",
            {"ContentDocumentId": note_id, "LinkedEntityId": ids[note["company_id"]]},
        )
    return ids


@pytest.fixture
def env(tmp_path: Path) -> Iterator[SalesforceEnv]:
    org = Org(client_secret=SECRET)
    _seed(org)
    sandbox = start_sandbox(tmp_path, db=tmp_path / "flowtly.db")
    try:
        with serve_in_thread(org) as url:
            environment = SalesforceEnv(tmp_path, org, url, sandbox, tmp_path / "config.toml")
            environment.write_config()
            yield environment
    finally:
        sandbox.stop()


def _writes(org: Org) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in org.requests if m in ("POST", "PATCH", "DELETE")]


def _everything(env: SalesforceEnv, *outputs: subprocess.CompletedProcess[str]) -> str:
    texts = [out.stdout + out.stderr for out in outputs]
    texts += [" ".join(map(str, row)) for row in store_text(env.root / "state.db")]
    return "\n".join(texts)


def test_sync_then_a_second_run_writes_nothing_and_reads_only_changes(env: SalesforceEnv) -> None:
    first = env.run("run", "--output", "json", "--report", str(env.root / "report.json"))
    assert first.returncode == 0, first.stdout + first.stderr
    api = FlowtlyApi(env.sandbox.url)
    try:
        snapshot = api.snapshot()
    finally:
        api.close()
    assert len(snapshot["clients"]) == 5
    assert len(snapshot["counterparties"]) == 1
    assert len(snapshot["client-contacts"]) == 10
    assert len(snapshot["client-notes"]) == 2
    env.org.requests.clear()
    second = env.run("run", "--output", "json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["operations"] == []
    assert _writes(env.org) == []
    queries = [p for m, p, _ in env.org.requests if "/query?" in p]
    assert queries
    listings = [p for p in queries if "ContentDocumentLink" not in p]
    assert all("SystemModstamp+%3E%3D" in p for p in listings), listings
    report = (env.root / "report.json").read_text(encoding="utf-8")
    seen = _everything(env, first, second) + report
    assert SECRET not in seen
    assert env.org.tokens
    assert not any(token in seen for token in env.org.tokens), "a session token leaked"


def test_an_edit_in_salesforce_reaches_flowtly_and_diff_shows_it_first(env: SalesforceEnv) -> None:
    assert env.run("run").returncode == 0
    account = next(r for r in env.org.records["Account"].values() if r["BillingCity"] == "Gdańsk")
    env.org.update(account["Id"], {"BillingCity": "Gdynia"})
    diff = env.run("diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "Gdynia" in diff.stdout
    assert _writes(env.org) == []
    run = env.run("run")
    assert run.returncode == 0, run.stdout + run.stderr
    api = FlowtlyApi(env.sandbox.url)
    try:
        clients = json.dumps(api.members("/clients"), ensure_ascii=False)
    finally:
        api.close()
    assert "Gdynia" in clients


def test_check_and_crm_setup_name_the_missing_custom_fields(env: SalesforceEnv) -> None:
    assert env.org.custom is not None
    env.org.custom["Account"].discard("Flowtly_tin__c")
    check = env.run("check")
    assert "crm: ok" in check.stdout, check.stdout + check.stderr
    assert "Flowtly_tin__c" in check.stdout
    setup = env.run("crm", "setup")
    assert setup.returncode != 0
    assert "Flowtly_tin__c" in setup.stdout
    assert "MISSING" in setup.stdout
    assert "create them in the CRM's setup" in setup.stdout


def test_wrong_credentials_exit_1_with_salesforce_s_message_and_no_secret(
    env: SalesforceEnv,
) -> None:
    env.org.client_secret = "the-real-one"
    out = env.run("run", "--report", str(env.root / "report.json"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "invalid client credentials" in out.stderr
    report = env.root / "report.json"
    text = _everything(env, out) + (report.read_text("utf-8") if report.exists() else "")
    assert SECRET not in text


def test_the_daily_budget_stops_the_run_with_exit_1(env: SalesforceEnv) -> None:
    env.org.api_limit = 1000
    env.org.api_used = 947  # sign-in and two describes leave one call before the reserve
    out = env.run("run")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "daily API budget" in out.stderr
    assert env.org.api_used <= 950


def test_deletes_come_from_the_delete_log_and_a_purged_log_means_a_complete_read(
    env: SalesforceEnv,
) -> None:
    assert env.run("run").returncode == 0
    contact = next(iter(env.org.records["Contact"]))
    env.org.delete(contact)
    env.org.requests.clear()
    first = env.run("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert any("/sobjects/Contact/deleted/" in p for _, p, _ in env.org.requests)
    api = FlowtlyApi(env.sandbox.url)
    try:
        assert len(api.members("/client-contacts")) == 9
    finally:
        api.close()
    account = next(iter(env.org.records["Account"].values()))
    env.org.update(account["Id"], {"Phone": "+48 22 000 00 00"})
    env.org.log_purged_until = env.org.now()
    env.org.requests.clear()
    second = env.run("run")
    assert second.returncode == 0, second.stdout + second.stderr
    account_queries = [p for m, p, _ in env.org.requests if "/query?" in p and "FROM+Account" in p]
    assert any("WHERE" not in p for p in account_queries), account_queries
    api = FlowtlyApi(env.sandbox.url)
    try:
        assert "+48 22 000 00 00" in json.dumps(api.members("/clients"))
    finally:
        api.close()
