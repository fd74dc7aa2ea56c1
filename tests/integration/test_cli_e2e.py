"""The CLI end to end: ``python -m sync`` against the sandbox served over real HTTP.

Every test works on its own copy of one initial sync (see ``conftest``); Flowtly is read
and edited with plain httpx, the CRM with the csv module.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CLI_TIMEOUT,
    TOKEN,
    CountingProxy,
    Env,
    Template,
    cli_env,
    client_by_vat,
    contact_by_email,
    edit_csv,
    new_flowtly_client,
    new_flowtly_contact,
    read_csv,
    run_cli,
    small_crm,
    write_config,
    write_csv,
)

pytestmark = pytest.mark.slow

# CRM column -> Flowtly property, per company kind.
CLIENT_MAP = {
    "name": "name",
    "status": "status",
    "tin_type": "tinType",
    "tin": "tin",
    "vat_number": "vatNumber",
    "due_days": "dueDays",
    "city": "addressCity",
    "post_code": "addressPostCode",
    "street_line": "addressStreetLine",
    "building_number": "addressBuildingNumber",
    "phone": "addressPhoneNumber",
}
SUPPLIER_MAP = {"name": "displayName", "vat_number": "vatNumber", "website": "corporateWebsiteUrl"}
CONTACT_MAP = {"name": "name", "email": "email", "phone": "phone", "title": "title", "type": "type"}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), f"no report on stdout; stderr:\n{result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def _companies(env: Env) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in read_csv(env.crm / "companies.csv")[1]}


def _contacts(env: Env) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in read_csv(env.crm / "contacts.csv")[1]}


def _assert_in_sync(env: Env) -> None:
    """Exactly one Flowtly record per CRM record, with equal fields, and nothing else."""
    api = env.api
    companies = _companies(env)
    clients = api.members("/clients")
    suppliers = api.members("/counterparties")
    contacts = api.members("/client-contacts")
    crm_clients = [r for r in companies.values() if r["kind"] == "client"]
    crm_suppliers = [r for r in companies.values() if r["kind"] == "supplier"]
    assert len(clients) == len(crm_clients)
    assert len(suppliers) == len(crm_suppliers)
    iri_to_crm: dict[str, str] = {}
    for row in crm_clients:
        matches = [c for c in clients if c.get("vatNumber") == row["vat_number"]]
        assert len(matches) == 1, f"{row['id']}: {len(matches)} Flowtly clients"
        client = matches[0]
        iri_to_crm[client["@id"]] = row["id"]
        for column, prop in CLIENT_MAP.items():
            assert _text(client.get(prop)) == _text(row[column]), (row["id"], column)
        assert api.code("countries", client.get("country")) == row["country"]
        assert api.code("currencies", client.get("currency")) == row["currency"]
    for row in crm_suppliers:
        matches = [s for s in suppliers if s.get("vatNumber") == row["vat_number"]]
        assert len(matches) == 1, f"{row['id']}: {len(matches)} Flowtly counterparties"
        for column, prop in SUPPLIER_MAP.items():
            assert _text(matches[0].get(prop)) == _text(row[column]), (row["id"], column)
        assert matches[0].get("type") == "supplier"
        assert api.code("countries", matches[0].get("country")) == row["country"]
    crm_contacts = list(_contacts(env).values())
    assert len(contacts) == len(crm_contacts)
    for row in crm_contacts:
        matches = [c for c in contacts if c.get("email") == row["email"]]
        assert len(matches) == 1, f"{row['id']}: {len(matches)} Flowtly contacts"
        assert iri_to_crm[matches[0]["client"]] == row["company_id"], row["id"]
        for column, prop in CONTACT_MAP.items():
            assert _text(matches[0].get(prop)) == _text(row[column]), (row["id"], column)


def _store_counts(store: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        ]
        counts = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608
    db.close()
    return counts


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


# -- tests -------------------------------------------------------------------------------------


def test_initial_sync_creates_exactly_one_flowtly_record_per_crm_record(
    synced_template: Template, synced_env: Env
) -> None:
    first = synced_template.first_run
    assert first.returncode == 0, _explain(first)
    report = _report(first)
    assert report["dry_run"] is False
    assert report["errors"] == []
    assert report["conflicts"] == []
    assert report["summary"] == {
        "client": {"create": 5},
        "counterparty": {"create": 1},
        "contact": {"create": 10},
        "note": {"create": 2},
    }
    assert all(op["target"] == "flowtly" and op["outcome"] == "ok" for op in report["operations"])
    _assert_in_sync(synced_env)
    vat_of = {c["@id"]: c["vatNumber"] for c in synced_env.api.members("/clients")}
    notes = {(vat_of[n["client"]], n["note"]) for n in synced_env.api.members("/client-notes")}
    crm_vat = {r["id"]: r["vat_number"] for r in small_crm().companies}
    assert notes == {(crm_vat[n["company_id"]], n["body"]) for n in small_crm().notes}
    # Nothing came back into the CRM: same rows, nothing appended.
    assert [r["id"] for r in read_csv(synced_env.crm / "companies.csv")[1]] == [
        r["id"] for r in small_crm().companies
    ]


def test_second_run_is_a_no_op_that_sends_no_writes(synced_env: Env, tmp_path: Path) -> None:
    before = _files(synced_env.crm)
    report_file = tmp_path / "report.json"
    with CountingProxy(synced_env.sandbox.url) as proxy:
        synced_env.configure(base_url=proxy.url)
        result = synced_env.run("run", "--output", "json", "--report", str(report_file))
    assert result.returncode == 0, _explain(result)
    report = _report(result)
    assert report["operations"] == []
    assert report["errors"] == []
    assert report["conflicts"] == []
    assert report["summary"] == {}
    assert proxy.counts["GET"] > 0, "the run did not go through the counting proxy"
    assert proxy.writes() == 0, f"a no-op run sent writes: {dict(proxy.counts)}"
    assert _files(synced_env.crm) == before
    # --report FILE holds the same JSON report.
    assert json.loads(report_file.read_text(encoding="utf-8")) == report

    status = synced_env.run("status")
    assert status.returncode == 0, _explain(status)
    runs = [line.split() for line in status.stdout.splitlines() if line.startswith("  run ")]
    assert len(runs) == 2, status.stdout
    assert runs[0][:3] == ["run", f"{report['run_id']}:", "ok"], status.stdout
    assert "0 open conflict(s)" in status.stdout


def test_edits_on_either_side_propagate_and_the_csv_keeps_its_layout(synced_env: Env) -> None:
    env, api = synced_env, synced_env.api
    header_before, rows_before = read_csv(env.crm / "companies.csv")
    # A CRM edit; Flowtly edits over HTTP; a client with a contact created in Flowtly.
    edit_csv(env.crm / "companies.csv", "C001", city="Kraków")
    api.patch(client_by_vat(api, "PL8826286845")["@id"], {"addressCity": "Sopot"})
    api.patch(contact_by_email(api, "pawel.kaminski@baltycka.example")["@id"], {"title": "CFO"})
    created = new_flowtly_client(api, "Nordlicht Medien GmbH", "DE845721337", "Hamburg")
    new_flowtly_contact(api, created, "Claudia Fischer", "claudia.fischer@nordlicht.example")

    result = env.run("run", "--output", "json")
    assert result.returncode == 0, _explain(result)
    report = _report(result)
    assert report["summary"] == {
        "client": {"create": 1, "update": 2},
        "contact": {"create": 1, "update": 1},
    }
    updates = {
        (op["entity"], op["target"], op["crm_id"]): [
            (c["field"], c["old"], c["new"]) for c in op["changes"]
        ]
        for op in report["operations"]
        if op["action"] == "update"
    }
    assert updates == {
        ("client", "flowtly", "C001"): [("city", "Warszawa", "Kraków")],
        ("client", "crm", "C002"): [("city", "Gdańsk", "Sopot")],
        ("contact", "crm", "P003"): [("title", "Managing director", "CFO")],
    }
    assert client_by_vat(api, "PL9295973794")["addressCity"] == "Kraków"
    assert _contacts(env)["P003"]["title"] == "CFO"

    header, rows = read_csv(env.crm / "companies.csv")
    assert {row["id"]: row for row in rows}["C002"]["city"] == "Sopot"
    new_rows = [row for row in rows if row["vat_number"] == "DE845721337"]
    assert len(new_rows) == 1
    new = new_rows[0]
    assert new["id"] not in {row["id"] for row in rows_before}
    assert (new["kind"], new["name"], new["country"], new["currency"]) == (
        "client",
        "Nordlicht Medien GmbH",
        "DE",
        "EUR",
    )
    assert (new["due_days"], new["city"], new["segment"]) == ("21", "Hamburg", "")
    new_contacts = [c for c in _contacts(env).values() if c["company_id"] == new["id"]]
    assert [(c["name"], c["email"]) for c in new_contacts] == [
        ("Claudia Fischer", "claudia.fischer@nordlicht.example")
    ]
    # Layout: same header (the unknown column too), same rows in the same order with the
    # unknown column untouched, the new row appended.
    assert header == header_before
    assert [row["id"] for row in rows] == [row["id"] for row in rows_before] + [new["id"]]
    assert [row["segment"] for row in rows[:-1]] == [row["segment"] for row in rows_before]
    _assert_in_sync(env)


@pytest.mark.parametrize("policy", ["crm", "flowtly"])
def test_same_field_conflict_is_decided_by_the_policy(synced_env: Env, policy: str) -> None:
    env, api = synced_env, synced_env.api
    edit_csv(env.crm / "companies.csv", "C007", city="CRM city")
    api.patch(client_by_vat(api, "DE767597593")["@id"], {"addressCity": "Flowtly city"})
    env.configure(sync={"conflict_policy": json.dumps(policy)})

    result = env.run("run", "--output", "json")
    assert result.returncode == 0, _explain(result)
    report = _report(result)
    assert report["conflicts"] == []
    wanted = "CRM city" if policy == "crm" else "Flowtly city"
    [op] = report["operations"]
    assert (op["action"], op["crm_id"]) == ("update", "C007")
    assert op["target"] == ("flowtly" if policy == "crm" else "crm")
    assert [(c["field"], c["new"], c["conflict"]) for c in op["changes"]] == [
        ("city", wanted, True)
    ]
    assert _companies(env)["C007"]["city"] == wanted
    assert client_by_vat(api, "DE767597593")["addressCity"] == wanted


def _park_conflict(env: Env) -> None:
    """Edit C002's city on both sides under the manual policy and run: exit 3, parked."""
    api = env.api
    flowtly_client = client_by_vat(api, "PL8826286845")
    edit_csv(env.crm / "companies.csv", "C002", city="Gdynia")
    api.patch(flowtly_client["@id"], {"addressCity": "Sopot"})
    # An unrelated CRM change must sync while the conflict is parked.
    edit_csv(env.crm / "companies.csv", "C001", phone="+48 22 000 00 00")

    parked = env.run("run", "--output", "json")
    assert parked.returncode == 3, _explain(parked)
    report = _report(parked)
    [conflict] = report["conflicts"]
    assert (conflict["entity"], conflict["action"]) == ("client", "conflict")
    assert (conflict["crm_id"], conflict["flowtly_id"]) == ("C002", str(flowtly_client["id"]))
    assert [c["field"] for c in conflict["changes"]] == ["city"]
    assert client_by_vat(api, "PL9295973794")["addressPhoneNumber"] == "+48 22 000 00 00"
    # Parked: neither side is overwritten.
    assert _companies(env)["C002"]["city"] == "Gdynia"
    assert client_by_vat(api, "PL8826286845")["addressCity"] == "Sopot"


