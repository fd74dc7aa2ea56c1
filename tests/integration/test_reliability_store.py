"""A lost or stale state store never duplicates or deletes anything.

Every test starts from a copy of the session's initial sync of `small_crm` (see
``conftest``). Losing the store (deleted) or going back to an older copy of it leaves the
engine with no base, or an old one, for records both sides already hold: it must link them
again by their natural keys, create and delete nothing, and treat differing values as
conflicts under the manual policy, or decide them by the configured policy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    Env,
    assert_in_sync,
    client_by_vat,
    edit_csv,
    integrity,
    new_flowtly_client,
    new_flowtly_contact,
    read_csv,
    store_rows,
    write_csv,
)

pytestmark = pytest.mark.slow

C001_VAT, C002_VAT, C007_VAT = "PL9295973794", "PL8826286845", "DE767597593"
NEW_FLOWTLY_VAT = "DE845721337"


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _counts(env: Env) -> dict[str, int]:
    snapshot = env.api.snapshot()
    counts = {name: len(items) for name, items in snapshot.items()}
    for name in ("companies.csv", "contacts.csv", "notes.csv"):
        counts[name] = len(read_csv(env.crm / name)[1])
    return counts


def _edit_both_sides(env: Env) -> None:
    """C001's city in the CRM, C002's city in Flowtly: different records, different sides."""
    edit_csv(env.crm / "companies.csv", "C001", city="Kraków")
    env.api.patch(client_by_vat(env.api, C002_VAT)["@id"], {"addressCity": "Sopot"})


def _assert_nothing_created_or_deleted(report: dict[str, Any]) -> None:
    actions = {op["action"] for op in report["operations"]}
    assert not actions & {"create", "delete", "archive"}, report["summary"]


def test_lost_store_with_manual_policy_relinks_and_parks_differences(synced_env: Env) -> None:
    env = synced_env
    _edit_both_sides(env)
    before = _counts(env)
    env.store.unlink()

    result = env.run("run", "--output", "json")
    assert "Traceback" not in result.stderr
    assert result.returncode == 3, result.stdout + result.stderr
    report = _report(result)
    _assert_nothing_created_or_deleted(report)
    assert _counts(env) == before
    conflicts = {(c["crm_id"], ch["field"]) for c in report["conflicts"] for ch in c["changes"]}
    assert conflicts == {("C001", "city"), ("C002", "city")}, report["conflicts"]
    # Parked: neither side was overwritten.
    companies = {row["id"]: row for row in read_csv(env.crm / "companies.csv")[1]}
    assert companies["C001"]["city"] == "Kraków"
    assert companies["C002"]["city"] == "Gdańsk"
    assert client_by_vat(env.api, C001_VAT)["addressCity"] == "Warszawa"
    assert client_by_vat(env.api, C002_VAT)["addressCity"] == "Sopot"
    # Every record is linked again, once.
    links = store_rows(env.store, "link")
    assert (
        len(links)
        == before["clients"]
        + before["counterparties"]
        + before["client-contacts"]
        + before["client-notes"]
    )
    assert integrity(env.store) == "ok"


def test_lost_store_with_crm_policy_relinks_and_resolves(synced_env: Env) -> None:
    env = synced_env
    _edit_both_sides(env)
    before = _counts(env)
    env.store.unlink()
    env.configure(sync={"conflict_policy": '"crm"'})

    result = env.run("run", "--output", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = _report(result)
    _assert_nothing_created_or_deleted(report)
    assert report["conflicts"] == []
    assert _counts(env) == before
    # Without a base, the CRM's values win wherever the sides differ.
    assert client_by_vat(env.api, C001_VAT)["addressCity"] == "Kraków"
    assert client_by_vat(env.api, C002_VAT)["addressCity"] == "Gdańsk"
    assert_in_sync(env.crm, env.api)
    again = env.run("run", "--output", "json")
    assert again.returncode == 0
    assert _report(again)["operations"] == []


def test_stale_store_restored_from_an_older_copy(synced_env: Env, tmp_path: Path) -> None:
    env, api = synced_env, synced_env.api
    old = tmp_path / "state-after-run-1.db"
    shutil.copyfile(env.store, old)

    # Run 2 carries edits and creates from both sides.
    _edit_both_sides(env)
    header, rows = read_csv(env.crm / "companies.csv")
    rows.append(
        {**rows[0], "id": "C050", "name": "Nowa Firma sp. z o.o."}
        | {"vat_number": "PL5260250274", "city": "Radom"}
    )
    write_csv(env.crm / "companies.csv", header, rows)
    created = new_flowtly_client(api, "Nordlicht Medien GmbH", NEW_FLOWTLY_VAT, "Hamburg")
    new_flowtly_contact(api, created, "Claudia Fischer", "claudia.fischer@nordlicht.example")
    second = env.run("run", "--output", "json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert_in_sync(env.crm, api)
    # An edit after run 2 that the old store has never seen, on one side only.
    edit_csv(env.crm / "companies.csv", "C007", city="Esslingen")
    before = _counts(env)

    shutil.copyfile(old, env.store)
    for suffix in ("-wal", "-shm"):
        Path(str(env.store) + suffix).unlink(missing_ok=True)
    third = env.run("run", "--output", "json")
    assert "Traceback" not in third.stderr
    assert third.returncode == 0, third.stdout + third.stderr
    report = _report(third)
    _assert_nothing_created_or_deleted(report)
    assert report["conflicts"] == []
    assert _counts(env) == before
    linked = {(op["entity"], op["crm_id"]) for op in report["operations"] if op["action"] == "link"}
    assert ("client", "C050") in linked
    assert client_by_vat(api, C007_VAT)["addressCity"] == "Esslingen"
    assert_in_sync(env.crm, api)
    assert integrity(env.store) == "ok"
    again = env.run("run", "--output", "json")
    assert _report(again)["operations"] == []
