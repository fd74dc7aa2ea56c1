"""A loop of SIGKILLs at seeded random moments of real ``flowtly-sync run`` processes.

Each cycle changes something (the initial sync, new records on both sides, edits on both
sides, same-field conflicts decided by policy), starts a run against a sandbox with 20 ms of
latency, kills it (SIGKILL) when the seeded n-th Flowtly request or write is logged, checks
that the store passes ``PRAGMA integrity_check``, then lets one more run finish: it must
restore full agreement with no duplicate on either side and nothing lost.
"""

from __future__ import annotations

import json
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CrmData,
    FlowtlyApi,
    ObservedRun,
    assert_in_sync,
    integrity,
    pl_vat,
    read_csv,
    run_cli,
    run_observed,
    start_sandbox,
    store_rows,
    write_config,
    write_crm,
    write_csv,
)

pytestmark = pytest.mark.slow

SEED = 60_601
COMPANIES = 24
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PHASES = (
    "initial",
    "create",
    "incremental",
    "conflict-crm",
    "create",
    "incremental",
    "conflict-flowtly",
    "incremental",
    "create",
    "conflict-crm",
)
MIN_KILLS = 10


def _company(n: int) -> dict[str, str]:
    return {
        "id": f"K{n:03d}",
        "kind": "client",
        "name": f"Awaria {n:03d} sp. z o.o.",
        "country": "PL",
        "currency": "PLN",
        "status": "active",
        "tin_type": "vat",
        "vat_number": pl_vat(2000 + n),
        "due_days": "14",
        "city": "Gdańsk",
        "phone": f"+48 58 {n:03d} 11 22",
        "segment": "smb",
    }


def _contact(n: int) -> dict[str, str]:
    return {
        "id": f"Q{n:03d}",
        "company_id": f"K{n:03d}",
        "name": f"Osoba {n:03d}",
        "email": f"osoba{n:03d}@awaria.example",
        "title": "Księgowa",
        "type": "main",
    }


@dataclass
class World:
    """The CRM folder, the store, Flowtly over HTTP and the counters of one scenario."""

    root: Path
    crm: Path
    store: Path
    config: Path
    base_url: str
    api: FlowtlyApi
    rng: random.Random
    next_company: int = COMPANIES
    next_flowtly: int = 0

    def configure(self, policy: str) -> None:
        write_config(
            self.config,
            base_url=self.base_url,
            crm=self.crm,
            store=self.store,
            sync={"conflict_policy": json.dumps(policy)},
            log_level="debug",
        )

    def edit_crm(self, record_id: str, **changes: str) -> None:
        path = self.crm / "companies.csv"
        header, rows = read_csv(path)
        [row] = [r for r in rows if r["id"] == record_id]
        row.update(changes)
        write_csv(path, header, rows)

    def add_crm(self, count: int) -> None:
        for name, make in (("companies.csv", _company), ("contacts.csv", _contact)):
            header, rows = read_csv(self.crm / name)
            rows += [make(n) for n in range(self.next_company, self.next_company + count)]
            write_csv(self.crm / name, header, rows)
        self.next_company += count

    def client(self, vat: str) -> dict[str, Any]:
        [found] = [c for c in self.api.members("/clients") if c.get("vatNumber") == vat]
        return found

    def add_flowtly(self, count: int) -> None:
        for _ in range(count):
            n = self.next_flowtly
            self.next_flowtly += 1
            client = self.api.post(
                "/clients",
                {
                    "name": f"Tylko we Flowtly {n}",
                    "country": self.api.iri("countries", "PL"),
                    "currency": self.api.iri("currencies", "PLN"),
                    "status": "active",
                    "tinType": "vat",
                    "vatNumber": pl_vat(7000 + n),
                    "addressCity": "Olsztyn",
                },
            )
            self.api.post(
                "/client-contacts",
                {
                    "client": client["@id"],
                    "type": "main",
                    "name": f"Kontakt {n}",
                    "email": f"kontakt{n}@tylko-flowtly.example",
                },
            )

    def crm_rows(self) -> dict[str, dict[str, str]]:
        return {row["vat_number"]: row for row in read_csv(self.crm / "companies.csv")[1]}


Expect = Callable[[World], None]


