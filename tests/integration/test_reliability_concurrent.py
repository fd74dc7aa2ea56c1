"""Edits made on both sides while a run is in progress are never lost.

The run works against a sandbox with 150 ms of latency, so it takes seconds; as soon as its
first Flowtly write is logged, the test edits the CRM file and patches a Flowtly record.
Whatever the run does with its own writes, the next run must carry the late edits, and
every earlier edit must have landed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from e2e_support import (
    Env,
    FlowtlyApi,
    SandboxProcess,
    assert_in_sync,
    client_by_vat,
    edit_csv,
    read_csv,
    run_cli,
    run_observed,
    write_config,
)

pytestmark = pytest.mark.slow

C001_VAT, C002_VAT, C007_VAT, C012_VAT = (
    "PL9295973794",
    "PL8826286845",
    "DE767597593",
    "FR77353348162",
)
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _companies(env: Env) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in read_csv(env.crm / "companies.csv")[1]}


def test_edits_during_a_run_are_carried_by_the_next_run(
    synced_env: Env, sandbox_factory: Callable[..., SandboxProcess]
) -> None:
    env = synced_env
    env.sandbox.stop()
    slow = sandbox_factory(db=env.root / "flowtly.db", latency_ms=150)
    api = FlowtlyApi(slow.url)
    write_config(env.config, base_url=slow.url, crm=env.crm, store=env.store, log_level="debug")
    try:
        # Work for the run on both sides, so it writes to Flowtly and to the CRM file.
        edit_csv(env.crm / "companies.csv", "C001", city="Kraków")
        edit_csv(env.crm / "companies.csv", "C016", phone="+31 20 000 0000")
        api.patch(client_by_vat(api, C002_VAT)["@id"], {"addressCity": "Sopot"})
        late: list[str] = []

        def edit_when_writing(event: dict[str, Any]) -> bool:
            writing = event.get("event") == "flowtly.request" and event.get("method") in WRITES
            if writing and not late:
                late.append(str(event.get("path")))
                edit_csv(env.crm / "companies.csv", "C007", city="Esslingen")
                api.patch(client_by_vat(api, C012_VAT)["@id"], {"addressCity": "Villeurbanne"})
            return False

        during = run_observed(env.config, edit_when_writing, "--output", "json")
        assert late, "the run sent no Flowtly write"
        assert "Traceback" not in during.stderr
        # Either it finished, or it refused to overwrite the CRM file edited under it.
        assert during.returncode in (0, 1, 3), during.stderr[-3000:]
        if during.returncode == 1:
            assert "changed on disk" in during.stderr, during.stderr[-3000:]

        after = run_cli("run", "--output", "json", config=env.config)
        assert after.returncode == 0, after.stdout + after.stderr
        report = json.loads(after.stdout)
        assert report["conflicts"] == []

        companies = _companies(env)
        # The edits made before the run ...
        assert client_by_vat(api, C001_VAT)["addressCity"] == "Kraków"
        assert companies["C002"]["city"] == "Sopot"
        assert companies["C016"]["phone"] == "+31 20 000 0000"
        # ... and those made while it ran.
        assert companies["C007"]["city"] == "Esslingen"
        assert client_by_vat(api, C007_VAT)["addressCity"] == "Esslingen"
        assert companies["C012"]["city"] == "Villeurbanne"
        assert_in_sync(env.crm, api)
        final = run_cli("run", "--output", "json", config=env.config)
        assert json.loads(final.stdout)["operations"] == []
    finally:
        api.close()
