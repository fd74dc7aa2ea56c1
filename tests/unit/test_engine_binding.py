"""A run refuses a store bound to other sides, before it reads anything; the first real
run records the binding, a dry run only checks it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from connectors.base import ChangeBatch, Cursor
from connectors.memory import MemoryConnector, MemorySettings
from sync.engine.run import SyncJob, run_sync
from sync.errors import BindingMismatch, SafetyError
from sync.model import EntityKind, Record, Side
from sync.store import RunOutcome, Store

CLIENT = EntityKind.CLIENT
FIELDS = {CLIENT: ("name", "country", "vat_number", "status")}


class Side_(MemoryConnector):
    """A memory side that counts its reads, to prove a refused run read nothing."""

    def __init__(self, name: str, prefix: str) -> None:
        super().__init__(
            MemorySettings(name=name), entities=(CLIENT,), fields=FIELDS, id_prefix=prefix
        )
        self.reads = 0

    async def read(
        self, entity: EntityKind, since: Cursor | None = None
    ) -> AsyncIterator[ChangeBatch]:
        self.reads += 1
        async for batch in super().read(entity, since):
            yield batch


@pytest.fixture
def store(tmp_path: Path):
    opened = Store.open(f"sqlite:///{tmp_path}/state.db")
    yield opened
    opened.close()


def company(rid: str, vat: str) -> Record:
    return Record(CLIENT, rid, {"name": f"Co {vat}", "country": "PL", "vat_number": vat})


def run(crm: Side_, flowtly: Side_, store: Store, *, dry_run: bool = False):
    job = SyncJob("t", crm, flowtly, store, concurrency=2)
    return asyncio.run(run_sync(job, dry_run=dry_run))


def identities(store: Store) -> dict[Side, str]:
    return {side: row.identity for side, row in store.binding("t").items()}


def test_first_real_run_records_both_sides(store: Store) -> None:
    crm, flowtly = Side_("crm-a", "c"), Side_("account-1", "f")
    crm.put(company("C1", "PL1"))
    with structlog.testing.capture_logs() as logs:
        assert run(crm, flowtly, store).clean
    assert identities(store) == {Side.CRM: "memory:crm-a", Side.FLOWTLY: "memory:account-1"}
    recorded = [e for e in logs if e["event"] == "binding_recorded"]
    assert [e["log_level"] for e in recorded] == ["info"]
    with structlog.testing.capture_logs() as logs:
        assert run(crm, flowtly, store).operations == []
    assert not [e for e in logs if e["event"] == "binding_recorded"]


def test_a_dry_run_on_a_fresh_store_binds_nothing(store: Store) -> None:
    crm, flowtly = Side_("crm-a", "c"), Side_("account-1", "f")
    crm.put(company("C1", "PL1"))
    assert len(run(crm, flowtly, store, dry_run=True).operations) == 1
    assert store.binding("t") == {}


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("changed", [Side.FLOWTLY, Side.CRM])
def test_other_sides_are_refused_before_anything_is_read(
    store: Store, dry_run: bool, changed: Side
) -> None:
    crm, flowtly = Side_("crm-a", "c"), Side_("account-1", "f")
    crm.put(company("C1", "PL1"))
    crm.put(company("C2", "PL2"))
    run(crm, flowtly, store)
    assert store.link_count("t", CLIENT) == 2
    # The same store, pointed at an empty account (or another CRM): its links would make
    # every linked record look deleted there.
    other = Side_("account-2" if changed is Side.FLOWTLY else "crm-b", "x")
    new_crm, new_flowtly = (crm, other) if changed is Side.FLOWTLY else (other, flowtly)
    crm.reads = flowtly.reads = 0
    crm.reset_calls()
    flowtly.reset_calls()
    with pytest.raises(BindingMismatch) as refused:
        run(new_crm, new_flowtly, store, dry_run=dry_run)
    assert isinstance(refused.value, SafetyError)
    assert new_crm.reads == new_flowtly.reads == 0
    assert new_crm.calls == new_flowtly.calls == []
    message = str(refused.value)
    before = "memory:account-1" if changed is Side.FLOWTLY else "memory:crm-a"
    after = other.describe()
    assert f"bound to {changed} '{before}'" in message
    assert f"now points at {changed} '{after}'" in message
    assert "[store] url" in message
    assert "flowtly-sync store rebind --sync t" in message
    assert refused.value.recorded[str(changed)] == before
    assert refused.value.current[str(changed)] == after
    assert len(crm.records(CLIENT)) == 2
    assert identities(store)[changed] == before
    if not dry_run:
        latest = store.recent_runs("t", limit=1)[0]
        assert latest.outcome is RunOutcome.FAILED
        assert latest.error is not None
        assert "BindingMismatch" in latest.error


def test_a_rebound_store_runs_against_the_new_sides(store: Store) -> None:
    crm, flowtly = Side_("crm-a", "c"), Side_("account-1", "f")
    crm.put(company("C1", "PL1"))
    run(crm, flowtly, store)
    moved = Side_("crm-moved", "c")
    moved.put(company("C1", "PL1"))
    with pytest.raises(BindingMismatch):
        run(moved, flowtly, store)
    store.bind("t", {Side.CRM: "memory:crm-moved"})
    assert run(moved, flowtly, store).operations == []


def test_a_store_with_links_but_no_binding_is_bound_once_and_says_so(store: Store) -> None:
    crm, flowtly = Side_("crm-a", "c"), Side_("account-1", "f")
    crm.put(company("C1", "PL1"))
    run(crm, flowtly, store)
    # As made by a version without bindings: links, nothing recorded.
    with store.transaction() as tx:
        tx._conn.exec_driver_sql("DELETE FROM binding")
    with structlog.testing.capture_logs() as logs:
        run(crm, flowtly, store, dry_run=True)
    assert store.binding("t") == {}
    assert not [e for e in logs if e["event"] == "binding_recorded"]
    with structlog.testing.capture_logs() as logs:
        run(crm, flowtly, store)
    recorded = [e for e in logs if e["event"] == "binding_recorded"]
    assert [e["log_level"] for e in recorded] == ["warning"]
    assert "made before bindings existed" in recorded[0]["reason"]
    assert identities(store) == {Side.CRM: "memory:crm-a", Side.FLOWTLY: "memory:account-1"}
    with structlog.testing.capture_logs() as logs:
        run(crm, flowtly, store)
    assert not [e for e in logs if e["event"] == "binding_recorded"]
