"""A run killed (SIGKILL) at arbitrary points never duplicates a record on either side.

The sandbox answers with 20 ms of latency so a run is long enough to be cut in the middle
of its writes. Each run logs every Flowtly request (``flowtly.request`` at debug level);
the test kills the run right after a seeded random number of writes went out, with more
in flight, then lets a last run finish and checks both sides record by record.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CLI_TIMEOUT,
    CrmData,
    FlowtlyApi,
    cli_env,
    pl_vat,
    read_csv,
    run_cli,
    start_sandbox,
    write_config,
    write_crm,
)

pytestmark = pytest.mark.slow

SEED = 20261125
COMPANIES = 40
KILLS = 4
FLOWTLY_ONLY = 4
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def _crm() -> CrmData:
    companies, contacts = [], []
    for n in range(COMPANIES):
        companies.append(
            {
                "id": f"K{n:03d}",
                "kind": "client",
                "name": f"Firma Testowa {n:02d} sp. z o.o.",
                "country": "PL",
                "currency": "PLN",
                "status": "active",
                "tin_type": "vat",
                "vat_number": pl_vat(n),
                "due_days": str(7 + n % 30),
                "city": "Poznań",
                "segment": ("smb", "enterprise")[n % 2],
            }
        )
        for suffix, role in (("a", "main"), ("b", "billing")):
            contacts.append(
                {
                    "id": f"Q{n:03d}{suffix}",
                    "company_id": f"K{n:03d}",
                    "name": f"Osoba {n:02d}{suffix}",
                    "email": f"{role}.{n:02d}@firma{n:02d}.example",
                    "type": role,
                }
            )
    return CrmData(companies, contacts)


def _seed_flowtly(api: FlowtlyApi) -> None:
    """Clients that exist only in Flowtly (with a contact each), and one that already
    exists in the CRM (same VAT): it must be linked, not created again."""
    common = {
        "country": api.iri("countries", "PL"),
        "currency": api.iri("currencies", "PLN"),
        "status": "active",
        "tinType": "vat",
    }
    for n in range(FLOWTLY_ONLY):
        client = api.post(
            "/clients", {**common, "name": f"Tylko Flowtly {n}", "vatNumber": pl_vat(900 + n)}
        )
        api.post(
            "/client-contacts",
            {
                "client": client["@id"],
                "type": "main",
                "name": f"Kontakt {n}",
                "email": f"kontakt{n}@flowtly-only.example",
            },
        )
    api.post("/clients", {**common, "name": "Firma Testowa 00 sp. z o.o.", "vatNumber": pl_vat(0)})


def _run_and_kill(config: Path, after_writes: int) -> int:
    """Start a run, SIGKILL it once ``after_writes`` Flowtly writes were logged; the exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=config.parent,
    )
    assert proc.stderr is not None
    watchdog = threading.Timer(CLI_TIMEOUT, proc.kill)
    watchdog.start()
    try:
        writes = 0
        for line in proc.stderr:
            try:
                event: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "flowtly.request" and event.get("method") in WRITES:
                writes += 1
                if writes >= after_writes:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.stderr.read()
        return proc.wait()
    finally:
        watchdog.cancel()
        proc.stderr.close()


@dataclass
class Crashed:
    """What the kills and the runs after them left behind."""

    crm: Path
    store: Path
    crm_data: CrmData
    exits: list[int]
    final: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]
    clients: list[dict[str, Any]]
    contacts: list[dict[str, Any]]


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Crashed:
    """Kill ``KILLS`` runs mid-write, then run to completion, then once more."""
    root = tmp_path_factory.mktemp("crash")
    sandbox = start_sandbox(root, db=root / "flowtly.db", latency_ms=20)
    api = FlowtlyApi(sandbox.url)
    try:
        crm_data = _crm()
        crm = write_crm(root / "crm", crm_data)
        store = root / "state.db"
        config = write_config(
            root / "config.toml", base_url=sandbox.url, crm=crm, store=store, log_level="debug"
        )
        _seed_flowtly(api)
        rng = random.Random(SEED)
        exits = [_run_and_kill(config, rng.randint(2, 25)) for _ in range(KILLS)]
        final = run_cli("run", "--output", "json", config=config)
        again = run_cli("run", "--output", "json", config=config)
        clients, contacts = api.members("/clients"), api.members("/client-contacts")
    finally:
        api.close()
        sandbox.stop()
    return Crashed(crm, store, crm_data, exits, final, again, clients, contacts)


def test_killed_runs_never_duplicate_records(crashed: Crashed) -> None:
    assert crashed.exits == [-signal.SIGKILL] * KILLS, crashed.exits
    final = crashed.final
    assert final.returncode == 0, final.stdout + final.stderr
    _assert_no_duplicates(crashed)
    again = crashed.again
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads(again.stdout)
    assert report["operations"] == []
    assert report["errors"] == []


def test_no_intent_outlives_the_recovery(crashed: Crashed) -> None:
    assert crashed.final.returncode == 0
    with sqlite3.connect(crashed.store) as db:
        stale = db.execute("SELECT entity, source_id FROM intent ORDER BY id").fetchall()
    db.close()
    assert stale == []


def _assert_no_duplicates(crashed: Crashed) -> None:
    crm, crm_data, clients = crashed.crm, crashed.crm_data, crashed.clients
    crm_vats = [row["vat_number"] for row in crm_data.companies]
    by_vat = Counter(c.get("vatNumber") for c in clients)
    assert all(by_vat[vat] == 1 for vat in crm_vats), {v: n for v, n in by_vat.items() if n != 1}
    assert len(clients) == COMPANIES + FLOWTLY_ONLY
    assert sum(by_vat.values()) == len(by_vat) == len(clients)

    vat_of_iri = {c["@id"]: c.get("vatNumber") for c in clients}
    contacts = crashed.contacts
    pairs = Counter((vat_of_iri[c["client"]], c["email"]) for c in contacts)
    assert all(n == 1 for n in pairs.values()), {p: n for p, n in pairs.items() if n != 1}
    vat_of_crm = {row["id"]: row["vat_number"] for row in crm_data.companies}
    for row in crm_data.contacts:
        assert pairs[(vat_of_crm[row["company_id"]], row["email"])] == 1, row["id"]
    assert len(contacts) == len(crm_data.contacts) + FLOWTLY_ONLY

    # The CRM: every company and contact once, the Flowtly-only ones added once each.
    _, companies = read_csv(crm / "companies.csv")
    assert len(companies) == COMPANIES + FLOWTLY_ONLY
    assert len({row["id"] for row in companies}) == len(companies)
    assert Counter(row["vat_number"] for row in companies) == Counter(
        c.get("vatNumber") for c in clients
    )
    assert [row["id"] for row in companies[:COMPANIES]] == [r["id"] for r in crm_data.companies]
    _, crm_contacts = read_csv(crm / "contacts.csv")
    assert len(crm_contacts) == len(crm_data.contacts) + FLOWTLY_ONLY
    assert len({row["id"] for row in crm_contacts}) == len(crm_contacts)
    assert len({(row["company_id"], row["email"]) for row in crm_contacts}) == len(crm_contacts)