def test_manual_conflict_is_parked_listed_and_resolved(synced_env: Env) -> None:
    env = synced_env
    _park_conflict(env)

    listing = env.run("conflicts", "list")
    assert listing.returncode == 0, _explain(listing)
    lines = [line for line in listing.stdout.splitlines() if "crm C002" in line]
    assert len(lines) == 1, listing.stdout
    assert " city: " in lines[0]
    assert "crm=Gdynia" in lines[0]
    assert "flowtly=Sopot" in lines[0]
    found = re.match(r"#(\d+) client ", lines[0])
    assert found is not None, lines[0]

    resolved = env.run("conflicts", "resolve", found[1], "--take", "flowtly")
    assert resolved.returncode == 0, _explain(resolved)

    after = env.run("run", "--output", "json")
    assert after.returncode == 0, _explain(after)
    report = _report(after)
    assert report["conflicts"] == []
    [op] = report["operations"]
    assert (op["action"], op["target"], op["crm_id"]) == ("update", "crm", "C002")
    assert _companies(env)["C002"]["city"] == "Sopot"
    assert client_by_vat(env.api, "PL8826286845")["addressCity"] == "Sopot"
    with sqlite3.connect(env.store) as db:
        open_conflicts = db.execute("SELECT count(*) FROM conflict WHERE resolved_at IS NULL")
        assert open_conflicts.fetchone()[0] == 0
    db.close()


