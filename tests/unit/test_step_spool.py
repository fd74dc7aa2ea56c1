"""A plan's steps on disk (`StepSpool`, `StepQueue`): the same steps read back, shared
values shared again, one chunk in memory, and a whole run applied from the scratch file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType

import pytest

from connectors.memory import MemoryConnector
from sync.engine.ops import Action, FieldChange, ParkedConflict, Step, Write
from sync.engine.run import SyncJob, run_sync
from sync.engine.step_spool import StepQueue, StepSpool
from sync.model import EntityKind, FieldValues, Record, Side
from sync.store import Store

CLIENT = EntityKind.CLIENT
CONTACT = EntityKind.CONTACT


def _steps() -> list[Step]:
    values = FieldValues({"name": "Acme", "country": "PL", "vat_number": "PL5260250995"})
    child = FieldValues({"name": "Ann", "email": "ann@acme.example", "company_id": "C1"})
    return [
        Step(
            CLIENT,
            "C1",
            None,
            (Write.create(Side.FLOWTLY, values),),
            values,
            crm_fp="a" * 32,
            link=True,
            key_from_base=True,
        ),
        Step(
            CONTACT,
            "P1",
            None,
            (Write.create(Side.FLOWTLY, child, (("company_id", "/api/clients/7"),)),),
            child,
            crm_fp="b" * 32,
            link=True,
        ),
        Step(
            CLIENT,
            "C2",
            "12",
            (Write(Side.FLOWTLY, Action.UPDATE, "12", (FieldChange("city", "Kraków", "Gdańsk"),)),),
            {"name": "Beta", "city": "Gdańsk"},
            crm_fp="c" * 32,
            flowtly_fp="d" * 32,
            link=True,
        ),
        Step(
            CLIENT,
            "C3",
            "13",
            (),
            MappingProxyType({"name": "Gamma"}),
            conflicts=(ParkedConflict("city", "Łódź", "Poznań", "Opole"),),
        ),
        Step(CLIENT, "C4", "14", unlink=True, tombstone=Side.CRM),
        Step(
            CLIENT,
            None,
            "15",
            (Write.create(Side.CRM, values),),
            values,
            flowtly_fp="e" * 32,
            natural_key="tax:PL5260250995",
            replaces="C0",
            link=True,
        ),
        Step(CLIENT, "C6", "16", link=True),
    ]


def _spooled(steps: list[Step], chunk: int = 3) -> StepSpool:
    spool = StepSpool(chunk)
    for step in steps:
        spool.append(step)
    return spool


def test_the_spool_is_the_same_sequence_as_the_steps() -> None:
    steps = _steps()
    spool = _spooled(steps)
    assert spool.held() == 1  # two chunks written, one step not yet
    assert len(spool) == len(steps)
    assert list(spool) == steps
    assert spool == tuple(steps)
    assert tuple(steps) == spool
    assert spool != steps[:-1]
    assert [spool[i] for i in range(len(steps))] == steps
    assert spool[-1] == steps[-1]
    assert spool[1:5] == steps[1:5]
    with pytest.raises(IndexError):
        spool[len(steps)]


def test_a_create_reads_back_its_own_base_and_the_layout_stays_shared() -> None:
    loaded = list(_spooled(_steps(), chunk=2))
    create, child = loaded[0], loaded[1]
    assert create.writes[0].payload is create.base
    assert child.writes[0].overrides == (("company_id", "/api/clients/7"),)
    assert dict(child.writes[0].values())["company_id"] == "/api/clients/7"
    # Both clients' values were loaded onto the one index of their layout.
    other = loaded[5].base
    assert isinstance(create.base, FieldValues)
    assert isinstance(other, FieldValues)
    assert create.base._index is other._index
    assert dict(loaded[3].base) == {"name": "Gamma"}  # a read-only view comes back a dict


def test_the_queue_takes_each_step_once_in_order() -> None:
    steps = _steps()
    queue = StepQueue(_spooled(steps, chunk=2))
    taken = []
    while queue:
        assert len(queue) == len(steps) - len(taken)
        taken.append(queue.popleft())
    assert taken == steps
    assert len(queue) == 0
    with pytest.raises(IndexError):
        queue.popleft()


def test_a_run_applies_a_plan_read_back_from_the_scratch_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.engine.step_spool.STEP_CHUNK", 64)
    fields = {CLIENT: ("name", "country"), CONTACT: ("name", "email", "company_id")}
    crm = MemoryConnector(entities=(CLIENT, CONTACT), fields=fields)
    flowtly = MemoryConnector(entities=(CLIENT, CONTACT), fields=fields, id_prefix="f")
    for n in range(300):
        crm.put(Record(CLIENT, f"C{n}", {"name": f"Co {n}", "country": "PL"}))
        crm.put(
            Record(
                CONTACT,
                f"P{n}",
                {"name": f"Ann {n}", "email": f"a{n}@x.example", "company_id": f"C{n}"},
            )
        )
    with Store.open(f"sqlite:///{tmp_path}/state.db") as store:
        result = asyncio.run(run_sync(SyncJob("t", crm, flowtly, store)))
        assert result.clean
        assert result.summary() == {"client": {"create": 300}, "contact": {"create": 300}}
        clients = {r.id: r for r in flowtly.records(CLIENT)}
        contacts = list(flowtly.records(CONTACT))
        assert {r.get("name") for r in clients.values()} == {f"Co {n}" for n in range(300)}
        # Each contact went to its own company's twin: its reference was read back too.
        for contact in contacts:
            n = int(str(contact.get("name")).split()[1])
            assert clients[str(contact.get("company_id"))].get("name") == f"Co {n}"
        assert len(contacts) == 300
        again = asyncio.run(run_sync(SyncJob("t", crm, flowtly, store)))
        assert again.summary() == {}
