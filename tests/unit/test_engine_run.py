"""A whole run over in-memory sides and a real store: effects, isolation, dry runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.memory import IncrementalMemoryConnector, MemoryConnector, Op
from sync.engine.ops import Action
from sync.engine.run import SyncJob, run_sync
from sync.errors import AuthenticationError, LockHeld, ValidationFailed, Violation
from sync.model import EntityKind, Record, Side
from sync.policy import ConflictPolicy, SyncPolicy
from sync.store import RunOutcome, Store

CLIENT, CONTACT = EntityKind.CLIENT, EntityKind.CONTACT
FIELDS = {
    CLIENT: ("name", "country", "vat_number", "city", "status"),
    CONTACT: ("company_id", "name", "email"),
}


def sides(crm_cls: type[MemoryConnector] = MemoryConnector):
    crm = crm_cls(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="c", buffered=True)
    flowtly = MemoryConnector(
        entities=(CLIENT, CONTACT),
        fields=FIELDS,
        id_prefix="f",
        deletable=frozenset({CONTACT}),
        archive_status="archived",
    )
    return crm, flowtly


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def company(rid: str, vat: str, **extra: object) -> Record:
    return Record(
        CLIENT,
        rid,
        {"name": f"Co {vat}", "country": "PL", "vat_number": vat, "status": "active", **extra},
    )  # type: ignore[arg-type]


def run(crm, flowtly, store, *, dry_run=False, policy=None):
    job = SyncJob("t", crm, flowtly, store, policy or SyncPolicy(), concurrency=4)
    return asyncio.run(run_sync(job, dry_run=dry_run))


def test_initial_sync_then_nothing_to_do(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    crm.put(Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"}))
    flowtly.put(company("9", "PL9"))
    first = run(crm, flowtly, store)
    assert first.clean
    assert sorted((str(op.entity), str(op.action), str(op.target)) for op in first.operations) == [
        ("client", "create", "crm"),
        ("client", "create", "flowtly"),
        ("contact", "create", "flowtly"),
    ]
    contact = flowtly.records(CONTACT)[0]
    assert contact.get("company_id") == store.link_index("t", CLIENT)["C1"].flowtly_id
    crm.reset_calls()
    flowtly.reset_calls()
    second = run(crm, flowtly, store)
    assert second.operations == []
    assert crm.calls == []
    assert flowtly.calls == []
    assert [r.outcome for r in store.recent_runs("t")] == [RunOutcome.OK, RunOutcome.OK]


def test_dry_run_writes_nothing_anywhere(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    crm.put(Record(CONTACT, "P1", {"company_id": "C1", "name": "Ann", "email": "a@x.eu"}))
    result = run(crm, flowtly, store, dry_run=True)
    # The contact is planned under its company's create, not left waiting.
    assert {(str(op.entity), str(op.action)) for op in result.operations} == {
        ("client", "create"),
        ("contact", "create"),
    }
    assert flowtly.records(CLIENT) == []
    assert crm.calls == []
    assert flowtly.calls == []
    assert store.recent_runs("t") == []
    assert store.link_index("t", CLIENT) == {}


def test_a_refused_record_is_isolated_remembered_and_retried_when_changed(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    crm.put(company("C2", "PL2"))
    refusal = ValidationFailed(
        "422", violations=(Violation("tinType", "This value should not be blank."),)
    )
    flowtly.fail_when(
        lambda op, entity, rid, values: (
            refusal if op is Op.CREATE and values.get("vat_number") == "PL2" else None
        )
    )
    first = run(crm, flowtly, store)
    assert not first.clean
    assert [e.record_id for e in first.errors] == ["C2"]
    assert first.errors[0].field == "tinType"
    assert len(flowtly.records(CLIENT)) == 1
    [rejection] = store.rejections("t")
    assert (rejection.side, rejection.record_id) == (Side.CRM, "C2")
    again = run(crm, flowtly, store)
    assert "still rejected" in again.errors[0].reason
    assert len(flowtly.records(CLIENT)) == 1
    flowtly.clear_faults()
    crm.put(company("C2", "PL2", city="Lodz"))
    fixed = run(crm, flowtly, store)
    assert fixed.clean
    assert len(flowtly.records(CLIENT)) == 2
    assert store.rejections("t") == []


def test_an_ambiguous_match_is_planned_afresh_once_the_other_record_is_fixed(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    crm.put(company("C2", "PL1", name="Typo Ltd"))  # the same tax id: nothing is created
    first = run(crm, flowtly, store)
    assert sorted(e.record_id for e in first.errors) == ["C1", "C2"]
    assert "ambiguous match" in first.errors[0].reason
    assert flowtly.records(CLIENT) == []
    assert store.rejections("t") == []  # depends on other records: not kept as rejected
    crm.put(company("C2", "PL2", name="Typo Ltd"))  # C2 fixed; C1 itself never changed
    fixed = run(crm, flowtly, store)
    assert fixed.clean
    assert sorted(r.get("vat_number") for r in flowtly.records(CLIENT)) == ["PL1", "PL2"]


def test_the_next_chunk_is_sent_before_the_last_one_is_stored(store):
    """Requests stay in flight while the store commits: the first create of the second
    chunk (creates 33.., concurrency 4) starts before the first chunk's links are saved."""
    linked_when_started: list[int] = []

    class Recording(MemoryConnector):
        async def create(self, entity, values):
            linked_when_started.append(store.link_count("t", CLIENT))
            await asyncio.sleep(0)  # a write takes a turn of the loop
            return await super().create(entity, values)

    crm, _ = sides()
    flowtly = Recording(entities=(CLIENT, CONTACT), fields=FIELDS, id_prefix="f")
    for n in range(100):
        crm.put(company(f"C{n}", f"PL{n}"))
    job = SyncJob("t", crm, flowtly, store, SyncPolicy(), concurrency=4)
    assert asyncio.run(run_sync(job)).clean
    assert len(flowtly.records(CLIENT)) == 100
    assert store.link_count("t", CLIENT) == 100
    assert linked_when_started[32] == 0  # chunk 2 began while chunk 1 was in flight
    assert linked_when_started[64] <= 32  # at most one chunk behind, never more