def test_diff_and_dry_run_write_nothing_anywhere(synced_env: Env) -> None:
    env, api = synced_env, synced_env.api
    edit_csv(env.crm / "companies.csv", "C001", city="Kraków")
    header, rows = read_csv(env.crm / "companies.csv")
    rows.append({**rows[0], "id": "C099", "name": "Nowa Firma sp. z o.o.", "vat_number": ""})
    write_csv(env.crm / "companies.csv", header, rows)
    api.patch(client_by_vat(api, "PL8826286845")["@id"], {"addressCity": "Sopot"})
    new_flowtly_client(api, "Nordlicht Medien GmbH", "DE845721337", "Hamburg")

    crm_before = _files(env.crm)
    store_before = env.store.read_bytes()
    counts_before = _store_counts(env.store)
    flowtly_before = api.snapshot()

    # Both at once: they only read, and each start costs seconds.
    commands = (["diff", "--output", "json"], ["run", "--dry-run", "--output", "json"])
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "sync", *args, "--config", str(env.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            cwd=env.root,
        )
        for args in commands
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        assert result.returncode == 0, _explain(result)
        report = _report(result)
        assert report["dry_run"] is True
        assert report["run_id"] is None
        reports.append(report)
    assert reports[0]["operations"] == reports[1]["operations"]
    planned = {
        (op["entity"], op["action"], op["target"], op["crm_id"]) for op in reports[0]["operations"]
    }
    assert ("client", "update", "flowtly", "C001") in planned
    assert ("client", "update", "crm", "C002") in planned
    assert ("client", "create", "flowtly", "C099") in planned
    assert any(op[:3] == ("client", "create", "crm") for op in planned)

    assert _files(env.crm) == crm_before
    assert env.store.read_bytes() == store_before
    assert _store_counts(env.store) == counts_before
    assert api.snapshot() == flowtly_before