def _prepare(world: World, phase: str, cycle: int) -> tuple[int, Expect]:
    """Make this cycle's changes; return how many Flowtly writes the run should send and
    a check of the values that must survive the kill and the recovery."""
    rng = world.rng
    if phase == "initial":
        world.configure("manual")
        return COMPANIES * 2, lambda w: None
    if phase == "create":
        world.add_crm(4)
        world.add_flowtly(2)
        return 8, lambda w: None
    vats = sorted(world.crm_rows())
    picked = rng.sample(vats, 4)
    if phase == "incremental":
        crm_side, flowtly_side = picked[:2], picked[2:]
        for vat in crm_side:
            world.edit_crm(world.crm_rows()[vat]["id"], city=f"Sopot {cycle}")
        for vat in flowtly_side:
            world.api.patch(world.client(vat)["@id"], {"addressCity": f"Gdynia {cycle}"})

        def survived(w: World) -> None:
            rows = w.crm_rows()
            for vat in crm_side:
                assert rows[vat]["city"] == f"Sopot {cycle}", vat
            for vat in flowtly_side:
                assert rows[vat]["city"] == f"Gdynia {cycle}", vat

        return 2, survived
    policy = phase.removeprefix("conflict-")
    world.configure(policy)
    both, crm_only = picked[:2], picked[2]
    for vat in both:
        world.edit_crm(world.crm_rows()[vat]["id"], city=f"CRM {cycle}")
        world.api.patch(world.client(vat)["@id"], {"addressCity": f"Flowtly {cycle}"})
    world.edit_crm(world.crm_rows()[crm_only]["id"], phone=f"+48 58 999 00 {cycle:02d}")
    winner = f"CRM {cycle}" if policy == "crm" else f"Flowtly {cycle}"

    def decided(w: World) -> None:
        rows = w.crm_rows()
        for vat in both:
            assert rows[vat]["city"] == winner, vat
        assert rows[crm_only]["phone"] == f"+48 58 999 00 {cycle:02d}"

    return 1 + (2 if policy == "crm" else 0), decided


def _killer(rng: random.Random, writes: int) -> Callable[[dict[str, Any]], bool]:
    """Kill on the n-th logged Flowtly write, or (one time in five) on the n-th request."""
    on_reads = rng.random() < 0.2
    target = rng.randint(1, 4) if on_reads else rng.randint(1, writes)
    seen = 0

    def on_event(event: dict[str, Any]) -> bool:
        nonlocal seen
        if event.get("event") != "flowtly.request":
            return False
        if on_reads or event.get("method") in WRITES:
            seen += 1
        return seen >= target

    return on_event


@dataclass
class Cycle:
    phase: str
    killed: ObservedRun
    integrity_after_kill: str
    recovery_exit: int
    recovery_report: dict[str, Any]
    recovery_stderr: str


def test_sigkill_loop_never_corrupts_duplicates_or_loses(tmp_path: Path) -> None:
    sandbox = start_sandbox(tmp_path, db=tmp_path / "flowtly.db", latency_ms=20)
    api = FlowtlyApi(sandbox.url)
    cycles: list[Cycle] = []
    try:
        crm = write_crm(
            tmp_path / "crm",
            CrmData(
                [_company(n) for n in range(COMPANIES)], [_contact(n) for n in range(COMPANIES)]
            ),
        )
        world = World(
            tmp_path,
            crm,
            tmp_path / "state.db",
            tmp_path / "config.toml",
            sandbox.url,
            api,
            random.Random(SEED),
        )
        for number, phase in enumerate(PHASES):
            writes, expect = _prepare(world, phase, number)
            killed = run_observed(world.config, _killer(world.rng, writes))
            assert "Traceback" not in killed.stderr, killed.stderr[-3000:]
            state = integrity(world.store) if world.store.exists() else "ok"
            recovery = run_cli("run", "--output", "json", config=world.config)
            assert recovery.returncode == 0, (phase, number, recovery.stdout, recovery.stderr)
            cycles.append(
                Cycle(
                    phase,
                    killed,
                    state,
                    recovery.returncode,
                    json.loads(recovery.stdout),
                    recovery.stderr,
                )
            )
            assert state == "ok", (phase, number, state)
            assert integrity(world.store) == "ok"
            assert store_rows(world.store, "intent") == [], (phase, number)
            assert_in_sync(world.crm, api)
            expect(world)
    finally:
        api.close()
        sandbox.stop()
    kills = [c for c in cycles if c.killed.killed]
    assert len(kills) == len(PHASES) >= MIN_KILLS, [(c.phase, c.killed.returncode) for c in cycles]
    assert all(c.killed.returncode == -signal.SIGKILL for c in kills)
    assert {c.phase for c in kills} == set(PHASES)
    # The run after the last recovery has nothing left to do.
    _, rows = read_csv(crm / "companies.csv")
    assert len(rows) == world.next_company + world.next_flowtly