def test_authentication_failure_stops_the_run_and_marks_it_failed(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    flowtly.fail_next(Op.CREATE, exc=AuthenticationError("401 Unauthorized"))
    with pytest.raises(AuthenticationError):
        run(crm, flowtly, store)
    [last] = store.recent_runs("t")
    assert last.outcome is RunOutcome.FAILED
    assert "AuthenticationError" in (last.error or "")


def test_a_second_run_cannot_start_while_the_lock_is_held(store):
    crm, flowtly = sides()
    with store.lock("t"), pytest.raises(LockHeld):
        run(crm, flowtly, store)


def test_manual_conflict_parks_the_field_and_the_rest_syncs(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1", city="Krakow"))
    run(crm, flowtly, store, policy=SyncPolicy(conflict_policy=ConflictPolicy.MANUAL))
    fl_id = store.link_index("t", CLIENT)["C1"].flowtly_id
    crm.put(company("C1", "PL1", city="Warsaw", name="Renamed"))
    flowtly.put(company(fl_id, "PL1", city="Gdansk"))
    result = run(crm, flowtly, store)
    assert [str(op.action) for op in result.conflicts] == ["conflict"]
    assert flowtly.get(CLIENT, fl_id).get("name") == "Renamed"  # type: ignore[union-attr]
    assert flowtly.get(CLIENT, fl_id).get("city") == "Gdansk"  # type: ignore[union-attr]
    [conflict] = store.open_conflicts("t")
    assert (conflict.field, conflict.crm_value, conflict.flowtly_value) == (
        "city",
        "Warsaw",
        "Gdansk",
    )
    # Parked, not repeated: the next run has nothing new to say about it.
    assert run(crm, flowtly, store).operations == []


def test_incremental_reads_advance_the_cursor_only_after_a_clean_apply(store):
    crm, flowtly = sides(IncrementalMemoryConnector)
    crm.put(company("C1", "PL1"))
    run(crm, flowtly, store)
    assert store.get_cursor("t", Side.CRM, CLIENT) is not None
    crm.put(company("C1", "PL1", city="Poznan"))
    result = run(crm, flowtly, store)
    assert [(str(op.action), op.changes[0].new) for op in result.operations] == [
        ("update", "Poznan")
    ]
    fl_id = store.link_index("t", CLIENT)["C1"].flowtly_id
    assert flowtly.get(CLIENT, fl_id).get("city") == "Poznan"  # type: ignore[union-attr]
    crm.remove(CLIENT, "C1")
    deleted = run(crm, flowtly, store)  # the deletes feed reports it; the client is archived
    assert [str(op.action) for op in deleted.operations] == ["archive"]
    assert flowtly.get(CLIENT, fl_id).get("status") == "archived"  # type: ignore[union-attr]


def test_report_summary_counts_by_entity_and_action(store):
    crm, flowtly = sides()
    crm.put(company("C1", "PL1"))
    crm.put(company("C2", "PL2"))
    result = run(crm, flowtly, store)
    assert result.summary() == {"client": {"create": 2}}
    assert all(op.action is Action.CREATE for op in result.operations)