def test_bad_rows_are_reported_while_good_rows_sync(synced_env: Env) -> None:
    env, api = synced_env, synced_env.api
    header, companies = read_csv(env.crm / "companies.csv")
    template = {**companies[0], "vat_number": "", "segment": ""}
    companies += [
        {**template, "id": "B01", "name": "Atlantis Trading", "country": "Atlantis"},
        {**template, "id": "B02", "name": "Soon Payers", "due_days": "soon"},
        {**template, "id": "C050", "name": "Atelier Beaumarchais SARL", "country": "FR"}
        | {"currency": "EUR", "vat_number": "FR72704812593", "city": "Paris"},
    ]
    write_csv(env.crm / "companies.csv", header, companies)
    header, contacts = read_csv(env.crm / "contacts.csv")
    person = {"phone": "", "title": "", "type": "main"}
    contacts += [
        {**person, "id": "PX1", "company_id": "C001", "name": "No Mail", "email": "not-an-email"},
        {
            **person,
            "id": "P050",
            "company_id": "C050",
            "name": "Lea Roux",
            "email": "lea@ab.example",
        },
        {
            **person,
            "id": "P051",
            "company_id": "C001",
            "name": "Ewa Nowak",
            "email": "ewa@zd.example",
        },
    ]
    write_csv(env.crm / "contacts.csv", header, contacts)

    result = env.run("run", "--output", "json")
    assert result.returncode == 3, _explain(result)
    report = _report(result)
    errors = {(e["entity"], e["id"], e["field"]): e for e in report["errors"]}
    assert set(errors) == {
        ("client", "B01", "country"),
        ("client", "B02", "due_days"),
        ("contact", "PX1", "email"),
    }, report["errors"]
    for error in errors.values():
        assert error["reason"]
        assert error["side"] in ("crm", "flowtly")
    assert errors[("client", "B01", "country")]["value"] == "Atlantis"
    assert errors[("client", "B02", "due_days")]["value"] == "soon"
    assert report["summary"]["client"] == {"create": 1, "error": 2}
    assert report["summary"]["contact"]["create"] == 2

    # The good rows synced; the bad ones did not.
    assert client_by_vat(api, "FR72704812593")["name"] == "Atelier Beaumarchais SARL"
    names = {c["name"] for c in api.members("/clients")}
    assert not names & {"Atlantis Trading", "Soon Payers"}
    emails = {c["email"] for c in api.members("/client-contacts")}
    assert {"lea@ab.example", "ewa@zd.example"} <= emails
    assert "not-an-email" not in emails


def test_config_error_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        base_url="http://127.0.0.1:9",
        crm=tmp_path,
        store=tmp_path / "state.db",
        sync={"conflict_policy": '"bogus"'},
    )
    result = run_cli("run", config=config)
    assert result.returncode == 2, _explain(result)
    assert "sync.conflict_policy" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state.db").exists()


def test_wrong_token_fails_with_one_clear_message(synced_env: Env) -> None:
    before = _files(synced_env.crm)
    result = synced_env.run("run", env={"FLOWTLY_SYNC_FLOWTLY__TOKEN": "wrong-token-4567"})
    assert result.returncode == 1, _explain(result)
    assert "Traceback" not in result.stderr
    messages = [line for line in result.stderr.splitlines() if line.startswith("flowtly-sync:")]
    assert len(messages) == 1, result.stderr
    assert re.search(r"401|unauthori[sz]ed|authenticat|token", messages[0], re.IGNORECASE)
    output = result.stdout + result.stderr
    assert "wrong-token-4567" not in output
    assert TOKEN not in output
    assert _files(synced_env.crm) == before
