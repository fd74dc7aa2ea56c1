"""An initial sync of 200 companies through a faulty network still converges.

The sandbox answers 10 % of requests 500/503 and 429s (with ``Retry-After``) above its
request rate; a proxy in front of it drops a seeded fraction of connections (before or
after the sandbox acted) and holds some answers beyond the client's 0.5 s timeout. At most
two runs leave exactly one Flowtly record per CRM record with every field equal.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CrmData,
    FaultProxy,
    FlowtlyApi,
    assert_in_sync,
    integrity,
    pl_vat,
    read_csv,
    run_cli,
    small_crm,
    start_sandbox,
    store_rows,
    write_config,
    write_crm,
)

pytestmark = pytest.mark.slow

SEED = 6_2026
COMPANIES = 200
CONTACT_EVERY = 10  # one contact for every tenth company


def _crm() -> CrmData:
    companies, contacts = [], []
    for n in range(COMPANIES):
        companies.append(
            {
                "id": f"F{n:03d}",
                "kind": "supplier" if n % 10 == 9 else "client",
                "name": f"Usterka {n:03d} sp. z o.o.",
                "country": "PL",
                "currency": "PLN",
                "status": "active",
                "tin_type": "vat",
                "vat_number": pl_vat(1000 + n),
                "due_days": str(7 + n % 50),
                "city": ("Kraków", "Wrocław", "Lublin")[n % 3],
                "post_code": f"{30 + n % 60:02d}-{n:03d}",
                "phone": f"+48 12 {n:03d} 00 {n % 97:02d}",
            }
        )
        if n % CONTACT_EVERY == 0:
            contacts.append(
                {
                    "id": f"FC{n:03d}",
                    "company_id": f"F{n:03d}",
                    "name": f"Osoba {n:03d}",
                    "email": f"osoba{n:03d}@usterka.example",
                    "title": "Księgowa",
                    "type": "main",
                }
            )
    return CrmData(companies, contacts)


MAX_RUNS = 5
TIMEOUT_S = 1.0


@dataclass
class Converged:
    """The runs it took under faults, what was injected, and both sides afterwards."""

    runs: list[subprocess.CompletedProcess[str]]
    faults: dict[tuple[str, str], int]
    crm: Path
    store: Path
    flowtly_db: Path


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _retries(result: subprocess.CompletedProcess[str]) -> Counter[int | None]:
    """The status of every retried request (None: timeout or dropped connection)."""
    statuses: Counter[int | None] = Counter()
    for line in result.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "flowtly.retry":
            statuses[event.get("status")] += 1
    return statuses


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Converged:
    """Run until a run is clean (at most ``MAX_RUNS``) through the faults; then serve the
    resulting Flowtly database is read offline, free of faults."""
    root = tmp_path_factory.mktemp("faults")
    db = root / "flowtly.db"
    crm = write_crm(root / "crm", _crm())
    store = root / "state.db"
    faulty = start_sandbox(root, db=db, fail_rate=0.1, rate_limit=20, seed=SEED)
    try:
        with FaultProxy(
            faulty.url, seed=SEED, drop_rate=0.02, delay_rate=0.02, delay_s=TIMEOUT_S * 1.5
        ) as proxy:
            config = write_config(
                root / "config.toml",
                base_url=proxy.url,
                crm=crm,
                store=store,
                flowtly={"timeout": str(TIMEOUT_S), "max_retries": "6", "concurrency": "8"},
            )
            runs: list[subprocess.CompletedProcess[str]] = []
            while len(runs) < MAX_RUNS and (not runs or runs[-1].returncode != 0):
                runs.append(run_cli("run", "--output", "json", config=config))
            faults = dict(proxy.faults)
    finally:
        faulty.stop()
    return Converged(runs, faults, crm, store, db)


def test_faults_were_injected_and_retried(converged: Converged) -> None:
    retried: Counter[int | None] = Counter()
    for run in converged.runs:
        retried.update(_retries(run))
    assert retried[500] + retried[503] > 0, retried
    # A timeout or a dropped connection was retried (GET, PATCH), or cost its record the run
    # (POST, which is not repeated blindly).
    lost = [
        e
        for run in converged.runs
        for e in _report(run)["errors"]
        if "timed out" in e["reason"] or "disconnect" in e["reason"].lower()
    ]
    assert retried[None] > 0 or lost, retried
    kinds = {kind for kind, _ in converged.faults}
    assert kinds == {"drop-before", "drop-after", "delay"}, converged.faults
    for run in converged.runs:
        assert "Traceback" not in run.stderr
        assert run.returncode in (0, 3), run.stderr[-3000:]
        # Only per-record failures: the run itself always got through its reads.
        for error in _report(run)["errors"]:
            assert error["side"] == "flowtly", error
            assert "failed" in error["reason"], error


def test_converges_with_one_flowtly_record_per_crm_record(converged: Converged) -> None:
    last = converged.runs[-1]
    assert last.returncode == 0, (len(converged.runs), _report(last)["errors"][:5])
    report = _report(last)
    assert report["errors"] == []
    api = FlowtlyApi.offline(converged.flowtly_db)
    try:
        assert_in_sync(converged.crm, api)
        assert len(api.members("/clients")) + len(api.members("/counterparties")) == COMPANIES
    finally:
        api.close()
    assert integrity(converged.store) == "ok"
    assert store_rows(converged.store, "intent") == []
    # The CRM was only read: nothing came back from Flowtly, nothing was rewritten.
    _, companies = read_csv(converged.crm / "companies.csv")
    assert companies == [{k: row.get(k, "") for k in companies[0]} for row in _crm().companies]


def test_converges_within_two_runs(converged: Converged) -> None:
    assert converged.runs[-1].returncode == 0
    assert len(converged.runs) <= 2, [_report(r)["summary"] for r in converged.runs]


def test_rate_limited_run_completes_in_one_run(tmp_path: Path) -> None:
    """429s alone never cost a record: every request, POSTs included, waits and retries."""
    sandbox = start_sandbox(tmp_path, db=tmp_path / "flowtly.db", rate_limit=4, seed=SEED)
    try:
        crm = write_crm(tmp_path / "crm", small_crm())
        config = write_config(
            tmp_path / "config.toml",
            base_url=sandbox.url,
            crm=crm,
            store=tmp_path / "state.db",
            flowtly={"max_retries": "8", "concurrency": "4"},
        )
        result = run_cli("run", "--output", "json", config=config)
        assert result.returncode == 0, result.stderr[-3000:]
        assert _report(result)["errors"] == []
        retried = _retries(result)
        assert retried[429] > 0, retried
        assert set(retried) == {429}, retried
    finally:
        sandbox.stop()
    api = FlowtlyApi.offline(tmp_path / "flowtly.db")
    try:
        assert_in_sync(crm, api)
    finally:
        api.close()
