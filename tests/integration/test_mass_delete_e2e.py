"""The mass-delete guard end to end: an emptied companies file deletes nothing in Flowtly
until one run is told to, with ``--allow-mass-delete``."""

from __future__ import annotations

import json

import pytest
from e2e_support import COMPANY_COLUMNS, Env, write_csv

pytestmark = pytest.mark.slow


def _statuses(env: Env) -> list[str]:
    return sorted(str(c["status"]) for c in env.api.members("/clients"))


def test_header_only_companies_file_deletes_nothing_until_allowed(synced_env: Env) -> None:
    suppliers = len(synced_env.api.members("/counterparties"))
    assert suppliers == 1
    assert _statuses(synced_env) == ["active"] * 5
    write_csv(synced_env.crm / "companies.csv", COMPANY_COLUMNS, [])

    refused = synced_env.run("run")
    assert refused.returncode == 3, refused.stderr
    assert "mass-delete guard: 5 of 5 linked client records" in refused.stdout
    assert "mass-delete guard: 1 of 1 linked counterparty records" in refused.stdout
    assert "--allow-mass-delete" in refused.stdout
    assert _statuses(synced_env) == ["active"] * 5
    assert len(synced_env.api.members("/counterparties")) == suppliers

    again = synced_env.run("run", "--output", "json")
    assert again.returncode == 3
    report = json.loads(again.stdout)
    assert {e["entity"] for e in report["errors"] if e["id"] == "*"} == {"client", "counterparty"}
    assert not {"delete", "archive"} & {op["action"] for op in report["operations"]}

    allowed = synced_env.run("run", "--allow-mass-delete", "--output", "json")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    summary = json.loads(allowed.stdout)["summary"]
    assert summary["client"] == {"archive": 5}
    assert summary["counterparty"] == {"delete": 1}
    assert _statuses(synced_env) == ["archived"] * 5
    assert synced_env.api.members("/counterparties") == []
